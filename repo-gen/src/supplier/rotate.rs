use super::add_image::{manifest_of, write_manifests};
use super::publish::publish_with;
use super::Settings;
use crate::error::{Error, Result};
use crate::publish::{read_root, write_root, Report};
use crate::root_build::{build_root, check_threshold, signing_keys};
use crate::workdir::{self, RoleConfig};
use ota_metadata::{DateTime, SigningKey};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Replace the keys of `role` (a top-level role or a delegation) with `new_keys`.
///
/// Order matters so that no client ever sees an inconsistent tree:
/// 1. every document the role signs is re-signed by the old *and* new keys and published
///    (image manifests too, for targets and delegated roles), timestamp last;
/// 2. only then does the next root (`N+1.root.json`, signed by the old and new root keys)
///    appear, and clients that rotate to it find files the new keys signed.
pub fn rotate_key(
    dir: &Path,
    role: &str,
    new_keys: Vec<PathBuf>,
    threshold: Option<u32>,
    now: DateTime,
) -> Result<Report> {
    let mut s = Settings::load(dir)?;
    let repo = workdir::repository_path(dir);
    let old_root = read_root(&repo)?;
    if new_keys.is_empty() {
        return Err(Error::refused("give the new key(s) with --new-key FILE"));
    }
    let old_rc = s.role(role)?.clone();
    let new_rc = RoleConfig::new(
        new_keys,
        threshold.unwrap_or(old_rc.threshold),
        &old_rc.expires,
    )?;
    let new_signers = new_rc.load_keys(role)?;
    let ids: BTreeSet<_> = new_signers.iter().map(|k| k.key_id().clone()).collect();
    check_threshold(role, &new_rc, ids.len())?;
    let old_signers = old_rc.load_keys(role)?;

    let is_top = s.roles.contains_key(role);
    if is_top {
        s.roles.insert(role.into(), new_rc);
    } else if let Some(d) = s.delegations.iter_mut().find(|d| d.name == role) {
        d.role = new_rc;
    }

    let new_root = if is_top {
        Some(build_root(&s.roles, old_root.version + 1, now)?)
    } else {
        None
    };
    let signing_root = new_root.as_ref().unwrap_or(&old_root);

    // Re-sign the image manifests this role signs.
    if role == "targets" || !is_top {
        let refs: Vec<&SigningKey> = new_signers.iter().collect();
        for i in 0..s.images.len() {
            if s.images[i].role == role {
                let m = manifest_of(&s.name, &s.images[i])?;
                let (manifest, compact) = write_manifests(&repo, &m, &refs)?;
                s.images[i].manifest = manifest;
                s.images[i].compact = compact;
            }
        }
    }

    let report = if role == "root" {
        Report::default()
    } else {
        let also = BTreeMap::from([(role.to_string(), old_signers.clone())]);
        publish_with(&repo, &s, signing_root, now, true, &also)?
    };

    if let Some(root) = &new_root {
        // Signed by the outgoing root keys (the trusted root's threshold) and the new ones.
        let old_root_keys = signing_keys(&old_root, "root", &old_rc_for_root(&s, role, &old_rc))?;
        let new_root_keys = signing_keys(root, "root", &s.roles["root"])?;
        let mut all: Vec<&SigningKey> = old_root_keys.iter().collect();
        all.extend(new_root_keys.iter());
        write_root(&repo, root, &all)?;
    }
    s.save(dir)?;
    Ok(report)
}

/// The root-role settings in force before the rotation.
fn old_rc_for_root(s: &Settings, role: &str, old_rc: &RoleConfig) -> RoleConfig {
    if role == "root" {
        old_rc.clone()
    } else {
        s.roles["root"].clone()
    }
}
