//! Fault injection for the power-loss and kill tests (hidden; not a configuration option).
//!
//! With `OTA_GATEWAY_FAULT_AT=N` in its environment, the gateway aborts (no unwinding, no
//! cleanup: as close to a power cut or SIGKILL as a process can do to itself) at the N-th
//! *step* of the run: each durable write of an update (an image staged, the journal written
//! or cleared, the gateway state saved) and each message to an ECU that changes it (an image
//! sent, half of it sent, an activation, a discard). Before aborting it prints
//! `ota-gateway: fault injection: abort at step N: WHAT` on standard error. A run that ends
//! without reaching step N is a run with fewer steps: the kill tests count up until then.
//!
//! `ota-repo` takes `OTA_REPO_FAULT_AT=N` the same way: its steps are the durable writes of
//! publish, rotate-key and the rest (each file renamed into place or removed) and each object
//! upload sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the step the gateway aborts at.
pub const ENV: &str = "OTA_GATEWAY_FAULT_AT";
/// The environment variable naming the step `ota-repo` aborts at.
pub const REPO_ENV: &str = "OTA_REPO_FAULT_AT";

static STEPS: AtomicU64 = AtomicU64::new(0);

fn abort_at() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| {
        [ENV, REPO_ENV]
            .iter()
            .find_map(|e| std::env::var(e).ok())
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The name of this program, for the message.
fn program() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "ota".into())
}

/// One step of the run, described by `what` (only evaluated when it is the step to abort at).
pub fn point(what: impl FnOnce() -> String) {
    let Some(at) = abort_at() else {
        return;
    };
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        crate::out::err_line(format_args!(
            "{}: fault injection: abort at step {n}: {}",
            program(),
            what()
        ));
        std::process::abort();
    }
}
