use super::{DelegationConfig, Settings};
use crate::error::{Error, Result};
use crate::root_build::{check_threshold, default_expiry};
use crate::workdir::RoleConfig;
use ota_metadata::names;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct Delegate {
    pub name: String,
    pub keys: Vec<PathBuf>,
    pub threshold: u32,
    pub hardware_ids: Vec<String>,
    /// Target-name patterns the tier-2 supplier may sign; `*` (any image) when empty, with the
    /// hardware-id restriction doing the narrowing.
    pub paths: Vec<String>,
    pub terminating: bool,
    pub expires: Option<String>,
}

/// Delegate signing of images for `hardware_ids` to a tier-2 supplier. Takes effect at the
/// next `publish`.
pub fn delegate(dir: &Path, opts: Delegate) -> Result<()> {
    let mut s = Settings::load(dir)?;
    names::check_role_name(&opts.name)?;
    if s.delegation(&opts.name).is_some() || s.retired.contains(&opts.name) {
        return Err(Error::refused(format!(
            "delegation {:?} already exists",
            opts.name
        )));
    }
    if opts.hardware_ids.is_empty() {
        return Err(Error::refused(
            "give at least one --hardware-id the tier-2 supplier may serve",
        ));
    }
    for h in &opts.hardware_ids {
        names::check_hardware_id(h)?;
    }
    for p in &opts.paths {
        if p.is_empty() || p.contains("..") {
            return Err(Error::refused(format!("path pattern {p:?} is not allowed")));
        }
    }
    let expires = opts.expires.as_deref().unwrap_or(default_expiry("targets"));
    crate::workdir::parse_lifetime(expires)
        .map_err(|e| Error::refused(format!("--expires {expires}: {e}")))?;
    let role = RoleConfig::new(opts.keys, opts.threshold, expires)?;
    let ids: BTreeSet<_> = role
        .load_keys(&opts.name)?
        .iter()
        .map(|k| k.key_id().clone())
        .collect();
    check_threshold(&opts.name, &role, ids.len())?;
    s.delegations.push(DelegationConfig {
        name: opts.name,
        role,
        hardware_ids: opts.hardware_ids,
        paths: if opts.paths.is_empty() {
            vec!["*".into()]
        } else {
            opts.paths
        },
        terminating: opts.terminating,
    });
    s.save(dir)
}

/// Remove the delegation to `name` (Uptane: removing a tier-2 supplier). Its images go with
/// it only when `drop_images`; otherwise the removal is refused while it signs any. The role's
/// file stays listed, empty and delegated by no one, so clients' snapshot rules still hold.
/// Returns how many images were dropped. Takes effect at the next `publish`.
pub fn undelegate(dir: &Path, name: &str, drop_images: bool) -> Result<usize> {
    let mut s = Settings::load(dir)?;
    if s.delegation(name).is_none() {
        return Err(Error::refused(format!("no delegation named {name:?}")));
    }
    let signed = s.images.iter().filter(|i| i.role == name).count();
    if signed > 0 && !drop_images {
        return Err(Error::refused(format!(
            "delegation {name} signs {signed} image(s); pass --drop-images to withdraw them with it"
        )));
    }
    s.images.retain(|i| i.role != name);
    s.delegations.retain(|d| d.name != name);
    s.retired.push(name.to_string());
    s.save(dir)?;
    Ok(signed)
}
