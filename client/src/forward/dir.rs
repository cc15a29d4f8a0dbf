//! The directory forwarder: `ROOT/<serial>/image.bin` and `ROOT/<serial>/manifest.bin` are
//! what the ECU runs. A staged image waits beside them as `pending-image.bin` and
//! `pending-manifest.bin` (manifest written last: its arrival marks the pair complete);
//! activation renames them over the active pair, image first, manifest last, each rename
//! atomic (a bootloader reading the directory sees the old pair or the new, the manifest
//! deciding).

use super::{ForwardError, Forwarder};
use crate::config::EcuConfig;
use crate::tuf::encode;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct DirForwarder {
    root: PathBuf,
}

impl DirForwarder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirForwarder { root: root.into() }
    }

    fn dir(&self, ecu: &EcuConfig) -> PathBuf {
        self.root.join(encode::file_name(&ecu.serial))
    }
}

const IMAGE: &str = "image.bin";
const MANIFEST: &str = "manifest.bin";
const PENDING_IMAGE: &str = "pending-image.bin";
const PENDING_MANIFEST: &str = "pending-manifest.bin";

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn place(dir: &Path, name: &str, from: Option<&Path>, bytes: Option<&[u8]>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    if let Some(src) = from {
        let mut f = std::fs::File::open(src)?;
        std::io::copy(&mut f, tmp.as_file_mut())?;
    }
    if let Some(b) = bytes {
        std::io::Write::write_all(tmp.as_file_mut(), b)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// SHA-256 of the file at `path`, `None` if it does not exist.
fn file_sha256(path: &Path) -> std::io::Result<Option<[u8; 32]>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(Some(h.finalize().into()))
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Forwarder for DirForwarder {
    fn stage(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        let dir = self.dir(ecu);
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        // The old pending manifest goes first, so a half-replaced pair is never complete.
        remove(&dir.join(PENDING_MANIFEST)).map_err(io)?;
        place(&dir, PENDING_IMAGE, Some(image), None).map_err(io)?;
        place(&dir, PENDING_MANIFEST, None, Some(compact_manifest)).map_err(io)
    }

    fn activate(&mut self, ecu: &EcuConfig, sha256: &[u8; 32]) -> Result<(), ForwardError> {
        let dir = self.dir(ecu);
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        let pending = dir.join(PENDING_IMAGE);
        let complete = dir.join(PENDING_MANIFEST).exists();
        if complete && file_sha256(&pending).map_err(io)? == Some(*sha256) {
            std::fs::rename(&pending, dir.join(IMAGE)).map_err(io)?;
            sync_dir(&dir);
            std::fs::rename(dir.join(PENDING_MANIFEST), dir.join(MANIFEST)).map_err(io)?;
            sync_dir(&dir);
            return Ok(());
        }
        if file_sha256(&dir.join(IMAGE)).map_err(io)? == Some(*sha256) {
            // Already active; a pending manifest without its image means a cut between the two
            // renames: finish the second.
            if complete && !pending.exists() {
                std::fs::rename(dir.join(PENDING_MANIFEST), dir.join(MANIFEST)).map_err(io)?;
                sync_dir(&dir);
            }
            return Ok(());
        }
        Err(ForwardError::NothingPending {
            serial: ecu.serial.clone(),
        })
    }

    fn discard(&mut self, ecu: &EcuConfig) -> Result<(), ForwardError> {
        let dir = self.dir(ecu);
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        remove(&dir.join(PENDING_MANIFEST)).map_err(io)?;
        remove(&dir.join(PENDING_IMAGE)).map_err(io)?;
        sync_dir(&dir);
        Ok(())
    }
}
