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
