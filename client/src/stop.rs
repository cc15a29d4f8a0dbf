//! A stop request (SIGTERM or SIGINT, for `ota-gateway run`): one process-wide flag, set by
//! the signal handler of `signal-hook` (no `unsafe` here) and checked between steps and inside
//! the download loop. A download stopped this way trusts nothing half-verified: its partial
//! file (for an encrypted image, the plaintext of the chunks decrypted so far and the stream's
//! header) stays for the next run to resume with a Range request, and is hash-checked with
//! the rest; images already complete in staging stay and are reused by the next check
//! (hash-checked), and the commit journal is never cut between its
//! `commit` and the activations (the activations run to the end; the next start rolls forward
//! whatever could not be activated).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Route SIGTERM and SIGINT to the stop flag (instead of killing the process).
pub fn install() -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Ask for a stop (tests, and callers that stop for their own reasons).
pub fn request() {
    flag().store(true, Ordering::Relaxed);
}

/// Sleep `d`, waking every 100 ms to look at the flag; true if a stop was asked for.
pub fn sleep(d: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + d;
    loop {
        if requested() {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(100)));
    }
}
