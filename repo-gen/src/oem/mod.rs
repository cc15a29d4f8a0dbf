//! The OEM's master repository (`ota-repo oem …`): it pins suppliers and regulators, queues
//! images for review, keeps the vehicle inventory, and assigns images to each vehicle's ECUs.
//!
//! Working directory:
//! ```text
//! DIR/ota-repo.json       settings: role keys, pinned suppliers and regulators, review queue
//! DIR/inventory/KKK.json  the vehicle inventory (VIN -> ECUs), in 4096 shards by locator;
//!                         human-readable, never published (see [`store`])
//! DIR/keys/fleet.secret   what every vehicle's locator and entry key derive from ([`privacy`])
//! DIR/assignments/KKK.json  what each vehicle's ECUs should run; published per vehicle
//! DIR/pending/KKK         shards changed since the last publish
//! DIR/published.json      the root of the published vehicle tree (for change detection)
//! DIR/ecu-trust/HW.V.bin  ECU trust documents, version V for hardware id HW ([`ecu_trust`])
//! DIR/broadcast.json      receivers of encrypted images ([`broadcast`]; secret in keys/)
//! DIR/repository/         the static tree
//! ```
//! Published tree (besides the TUF roles): `N.targets.json` carries the supplier pins and the
//! authorized regulators (signed by the offline targets keys), `N.review.json` (the online
//! `review` role), and the per-vehicle layout of [`ota_metadata::documents::vehicles`] (the
//! online `vehicles` role). Root lists the keys of `review` and `vehicles` in its `ota_roles`
//! extension, so `roles` stays standard and python-tuf and tough read the tree.
//!
//! Offline and online keys are kept apart ([`check_key_separation`]): root and targets decide
//! who is trusted; timestamp, snapshot, review and vehicles publish day to day.

mod assign;
pub mod broadcast;
pub mod claims;
pub mod ecu_trust;
pub mod fleet;
pub mod import;
mod init;
mod inventory;
pub mod privacy;
mod publish;
mod regulators;
mod report;
pub mod reports;
mod review;
pub mod rollout;
mod rotate;
pub mod serve;
pub mod store;
mod suppliers;

pub use assign::{assign, Approval, Assign, AssignTarget, Assigned, Rules};
pub use ecu_trust::{ecu_trust, EcuTrust};
pub use init::init;
pub use inventory::{
    ecu_add, ecu_remove, ecu_replace, vehicle_add, vehicle_remove, EcuRecord, Inventory, Vehicle,
};
pub use publish::{publish, OemReport, Record};
pub use regulators::{
    regulator_add, regulator_max_age, regulator_remove, regulator_repin, regulator_threshold,
};
pub use report::{ecu_key, vehicle_key};
pub use reports::{clear_flags, flags, ingest, ingest_bytes, MAX_REPORT};
pub use review::{review_submit, Submit};
pub use suppliers::{supplier_add, supplier_remove, supplier_repin, supplier_replace};

use crate::error::Result;
use crate::fsutil;
use crate::workdir::{self, RoleConfig};
use ota_metadata::documents::{EcuAssignment, RepositoryPin, ReviewRequest, SupplierEntry};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const KIND: &str = "oem";
pub const ROLES: [&str; 6] = [
    "root",
    "timestamp",
    "snapshot",
    "targets",
    "review",
    "vehicles",
];
/// Roles whose keys decide who is trusted: kept offline.
pub const OFFLINE_ROLES: [&str; 2] = ["root", "targets"];
/// Roles that sign day-to-day publishing: their keys live on the publishing host.
pub const ONLINE_ROLES: [&str; 4] = ["timestamp", "snapshot", "review", "vehicles"];

/// Refuse role settings in which an online role holds a key of an offline role: with that
/// key stolen from the publishing host, an attacker could pin a supplier or authorize a
/// regulator.
pub fn check_key_separation(roles: &BTreeMap<String, RoleConfig>) -> Result<()> {
    let ids = |role: &str| -> Result<Vec<ota_metadata::KeyId>> {
        match roles.get(role) {
            None => Ok(Vec::new()),
            Some(rc) => Ok(rc
                .load_keys(role)?
                .iter()
                .map(|k| k.key_id().clone())
                .collect()),
        }
    };
    for off in OFFLINE_ROLES {
        let offline = ids(off)?;
        for on in ONLINE_ROLES {
            if let Some(k) = ids(on)?.iter().find(|k| offline.contains(k)) {
                return Err(crate::error::Error::refused(format!(
                    "key {k} is both a {off} key (offline: decides which suppliers and regulators are trusted) and a {on} key (online); give {off} its own key (--{off}-key FILE) and keep it off the publishing host"
                )));
            }
        }
    }
    Ok(())
}

/// `ota-repo.json` of the OEM. Unknown fields are refused: a misspelt setting would otherwise
/// be ignored without a word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kind: String,
    pub roles: BTreeMap<String, RoleConfig>,
    #[serde(default)]
    pub suppliers: BTreeMap<String, SupplierEntry>,
    #[serde(default)]
    pub regulators: BTreeMap<String, RepositoryPin>,
    /// Distinct regulators that must approve an image.
    pub regulator_threshold: u32,
    /// The longest a regulator's timestamp may run (`12h`, `1d`): vehicles refuse a regulator
    /// whose timestamp runs longer, which bounds how long a replayed regulator tree from
    /// before a revocation is accepted. Absent: no bound beyond the timestamp's expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regulator_max_age: Option<String>,
    #[serde(default)]
    pub reviews: Vec<ReviewRequest>,
    /// Where version reports are kept (`oem report database`): a PostgreSQL URL or an SQLite
    /// path. Absent: `DIR/reports.sqlite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_database: Option<String>,
}

impl Settings {
    /// The regulator policy the OEM publishes (and vehicles enforce).
    pub fn regulator_policy(&self) -> Result<ota_metadata::documents::RegulatorPolicy> {
        let max_timestamp_lifetime =
            match &self.regulator_max_age {
                None => None,
                Some(age) => Some(u64::try_from(crate::workdir::parse_lifetime(age)?).map_err(
                    |_| crate::error::Error::refused(format!("regulator_max_age {age:?}")),
                )?),
            };
        Ok(ota_metadata::documents::RegulatorPolicy {
            threshold: self.regulator_threshold,
            regulators: self.regulators.clone(),
            max_timestamp_lifetime,
        })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let mut s: Self = workdir::load(dir, KIND)?;
        for (name, rc) in s.roles.iter_mut() {
            workdir::check_role(dir, name, rc)?;
            rc.resolve_keys(dir);
        }
        // More than the regulators authorized is allowed (one was removed, another is on its
        // way; `regulator remove` warns), none is not: every image would pass unreviewed.
        if let Some(age) = &s.regulator_max_age {
            workdir::parse_lifetime(age).map_err(|e| crate::error::Error::Config {
                path: workdir::settings_path(dir),
                reason: format!("regulator_max_age {age:?}: {e}"),
            })?;
        }
        if s.regulator_threshold == 0 {
            return Err(crate::error::Error::Config {
                path: workdir::settings_path(dir),
                reason: "regulator_threshold 0: at least 1 regulator must approve an image".into(),
            });
        }
        Ok(s)
    }
    pub fn save(&self, dir: &Path) -> Result<()> {
        workdir::save(dir, self)
    }
}

/// Desired assignments: VIN -> ECU serial -> image, for the shards loaded (see [`store`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assignments {
    pub vehicles: BTreeMap<String, BTreeMap<String, EcuAssignment>>,
    scope: store::Scope,
}

impl Assignments {
    /// The whole fleet's assignments (O(fleet): for fleet-wide commands and tests).
    pub fn load(dir: &Path) -> Result<Self> {
        let (vehicles, scope) = store::load(dir, store::ASSIGNMENTS_DIR, None)?;
        Ok(Assignments { vehicles, scope })
    }
    /// The assignments of the shards holding `vins` (what a command about them needs).
    pub fn load_for(dir: &Path, vins: &[&str]) -> Result<Self> {
        let (vehicles, scope) = store::load(dir, store::ASSIGNMENTS_DIR, Some(vins))?;
        Ok(Assignments { vehicles, scope })
    }
    /// Write back the shards that changed (marking them for the next publish).
    pub fn save(&self, dir: &Path) -> Result<()> {
        store::save(dir, store::ASSIGNMENTS_DIR, &self.vehicles, &self.scope).map(|_| ())
    }
}

/// Read a JSON state file of the working directory, or its default if absent.
pub(crate) fn read_state<T: DeserializeOwned + Default>(dir: &Path, name: &str) -> Result<T> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(T::default());
    }
    let bytes = fsutil::read_bounded(&path, 1 << 30)?;
    serde_json::from_slice(&bytes).map_err(|e| crate::error::Error::Config {
        path,
        reason: e.to_string(),
    })
}

pub(crate) fn write_state<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    fsutil::write_atomic(&dir.join(name), &ota_metadata::canonical::to_pretty(value)?)
}

pub const PUBLISHED: &str = "published.json";
