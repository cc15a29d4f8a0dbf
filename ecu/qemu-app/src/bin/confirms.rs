//! The application that passes its start-up checks and confirms itself.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

/// The point release the delta benchmark builds adds a start-up check.
#[cfg(all(target_os = "none", not(feature = "point-release")))]
const VERSION: &str = "4.0";
#[cfg(all(target_os = "none", feature = "point-release"))]
const VERSION: &str = "4.1";

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    ota_ecu_app::run("brake-fw", VERSION, |console| {
        use core::fmt::Write;
        let _ = writeln!(
            console,
            "APP brake-fw {VERSION}: start-up checks: sensors answer"
        );
        #[cfg(feature = "point-release")]
        let _ = writeln!(
            console,
            "APP brake-fw {VERSION}: start-up checks: brake pressure in range"
        );
    })
}
