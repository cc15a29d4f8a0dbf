//! The OEM's instruction to one ECU (issue 23; Uptane's partial verification, and more): which
//! release this ECU, by serial, is to install, signed by an OEM key its trust document names.
//! With it a compromised gateway can withhold updates but not choose them: an image its
//! supplier signed, the regulators approved and the OEM assigned to *another* ECU of the same
//! hardware id, or assigned earlier and since replaced, is refused.
//!
//! Layout, integers big-endian (format 1, [`LEN`] bytes):
//!
//! | offset | size | field                                                              |
//! |-------:|-----:|--------------------------------------------------------------------|
//! | 0      | 4    | magic `OTAI`                                                       |
//! | 4      | 1    | format, 1                                                          |
//! | 5      | 3    | reserved, zero                                                     |
//! | 8      | 32   | SHA-256 of the ECU's serial (ASCII)                                |
//! | 40     | 32   | SHA-256 of the compact manifest's signed body (what the supplier signed) |
//! | 72     | 8    | release counter of that manifest                                   |
//! | 80     | 4    | sequence: the OEM raises it with every new assignment of this ECU; the ECU never takes one lower than the highest it accepted |
//! | 84     | 4    | reserved, zero                                                     |
//! | 88     | 64   | Ed25519 signature over bytes 0..88, by an instruction key of the trust document |
//!
//! Why Ed25519 rather than the RSA the ECU already verifies: the OEM signs one instruction per
//! changed ECU at every publish, a million at a fleet's first; RSA-3072 signing at a few
//! milliseconds each would take an hour, Ed25519 takes seconds. Verifying costs the ECU less
//! than an RSA verification (the ECU benchmark).

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"OTAI";
pub const FORMAT: u8 = 1;
/// The signed part.
pub const BODY_LEN: usize = 88;
/// An Ed25519 signature.
pub const SIG_LEN: usize = 64;
/// A whole instruction.
pub const LEN: usize = BODY_LEN + SIG_LEN;
/// An Ed25519 public key.
pub const KEY_LEN: usize = 32;

/// Why an instruction was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not [`LEN`] bytes, another magic or format, or reserved bytes set.
    Malformed,
    /// No instruction key of the trust document signed it.
    BadSignature,
    /// It names another ECU.
    OtherEcu,
    /// It names another manifest, or another release counter.
    OtherImage,
    /// Its sequence is below the highest this ECU accepted (an older, replaced assignment).
    Stale,
}

/// What an instruction says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub serial_sha256: [u8; 32],
    pub manifest_sha256: [u8; 32],
    pub release_counter: u64,
    pub sequence: u32,
}

impl Instruction {
    /// For `serial` and the compact manifest body `manifest_body`.
    pub fn new(serial: &str, manifest_body: &[u8], release_counter: u64, sequence: u32) -> Self {
        Instruction {
            serial_sha256: Sha256::digest(serial.as_bytes()).into(),
            manifest_sha256: Sha256::digest(manifest_body).into(),
            release_counter,
            sequence,
        }
    }

    /// The signed bytes.
    pub fn body(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT;
        b[8..40].copy_from_slice(&self.serial_sha256);
        b[40..72].copy_from_slice(&self.manifest_sha256);
        b[72..80].copy_from_slice(&self.release_counter.to_be_bytes());
        b[80..84].copy_from_slice(&self.sequence.to_be_bytes());
        b
    }

    /// The whole instruction: the body and its signature.
    pub fn assemble(&self, signature: &[u8; SIG_LEN]) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..BODY_LEN].copy_from_slice(&self.body());
        out[BODY_LEN..].copy_from_slice(signature);
        out
    }

    /// Parse untrusted bytes (layout only). Never panics.
    pub fn parse(bytes: &[u8]) -> Result<(Instruction, &[u8], [u8; SIG_LEN]), Error> {
        if bytes.len() != LEN
            || bytes[0..4] != MAGIC
            || bytes[4] != FORMAT
            || bytes[5..8] != [0; 3]
            || bytes[84..88] != [0; 4]
        {
            return Err(Error::Malformed);
        }
        let mut i = Instruction {
            serial_sha256: [0; 32],
            manifest_sha256: [0; 32],
            release_counter: 0,
            sequence: 0,
        };
        i.serial_sha256.copy_from_slice(&bytes[8..40]);
        i.manifest_sha256.copy_from_slice(&bytes[40..72]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&bytes[72..80]);
        i.release_counter = u64::from_be_bytes(c);
        let mut s = [0u8; 4];
        s.copy_from_slice(&bytes[80..84]);
        i.sequence = u32::from_be_bytes(s);
        let mut sig = [0u8; SIG_LEN];
        sig.copy_from_slice(&bytes[BODY_LEN..]);
        Ok((i, &bytes[..BODY_LEN], sig))
    }
}

/// Parse `bytes` and check that one of `keys` signed it (strict Ed25519: no malleable
/// signatures, no small-order keys).
pub fn verify(bytes: &[u8], keys: &[[u8; KEY_LEN]]) -> Result<Instruction, Error> {
    let (i, body, sig) = Instruction::parse(bytes)?;
    let sig = Signature::from_bytes(&sig);
    let ok = keys
        .iter()
        .any(|k| VerifyingKey::from_bytes(k).is_ok_and(|k| k.verify_strict(body, &sig).is_ok()));
    if ok {
        Ok(i)
    } else {
        Err(Error::BadSignature)
    }
}

/// Everything the ECU checks of a verified instruction before it accepts a download: its own
/// serial, the manifest it was sent with, and a sequence not below `accepted`.
pub fn check(
    i: &Instruction,
    serial: &str,
    manifest_body: &[u8],
    release_counter: u64,
    accepted: u32,
) -> Result<(), Error> {
    let serial_sha256: [u8; 32] = Sha256::digest(serial.as_bytes()).into();
    if i.serial_sha256 != serial_sha256 {
        return Err(Error::OtherEcu);
    }
    let manifest_sha256: [u8; 32] = Sha256::digest(manifest_body).into();
    if i.manifest_sha256 != manifest_sha256 || i.release_counter != release_counter {
        return Err(Error::OtherImage);
    }
    if i.sequence < accepted {
        return Err(Error::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn signed(k: &SigningKey, i: &Instruction) -> [u8; LEN] {
        i.assemble(&k.sign(&i.body()).to_bytes())
    }

    const BODY: &[u8] = b"a compact manifest body";

    #[test]
    fn an_instruction_for_this_ecu_and_manifest_is_accepted_and_nothing_else() {
        let k = key(1);
        let keys = [k.verifying_key().to_bytes()];
        let i = Instruction::new("BRK-0001", BODY, 7, 5);
        let bytes = signed(&k, &i);
        let got = verify(&bytes, &keys).unwrap();
        assert_eq!(got, i);
        assert_eq!(check(&got, "BRK-0001", BODY, 7, 5), Ok(()));
        assert_eq!(check(&got, "BRK-0001", BODY, 7, 4), Ok(()));
        // Another ECU of the same hardware id, another manifest or counter, an older sequence.
        assert_eq!(check(&got, "BRK-0002", BODY, 7, 0), Err(Error::OtherEcu));
        assert_eq!(
            check(&got, "BRK-0001", b"other", 7, 0),
            Err(Error::OtherImage)
        );
        assert_eq!(check(&got, "BRK-0001", BODY, 8, 0), Err(Error::OtherImage));
        assert_eq!(check(&got, "BRK-0001", BODY, 7, 6), Err(Error::Stale));
    }

    #[test]
    fn a_wrong_key_a_changed_byte_or_a_bad_layout_is_refused() {
        let (k, other) = (key(1), key(2));
        let keys = [k.verifying_key().to_bytes()];
        let i = Instruction::new("BRK-0001", BODY, 7, 5);
        assert_eq!(verify(&signed(&other, &i), &keys), Err(Error::BadSignature));
        assert_eq!(verify(&signed(&k, &i), &[]), Err(Error::BadSignature));
        let good = signed(&k, &i);
        for at in [8, 40, 72, 83, 88, LEN - 1] {
            let mut b = good;
            b[at] ^= 1;
            assert_eq!(verify(&b, &keys), Err(Error::BadSignature), "byte {at}");
        }
        for at in [0, 4, 5, 84] {
            let mut b = good;
            b[at] ^= 1;
            assert_eq!(verify(&b, &keys), Err(Error::Malformed), "byte {at}");
        }
        assert_eq!(verify(&good[..LEN - 1], &keys), Err(Error::Malformed));
        // A key that is not a curve point is skipped, not a panic.
        assert_eq!(verify(&good, &[[0xff; 32]]), Err(Error::BadSignature));
    }
}
