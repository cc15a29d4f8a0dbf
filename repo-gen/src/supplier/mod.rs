//! The supplier's image repository (`ota-repo supplier …`): firmware images, a signed image
//! manifest and compact manifest per image, tier-2 delegations, and the TUF roles over them.
//!
//! Every image adds three targets, named after its uid and version:
//! `U-V.bin` (the image), `U-V.image.json` (the image manifest, Mi) and `U-V.manifest.bin` (its
//! compact binary form for the ECU), stored as `targets/SHA256.NAME` (consistent snapshots).
//! An image signed by a tier-2 supplier is listed in that delegated role, and its manifests are
//! signed by the tier-2 keys.

mod add_image;
mod delegate;
mod init;
mod publish;
mod rotate;

pub use add_image::{
    add_image, check_image_file, content_key_path, manifest_of, store_target, AddImage,
};
pub use delegate::{delegate, undelegate, Delegate};
pub use init::{init, role_configs, Init, RoleOptions};
pub use publish::{publish, publish_unverified};

use crate::error::{Error, Result};
use crate::workdir::{self, RoleConfig};
use ota_metadata::DateTime;
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "DelegationFields")]
pub struct DelegationConfig {
    pub name: String,
    #[serde(flatten)]
    pub role: RoleConfig,
    pub hardware_ids: Vec<String>,
    pub paths: Vec<String>,
    pub terminating: bool,
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
        }
    }
}

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
}

impl Settings {
    /// Load the settings; key paths written relative are taken relative to `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut s: Self = workdir::load(dir, KIND)?;
        for (name, rc) in s.roles.iter_mut().map(|(n, rc)| (n.as_str(), rc)).chain(
            s.delegations
                .iter_mut()
                .map(|d| (d.name.as_str(), &mut d.role)),
        ) {
            workdir::check_role(dir, name, rc)?;
            rc.resolve_keys(dir);
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
}
