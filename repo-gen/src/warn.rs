//! Warnings for the operator, on stderr: each printed once per run, however many times the
//! condition is met (a key file is loaded once per role it signs for).

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Print `msg` as a warning, unless it was printed already.
pub fn warn(msg: impl Into<String>) {
    let msg = msg.into();
    let first = SEEN
        .lock()
        .map(|mut seen| seen.insert(msg.clone()))
        .unwrap_or(true);
    if first {
        // A closed stderr is no reason to fail the command.
        let _ = writeln!(std::io::stderr(), "ota-repo: warning: {msg}");
    }
}

/// Tell the operator what the command is doing (stderr, `ota-repo: ` prefix), e.g. that it
/// waits for a lock. A closed stderr is ignored.
pub fn note(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "ota-repo: {msg}");
}
