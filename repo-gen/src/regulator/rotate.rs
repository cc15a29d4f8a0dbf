//! Key rotation of an attestation repository. Attestations are signed by the targets keys, so
//! rotating `targets` re-signs every attestation (same content, new signatures).

use super::publish::publish_with;
use super::Settings;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::publish::Report;
use crate::rotation::Rotatable;
use crate::supplier::store_target;
use crate::workdir::{self, RoleConfig};
use ota_metadata::documents::attestation_target;
use ota_metadata::roles::Root;
use ota_metadata::{sign_document, DateTime, Envelope, SigningKey};
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
    fn resign(
        &mut self,
        dir: &Path,
        role: &str,
        keys: &[&SigningKey],
        _now: DateTime,
    ) -> Result<()> {
        if role != "targets" {
            return Ok(());
        }
        let repo = workdir::repository_path(dir);
        for (sha, rec) in self.attestations.iter_mut() {
            let name = attestation_target(sha);
            let path = repo
                .join("targets")
                .join(format!("{}.{name}", rec.file.sha256));
            let bytes = fsutil::read_bounded(&path, 1 << 20)?;
            let env = Envelope::parse(&name, &bytes, 1 << 20).map_err(Error::meta(&path))?;
            let resigned = sign_document(env.signed_value(), keys)?;
            rec.file = store_target(&repo, &name, &resigned)?;
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
        publish_with(dir, self, root, now, true, also)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Settings::save(self, dir)
    }
}
