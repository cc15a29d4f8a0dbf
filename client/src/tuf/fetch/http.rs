//! HTTP and HTTPS with `ureq` (blocking, rustls): bounded bodies, connect and per-read
//! timeouts and a minimum average speed from [`Limits`], a pinned CA bundle, no redirect from
//! HTTPS to plain HTTP, and ranged requests (`Range: bytes=N-`) to resume broken downloads.
//!
//! Every body is bounded in size (the caller's `max_len`, across a resume too) and in waiting
//! (every read has a deadline, and each window of reads must average the minimum speed).

use super::{copy_bounded_timed, Fetch, FetchError, MinSpeed, RangeSink};
use crate::tuf::limits::Limits;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Which certificate authorities HTTPS trusts.
#[derive(Clone, Debug)]
pub enum CaRoots {
    /// None at all: only plain-HTTP URLs work (tests, a trusted local mirror).
    None,
    /// Exactly the CA certificates of a PEM bundle, typically the OEM's own CA. The server's
    /// certificate must be issued by one of them (a self-signed server certificate used
    /// directly is refused by webpki as `CaUsedAsEndEntity`).
    Pem(Vec<u8>),
    /// Mozilla's root programme, compiled in (webpki-roots). Only when a configuration asks:
    /// a vehicle should trust its OEM's CA, not every CA on the Internet.
    WebPki,
}

/// Largest CA bundle read from disk.
const MAX_CA_BUNDLE: u64 = 1 << 20;

impl CaRoots {
    /// Read a PEM CA bundle file.
    pub fn from_pem_file(path: &Path) -> Result<Self, FetchError> {
        let cfg = |reason: String| FetchError::Config {
            what: format!("CA bundle {}", path.display()),
            reason,
        };
        let mut bytes = Vec::new();
        let file = std::fs::File::open(path).map_err(|e| cfg(e.to_string()))?;
        io::Read::read_to_end(&mut io::Read::take(file, MAX_CA_BUNDLE + 1), &mut bytes)
            .map_err(|e| cfg(e.to_string()))?;
        if bytes.len() as u64 > MAX_CA_BUNDLE {
            return Err(cfg(format!("larger than {MAX_CA_BUNDLE} bytes")));
        }
        Ok(CaRoots::Pem(bytes))
    }

    fn root_certs(&self) -> Result<RootCerts, FetchError> {
        match self {
            CaRoots::None => Ok(RootCerts::new_with_certs(&[])),
            CaRoots::WebPki => Ok(RootCerts::WebPki),
            CaRoots::Pem(pem) => {
                let cfg = |reason: String| FetchError::Config {
                    what: "CA bundle".into(),
                    reason,
                };
                let mut certs: Vec<Certificate<'static>> = Vec::new();
                for item in ureq::tls::parse_pem(pem) {
                    // Anything else (a stray private key) is ignored: only certificates anchor.
                    if let PemItem::Certificate(c) = item.map_err(|e| cfg(e.to_string()))? {
                        certs.push(c);
                    }
                }
                if certs.is_empty() {
                    return Err(cfg("no CERTIFICATE in the PEM data".into()));
                }
                Ok(RootCerts::new_with_certs(&certs))
            }
        }
    }
}

/// Idle connections kept per host, for reuse by the next request.
const MAX_IDLE_PER_HOST: usize = 8;

/// How long a name's addresses are reused (see [`Resolver`]).
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// Name resolution without a thread per request. ureq resolves the host of every request,
/// before it looks for a pooled connection, and with a resolve timeout its default resolver
/// spawns a thread each time to wait on `getaddrinfo`. Here an IP address in the URL needs no
/// lookup at all, and a host name's addresses are looked up once (by ureq's resolver, with
/// its timeout) and reused for [`RESOLVE_TTL`]: a burst of downloads from one repository
/// resolves its name once.
#[derive(Debug, Default)]
struct Resolver {
    inner: DefaultResolver,
    /// The last name resolved (`host:port`), when, and its addresses.
    last: Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
            Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
            _ => None,
        });
        let (Some(host), Some(port)) = (uri.host(), port) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            let mut out = self.inner.empty();
            if config
                .ip_family()
                .keep_wanted(std::iter::once(addr))
                .count()
                == 1
            {
                out.push(addr);
                return Ok(out);
            }
            return Err(ureq::Error::HostNotFound);
        }
        let key = format!("{}:{port}", host.to_ascii_lowercase());
        if let Ok(last) = self.last.lock() {
            if let Some((k, at, addrs)) = last.as_ref() {
                if *k == key && at.elapsed() < RESOLVE_TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((key, Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

/// Blocking HTTP(S) fetcher. Cheap to clone (connections are pooled and shared).
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    agent: ureq::Agent,
    speed: MinSpeed,
}

impl HttpFetcher {
    pub fn new(limits: &Limits, roots: CaRoots) -> Result<Self, FetchError> {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots.root_certs()?)
            .build();
        let config = ureq::Agent::config_builder()
            // Statuses are mapped here (404 must stay distinguishable).
            .http_status_as_error(false)
            // Never route through a proxy picked up from the environment.
            .proxy(None)
            .max_redirects(limits.max_redirects)
            .user_agent(concat!("ota-client/", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(Some(limits.connect_timeout))
            .timeout_connect(Some(limits.connect_timeout))
            .timeout_send_request(Some(limits.read_timeout))
            .timeout_recv_response(Some(limits.read_timeout))
            // Per read, not per body: a slow but steady link may take as long as it needs.
            .timeout_per_read(Some(limits.read_timeout))
            .timeout_per_write(Some(limits.read_timeout))
            .tls_config(tls)
            // Enough idle connections for every concurrent download to keep its own
            // (`Limits::download_concurrency`), and a small send buffer: requests are GETs.
            .max_idle_connections_per_host(MAX_IDLE_PER_HOST)
            .output_buffer_size(16 * 1024)
            .build();
        Ok(HttpFetcher {
            agent: ureq::Agent::with_parts(config, DefaultConnector::new(), Resolver::default()),
            speed: MinSpeed {
                bytes_per_sec: limits.min_bytes_per_sec,
                window: limits.min_speed_window,
            },
        })
    }

    /// POST `body` to `url` (`Content-Type: application/json`, no redirect followed) and
    /// return the status; any status other than 2xx is an error. The answer's body is read
    /// up to 4 KiB, for the error message.
    pub fn post_json(&self, url: &str, body: &[u8]) -> Result<u16, FetchError> {
        let request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        // A report is never re-sent elsewhere: a redirect would turn the POST into a GET
        // without the report (302, 303) and count as delivered.
        let result = request
            .config()
            .https_only(is_https(url))
            .max_redirects(0)
            .build()
            .send(body);
        let response = result.map_err(|e| map_ureq(url, e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(FetchError::Http {
                url: url.into(),
                status,
            })
        }
    }

    /// GET `url`, from byte `offset` on when it is not 0. Returns the checked status (200,
    /// or 206 when a range was asked for) and the body, with the redirect and status rules
    /// applied.
    fn get(
        &self,
        url: &str,
        offset: u64,
    ) -> Result<(u16, ureq::http::Response<ureq::Body>), FetchError> {
        let mut request = self.agent.get(url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        // Once on HTTPS, every redirect hop must stay on HTTPS: ureq checks this per hop.
        let result = if is_https(url) {
            request.config().https_only(true).build().call()
        } else {
            request.call()
        };
        let response = result.map_err(|e| map_ureq(url, e))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            206 if offset > 0 => {}
            404 | 410 => return Err(FetchError::NotFound { url: url.into() }),
            _ => {
                return Err(FetchError::Http {
                    url: url.into(),
                    status,
                })
            }
        }
        Ok((status, response))
    }

    /// Copy `body` (at most `max_len` bytes) into `sink`, at the minimum speed.
    fn copy(
        &self,
        url: &str,
        body: ureq::Body,
        max_len: u64,
        sink: &mut dyn Write,
    ) -> Result<u64, FetchError> {
        if body.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: max_len,
            });
        }
        copy_bounded_timed(url, body.into_reader(), max_len, self.speed, sink, |e| {
            map_io(url, e)
        })
    }
}

/// A `Content-Range: bytes FIRST-LAST/TOTAL` value (`TOTAL` may be `*`), as
/// `(first, last, total)`. `None` for anything else, including unsatisfied-range forms.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?;
    // At least one space between the unit and the range (RFC 9110: "bytes" SP range).
    let rest = rest.strip_prefix(|c: char| c == ' ')?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (first, last) = (num(first)?, num(last)?);
    let total = match total {
        "*" => None,
        t => Some(num(t)?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first, last, total))
}

/// Check a 206 answer to `Range: bytes=offset-` for a file of at most `max_len` bytes: it
/// must start exactly at `offset` and stay within `max_len`. Returns the most bytes the body
/// may then hold.
fn check_partial(
    url: &str,
    content_range: Option<&str>,
    offset: u64,
    max_len: u64,
) -> Result<u64, FetchError> {
    let bad = |reason: String| FetchError::BadRange {
        url: url.into(),
        reason,
    };
    let value = content_range.ok_or_else(|| bad("206 without a Content-Range".into()))?;
    let (first, last, total) =
        parse_content_range(value).ok_or_else(|| bad(format!("Content-Range {value:?}")))?;
    if first != offset {
        return Err(bad(format!(
            "asked for bytes from {offset}, the answer starts at {first}"
        )));
    }
    let too_large = || FetchError::TooLarge {
        url: url.into(),
        limit: max_len,
    };
    if last >= max_len || total.is_some_and(|t| t > max_len) {
        return Err(too_large());
    }
    // last < max_len and first <= last, so neither overflows.
    let remaining = max_len.checked_sub(offset).ok_or_else(too_large)?;
    Ok(remaining.min(last.saturating_sub(first).saturating_add(1)))
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Map a ureq error (possibly wrapped in an io::Error by the body reader) to ours.
fn map_ureq(url: &str, e: ureq::Error) -> FetchError {
    match e {
        ureq::Error::Timeout(t) => FetchError::Timeout {
            url: url.into(),
            what: t.to_string(),
        },
        ureq::Error::RequireHttpsOnly(to) => FetchError::InsecureRedirect {
            url: url.into(),
            to,
        },
        ureq::Error::Io(source) => map_io(url, source),
        ureq::Error::BadUri(reason) => FetchError::BadUrl {
            url: url.into(),
            reason,
        },
        other => FetchError::Transport {
            url: url.into(),
            message: other.to_string(),
        },
    }
}

fn map_io(url: &str, e: io::Error) -> FetchError {
    if e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
        let kind = e.kind();
        return match e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
            Some(Ok(inner)) => map_ureq(url, *inner),
            _ => FetchError::Io {
                url: url.into(),
                source: io::Error::from(kind),
            },
        };
    }
    match e.kind() {
        io::ErrorKind::TimedOut => {
            return FetchError::Timeout {
                url: url.into(),
                what: e.to_string(),
            }
        }
        // How rustls reports a refused certificate or a broken TLS record, and ureq a
        // malformed HTTP body: the peer misbehaved, this is not a local I/O problem.
        io::ErrorKind::InvalidData => {
            return FetchError::Transport {
                url: url.into(),
                message: e.to_string(),
            }
        }
        _ => {}
    }
    FetchError::Io {
        url: url.into(),
        source: e,
    }
}

impl Fetch for HttpFetcher {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let (_, response) = self.get(url, 0)?;
        self.copy(url, response.into_body(), max_len, sink)
    }

    /// `Range: bytes=offset-` (a plain GET for offset 0). A 206 is used only if its
    /// `Content-Range` starts at `offset` and ends within `max_len`; a 200 means the server
    /// sent the whole file, and the sink is told to start again from zero; anything else
    /// (416 included) is an error.
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        if offset > max_len {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: max_len,
            });
        }
        let (status, response) = self.get(url, offset)?;
        let (start, bound) = if status == 206 {
            let value = response
                .headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap_or("(not text)"));
            (offset, check_partial(url, value, offset, max_len)?)
        } else {
            (0, max_len)
        };
        sink.start_at(start).map_err(|source| FetchError::Write {
            url: url.into(),
            source,
        })?;
        self.copy(url, response.into_body(), bound, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes  5-9/10"), Some((5, 9, Some(10))));
        for bad in [
            "",
            "bytes",
            "bytes */200",
            "bytes 100-/200",
            "bytes -5/200",
            "bytes 10-5/200",
            "bytes 100-200/200",
            "bytes 1-2/x",
            "bytes 1-2",
            "items 1-2/3",
            "bytes1-2/3",
            "bytes +1-2/3",
            "bytes 1-99999999999999999999999/*",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_content_range("bytes 0-18446744073709551614/18446744073709551615"),
            Some((0, u64::MAX - 1, Some(u64::MAX)))
        );
    }

    #[test]
    fn partial_answers_must_be_the_range_asked_for() {
        let check = |cr: Option<&str>, offset, max| check_partial("u", cr, offset, max);
        assert_eq!(check(Some("bytes 10-99/100"), 10, 100).unwrap(), 90);
        assert_eq!(check(Some("bytes 10-99/*"), 10, 100).unwrap(), 90);
        // A shorter range is fine: the rest is asked for next time.
        assert_eq!(check(Some("bytes 10-19/100"), 10, 100).unwrap(), 10);
        assert!(matches!(
            check(Some("bytes 0-99/100"), 10, 100),
            Err(FetchError::BadRange { .. })
        ));
        assert!(matches!(
            check(None, 10, 100),
            Err(FetchError::BadRange { .. })
        ));
        assert!(matches!(
            check(Some("garbage"), 10, 100),
            Err(FetchError::BadRange { .. })
        ));
        for longer in ["bytes 10-100/101", "bytes 10-50/1000", "bytes 10-100/*"] {
            assert!(
                matches!(
                    check(Some(longer), 10, 100),
                    Err(FetchError::TooLarge { limit: 100, .. })
                ),
                "{longer}"
            );
        }
        let err = check(Some("bytes 20-99/100"), 10, 100).unwrap_err();
        assert!(err.to_string().contains("from 10"), "{err}");
    }
}
