//! Key rotation for every role of every publisher: the one procedure, so no publisher gets the
//! order wrong.
//!
//! 1. The role's keys are replaced in the settings (in memory).
//! 2. Everything the role signs is re-signed by the old *and* the new keys: documents outside
//!    the TUF roles first (image manifests, attestations, assignments), then the TUF roles,
//!    timestamp last. Clients that still trust the old root accept all of it (the old keys
//!    signed), and so will clients that have moved to the new one.
//! 3. Only then, for a top-level role, does the next root appear (`N+1.root.json`, signed by the
//!    outgoing root keys and by the incoming ones).
//! 4. The settings are saved.
//!
//! A kill at any point is recovered by the next `rotate-key` or `publish` ([`resume`]): the
//! rotation is recorded (`DIR/rotation.json`, never published) before anything is written and
//! removed once the settings are saved. Found at the next command: if the new root is out
//! (`N+1.root.json` written), the rotation is finished (`root.json` made that root, the
//! settings take the new keys), since clients may already hold that root; if not, nothing a
//! client trusts changed (the tree was at most co-signed by both keys under the old root), so
//! the rotation is undone and can be run again. A delegated role's rotation, which changes no
//! root, is finished: the next publish signs under the new keys.
//!
//! Later documents are signed by the new keys alone. For a compromised key that is what
//! matters: once clients hold the new root, nothing the old key signs is accepted for the role.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::publish::{read_root, write_root, Report};
use crate::root_build::{build_root, check_threshold, signing_keys};
use crate::workdir::{self, RoleConfig};
use ota_metadata::roles::Root;
use ota_metadata::{DateTime, SigningKey};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a publisher provides for its keys to be rotated.
pub trait Rotatable: Sized {
    /// The publisher's settings in working directory `dir`.
    fn load(dir: &Path) -> Result<Self>;
    /// The top-level roles listed in root, with their keys.
    fn top_level(&self) -> &BTreeMap<String, RoleConfig>;
    fn top_level_mut(&mut self) -> &mut BTreeMap<String, RoleConfig>;
    /// A role that is not in root (a supplier's tier-2 delegation), if the publisher has any.
    fn other_role_mut(&mut self, _role: &str) -> Option<&mut RoleConfig> {
        None
    }
    /// Refuse key settings the publisher does not allow (checked with the new keys in place,
    /// before anything is written).
    fn check_keys(&self) -> Result<()> {
        Ok(())
    }
    /// Re-sign the documents outside the TUF roles that `role`'s keys sign, with `keys`.
    fn resign(
        &mut self,
        _dir: &Path,
        _role: &str,
        _keys: &[&SigningKey],
        _now: DateTime,
    ) -> Result<()> {
        Ok(())
    }
    /// Publish everything under `root`, re-signing all roles, with `also_sign` co-signing.
    fn publish_all(
        &self,
        dir: &Path,
        root: &Root,
        now: DateTime,
        also_sign: &BTreeMap<String, Vec<SigningKey>>,
    ) -> Result<Report>;
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Load the settings of the publisher in `dir` and rotate `role`'s keys: what `rotate-key`
/// runs for every publisher.
pub fn rotate<R: Rotatable>(
    dir: &Path,
    role: &str,
    new_keys: Vec<PathBuf>,
    threshold: Option<u32>,
    now: DateTime,
) -> Result<Report> {
    resume::<R>(dir, now)?;
    let mut s = R::load(dir)?;
    rotate_key(dir, &mut s, role, new_keys, threshold, now)
}

/// A rotation in flight, kept beside the settings until they are saved.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InFlight {
    role: String,
    /// The role's new keys, threshold and lifetime.
    config: RoleConfig,
    /// Whether the role is one of root's (the rotation then writes a new root).
    top_level: bool,
    /// The root version the rotation started from: it writes the next one.
    from_root: u64,
}

const IN_FLIGHT: &str = "rotation.json";

fn in_flight_path(dir: &Path) -> PathBuf {
    dir.join(IN_FLIGHT)
}

/// What [`resume`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    /// No rotation was in flight.
    Nothing,
    /// The rotation of this role was finished: its new keys are in force.
    Finished(String),
    /// The rotation of this role was undone: its old keys are in force; run it again.
    Undone(String),
}

/// Finish or undo a rotation a kill cut off (see the module documentation). Every
/// `rotate-key` and `publish` runs it first, under the working directory's lock.
pub fn resume<R: Rotatable>(dir: &Path, now: DateTime) -> Result<Resumed> {
    let path = in_flight_path(dir);
    if !path.exists() {
        return Ok(Resumed::Nothing);
    }
    let bytes = fsutil::read_bounded(&path, 1 << 20)?;
    let j: InFlight = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.clone(),
        reason: format!(
            "a key rotation record that cannot be read ({e}); remove it and run rotate-key again"
        ),
    })?;
    let repo = workdir::repository_path(dir);
    let next = repo.join(format!("{}.root.json", j.from_root + 1));
    let finish = !j.top_level || next.exists();
    if finish {
        if j.top_level {
            // The new root may be out: it is the root from now on.
            let root = fsutil::read_bounded(&next, 16 << 20)?;
            if fsutil::read_bounded(&repo.join("root.json"), 16 << 20).ok() != Some(root.clone()) {
                fsutil::write_atomic(&repo.join("root.json"), &root)?;
            }
        }
        let mut s = R::load(dir)?;
        // The settings on disk are the old ones: what the role signs outside the TUF roles
        // (image manifests, attestations, assignments) is re-signed again, by the new keys and
        // the old ones where they can still be read, as the rotation did before the cut.
        let old = match s.top_level().get(&j.role) {
            Some(rc) => Some(rc.clone()),
            None => s.other_role_mut(&j.role).map(|rc| rc.clone()),
        };
        let old_signers = old
            .and_then(|rc| rc.load_keys(&j.role).ok())
            .unwrap_or_default();
        let new_signers = j.config.load_keys(&j.role)?;
        if j.top_level {
            s.top_level_mut().insert(j.role.clone(), j.config);
        } else if let Some(rc) = s.other_role_mut(&j.role) {
            *rc = j.config;
        }
        let mut both: Vec<&SigningKey> = new_signers.iter().collect();
        both.extend(old_signers.iter());
        s.resign(dir, &j.role, &both, now)?;
        s.save(dir)?;
    }
    fsutil::remove_durably(&path)?;
    Ok(if finish {
        tell!(
            "ota-repo: finished the rotation of role {}'s keys that a previous run left cut off",
            j.role
        );
        Resumed::Finished(j.role)
    } else {
        tell!(
            "ota-repo: undid the rotation of role {}'s keys that a previous run left cut off (nothing a client trusts had changed); run rotate-key again",
            j.role
        );
        Resumed::Undone(j.role)
    })
}

/// The configuration of `role`: a top-level role's, or another role's (a delegation).
fn role_config<R: Rotatable>(s: &mut R, role: &str) -> Result<RoleConfig> {
    match s.top_level().get(role) {
        Some(rc) => Ok(rc.clone()),
        None => s
            .other_role_mut(role)
            .map(|rc| rc.clone())
            .ok_or_else(|| Error::refused(format!("no role named {role:?}"))),
    }
}

/// Replace the keys of `role` with `new_keys` (and optionally its threshold). The procedure:
/// the new keys loaded and their threshold checked → the settings changed and a new root
/// built (a top-level role) → the rotation recorded as in flight (a kill is resumed or undone)
/// → the other documents and the roles re-signed by old and new keys together → the new root
/// written, signed by the outgoing and incoming root keys → the settings saved.
pub fn rotate_key<R: Rotatable>(
    dir: &Path,
    s: &mut R,
    role: &str,
    new_keys: Vec<PathBuf>,
    threshold: Option<u32>,
    now: DateTime,
) -> Result<Report> {
    let repo = workdir::repository_path(dir);
    let old_root = read_root(&repo)?;
    if new_keys.is_empty() {
        return Err(Error::refused("give the new key(s) with --new-key FILE"));
    }
    let is_top = s.top_level().contains_key(role);
    let old_rc = role_config(s, role)?;
    let new_rc = RoleConfig::new(
        new_keys,
        threshold.unwrap_or(old_rc.threshold),
        &old_rc.expires,
    )?;
    let new_signers = new_rc.load_keys(role)?;
    let ids: BTreeSet<_> = new_signers.iter().map(|k| k.key_id().clone()).collect();
    check_threshold(role, &new_rc, ids.len())?;
    let old_signers = old_rc.load_keys(role)?;
    let old_root_rc = s.top_level()["root"].clone();

    if is_top {
        s.top_level_mut().insert(role.into(), new_rc);
    } else if let Some(rc) = s.other_role_mut(role) {
        *rc = new_rc;
    }
    s.check_keys()?;
    let new_root = if is_top {
        Some(build_root(s.top_level(), old_root.version + 1, now)?)
    } else {
        None
    };
    let signing_root = new_root.as_ref().unwrap_or(&old_root);
    let in_flight = in_flight_path(dir);
    let record = InFlight {
        role: role.to_string(),
        config: role_config(s, role)?,
        top_level: is_top,
        from_root: old_root.version,
    };
    let record = serde_json::to_vec_pretty(&record).map_err(|e| Error::refused(e.to_string()))?;
    fsutil::write_atomic(&in_flight, &record)?;

    // Documents outside the roles, co-signed during the transition.
    let mut both: Vec<&SigningKey> = new_signers.iter().collect();
    both.extend(old_signers.iter());
    s.resign(dir, role, &both, now)?;

    let report = if role == "root" {
        Report::default()
    } else {
        let also = BTreeMap::from([(role.to_string(), old_signers.clone())]);
        s.publish_all(dir, signing_root, now, &also)?
    };

    if let Some(root) = &new_root {
        let outgoing = signing_keys(&old_root, "root", &old_root_rc)?;
        let incoming = signing_keys(root, "root", &s.top_level()["root"])?;
        let mut all: Vec<&SigningKey> = outgoing.iter().collect();
        all.extend(incoming.iter());
        write_root(&repo, root, &all)?;
    }
    s.save(dir)?;
    fsutil::remove_durably(&in_flight)?;
    Ok(report)
}
