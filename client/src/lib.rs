//! The vehicle side of the OTA system.
//!
//! - [`tuf`]: the TUF 1.0 client workflow over one repository (root rotation, timestamp,
//!   snapshot, targets, delegated targets found lazily, bounded and hashed downloads), on top
//!   of the I/O-free rules in [`ota_metadata::TrustedSet`]. The gateway runs it once per
//!   repository it walks (OEM master, regulators, suppliers); the regulator reuses it to pull
//!   the images it reviews, so both verify exactly the same way.
//!
//! Blocking and runtime-free on purpose: the gateway is a small process on a small computer,
//! and every step of an update is sequential anyway.

pub mod config;
pub mod decrypt;
pub mod fault;
pub mod forward;
pub mod gateway;
pub mod image;
pub mod journal;
pub mod out;
pub mod progress;
pub mod service;
pub mod staging;
pub mod state;
pub mod stop;
pub mod tuf;
pub mod walk;
