//! The regulator's attestation repository (`ota-repo regulator …`): it pulls each image the OEM
//! sends for review, verifies and scans it, and publishes a signed verdict per image.
//!
//! Attestations are targets of the regulator's TUF repository, named
//! `<image-sha256>.attestation.json` (stored as `targets/SHA.<image-sha256>.attestation.json`),
//! each itself signed by the regulator's targets keys (the paper's Mr). A vehicle looks an
//! image up by its hash. A revocation replaces the approval under the same name, so the newest
//! targets metadata, which TUF protects from rollback, always carries the regulator's latest
//! word; once revoked, an image is never approved again by a later review.

mod attest;
mod init;
mod publish;
mod review;
mod rotate;
pub mod scan;

pub use attest::{revoke, write_attestation};
pub use init::init;
pub use publish::publish;
pub use review::{load_rules, review, Outcome, ReviewOpts, RULES};

use crate::error::Result;
use crate::supplier::FileInfo;
use crate::workdir::{self, RoleConfig};
use ota_metadata::documents::{ImageRef, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const KIND: &str = "regulator";

/// One published attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRecord {
    pub image: ImageRef,
    pub verdict: Verdict,
    /// The signed attestation file.
    pub file: FileInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub kind: String,
    pub name: String,
    pub roles: BTreeMap<String, RoleConfig>,
    /// By image SHA-256.
    #[serde(default)]
    pub attestations: BTreeMap<String, AttestationRecord>,
}

impl Settings {
    pub fn load(dir: &Path) -> Result<Self> {
        let mut s: Self = workdir::load(dir, KIND)?;
        for rc in s.roles.values_mut() {
            rc.resolve_keys(dir);
        }
        Ok(s)
    }
    pub fn save(&self, dir: &Path) -> Result<()> {
        workdir::save(dir, self)
    }
}

/// Target name of the attestation of the image with hash `sha256`.
pub fn attestation_target(sha256: &str) -> String {
    format!("{sha256}.attestation.json")
}
