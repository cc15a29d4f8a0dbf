//! The OEM's `regulators` role: which regulators' attestations count, pinned by their root keys,
//! and how many distinct regulators must approve an image.

use crate::keys::{Key, KeyId};
use crate::roles::RoleKeys;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegulatorEntry {
    /// Base URL of the regulator's attestation repository.
    pub url: String,
    /// The regulator repository's root keys and threshold, as the OEM pinned them.
    pub keys: BTreeMap<KeyId, Key>,
    pub root: RoleKeys,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regulators {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    /// Distinct authorized regulators whose approval an image needs.
    pub threshold: u32,
    pub regulators: BTreeMap<String, RegulatorEntry>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Regulators {
    pub const TYPE: &'static str = "regulators";
}
