//! Authorizing regulators, and how many distinct ones must approve an image.

use super::suppliers::pin_from_file;
use super::Settings;
use crate::error::{Error, Result};

use ota_metadata::documents::{RegulatorPolicy, RepositoryPin};
use ota_metadata::names;
use std::path::Path;

/// The pin of regulator `name` from its root file, refused if another authorized regulator
/// holds any of its root keys: regulators count by key material, so the same regulator under
/// two names would let one approval pass for two.
fn regulator_pin(s: &Settings, name: &str, root_file: &Path, url: &str) -> Result<RepositoryPin> {
    let pin = pin_from_file(&format!("regulator {name}"), root_file, url)?;
    let policy = RegulatorPolicy {
        threshold: s.regulator_threshold,
        regulators: s.regulators.clone(),
    };
    if let Some(other) = policy.sharing_keys(&pin.key_material(), name) {
        return Err(Error::refused(format!(
            "the root of {name} ({}) shares root keys with regulator {other}: one regulator cannot be authorized twice",
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
