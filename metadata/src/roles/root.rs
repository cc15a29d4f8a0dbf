use super::{check_spec_version, check_version};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// Key ids and threshold of one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub consistent_snapshot: bool,
    pub version: u64,
    pub expires: DateTime,
    pub keys: BTreeMap<KeyId, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Root {
    pub const TYPE: &'static str = "root";

    /// The keys and threshold of `role`.
    pub fn role(&self, role: &str) -> Result<&RoleKeys> {
        self.roles
            .get(role)
            .ok_or_else(|| Error::malformed("root", format!("no {role:?} role")))
    }

    /// Structural checks every root must pass before it is trusted for anything:
    /// the four top-level roles exist, thresholds are at least 1 and every key id resolves.
    pub fn validate(&self) -> Result<()> {
        check_spec_version("root", &self.spec_version)?;
        check_version("root", self.version)?;
        for name in super::TOP_LEVEL_ROLES {
            let role = self.role(name)?;
            if role.threshold == 0 {
                return Err(Error::malformed(
                    "root",
                    format!("role {name} has threshold 0"),
                ));
            }
            for id in &role.keyids {
                if !self.keys.contains_key(id) {
                    return Err(Error::malformed(
                        "root",
                        format!("role {name} lists key {id} which is not in \"keys\""),
                    ));
                }
            }
        }
        Ok(())
    }
}
