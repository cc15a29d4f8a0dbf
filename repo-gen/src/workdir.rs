//! A publisher's working directory: its settings file (`ota-repo.json`, never published) and
//! the served tree beneath it (`repository/`).
//!
//! ```text
//! DIR/ota-repo.json        settings and state: role keys (paths), thresholds, expiries, content
//! DIR/repository/          the static tree to upload to any web server or CDN
//! ```

use crate::error::{Error, Result};
use crate::fsutil;
use crate::keystore;
use ota_metadata::time::parse_duration;
use ota_metadata::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SETTINGS: &str = "ota-repo.json";
pub const REPOSITORY: &str = "repository";
const MAX_SETTINGS: u64 = 256 * 1024 * 1024;

/// Keys, threshold and lifetime of one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Private key files (absolute paths).
    pub keys: Vec<PathBuf>,
    pub threshold: u32,
    /// How long a freshly signed document stays valid, e.g. `7d`.
    pub expires: String,
}

impl RoleConfig {
    pub fn new(keys: Vec<PathBuf>, threshold: u32, expires: &str) -> Result<Self> {
        let keys = keys
            .iter()
            .map(|k| absolute(k))
            .collect::<Result<Vec<_>>>()?;
        let rc = RoleConfig {
            keys,
            threshold,
            expires: expires.into(),
        };
        rc.lifetime()?;
        Ok(rc)
    }

    /// The lifetime in seconds, at most [`MAX_LIFETIME`].
    pub fn lifetime(&self) -> Result<i64> {
        parse_lifetime(&self.expires)
    }

    /// Make relative key paths relative to `base` (the working directory), so a checked-in
    /// tree with relative paths works from any current directory.
    pub fn resolve_keys(&mut self, base: &Path) {
        for k in &mut self.keys {
            if k.is_relative() {
                *k = base.join(&*k);
            }
        }
    }

    pub fn load_keys(&self, role: &str) -> Result<Vec<SigningKey>> {
        if self.keys.is_empty() {
            return Err(Error::refused(format!(
                "role {role} has no signing keys configured"
            )));
        }
        self.keys.iter().map(|p| keystore::load(p)).collect()
    }
}

/// The longest lifetime of any role: 10 years (3653 days). Longer ones only postpone the
/// discovery of a lost key, and absurd ones write years no TUF reader parses. No role outlives
/// root in practice either: `publish` refuses a timestamp that would outlive the root.
pub const MAX_LIFETIME: i64 = 3653 * 86_400;

/// A lifetime such as `7d`, in seconds, at most [`MAX_LIFETIME`].
pub fn parse_lifetime(s: &str) -> Result<i64> {
    let secs = parse_duration(s)?;
    check_lifetime(secs)?;
    Ok(secs)
}

/// Check the settings of `role` as loaded from `dir`'s settings file, naming the file: its
/// lifetime, and a threshold its keys can meet (a settings file edited by hand is refused
/// here, not silently published with a role nobody can sign).
pub fn check_role(dir: &Path, role: &str, rc: &RoleConfig) -> Result<()> {
    rc.lifetime().map_err(|e| Error::Config {
        path: settings_path(dir),
        reason: format!("role {role}: expires {:?}: {e}", rc.expires),
    })?;
    if rc.threshold == 0 || rc.threshold as usize > rc.keys.len() {
        return Err(Error::Threshold {
            path: settings_path(dir),
            role: role.to_string(),
            threshold: rc.threshold,
            keys: rc.keys.len(),
        });
    }
    Ok(())
}

/// Refuse a lifetime (seconds) over [`MAX_LIFETIME`].
pub fn check_lifetime(secs: i64) -> Result<()> {
    if secs > MAX_LIFETIME {
        return Err(Error::refused(format!(
            "a lifetime of {} days is longer than the maximum of 10 years (3653d)",
            secs / 86_400
        )));
    }
    Ok(())
}

/// The `kind` of the working directory `dir` (supplier, oem, regulator), if it is one.
pub fn kind_of(dir: &Path) -> Option<String> {
    let bytes = fsutil::read_bounded(&settings_path(dir), MAX_SETTINGS).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("kind")?.as_str().map(str::to_string)
}

/// The absolute path of key file `p`, which must be a regular file (a directory, FIFO or
/// device is named as such, not as missing).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(Error::io(p))?;
    match std::fs::metadata(&abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::refused(format!(
            "key file {} does not exist",
            abs.display()
        ))),
        Err(e) => Err(Error::io(&abs)(e)),
        Ok(_) => {
            fsutil::check_regular(&abs).map_err(|e| match e {
                Error::NotRegularFile { path, kind } => Error::refused(format!(
                    "key file {} is {kind}, not a key file",
                    path.display()
                )),
                e => e,
            })?;
            Ok(abs)
        }
    }
}

pub fn settings_path(dir: &Path) -> PathBuf {
    dir.join(SETTINGS)
}

pub fn repository_path(dir: &Path) -> PathBuf {
    dir.join(REPOSITORY)
}

/// Check that `dir` may become a new `kind` working directory: not one already, and not the
/// home of a published tree whose settings were lost. A new root written over a published one
/// would cut off every vehicle that trusts it.
pub fn check_new(dir: &Path, kind: &str) -> Result<()> {
    if settings_path(dir).exists() {
        return Err(Error::refused(format!(
            "{} is already an ota-repo directory",
            dir.display()
        )));
    }
    let repo = repository_path(dir);
    if let Some(file) = first_file(&repo) {
        return Err(Error::refused(format!(
            "{} already holds a published tree ({}) but {} has no {SETTINGS}: a new {kind} root \
             would replace the one vehicles trust. Restore {} from your backup to keep \
             publishing this tree, or run `ota-repo {kind} init` on a new directory; if the tree \
             was never published (an interrupted init), remove {} first",
            repo.display(),
            file.display(),
            dir.display(),
            settings_path(dir).display(),
            repo.display()
        )));
    }
    // The served tree itself, given instead of its working directory.
    for name in ["timestamp.json", "root.json", "1.root.json"] {
        if dir.join(name).exists() {
            return Err(Error::refused(format!(
                "{} is a published tree (it holds {name}), not a working directory; run `ota-repo \
                 {kind} init` on a new directory (its tree will be DIR/{REPOSITORY})",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Create working directory `dir` with its scratch directory and an empty tree (and
/// `repository/targets/` when `targets`), before anything is written into them.
pub fn create(dir: &Path, targets: bool) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        // Made here: a web server must be able to pass through it to the tree (ota-repo.json
        // and the keys keep their own 0600/0700).
        fsutil::make_public(dir, 0o711)?;
    }
    let scratch = dir.join(fsutil::SCRATCH);
    std::fs::create_dir_all(&scratch).map_err(Error::io(&scratch))?;
    let repo = repository_path(dir);
    let mut tree = vec![repo.clone()];
    if targets {
        tree.push(repo.join("targets"));
    }
    for d in tree {
        std::fs::create_dir_all(&d).map_err(Error::io(&d))?;
        fsutil::make_public(&d, fsutil::PUBLIC_DIR)?;
    }
    Ok(())
}

/// Some file under `dir` (searched depth-first), if there is any.
fn first_file(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                if let Some(f) = first_file(&path) {
                    return Some(f);
                }
            }
            Ok(_) => return Some(path),
            Err(_) => {}
        }
    }
    None
}

/// Hold an exclusive lock on working directory `dir` while a command changes it, so two
/// concurrent commands cannot lose each other's changes. Released when the file is dropped.
/// Directories that are not (yet) working directories are not locked: the command reports
/// that itself, and no lock file is left behind in them. Fails at once when another command
/// holds the lock ([`Error::Locked`]); see [`lock_waiting`] to wait for it.
pub fn lock(dir: &Path) -> Result<Option<std::fs::File>> {
    lock_waiting(dir, None)
}

/// How often a waiting command tries the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// [`lock`], waiting up to `wait` seconds for another command to release the lock (`--wait`,
/// for publishes from cron that may meet an operator's command). `None` does not wait.
pub fn lock_waiting(dir: &Path, wait: Option<u64>) -> Result<Option<std::fs::File>> {
    if !settings_path(dir).exists() {
        return Ok(None);
    }
    let path = dir.join(".ota-repo.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    let deadline = wait.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut told = false;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let Some(deadline) = deadline.filter(|d| std::time::Instant::now() < *d) else {
                    return Err(Error::Locked {
                        dir: dir.to_path_buf(),
                        waited: wait,
                    });
                };
                if !told {
                    crate::warn::note(format!(
                        "waiting up to {} s for another ota-repo command to finish in {}",
                        wait.unwrap_or(0),
                        dir.display()
                    ));
                    told = true;
                }
                std::thread::sleep(
                    LOCK_POLL.min(deadline.saturating_duration_since(std::time::Instant::now())),
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::Io { path, source: e }),
        }
    }
    // Older working directories have no scratch directory yet.
    let scratch = dir.join(fsutil::SCRATCH);
    std::fs::create_dir_all(&scratch).map_err(Error::io(&scratch))?;
    fsutil::sweep_stale(dir);
    Ok(Some(f))
}

/// Read the settings of the working directory `dir`, expecting kind `kind`.
pub fn load<T: DeserializeOwned>(dir: &Path, kind: &str) -> Result<T> {
    let path = settings_path(dir);
    if !path.exists() {
        return Err(Error::refused(format!(
            "{} is not an ota-repo {kind} directory (no {SETTINGS}); run `ota-repo {kind} init {}` first",
            dir.display(),
            dir.display()
        )));
    }
    let bytes = fsutil::read_bounded(&path, MAX_SETTINGS)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let found = v.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
    if found != kind {
        return Err(Error::Config {
            path,
            reason: format!("this is a {found} directory, not a {kind} one"),
        });
    }
    serde_json::from_value(v).map_err(|e| Error::Config {
        path,
        reason: e.to_string(),
    })
}

/// Atomically replace the settings file.
pub fn save<T: Serialize>(dir: &Path, settings: &T) -> Result<()> {
    let bytes = ota_metadata::canonical::to_pretty(settings)?;
    fsutil::write_atomic(&settings_path(dir), &bytes)
}
