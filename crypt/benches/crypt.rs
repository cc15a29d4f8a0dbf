//! Image confidentiality benchmark (`cargo bench -p ota-crypt --bench crypt`):
//! - decrypting an encrypted image as it streams in (`stream::Decryptor`, fed 16 KiB reads as
//!   a download delivers them) against the cipher alone (XChaCha20-Poly1305 opening the same
//!   64 KiB chunks in place): goal >= 0.9; and RustCrypto's portable XChaCha20-Poly1305 for
//!   comparison;
//! - the size of an image's wrapped content keys for 1M vehicles (a tree of depth 20) with 0,
//!   100 and 10,000 excluded, and what one vehicle holds;
//! - the entitled-subset case: 1M vehicles of which 10% have an ECU of the image's hardware
//!   id, 100 of those revoked: the wraps of one tree for the whole fleet (entitled vehicles
//!   scattered through it, as a factory issues leaves) against one tree per hardware id (what
//!   the OEM does), each beside the subset-cover bound r·log2(N/r).
//!
//! Throughput: median of 5 runs, both sides measured the same way, spread shown.
//! `OTA_BENCH_QUICK=1` runs 32 MiB instead of 256 MiB (what `.ci/run` does).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use ota_crypt::stream::{self, Decryptor, HEADER_LEN, TAG_LEN};
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::wrap_set::{self, WrapSet};
use ota_crypt::{wrap, xchacha, Key};
use std::collections::BTreeSet;
use std::time::Instant;

const MIB: usize = 1 << 20;

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let quick = std::env::var_os("OTA_BENCH_QUICK").is_some();
    let size = if quick { 32 * MIB } else { 256 * MIB };
    let chunk = stream::DEFAULT_CHUNK;
    let key = Key::generate();
    let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut ct = Vec::with_capacity(size + size / 1000 + 64);
    let header = stream::encrypt(&key, &mut &plain[..], size as u64, &mut ct, chunk).unwrap();
    drop(plain);
    let mb = size as f64 / 1e6;

    // The cipher alone: open each sealed chunk in place (a copy into a work buffer first, as
    // the decryptor must keep the ciphertext intact for the next reader of the same bytes).
    // Ours (HChaCha20, then ring's ChaCha20-Poly1305), and RustCrypto's portable
    // XChaCha20-Poly1305 (what ota-crypt used before) for comparison.
    let aad = header.encode();
    let sealed = chunk as usize + TAG_LEN;
    let nonce = |i: usize| {
        let mut nonce = [0u8; 24];
        nonce[..19].copy_from_slice(&header.nonce_prefix);
        nonce[19..23].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[23] = u8::from(i as u32 + 1 == header.chunks());
        nonce
    };
    let mut work = vec![0u8; sealed];
    let mut each_chunk = |open: &mut dyn FnMut(usize, &mut [u8])| {
        let t = Instant::now();
        for (i, c) in ct[HEADER_LEN..].chunks(sealed).enumerate() {
            work[..c.len()].copy_from_slice(c);
            open(i, &mut work[..c.len()]);
            std::hint::black_box(&work[..]);
        }
        mb / t.elapsed().as_secs_f64()
    };
    let (mut raw, mut portable, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let rc = XChaCha20Poly1305::new((&key.0).into());
    // The subkey once per image, as the decryptor derives it: the nonce's first 16 bytes are
    // the same for every chunk.
    let sealer = xchacha::Sealer::new(&key, &xchacha::split_nonce(&nonce(0)).0);
    for _ in 0..5 {
        raw.push(each_chunk(&mut |i, c| {
            sealer
                .open(&xchacha::split_nonce(&nonce(i)).1, &aad, c)
                .unwrap();
        }));
        portable.push(each_chunk(&mut |i, c| {
            let (data, tag) = c.split_at_mut(c.len() - TAG_LEN);
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag);
            rc.decrypt_in_place_detached(&XNonce::from(nonce(i)), &aad, data, &Tag::from(t))
                .unwrap();
        }));

        let t = Instant::now();
        let mut d = Decryptor::new(&key);
        let mut out = 0usize;
        for piece in ct.chunks(16 * 1024) {
            d.update(piece, &mut |p| {
                out += std::hint::black_box(p).len();
                Ok(())
            })
            .unwrap();
        }
        d.finish().unwrap();
        assert_eq!(out, size);
        ours.push(mb / t.elapsed().as_secs_f64());
    }
    let (r, r_lo, r_hi) = median(raw);
    let (p, p_lo, p_hi) = median(portable);
    let (o, o_lo, o_hi) = median(ours);
    println!(
        "decrypting a {} MiB image (64 KiB chunks), median of 5 [min-max]",
        size / MIB
    );
    println!("| | MB/s | ratio |\n|---|---|---|");
    println!("| XChaCha20-Poly1305 alone, in place (ota_crypt::xchacha: ring) | {r:.0} [{r_lo:.0}-{r_hi:.0}] | 1.00 |");
    println!(
        "| stream::Decryptor fed 16 KiB reads | {o:.0} [{o_lo:.0}-{o_hi:.0}] | {:.2} |",
        o / r
    );
    println!(
        "| RustCrypto's XChaCha20-Poly1305 alone, in place (portable) | {p:.0} [{p_lo:.0}-{p_hi:.0}] | {:.2} |",
        p / r
    );

    // Wrapped keys for 1M vehicles.
    let tree = Tree::new(20).unwrap();
    let fleet = 1_000_000u64;
    println!(
        "\nwrapped content keys for {fleet} vehicles (tree depth 20, {} bytes a wrap)",
        wrap::WRAP_LEN
    );
    println!(
        "| excluded | wraps | bytes, all | r·log2(N/r) | one vehicle fetches (top + its shard, the largest), shards at depth {} |\n|---|---|---|---|---|",
        wrap_set::DEFAULT_SHARD_DEPTH
    );
    let secret = Secret::generate();
    let content = Key::generate();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for r in [0u64, 100, 10_000] {
        let mut excluded = BTreeSet::new();
        while (excluded.len() as u64) < r {
            // xorshift: a fixed, spread choice of excluded vehicles.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            excluded.insert(seed % fleet);
        }
        let t = Instant::now();
        let cover = tree.cover(&excluded).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let set = WrapSet::build(
            &secret,
            tree,
            &excluded,
            &content,
            &[7; 32],
            wrap_set::DEFAULT_SHARD_DEPTH,
        )
        .unwrap();
        let size = |s: &wrap_set::Shard| s.encode().len();
        let top = size(&set.shards[&0]);
        let largest = set
            .shards
            .iter()
            .filter(|(n, _)| **n != 0)
            .map(|(_, s)| size(s))
            .max()
            .unwrap_or(0);
        let bound = if r == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", r as f64 * (fleet as f64 / r as f64).log2())
        };
        println!(
            "| {r} | {} | {} | {bound} | {} bytes |   (cover computed in {:.3} s)",
            cover.len(),
            cover.len() * wrap::WRAP_LEN,
            top + largest,
            secs
        );
    }
    println!(
        "\nwhat one vehicle holds: {} node keys of 32 bytes ({} bytes) per group (hardware id it has)",
        tree.depth() as usize + 1,
        (tree.depth() as usize + 1) * 32
    );
    entitled_subset(tree, fleet, &mut seed);
}

/// 1M vehicles, 10% entitled (they hold an ECU of the image's hardware id), 100 of those
/// revoked.
fn entitled_subset(tree: Tree, fleet: u64, seed: &mut u64) {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let entitled_n = fleet / 10;
    let revoked_n = 100u64;
    let bound = |r: u64, n: u64| {
        if r == 0 {
            0.0
        } else {
            r as f64 * (n as f64 / r as f64).log2()
        }
    };
    println!(
        "\nentitled subset: {fleet} vehicles, {entitled_n} hold the image's hardware id, {revoked_n} of those revoked"
    );
    println!("| wrapped for | receivers outside (r) | wraps | bytes | r·log2(N/r) |\n|---|---|---|---|---|");
    // One tree for the fleet: the entitled vehicles are scattered (leaves are issued in build
    // order, models interleaved), so everyone else is excluded.
    let mut entitled = BTreeSet::new();
    while (entitled.len() as u64) < entitled_n {
        entitled.insert(next() % fleet);
    }
    let mut revoked = BTreeSet::new();
    let list: Vec<u64> = entitled.iter().copied().collect();
    while (revoked.len() as u64) < revoked_n {
        revoked.insert(list[(next() % entitled_n) as usize]);
    }
    let outside: BTreeSet<u64> = (0..tree.leaves())
        .filter(|l| !entitled.contains(l) || revoked.contains(l))
        .collect();
    let one_tree = tree.cover(&outside).unwrap();
    println!(
        "| one fleet tree, entitled scattered | {} | {} | {} | {:.0} |",
        outside.len(),
        one_tree.len(),
        one_tree.len() * wrap::WRAP_LEN,
        bound(outside.len() as u64, tree.leaves())
    );
    // One tree per hardware id: the entitled vehicles hold leaves 0..100k of their group's
    // tree; the wraps cover the issued leaves (to the end of the block of 1024) but the
    // revoked.
    let group_revoked: BTreeSet<u64> = {
        let mut r = BTreeSet::new();
        while (r.len() as u64) < revoked_n {
            r.insert(next() % entitled_n);
        }
        r
    };
    let limit = entitled_n.div_ceil(1024) * 1024;
    let per_group = tree.cover_below(limit, &group_revoked).unwrap();
    println!(
        "| one tree per hardware id (issued to {limit}) | {revoked_n} revoked + {} not issued | {} | {} | {:.0} (the revoked) |",
        tree.leaves() - limit,
        per_group.len(),
        per_group.len() * wrap::WRAP_LEN,
        bound(revoked_n, tree.leaves())
    );
}
