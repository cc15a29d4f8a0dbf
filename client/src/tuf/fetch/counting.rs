//! A [`Fetch`] wrapper that records every request and the bytes it returned: for tests and
//! benchmarks that measure what a check downloads through the real client code.

use super::{Fetch, FetchError, RangeSink};
use std::io::Write;
use std::sync::Mutex;

/// Records `(url, bytes returned)` of every successful request made through it.
#[derive(Debug, Default)]
pub struct Counting<F> {
    inner: F,
    log: Mutex<Vec<(String, u64)>>,
}

impl<F: Fetch> Counting<F> {
    pub fn new(inner: F) -> Self {
        Counting {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }
    /// The requests so far, and forget them.
    pub fn take(&self) -> Vec<(String, u64)> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
    fn record(&self, url: &str, n: u64) {
        if let Ok(mut l) = self.log.lock() {
            l.push((url.to_string(), n));
        }
    }
}

impl<F: Fetch> Fetch for Counting<F> {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let n = self.inner.fetch_into(url, max_len, sink)?;
        self.record(url, n);
        Ok(n)
    }
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        let n = self.inner.fetch_range_into(url, offset, max_len, sink)?;
        self.record(url, n);
        Ok(n)
    }
}
