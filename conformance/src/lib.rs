//! `ota-conformance`: proof that the trees this project publishes are standard TUF.
//!
//! For now the crate holds only integration tests (`tests/tough_interop.rs`) that use
//! [tough](https://crates.io/crates/tough), an independent TUF implementation, in both
//! directions: tough reads and verifies a supplier tree written by `ota-repo` (including
//! delegations and key rotations), and our own verifier (`ota_metadata::TrustedSet`) accepts a
//! repository signed by tough's `RepositoryEditor`. tough is a dev-dependency only: it never
//! reaches the gateway, the ECU or the publishers.
//!
//! The tuf-conformance client CLI (the contract the python `tuf-conformance` suite drives) will
//! live here later.
