//! The content-key file a supplier hands to the OEM with an encrypted image
//! (`supplier add-image --encrypt` writes it, `oem review submit --content-key` reads it):
//!
//! ```json
//! {"scheme": "ota-crypt-stream-v1", "uid": "brake-fw", "version": "1.3.0",
//!  "image_sha256": "<plaintext SHA-256, 64 hex>", "key": "<64 hex>"}
//! ```
//!
//! It names the image it opens, so the OEM refuses a key handed over for another image before
//! wrapping it for the fleet.

use crate::Key;
use serde::{Deserialize, Serialize};

/// Largest content-key file accepted.
pub const MAX_FILE: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the content-key file is {0} bytes ({MAX_FILE} at most)")]
    TooLarge(usize),
    #[error("the content-key file is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown encryption scheme {0:?} (expected ota-crypt-stream-v1)")]
    Scheme(String),
    #[error("{field}: not 64 hex digits")]
    Hex { field: &'static str },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scheme: String,
    uid: String,
    version: String,
    image_sha256: String,
    key: String,
}

/// A parsed content-key file.
#[derive(Debug)]
pub struct ContentKey {
    pub uid: String,
    pub version: String,
    /// SHA-256 of the plaintext image the key decrypts to.
    pub image_sha256: [u8; 32],
    pub key: Key,
}

fn hex32(s: &str, field: &'static str) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::Hex { field })?;
    Ok(out)
}

impl ContentKey {
    pub fn to_json(&self) -> Vec<u8> {
        let f = File {
            scheme: crate::stream::SCHEME.into(),
            uid: self.uid.clone(),
            version: self.version.clone(),
            image_sha256: hex::encode(self.image_sha256),
            key: hex::encode(self.key.0),
        };
        // Strings only: serialisation cannot fail.
        let mut out = serde_json::to_vec_pretty(&f).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse an untrusted file. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<ContentKey, Error> {
        if bytes.len() > MAX_FILE {
            return Err(Error::TooLarge(bytes.len()));
        }
        let f: File = serde_json::from_slice(bytes)?;
        if f.scheme != crate::stream::SCHEME {
            return Err(Error::Scheme(f.scheme));
        }
        Ok(ContentKey {
            image_sha256: hex32(&f.image_sha256, "image_sha256")?,
            key: Key(hex32(&f.key, "key")?),
            uid: f.uid,
            version: f.version,
        })
    }
}
