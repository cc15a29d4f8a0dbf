//! The ECU side of the update system: a compact verifier that runs without an operating system.
//!
//! `no_std` with `alloc` only for RSA arithmetic. Everything parsed here arrives off the CAN bus
//! and is treated as hostile: fixed-size buffers, explicit bounds, no panics, no recursion.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod attestation;
pub mod bootloader;
#[cfg(feature = "std")]
pub mod bridge;
pub mod bus;
pub mod compact_manifest;
pub mod delta;
pub mod elf;
pub mod factory;
pub mod flash;
#[cfg(feature = "std")]
pub mod flasher;
pub mod instruction;
pub mod isotp;
#[cfg(feature = "std")]
pub mod sim;
pub mod slcan;
pub mod state;
#[cfg(feature = "std")]
pub mod transport;
pub mod trust;
pub mod uds;
