//! The local metadata directory: one file per role, `root.json`, `timestamp.json`,
//! `snapshot.json`, `targets.json` and `<encoded role>.json` for delegated roles (unversioned
//! names, as the tuf-conformance contract wants).
//!
//! Files hold the exact bytes received, never a re-serialisation: signatures are over the
//! canonical form, but auditors, other tools and the conformance suite compare bytes. Every
//! write goes through a temporary file in the same directory, fsync, rename and an fsync of the
//! directory, so power loss at any instant leaves the old file or the new one, never a mix.

use crate::tuf::encode;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// A store in `dir` (created on first write if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MetadataStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where role `role` is kept. The name is percent-encoded, so it stays inside `dir`.
    pub fn path(&self, role: &str) -> PathBuf {
        self.dir.join(encode::role_file_name(role))
    }

    /// Where the pin this directory's trust started from is kept (see `pinned`): a name no
    /// role can have, since role file names never start with `.`.
    fn pin_path(&self) -> PathBuf {
        self.dir.join(".pin.json")
    }

    /// The stored bytes of `role`, `None` if there are none. A file over `limit` bytes is an
    /// error (`InvalidData`) rather than a reason to read without bound.
    pub fn read(&self, role: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        read_bounded(&self.path(role), limit)
    }

    /// Replace `role`'s file with `bytes`, atomically and durably.
    pub fn write(&self, role: &str, bytes: &[u8]) -> io::Result<()> {
        self.write_path(&self.path(role), bytes)
    }

    /// The stored pin (see [`MetadataStore::write_pin`]), `None` if there is none.
    pub fn read_pin(&self, limit: u64) -> io::Result<Option<Vec<u8>>> {
        read_bounded(&self.pin_path(), limit)
    }

    /// Record the pin this directory's trusted root started from, atomically and durably.
    pub fn write_pin(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_path(&self.pin_path(), bytes)
    }

    fn write_path(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }

    /// Forget `role` (fast-forward recovery). Missing already is fine.
    pub fn remove(&self, role: &str) -> io::Result<()> {
        match fs::remove_file(self.path(role)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The bytes of `path`, `None` if it does not exist; over `limit` bytes is `InvalidData`
/// rather than a reason to read without bound.
fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is over the {limit}-byte limit", path.display()),
        ));
    }
    Ok(Some(bytes))
}

/// Make a rename or removal in `dir` durable. Some filesystems cannot fsync a directory
/// (EINVAL); that weakens durability there but is not a failure of the update.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_exact_bytes_atomically_and_reads_them_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(tmp.path().join("meta"));
        assert_eq!(store.read("timestamp", 100).unwrap(), None);
        store.write("timestamp", b"{ \"a\" : 1 }\n").unwrap();
        store.write("timestamp", b"{\"a\":2}").unwrap();
        assert_eq!(
            store.read("timestamp", 100).unwrap().as_deref(),
            Some(&b"{\"a\":2}"[..])
        );
        assert_eq!(files(store.dir()), ["timestamp.json"], "no temp file left");
        assert!(store.read("timestamp", 3).is_err(), "over the limit");
        store.remove("timestamp").unwrap();
        store.remove("timestamp").unwrap();
        assert_eq!(store.read("timestamp", 100).unwrap(), None);
    }

    #[test]
    fn hostile_role_names_stay_inside_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = tmp.path().join("meta");
        let store = MetadataStore::new(&meta);
        for role in ["../escape", "a/b", "..", ".", "/abs"] {
            store.write(role, role.as_bytes()).unwrap();
            assert_eq!(store.path(role).parent(), Some(meta.as_path()), "{role}");
            assert_eq!(
                store.read(role, 100).unwrap().as_deref(),
                Some(role.as_bytes())
            );
        }
        assert_eq!(files(tmp.path()), ["meta"], "nothing written outside");
        assert_eq!(files(&meta).len(), 5);
    }
}
