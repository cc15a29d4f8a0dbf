//! The encrypted-image stream and the complete-subtree scheme: what decrypts, what is refused,
//! and where.

use ota_crypt::stream::{self, Decryptor, Error as StreamError, Header, HEADER_LEN, TAG_LEN};
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::{wrap, Key};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn encrypt(key: &Key, plain: &[u8], chunk: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let h = stream::encrypt(key, &mut &plain[..], plain.len() as u64, &mut out, chunk).unwrap();
    assert_eq!(out.len() as u64, h.ciphertext_len());
    out
}

#[test]
fn round_trip_at_every_chunk_boundary_and_fed_byte_by_byte() {
    let key = Key::generate();
    for len in [0, 1, 1023, 1024, 1025, 4096, 10_000] {
        let plain = image(len);
        let ct = encrypt(&key, &plain, 1024);
        let mut out = Vec::new();
        stream::decrypt(&key, &mut &ct[..], &mut out).unwrap();
        assert_eq!(out, plain, "length {len}");
        // Fed in pieces of every size, as a download delivers it.
        for piece in [1, 7, 1040, 5000] {
            let mut d = Decryptor::new(&key);
            let mut out = Vec::new();
            for c in ct.chunks(piece) {
                d.update(c, &mut |p| {
                    out.extend_from_slice(p);
                    Ok(())
                })
                .unwrap();
            }
            d.finish().unwrap();
            assert_eq!(out, plain, "length {len}, pieces of {piece}");
        }
    }
}

/// Scenario: Confidentiality | a chunk of an encrypted image tampered with on the CDN | refused at that chunk; nothing of it is released
#[test]
fn a_tampered_chunk_is_refused_at_that_chunk_and_the_ones_before_are_released() {
    let key = Key::generate();
    let plain = image(5000);
    let ct = encrypt(&key, &plain, 1024);
    // Flip a byte of chunk 2 (of 5).
    let mut bad = ct.clone();
    bad[HEADER_LEN + 2 * (1024 + TAG_LEN) + 10] ^= 1;
    let mut d = Decryptor::new(&key);
    let mut released = Vec::new();
    let err = d
        .update(&bad, &mut |p| {
            released.extend_from_slice(p);
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, StreamError::Chunk { index: 2 }), "{err:?}");
    assert_eq!(released, plain[..2048]);
}

/// Scenario: Confidentiality | chunks of an encrypted image reordered, dropped, truncated, extended, or its header changed | refused: each is an authentication failure or a length error
#[test]
fn reordered_truncated_extended_and_relabelled_streams_are_refused() {
    let key = Key::generate();
    let plain = image(3000);
    let ct = encrypt(&key, &plain, 1024);
    let sealed = 1024 + TAG_LEN;
    let run = |bytes: &[u8]| {
        let mut out = Vec::new();
        stream::decrypt(&key, &mut &bytes[..], &mut out)
    };
    // Swap chunks 0 and 1.
    let mut swapped = ct[..HEADER_LEN].to_vec();
    swapped.extend_from_slice(&ct[HEADER_LEN + sealed..HEADER_LEN + 2 * sealed]);
    swapped.extend_from_slice(&ct[HEADER_LEN..HEADER_LEN + sealed]);
    swapped.extend_from_slice(&ct[HEADER_LEN + 2 * sealed..]);
    assert!(matches!(
        run(&swapped),
        Err(StreamError::Chunk { index: 0 })
    ));
    // Truncated after two chunks, and cut inside a chunk.
    assert!(matches!(
        run(&ct[..HEADER_LEN + 2 * sealed]),
        Err(StreamError::Truncated { .. })
    ));
    assert!(matches!(
        run(&ct[..ct.len() - 1]),
        Err(StreamError::Truncated { .. })
    ));
    // Extended.
    let mut longer = ct.clone();
    longer.push(0);
    assert!(matches!(run(&longer), Err(StreamError::TrailingBytes)));
    // The header says it is shorter (the last chunk made to look like a middle one): the
    // second chunk was sealed as not-last... every chunk's nonce and AAD change.
    let mut h = Header::parse(&ct).unwrap();
    h.plaintext_len = 2048;
    let mut relabelled = h.encode().to_vec();
    relabelled.extend_from_slice(&ct[HEADER_LEN..HEADER_LEN + 2 * sealed]);
    assert!(matches!(
        run(&relabelled),
        Err(StreamError::Chunk { index: 0 })
    ));
    // Another key.
    let mut out = Vec::new();
    assert!(matches!(
        stream::decrypt(&Key::generate(), &mut &ct[..], &mut out),
        Err(StreamError::Chunk { index: 0 })
    ));
    assert!(out.is_empty());
}

#[test]
fn header_parser_never_panics() {
    let key = Key::generate();
    let ct = encrypt(&key, &image(100), 1024);
    for cut in 0..HEADER_LEN {
        assert!(Header::parse(&ct[..cut]).is_err());
    }
    for i in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut b = ct.clone();
            b[i] ^= 1 << bit;
            // Either refused here, or (nonce prefix) by the first chunk.
            if Header::parse(&b).is_ok() {
                let mut out = Vec::new();
                assert!(stream::decrypt(&key, &mut &b[..], &mut out).is_err());
            }
        }
    }
    // Chunk sizes out of range, an absurd length.
    let mut h = Header::parse(&ct).unwrap();
    h.chunk_size = 1;
    assert!(Header::parse(&h.encode()).is_err());
    h.chunk_size = 1024;
    h.plaintext_len = u64::MAX;
    assert!(Header::parse(&h.encode()).is_err());
}

/// Brute force over a small tree: for every excluded set of up to two leaves, every other
/// leaf finds exactly one cover node on its path and every excluded leaf none.
#[test]
fn the_cover_reaches_exactly_the_non_excluded_leaves() {
    let tree = Tree::new(4).unwrap();
    let n = tree.leaves();
    let mut sets: Vec<BTreeSet<u64>> = vec![BTreeSet::new()];
    for a in 0..n {
        sets.push([a].into());
        for b in a + 1..n {
            sets.push([a, b].into());
        }
    }
    sets.push((0..n).collect());
    for excluded in sets {
        let cover = tree.cover(&excluded).unwrap();
        for leaf in 0..n {
            let on_path: Vec<u64> = tree
                .path(leaf)
                .unwrap()
                .into_iter()
                .filter(|v| cover.contains(v))
                .collect();
            let want = usize::from(!excluded.contains(&leaf));
            assert_eq!(on_path.len(), want, "leaf {leaf}, excluded {excluded:?}");
        }
    }
}

#[test]
fn the_cover_costs_about_r_log_n_over_r() {
    let tree = Tree::new(20).unwrap();
    assert_eq!(tree.cover(&BTreeSet::new()).unwrap(), vec![1]);
    let one: BTreeSet<u64> = [12345].into();
    assert_eq!(tree.cover(&one).unwrap().len(), 20);
    // 100 spread leaves: at most r·log2(N/r) = 100 · 13.4.
    let spread: BTreeSet<u64> = (0..100u64).map(|i| i * 10_007).collect();
    let c = tree.cover(&spread).unwrap().len();
    assert!(c <= 1343, "{c}");
    assert!(c >= 100, "{c}");
}

/// Scenario: Confidentiality | an excluded vehicle, a coalition of excluded vehicles, or an outsider tries to open an image's content key | none of their keys opens any wrap; every other vehicle opens exactly one
#[test]
fn excluded_receivers_and_outsiders_cannot_open_the_content_key() {
    let tree = Tree::new(6).unwrap();
    let secret = Secret::generate();
    let content = Key::generate();
    let sha: [u8; 32] = Sha256::digest(b"the image").into();
    let excluded: BTreeSet<u64> = [3, 4, 40].into();
    let cover = tree.cover(&excluded).unwrap();
    let wraps: Vec<[u8; wrap::WRAP_LEN]> = cover
        .iter()
        .map(|&v| wrap::seal(v, &secret.node_key(tree, v).unwrap(), &content, &sha))
        .collect();
    for leaf in 0..tree.leaves() {
        let keys = secret.receiver_keys(tree, leaf).unwrap();
        let opened: Vec<Key> = wraps
            .iter()
            .flat_map(|w| {
                keys.iter()
                    .filter_map(|(_, k)| wrap::open(w, k, &sha).ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        if excluded.contains(&leaf) {
            assert!(opened.is_empty(), "excluded leaf {leaf} opened a wrap");
        } else {
            assert_eq!(opened.len(), 1, "leaf {leaf}");
            assert!(opened[0] == content);
            // It finds its wrap without trying them all.
            let node = tree.covering(&cover, leaf).unwrap().unwrap();
            assert!(keys.iter().any(|(v, _)| *v == node));
        }
    }
    // An outsider: keys of another OEM secret for the same nodes.
    let other = Secret::generate();
    for leaf in 0..tree.leaves() {
        for (_, k) in other.receiver_keys(tree, leaf).unwrap() {
            assert!(wraps.iter().all(|w| wrap::open(w, &k, &sha).is_err()));
        }
    }
    // A wrap is bound to its image: the same wrap does not open for another image's hash.
    let (v, k) = &secret.receiver_keys(tree, 0).unwrap()[..]
        .iter()
        .find(|(v, _)| cover.contains(v))
        .map(|(v, k)| (*v, k.clone()))
        .unwrap();
    let w = wraps[cover.iter().position(|c| c == v).unwrap()];
    let other_sha: [u8; 32] = Sha256::digest(b"another image").into();
    assert_eq!(wrap::open(&w, k, &other_sha), Err(wrap::Error::Open(*v)));
    assert!(wrap::open(&w[..10], k, &sha).is_err());
}
