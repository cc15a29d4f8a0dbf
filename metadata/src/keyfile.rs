//! Key files in PEM: which algorithm a file holds (by the OID of its PKCS#8 or SPKI algorithm
//! identifier, the one found, never the one expected), and the TUF key object of its public
//! half for the three key types verification accepts.
//!
//! The `rsa` crate reports a key of another algorithm with the OID it *expected*, RSA's, so a
//! user holding an Ed25519 key would read "unsupported algorithm OID 1.2.840.113549.1.1.1".
//! Everything here names the OID actually in the file.

use crate::error::{Error, Result};
use crate::keys::{Key, KeyVal, RSA_KEYTYPE, RSA_SCHEME};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::der::pem;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding, PrivateKeyInfo};
use std::collections::BTreeMap;

pub const RSA_OID: &str = "1.2.840.113549.1.1.1";
pub const ED25519_OID: &str = "1.3.101.112";
/// `id-ecPublicKey`; the curve is in the parameters.
pub const EC_OID: &str = "1.2.840.10045.2.1";
/// The NIST P-256 curve (`prime256v1`).
pub const P256_OID: &str = "1.2.840.10045.3.1.7";

/// The name of a key algorithm, by OID, for messages.
pub fn algorithm_name(oid: &str) -> &'static str {
    match oid {
        RSA_OID => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        ED25519_OID => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        EC_OID => "EC",
        "1.2.840.10040.4.1" => "DSA",
        _ => "unknown",
    }
}

/// What a PEM key file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemKey {
    /// A private key (the public half is derived), or a public one.
    pub private: bool,
    /// The OID of its algorithm identifier, dotted.
    pub oid: String,
    /// The DER inside the PEM.
    pub der: Vec<u8>,
}

impl PemKey {
    /// Decode a PKCS#8 private key (`PRIVATE KEY`), an SPKI public key (`PUBLIC KEY`) or a
    /// PKCS#1 RSA key (`RSA PRIVATE KEY`, `RSA PUBLIC KEY`).
    pub fn parse(text: &str) -> Result<PemKey> {
        let bad = |reason: String| Error::Malformed {
            what: "key file".into(),
            reason,
        };
        // The PEM decoder's own words for these ("invalid data (NUL byte)") name nothing a
        // user can act on.
        if text.trim().is_empty() {
            return Err(bad("the file is empty".into()));
        }
        if !text.contains("-----BEGIN ") {
            return Err(bad(
                "no PEM block (a \"-----BEGIN …-----\" line) in it: not a PEM key".into(),
            ));
        }
        let (label, der) = pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| bad(format!("not a PEM key ({e})")))?;
        let (private, oid) = match label {
            "PRIVATE KEY" => {
                let info = PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| bad(format!("damaged PKCS#8 private key: {e}")))?;
                (true, info.algorithm.oid.to_string())
            }
            "PUBLIC KEY" => {
                let spki = SubjectPublicKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| bad(format!("damaged public key: {e}")))?;
                (false, spki.algorithm.oid.to_string())
            }
            "RSA PRIVATE KEY" => (true, RSA_OID.to_string()),
            "RSA PUBLIC KEY" => (false, RSA_OID.to_string()),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad(
                    "the key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)"
                        .into(),
                ))
            }
            "EC PRIVATE KEY" => {
                return Err(bad(
                    "an EC private key in SEC1 form; convert it to PKCS#8 first (openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY8)"
                        .into(),
                ))
            }
            other => return Err(bad(format!("PEM holds {other:?}, not a key"))),
        };
        Ok(PemKey { private, oid, der })
    }

    /// E.g. `Ed25519 (OID 1.3.101.112)`.
    pub fn algorithm(&self) -> String {
        format!("{} (OID {})", algorithm_name(&self.oid), self.oid)
    }

    /// The TUF key object of the public half, as other TUF tooling writes it: RSA as SPKI PEM
    /// (`rsa`/`rsassa-pss-sha256`, normalised as this project lists its keys), Ed25519 as hex
    /// (`ed25519`/`ed25519`), P-256 as SPKI PEM (`ecdsa`/`ecdsa-sha2-nistp256`).
    pub fn public_key(&self) -> Result<Key> {
        match (self.oid.as_str(), self.private) {
            (RSA_OID, true) => Ok(Key::rsa(self.rsa_private_public_pem()?)),
            (RSA_OID, false) => Ok(tuf_key(RSA_KEYTYPE, RSA_SCHEME, self.rsa_public_pem()?)),
            (ED25519_OID, private) => {
                let raw = if private {
                    self.ed25519_seed_public()?
                } else {
                    self.ed25519_spki_public()?
                };
                Ok(tuf_key("ed25519", "ed25519", hex::encode(raw)))
            }
            (EC_OID, private) => Ok(tuf_key(
                "ecdsa",
                "ecdsa-sha2-nistp256",
                self.p256_public_pem(private)?,
            )),
            (other, _) => Err(Error::Malformed {
                what: "key file".into(),
                reason: format!(
                    "holds a {} key (OID {other}); TUF keys here are RSA, Ed25519 or ECDSA P-256",
                    algorithm_name(other)
                ),
            }),
        }
    }

    /// Why this key is no key of its algorithm.
    fn bad(&self, reason: String) -> Error {
        Error::Malformed {
            what: format!("{} key", self.algorithm()),
            reason,
        }
    }

    /// An RSA private key's public half as SPKI PEM; the key in PKCS#8, else in PKCS#1.
    fn rsa_private_public_pem(&self) -> Result<String> {
        let bad = |reason: String| self.bad(reason);
        let k = if let Ok(info) = PrivateKeyInfo::try_from(self.der.as_slice()) {
            rsa::RsaPrivateKey::try_from(info).map_err(|e| bad(e.to_string()))?
        } else {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_der(&self.der).map_err(|e| bad(e.to_string()))?
        };
        crate::signing::public_pem(&k.to_public_key()).map_err(bad)
    }

    /// An RSA public key as SPKI PEM; the key in SPKI, else in PKCS#1.
    fn rsa_public_pem(&self) -> Result<String> {
        let bad = |reason: String| self.bad(reason);
        let k = rsa::RsaPublicKey::from_public_key_der(&self.der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&self.der))
            .map_err(|e| bad(e.to_string()))?;
        crate::signing::public_pem(&k).map_err(bad)
    }

    /// An Ed25519 private key's public key: the private key is an OCTET STRING holding the
    /// 32-byte seed (RFC 8410), from which the public key is derived.
    fn ed25519_seed_public(&self) -> Result<[u8; 32]> {
        let bad = |reason: String| self.bad(reason);
        let info = PrivateKeyInfo::try_from(self.der.as_slice()).map_err(|e| bad(e.to_string()))?;
        let seed: [u8; 32] = match info.private_key {
            [0x04, 0x20, seed @ ..] => seed
                .try_into()
                .map_err(|_| bad("the seed is not 32 bytes".into()))?,
            _ => return Err(bad("the seed is not an OCTET STRING".into())),
        };
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes())
    }

    /// An Ed25519 public key: the 32 bytes of its SPKI.
    fn ed25519_spki_public(&self) -> Result<[u8; 32]> {
        let bad = |reason: String| self.bad(reason);
        let spki = SubjectPublicKeyInfoRef::try_from(self.der.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        spki.subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("the public key is not 32 bytes".into()))
    }

    /// An EC key's public key as SPKI PEM. Only P-256 is a TUF key here: a key on another
    /// curve is refused naming that curve (the p256 crate's error names P-256's own OID as the
    /// unsupported one).
    fn p256_public_pem(&self, private: bool) -> Result<String> {
        let bad = |reason: String| self.bad(reason);
        if let Some(curve) = self.ec_curve().filter(|c| c != P256_OID) {
            return Err(bad(format!(
                "on the curve {} (OID {curve}); TUF's ECDSA keys here are P-256 (OID {P256_OID})",
                curve_name(&curve)
            )));
        }
        let public = if private {
            use p256::pkcs8::DecodePrivateKey;
            p256::SecretKey::from_pkcs8_der(&self.der)
                .map_err(|e| bad(format!("not a P-256 key: {e}")))?
                .public_key()
        } else {
            p256::PublicKey::from_public_key_der(&self.der)
                .map_err(|e| bad(format!("not a P-256 key: {e}")))?
        };
        public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| bad(e.to_string()))
    }
}

/// A TUF key object with no extra fields.
fn tuf_key(keytype: &str, scheme: &str, public: String) -> Key {
    Key {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval: KeyVal {
            public,
            extra: BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    }
}

fn curve_name(oid: &str) -> &'static str {
    match oid {
        P256_OID => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        _ => "unknown",
    }
}

impl PemKey {
    /// The named curve of an EC key (its algorithm's parameters), dotted.
    fn ec_curve(&self) -> Option<String> {
        let params = if self.private {
            PrivateKeyInfo::try_from(self.der.as_slice())
                .ok()?
                .algorithm
                .parameters_oid()
                .ok()?
        } else {
            SubjectPublicKeyInfoRef::try_from(self.der.as_slice())
                .ok()?
                .algorithm
                .parameters_oid()
                .ok()?
        };
        Some(params.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFwYhMFkykX9dVIgfXlRKSRjg+4Sf6i7cFFlA8GFJeLG\n-----END PRIVATE KEY-----\n";

    #[test]
    fn ed25519_is_named_by_its_own_oid() {
        let k = PemKey::parse(ED25519_PRIVATE).unwrap();
        assert_eq!(k.oid, ED25519_OID);
        assert_eq!(k.algorithm(), "Ed25519 (OID 1.3.101.112)");
        let public = k.public_key().unwrap();
        assert_eq!(
            (public.keytype.as_str(), public.scheme.as_str()),
            ("ed25519", "ed25519")
        );
        assert_eq!(public.keyval.public.len(), 64);
        public.to_public(&public.key_id().unwrap()).unwrap();
    }

    #[test]
    fn rsa_private_and_public_halves_give_one_key() {
        let k = crate::SigningKey::generate(2048).unwrap();
        let private = PemKey::parse(&k.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(&private.public_key().unwrap(), k.public());
        let public = PemKey::parse(&k.public().keyval.public).unwrap();
        assert!(!public.private);
        assert_eq!(&public.public_key().unwrap(), k.public());
    }
}
