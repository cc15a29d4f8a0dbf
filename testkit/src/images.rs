//! Image pairs for the delta tests: bytes shaped like code, and a point release of them.

/// Bytes like code (`len` of them, varied by `seed`), and the same with a point release's
/// changes: a byte changed every 3,001 from the 500th, and 13 bytes inserted in the middle.
pub fn point_release_pair(len: usize, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..len)
        .map(|i| [0x2D, 0xE9, (i / 64) as u8 ^ seed, (i * 7 / 4096) as u8][i % 4])
        .collect();
    let mut new = old.clone();
    for i in (500..new.len()).step_by(3001) {
        new[i] ^= 0xA5;
    }
    new.splice(len / 2..len / 2, *b"inserted code");
    (old, new)
}
