//! repo-gen: the publishers of the OTA system, behind the thin `ota-repo` CLI.
//!
//! - [`supplier`]: the supplier's image repository.
//! - [`publish`]: the consistent-snapshot writer every publisher shares.
//! - [`verify`]: checking a whole published tree with the client's own trust rules.
//! - [`keystore`], [`workdir`], [`fsutil`]: keys, working directories, atomic writes.

#[macro_use]
mod out;
pub mod cli;
pub mod commands;
pub mod error;
pub mod fsutil;
pub mod keystore;
pub mod net;
pub mod oem;
pub mod publish;
pub mod regulator;
pub mod root_build;
pub mod rotation;
pub mod run;
pub mod supplier;
pub mod tree_check;
pub mod upload;
pub mod verify;
pub mod warn;
pub mod workdir;
