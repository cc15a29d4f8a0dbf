//! The compact attestation bundle: the regulators' approval of one compact manifest, in the
//! form a full-verification ECU checks (see [`crate::trust::Mode::Full`]).
//!
//! Each regulator that approves a release signs, besides its JSON attestation, the 40-byte
//! message `OTAA` · format version 1 · three zero bytes · SHA-256 of the compact manifest's
//! signed body (its 248 bytes: uid, version, release counter, length, image SHA-256 and
//! hardware ids), RSASSA-PSS-SHA256 with a 32-byte salt. The gateway gathers these signatures
//! into a bundle: count (1, 1..=4) · per signature: key id (32), signature length (2, ≤ 512),
//! bytes. The ECU rebuilds the message from the manifest it verified and requires a threshold
//! of distinct regulator keys of its trust document.

use crate::compact_manifest::{
    parse_signatures, verify_threshold, SignatureEntry, SignatureListError, BODY_LEN,
    MAX_SIGNATURES, MAX_SIG_LEN,
};
use crate::trust::KeySet;
use heapless::Vec;
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"OTAA";
pub const FORMAT_VERSION: u8 = 1;
/// Length of the signed message.
pub const MESSAGE_LEN: usize = 40;
/// Largest well-formed bundle.
pub const MAX_LEN: usize = 1 + MAX_SIGNATURES * (34 + MAX_SIG_LEN);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Longer than a bundle can be.
    TrailingBytes,
    /// The signature list is malformed.
    Signatures(SignatureListError),
    /// Fewer distinct regulator keys approved than the threshold.
    Threshold { valid: u8, threshold: u8 },
}

impl From<SignatureListError> for Error {
    fn from(e: SignatureListError) -> Error {
        Error::Signatures(e)
    }
}

/// The message a regulator signs to approve the compact manifest whose body is `body`.
pub fn message(body: &[u8; BODY_LEN]) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[0..4].copy_from_slice(&MAGIC);
    m[4] = FORMAT_VERSION;
    let h: [u8; 32] = Sha256::digest(body).into();
    m[8..40].copy_from_slice(&h);
    m
}

/// Parse a bundle (untrusted bytes; never panics).
pub fn parse(bytes: &[u8]) -> Result<Vec<SignatureEntry, MAX_SIGNATURES>, Error> {
    if bytes.len() > MAX_LEN {
        return Err(Error::TrailingBytes);
    }
    Ok(parse_signatures(bytes)?)
}

/// Whether `bundle` carries approvals of `body` by a threshold of distinct `regulators`.
pub fn verify(bundle: &[u8], body: &[u8; BODY_LEN], regulators: &KeySet) -> Result<(), Error> {
    let sigs = parse(bundle)?;
    verify_threshold(
        &message(body),
        &sigs,
        &regulators.keys,
        regulators.threshold,
    )
    .map_err(|e| match e {
        crate::compact_manifest::Error::Threshold { valid, threshold } => {
            Error::Threshold { valid, threshold }
        }
        _ => Error::Threshold {
            valid: 0,
            threshold: regulators.threshold,
        },
    })
}

/// Serialize signatures (key id, signature) into a bundle.
pub fn assemble(signatures: &[([u8; 32], &[u8])]) -> alloc::vec::Vec<u8> {
    let mut b = alloc::vec::Vec::new();
    b.push(u8::try_from(signatures.len()).unwrap_or(u8::MAX));
    for (keyid, sig) in signatures {
        b.extend_from_slice(keyid);
        b.extend_from_slice(&u16::try_from(sig.len()).unwrap_or(u16::MAX).to_be_bytes());
        b.extend_from_slice(sig);
    }
    b
}
