use super::{check_spec_version, check_version};
use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// The root field that holds the keys of roles beyond TUF's four (the OEM's online `review`
/// and `vehicles` roles). `roles` keeps only the four standard names, because python-tuf and
/// tough refuse any other; both keep unknown root fields, so the extension stays signed by the
/// root keys and under their control, and standard readers read the tree.
pub const EXTRA_ROLES_FIELD: &str = "ota_roles";

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
    /// Roles beyond TUF's four, see [`EXTRA_ROLES_FIELD`].
    #[serde(
        rename = "ota_roles",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub extra_roles: BTreeMap<String, RoleKeys>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Root {
    pub const TYPE: &'static str = "root";

    /// The keys and threshold of `role`: one of TUF's four from `roles`, any other from the
    /// [`EXTRA_ROLES_FIELD`] extension (never the other way round, so an extension cannot
    /// stand in for a top-level role).
    pub fn role(&self, role: &str) -> Result<&RoleKeys> {
        let found = if TOP_LEVEL_ROLES.contains(&role) {
            self.roles.get(role)
        } else {
            self.extra_roles.get(role)
        };
        found.ok_or_else(|| Error::malformed("root", format!("no {role:?} role")))
    }

    /// Structural checks every root must pass before it is trusted for anything:
    /// the four top-level roles exist, no other name is in `roles` nor a top-level name in the
    /// extension, thresholds are at least 1 and every key id resolves.
    pub fn validate(&self) -> Result<()> {
        check_spec_version("root", &self.spec_version)?;
        check_version("root", self.version)?;
        if let Some(other) = self
            .roles
            .keys()
            .find(|r| !TOP_LEVEL_ROLES.contains(&r.as_str()))
        {
            return Err(Error::malformed(
                "root",
                format!("\"roles\" holds {other:?}: only root, timestamp, snapshot and targets belong there"),
            ));
        }
        if let Some(top) = self
            .extra_roles
            .keys()
            .find(|r| TOP_LEVEL_ROLES.contains(&r.as_str()))
        {
            return Err(Error::malformed(
                "root",
                format!("{EXTRA_ROLES_FIELD:?} holds the top-level role {top:?}"),
            ));
        }
        let names = TOP_LEVEL_ROLES
            .iter()
            .copied()
            .chain(self.extra_roles.keys().map(String::as_str));
        for name in names {
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
