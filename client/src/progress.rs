//! Download progress on a terminal: a fetcher wrapper that draws one line per large body on
//! stderr, and stays silent when stderr is not a terminal (piped, logged, under a supervisor).

use crate::tuf::fetch::RangeSink;
use crate::tuf::{Fetch, FetchError};
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// Bodies smaller than this get no bar (metadata, manifests).
const MIN_BAR: u64 = 256 * 1024;

pub struct ProgressFetcher<F> {
    inner: F,
    enabled: bool,
}

impl<F: Fetch> ProgressFetcher<F> {
    /// Bars drawn only when stderr is a terminal.
    pub fn new(inner: F) -> Self {
        ProgressFetcher {
            inner,
            enabled: io::stderr().is_terminal(),
        }
    }
}

struct Bar<'s, S: ?Sized> {
    sink: &'s mut S,
    name: String,
    done: u64,
    total: u64,
    started: Instant,
    drawn: Option<Instant>,
}

impl<S: ?Sized> Bar<'_, S> {
    fn draw(&mut self, last: bool) {
        let now = Instant::now();
        if !last
            && self
                .drawn
                .is_some_and(|d| now - d < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(now);
        let pct = self
            .done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let width = 30u64;
        let fill = (pct.min(100) * width / 100) as usize;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs / 1e6;
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "\r  {:<32} [{}{}] {:>3}% {:>7.1} MB/s",
            self.name,
            "#".repeat(fill),
            " ".repeat(width as usize - fill),
            pct,
            rate
        );
        if last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

impl<S: Write + ?Sized> Write for Bar<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sink.write(buf)?;
        self.done = self.done.saturating_add(n as u64);
        self.draw(false);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl<S: RangeSink + ?Sized> RangeSink for Bar<'_, S> {
    fn start_at(&mut self, offset: u64) -> io::Result<()> {
        self.done = offset;
        self.sink.start_at(offset)
    }
}

fn name_of(url: &str) -> String {
    let last = url.rsplit('/').next().unwrap_or(url);
    // Drop a consistent-snapshot hash prefix for the display.
    let shown = match last.split_once('.') {
        Some((h, rest)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => rest,
        _ => last,
    };
    shown.chars().take(32).collect()
}

impl<F: Fetch> Fetch for ProgressFetcher<F> {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        if !self.enabled || max_len < MIN_BAR || max_len == u64::MAX {
            return self.inner.fetch_into(url, max_len, sink);
        }
        let mut bar = Bar {
            sink,
            name: name_of(url),
            done: 0,
            total: max_len,
            started: Instant::now(),
            drawn: None,
        };
        let r = self.inner.fetch_into(url, max_len, &mut bar);
        bar.draw(true);
        r
    }

    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        let total = offset.saturating_add(max_len);
        if !self.enabled || total < MIN_BAR {
            return self.inner.fetch_range_into(url, offset, max_len, sink);
        }
        let mut bar = Bar {
            sink,
            name: name_of(url),
            done: offset,
            total,
            started: Instant::now(),
            drawn: None,
        };
        let r = self.inner.fetch_range_into(url, offset, max_len, &mut bar);
        bar.draw(true);
        r
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_lose_the_hash_prefix() {
        let h = "ab".repeat(32);
        assert_eq!(
            super::name_of(&format!("http://x/targets/{h}.brake-fw-1.0.bin")),
            "brake-fw-1.0.bin"
        );
        assert_eq!(super::name_of("http://x/timestamp.json"), "timestamp.json");
    }
}
