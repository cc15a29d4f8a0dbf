//! The factory record: what an ECU is told once, at the end of its production line, and keeps
//! in a sector of its own flash: its serial, its hardware id, and the supplier keys (with the
//! threshold) its bootloader trusts until a trust document replaces them. The emulated ECU
//! (`ecu/qemu`) reads it at start-up; [`build`] writes it (the production station's side).
//!
//! Layout (big-endian): `OTAF` magic (4) · layout 1 (1) · threshold (1) · key count (1) ·
//! reserved (1) · serial (32) · hardware id (32) · per key: key id (32) · modulus length (2) ·
//! modulus · public exponent (4) · SHA-256 of everything before (32).
//!
//! The production line may also give the ECU its first trust document (see [`crate::trust`]:
//! the OEM's, for full verification and the OEM's instructions), at [`TRUST_AT`] of the flash
//! image: length (u32) · the document. The bootloader provisions it at its first start, when
//! it holds none; from then on the document, not the factory keys, decides what it accepts.

use crate::compact_manifest::{Field, ProvisionedKey, FIELD_LEN};
use rsa::{BigUint, RsaPublicKey};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"OTAF";
/// At most this many provisioned keys.
pub const MAX_KEYS: usize = 4;
/// The largest modulus accepted (RSA-4096).
const MAX_MODULUS: usize = 512;

/// A parsed factory record.
pub struct Factory {
    pub serial: Field,
    pub hardware_id: Field,
    pub threshold: u8,
    pub keys: heapless::Vec<ProvisionedKey, MAX_KEYS>,
}

/// Where the factory's trust document is in the flash image (after the factory record, the
/// state copies and the trust copies of the emulated ECU's layout).
pub const TRUST_AT: usize = 8 * 4096;

/// The trust document a factory trust area holds (`b` from [`TRUST_AT`]), if any: erased
/// flash or a length past [`crate::flash::TRUST_LEN`] is none. Its signatures are checked when
/// the bootloader provisions it.
pub fn trust_in(b: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    if len == 0 || len > crate::flash::TRUST_LEN {
        return None;
    }
    b.get(4..4 + len)
}

/// The factory trust area for `doc` (to write at [`TRUST_AT`]); `None` if it is too long.
#[cfg(feature = "std")]
pub fn trust_area(doc: &[u8]) -> Option<std::vec::Vec<u8>> {
    if doc.is_empty() || doc.len() > crate::flash::TRUST_LEN {
        return None;
    }
    let mut v = u32::try_from(doc.len()).ok()?.to_be_bytes().to_vec();
    v.extend_from_slice(doc);
    Some(v)
}

/// Parse the record at the start of `b` (the rest of the sector is ignored); `None` if it is
/// missing, damaged or malformed.
pub fn parse(b: &[u8]) -> Option<Factory> {
    let head = b.get(..8 + 2 * FIELD_LEN)?;
    if head[..4] != MAGIC || head[4] != 1 {
        return None;
    }
    let (threshold, count) = (head[5], usize::from(head[6]));
    if count == 0 || count > MAX_KEYS || threshold == 0 || usize::from(threshold) > count {
        return None;
    }
    let field = |at: usize| {
        let mut f = [0u8; FIELD_LEN];
        f.copy_from_slice(&head[at..at + FIELD_LEN]);
        Field::from_raw(f)
    };
    let (serial, hardware_id) = (field(8)?, field(8 + FIELD_LEN)?);
    let mut at = head.len();
    let mut keys = heapless::Vec::new();
    for _ in 0..count {
        let mut keyid = [0u8; 32];
        keyid.copy_from_slice(b.get(at..at + 32)?);
        let n_len = usize::from(u16::from_be_bytes([*b.get(at + 32)?, *b.get(at + 33)?]));
        if n_len == 0 || n_len > MAX_MODULUS {
            return None;
        }
        let n = b.get(at + 34..at + 34 + n_len)?;
        let e = b.get(at + 34 + n_len..at + 38 + n_len)?;
        let e = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from(e)).ok()?;
        keys.push(ProvisionedKey { keyid, key }).ok()?;
        at += 38 + n_len;
    }
    let sum = b.get(at..at + 32)?;
    if Sha256::digest(&b[..at])[..] != sum[..] {
        return None;
    }
    Some(Factory {
        serial,
        hardware_id,
        threshold,
        keys,
    })
}

/// The record for `serial` and `hardware_id` trusting `keys` (key id, RSA public key) with
/// `threshold`.
#[cfg(feature = "std")]
pub fn build(
    serial: &str,
    hardware_id: &str,
    keys: &[([u8; 32], RsaPublicKey)],
    threshold: u8,
) -> Option<std::vec::Vec<u8>> {
    use rsa::traits::PublicKeyParts;
    if keys.is_empty() || keys.len() > MAX_KEYS || threshold == 0 {
        return None;
    }
    let mut b = std::vec::Vec::new();
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&[1, threshold, u8::try_from(keys.len()).ok()?, 0]);
    b.extend_from_slice(Field::new(serial)?.as_bytes());
    b.extend_from_slice(Field::new(hardware_id)?.as_bytes());
    for (keyid, key) in keys {
        let n = key.n().to_bytes_be();
        let e_bytes = key.e().to_bytes_be();
        if e_bytes.len() > 4 {
            return None;
        }
        let mut e = [0u8; 4];
        e[4 - e_bytes.len()..].copy_from_slice(&e_bytes);
        b.extend_from_slice(keyid);
        b.extend_from_slice(&u16::try_from(n.len()).ok()?.to_be_bytes());
        b.extend_from_slice(&n);
        b.extend_from_slice(&e);
    }
    let sum = Sha256::digest(&b);
    b.extend_from_slice(&sum);
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_any_damage_is_refused() {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 1024)
            .unwrap()
            .to_public_key();
        let b = build("BRK-9", "BRAKE-A", &[([7; 32], key.clone())], 1).unwrap();
        let f = parse(&b).unwrap();
        assert_eq!(
            (f.serial.as_str(), f.hardware_id.as_str()),
            ("BRK-9", "BRAKE-A")
        );
        assert_eq!((f.threshold, f.keys.len()), (1, 1));
        assert_eq!((f.keys[0].keyid, &f.keys[0].key), ([7; 32], &key));
        // Trailing sector bytes are ignored; any flipped byte of the record is refused.
        let mut sector = b.clone();
        sector.resize(4096, 0xFF);
        assert!(parse(&sector).is_some());
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(parse(&bad).is_none(), "byte {i}");
        }
        assert!(parse(&b[..b.len() - 1]).is_none());
        assert!(parse(&[0xFF; 4096]).is_none());
    }
}
