//! Authorizing regulators, and how many distinct ones must approve an image.

use super::suppliers::pin_from_file;
use super::Settings;
use crate::error::{Error, Result};

use ota_metadata::documents::{RegulatorPolicy, RepositoryPin};
use ota_metadata::names;
use std::path::Path;

/// The pin of regulator `name` from its root file, refused if another authorized regulator
/// or a pinned supplier holds any key of any role of it (root, targets, snapshot,
/// timestamp): regulators count by key material, so the same regulator under two names would
/// let one approval pass for two, and a supplier holding a regulator's key approves its own
/// images.
fn regulator_pin(s: &Settings, name: &str, root_file: &Path, url: &str) -> Result<RepositoryPin> {
    let pin = pin_from_file(&format!("regulator {name}"), root_file, url)?;
    let policy = RegulatorPolicy {
        threshold: s.regulator_threshold,
        regulators: s.regulators.clone(),
        max_timestamp_lifetime: None,
    };
    let keys = pin.all_key_material();
    if let Some(other) = policy.sharing_keys(&keys, name) {
        return Err(Error::refused(format!(
            "the root of {name} ({}) shares keys with regulator {other}: one regulator cannot be authorized twice (regulators count by key material, in every role)",
            root_file.display()
        )));
    }
    if let Some((supplier, _)) = s
        .suppliers
        .iter()
        .find(|(_, e)| !e.repository.all_key_material().is_disjoint(&keys))
    {
        return Err(Error::refused(format!(
            "the root of {name} ({}) shares keys with supplier {supplier}: a regulator must hold keys of its own",
            root_file.display()
        )));
    }
    Ok(pin)
}

pub fn regulator_add(dir: &Path, name: &str, root_file: &Path, url: &str) -> Result<()> {
    let mut s = Settings::load(dir)?;
    names::check_role_name(name)?;
    if s.regulators.contains_key(name) {
        return Err(Error::refused(format!(
            "regulator {name} already exists (re-pin it with `oem regulator repin`)"
        )));
    }
    let pin = regulator_pin(&s, name, root_file, url)?;
    s.regulators.insert(name.into(), pin);
    s.save(dir)
}

/// Re-pin regulator `name` to a new root (and URL): after its root keys were stolen, vehicles
/// drop whatever they walked under the old pin and start again from this one.
pub fn regulator_repin(dir: &Path, name: &str, root_file: &Path, url: Option<&str>) -> Result<()> {
    let mut s = Settings::load(dir)?;
    let old = s
        .regulators
        .get(name)
        .ok_or_else(|| Error::refused(format!("unknown regulator {name:?}")))?;
    let url = url.unwrap_or(&old.url).to_string();
    let pin = regulator_pin(&s, name, root_file, &url)?;
    s.regulators.insert(name.into(), pin);
    s.save(dir)
}

pub fn regulator_remove(dir: &Path, name: &str) -> Result<()> {
    let mut s = Settings::load(dir)?;
    if s.regulators.remove(name).is_none() {
        return Err(Error::refused(format!("unknown regulator {name:?}")));
    }
    if (s.regulators.len() as u32) < s.regulator_threshold {
        tell!(
            "ota-repo: warning: {} regulator(s) left but {} approvals required: no image can be installed until another is added or the threshold lowered",
            s.regulators.len(),
            s.regulator_threshold
        );
    }
    // Excluded before the regulator is forgotten: a crash in between leaves it authorized
    // and excluded, and the command can be run again.
    super::broadcast::regulator_revoke_keys(dir, name)?;
    s.save(dir)
}

pub fn regulator_threshold(dir: &Path, k: u32) -> Result<()> {
    let mut s = Settings::load(dir)?;
    if k == 0 {
        return Err(Error::refused("the regulator threshold must be at least 1"));
    }
    if k as usize > s.regulators.len() {
        return Err(Error::refused(format!(
            "threshold {k} but only {} regulator(s) authorized",
            s.regulators.len()
        )));
    }
    s.regulator_threshold = k;
    s.save(dir)
}

/// Set (or with `None`, remove) the longest a regulator's timestamp may run; vehicles enforce
/// it. Refused below 1 minute: no regulator could publish often enough.
pub fn regulator_max_age(dir: &Path, age: Option<&str>) -> Result<()> {
    let mut s = Settings::load(dir)?;
    if let Some(a) = age {
        let secs = crate::workdir::parse_lifetime(a)?;
        if secs < 60 {
            return Err(Error::refused(format!(
                "regulator max age {a:?}: at least 1 minute (regulators renew their timestamp from cron)"
            )));
        }
    }
    s.regulator_max_age = age.map(str::to_string);
    s.save(dir)
}
