//! `ota-slcan-bridge`: join a serial-line CAN (SLCAN) port to the UDP-carried CAN bus, so an
//! ECU behind a serial line (the emulated Cortex-M4 ECU on QEMU's UART, or a USB-CAN adapter)
//! shares the bus with the gateway and the simulated ECUs.
//!
//! ```text
//! ota-slcan-bridge --serial tcp:127.0.0.1:7100 --bind 127.0.0.1:7003 --peer 127.0.0.1:7000
//! ota-slcan-bridge --serial /dev/ttyACM0 --bind 127.0.0.1:7003 --peer 127.0.0.1:7000
//! ```
//! `tcp:HOST:PORT` connects to a serial port offered over TCP (QEMU's `-serial
//! tcp:HOST:PORT,server=on`), retrying for `--connect-timeout` seconds; a path opens a serial
//! device or FIFO for reading and writing (its line settings are the system's: `stty`).
//! Frames off the line go to every `--peer`; frames from the bus go onto the line. Lines that
//! do not decode are dropped and counted. The bridge runs until the serial side closes.

use std::process::ExitCode;

fn main() -> ExitCode {
    match ota_ecu::bridge::parse(std::env::args().skip(1)).and_then(ota_ecu::bridge::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ota-slcan-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
