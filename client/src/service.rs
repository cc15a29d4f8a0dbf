//! `ota-gateway run`: the gateway as a long-running service. Timing (interval, jitter,
//! exponential backoff), one JSON log line per check, and the upload of version reports.

use crate::config::ServiceConfig;
use rand_core::{OsRng, RngCore};
use serde::Serialize;

/// A uniformly random number of seconds in [0, max] (from the OS).
pub fn uniform(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let span = max.saturating_add(1);
    // Rejection sampling: no modulo bias.
    let zone = u64::MAX - (u64::MAX % span);
    loop {
        let x = OsRng.next_u64();
        if x < zone {
            return x % span;
        }
    }
}

/// The delay before the first check: uniform in [0, jitter].
pub fn first_delay(s: &ServiceConfig) -> u64 {
    uniform(s.jitter_secs)
}

/// The delay before the next check. `failures` is the number of failed checks in a row
/// (0 after a success): `interval ± jitter` when 0, else
/// `min(retry * 2^(failures-1), max_backoff)` plus a uniform jitter of up to a tenth of it.
pub fn next_delay(s: &ServiceConfig, failures: u32) -> u64 {
    if failures == 0 {
        let low = s.interval_secs.saturating_sub(s.jitter_secs).max(1);
        let high = s.interval_secs.saturating_add(s.jitter_secs);
        return low.saturating_add(uniform(high.saturating_sub(low)));
    }
    let shift = failures.saturating_sub(1).min(63);
    let base = s
        .retry_secs
        .saturating_mul(1u64 << shift)
        .min(s.max_backoff_secs);
    base.saturating_add(uniform(base / 10))
}

/// What a check came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every ECU up to date, nothing assigned to change.
    NothingNew,
    /// At least one ECU switched to a new image.
    Updated,
    /// The check ran; something was not clean (held back, recalled) but nothing failed.
    Ok,
    Failed,
}

/// One line of the service log (JSON, one object per line on stdout).
#[derive(Debug, Serialize)]
pub struct LogLine<'a> {
    pub time: String,
    pub vin: &'a str,
    pub check: u64,
    pub outcome: Outcome,
    pub ecus_updated: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// "uploaded", "failed: ..." or absent when no report_url is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// A stop was asked for: this was the last check.
    pub stopped: bool,
    /// When the next check is due (the loop's schedule, also on the last line of a run that
    /// stops after it).
    pub next_check_secs: u64,
}

impl LogLine<'_> {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"log_error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_bounds_and_back_off() {
        let s = ServiceConfig {
            interval_secs: 100,
            jitter_secs: 10,
            retry_secs: 5,
            max_backoff_secs: 60,
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = next_delay(&s, 0);
            assert!((90..=110).contains(&d), "{d}");
            seen.insert(d);
            assert!(first_delay(&s) <= 10);
        }
        assert!(seen.len() > 5, "jitter varies: {seen:?}");
        assert!((5..=5).contains(&next_delay(&s, 1)));
        assert!((10..=11).contains(&next_delay(&s, 2)));
        assert!((20..=22).contains(&next_delay(&s, 3)));
        assert!((60..=66).contains(&next_delay(&s, 10)));
        assert!((60..=66).contains(&next_delay(&s, u32::MAX)));
        assert_eq!(uniform(0), 0);
    }
}
