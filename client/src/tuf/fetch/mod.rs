//! How bytes arrive: the [`Fetch`] trait and its two implementations, [`DirFetcher`] (a tree on
//! local disk) and [`HttpFetcher`] (HTTP and HTTPS).
//!
//! Every fetch is given the most bytes it may return, and enforces it *while reading*: an
//! endless or oversized response is cut off at the bound plus one byte, never buffered whole.
//! The updater checks the bound again on what it gets back, so a faulty implementation cannot
//! undo that.
//!
//! Target downloads are resumable: [`Fetch::fetch_range_into`] asks for the body from an
//! offset on and tells a [`RangeSink`] where what it writes starts (the offset asked for, or
//! zero when the server sent the whole file instead), before writing anything. Over HTTP a
//! body must also keep up a minimum average speed ([`MinSpeed`]), on top of the per-read
//! timeout.

mod any;
mod counting;
mod dir;
mod http;

pub use any::AnyFetcher;
pub use counting::Counting;
pub use dir::DirFetcher;
pub use http::{CaRoots, HttpFetcher};

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};
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
    /// The body arrived more slowly than the minimum average speed (slow-retrieval attack, or
    /// a link too poor to finish): `bytes` in the last `secs` seconds.
    #[error(
        "{url}: too slow: {bytes} bytes in {secs:.1} s, under the minimum of {min} bytes/s \
         (min_bytes_per_sec)"
    )]
    TooSlow {
        url: String,
        bytes: u64,
        secs: f64,
        min: u64,
    },
    /// A `206 Partial Content` answer that is not the range asked for (missing or malformed
    /// `Content-Range`, another start, a range past the allowed length).
    #[error("{url}: unusable ranged response: {reason}")]
    BadRange { url: String, reason: String },
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

    /// Whether the transfer broke off rather than being refused: the connection dropped or
    /// was reset, or a read timed out. Worth resuming if bytes arrived before it. Too large,
    /// too slow, HTTP statuses, bad ranges and local write failures are not.
    pub fn is_interrupted(&self) -> bool {
        match self {
            FetchError::Timeout { .. } => true,
            FetchError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    /// Whether the body ended before its announced length (the peer closed the connection
    /// early): for a target, a length error once resuming gives up.
    pub fn is_premature_end(&self) -> bool {
        matches!(self, FetchError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof)
    }
}

/// Where the bytes of a resumable fetch go ([`Fetch::fetch_range_into`]).
pub trait RangeSink: Write {
    /// Called once per fetch, before the first byte is written: what follows starts at byte
    /// `offset` of the file. That is either the offset asked for (the server honoured the
    /// range, so the sink appends) or 0 (the server sent the whole file, so the sink must
    /// discard what it holds). An error aborts the fetch, as [`FetchError::Write`].
    fn start_at(&mut self, offset: u64) -> io::Result<()>;
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

    /// The body at `url` from byte `offset` on, for resuming a broken download of a file at
    /// most `max_len` bytes long in all. Calls `sink.start_at` with where the bytes it writes
    /// start (`offset`, or 0 if it could only get the whole file) before writing any, and
    /// returns how many it wrote. The whole file stays bounded by `max_len` either way.
    ///
    /// The default fetches the whole file again ([`DirFetcher`] has no connection to lose);
    /// [`HttpFetcher`] asks for `Range: bytes=offset-`.
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        let _ = offset;
        sink.start_at(0).map_err(|source| FetchError::Write {
            url: url.into(),
            source,
        })?;
        self.fetch_into(url, max_len, sink)
    }
}

impl<F: Fetch + ?Sized> Fetch for &F {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        (**self).fetch_into(url, max_len, sink)
    }
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch(url, max_len)
    }
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        (**self).fetch_range_into(url, offset, max_len, sink)
    }
}

impl<F: Fetch + ?Sized> Fetch for Box<F> {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        (**self).fetch_into(url, max_len, sink)
    }
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch(url, max_len)
    }
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        (**self).fetch_range_into(url, offset, max_len, sink)
    }
}

/// The slowest a body may arrive: at least `bytes_per_sec` on average over every `window`,
/// the first window being the grace period before any check. Averaging per window rather
/// than since the start means a fast beginning cannot buy an endlessly slow tail. Checked
/// whenever a read returns, so a server that sends nothing at all is cut off by the per-read
/// timeout instead. `bytes_per_sec == 0` turns the check off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinSpeed {
    pub bytes_per_sec: u64,
    pub window: Duration,
}

impl MinSpeed {
    /// No minimum (local files).
    pub const NONE: MinSpeed = MinSpeed {
        bytes_per_sec: 0,
        window: Duration::ZERO,
    };
}

/// The running state of a [`MinSpeed`] check over one body.
struct SpeedCheck {
    min: MinSpeed,
    /// Start of the current window, and the byte count then.
    since: Instant,
    at: u64,
}

impl SpeedCheck {
    fn new(min: MinSpeed) -> Self {
        SpeedCheck {
            min,
            since: Instant::now(),
            at: 0,
        }
    }

    /// `total` bytes have arrived so far.
    fn check(&mut self, url: &str, total: u64) -> Result<(), FetchError> {
        if self.min.bytes_per_sec == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < self.min.window || elapsed.is_zero() {
            return Ok(());
        }
        let bytes = total.saturating_sub(self.at);
        // bytes / elapsed < min, in integers: bytes * 1e9 < min * nanos.
        let have = u128::from(bytes).saturating_mul(1_000_000_000);
        let need = u128::from(self.min.bytes_per_sec).saturating_mul(elapsed.as_nanos());
        if have < need {
            return Err(FetchError::TooSlow {
                url: url.into(),
                bytes,
                secs: elapsed.as_secs_f64(),
                min: self.min.bytes_per_sec,
            });
        }
        self.since = now;
        self.at = total;
        Ok(())
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
    copy_bounded_timed(url, body, max_len, MinSpeed::NONE, sink, read_err)
}

/// [`copy_bounded`], also failing with [`FetchError::TooSlow`] when the body arrives more
/// slowly than `speed`.
pub(crate) fn copy_bounded_timed(
    url: &str,
    body: impl Read,
    max_len: u64,
    speed: MinSpeed,
    sink: &mut dyn Write,
    read_err: impl Fn(io::Error) -> FetchError,
) -> Result<u64, FetchError> {
    let mut body = body.take(max_len.saturating_add(1));
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    let mut speed = SpeedCheck::new(speed);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        let n = n.min(buf.len());
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
        speed.check(url, total)?;
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

    /// Gives `burst` bytes at once, then one byte every `every`.
    struct Trickle {
        burst: usize,
        every: std::time::Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.burst > 0 {
                let n = self.burst.min(buf.len());
                self.burst -= n;
                return Ok(n);
            }
            std::thread::sleep(self.every);
            buf[0] = b'.';
            Ok(1)
        }
    }

    fn timed(body: impl Read, speed: MinSpeed) -> Result<u64, FetchError> {
        copy_bounded_timed("u", body, 1 << 30, speed, &mut io::sink(), |source| {
            FetchError::Io {
                url: "u".into(),
                source,
            }
        })
    }

    #[test]
    fn a_trickle_is_cut_off_after_the_window() {
        let ms = std::time::Duration::from_millis;
        let speed = MinSpeed {
            bytes_per_sec: 1000,
            window: ms(200),
        };
        let started = Instant::now();
        let err = timed(
            Trickle {
                burst: 0,
                every: ms(20),
            },
            speed,
        )
        .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, FetchError::TooSlow { min: 1000, bytes, .. } if bytes <= 20),
            "{err}"
        );
        assert!(took >= ms(200) && took < ms(1000), "{took:?}");
        assert!(err.to_string().contains("too slow"), "{err}");

        // A fast start buys nothing for later windows.
        let err = timed(
            Trickle {
                burst: 10 << 20,
                every: ms(20),
            },
            speed,
        )
        .unwrap_err();
        assert!(matches!(err, FetchError::TooSlow { .. }), "{err}");

        // Fast enough, or no minimum: the whole body.
        let fast = io::repeat(b'x').take(3 << 20);
        assert_eq!(timed(fast, speed).unwrap(), 3 << 20);
        let slow = Trickle {
            burst: 0,
            every: ms(20),
        }
        .take(20);
        assert_eq!(timed(slow, MinSpeed::NONE).unwrap(), 20);
    }

    #[test]
    fn which_failures_are_interruptions() {
        let io = |kind: io::ErrorKind| FetchError::Io {
            url: "u".into(),
            source: kind.into(),
        };
        for kind in [
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
        ] {
            assert!(io(kind).is_interrupted(), "{kind:?}");
        }
        assert!(io(io::ErrorKind::UnexpectedEof).is_premature_end());
        assert!(!io(io::ErrorKind::ConnectionReset).is_premature_end());
        assert!(!io(io::ErrorKind::PermissionDenied).is_interrupted());
        let timeout = FetchError::Timeout {
            url: "u".into(),
            what: "x".into(),
        };
        assert!(timeout.is_interrupted() && !timeout.is_premature_end());
        for e in [
            FetchError::TooLarge {
                url: "u".into(),
                limit: 1,
            },
            FetchError::TooSlow {
                url: "u".into(),
                bytes: 0,
                secs: 1.0,
                min: 1,
            },
            FetchError::Http {
                url: "u".into(),
                status: 500,
            },
            FetchError::BadRange {
                url: "u".into(),
                reason: "x".into(),
            },
            FetchError::Write {
                url: "u".into(),
                source: io::ErrorKind::UnexpectedEof.into(),
            },
        ] {
            assert!(!e.is_interrupted(), "{e}");
        }
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
