//! The supplier's image repository (`ota-repo supplier …`): firmware images, a signed image
//! manifest and compact manifest per image, tier-2 delegations, and the TUF roles over them.
//!
//! Every image adds three targets, named after its uid and version:
//! `U-V.bin` (the image), `U-V.image.json` (the image manifest, Mi) and `U-V.manifest.bin` (its
//! compact binary form for the ECU), stored as `targets/SHA256.NAME` (consistent snapshots).
//! An image signed by a tier-2 supplier is listed in that delegated role, and its manifests are
//! signed by the tier-2 keys.
//!
//! The supply chain (Uptane's tier-2 and tier-3 suppliers): a delegation names the tier-2's
//! *public* keys; the tier-2 keeps its own working directory (a *tier directory*,
//! [`tier`]), adds images there, signs its role with its own keys and hands the signed files
//! over ([`tier::handover`]); the delegator checks them against the delegation and takes them
//! in verbatim ([`ingest`]). A tier-2 delegates to a tier-3 the same way, and its hand-over
//! carries the tier-3's signed role with its own.

mod add_image;
mod delegate;
mod deltas;
pub mod ingest;
mod init;
mod publish;
mod rotate;
pub mod tier;

pub use add_image::{
    add_image, check_image_file, content_key_path, manifest_of, store_target, write_manifests,
    AddImage,
};
pub use delegate::{delegate, undelegate, Delegate, DelegateKeys};
pub use init::{init, role_configs, Init, RoleOptions};
pub use publish::{publish, publish_unverified};

use crate::error::{Error, Result};
use crate::workdir::{self, RoleConfig};
use ota_metadata::{DateTime, Key, KeyId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const KIND: &str = "supplier";
/// Content keys of encrypted images (`add-image --encrypt`), one file per image, mode 0600:
/// handed to the OEM (`oem review submit --content-key`), never published.
pub const CONTENT_KEYS_DIR: &str = "content-keys";
/// Default bound on one image: 1 GiB.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 1 << 30;

/// A stored file's size and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInfo {
    pub length: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
    /// "targets" or the tier-2 role that signs it.
    pub role: String,
    /// The published target: the ciphertext when the image is encrypted.
    pub image: FileInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionRecord>,
    pub manifest: FileInfo,
    pub compact: FileInfo,
    pub added: DateTime,
    /// Deltas published with the image (`add-image --delta-from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaRecord>,
}

/// A delta that rebuilds an image from an earlier release of its uid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaRecord {
    pub from_version: String,
    /// SHA-256 (hex) of the earlier release's image: the base an ECU must run.
    pub from_sha256: String,
    /// The delta target.
    pub file: FileInfo,
}

/// How an image was encrypted (`add-image --encrypt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionRecord {
    pub chunk_size: u32,
    /// The plaintext image (what the manifest's `encryption` names and ECUs verify).
    pub plaintext: FileInfo,
}

/// A tier-2 delegation. Written with its role's settings inline; read through
/// [`DelegationFields`], because serde cannot refuse unknown fields next to a flattened struct.
///
/// Either the delegator holds the delegate's private keys (`role.keys`: one organisation,
/// `supplier delegate --key … --sign-here`) and signs its role at each publish, or it holds
/// only the delegate's public keys (`public_keys`) and publishes the role the delegate signed
/// and handed over ([`ingest`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "DelegationFields")]
pub struct DelegationConfig {
    pub name: String,
    #[serde(flatten)]
    pub role: RoleConfig,
    pub hardware_ids: Vec<String>,
    pub paths: Vec<String>,
    pub terminating: bool,
    /// The delegate's public keys by key id, when it signs for itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub public_keys: BTreeMap<KeyId, Key>,
}

impl DelegationConfig {
    /// Whether the delegate signs its role itself (the delegator holds public keys only).
    pub fn external(&self) -> bool {
        !self.public_keys.is_empty()
    }
}

/// [`DelegationConfig`] as stored, every field named, so an unknown one is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegationFields {
    name: String,
    keys: Vec<std::path::PathBuf>,
    threshold: u32,
    expires: String,
    hardware_ids: Vec<String>,
    paths: Vec<String>,
    terminating: bool,
    #[serde(default)]
    public_keys: BTreeMap<KeyId, Key>,
}

impl From<DelegationFields> for DelegationConfig {
    fn from(d: DelegationFields) -> Self {
        DelegationConfig {
            name: d.name,
            role: RoleConfig {
                keys: d.keys,
                threshold: d.threshold,
                expires: d.expires,
            },
            hardware_ids: d.hardware_ids,
            paths: d.paths,
            terminating: d.terminating,
            public_keys: d.public_keys,
        }
    }
}

/// What makes a supplier directory a tier directory: the one delegated role it signs for its
/// delegator, within the hardware ids and target-name patterns the delegation allows. Its
/// keys are `roles[role]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The role's name in the delegator's metadata.
    pub role: String,
    pub hardware_ids: Vec<String>,
    pub paths: Vec<String>,
    /// The version of the role last handed over, and the SHA-256 of its body then: an
    /// unchanged body keeps its version (and is re-signed only when close to expiry).
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub body_sha256: String,
}

/// A role someone else signed and this directory took in ([`ingest`]): kept verbatim in
/// `DIR/delegated/ROLE.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingested {
    pub version: u64,
    /// SHA-256 of the signed file.
    pub sha256: String,
    /// The role that delegates it (a delegation of this directory, or an ingested role).
    pub parent: String,
}

/// Where ingested roles are kept.
pub const DELEGATED_DIR: &str = "delegated";

/// `ota-repo.json` of a supplier. Unknown fields are refused: a misspelt setting would
/// otherwise be ignored without a word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kind: String,
    pub name: String,
    pub roles: BTreeMap<String, RoleConfig>,
    pub max_image_size: u64,
    #[serde(default)]
    pub delegations: Vec<DelegationConfig>,
    #[serde(default)]
    pub images: Vec<ImageRecord>,
    /// Delegations removed: their role files stay listed in the snapshot, empty, because TUF
    /// clients refuse a snapshot that drops a file an earlier one listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// Set in a tier directory (a tier-2 or tier-3 supplier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Roles signed by their delegates and taken in, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ingested: BTreeMap<String, Ingested>,
}

impl Settings {
    /// Load the settings; key paths written relative are taken relative to `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut s: Self = workdir::load(dir, KIND)?;
        for (name, rc) in s.roles.iter_mut().map(|(n, rc)| (n.as_str(), rc)).chain(
            s.delegations
                .iter_mut()
                .filter(|d| d.public_keys.is_empty())
                .map(|d| (d.name.as_str(), &mut d.role)),
        ) {
            workdir::check_role(dir, name, rc)?;
            rc.resolve_keys(dir);
        }
        for d in s.delegations.iter().filter(|d| d.external()) {
            if d.role.threshold == 0 || d.role.threshold as usize > d.public_keys.len() {
                return Err(Error::Config {
                    path: workdir::settings_path(dir),
                    reason: format!(
                        "delegation {}: threshold {} of {} public key(s)",
                        d.name,
                        d.role.threshold,
                        d.public_keys.len()
                    ),
                });
            }
        }
        if let Some(t) = &s.tier {
            if !s.roles.contains_key(&t.role) {
                return Err(Error::Config {
                    path: workdir::settings_path(dir),
                    reason: format!("tier directory without the keys of its role {}", t.role),
                });
            }
        }
        Ok(s)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        workdir::save(dir, self)
    }

    pub fn role(&self, name: &str) -> Result<&RoleConfig> {
        if let Some(r) = self.roles.get(name) {
            return Ok(r);
        }
        self.delegations
            .iter()
            .find(|d| d.name == name)
            .map(|d| &d.role)
            .ok_or_else(|| Error::refused(format!("no role or delegation named {name:?}")))
    }

    pub fn delegation(&self, name: &str) -> Option<&DelegationConfig> {
        self.delegations.iter().find(|d| d.name == name)
    }

    /// The role images are signed by when none is named: the top-level `targets`, or a tier
    /// directory's own role.
    pub fn default_role(&self) -> &str {
        self.tier.as_ref().map_or("targets", |t| t.role.as_str())
    }

    /// What images signed by `role` may be: their hardware ids and target-name patterns
    /// (`None`: unrestricted, the top-level `targets`). A role the directory holds no keys for
    /// (an external delegation) signs nothing here.
    pub fn restriction(&self, role: &str) -> Result<Option<(&[String], &[String])>> {
        if let Some(t) = self.tier.as_ref().filter(|t| t.role == role) {
            return Ok(Some((&t.hardware_ids, &t.paths)));
        }
        if role == "targets" && self.tier.is_none() {
            return Ok(None);
        }
        let d = self.delegation(role).ok_or_else(|| {
            Error::refused(format!(
                "no delegation named {role:?}; add it with `supplier delegate`"
            ))
        })?;
        if d.external() {
            return Err(Error::refused(format!(
                "delegation {role} signs for itself (this directory holds its public keys only): its images come in with its hand-over (`supplier ingest`)"
            )));
        }
        Ok(Some((&d.hardware_ids, &d.paths)))
    }
}
