use super::{check_key_separation, Settings, KIND, ROLES};
use crate::error::{Error, Result};
use crate::root_build::{build_root, signing_keys};
use crate::supplier::{role_configs, RoleOptions};
use crate::workdir;
use ota_metadata::DateTime;
use std::collections::BTreeMap;
use std::path::Path;

/// The longest a regulator's timestamp may run, for a new OEM (`oem regulator max-age`).
pub const DEFAULT_REGULATOR_MAX_AGE: &str = "12h";

/// Create an OEM master repository with keys for every role, and publish it (empty).
pub fn init(dir: &Path, roles: &RoleOptions, bins: Option<u32>, now: DateTime) -> Result<()> {
    workdir::check_new(dir, KIND)?;
    if bins.is_some() {
        return Err(Error::refused(
            "--vehicle-bins is no longer used: the per-vehicle tree sizes itself to the fleet",
        ));
    }
    let mut opts = roles.clone();
    // The review queue changes rarely; the vehicle index is renewed with every publish.
    for (role, exp) in [("review", "30d"), ("vehicles", "7d")] {
        opts.expires
            .entry(role.into())
            .or_insert_with(|| exp.into());
    }
    let roles = role_configs(&ROLES, &opts)?;
    check_key_separation(&roles)?;
    let root = build_root(&roles, 1, now)?;
    let settings = Settings {
        kind: KIND.into(),
        roles,
        suppliers: BTreeMap::new(),
        regulators: BTreeMap::new(),
        regulator_threshold: 1,
        // Twice a regulator's default timestamp lifetime: a replayed regulator tree from
        // before a revocation is refused at most 12 hours after it was signed.
        regulator_max_age: Some(DEFAULT_REGULATOR_MAX_AGE.into()),
        reviews: Vec::new(),
        report_database: None,
    };
    let root_keys = signing_keys(&root, "root", &settings.roles["root"])?;
    let repo = workdir::repository_path(dir);
    workdir::create(dir, false)?;
    crate::publish::write_root(&repo, &root, &root_keys.iter().collect::<Vec<_>>())?;
    settings.save(dir)?;
    super::reports::mark_migrated(dir)?;
    let _lock = workdir::lock(dir)?;
    super::publish(dir, now, false)?;
    Ok(())
}
