//! One fetcher for every kind of location a publisher may be given: `http(s)://` through
//! [`HttpFetcher`], `file://` and plain paths through [`DirFetcher`].

use super::{DirFetcher, Fetch, FetchError, HttpFetcher};
use std::io::Write;

pub struct AnyFetcher {
    http: HttpFetcher,
    dir: DirFetcher,
}

impl AnyFetcher {
    pub fn new(http: HttpFetcher) -> Self {
        AnyFetcher {
            http,
            dir: DirFetcher::new(),
        }
    }
}

impl Fetch for AnyFetcher {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            self.http.fetch_into(url, max_len, sink)
        } else {
            self.dir.fetch_into(url, max_len, sink)
        }
    }
}
