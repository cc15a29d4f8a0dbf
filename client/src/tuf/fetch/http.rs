//! HTTP and HTTPS with `ureq` (blocking, rustls): bounded bodies, connect and per-read
//! timeouts from [`Limits`], a pinned CA bundle, and no redirect from HTTPS to plain HTTP.
//!
//! Resuming broken downloads and a minimum average speed come later; what is here is already
//! bounded in size (the caller's `max_len`) and in waiting (every read has a deadline).

use super::{copy_bounded, Fetch, FetchError};
use crate::tuf::limits::Limits;
use std::io::{self, Write};
use std::path::Path;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

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

/// Blocking HTTP(S) fetcher. Cheap to clone (connections are pooled and shared).
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    agent: ureq::Agent,
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
            .build();
        Ok(HttpFetcher {
            agent: ureq::Agent::new_with_config(config),
        })
    }
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
        let request = self.agent.get(url);
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
            404 | 410 => return Err(FetchError::NotFound { url: url.into() }),
            _ => {
                return Err(FetchError::Http {
                    url: url.into(),
                    status,
                })
            }
        }
        let body = response.into_body();
        if body.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit: max_len,
            });
        }
        copy_bounded(url, body.into_reader(), max_len, sink, |e| map_io(url, e))
    }
}
