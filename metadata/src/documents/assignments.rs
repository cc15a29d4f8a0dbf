//! Vehicle assignments (the paper's Mv): which image each ECU of one vehicle should run.
//! Unsigned canonical JSON, trusted through the signed fleet index by hash
//! ([`super::vehicles`]); no expiry of its own: the index's is what keeps it fresh.

use crate::roles::Hashes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuAssignment {
    pub hardware_id: String,
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub target: String,
    pub length: u64,
    pub hashes: Hashes,
    /// The vehicle's wrapped content key, when the image is encrypted (issue 11): the top
    /// shard and the vehicle's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_wraps: Option<super::KeyWraps>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub vin: String,
    /// Raised with every change; a vehicle never accepts a lower one (rollback).
    pub version: u64,
    /// Keyed by ECU serial.
    pub ecus: BTreeMap<String, EcuAssignment>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Assignments {
    pub const TYPE: &'static str = "assignments";
}
