//! From the OEM's secret to a vehicle's plaintext: key files, sharded wraps, and decrypting
//! with the manifest's length and hash checked.

use ota_crypt::plain::{Error as PlainError, PlainWriter};
use ota_crypt::receiver::{Error as ReceiverError, ReceiverKeys};
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::wrap_set::{Shard, WrapSet};
use ota_crypt::{stream, Key};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

fn fixture() -> (Secret, Tree, Key, [u8; 32], Vec<u8>) {
    let plain: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let sha: [u8; 32] = Sha256::digest(&plain).into();
    (
        Secret::generate(),
        Tree::new(12).unwrap(),
        Key::generate(),
        sha,
        plain,
    )
}

/// Scenario: Confidentiality | an excluded vehicle fetches its shard of an image's wrapped keys | no wrap opens for it (Excluded), while a vehicle beside it in the same shard opens its own
#[test]
fn each_vehicle_needs_two_shards_and_an_excluded_one_gets_nothing() {
    let (secret, tree, content, sha, _) = fixture();
    // Four named ones, and 200 more spread over the fleet.
    let mut excluded: BTreeSet<u64> = [5, 6, 700, 4000].into();
    excluded.extend((0..200u64).map(|i| 10 + i * 19));
    let set = WrapSet::build(&secret, tree, &excluded, &content, &sha, 6).unwrap();
    // Published and parsed back, shard by shard.
    let published: Vec<Vec<u8>> = set.shards.values().map(Shard::encode).collect();
    let shards: Vec<Shard> = published.iter().map(|b| Shard::parse(b).unwrap()).collect();
    let whole: usize = published.iter().map(Vec::len).sum();
    for leaf in [0u64, 4, 5, 6, 7, 29, 699, 700, 701, 4000, 4095] {
        let keys = ReceiverKeys::issue(&secret, tree, leaf).unwrap();
        // Round trip through the key file installed at the factory.
        let keys = ReceiverKeys::parse(&keys.to_json()).unwrap();
        let mine = keys.shard(6);
        let wraps: Vec<&[u8]> = shards
            .iter()
            .filter(|s| s.number == 0 || s.number == mine)
            .flat_map(|s| s.wraps.iter().map(|w| &w[..]))
            .collect();
        // What it fetched is a small part of the whole.
        assert!(
            wraps.len() * 80 * 8 < whole,
            "{} wraps of {whole} bytes",
            wraps.len()
        );
        let r = keys.open(12, &wraps, &sha);
        if excluded.contains(&leaf) {
            assert!(matches!(r, Err(ReceiverError::Excluded(13))), "leaf {leaf}");
        } else {
            assert!(r.unwrap() == content, "leaf {leaf}");
        }
    }
}

#[test]
fn a_key_file_must_hold_exactly_its_path() {
    let (secret, tree, ..) = fixture();
    let good = ReceiverKeys::issue(&secret, tree, 9).unwrap().to_json();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    // Claim another leaf with these keys: the node numbers are not its path.
    v["leaf"] = 10.into();
    let r = ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap());
    assert!(matches!(r, Err(ReceiverError::NotThePath { .. })));
    // A key that is not 32 bytes.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["node_keys"]["1"] = "abcd".into();
    let r = ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap());
    assert!(matches!(r, Err(ReceiverError::BadKey { .. })));
    // Unknown scheme, absurd depth, junk, oversize.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["scheme"] = "other".into();
    assert!(ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap()).is_err());
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["depth"] = 64.into();
    assert!(ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap()).is_err());
    for cut in 0..good.len() {
        assert!(ReceiverKeys::parse(&good[..cut]).is_err());
    }
    assert!(matches!(
        ReceiverKeys::parse(&vec![b' '; 9000]),
        Err(ReceiverError::TooLarge(9000))
    ));
}

#[test]
fn shard_parser_never_panics() {
    let (secret, tree, content, sha, _) = fixture();
    let set = WrapSet::build(&secret, tree, &[1, 2, 3].into(), &content, &sha, 4).unwrap();
    let bytes = set.shards.values().last().unwrap().encode();
    for cut in 0..bytes.len() {
        assert!(Shard::parse(&bytes[..cut]).is_err());
    }
    for i in 0..52 {
        let mut b = bytes.clone();
        b[i] ^= 0xFF;
        let _ = Shard::parse(&b);
    }
    let mut b = bytes.clone();
    b[48..52].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Shard::parse(&b).is_err());
}

/// Scenario: Confidentiality | a supplier encrypts other bytes than the manifest it signed | refused after decryption: the plaintext's SHA-256 is not the manifest's
#[test]
fn the_plaintext_must_be_the_manifests() {
    let (_, _, content, sha, plain) = fixture();
    let mut ct = Vec::new();
    stream::encrypt(&content, &mut &plain[..], plain.len() as u64, &mut ct, 4096).unwrap();
    // Fed as a download delivers it: the plaintext comes out and verifies.
    let mut w = PlainWriter::new(&content, Vec::new(), plain.len() as u64, sha);
    for c in ct.chunks(3000) {
        w.update(c).unwrap();
    }
    assert_eq!(w.finish().unwrap(), plain);
    // The manifest's hash is of other bytes.
    let mut w = PlainWriter::new(&content, Vec::new(), plain.len() as u64, [0; 32]);
    w.update(&ct).unwrap();
    assert!(matches!(w.finish(), Err(PlainError::Hash)));
    // The manifest's length differs: refused as soon as the header is read.
    let mut w = PlainWriter::new(&content, Vec::new(), 10, sha);
    assert!(matches!(
        w.update(&ct),
        Err(PlainError::Length {
            got: 20_000,
            want: 10
        })
    ));
    // Stopped early: truncated.
    let mut w = PlainWriter::new(&content, Vec::new(), plain.len() as u64, sha);
    w.update(&ct[..ct.len() / 2]).unwrap();
    assert!(matches!(w.finish(), Err(PlainError::Stream(_))));
}

/// A decryption stopped after some chunks continues from the plaintext it wrote: resealing
/// that prefix gives back exactly the ciphertext it came from (what a download hashes without
/// keeping it), and the rest decrypts to the manifest's plaintext. A prefix changed in
/// between gives other ciphertext and fails the plaintext check.
#[test]
fn a_stopped_decryption_resumes_from_its_plaintext() {
    let (_, _, key, sha, plain) = fixture();
    let mut ct = Vec::new();
    let header = stream::encrypt(&key, &mut &plain[..], plain.len() as u64, &mut ct, 1024).unwrap();
    for stop_at in [0usize, 39, 40, 1000, 1100, 5000, ct.len() - 1, ct.len()] {
        // The first attempt: the bytes up to `stop_at`, then stopped.
        let mut written = Vec::new();
        let mut first = PlainWriter::new(&key, &mut written, plain.len() as u64, sha);
        first.update(&ct[..stop_at]).unwrap();
        drop(first);
        let (chunks, bytes) = header.whole_chunks(written.len() as u64);
        let held = &written[..bytes as usize];

        // The second: the held prefix, sealed again, is the ciphertext's prefix.
        let mut again = Vec::new();
        let mut second = PlainWriter::new(&key, Vec::new(), plain.len() as u64, sha);
        second
            .resume(&key, header, chunks, &mut &held[..], &mut |c| {
                again.extend_from_slice(c)
            })
            .unwrap();
        assert_eq!(again, ct[..again.len()], "stopped at {stop_at}");
        assert!(again.len() >= stream::HEADER_LEN);
        second.update(&ct[again.len()..]).unwrap();
        let mut out = held.to_vec();
        out.extend(second.finish().unwrap());
        assert_eq!(out, plain, "stopped at {stop_at}");

        // A changed byte in the held plaintext: other ciphertext, refused plaintext.
        if !held.is_empty() {
            let mut changed = held.to_vec();
            changed[held.len() / 2] ^= 1;
            let mut other = Vec::new();
            let mut third = PlainWriter::new(&key, Vec::new(), plain.len() as u64, sha);
            third
                .resume(&key, header, chunks, &mut &changed[..], &mut |c| {
                    other.extend_from_slice(c)
                })
                .unwrap();
            assert_ne!(other, ct[..other.len()]);
            third.update(&ct[other.len()..]).unwrap();
            assert!(matches!(third.finish(), Err(PlainError::Hash)));
        }
    }
    // A header for another length, or a chunk count past the end, is refused.
    let mut w = PlainWriter::new(&key, Vec::new(), plain.len() as u64 + 1, sha);
    assert!(w
        .resume(&key, header, 0, &mut &[][..], &mut |_| {})
        .is_err());
    let mut w = PlainWriter::new(&key, Vec::new(), plain.len() as u64, sha);
    assert!(w
        .resume(&key, header, header.chunks() + 1, &mut &[][..], &mut |_| {})
        .is_err());
}
