//! `ota-conformance`: proof that this project speaks standard TUF.
//!
//! - [`cli`]: `ota-tuf-conformance`, the client binary the python
//!   [tuf-conformance](https://github.com/theupdateframework/tuf-conformance) suite drives
//!   (`init`, `refresh`, `download`), built on `ota_client::tuf` — the very client the gateway
//!   runs, not a second implementation. Its own tests (`tests/cli.rs`) run the real binary
//!   against trees written by `ota-repo` and by a small test repository writer (ed25519 and
//!   ECDSA keys, no consistent snapshots, unusual role names), over `file://` and HTTP, and
//!   under `faketime`.
//! - `tests/tough_interop.rs`: [tough](https://crates.io/crates/tough), an independent TUF
//!   implementation, in both directions: tough reads and verifies a supplier tree written by
//!   `ota-repo` (including delegations and key rotations), and our own verifier
//!   (`ota_metadata::TrustedSet`) accepts a repository signed by tough's `RepositoryEditor`.
//!   tough is a dev-dependency only: it never reaches the gateway, the ECU or the publishers.

pub mod cli;
