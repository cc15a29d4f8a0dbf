//! The command's output. A closed stdout (`ota-repo key show K | head -1`, `ota-gateway update | head -1`) or stderr ends the
//! output, never the command: `println!` would panic on the broken pipe, possibly half-way
//! through a change. Output stops at the first failed write and the command carries on; its
//! exit status says whether the work was done.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write one line to stdout, unless stdout was found closed.
pub fn line(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .is_err()
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Write one line to stderr; a closed stderr is ignored.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Write `text` to stdout as it is (no newline added), unless stdout was found closed.
pub fn text(text: &str) {
    line_raw(text.as_bytes());
}

fn line_raw(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}
