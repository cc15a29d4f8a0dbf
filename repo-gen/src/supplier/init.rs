use super::{Settings, KIND};
use crate::error::{Error, Result};
use crate::root_build::{build_root, default_expiry};
use crate::workdir::{self, RoleConfig};
use ota_metadata::roles::TOP_LEVEL_ROLES;
use ota_metadata::{names, DateTime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys, thresholds and lifetimes asked for at `init` (shared by the three publishers).
#[derive(Clone, Debug, Default)]
pub struct RoleOptions {
    /// Keys per role; a role absent here uses `default_keys`.
    pub role_keys: BTreeMap<String, Vec<PathBuf>>,
    pub default_keys: Vec<PathBuf>,
    pub thresholds: BTreeMap<String, u32>,
    pub expires: BTreeMap<String, String>,
}

/// What `supplier init` needs.
pub struct Init {
    pub name: String,
    pub roles: RoleOptions,
    pub max_image_size: u64,
}

/// Build the role settings of a new repository from the init options.
pub fn role_configs(roles: &[&str], o: &RoleOptions) -> Result<BTreeMap<String, RoleConfig>> {
    let RoleOptions {
        role_keys,
        default_keys,
        thresholds,
        expires,
    } = o;
    for r in role_keys
        .keys()
        .chain(thresholds.keys())
        .chain(expires.keys())
    {
        if !roles.contains(&r.as_str()) {
            return Err(Error::refused(format!(
                "unknown role {r:?}; roles are {}",
                roles.join(", ")
            )));
        }
    }
    let mut out = BTreeMap::new();
    for role in roles {
        let keys = role_keys
            .get(*role)
            .cloned()
            .unwrap_or_else(|| default_keys.to_vec());
        if keys.is_empty() {
            return Err(Error::refused(format!(
                "no key for role {role}: pass --key FILE (all roles) or --{role}-key FILE"
            )));
        }
        let threshold = thresholds.get(*role).copied().unwrap_or(1);
        let exp = expires
            .get(*role)
            .map(String::as_str)
            .unwrap_or(default_expiry(role));
        crate::workdir::parse_lifetime(exp)
            .map_err(|e| Error::refused(format!("--expires {role}={exp}: {e}")))?;
        let rc = RoleConfig::new(keys, threshold, exp)?;
        out.insert(role.to_string(), rc);
    }
    Ok(out)
}

pub fn init(dir: &Path, opts: Init, now: DateTime) -> Result<()> {
    names::check_role_name(&opts.name)
        .map_err(|e| Error::refused(format!("supplier name: {e}")))?;
    workdir::check_new(dir, KIND)?;
    if opts.max_image_size == 0 {
        return Err(Error::refused("--max-image-size must be positive"));
    }
    let roles = role_configs(&TOP_LEVEL_ROLES, &opts.roles)?;
    let root = build_root(&roles, 1, now)?;
    let settings = Settings {
        kind: KIND.into(),
        name: opts.name,
        roles,
        max_image_size: opts.max_image_size,
        delegations: Vec::new(),
        images: Vec::new(),
        retired: Vec::new(),
        tier: None,
        ingested: Default::default(),
    };
    let root_keys = crate::root_build::signing_keys(&root, "root", &settings.roles["root"])?;
    let repo = workdir::repository_path(dir);
    workdir::create(dir, true)?;
    crate::publish::write_root(&repo, &root, &root_keys.iter().collect::<Vec<_>>())?;
    settings.save(dir)?;
    // Held through the first publish; creating it here also means later commands never add a
    // file to the directory just by locking it.
    let _lock = workdir::lock(dir)?;
    super::publish(dir, now, false)?;
    Ok(())
}
