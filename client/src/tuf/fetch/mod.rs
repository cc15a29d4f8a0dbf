//! How bytes arrive: the [`Fetch`] trait and its two implementations, [`DirFetcher`] (a tree on
//! local disk) and [`HttpFetcher`] (HTTP and HTTPS).
//!
//! Every fetch is given the most bytes it may return, and enforces it *while reading*: an
//! endless or oversized response is cut off at the bound plus one byte, never buffered whole.
//! The updater checks the bound again on what it gets back, so a faulty implementation cannot
//! undo that.

mod any;
mod dir;
mod http;

pub use any::AnyFetcher;
pub use dir::DirFetcher;
pub use http::{CaRoots, HttpFetcher};

use std::io::{self, Read, Write};
use thiserror::Error;

/// Why a fetch failed. Every variant names the URL.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// HTTP 404 or 410, or no such file. The root-rotation loop stops on it.
    #[error("{url}: not found")]
    NotFound { url: String },
    /// The body is longer than the caller allowed (endless-data attack, or a wrong length).
    #[error("{url}: longer than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    /// Any other HTTP status than 200.
    #[error("{url}: HTTP status {status}")]
    Http { url: String, status: u16 },
    /// No data for longer than the read timeout, or no connection within the connect timeout.
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: String },
    /// A redirect from HTTPS to plain HTTP (or to another scheme).
    #[error("{url}: refused a redirect that leaves HTTPS ({to})")]
    InsecureRedirect { url: String, to: String },
    /// Reading from the connection or the file failed.
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: io::Error,
    },
    /// TLS, DNS, protocol and other transport failures.
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// Writing what was received to the caller's sink failed (a full disk, say).
    #[error("{url}: cannot store what was received: {source}")]
    Write {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("{url}: not a usable URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// The fetcher itself could not be set up (e.g. an unreadable CA bundle).
    #[error("{what}: {reason}")]
    Config { what: String, reason: String },
}

impl FetchError {
    /// Whether the server says the file does not exist. 403 counts too, as in python-tuf:
    /// object stores such as S3 answer 403 for a missing object when listing is not allowed.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            FetchError::NotFound { .. } | FetchError::Http { status: 403, .. }
        )
    }
}

/// A way to get the bytes at a URL. Blocking; implementations must be safe against hostile
/// servers: never more than `max_len` bytes, and bounded waiting.
pub trait Fetch {
    /// Stream the body at `url` into `sink`, returning how many bytes were written. Fails with
    /// [`FetchError::TooLarge`] as soon as the body proves longer than `max_len`; the bytes
    /// already written stay in `sink` (callers stage into something they can throw away).
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError>;

    /// The whole body at `url`, at most `max_len` bytes.
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut buf = Vec::new();
        self.fetch_into(url, max_len, &mut buf)?;
        Ok(buf)
    }
}

impl<F: Fetch + ?Sized> Fetch for &F {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        (**self).fetch_into(url, max_len, sink)
    }
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch(url, max_len)
    }
}

impl<F: Fetch + ?Sized> Fetch for Box<F> {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        (**self).fetch_into(url, max_len, sink)
    }
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch(url, max_len)
    }
}

/// Read size: large enough that hashing runs at full speed, small enough to stay in cache.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Copy `body` into `sink`, failing once more than `max_len` bytes have been seen. Reads at
/// most `max_len + 1` bytes, so the excess is never written, and an endless body costs one
/// chunk past the bound. `read_err` turns a read error into the fetcher's own error.
pub(crate) fn copy_bounded(
    url: &str,
    body: impl Read,
    max_len: u64,
    sink: &mut dyn Write,
    read_err: impl Fn(io::Error) -> FetchError,
) -> Result<u64, FetchError> {
    let mut body = body.take(max_len.saturating_add(1));
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        let next = total.saturating_add(n as u64);
        if next > max_len {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: max_len,
            });
        }
        sink.write_all(&buf[..n])
            .map_err(|source| FetchError::Write {
                url: url.into(),
                source,
            })?;
        total = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(body: &[u8], max: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        let io = |source| FetchError::Io {
            url: "u".into(),
            source,
        };
        copy_bounded("u", body, max, &mut out, io).map(|n| {
            assert_eq!(n, out.len() as u64);
            out
        })
    }

    #[test]
    fn bounded_copy_accepts_up_to_the_limit_and_no_more() {
        assert_eq!(copy(b"", 0).unwrap(), b"");
        assert_eq!(copy(b"abc", 3).unwrap(), b"abc");
        assert_eq!(copy(b"abc", u64::MAX).unwrap(), b"abc");
        assert!(matches!(
            copy(b"abcd", 3),
            Err(FetchError::TooLarge { limit: 3, .. })
        ));
        let big = vec![7u8; 3 * CHUNK + 5];
        assert_eq!(copy(&big, big.len() as u64).unwrap(), big);
        assert!(matches!(
            copy(&big, big.len() as u64 - 1),
            Err(FetchError::TooLarge { .. })
        ));
    }

    #[test]
    fn endless_body_is_cut_off() {
        let endless = io::repeat(b'x');
        let mut sink = Vec::new();
        let err = copy_bounded("u", endless, 1000, &mut sink, |source| FetchError::Io {
            url: "u".into(),
            source,
        })
        .unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { limit: 1000, .. }));
        assert!(sink.len() <= 1000, "never writes past the bound");
        assert!(err.to_string().contains("u: longer than the 1000 bytes"));
    }

    #[test]
    fn not_found_includes_403() {
        let nf = FetchError::NotFound { url: "u".into() };
        let forbidden = FetchError::Http {
            url: "u".into(),
            status: 403,
        };
        let other = FetchError::Http {
            url: "u".into(),
            status: 500,
        };
        assert!(nf.is_not_found() && forbidden.is_not_found() && !other.is_not_found());
    }
}
