//! Fault injection for the power-loss tests (hidden; not a configuration option).
//!
//! With `OTA_GATEWAY_FAULT_AT=N` in its environment, the gateway aborts (no unwinding, no
//! cleanup: as close to a power cut or SIGKILL as a process can do to itself) at the N-th
//! *step* of the run: each durable write of an update (an image staged, the journal written
//! or cleared, the gateway state saved) and each message to an ECU that changes it (an image
//! sent, half of it sent, an activation, a discard). Before aborting it prints
//! `ota-gateway: fault injection: abort at step N: WHAT` on standard error. A run that ends
//! without reaching step N is a run with fewer steps: the kill tests count up until then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the step to abort at.
pub const ENV: &str = "OTA_GATEWAY_FAULT_AT";

static STEPS: AtomicU64 = AtomicU64::new(0);

fn abort_at() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| std::env::var(ENV).ok().and_then(|v| v.trim().parse().ok()))
}

/// One step of the run, described by `what` (only evaluated when it is the step to abort at).
pub fn point(what: impl FnOnce() -> String) {
    let Some(at) = abort_at() else {
        return;
    };
    let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        eprintln!(
            "ota-gateway: fault injection: abort at step {n}: {}",
            what()
        );
        std::process::abort();
    }
}
