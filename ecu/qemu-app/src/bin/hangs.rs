//! The application that hangs in its start-up checks (waits forever for a sensor that never
//! answers): signed and approved, never confirms itself, and is reset by the watchdog the
//! bootloader armed for its trial, then reverted.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    ota_ecu_app::run("brake-fw", "4.2", |console| {
        use core::fmt::Write;
        let _ = writeln!(
            console,
            "APP brake-fw 4.2: start-up checks: waiting for the wheel sensors"
        );
        loop {
            core::hint::spin_loop()
        }
    })
}
