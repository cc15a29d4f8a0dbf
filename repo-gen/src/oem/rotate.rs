//! Key rotation of the master repository, for every role including root. Rotating `vehicles`
//! re-signs the fleet index only: vehicles' assignments are trusted through it by hash.

use super::publish::publish_with;
use super::Settings;
use crate::error::Result;
use crate::publish::Report;
use crate::rotation::Rotatable;
use crate::workdir::RoleConfig;
use ota_metadata::roles::Root;
use ota_metadata::{DateTime, SigningKey};
use std::collections::BTreeMap;
use std::path::Path;

impl Rotatable for Settings {
    fn load(dir: &Path) -> Result<Self> {
        Settings::load(dir)
    }
    fn top_level(&self) -> &BTreeMap<String, RoleConfig> {
        &self.roles
    }
    fn top_level_mut(&mut self) -> &mut BTreeMap<String, RoleConfig> {
        &mut self.roles
    }
    fn check_keys(&self) -> Result<()> {
        super::check_key_separation(&self.roles)
    }
    fn publish_all(
        &self,
        dir: &Path,
        root: &Root,
        now: DateTime,
        also: &BTreeMap<String, Vec<SigningKey>>,
    ) -> Result<Report> {
        Ok(publish_with(dir, self, root, now, true, also)?.roles)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Settings::save(self, dir)
    }
}
