//! The four TUF top-level roles and delegated targets, as typed views of `signed`.
//!
//! Unknown fields are kept (`extra`) so that a document re-signed by this project keeps what
//! another tool put there; signatures are always checked over the bytes received, never over a
//! re-serialisation of these types.

mod delegation;
mod root;
mod snapshot;
mod targets;
mod timestamp;

pub use delegation::{glob_match, DelegatedRole, Delegations, SuccinctRoles};
pub use root::{RoleKeys, Root, TOP_LEVEL_ROLES};
pub use snapshot::Snapshot;
pub use targets::{TargetFile, Targets};
pub use timestamp::Timestamp;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The TUF specification version this project writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// `{"sha256": "hex", ...}`
pub type Hashes = BTreeMap<String, String>;

/// An entry of timestamp or snapshot `meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

/// Lower-case hex SHA-256 out of a `hashes` map, validated.
pub fn sha256_of(hashes: &Hashes, what: &str) -> Result<[u8; 32]> {
    let hex_digest = hashes
        .get("sha256")
        .ok_or_else(|| Error::malformed(what, "no sha256 hash listed"))?;
    let raw = hex::decode(hex_digest)
        .map_err(|e| Error::malformed(what, format!("sha256 is not hex: {e}")))?;
    raw.try_into()
        .map_err(|_| Error::malformed(what, "sha256 is not 32 bytes"))
}

/// Check a spec_version string has major version 1, as the TUF client workflow requires.
pub(crate) fn check_spec_version(role: &str, v: &str) -> Result<()> {
    if v.split('.').next() == Some("1") {
        Ok(())
    } else {
        Err(Error::policy(
            role,
            format!("unsupported spec_version {v:?}"),
        ))
    }
}

/// A version number must be at least 1.
pub(crate) fn check_version(role: &str, v: u64) -> Result<()> {
    if v == 0 {
        Err(Error::Version {
            role: role.into(),
            found: 0,
            expected: ">= 1".into(),
        })
    } else {
        Ok(())
    }
}
