//! The regulator's attestation repository (`ota-repo regulator …`): it pulls each image the OEM
//! sends for review, verifies and scans it, and publishes a signed verdict per image.
//!
//! Attestations are targets of the regulator's TUF repository, one per *release*, named
//! `<manifest-sha256>.attestation.json` after the hash of the image manifest's signed body
//! (stored as `targets/SHA.<manifest-sha256>.attestation.json`), each itself signed by the
//! regulator's targets keys (the paper's Mr). It binds the supplier, uid, version, release
//! counter, hardware ids, the image's length and hash and the manifest hash
//! ([`ota_metadata::documents::Release`]); a vehicle looks it up by the manifest it verified and
//! checks every field. A re-release of the same bytes is a new release and is reviewed anew.
//!
//! A revocation replaces the approval under the same name, so the newest targets metadata,
//! which TUF protects from rollback, always carries the regulator's latest word. Revoking an
//! image revokes every release of its bytes, and a later release of revoked bytes is rejected.

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
use ota_metadata::documents::{Release, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const KIND: &str = "regulator";

/// One published attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationRecord {
    pub release: Release,
    pub verdict: Verdict,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signed attestation file.
    pub file: FileInfo,
    /// The SHA-256s of the bytes this rejection or revocation vetoes (published as
    /// `<sha>.veto.json`, the same signed file): the image's, and an encrypted image's
    /// plaintext's when this regulator decrypted it. Empty for an approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vetoes: Vec<String>,
}

impl AttestationRecord {
    /// The bytes this record vetoes (a record written before vetoes were recorded: its image's).
    pub fn vetoed(&self) -> Vec<String> {
        if self.verdict == Verdict::Approved {
            return Vec::new();
        }
        if !self.vetoes.is_empty() {
            return self.vetoes.clone();
        }
        self.release.image_sha256().into_iter().collect()
    }
}

/// `ota-repo.json` of a regulator. Unknown fields are refused: a misspelt setting would
/// otherwise be ignored without a word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kind: String,
    pub name: String,
    pub roles: BTreeMap<String, RoleConfig>,
    /// By release (the manifest hash, [`Release::manifest_sha256`]).
    #[serde(default)]
    pub attestations: BTreeMap<String, AttestationRecord>,
}

impl Settings {
    pub fn load(dir: &Path) -> Result<Self> {
        let mut s: Self = workdir::load(dir, KIND)?;
        for (name, rc) in s.roles.iter_mut() {
            workdir::check_role(dir, name, rc)?;
            rc.resolve_keys(dir);
        }
        Ok(s)
    }
    pub fn save(&self, dir: &Path) -> Result<()> {
        workdir::save(dir, self)
    }
}

impl Settings {
    /// The revocation of an earlier release of the bytes with hash `sha256` (an image's, or
    /// an encrypted image's plaintext's), if any.
    pub fn revoked_image(&self, sha256: &str) -> Option<&AttestationRecord> {
        self.attestations.values().find(|r| {
            r.verdict == Verdict::Revoked
                && r.release
                    .content_sha256s()
                    .is_ok_and(|c| c.iter().any(|c| c.eq_ignore_ascii_case(sha256)))
        })
    }

    /// Each vetoed SHA-256 with the record that vetoes it: a revocation before a rejection,
    /// then the lowest manifest hash (one file per bytes, the same at every publish).
    pub fn vetoes(&self) -> BTreeMap<String, &AttestationRecord> {
        let mut out: BTreeMap<String, &AttestationRecord> = BTreeMap::new();
        for r in self.attestations.values() {
            for sha in r.vetoed() {
                let slot = out.entry(sha.to_ascii_lowercase()).or_insert(r);
                if slot.verdict != Verdict::Revoked && r.verdict == Verdict::Revoked {
                    *slot = r;
                }
            }
        }
        out
    }
}
