//! One fetcher for every kind of location a publisher may be given: `http(s)://` through
//! [`HttpFetcher`], `file://` and plain paths through [`DirFetcher`].

use super::{DirFetcher, Fetch, FetchError, HttpFetcher, RangeSink};
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

impl AnyFetcher {
    fn pick(&self, url: &str) -> &dyn Fetch {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            &self.http
        } else {
            &self.dir
        }
    }
}

impl Fetch for AnyFetcher {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        self.pick(url).fetch_into(url, max_len, sink)
    }

    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        self.pick(url).fetch_range_into(url, offset, max_len, sink)
    }
}
