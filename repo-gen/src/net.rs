//! How the publishers reach other parties' repositories (the OEM reading a supplier's, the
//! regulator reading the OEM's and the suppliers'): through the gateway's own TUF client.

use crate::error::Result;
use ota_client::tuf::{AnyFetcher, CaRoots, HttpFetcher, Limits};
use std::path::Path;

/// A fetcher for `http(s)://` URLs, `file://` URLs and plain directories. HTTPS trusts `ca`
/// (a PEM bundle) if given, else the built-in web roots.
pub fn fetcher(ca: Option<&Path>, limits: &Limits) -> Result<AnyFetcher> {
    let roots = match ca {
        Some(p) => CaRoots::from_pem_file(p).map_err(ota_client::tuf::Error::from)?,
        None => CaRoots::WebPki,
    };
    Ok(AnyFetcher::new(
        HttpFetcher::new(limits, roots).map_err(ota_client::tuf::Error::from)?,
    ))
}

/// A directory given where a URL is expected becomes an absolute path the fetcher reads.
pub fn location(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        std::path::absolute(s)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| s.to_string())
    }
}
