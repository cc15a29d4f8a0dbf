use super::{check_spec_version, check_version, MetaFile};
use crate::error::Result;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    /// `"targets.json"`, `"<delegated>.json"` and this project's extra roles.
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Snapshot {
    pub const TYPE: &'static str = "snapshot";

    pub fn validate(&self) -> Result<()> {
        check_spec_version("snapshot", &self.spec_version)?;
        check_version("snapshot", self.version)?;
        for (name, m) in &self.meta {
            check_version(&format!("snapshot's {name}"), m.version)?;
        }
        Ok(())
    }
}
