//! The OEM's `regulators` role: which regulators' attestations count, pinned by their root keys,
//! and how many distinct regulators must approve an image.

use super::pin::RepositoryPin;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regulators {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    /// Distinct authorized regulators whose approval an image needs.
    pub threshold: u32,
    /// Each regulator's attestation repository.
    pub regulators: BTreeMap<String, RepositoryPin>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Regulators {
    pub const TYPE: &'static str = "regulators";
}
