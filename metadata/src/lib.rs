//! The signed-document model of the OTA system: no I/O, just documents and the rules for
//! trusting them.
//!
//! - [`canonical`]: OLPC canonical JSON, the bytes signatures cover.
//! - [`keys`], [`signing`]: key objects, ids, verification (RSA-PSS, Ed25519, ECDSA P-256) and
//!   RSA signing.
//! - [`envelope`]: parsing untrusted signed documents and threshold verification.
//! - [`roles`]: TUF's root, timestamp, snapshot, targets and delegations.
//! - [`documents`]: the image manifest and its compact form, review requests, the regulators
//!   role, vehicle assignments and attestations.
//! - [`trusted_set`]: what may replace what — the I/O-free core of the TUF client workflow.

pub mod canonical;
pub mod documents;
pub mod envelope;
pub mod error;
pub mod keyfile;
pub mod keys;
pub mod limits;
pub mod names;
pub mod roles;
pub mod signing;
pub mod time;
pub mod trusted_set;

pub use envelope::{sign_document, Envelope, Signature};
pub use error::{Error, Result};
pub use keys::{Key, KeyId, PublicKey};
pub use limits::MetadataLimits;
pub use signing::SigningKey;
pub use time::DateTime;
pub use trusted_set::{TrustedSet, Update, Verified};
