//! Every bound the TUF client applies, in one place, so a configuration file can set them all
//! and nothing unbounded hides in the code. Defaults are python-tuf's where it has one.

use ota_metadata::MetadataLimits;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted size of each kind of metadata file (root 512,000 bytes, timestamp
    /// 16,384, snapshot 2,000,000, targets 5,000,000), used whenever the signed metadata does
    /// not give a length itself.
    pub metadata: MetadataLimits,
    /// How many new root versions one refresh may walk (python-tuf: 256). Past it the refresh
    /// carries on with the newest root reached, and the next refresh walks further.
    pub max_root_rotations: u32,
    /// How many delegated targets roles one target lookup may visit (python-tuf: 32), so that
    /// a hostile delegation graph cannot make a lookup fetch without end. Reaching it is an
    /// error that says so (python-tuf answers "not found"), so a vehicle log shows why.
    pub max_delegations: usize,
    /// Bound on DNS resolution plus TCP and TLS connection set-up, per request.
    pub connect_timeout: Duration,
    /// Bound on each wait for data from the server (not on the whole transfer: a large image
    /// on a slow link is fine as long as bytes keep coming).
    pub read_timeout: Duration,
    /// Largest target this client downloads, whatever length the signed metadata gives: a
    /// validly signed but absurd length must not be allowed to fill the disk.
    pub max_target_size: u64,
    /// Redirects followed per request (never from HTTPS to plain HTTP).
    pub max_redirects: u32,
    /// Slowest accepted average speed of an HTTP body, in bytes per second, over every
    /// [`Limits::min_speed_window`] (slow-retrieval attack). 0 turns the check off; the read
    /// timeout still applies.
    pub min_bytes_per_sec: u64,
    /// The grace period before the speed is first checked, and the span every later check
    /// averages over.
    pub min_speed_window: Duration,
    /// How many times a target download whose connection broke off (dropped, reset, or a
    /// read timed out) after some bytes arrived is resumed with `Range: bytes=N-`. Each
    /// attempt must bring at least one byte; 0 never resumes.
    pub max_resume_attempts: u32,
    /// How many targets [`crate::tuf::Updater::fetch_targets`] downloads at once, each on a
    /// connection of its own (kept for the next target). 4 measured best on a two-core
    /// machine against nginx on loopback (the gateway benchmark); 1 downloads one after
    /// another on the calling thread. Peak memory grows by about 0.3 MiB per download.
    pub download_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            metadata: MetadataLimits::default(),
            max_root_rotations: 256,
            max_delegations: 32,
            // python-tuf's fetchers use one 30 s socket timeout for both.
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_target_size: 4 << 30,
            max_redirects: 5,
            min_bytes_per_sec: 1024,
            min_speed_window: Duration::from_secs(10),
            max_resume_attempts: 3,
            download_concurrency: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_python_tufs() {
        let l = Limits::default();
        assert_eq!(l.metadata.root, 512_000);
        assert_eq!(l.metadata.timestamp, 16_384);
        assert_eq!(l.metadata.snapshot, 2_000_000);
        assert_eq!(l.metadata.targets, 5_000_000);
        assert_eq!(l.max_root_rotations, 256);
        assert_eq!(l.max_delegations, 32);
    }
}
