//! The commands of `ota-repo`, one file per command group, each with its clap argument types
//! beside the code that runs them (as cargo's `commands/`): a command's whole path, from its
//! flags to what it prints, is read in one file. `cli.rs` keeps the top level and the
//! argument types several groups share; `run.rs` the dispatch to the groups.
//!
//! Below: the helpers more than one group uses (role keys, key rotation, publish reports).

pub mod fleet;
pub mod key;
pub mod oem;
pub mod regulator;
pub mod report;
pub mod rollout;
pub mod supplier;
pub mod upload;
pub mod verify;

use crate::cli::{RoleKeyArgs, RotateArgs};
use crate::error::{Error, Result};
use crate::keystore;
use crate::publish::Report;
use crate::supplier::RoleOptions;
use ota_metadata::DateTime;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `init` flags of every publisher (role keys, thresholds, expiries) as the library takes
/// them.
pub(crate) fn role_options(k: &RoleKeyArgs) -> Result<RoleOptions> {
    let mut keys = BTreeMap::new();
    for (role, files) in [
        ("root", &k.root_key),
        ("targets", &k.targets_key),
        ("snapshot", &k.snapshot_key),
        ("timestamp", &k.timestamp_key),
    ] {
        if !files.is_empty() {
            keys.insert(role.to_string(), files.clone());
        }
    }
    let mut thresholds = BTreeMap::new();
    for (role, v) in &k.threshold {
        let n: u32 = v
            .parse()
            .map_err(|_| Error::refused(format!("--threshold {role}={v}: not a number")))?;
        thresholds.insert(role.clone(), n);
    }
    Ok(RoleOptions {
        role_keys: keys,
        default_keys: k.key.clone(),
        thresholds,
        expires: k.expires.iter().cloned().collect(),
    })
}

/// A fresh key for `role` in `DIR/keys/`, named after the role and the time.
fn generate_role_key(dir: &Path, role: &str, now: DateTime) -> Result<PathBuf> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(Error::io(&keys))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io(&keys))?;
    }
    let stamp: String = now
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let path = keys.join(format!("{role}-{stamp}.pem"));
    let k = keystore::generate(3072, &path)?;
    say!(
        "generated {} (key id {}) for {role}",
        path.display(),
        k.key_id()
    );
    Ok(path)
}

/// A publisher's key rotation (`crate::rotation::rotate` for its settings type).
pub(crate) type RotateFn = fn(&Path, &str, Vec<PathBuf>, Option<u32>, DateTime) -> Result<Report>;

/// `rotate-key` of any publisher: generate the new key when none is given, rotate, report.
pub(crate) fn rotate(mut a: RotateArgs, now: DateTime, rotate_key: RotateFn) -> Result<()> {
    if a.new_key.is_empty() {
        a.new_key.push(generate_role_key(&a.dir, &a.role, now)?);
    }
    let r = rotate_key(&a.dir, &a.role, a.new_key, a.threshold, now)?;
    say!("rotated the keys of {}", a.role);
    print_report(&r);
    Ok(())
}

/// What a publish signed and kept, and its warnings.
pub(crate) fn print_report(r: &Report) {
    for w in &r.warnings {
        tell!("ota-repo: warning: {w}");
    }
    for (role, v) in &r.signed {
        say!("  signed {role} v{v}");
    }
    for (role, v) in &r.kept {
        say!("  kept   {role} v{v} (unchanged)");
    }
}
