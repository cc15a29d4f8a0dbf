//! Authorizing regulators, and how many distinct ones must approve an image.

use super::suppliers::check_url;
use super::Settings;
use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::documents::{verified_root, RepositoryPin};
use ota_metadata::{names, MetadataLimits};
use std::path::Path;

pub fn regulator_add(dir: &Path, name: &str, root_file: &Path, url: &str) -> Result<()> {
    let mut s = Settings::load(dir)?;
    names::check_role_name(name)?;
    if s.regulators.contains_key(name) {
        return Err(Error::refused(format!("regulator {name} already exists")));
    }
    check_url(url)?;
    let limit = MetadataLimits::default().root;
    let bytes = fsutil::read_bounded(root_file, limit)?;
    let root = verified_root(
        &format!("regulator {name} root {}", root_file.display()),
        &bytes,
        limit,
    )?;
    s.regulators
        .insert(name.into(), RepositoryPin::pin(&root, url)?);
    s.save(dir)
}

pub fn regulator_remove(dir: &Path, name: &str) -> Result<()> {
    let mut s = Settings::load(dir)?;
    if s.regulators.remove(name).is_none() {
        return Err(Error::refused(format!("unknown regulator {name:?}")));
    }
    if (s.regulators.len() as u32) < s.regulator_threshold {
        eprintln!(
            "ota-repo: warning: {} regulator(s) left but {} approvals required: no image can be installed until another is added or the threshold lowered",
            s.regulators.len(),
            s.regulator_threshold
        );
    }
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
