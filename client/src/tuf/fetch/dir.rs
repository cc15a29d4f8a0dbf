//! Fetching from a tree on local disk: `file://` URLs or plain paths. For tests, and for
//! repositories delivered on removable media or mounted read-only.

use super::{copy_bounded, Fetch, FetchError};
use crate::tuf::encode;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Component, PathBuf};

/// Reads `file:///abs/path` URLs and plain paths. Both are percent-decoded, as the updater
/// percent-encodes the names it appends (so a literal `%` in a directory name is `%25`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirFetcher;

impl DirFetcher {
    pub fn new() -> Self {
        DirFetcher
    }

    fn path(url: &str) -> Result<PathBuf, FetchError> {
        let bad = |reason: &str| FetchError::BadUrl {
            url: url.into(),
            reason: reason.into(),
        };
        let raw = match url.get(..7) {
            Some(s) if s.eq_ignore_ascii_case("file://") => {
                let rest = &url[7..];
                if !rest.starts_with('/') {
                    return Err(bad("file URLs must be file:///absolute/path"));
                }
                rest
            }
            _ if url.contains("://") => return Err(bad("DirFetcher reads file:// URLs only")),
            _ => url,
        };
        let path = encode::decode(raw)
            .map(PathBuf::from)
            .ok_or_else(|| bad("bad percent-encoding"))?;
        // The updater appends names to a base directory; `..` after a named directory would
        // climb back out of it (leading `..` can only come from a relative base, and stays).
        let mut named = false;
        for c in path.components() {
            match c {
                Component::Normal(_) => named = true,
                Component::ParentDir if named => {
                    return Err(bad("a `..` path segment would leave the directory"))
                }
                _ => {}
            }
        }
        Ok(path)
    }
}

impl Fetch for DirFetcher {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let path = Self::path(url)?;
        let io_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                FetchError::NotFound { url: url.into() }
            } else {
                FetchError::Io {
                    url: url.into(),
                    source,
                }
            }
        };
        let file = File::open(&path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(FetchError::NotFound { url: url.into() });
        }
        // Refuse early when the size already says too much; the copy bounds it again in case
        // the file grows while being read.
        if meta.len() > max_len {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: max_len,
            });
        }
        copy_bounded(url, file, max_len, sink, io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_paths_and_file_urls_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a b.json");
        std::fs::write(&p, b"hello").unwrap();
        let f = DirFetcher::new();
        let base = dir.path().to_str().unwrap();
        assert_eq!(f.fetch(&format!("{base}/a%20b.json"), 5).unwrap(), b"hello");
        assert_eq!(
            f.fetch(&format!("file://{base}/a%20b.json"), 100).unwrap(),
            b"hello"
        );
        assert!(matches!(
            f.fetch(&format!("{base}/a%20b.json"), 4),
            Err(FetchError::TooLarge { limit: 4, .. })
        ));
        let missing = format!("{base}/nope.json");
        let err = f.fetch(&missing, 5).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains(&missing));
        assert!(f.fetch(base, 5).unwrap_err().is_not_found());
        assert!(matches!(
            f.fetch("http://example.invalid/x", 5),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(matches!(
            f.fetch("file://relative/x", 5),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(matches!(
            f.fetch(&format!("{base}/%zz"), 5),
            Err(FetchError::BadUrl { .. })
        ));
    }

    #[test]
    fn never_climbs_out_of_a_named_directory() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("base");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(dir.path().join("secret"), b"secret").unwrap();
        std::fs::write(inner.join("ok"), b"ok").unwrap();
        let f = DirFetcher::new();
        let base = inner.to_str().unwrap();
        assert_eq!(f.fetch(&format!("{base}/ok"), 10).unwrap(), b"ok");
        for url in [
            format!("{base}/../secret"),
            format!("file://{base}/../secret"),
            format!("{base}/%2E%2E/secret"),
            format!("{base}/x/..%2F..%2Fsecret"),
            format!("{base}/%2e%2e%2fsecret"),
        ] {
            let err = f.fetch(&url, 10).unwrap_err();
            assert!(matches!(err, FetchError::BadUrl { .. }), "{url}: {err}");
        }
    }
}
