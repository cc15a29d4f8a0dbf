//! Size bounds on metadata, in one place. Defaults are python-tuf's.

/// Largest accepted size of each kind of metadata file, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    /// Top-level and delegated targets, and the project's other roles.
    pub targets: u64,
    /// Largest accepted size of a file whose length the signed metadata gives (a snapshot
    /// the timestamp lists with its length, a targets role the snapshot does): the signed
    /// length wins over the bounds above, up to this hard ceiling. 128 MiB.
    pub signed_ceiling: u64,
}

impl MetadataLimits {
    /// The bound on a file of kind `default` whose signed length is `signed`, if known.
    pub fn bound(&self, default: u64, signed: Option<u64>) -> u64 {
        signed.map_or(default, |l| l.min(self.signed_ceiling))
    }
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
            signed_ceiling: 128 << 20,
        }
    }
}
