//! Key objects as TUF writes them, key ids, and signature verification.
//!
//! Verification accepts the three schemes other TUF tooling produces
//! (`rsassa-pss-sha256`, `ed25519`, `ecdsa-sha2-nistp256`); signing lives in [`crate::signing`]
//! and is RSA only, the project's choice.

use crate::canonical::to_canonical;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

pub const RSA_KEYTYPE: &str = "rsa";
pub const RSA_SCHEME: &str = "rsassa-pss-sha256";
/// PSS salt length: the digest length, as python-tuf, tough and securesystemslib use.
pub const PSS_SALT_LEN: usize = 32;
/// Smallest RSA modulus accepted anywhere; smaller keys are refused, not merely warned about.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: bounds the cost an attacker-supplied key can impose. The rsa
/// crate's key parsing (used for every PEM, and by the ECU) stops at 4096 bits, so larger keys
/// are refused when made rather than generated and then unusable.
pub const MAX_RSA_BITS: usize = 4096;

/// RSA verification by ring, as tough verifies: about ten times the rsa crate's speed on the
/// same core (the fleet ingest checks three signatures per report; a gateway checks every
/// role's). The same RSASSA-PSS (SHA-256, MGF1-SHA-256, salt of the digest's length, the
/// only salt our signers and python-tuf's use) and PKCS#1 v1.5 checks; the modulus range
/// matches [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`], and parsing refuses the keys ring would never
/// accept a signature from. Signing and the ECU's `no_std` verifier stay on the rsa crate; a
/// test checks both verifiers agree on valid, corrupted and re-salted signatures.
fn verify_rsa(
    key: &rsa::RsaPublicKey,
    params: &'static ring::signature::RsaParameters,
    msg: &[u8],
    sig: &[u8],
) -> bool {
    use rsa::traits::PublicKeyParts;
    ring::signature::RsaPublicKeyComponents {
        n: key.n().to_bytes_be(),
        e: key.e().to_bytes_be(),
    }
    .verify(params, msg, sig)
    .is_ok()
}

fn is_odd(n: &rsa::BigUint) -> bool {
    n.to_bytes_le().first().is_some_and(|b| b & 1 == 1)
}

/// A key id: whatever string the delegating role lists. Ours are the SHA-256 of the canonical
/// key object, but other tools' ids are taken as listed, never recomputed (see REFERENCES.md).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Empty for a key type whose `keyval` has no `public` (one this client does not know):
    /// such a key is kept as listed and never verifies, as the specification asks of unknown
    /// keys, instead of making the whole document unreadable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A public key object, `{"keytype", "scheme", "keyval": {"public"}}`, plus whatever else the
/// producing tool put there (e.g. `keyid_hash_algorithms`), kept so key ids stay reproducible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Key {
    pub fn rsa(public_pem: String) -> Self {
        Key {
            keytype: RSA_KEYTYPE.into(),
            scheme: RSA_SCHEME.into(),
            keyval: KeyVal {
                public: public_pem,
                extra: BTreeMap::new(),
            },
            extra: BTreeMap::new(),
        }
    }

    /// SHA-256 of the canonical key object, hex: the id this project gives its keys.
    pub fn key_id(&self) -> Result<KeyId> {
        Ok(KeyId(hex::encode(Sha256::digest(to_canonical(self)?))))
    }

    /// Parse into a key that can verify. Fails for unknown schemes and malformed material.
    pub fn to_public(&self, keyid: &KeyId) -> Result<PublicKey> {
        PublicKey::from_key(self, keyid)
    }
}

/// A parsed public key, ready to verify.
#[derive(Clone, Debug)]
pub enum PublicKey {
    Rsa(Box<rsa::RsaPublicKey>),
    /// `rsa-pkcs1v15-sha256`, which some TUF tooling signs with; verified, never produced.
    RsaPkcs1v15(Box<rsa::RsaPublicKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn from_key(key: &Key, keyid: &KeyId) -> Result<Self> {
        let bad = |reason: String| Error::BadKey {
            keyid: keyid.0.clone(),
            reason,
        };
        let public = key.keyval.public.trim();
        match (key.keytype.as_str(), key.scheme.as_str()) {
            ("rsa", "rsassa-pss-sha256" | "rsa-pkcs1v15-sha256") => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::pkcs8::DecodePublicKey;
                use rsa::traits::PublicKeyParts;
                // The PEM's own label chooses the parser, so the error is about this key.
                let k = if public.contains("-----BEGIN RSA PUBLIC KEY-----") {
                    rsa::RsaPublicKey::from_pkcs1_pem(public).map_err(|e| e.to_string())
                } else {
                    rsa::RsaPublicKey::from_public_key_pem(public).map_err(|e| e.to_string())
                }
                .map_err(|e| {
                    bad(format!(
                        "not an RSA public key in PEM (RSA keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits): {e}"
                    ))
                })?;
                let bits = k.n().bits();
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(bad(format!(
                        "RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}"
                    )));
                }
                // The verifier (ring) refuses every signature of a key with an even modulus or
                // an even or tiny exponent: such a key is refused here, where the error can
                // say why, rather than listed and then never able to sign.
                if !is_odd(k.n()) || !is_odd(k.e()) || k.e() < &rsa::BigUint::from(3u8) {
                    return Err(bad(
                        "not a usable RSA public key (the modulus and exponent must be odd, the exponent at least 3)".into(),
                    ));
                }
                Ok(if key.scheme == RSA_SCHEME {
                    PublicKey::Rsa(Box::new(k))
                } else {
                    PublicKey::RsaPkcs1v15(Box::new(k))
                })
            }
            ("ed25519", "ed25519") => {
                let raw =
                    hex::decode(public).map_err(|e| bad(format!("ed25519 key is not hex: {e}")))?;
                let raw: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| bad("ed25519 key is not 32 bytes".into()))?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| bad(format!("ed25519 key: {e}")))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                use p256::pkcs8::DecodePublicKey;
                let k = if public.starts_with("-----BEGIN") {
                    p256::ecdsa::VerifyingKey::from_public_key_pem(public)
                        .map_err(|e| bad(format!("P-256 PEM: {e}")))?
                } else {
                    let raw = hex::decode(public)
                        .map_err(|e| bad(format!("P-256 key is neither PEM nor hex: {e}")))?;
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw)
                        .map_err(|e| bad(format!("P-256 point: {e}")))?
                };
                Ok(PublicKey::EcdsaP256(k))
            }
            (t, s) => Err(Error::UnsupportedKey {
                keytype: t.into(),
                scheme: s.into(),
            }),
        }
    }

    /// The key size in bits: the RSA modulus, or the curve's 256 bits.
    pub fn bits(&self) -> usize {
        use rsa::traits::PublicKeyParts;
        match self {
            PublicKey::Rsa(k) | PublicKey::RsaPkcs1v15(k) => k.n().bits(),
            PublicKey::Ed25519(_) | PublicKey::EcdsaP256(_) => 256,
        }
    }

    /// True when `sig` is a valid signature of `msg`. Never panics on attacker-chosen input.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => {
                verify_rsa(k, &ring::signature::RSA_PSS_2048_8192_SHA256, msg, sig)
            }
            PublicKey::RsaPkcs1v15(k) => {
                verify_rsa(k, &ring::signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            }
            PublicKey::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                k.verify_strict(msg, &sig).is_ok()
            }
            PublicKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier;
                let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
                    return false;
                };
                k.verify(msg, &sig).is_ok()
            }
        }
    }

    /// Bytes that identify the key material itself, whatever id or PEM spelling it was listed
    /// under: two key ids for the same key must never count twice toward a threshold.
    pub fn identity(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa(k) | PublicKey::RsaPkcs1v15(k) => {
                use rsa::traits::PublicKeyParts;
                let mut v = b"rsa:".to_vec();
                v.extend(k.n().to_bytes_be());
                v.push(b':');
                v.extend(k.e().to_bytes_be());
                v
            }
            PublicKey::Ed25519(k) => [b"ed25519:".as_slice(), k.as_bytes()].concat(),
            PublicKey::EcdsaP256(k) => {
                [b"p256:".as_slice(), k.to_encoded_point(true).as_bytes()].concat()
            }
        }
    }
}
