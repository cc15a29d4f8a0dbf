use super::{check_spec_version, check_version, MetaFile};
use crate::error::{Error, Result};
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Timestamp {
    pub const TYPE: &'static str = "timestamp";

    /// The snapshot entry, which a timestamp must have.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        self.meta
            .get("snapshot.json")
            .ok_or_else(|| Error::malformed("timestamp", "no snapshot.json in meta"))
    }

    pub fn validate(&self) -> Result<()> {
        check_spec_version("timestamp", &self.spec_version)?;
        check_version("timestamp", self.version)?;
        check_version("timestamp's snapshot.json", self.snapshot_meta()?.version)
    }
}
