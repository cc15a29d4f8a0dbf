//! A regulator's attestation (the paper's Mr): its verdict on one image, with the findings.

use super::ImageRef;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub regulator: String,
    pub image: ImageRef,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub issued: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Attestation {
    pub const TYPE: &'static str = "attestation";
}
