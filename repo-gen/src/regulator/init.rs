use super::{Settings, KIND};
use crate::error::{Error, Result};
use crate::root_build::{build_root, signing_keys};
use crate::supplier::{role_configs, RoleOptions};
use crate::workdir;
use ota_metadata::roles::TOP_LEVEL_ROLES;
use ota_metadata::{names, DateTime};
use std::collections::BTreeMap;
use std::path::Path;

/// A regulator's timestamp lifetime unless told otherwise.
pub const DEFAULT_TIMESTAMP_LIFETIME: &str = "6h";

/// Create a regulator's attestation repository and publish it (empty).
pub fn init(dir: &Path, name: &str, roles: &RoleOptions, now: DateTime) -> Result<()> {
    names::check_role_name(name).map_err(|e| Error::refused(format!("regulator name: {e}")))?;
    workdir::check_new(dir, KIND)?;
    // A short timestamp: it is what proves a revocation is not being withheld. `regulator
    // publish` from cron renews it (OEMs require at most 12 h by default).
    let mut roles = roles.clone();
    roles
        .expires
        .entry("timestamp".into())
        .or_insert_with(|| DEFAULT_TIMESTAMP_LIFETIME.into());
    let roles = role_configs(&TOP_LEVEL_ROLES, &roles)?;
    let root = build_root(&roles, 1, now)?;
    let settings = Settings {
        kind: KIND.into(),
        name: name.into(),
        roles,
        attestations: BTreeMap::new(),
    };
    let root_keys = signing_keys(&root, "root", &settings.roles["root"])?;
    let repo = workdir::repository_path(dir);
    workdir::create(dir, true)?;
    crate::publish::write_root(&repo, &root, &root_keys.iter().collect::<Vec<_>>())?;
    settings.save(dir)?;
    let _lock = workdir::lock(dir)?;
    super::publish(dir, now, false)?;
    Ok(())
}
