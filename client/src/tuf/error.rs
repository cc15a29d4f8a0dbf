//! One error type for the TUF client. Each variant says which check failed and where: the URL
//! (or local file) the bytes came from, the role, the target.

use super::fetch::FetchError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes from `url` broke a TUF rule (signature threshold, version, expiry, length or
    /// hash of a metafile, malformed document). `source` names the rule and the role.
    #[error("{url}: {source}")]
    Metadata {
        url: String,
        #[source]
        source: ota_metadata::Error,
    },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Reading or writing the local metadata directory (or the download directory).
    #[error("{path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No usable trusted root in the metadata directory.
    #[error("no trusted root at {path}: {reason}")]
    NoTrustedRoot { path: PathBuf, reason: String },
    /// A lookup or download before a refresh succeeded (or after one failed).
    #[error("{repository}: refresh the metadata first (no complete refresh has succeeded)")]
    NotRefreshed { repository: String },
    /// The delegation search visited its bound of roles without an answer.
    #[error(
        "{repository}: target {target}: gave up after visiting {limit} delegated roles \
         (max_delegations)"
    )]
    TooManyDelegations {
        repository: String,
        target: String,
        limit: usize,
    },
    /// A target that cannot be downloaded as described: empty name, over the size bound,
    /// no SHA-256 listed.
    #[error("{repository}: target {target}: {reason}")]
    BadTarget {
        repository: String,
        target: String,
        reason: String,
    },
    /// The downloaded target is shorter than its signed length (longer is
    /// [`FetchError::TooLarge`], refused while reading).
    #[error("target {target} from {url}: {found} bytes, the signed length is {expected}")]
    TargetLength {
        target: String,
        url: String,
        found: u64,
        expected: u64,
    },
    /// The downloaded target's SHA-256 is not the signed one.
    #[error("target {target} from {url}: sha256 {found}, the signed sha256 is {expected}")]
    TargetHash {
        target: String,
        url: String,
        found: String,
        expected: String,
    },
    /// A state the trusted set's own rules should make impossible.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn metadata(url: &str) -> impl FnOnce(ota_metadata::Error) -> Error + '_ {
        move |source| Error::Metadata {
            url: url.into(),
            source,
        }
    }
    pub(crate) fn store(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Store { path, source }
    }
}
