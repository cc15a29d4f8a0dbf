//! Errors of the publishers: what went wrong and on which file or object.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: ota_metadata::Error,
    },
    #[error(transparent)]
    Model(#[from] ota_metadata::Error),
    /// Fetching or verifying another party's repository.
    #[error(transparent)]
    Client(#[from] ota_client::tuf::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A role's threshold in a settings file that its keys cannot meet (or zero).
    #[error(
        "{path}: role {role}: threshold {threshold} with {keys} key(s); a threshold must be at \
         least 1 and at most the number of the role's keys"
    )]
    Threshold {
        path: PathBuf,
        role: String,
        threshold: u32,
        keys: usize,
    },
    /// Another command holds the working directory's lock.
    #[error("another ota-repo command is working in {dir}; {}", wait_hint(*.waited))]
    Locked {
        dir: PathBuf,
        /// Seconds waited (`--wait`), or `None` when the command did not wait.
        waited: Option<u64>,
    },
    /// An input file that is a FIFO, device, socket or directory: reading it could block
    /// forever or see it change, so it is refused before anything is locked or read.
    #[error("{path} is {kind}, not a regular file")]
    NotRegularFile { path: PathBuf, kind: &'static str },
    /// `add-image --delta-from` that cannot be built (which earlier version, and why).
    #[error("--delta-from {from}: {reason}")]
    Delta { from: String, reason: String },
    /// `oem assign` without exactly one of its three ways to select ECUs.
    #[error(
        "{problem}; select ECUs in one of three ways: one ECU (--vin VIN --ecu SERIAL), every \
         ECU of one vehicle the image fits (--vin VIN), or every ECU of one hardware id in the \
         whole fleet (--hardware-id ID)"
    )]
    AssignSelector { problem: &'static str },
    /// An object store (`ota-repo upload --to`) failed: which step, and the store's error.
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The store already serves a newer `timestamp.json` than the local tree's: uploading would
    /// roll clients back (another machine published and uploaded).
    #[error(
        "{store} holds timestamp version {remote}, newer than the local {local} (published from elsewhere?): uploading would roll clients back"
    )]
    StoreAhead {
        store: String,
        remote: u64,
        local: u64,
    },
    /// The store holds another tree than this one (its root chain is not this tree's): a
    /// wrong `--to`, or another party's prefix.
    #[error("{store} holds another tree: {reason}; refusing to overwrite it (check --to)")]
    StoreOtherTree { store: String, reason: String },
    /// The store already serves a versioned file of this tree with other bytes: the tree was
    /// restored from a backup or forked after that version was published.
    #[error(
        "{store} already serves {name} with other bytes than this tree's: this tree was restored from a backup or forked after that version was published, and uploading it would break every client; publish from the state that made the store's tree (or bring it back with the store's files), then upload"
    )]
    StoreForked { store: String, name: String },
    /// A file the timestamp leads to is in neither the store nor this upload: the timestamp is
    /// not sent (clients would fail on it).
    #[error("{store}: {name}, which the timestamp leads to, is not in the store; the timestamp was not sent (publish running? upload again)")]
    StoreIncomplete { store: String, name: String },
    /// A firmware image of zero bytes.
    #[error("image {path} is empty (0 bytes)")]
    EmptyImage { path: PathBuf },
}

fn wait_hint(waited: Option<u64>) -> String {
    match waited {
        None => "try again when it has finished, or pass --wait SECONDS to wait for it".into(),
        Some(s) => format!("it still held the lock after {s} s (--wait {s})"),
    }
}

impl Error {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn meta(path: &Path) -> impl FnOnce(ota_metadata::Error) -> Error + '_ {
        move |source| Error::Metadata {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn refused(msg: impl Into<String>) -> Error {
        Error::Refused(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
