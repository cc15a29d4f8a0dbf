//! The OEM's `review` role (the paper's Mm): images the OEM sends to regulators for review.

use super::ImageRef;
use crate::roles::Hashes;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub image: ImageRef,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
    /// Target name, length and hashes of the image manifest in the supplier repository.
    pub manifest_target: String,
    pub manifest_length: u64,
    pub manifest_hashes: Hashes,
    pub submitted: DateTime,
    /// Every shard of the image's wrapped content key, when the image is encrypted (issue
    /// 11): each regulator fetches the top shard and its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_wraps: Option<super::KeyWraps>,
    /// SHA-256 (hex) of the compact manifest's signed body (`ImageManifest::compact_body`):
    /// what the OEM's instructions to ECUs name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    pub requests: Vec<ReviewRequest>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Review {
    pub const TYPE: &'static str = "review";
}
