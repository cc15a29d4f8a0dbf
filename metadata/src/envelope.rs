//! The signed envelope `{"signed": {...}, "signatures": [...]}`: parsing untrusted bytes,
//! threshold verification, and producing signed files.
//!
//! Parsing keeps the exact bytes received (they are what a client stores) and the canonical
//! bytes of `signed` (what signatures cover); the typed view is derived from the same value,
//! so what is checked is what is used.

use crate::canonical::{to_canonical, to_pretty};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use crate::signing::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: KeyId,
    /// Hex-encoded signature bytes.
    pub sig: String,
}

/// A parsed, not yet verified, signed document.
#[derive(Clone, Debug)]
pub struct Envelope {
    raw: Vec<u8>,
    signed: Value,
    canonical: Vec<u8>,
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    signed: Value,
    signatures: Vec<Signature>,
}

impl Envelope {
    /// Parse `bytes` (named `what` in errors), refusing anything over `limit` bytes.
    pub fn parse(what: &str, bytes: &[u8], limit: u64) -> Result<Self> {
        let len = bytes.len() as u64;
        if len > limit {
            return Err(Error::TooLarge {
                what: what.into(),
                len,
                limit,
            });
        }
        let env: RawEnvelope = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: what.into(),
            source,
        })?;
        if !env.signed.is_object() {
            return Err(Error::malformed(what, "\"signed\" is not an object"));
        }
        let canonical = to_canonical(&env.signed).map_err(|e| {
            Error::malformed(what, format!("\"signed\" has no canonical form: {e}"))
        })?;
        Ok(Envelope {
            raw: bytes.to_vec(),
            signed: env.signed,
            canonical,
            signatures: env.signatures,
        })
    }

    /// The exact bytes this envelope was parsed from.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The canonical JSON of `signed`: the bytes the signatures cover.
    pub fn canonical_signed(&self) -> &[u8] {
        &self.canonical
    }

    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    pub fn signed_value(&self) -> &Value {
        &self.signed
    }

    /// The `_type` field of `signed`, if it is a string.
    pub fn type_name(&self) -> Option<&str> {
        self.signed.get("_type").and_then(Value::as_str)
    }

    /// Decode `signed` as `T`, after checking its `_type` is `expected`.
    pub fn decode<T: DeserializeOwned>(&self, what: &str, expected: &str) -> Result<T> {
        let found = self.type_name().unwrap_or("");
        if found != expected {
            return Err(Error::WrongType {
                role: what.into(),
                expected: expected.into(),
                found: found.into(),
            });
        }
        T::deserialize(&self.signed).map_err(|source| Error::Json {
            what: what.into(),
            source,
        })
    }

    /// Check that at least `threshold` distinct keys among `keyids` signed. Returns how many did.
    pub fn verify(
        &self,
        role: &str,
        keyids: &[KeyId],
        threshold: u32,
        keys: &BTreeMap<KeyId, Key>,
    ) -> Result<usize> {
        verify_threshold(
            role,
            &self.canonical,
            &self.signatures,
            keyids,
            threshold,
            keys,
        )
    }
}

/// Count the distinct trusted keys that signed `msg`, and fail below `threshold`.
///
/// A `signatures` list that repeats a key id is refused outright (the specification says key
/// ids MUST be unique there). Otherwise a key counts once however often it appears: a
/// repeated key id in the role, or the same key material listed under two key ids, count as
/// one. Only signatures from listed key ids are checked, so the work an attacker can cause is
/// bounded by the role's own key count, not by the number of signatures in the file.
pub fn verify_threshold(
    role: &str,
    msg: &[u8],
    signatures: &[Signature],
    keyids: &[KeyId],
    threshold: u32,
    keys: &BTreeMap<KeyId, Key>,
) -> Result<usize> {
    if threshold == 0 {
        return Err(Error::policy(role, "threshold is 0"));
    }
    let mut seen: BTreeSet<&KeyId> = BTreeSet::new();
    if let Some(dup) = signatures.iter().find(|s| !seen.insert(&s.keyid)) {
        return Err(Error::DuplicateSignature {
            role: role.into(),
            keyid: dup.keyid.0.clone(),
        });
    }
    let authorized: BTreeSet<&KeyId> = keyids.iter().collect();
    let mut signers: BTreeSet<Vec<u8>> = BTreeSet::new();
    for sig in signatures {
        if !authorized.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        let Ok(public) = key.to_public(&sig.keyid) else {
            continue;
        };
        let Ok(bytes) = hex::decode(&sig.sig) else {
            continue;
        };
        if public.verify(msg, &bytes) {
            signers.insert(public.identity());
        }
    }
    let valid = signers.len();
    if valid < threshold as usize {
        return Err(Error::Threshold {
            role: role.into(),
            valid,
            threshold,
        });
    }
    Ok(valid)
}

/// Sign `signed` with every key in `keys` and return the envelope as pretty JSON bytes.
pub fn sign_document<T: Serialize>(signed: &T, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let value = serde_json::to_value(signed).map_err(|e| Error::Canonical(e.to_string()))?;
    let canonical = to_canonical(&value)?;
    let mut signatures = Vec::with_capacity(keys.len());
    let mut seen = BTreeSet::new();
    for key in keys {
        if seen.insert(key.key_id().clone()) {
            signatures.push(Signature {
                keyid: key.key_id().clone(),
                sig: hex::encode(key.sign(&canonical)?),
            });
        }
    }
    to_pretty(&serde_json::json!({ "signed": value, "signatures": signatures }))
}
