//! Image confidentiality (the paper: "the image will be encrypted before distributed using the
//! method of broadcast encryption").
//!
//! - [`stream`]: an image encrypted under a fresh content key in independently authenticated
//!   chunks (XChaCha20-Poly1305, the STREAM construction), so a receiver decrypts while it
//!   downloads, in constant memory, and a tampered chunk is refused at that chunk.
//! - [`subtree`]: the complete-subtree broadcast encryption scheme of Naor, Naor and
//!   Lotspiech. Each receiver (a vehicle or a regulator) is a leaf of a binary tree and holds
//!   the keys of the nodes on its path (depth + 1 keys); a content key is wrapped once per node
//!   of the *cover* of the non-excluded leaves, so excluding r of N receivers costs about
//!   r·log2(N/r) wraps and no other receiver is re-keyed.
//! - [`wrap`]: a content key sealed under one node key, bound to the image it opens;
//!   [`wrap_set`]: an image's wraps, split in shards so a receiver fetches only its own.
//! - [`receiver`]: the node keys a vehicle or regulator is issued (a file installed at the
//!   factory), and finding and opening its wrap.
//! - [`xchacha`]: the cipher all of it uses, XChaCha20-Poly1305 (HChaCha20, then ring's
//!   ChaCha20-Poly1305 assembly).
//! - [`plain`]: decrypting while downloading, then checking the plaintext's length and
//!   SHA-256 against the image manifest.

pub mod content_key;
pub mod fleet;
pub mod plain;
pub mod receiver;
pub mod sealed;
pub mod stream;
pub mod subtree;
pub mod wrap;
pub mod wrap_set;
pub mod xchacha;

/// A 256-bit symmetric key (content key or node key), wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// A fresh random key from the operating system.
    pub fn generate() -> Key {
        use rand_core::RngCore;
        let mut k = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut k);
        Key(k)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(…)")
    }
}
