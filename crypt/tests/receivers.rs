//! From the OEM's secret to a vehicle's plaintext: key files, sharded wraps, and decrypting
//! with the manifest's length and hash checked.

use ota_crypt::plain::{Error as PlainError, Expected, PlainWriter};
use ota_crypt::receiver::{Error as ReceiverError, PathKeys, ReceiverKeys};
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::wrap_set::{Shard, WrapSet};
use ota_crypt::{stream, Key};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

fn want(length: u64, sha256: [u8; 32], chunk_size: u32) -> Expected {
    Expected {
        length,
        sha256,
        chunk_size,
    }
}

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
    let set = WrapSet::build(
        &secret.group("hw:BRAKE-A"),
        tree,
        &excluded,
        &content,
        &sha,
        6,
    )
    .unwrap();
    // Published and parsed back, shard by shard.
    let published: Vec<Vec<u8>> = set.shards.values().map(Shard::encode).collect();
    let shards: Vec<Shard> = published.iter().map(|b| Shard::parse(b).unwrap()).collect();
    let whole: usize = published.iter().map(Vec::len).sum();
    for leaf in [0u64, 4, 5, 6, 7, 29, 699, 700, 701, 4000, 4095] {
        let keys = ReceiverKeys::issue(&secret, &[("hw:BRAKE-A", tree, leaf)]).unwrap();
        // Round trip through the key file installed at the factory.
        let file = ReceiverKeys::parse(&keys.to_json()).unwrap();
        let keys = file.group("hw:BRAKE-A").unwrap();
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
    let good = ReceiverKeys::issue(&secret, &[("hw:BRAKE-A", tree, 9), ("hw:HU", tree, 2)])
        .unwrap()
        .to_json();
    let g = "hw:BRAKE-A";
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    // Claim another leaf with these keys: the node numbers are not its path.
    v["groups"][g]["leaf"] = 10.into();
    let r = ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap());
    assert!(matches!(r, Err(ReceiverError::NotThePath { .. })));
    // A key that is not 32 bytes.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["groups"][g]["node_keys"]["1"] = "abcd".into();
    let r = ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap());
    assert!(matches!(r, Err(ReceiverError::BadKey { .. })));
    // A group name that is not one, and a file of the earlier, one-tree scheme.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let path = v["groups"][g].clone();
    v["groups"]["hw:a b"] = path;
    let r = ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap());
    assert!(matches!(r, Err(ReceiverError::BadGroup(_))));
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["scheme"] = "complete-subtree-v1".into();
    assert!(matches!(
        ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap()),
        Err(ReceiverError::Scheme(_))
    ));
    // Absurd depth, junk, oversize, too many groups.
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["groups"][g]["depth"] = 64.into();
    assert!(ReceiverKeys::parse(&serde_json::to_vec(&v).unwrap()).is_err());
    for cut in 0..good.len() {
        assert!(ReceiverKeys::parse(&good[..cut]).is_err());
    }
    let big = ota_crypt::receiver::MAX_FILE + 1;
    assert!(matches!(
        ReceiverKeys::parse(&vec![b' '; big]),
        Err(ReceiverError::TooLarge(n)) if n == big
    ));
    let small = Tree::new(2).unwrap();
    let names: Vec<String> = (0..=ota_crypt::receiver::MAX_GROUPS)
        .map(|i| format!("hw:{i}"))
        .collect();
    let many: Vec<(&str, Tree, u64)> = names.iter().map(|n| (n.as_str(), small, 0)).collect();
    assert!(matches!(
        ReceiverKeys::issue(&secret, &many),
        Err(ReceiverError::TooManyGroups(_))
    ));
    // The file's groups are the ones issued; a group it is not in is named as such.
    let keys = ReceiverKeys::parse(&good).unwrap();
    assert_eq!(
        keys.groups.keys().collect::<Vec<_>>(),
        ["hw:BRAKE-A", "hw:HU"]
    );
    assert!(matches!(
        keys.group("hw:GW"),
        Err(ReceiverError::NotInGroup(_))
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
    let mut w = PlainWriter::new(&content, Vec::new(), want(plain.len() as u64, sha, 4096));
    for c in ct.chunks(3000) {
        w.update(c).unwrap();
    }
    assert_eq!(w.finish().unwrap(), plain);
    // The manifest's hash is of other bytes.
    let mut w = PlainWriter::new(
        &content,
        Vec::new(),
        want(plain.len() as u64, [0; 32], 4096),
    );
    w.update(&ct).unwrap();
    assert!(matches!(w.finish(), Err(PlainError::Hash)));
    // The manifest's length differs: refused as soon as the header is read.
    let mut w = PlainWriter::new(&content, Vec::new(), want(10, sha, 4096));
    assert!(matches!(
        w.update(&ct),
        Err(PlainError::Length {
            got: 20_000,
            want: 10
        })
    ));
    // Stopped early: truncated.
    let mut w = PlainWriter::new(&content, Vec::new(), want(plain.len() as u64, sha, 4096));
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
        let mut first = PlainWriter::new(&key, &mut written, want(plain.len() as u64, sha, 1024));
        first.update(&ct[..stop_at]).unwrap();
        drop(first);
        let (chunks, bytes) = header.whole_chunks(written.len() as u64);
        let held = &written[..bytes as usize];

        // The second: the held prefix, sealed again, is the ciphertext's prefix.
        let mut again = Vec::new();
        let mut second = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 1024));
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
            let mut third = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 1024));
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
    let mut w = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64 + 1, sha, 1024));
    assert!(w
        .resume(&key, header, 0, &mut &[][..], &mut |_| {})
        .is_err());
    let mut w = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 1024));
    assert!(w
        .resume(&key, header, header.chunks() + 1, &mut &[][..], &mut |_| {})
        .is_err());
}

/// Scenario: Confidentiality | a vehicle's keys of one hardware id's group are tried on the wraps of another group (a head-unit-only car on a brake image) | nothing opens: each group's node keys derive from its own name, so the same leaf and node in another group is another key
#[test]
fn a_group_s_keys_open_nothing_of_another_group() {
    let (secret, tree, content, sha, _) = fixture();
    let brake = WrapSet::build(
        &secret.group("hw:BRAKE-A"),
        tree,
        &BTreeSet::new(),
        &content,
        &sha,
        6,
    )
    .unwrap();
    let wraps: Vec<&[u8]> = brake
        .shards
        .values()
        .flat_map(|s| s.wraps.iter().map(|w| &w[..]))
        .collect();
    for leaf in [0u64, 1, 77, 4095] {
        let head_unit = PathKeys::issue(&secret.group("hw:HU"), tree, leaf).unwrap();
        // The wrap is for the root node, which the head unit's path also has: another key.
        assert!(matches!(
            head_unit.open(12, &wraps, &sha),
            Err(ReceiverError::Wrap(_))
        ));
        let brake_ecu = PathKeys::issue(&secret.group("hw:BRAKE-A"), tree, leaf).unwrap();
        assert!(brake_ecu.open(12, &wraps, &sha).unwrap() == content);
    }
}

/// The cover of the issued leaves: every leaf below the limit and not excluded is under
/// exactly one cover node; a leaf at or above the limit, or excluded, under none. Checked
/// against every leaf of small trees for many limits and excluded sets.
#[test]
fn the_cover_of_the_issued_leaves_is_exact() {
    let tree = Tree::new(7).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..400 {
        let limit = next() % 140;
        let excluded: BTreeSet<u64> = (0..(round % 9)).map(|_| next() % 128).collect();
        let cover = tree.cover_below(limit, &excluded).unwrap();
        for leaf in 0..128u64 {
            let on_path = tree
                .path(leaf)
                .unwrap()
                .iter()
                .filter(|v| cover.binary_search(v).is_ok())
                .count();
            let want = usize::from(leaf < limit && !excluded.contains(&leaf));
            assert_eq!(
                on_path, want,
                "leaf {leaf}, limit {limit}, excluded {excluded:?}"
            );
        }
        // Nothing excluded and the whole tree issued: the root alone.
        if limit >= 128 && excluded.is_empty() {
            assert_eq!(cover, vec![1]);
        }
    }
    assert!(tree.cover_below(0, &BTreeSet::new()).unwrap().is_empty());
    assert!(tree.cover_below(10, &[500].into()).is_err());
}

/// Wrapping the same key for the same receivers again gives the same shards (the OEM wraps
/// again at every publish; unchanged receivers must not change every vehicle's entry), and
/// another receiver set or another key gives others.
#[test]
fn wraps_are_deterministic() {
    let (secret, tree, content, sha, _) = fixture();
    let g = secret.group("hw:BRAKE-A");
    let cover = tree.cover_below(1024, &[3, 900].into()).unwrap();
    let encode = |s: &WrapSet| s.shards.values().map(Shard::encode).collect::<Vec<_>>();
    let a = WrapSet::for_cover(&g, tree, &cover, &content, &sha, 6).unwrap();
    let b = WrapSet::for_cover(&g, tree, &cover, &content, &sha, 6).unwrap();
    assert_eq!(encode(&a), encode(&b));
    let other_cover = tree.cover_below(1024, &[3, 901].into()).unwrap();
    let c = WrapSet::for_cover(&g, tree, &other_cover, &content, &sha, 6).unwrap();
    assert_ne!(encode(&a), encode(&c));
    let d = WrapSet::for_cover(&g, tree, &cover, &Key::generate(), &sha, 6).unwrap();
    assert_ne!(encode(&a), encode(&d));
}

/// Scenario: Confidentiality | the CDN rewrites the encrypted stream's unauthenticated header to announce 16 MiB chunks | refused as soon as the 40-byte header is read, before any chunk is buffered: the chunk size must be the signed manifest's
#[test]
fn a_header_with_another_chunk_size_is_refused_before_buffering() {
    let (_, _, key, sha, plain) = fixture();
    let mut ct = Vec::new();
    let header = stream::encrypt(&key, &mut &plain[..], plain.len() as u64, &mut ct, 1024).unwrap();
    let forged = stream::Header {
        chunk_size: 16 << 20,
        ..header
    };
    let mut w = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 1024));
    // The header alone: refused then, with nothing buffered.
    assert!(matches!(
        w.update(&forged.encode()),
        Err(PlainError::ChunkSize {
            got: 0x0100_0000,
            want: 1024
        })
    ));
    // The genuine stream under a manifest that says other chunks: refused at the header too.
    let mut w = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 4096));
    assert!(matches!(
        w.update(&ct[..stream::HEADER_LEN]),
        Err(PlainError::ChunkSize {
            got: 1024,
            want: 4096
        })
    ));
    // And a resumed one.
    let mut w = PlainWriter::new(&key, Vec::new(), want(plain.len() as u64, sha, 4096));
    assert!(matches!(
        w.resume(&key, header, 0, &mut &[][..], &mut |_| {}),
        Err(PlainError::ChunkSize { .. })
    ));
}
