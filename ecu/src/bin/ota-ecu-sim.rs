//! `ota-ecu-sim`: a simulated ECU on the UDP-carried CAN bus (see `ota_ecu::sim`).
//!
//! ```text
//! ota-ecu-sim --bind 127.0.0.1:7001 --peer 127.0.0.1:7000 --serial BRK-0001 \
//!             --hardware-id BRAKE-A --supplier-key acme-targets.pub.pem --flash-dir /tmp/ecu1 \
//!             --rx-id 0x7E0 --tx-id 0x7E8 [--fd] [--threshold 1] [--slot-size 16777216]
//! ```

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

fn main() -> ExitCode {
    let stop = AtomicBool::new(false);
    match ota_ecu::sim::parse(std::env::args().skip(1)).and_then(|a| ota_ecu::sim::run(a, &stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ota-ecu-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
