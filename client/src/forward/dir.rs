//! The directory forwarder: `ROOT/<serial>/image.bin` and `ROOT/<serial>/manifest.bin`,
//! each replaced atomically (a bootloader reading the directory sees the old pair or the new).

use super::{ForwardError, Forwarder};
use crate::config::EcuConfig;
use crate::tuf::encode;
use std::path::{Path, PathBuf};

pub struct DirForwarder {
    root: PathBuf,
}

impl DirForwarder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirForwarder { root: root.into() }
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
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Forwarder for DirForwarder {
    fn forward(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        let dir = self.root.join(encode::file_name(&ecu.serial));
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        // Image first, manifest last: the manifest's arrival marks the pair complete.
        place(&dir, "image.bin", Some(image), None).map_err(io)?;
        place(&dir, "manifest.bin", None, Some(compact_manifest)).map_err(io)
    }
}
