//! The application that passes its start-up checks and confirms itself.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    ota_ecu_app::run("brake-fw", "4.0", |console| {
        use core::fmt::Write;
        let _ = writeln!(console, "APP brake-fw 4.0: start-up checks: sensors answer");
    })
}
