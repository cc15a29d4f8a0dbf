//! Signing the compact manifest (its layout and parser live with the ECU, in
//! `ota_ecu::compact_manifest`, so the ECU and the publishers cannot drift apart).

use crate::error::{Error, Result};
use crate::keys::KeyId;
use crate::signing::SigningKey;
pub use ota_ecu::compact_manifest::{Body, CompactManifest, ProvisionedKey, SignatureEntry};
use ota_ecu::compact_manifest::{MAX_SIGNATURES, MAX_SIG_LEN};

/// The 32 raw bytes of a hex SHA-256 key id, as the compact form carries it.
pub fn keyid_bytes(id: &KeyId) -> Result<[u8; 32]> {
    hex::decode(&id.0)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::malformed("key id", format!("{id} is not a 32-byte hex id")))
}

/// Sign `body` with each key and return the encoded compact manifest.
pub fn sign_compact(body: &Body, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    if keys.is_empty() || keys.len() > MAX_SIGNATURES {
        return Err(Error::malformed(
            "compact manifest",
            format!("{} signing keys; 1 to {MAX_SIGNATURES} allowed", keys.len()),
        ));
    }
    let body_bytes = body.encode();
    let mut signatures = heapless::Vec::new();
    for key in keys {
        let sig = key.sign(&body_bytes)?;
        let sig = heapless::Vec::<u8, MAX_SIG_LEN>::from_slice(&sig).map_err(|_| {
            Error::malformed(
                "compact manifest",
                "signature over 512 bytes (key over 4096 bits)",
            )
        })?;
        signatures
            .push(SignatureEntry {
                keyid: keyid_bytes(key.key_id())?,
                sig,
            })
            .map_err(|_| Error::malformed("compact manifest", "too many signatures"))?;
    }
    let m = CompactManifest {
        body: body.clone(),
        body_bytes,
        signatures,
    };
    Ok(m.encode().to_vec())
}

/// Parse compact-manifest bytes with the ECU's own parser.
pub fn parse_compact(bytes: &[u8]) -> Result<CompactManifest> {
    CompactManifest::parse(bytes).map_err(Error::Compact)
}
