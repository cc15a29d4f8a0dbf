//! Size bounds on metadata, in one place. Defaults are python-tuf's.

/// Largest accepted size of each kind of metadata file, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataLimits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    /// Top-level and delegated targets, and the project's other roles.
    pub targets: u64,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits {
            root: 512_000,
            timestamp: 16_384,
            snapshot: 2_000_000,
            targets: 5_000_000,
        }
    }
}
