//! RSA private keys: loading them from PEM, generating them, and signing with RSASSA-PSS-SHA256.

use crate::error::{Error, Result};
use crate::keys::{Key, KeyId, MAX_RSA_BITS, MIN_RSA_BITS, PSS_SALT_LEN};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::RandomizedSigner;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

/// An RSA private key that signs as `rsassa-pss-sha256`, with its public key object and id
/// computed once.
#[derive(Clone)]
pub struct SigningKey {
    key: rsa::RsaPrivateKey,
    public: Key,
    keyid: KeyId,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private material.
        write!(f, "SigningKey({})", self.keyid)
    }
}

impl SigningKey {
    /// Generate a fresh key of `bits` bits.
    pub fn generate(bits: usize) -> Result<Self> {
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || !bits.is_multiple_of(8) {
            return Err(Error::PrivateKey(format!(
                "{bits} bits: choose a multiple of 8 between {MIN_RSA_BITS} and {MAX_RSA_BITS} (3072 recommended)"
            )));
        }
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
            .map_err(|e| Error::PrivateKey(format!("key generation failed: {e}")))?;
        Self::from_rsa(key)
    }

    /// Load a private key from PEM: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    /// Other kinds get an error that says what was found instead.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let label = pem
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| Error::PrivateKey("not a PEM file (no -----BEGIN line)".into()))?;
        let key = match label {
            "PRIVATE KEY" => {
                // Named by the algorithm the file holds: the rsa crate's own error gives the
                // OID it expected (RSA's), not the one found.
                if let Ok(k) = crate::keyfile::PemKey::parse(pem) {
                    if k.oid != crate::keyfile::RSA_OID {
                        return Err(Error::PrivateKey(format!(
                            "PKCS#8 key is {}, not RSA; ota-repo signs with RSA keys only",
                            k.algorithm()
                        )));
                    }
                }
                rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| {
                    Error::PrivateKey(format!(
                    "PKCS#8 key is not RSA or is damaged ({e}); ota-repo signs with RSA keys only"
                ))
                })?
            }
            "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| Error::PrivateKey(format!("damaged PKCS#1 RSA key: {e}")))?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::PrivateKey(
                    "the key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)"
                        .into(),
                ))
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(Error::PrivateKey(
                    "this is a public key; signing needs the private key".into(),
                ))
            }
            other => {
                return Err(Error::PrivateKey(format!(
                    "PEM holds {other:?}, not an RSA private key"
                )))
            }
        };
        Self::from_rsa(key)
    }

    fn from_rsa(key: rsa::RsaPrivateKey) -> Result<Self> {
        let bits = key.n().bits();
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(Error::PrivateKey(format!(
                "RSA key of {bits} bits; use {MIN_RSA_BITS}..={MAX_RSA_BITS}"
            )));
        }
        key.validate()
            .map_err(|e| Error::PrivateKey(format!("inconsistent RSA key: {e}")))?;
        let pem = public_pem(&key.to_public_key()).map_err(Error::PrivateKey)?;
        let public = Key::rsa(pem);
        let keyid = public.key_id()?;
        Ok(SigningKey { key, public, keyid })
    }

    /// PKCS#8 PEM of the private key, for `key generate`.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| Error::PrivateKey(e.to_string()))
    }

    pub fn public(&self) -> &Key {
        &self.public
    }

    pub fn key_id(&self) -> &KeyId {
        &self.keyid
    }

    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// The raw RSA public key (the ECU provisioning format uses its modulus and exponent).
    pub fn rsa_public(&self) -> rsa::RsaPublicKey {
        self.key.to_public_key()
    }

    /// Sign `msg` with RSASSA-PSS, SHA-256, MGF1-SHA-256 and a 32-byte salt.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let signer = rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(
            self.key.clone(),
            PSS_SALT_LEN,
        );
        let sig = signer
            .try_sign_with_rng(&mut rand_core::OsRng, msg)
            .map_err(|e| Error::Sign(e.to_string()))?;
        Ok(Box::<[u8]>::from(sig).into_vec())
    }
}

/// SPKI PEM (LF line endings) of an RSA public key: the `keyval.public` this project writes.
pub fn public_pem(k: &rsa::RsaPublicKey) -> Result<String, String> {
    k.to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())
}
