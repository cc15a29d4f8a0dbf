//! Downloading one target: fetched under its consistent-snapshot name, bounded by its signed
//! length, hashed while it streams into a staging file next to its destination, and renamed
//! into place only once length and SHA-256 match. On any failure the staging file is removed,
//! so the destination directory holds verified files and nothing else.

use super::encode;
use super::error::{Error, Result};
use super::fetch::{Fetch, FetchError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The path a target is fetched from, relative to the targets base URL. With consistent
/// snapshots `dir/name` is stored as `dir/SHA256.name` (the TUF specification's layout; the
/// project's own names are flat, so this is `SHA256.name`).
pub(crate) fn remote_path(target: &str, sha_hex: &str, consistent: bool) -> String {
    if !consistent {
        return encode::url_path(target);
    }
    match target.rsplit_once('/') {
        Some((dir, base)) => format!(
            "{}/{sha_hex}.{}",
            encode::url_path(dir),
            encode::url_segment(base)
        ),
        None => format!("{sha_hex}.{}", encode::url_segment(target)),
    }
}

/// A sink that hashes and counts what passes through, and refuses to accept more than
/// `limit` bytes whatever the fetcher does.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let next = self.written.saturating_add(buf.len() as u64);
        if next > self.limit {
            return Err(io::Error::other(format!(
                "more than the signed length of {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written = self.written.saturating_add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fetch `url` into `dest` if, and only if, it is exactly `length` bytes with SHA-256 `sha`.
pub(crate) fn fetch_verified(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    sha: &[u8; 32],
    dest: &Path,
) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(Error::store(dir))?;
    // Dropped (and so deleted) on every early return below.
    let mut staging = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(dir)
        .map_err(Error::store(dir))?;
    let mut sink = Hashing {
        inner: staging.as_file_mut(),
        hasher: Sha256::new(),
        written: 0,
        limit: length,
    };
    fetcher.fetch_into(url, length, &mut sink)?;
    // Our own count, not the fetcher's word for it.
    let written = sink.written;
    let digest: [u8; 32] = sink.hasher.finalize().into();
    if written != length {
        return Err(Error::TargetLength {
            target: target.into(),
            url: url.into(),
            found: written,
            expected: length,
        });
    }
    if &digest != sha {
        return Err(Error::TargetHash {
            target: target.into(),
            url: url.into(),
            found: hex::encode(digest),
            expected: hex::encode(sha),
        });
    }
    staging.as_file().sync_all().map_err(Error::store(dest))?;
    staging
        .persist(dest)
        .map_err(|e| Error::store(dest)(e.error))?;
    if let Ok(d) = File::open(dir) {
        // Durability of the rename; not every filesystem can sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether `path` already holds exactly `length` bytes with SHA-256 `sha`.
pub(crate) fn is_cached(path: &Path, length: u64, sha: &[u8; 32]) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::store(path)(e)),
    };
    let meta = file.metadata().map_err(Error::store(path))?;
    if !meta.is_file() || meta.len() != length {
        return Ok(false);
    }
    let mut sink = Hashing {
        inner: io::sink(),
        hasher: Sha256::new(),
        written: 0,
        limit: length,
    };
    let copied = super::fetch::copy_bounded(
        &path.display().to_string(),
        file,
        length,
        &mut sink,
        |source| FetchError::Io {
            url: path.display().to_string(),
            source,
        },
    );
    match copied {
        Ok(n) if n == length => {
            let digest: [u8; 32] = sink.hasher.finalize().into();
            Ok(&digest == sha)
        }
        Ok(_) | Err(FetchError::TooLarge { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_snapshot_names() {
        let sha = "ab12";
        assert_eq!(remote_path("fw-1.0.bin", sha, true), "ab12.fw-1.0.bin");
        assert_eq!(remote_path("a/b/fw.bin", sha, true), "a/b/ab12.fw.bin");
        assert_eq!(remote_path("a/b/fw.bin", sha, false), "a/b/fw.bin");
        assert_eq!(remote_path("fw 1+2.bin", sha, true), "ab12.fw%201%2B2.bin");
    }

    #[test]
    fn the_sink_refuses_bytes_past_the_limit() {
        let mut out = Vec::new();
        let mut s = Hashing {
            inner: &mut out,
            hasher: Sha256::new(),
            written: 0,
            limit: 4,
        };
        s.write_all(b"abcd").unwrap();
        assert!(s.write_all(b"e").is_err());
        assert_eq!(s.written, 4);
        assert_eq!(out, b"abcd");
    }
}
