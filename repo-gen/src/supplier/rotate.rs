//! Key rotation of a supplier repository: the shared procedure of [`crate::rotation`], plus
//! the supplier's own documents: image manifests are signed by the role that lists the image.

use super::add_image::{manifest_of, write_manifests};
use super::publish::publish_with;
use super::Settings;
use crate::error::Result;
use crate::publish::Report;
use crate::rotation::Rotatable;
use crate::workdir::{self, RoleConfig};
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
    fn other_role_mut(&mut self, role: &str) -> Option<&mut RoleConfig> {
        self.delegations
            .iter_mut()
            .find(|d| d.name == role)
            .map(|d| &mut d.role)
    }
    fn resign(
        &mut self,
        dir: &Path,
        role: &str,
        keys: &[&SigningKey],
        _now: DateTime,
    ) -> Result<()> {
        let repo = workdir::repository_path(dir);
        for i in 0..self.images.len() {
            if self.images[i].role == role {
                let m = manifest_of(&self.name, &self.images[i])?;
                let (manifest, compact) = write_manifests(&repo, &m, keys)?;
                self.images[i].manifest = manifest;
                self.images[i].compact = compact;
            }
        }
        Ok(())
    }
    fn publish_all(
        &self,
        dir: &Path,
        root: &Root,
        now: DateTime,
        also: &BTreeMap<String, Vec<SigningKey>>,
    ) -> Result<Report> {
        publish_with(&workdir::repository_path(dir), self, root, now, true, also)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Settings::save(self, dir)
    }
}
