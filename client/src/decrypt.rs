//! Encrypted images (issue 11), for every reader that holds receiver keys (a vehicle's
//! gateway, a regulator): find the content key in the OEM's wrap shards, then decrypt the
//! downloaded ciphertext chunk by chunk, releasing each chunk only once it authenticated, and
//! check the plaintext against the length and SHA-256 the supplier signed.
//!
//! The shards are reached through trusted references only (a signed review request, or
//! assignments trusted by hash), and each is checked against its length and SHA-256 before it
//! is parsed.

use crate::tuf::{Fetch, StreamTap, Updater};
use ota_crypt::plain::PlainWriter;
use ota_crypt::receiver::ReceiverKeys;
use ota_crypt::wrap_set::{Shard, WrapSet};
use ota_crypt::Key;
use ota_metadata::documents::key_wraps::MAX_SHARD_BYTES;
use ota_metadata::documents::{ImageManifest, KeyWraps};
use ota_metadata::roles::MetaFile;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("the image is encrypted, but no wrapped content key comes with it")]
    NoWraps,
    #[error("the image is encrypted, and this reader holds no receiver keys (decryption_keys)")]
    NoKeys,
    #[error("receiver keys {path}: {source}")]
    Keys {
        path: PathBuf,
        source: ota_crypt::receiver::Error,
    },
    #[error("receiver keys {path}: {source}")]
    KeysFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the wrapped content key's reference: {0}")]
    Reference(ota_metadata::Error),
    #[error("wrap shard {shard}: {source}")]
    Fetch {
        shard: u64,
        source: crate::tuf::Error,
    },
    #[error("wrap shard {shard}: {source}")]
    Shard {
        shard: u64,
        source: ota_crypt::wrap_set::Error,
    },
    #[error("wrap shard {shard} is for another image or tree")]
    OtherImage { shard: u64 },
    /// Excluded (revoked), or never included: the clear error an excluded vehicle sees.
    #[error(transparent)]
    Open(ota_crypt::receiver::Error),
    #[error(transparent)]
    Decrypt(#[from] ota_crypt::plain::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the image manifest: {0}")]
    Manifest(ota_metadata::Error),
    #[error("the image manifest lists no encryption")]
    NotEncrypted,
}

/// Read a receiver key file (bounded; never panics on its content).
pub fn load_keys(path: &Path) -> Result<ReceiverKeys, DecryptError> {
    let mut f = std::fs::File::open(path).map_err(|source| DecryptError::KeysFile {
        path: path.into(),
        source,
    })?;
    let mut bytes = Vec::new();
    (&mut f)
        .take(ota_crypt::receiver::MAX_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| DecryptError::KeysFile {
            path: path.into(),
            source,
        })?;
    ReceiverKeys::parse(&bytes).map_err(|source| DecryptError::Keys {
        path: path.into(),
        source,
    })
}

/// The content key of the image `manifest` describes, from the OEM repository behind `oem`
/// (refreshed), using the wrap shards `wraps` names: the top shard and the receiver's own.
pub fn content_key<F: Fetch>(
    oem: &Updater<F>,
    wraps: &KeyWraps,
    keys: &ReceiverKeys,
    manifest: &ImageManifest,
) -> Result<Key, DecryptError> {
    wraps.validate().map_err(DecryptError::Reference)?;
    let (_, image_sha256) = manifest.plaintext().map_err(DecryptError::Manifest)?;
    // The wraps are for one group (the vehicles of a hardware id, or the regulators): a
    // reader outside it is not entitled, and fetches nothing.
    let keys = keys.group(&wraps.group).map_err(DecryptError::Open)?;
    let mine = keys.shard(wraps.shard_depth);
    let mut shards = Vec::new();
    for (n, f) in wraps.for_shard(mine) {
        let meta = MetaFile {
            version: 1,
            length: Some(f.length),
            hashes: Some(BTreeMap::from([("sha256".to_string(), f.sha256.clone())])),
        };
        let bytes = oem
            .fetch_metadata_file(&f.path(), Some(&meta), MAX_SHARD_BYTES)
            .map_err(|source| DecryptError::Fetch { shard: n, source })?;
        let shard =
            Shard::parse(&bytes).map_err(|source| DecryptError::Shard { shard: n, source })?;
        let expected_number =
            n == 0 || n == WrapSet::shard_of_leaf(keys.tree, keys.leaf, wraps.shard_depth);
        if shard.image_sha256 != image_sha256
            || shard.depth != wraps.depth
            || shard.number != n
            || !expected_number
        {
            return Err(DecryptError::OtherImage { shard: n });
        }
        shards.push(shard);
    }
    let all: Vec<&[u8]> = shards
        .iter()
        .flat_map(|s| s.wraps.iter().map(|w| &w[..]))
        .collect();
    keys.open(wraps.depth, &all, &image_sha256)
        .map_err(DecryptError::Open)
}

/// Decrypts a target while it downloads (a [`StreamTap`] for
/// [`Updater::download_target_tapped`]): each chunk is written to `path` only once it
/// authenticated, and the plaintext is the only copy staged ([`StreamTap::keeps`]: the
/// ciphertext is hashed as it passes and not written). The plaintext is trusted only once
/// [`DecryptingTap::finish`] has checked its length and SHA-256 against the manifest (and the
/// download its ciphertext hash); until then, and whenever anything fails, the file is removed
/// when the tap is dropped, unless the gateway is stopping (SIGTERM): then it stays, with the
/// stream's header beside it (`PATH.header`), for the next run to resume
/// ([`StreamTap::resume`]: the whole chunks held are sealed again, which gives back the
/// ciphertext they came from for the download to hash; a file changed in between fails that
/// hash).
pub struct DecryptingTap<'k> {
    key: &'k Key,
    path: PathBuf,
    want: ota_crypt::plain::Expected,
    writer: Option<PlainWriter<std::io::BufWriter<std::fs::File>>>,
    /// Whether the stream's header is saved beside the plaintext.
    header_saved: bool,
    /// The first decryption failure, typed (the download only sees an I/O error).
    failure: Option<ota_crypt::plain::Error>,
    finished: bool,
}

impl<'k> DecryptingTap<'k> {
    pub fn new(
        key: &'k Key,
        path: &Path,
        manifest: &ImageManifest,
    ) -> Result<DecryptingTap<'k>, DecryptError> {
        let (length, sha256) = manifest.plaintext().map_err(DecryptError::Manifest)?;
        let chunk_size = manifest
            .encryption
            .as_ref()
            .map(|e| e.chunk_size)
            .ok_or(DecryptError::NotEncrypted)?;
        Ok(DecryptingTap {
            key,
            path: path.to_path_buf(),
            want: ota_crypt::plain::Expected {
                length,
                sha256,
                chunk_size,
            },
            writer: None,
            header_saved: false,
            failure: None,
            finished: false,
        })
    }

    /// Why decrypting failed, if it did (to report instead of the download's I/O error).
    pub fn take_failure(&mut self) -> Option<DecryptError> {
        self.failure.take().map(DecryptError::Decrypt)
    }

    /// The ciphertext ended: every chunk authenticated and the plaintext is the manifest's.
    pub fn finish(mut self) -> Result<PathBuf, DecryptError> {
        let w =
            self.writer
                .take()
                .ok_or(DecryptError::Decrypt(ota_crypt::plain::Error::Stream(
                    ota_crypt::stream::Error::TruncatedHeader,
                )))?;
        let mut out = w.finish()?;
        out.flush().map_err(|source| DecryptError::Io {
            path: self.path.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(self.header_path());
        self.finished = true;
        Ok(self.path.clone())
    }

    fn header_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".header");
        PathBuf::from(p)
    }

    /// What an earlier, stopped attempt left: the stream's header and the plaintext file, cut
    /// to its whole chunks. `None` when there is nothing usable.
    fn held(&self) -> Option<(ota_crypt::stream::Header, u32, std::fs::File)> {
        let head = std::fs::read(self.header_path()).ok()?;
        if head.len() != ota_crypt::stream::HEADER_LEN {
            return None;
        }
        let header = ota_crypt::stream::Header::parse(&head).ok()?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ok()?;
        // Whoever left it, the plaintext resumed is its owner's alone from here on.
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .ok()?;
        }
        let len = file.metadata().ok()?.len();
        let (chunks, bytes) = header.whole_chunks(len);
        file.set_len(bytes).ok()?;
        Some((header, chunks, file))
    }
}

/// Create (or truncate) `path` readable by its owner only: it holds plaintext of an image
/// someone paid to keep confidential (mode 0600 whatever the umask; an existing file is
/// narrowed too).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

impl StreamTap for DecryptingTap<'_> {
    fn restart(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.header_path());
        let file = private_file(&self.path)?;
        self.writer = Some(PlainWriter::new(
            self.key,
            std::io::BufWriter::with_capacity(1 << 16, file),
            self.want,
        ));
        self.header_saved = false;
        self.failure = None;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("decryption not started"))?;
        w.update(bytes).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            self.failure = Some(e);
            io
        })?;
        if !self.header_saved {
            if let Some(head) = w.header().map(|h| h.encode()) {
                private_file(&self.header_path())?.write_all(&head)?;
                self.header_saved = true;
            }
        }
        Ok(())
    }

    fn keeps(&self) -> bool {
        true
    }

    fn resume(&mut self, held: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
        let Some((header, chunks, mut file)) = self.held() else {
            return self.restart().map(|()| 0);
        };
        let mut shown = 0u64;
        let mut writer = PlainWriter::new(
            self.key,
            std::io::BufWriter::with_capacity(1 << 16, file.try_clone()?),
            self.want,
        );
        let resumed = writer.resume(self.key, header, chunks, &mut file, &mut |c| {
            shown = shown.saturating_add(c.len() as u64);
            held(c)
        });
        if let Err(e) = resumed {
            let io = std::io::Error::other(e.to_string());
            self.failure = Some(e);
            return Err(io);
        }
        // The reads left the file at the end of the whole chunks, where writing continues.
        self.writer = Some(writer);
        self.header_saved = true;
        self.failure = None;
        Ok(shown)
    }
}

impl Drop for DecryptingTap<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.writer = None;
            if !crate::stop::requested() {
                let _ = std::fs::remove_file(&self.path);
                let _ = std::fs::remove_file(self.header_path());
            }
        }
    }
}

/// Decrypt the ciphertext file into `plaintext` (created or replaced), in constant memory,
/// checking each chunk and then the plaintext's length and SHA-256 against `manifest`. A
/// failure removes the partial plaintext.
pub fn decrypt_file(
    key: &Key,
    ciphertext: &Path,
    plaintext: &Path,
    manifest: &ImageManifest,
) -> Result<(), DecryptError> {
    let mut tap = DecryptingTap::new(key, plaintext, manifest)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DecryptError::Io { path, source }
    };
    tap.restart().map_err(io(plaintext))?;
    let mut input = std::fs::File::open(ciphertext).map_err(io(ciphertext))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(io(ciphertext))?;
        if n == 0 {
            break;
        }
        if let Err(e) = tap.write(&buf[..n]) {
            return Err(tap.take_failure().unwrap_or(DecryptError::Io {
                path: plaintext.to_path_buf(),
                source: e,
            }));
        }
    }
    tap.finish().map(|_| ())
}
