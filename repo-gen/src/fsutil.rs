//! Atomic file writes: a reader (or a web server) sees the old file or the new one, never half
//! of either.
//!
//! Temporary files are made in the working directory's scratch directory ([`SCRATCH`], beside
//! `ota-repo.json`) and renamed into place, so a crash never leaves one in the served tree;
//! the next command that locks the directory removes what a crash left ([`sweep_stale`]).
//! Only when the tree is on another file system than its working directory (a rename cannot
//! cross one) are they made beside their destination, and swept from there.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A working directory's scratch directory, for temporary files; never published.
pub const SCRATCH: &str = ".ota-repo-tmp";
/// The prefix of every temporary file this program makes.
const TMP_PREFIX: &str = ".tmp-";

/// Where to make the temporary file for a file in the (existing) directory `dir`: the scratch
/// directory of the nearest working directory above it, if on the same file system; else
/// `dir` itself.
fn staging_for(dir: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for a in abs.ancestors() {
        let scratch = a.join(SCRATCH);
        if let Ok(m) = fs::metadata(&scratch) {
            if m.is_dir() && fs::metadata(dir).is_ok_and(|d| d.dev() == m.dev()) {
                return scratch;
            }
            break;
        }
    }
    dir.to_path_buf()
}

/// A new temporary file from which `dir`'s file will be renamed into place.
pub fn temp_for(dir: &Path) -> Result<tempfile::NamedTempFile> {
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let staging = staging_for(dir);
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(&staging)
        .map_err(Error::io(&staging))
}

/// Remove the temporary files a crash left in working directory `dir`: everything in its
/// scratch directory, and `.tmp-*` files in the directory, its `keys/`, and the tree's top
/// and `targets/` (where older versions made them); the whole tree when it is on another file
/// system. Best effort; run under the directory's lock, so no other command is writing them.
pub fn sweep_stale(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(entries) = fs::read_dir(dir.join(SCRATCH)) {
        for e in entries.flatten() {
            let _ = fs::remove_file(e.path());
        }
    }
    let repo = dir.join(crate::workdir::REPOSITORY);
    for d in [
        dir.to_path_buf(),
        dir.join("keys"),
        repo.clone(),
        repo.join("targets"),
    ] {
        sweep_dir(&d, false);
    }
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    if dev(&repo).is_some() && dev(&repo) != dev(dir) {
        sweep_dir(&repo, true);
    }
}

fn sweep_dir(dir: &Path, recursive: bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() && recursive => sweep_dir(&e.path(), true),
            Ok(t) if t.is_file() && e.file_name().to_string_lossy().starts_with(TMP_PREFIX) => {
                let _ = fs::remove_file(e.path());
            }
            _ => {}
        }
    }
}

/// Write `bytes` to `path` through a temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let mut tmp = temp_for(dir)?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir);
    Ok(())
}

/// Write a published file that must never change once written (a versioned metadata file, a
/// content-addressed target): web servers, CDNs and clients may hold the old copy, so a
/// different file under the same name would split the world. Writing the same bytes again is
/// a no-op; different bytes are refused. Returns whether the file was created.
pub fn write_once(path: &Path, bytes: &[u8]) -> Result<bool> {
    if path.exists() {
        return same_content(path, bytes).map(|()| false);
    }
    let dir = parent(path);
    let mut tmp = temp_for(dir)?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        // Appeared meanwhile: the same rule applies.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return same_content(path, bytes).map(|()| false)
        }
        Err(e) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e.error,
            })
        }
    }
    sync_dir(dir);
    Ok(true)
}

/// Succeeds when the file at `path` holds exactly `bytes`.
fn same_content(path: &Path, bytes: &[u8]) -> Result<()> {
    let f = File::open(path).map_err(Error::io(path))?;
    let mut have = Vec::new();
    f.take(bytes.len() as u64 + 1)
        .read_to_end(&mut have)
        .map_err(Error::io(path))?;
    if have == bytes {
        Ok(())
    } else {
        Err(immutable(path))
    }
}

/// The refusal to replace a published file with other bytes.
pub fn immutable(path: &Path) -> Error {
    Error::refused(format!(
        "{} is already published with other content; a published file is never replaced \
         (web servers, CDNs and vehicles may hold the old copy), so nothing was changed. If the \
         file was damaged, restore it from the copy your web server serves and run the command \
         again",
        path.display()
    ))
}

/// Create `path` with mode 0600, failing if it exists (never overwrite a key).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    if path.exists() {
        return Err(Error::refused(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-key-")
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    // tempfile creates files with mode 0600 on Unix already; the key never exists with
    // wider permissions.
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist_noclobber(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir);
    Ok(())
}

/// Read a whole file, refusing one over `limit` bytes (checked before and while reading).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(Error::io(path))?;
    let len = f.metadata().map_err(Error::io(path))?.len();
    if len > limit {
        return Err(Error::refused(format!(
            "{} is {len} bytes, over the limit of {limit}",
            path.display()
        )));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(Error::io(path))?;
    if out.len() as u64 > limit {
        return Err(Error::refused(format!(
            "{} grew past the limit of {limit} bytes while being read",
            path.display()
        )));
    }
    Ok(out)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; failure only weakens durability, never correctness.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
