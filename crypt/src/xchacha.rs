//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) built from its two parts: HChaCha20 derives a
//! subkey from the key and the first 16 bytes of the 24-byte nonce (RustCrypto's `chacha20`),
//! and ring's ChaCha20-Poly1305 seals with that subkey and the nonce's last 8 bytes.
//!
//! Why not one crate's XChaCha20-Poly1305: ring's ChaCha20-Poly1305 is BoringSSL's fused
//! assembly, already linked into the gateway for TLS, and its speed does not depend on how the
//! program around it is optimised. RustCrypto's portable implementation ran at 685-838 MB/s
//! inside the size-optimised, fat-LTO gateway against 1,250 MB/s on its own (`cargo bench -p
//! ota-client --bench gateway`, `-p ota-crypt --bench crypt`). The bytes are the same: a test
//! checks both against each other, and against the draft's test vector.
//!
//! The stream derives its subkey once per image (the 16 nonce bytes it covers are the image's
//! random nonce prefix), so HChaCha20 costs nothing per chunk.

use crate::Key;
use chacha20::cipher::consts::U10;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

pub const TAG_LEN: usize = 16;

/// The chunk does not authenticate under this key, nonce and associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

/// The message is longer than the cipher can encrypt under one nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// An XChaCha20-Poly1305 key bound to the first 16 bytes of its nonces.
pub struct Sealer {
    aead: LessSafeKey,
}

impl Sealer {
    pub fn new(key: &Key, nonce_head: &[u8; 16]) -> Sealer {
        let mut subkey: [u8; 32] =
            chacha20::hchacha::<U10>((&key.0).into(), nonce_head.into()).into();
        // A 32-byte key is what ChaCha20-Poly1305 takes: `new` cannot fail here.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &subkey);
        zeroize::Zeroize::zeroize(&mut subkey);
        Sealer {
            aead: LessSafeKey::new(unbound.expect("ChaCha20-Poly1305 takes a 32-byte key")),
        }
    }

    fn nonce(tail: &[u8; 8]) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(tail);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypt `data` in place with the nonce `head ‖ tail`; returns the tag. Fails only for
    /// a message over ChaCha20's limit of 256 GiB (the callers' chunks are at most 16 MiB).
    pub fn seal(
        &self,
        nonce_tail: &[u8; 8],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], TooLong> {
        let t = self
            .aead
            .seal_in_place_separate_tag(Self::nonce(nonce_tail), Aad::from(aad), data)
            .map_err(|_| TooLong)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(t.as_ref());
        Ok(tag)
    }

    /// Check and decrypt `sealed` (ciphertext then tag) in place; returns the plaintext part.
    pub fn open<'a>(
        &self,
        nonce_tail: &[u8; 8],
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], Unauthentic> {
        self.aead
            .open_in_place(Self::nonce(nonce_tail), Aad::from(aad), sealed)
            .map_err(|_| Unauthentic)
    }
}

/// Split a 24-byte XChaCha nonce into the part the subkey covers and the part each message uses.
pub fn split_nonce(nonce: &[u8; 24]) -> ([u8; 16], [u8; 8]) {
    let mut head = [0u8; 16];
    let mut tail = [0u8; 8];
    head.copy_from_slice(&nonce[..16]);
    tail.copy_from_slice(&nonce[16..]);
    (head, tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).unwrap()
    }

    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1.
    #[test]
    fn draft_test_vector() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce: [u8; 24] = unhex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .unwrap();
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let want_ct = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
             21f9664c97637da9768812f615c68b13b52e",
        );
        let want_tag = unhex("c0875924c1c7987947deafd8780acf49");
        let (head, tail) = split_nonce(&nonce);
        let s = Sealer::new(&Key(key), &head);
        let mut data = plaintext.to_vec();
        let tag = s.seal(&tail, &aad, &mut data).unwrap();
        assert_eq!(data, want_ct);
        assert_eq!(tag.to_vec(), want_tag);
        data.extend_from_slice(&tag);
        assert_eq!(s.open(&tail, &aad, &mut data).unwrap(), &plaintext[..]);
    }

    /// The same bytes as RustCrypto's XChaCha20-Poly1305, both ways, for many lengths, and
    /// any changed byte (of the ciphertext, tag, nonce or associated data) refused.
    #[test]
    fn matches_rustcrypto() {
        let key = Key::generate();
        let rc = XChaCha20Poly1305::new((&key.0).into());
        for len in [
            0usize,
            1,
            15,
            16,
            17,
            63,
            64,
            65,
            255,
            256,
            1000,
            4096,
            65_536 + 3,
        ] {
            let mut nonce = [0u8; 24];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
            let (head, tail) = split_nonce(&nonce);
            let ours = Sealer::new(&key, &head);
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let aad = [len as u8; 40];

            let mut a = plain.clone();
            let tag_a = ours.seal(&tail, &aad, &mut a).unwrap();
            let mut b = plain.clone();
            let tag_b = rc
                .encrypt_in_place_detached(&XNonce::from(nonce), &aad, &mut b)
                .unwrap();
            assert_eq!(a, b, "ciphertext, {len} bytes");
            assert_eq!(tag_a[..], tag_b[..], "tag, {len} bytes");

            let mut sealed = a.clone();
            sealed.extend_from_slice(&tag_a);
            let mut good = sealed.clone();
            assert_eq!(ours.open(&tail, &aad, &mut good).unwrap(), &plain[..]);
            for i in [0, sealed.len() / 2, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                assert_eq!(ours.open(&tail, &aad, &mut bad), Err(Unauthentic));
            }
            let mut other_tail = tail;
            other_tail[7] ^= 1;
            assert!(ours.open(&other_tail, &aad, &mut sealed.clone()).is_err());
            let mut other_head = head;
            other_head[0] ^= 1;
            let other = Sealer::new(&key, &other_head);
            assert!(other.open(&tail, &aad, &mut sealed.clone()).is_err());
            assert!(ours.open(&tail, &aad[1..], &mut sealed.clone()).is_err());
        }
    }

    #[test]
    fn shorter_than_a_tag_is_refused() {
        let s = Sealer::new(&Key([1; 32]), &[2; 16]);
        for n in 0..TAG_LEN {
            assert_eq!(s.open(&[0; 8], b"", &mut vec![0u8; n]), Err(Unauthentic));
        }
    }
}
