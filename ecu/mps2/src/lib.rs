//! Board code shared by the ECU's bootloader (`ecu/qemu`) and the applications it starts
//! (`ecu/qemu-app`) on QEMU's `mps2-an386` (Cortex-M4). All of its `unsafe` is here, each use
//! commented. On the host it is empty.
//!
//! - **UART0** (CMSDK APB UART at 0x4000_4000) carries the CAN bus as SLCAN lines; **UART1**
//!   (0x4000_5000) is the console. QEMU maps its first `-serial` to UART0, its second to UART1.
//! - **The hand-off words** ([`handoff`]): the last 32 bytes of RAM, outside every program's
//!   linker RAM region, where the bootloader and the application leave each other a word
//!   across a reset (why the core reset, what the application asks of the bootloader, how the
//!   bootloader started the application). QEMU starts with RAM zeroed, as a power-on does.
//! - **The watchdog** ([`watchdog`], CMSDK APB watchdog at 0x4000_8000): the bootloader arms it
//!   before it starts an application on trial, so one that hangs before confirming is reset.
//! - **The memory map** ([`map`]): where the bootloader's partition, the run region the
//!   bootloader copies an application into, and the RAM are.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
pub mod handoff;
#[cfg(target_os = "none")]
mod uart;
#[cfg(target_os = "none")]
pub mod watchdog;
#[cfg(target_os = "none")]
pub use uart::Uart;

/// The memory map both programs are linked for (see their `memory.x`).
pub mod map {
    /// The bootloader's fixed flash partition.
    pub const BOOTLOADER: usize = 0x0000_0000;
    pub const BOOTLOADER_LEN: usize = 128 * 1024;
    /// Where the bootloader copies the active image before starting it (MCUboot's RAM-load:
    /// the A/B slots are at two addresses and an image is linked for one, this one).
    pub const RUN: usize = 0x0008_0000;
    /// As large as a slot.
    pub const RUN_LEN: usize = 256 * 1024;
    /// The RAM every program has (64 KiB, S32K144-class), less the hand-off words at its end.
    pub const RAM: usize = 0x2000_0000;
    pub const RAM_LEN: usize = 64 * 1024 - 32;
}
