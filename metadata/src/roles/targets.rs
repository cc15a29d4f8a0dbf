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
    /// This project's extension: for a delegated role named here, the only hardware ids the
    /// images it signs may fit (a tier-2 supplier signs for a subset of the ECUs). Kept outside
    /// `delegations` so other TUF readers keep it when they check signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_hardware_ids: Option<BTreeMap<String, Vec<String>>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Targets {
    pub const TYPE: &'static str = "targets";

    /// A new, empty targets document.
    pub fn new(version: u64, expires: DateTime) -> Self {
        Targets {
            type_: Self::TYPE.into(),
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            delegated_hardware_ids: None,
            extra: BTreeMap::new(),
        }
    }

    /// Hardware ids that images signed by delegated role `role` are restricted to, if any.
    pub fn hardware_ids_for(&self, role: &str) -> Option<&[String]> {
        self.delegated_hardware_ids
            .as_ref()
            .and_then(|m| m.get(role))
            .map(Vec::as_slice)
    }

    pub fn validate(&self, role: &str) -> Result<()> {
        check_spec_version(role, &self.spec_version)?;
        check_version(role, self.version)?;
        if let Some(d) = &self.delegations {
            d.validate(role)?;
        }
        Ok(())
    }
}
