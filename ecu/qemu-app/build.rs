//! The same linking as the bootloader's (`ecu/qemu/build.rs`), with this crate's `memory.x`
//! (the run region): one script serves both.
include!("../qemu/build.rs");
