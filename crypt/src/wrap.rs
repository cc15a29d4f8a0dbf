//! A content key sealed under one node key (XChaCha20-Poly1305), bound to the node and to the
//! image it opens (the SHA-256 of the plaintext image, as its manifest lists it), so a wrap
//! cannot be moved to another node or another image.
//!
//! The nonce is synthetic (HMAC of the node key over everything sealed), so wrapping the same
//! key for the same node and image again gives the same bytes: the OEM re-wraps at every
//! publish, and an unchanged set of receivers leaves every shard, and every vehicle's entry
//! naming it, as it was. Equal wraps only ever reveal that the inputs were equal.
//!
//! Layout ([`WRAP_LEN`] bytes): node number (u64, big-endian), nonce (24), sealed key (32 + 16).

use crate::xchacha::{split_nonce, Sealer};
use crate::Key;

pub const WRAP_LEN: usize = 8 + 24 + 32 + 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("a wrapped key is {WRAP_LEN} bytes, not {0}")]
    Length(usize),
    #[error("the wrap for node {0} does not open with its key (another image, or tampered)")]
    Open(u64),
}

fn aad(node: u64, image_sha256: &[u8; 32]) -> [u8; 64] {
    let mut a = [0u8; 64];
    a[..24].copy_from_slice(b"ota-crypt key wrap v1\0\0\0");
    a[24..32].copy_from_slice(&node.to_be_bytes());
    a[32..].copy_from_slice(image_sha256);
    a
}

/// Seal `content` under `node`'s key `node_key` for the image of SHA-256 `image_sha256`.
pub fn seal(node: u64, node_key: &Key, content: &Key, image_sha256: &[u8; 32]) -> [u8; WRAP_LEN] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&node_key.0)
        .expect("HMAC takes keys of any length");
    mac.update(b"ota-crypt key wrap nonce v1");
    mac.update(&aad(node, image_sha256));
    mac.update(&content.0);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&mac.finalize().into_bytes()[..24]);
    let mut out = [0u8; WRAP_LEN];
    out[..8].copy_from_slice(&node.to_be_bytes());
    out[8..32].copy_from_slice(&nonce);
    out[32..64].copy_from_slice(&content.0);
    let (head, tail) = split_nonce(&nonce);
    let tag = Sealer::new(node_key, &head)
        .seal(&tail, &aad(node, image_sha256), &mut out[32..64])
        // 32 bytes are far below the cipher's message limit.
        .unwrap_or_default();
    out[64..].copy_from_slice(&tag);
    out
}

/// The node a wrap is for (untrusted until it opens).
pub fn node_of(wrap: &[u8]) -> Result<u64, Error> {
    let b: &[u8; WRAP_LEN] = wrap.try_into().map_err(|_| Error::Length(wrap.len()))?;
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    Ok(u64::from_be_bytes(n))
}

/// Open a wrap with the key of its node. Never panics on untrusted bytes.
pub fn open(wrap: &[u8], node_key: &Key, image_sha256: &[u8; 32]) -> Result<Key, Error> {
    let node = node_of(wrap)?;
    let mut sealed = [0u8; 32 + 16];
    sealed.copy_from_slice(&wrap[32..WRAP_LEN]);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&wrap[8..32]);
    let (head, tail) = split_nonce(&nonce);
    let opened = Sealer::new(node_key, &head).open(&tail, &aad(node, image_sha256), &mut sealed);
    let result = match opened {
        Ok(plain) => {
            let mut key = [0u8; 32];
            key.copy_from_slice(plain);
            Ok(Key(key))
        }
        Err(_) => Err(Error::Open(node)),
    };
    zeroize::Zeroize::zeroize(&mut sealed);
    result
}
