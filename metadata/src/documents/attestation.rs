//! A regulator's attestation (the paper's Mr = (Mi, Rpk, Rsign)): its verdict on one *release*,
//! with the findings.
//!
//! An attestation binds the whole image manifest, not just the image bytes: the supplier (as
//! the OEM pins it), uid, version, release counter, hardware ids, the image's length and hash,
//! and the hash of the manifest's signed body. Approved bytes re-released under another
//! version, counter, hardware id or supplier are a new release and need a new review.

use super::ImageManifest;
use crate::error::{Error, Result};
use crate::roles::{sha256_of, Hashes};
use crate::time::DateTime;
use crate::Envelope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approved,
    Rejected,
    /// Withdraws an earlier approval; outranks it.
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
}

/// One release of one image, as a regulator attests it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The supplier, by the name the OEM pins it under.
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
    /// Target name of the image in the supplier's repository.
    pub target: String,
    pub length: u64,
    pub hashes: Hashes,
    /// SHA-256 (hex) of the canonical JSON of the image manifest's `signed` body: it binds
    /// every field the supplier signed, and stays the same when the supplier re-signs the
    /// manifest with new keys.
    pub manifest_sha256: String,
    /// For an encrypted image (`length` and `hashes` are then the ciphertext's): the
    /// plaintext's length and hashes, what the ECU receives and verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<Plaintext>,
}

/// The plaintext of an encrypted release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plaintext {
    pub length: u64,
    pub hashes: Hashes,
}

impl Release {
    /// The release a verified image manifest describes, from supplier `supplier` (the OEM's
    /// name for it). `manifest` is the manifest's envelope.
    pub fn of(supplier: &str, manifest: &Envelope) -> Result<Self> {
        let m: ImageManifest = manifest.decode("image manifest", ImageManifest::TYPE)?;
        Ok(Release {
            supplier: supplier.into(),
            uid: m.uid,
            version: m.version,
            release_counter: m.release_counter,
            hardware_ids: m.hardware_ids,
            target: m.target,
            length: m.length,
            hashes: m.hashes,
            manifest_sha256: hex::encode(Sha256::digest(manifest.canonical_signed())),
            plaintext: m.encryption.map(|e| Plaintext {
                length: e.length,
                hashes: e.hashes,
            }),
        })
    }

    /// The length and SHA-256 of what the ECU receives: the plaintext of an encrypted
    /// release, else the image itself.
    pub fn received(&self) -> Result<(u64, [u8; 32])> {
        match &self.plaintext {
            Some(p) => Ok((p.length, sha256_of(&p.hashes, "release plaintext")?)),
            None => Ok((self.length, sha256_of(&self.hashes, &self.target)?)),
        }
    }

    /// The SHA-256s (hex, lower case) of the bytes of this release: the image's and, for an
    /// encrypted release, its plaintext's. A veto on any of them vetoes the release.
    pub fn content_sha256s(&self) -> Result<Vec<String>> {
        let mut out = vec![self.image_sha256()?];
        if let Some(p) = &self.plaintext {
            out.push(hex::encode(sha256_of(&p.hashes, "release plaintext")?));
        }
        Ok(out)
    }

    /// The image's SHA-256 (hex, lower case).
    pub fn image_sha256(&self) -> Result<String> {
        Ok(hex::encode(sha256_of(&self.hashes, &self.target)?))
    }

    /// The target name of this release's attestation in a regulator repository.
    pub fn attestation_target(&self) -> String {
        attestation_target(&self.manifest_sha256)
    }

    /// The first field in which `other` differs from this release: (field, ours, theirs).
    pub fn mismatch(&self, other: &Release) -> Option<(&'static str, String, String)> {
        let fields: [(&'static str, String, String); 10] = [
            ("supplier", self.supplier.clone(), other.supplier.clone()),
            ("uid", self.uid.clone(), other.uid.clone()),
            ("version", self.version.clone(), other.version.clone()),
            (
                "release counter",
                self.release_counter.to_string(),
                other.release_counter.to_string(),
            ),
            (
                "hardware ids",
                format!("{:?}", self.hardware_ids),
                format!("{:?}", other.hardware_ids),
            ),
            ("target", self.target.clone(), other.target.clone()),
            ("length", self.length.to_string(), other.length.to_string()),
            (
                "sha256",
                format!("{:?}", self.hashes.get("sha256")),
                format!("{:?}", other.hashes.get("sha256")),
            ),
            (
                "manifest hash",
                self.manifest_sha256.clone(),
                other.manifest_sha256.clone(),
            ),
            (
                "plaintext",
                format!("{:?}", self.plaintext),
                format!("{:?}", other.plaintext),
            ),
        ];
        fields.into_iter().find(|(_, a, b)| a != b)
    }
}

/// Target name of the attestation of the release whose manifest body hashes to
/// `manifest_sha256`.
pub fn attestation_target(manifest_sha256: &str) -> String {
    format!("{manifest_sha256}.attestation.json")
}

/// Target name of a regulator's veto on the bytes whose SHA-256 is `content_sha256`: its
/// rejection or revocation of a release of those bytes (the attestation itself, listed again
/// under this name). A veto follows the bytes, not the label: the same bytes released again
/// under another version, counter or hardware id are vetoed by it too, whether or not the
/// regulator has reviewed the new release yet.
pub fn veto_target(content_sha256: &str) -> String {
    format!("{}.veto.json", content_sha256.to_ascii_lowercase())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub regulator: String,
    pub release: Release,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub issued: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The field of an approving attestation that carries the regulator's compact approval for
/// full-verification ECUs: a list of `{"keyid": HEX, "sig": HEX}`, signatures over the
/// message of `ota_ecu::attestation::message` for the release's compact manifest body.
pub const COMPACT_APPROVAL_FIELD: &str = "compact_approval";

/// One compact approval signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactApproval {
    pub keyid: String,
    pub sig: String,
}

impl Attestation {
    pub const TYPE: &'static str = "attestation";

    /// The compact approval signatures this attestation carries (none if absent or malformed).
    pub fn compact_approval(&self) -> Vec<CompactApproval> {
        self.extra
            .get(COMPACT_APPROVAL_FIELD)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Check that this attestation is about exactly `release`, field by field.
    pub fn check_release(&self, release: &Release) -> Result<()> {
        match self.release.mismatch(release) {
            None => Ok(()),
            Some((field, attested, wanted)) => Err(Error::Mismatch {
                what: format!("attestation by {}", self.regulator),
                field,
                found: attested,
                expected: wanted,
            }),
        }
    }
}
