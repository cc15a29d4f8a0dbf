//! What a benchmark could not run, for its last line: a skipped section is not a figure, so
//! the output says so where a reader (or CI's log) looks last.

use std::sync::Mutex;

/// The sections a benchmark skipped, and why.
pub struct Skipped(Mutex<Vec<String>>);

impl Skipped {
    pub const fn new() -> Self {
        Skipped(Mutex::new(Vec::new()))
    }

    /// Section `what` did not run (say which, and what it needs).
    pub fn add(&self, what: impl Into<String>) {
        if let Ok(mut s) = self.0.lock() {
            s.push(what.into());
        }
    }

    /// "every section ran", or "SKIPPED sections: …".
    pub fn last_line(&self) -> String {
        match self.0.lock().map(|s| s.clone()).unwrap_or_default() {
            s if s.is_empty() => "every section ran".into(),
            s => format!("SKIPPED sections: {}", s.join("; ")),
        }
    }
}

impl Default for Skipped {
    fn default() -> Self {
        Self::new()
    }
}
