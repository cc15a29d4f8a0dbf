//! One error type for the document model. Every variant names what was wrong, so a CLI can
//! print it as-is and a test can match on it.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} is {len} bytes, over the limit of {limit}")]
    TooLarge { what: String, len: u64, limit: u64 },
    #[error("{what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("cannot write canonical JSON: {0}")]
    Canonical(String),
    #[error("key {keyid}: {reason}")]
    BadKey { keyid: String, reason: String },
    #[error("unsupported key type/scheme {keytype}/{scheme}")]
    UnsupportedKey { keytype: String, scheme: String },
    #[error("private key: {0}")]
    PrivateKey(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error(
        "{role}: {valid} valid signature(s) from distinct trusted keys, threshold is {threshold}"
    )]
    Threshold {
        role: String,
        valid: usize,
        threshold: u32,
    },
    /// The TUF specification requires key ids in `signatures` to be unique; a repeat is
    /// refused rather than skipped, as python-tuf and tough do.
    #[error("{role}: more than one signature with key id {keyid}")]
    DuplicateSignature { role: String, keyid: String },
    #[error("{role}: expected _type {expected:?}, found {found:?}")]
    WrongType {
        role: String,
        expected: String,
        found: String,
    },
    #[error("{role} expired at {expires} (now {now})")]
    Expired {
        role: String,
        expires: String,
        now: String,
    },
    #[error("{role}: version {found} is not allowed, expected {expected}")]
    Version {
        role: String,
        found: u64,
        expected: String,
    },
    #[error("{what}: length {found}, expected {expected}")]
    Length {
        what: String,
        found: u64,
        expected: u64,
    },
    #[error("{what}: sha256 {found}, expected {expected}")]
    Hash {
        what: String,
        found: String,
        expected: String,
    },
    #[error("{what}: {field} is {found}, expected {expected}")]
    Mismatch {
        what: String,
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("{what} is missing: {detail}")]
    Missing { what: String, detail: String },
    #[error("{role}: {reason}")]
    Policy { role: String, reason: String },
    #[error("compact manifest: {0}")]
    Compact(ota_ecu::compact_manifest::Error),
}

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn policy(role: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Policy {
            role: role.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
