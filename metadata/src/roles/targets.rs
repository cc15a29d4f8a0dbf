use super::{check_spec_version, check_version, Delegations, Hashes};
use crate::error::Result;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One target: its length, hashes and free-form `custom` data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: Hashes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Targets {
    pub const TYPE: &'static str = "targets";

    pub fn validate(&self, role: &str) -> Result<()> {
        check_spec_version(role, &self.spec_version)?;
        check_version(role, self.version)?;
        if let Some(d) = &self.delegations {
            d.validate(role)?;
        }
        Ok(())
    }
}
