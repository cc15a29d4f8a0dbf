//! Deterministic sealing of padded messages (a synthetic IV, as in SIV): the nonce is an HMAC
//! of the key over the label, the associated data and the padded plaintext, so the same
//! message under the same key gives the same bytes (a publisher that seals again what did not
//! change rewrites nothing) and two different messages never share a nonce, whatever the
//! caller's state did.
//!
//! ```text
//! sealed   nonce (24) ‖ XChaCha20-Poly1305(key, nonce, aad, padded) ‖ tag (16)
//! padded   plaintext ‖ 0x80 ‖ 0x00…   (ISO/IEC 7816-4), to a length the caller chooses
//! nonce    first 24 bytes of HMAC-SHA256(key, label ‖ aad ‖ padded)
//! ```

use crate::xchacha::{split_nonce, Sealer, TAG_LEN};
use crate::Key;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Nonce and tag around the padded message.
pub const OVERHEAD: usize = 24 + TAG_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the message does not fit {0} bytes")]
    TooLarge(usize),
    #[error("{0} bytes is too short to be sealed")]
    Length(usize),
    #[error("does not authenticate under this key (another key's, or altered)")]
    Unauthentic,
    #[error("malformed padding")]
    Padding,
}

/// HMAC-SHA256 of `parts` under `key` (the derivations of this crate's records).
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Pad `plaintext` to exactly `size` bytes and seal it.
pub fn seal(
    key: &Key,
    label: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    size: usize,
) -> Result<Vec<u8>, Error> {
    if plaintext.len() >= size {
        return Err(Error::TooLarge(size));
    }
    let mut padded = Vec::with_capacity(size);
    padded.extend_from_slice(plaintext);
    padded.push(0x80);
    padded.resize(size, 0);
    let siv = hmac(&key.0, &[label, aad, &padded]);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&siv[..24]);
    let (head, tail) = split_nonce(&nonce);
    let tag = Sealer::new(key, &head)
        .seal(&tail, aad, &mut padded)
        .map_err(|_| Error::TooLarge(size))?;
    let mut out = Vec::with_capacity(size + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&padded);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Check and open `sealed`; returns the plaintext without its padding. Never panics.
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    if sealed.len() < OVERHEAD + 1 {
        return Err(Error::Length(sealed.len()));
    }
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&sealed[..24]);
    let (head, tail) = split_nonce(&nonce);
    let mut body = sealed[24..].to_vec();
    let plain = Sealer::new(key, &head)
        .open(&tail, aad, &mut body)
        .map_err(|_| Error::Unauthentic)?;
    let end = plain
        .iter()
        .rposition(|b| *b != 0)
        .filter(|i| plain[*i] == 0x80)
        .ok_or(Error::Padding)?;
    Ok(plain[..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_is_deterministic_padded_and_bound_to_key_and_aad() {
        let k = Key([3; 32]);
        let a = seal(&k, b"l", b"aad", b"hello", 64).unwrap();
        assert_eq!(a, seal(&k, b"l", b"aad", b"hello", 64).unwrap());
        assert_ne!(a, seal(&k, b"l", b"aad", b"hellp", 64).unwrap());
        assert_eq!(a.len(), 64 + OVERHEAD);
        assert_eq!(open(&k, b"aad", &a).unwrap(), b"hello");
        assert_eq!(open(&k, b"other", &a), Err(Error::Unauthentic));
        assert_eq!(open(&Key([4; 32]), b"aad", &a), Err(Error::Unauthentic));
        assert_eq!(seal(&k, b"l", b"", &[1; 64], 64), Err(Error::TooLarge(64)));
        for cut in 0..a.len() {
            assert!(open(&k, b"aad", &a[..cut]).is_err());
        }
    }
}
