//! The application that faults in its start-up checks (an undefined instruction, as a
//! miscompiled or corrupted build would execute): signed and approved, and reverted by the
//! bootloader when it fails its trial boot.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    ota_ecu_app::run("brake-fw", "4.1", |console| {
        use core::fmt::Write;
        let _ = writeln!(console, "APP brake-fw 4.1: start-up checks: sensors answer");
        cortex_m::asm::udf()
    })
}
