//! Phase one's store: every image of an update, downloaded and verified, before any ECU hears
//! of the update. Images are kept by SHA-256 (`STATE_DIR/staging/<sha256>.image`), so a run
//! that was cut off reuses each image it completed (re-hashed first) instead of downloading it
//! again; a broken connection within a run is resumed with HTTP Range by the downloader.
//! Downloads in progress and manifests go through `staging/incoming/`, cleared at the start
//! of each phase one, so the directory never holds anything unverified.
//!
//! The disk budget (`limits.staging_budget`, bytes) bounds the whole update: when the signed
//! lengths of its images add up to more, the update is refused before anything is downloaded.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The default disk budget of phase one: 4 GiB.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

/// How long a partial download stopped by SIGTERM is kept for resuming.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(
        "the update needs {needed} bytes of staging for {images} image(s) (their signed \
         lengths), over the disk budget of {budget} bytes (limits.staging_budget); nothing \
         was downloaded and no ECU was touched"
    )]
    OverBudget {
        needed: u64,
        budget: u64,
        images: usize,
    },
    #[error("staging {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a SHA-256 in hex")]
    BadHash(String),
}

/// Create `dir` (and missing parents) with mode 0700, and narrow it to 0700 if it exists.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StagingError + '_ {
    move |source| StagingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Staging {
    dir: PathBuf,
    budget: u64,
}

impl Staging {
    /// The staging area of the gateway whose state lives in `state_dir`.
    pub fn new(state_dir: &Path, budget: u64) -> Self {
        Staging {
            dir: state_dir.join("staging"),
            budget,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where downloads in progress and manifests go.
    pub fn incoming(&self) -> PathBuf {
        self.dir.join("incoming")
    }

    /// Where the plaintext of an encrypted target is decrypted while it downloads: a partial
    /// download (kept for resuming when a run is stopped), named by the ciphertext's SHA-256
    /// (the target's), so another encryption of the same plaintext (another key and nonce)
    /// never resumes from it; by `plaintext_sha256` only if the target lists no usable sha256.
    pub fn partial_plaintext(
        &self,
        target: &ota_metadata::roles::TargetFile,
        plaintext_sha256: &str,
    ) -> PathBuf {
        let hex = |h: &&String| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        let name = target
            .hashes
            .get("sha256")
            .filter(hex)
            .map_or(plaintext_sha256, |h| h.as_str());
        self.incoming().join(format!(".partial-{name}.plain"))
    }

    /// Where the image of SHA-256 `sha256` (hex) is kept.
    pub fn path(&self, sha256: &str) -> Result<PathBuf, StagingError> {
        let ok = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(StagingError::BadHash(sha256.into()));
        }
        Ok(self
            .dir
            .join(format!("{}.image", sha256.to_ascii_lowercase())))
    }

    /// Refuse an update whose images (`lengths`, as signed) do not fit the budget.
    pub fn check_budget(&self, lengths: &[u64]) -> Result<(), StagingError> {
        let needed = lengths.iter().fold(0u64, |sum, l| sum.saturating_add(*l));
        if needed > self.budget {
            return Err(StagingError::OverBudget {
                needed,
                budget: self.budget,
                images: lengths.len(),
            });
        }
        Ok(())
    }

    /// Start a phase one: clear `incoming/` and every staged image not in `keep` (hex
    /// SHA-256s), left over from an update that was replaced or abandoned. Partial downloads
    /// (`incoming/.partial-*`, left by a stop on SIGTERM) younger than [`PARTIAL_MAX_AGE`]
    /// stay, for the download to resume; they are checked by hash like any download.
    pub fn prepare(&self, keep: &[String]) -> Result<(), StagingError> {
        let incoming = self.incoming();
        // Only the gateway's user enters staging: it holds decrypted images.
        private_dir(&self.dir).map_err(io_err(&self.dir))?;
        private_dir(&incoming).map_err(io_err(&incoming))?;
        for entry in std::fs::read_dir(&incoming).map_err(io_err(&incoming))? {
            let entry = entry.map_err(io_err(&incoming))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(io_err(&path))?;
            let young = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age < PARTIAL_MAX_AGE);
            let partial = entry.file_name().to_string_lossy().starts_with(".partial-");
            if meta.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else if !(partial && young && meta.is_file()) {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        let keep: Vec<PathBuf> = keep
            .iter()
            .map(|h| self.path(h))
            .collect::<Result<_, _>>()?;
        for entry in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            if path.is_file() && !keep.contains(&path) {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    /// The staged image of SHA-256 `sha256` and `length` bytes, if a complete, intact copy is
    /// there (hashed again); a damaged copy is removed.
    pub fn staged(&self, sha256: &str, length: u64) -> Result<Option<PathBuf>, StagingError> {
        let path = self.path(sha256)?;
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut h = Sha256::new();
        let n = std::io::copy(&mut f, &mut h).map_err(io_err(&path))?;
        if n == length && hex::encode(h.finalize()).eq_ignore_ascii_case(sha256) {
            return Ok(Some(path));
        }
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        Ok(None)
    }

    /// Move a verified download (`downloaded`, in `incoming/`) into place under its hash.
    /// Not durable by itself: [`Staging::sync`] makes every image kept so far durable at once.
    pub fn keep(&self, downloaded: &Path, sha256: &str) -> Result<PathBuf, StagingError> {
        let path = self.path(sha256)?;
        std::fs::rename(downloaded, &path).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Make every image kept so far survive a power cut, in one flush at the end of phase one
    /// rather than an fsync per image (two per image cost more than hashing them).
    ///
    /// Which writes must survive a power cut, and why:
    /// - before the update is committed, none of the staged images: a run cut off before the
    ///   commit discards what the ECUs hold pending, and its next phase one re-hashes every
    ///   staged image before reusing it ([`Staging::staged`]) and downloads again what is
    ///   missing, short or damaged;
    /// - once the journal says the update is committed, the update can only go forward, and an
    ///   ECU that lost its pending image is sent it again from staging (re-hashed first). A
    ///   staged image lost in a power cut after the commit could not be replaced without the
    ///   network, so every staged image is flushed before the journal records anything.
    pub fn sync(&self) -> Result<(), StagingError> {
        let dir = std::fs::File::open(&self.dir).map_err(io_err(&self.dir))?;
        sync_filesystem(&dir, &self.dir).map_err(io_err(&self.dir))
    }

    /// Forget the staged image of SHA-256 `sha256` (once every ECU runs it).
    pub fn remove(&self, sha256: &str) {
        if let Ok(path) = self.path(sha256) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Flush the data and metadata of every file of the filesystem `dir` is on (`syncfs`): one
/// call for all the images of an update, their directory entries included.
#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &std::fs::File, _path: &Path) -> std::io::Result<()> {
    rustix::fs::syncfs(dir).map_err(std::io::Error::from)
}

/// Elsewhere, an fsync of every file in the staging directory, then of the directory.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(dir: &std::fs::File, path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if p.is_file() {
            std::fs::File::open(&p)?.sync_all()?;
        }
    }
    dir.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_reuse_and_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Staging::new(tmp.path(), 100);
        assert!(s.check_budget(&[60, 40]).is_ok());
        assert!(matches!(
            s.check_budget(&[60, 41]),
            Err(StagingError::OverBudget {
                needed: 101,
                budget: 100,
                images: 2
            })
        ));
        assert!(matches!(
            s.check_budget(&[u64::MAX, 1]),
            Err(StagingError::OverBudget { .. })
        ));
        assert!(matches!(s.path("../x"), Err(StagingError::BadHash(_))));

        std::fs::create_dir_all(s.dir()).unwrap();
        s.prepare(&[]).unwrap();
        let body = b"firmware".to_vec();
        let sha = hex::encode(Sha256::digest(&body));
        let dl = s.incoming().join("dl");
        std::fs::write(&dl, &body).unwrap();
        let kept = s.keep(&dl, &sha).unwrap();
        s.sync().unwrap();
        assert_eq!(s.staged(&sha, 8).unwrap(), Some(kept.clone()));
        // A damaged copy is not reused.
        std::fs::write(&kept, b"firmwarX").unwrap();
        assert_eq!(s.staged(&sha, 8).unwrap(), None);
        assert!(!kept.exists());
        // Leftovers of another update go.
        std::fs::write(&kept, &body).unwrap();
        let other = s.path(&"a".repeat(64)).unwrap();
        std::fs::write(&other, b"old").unwrap();
        s.prepare(std::slice::from_ref(&sha)).unwrap();
        assert!(kept.exists() && !other.exists());
    }
}
