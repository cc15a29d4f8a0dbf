//! ECU simulator *processes* for the end-to-end tests: each ECU is this test binary started
//! again as the simulator (`ota_ecu::sim`, exactly what the `ota-ecu-sim` binary runs), since
//! Cargo hands a package's tests only that package's binaries. A test binary that uses this
//! module declares the entry point:
//!
//! ```ignore
//! #[test]
//! fn ecu_simulator_process() {
//!     ecu_process::entry()
//! }
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

/// Set (to the simulator's arguments, separated by U+001F) in the ECU processes.
const SIM_ARGS: &str = "OTA_TEST_ECU_SIM_ARGS";

/// The ECU processes' entry point: without [`SIM_ARGS`] it does nothing (the ordinary test
/// run); with it, it runs the ECU simulator on those arguments until killed.
pub fn entry() {
    let Ok(args) = std::env::var(SIM_ARGS) else {
        return;
    };
    let stop = AtomicBool::new(false);
    let args = args.split('\u{1f}').map(String::from);
    match ota_ecu::sim::parse(args).and_then(|a| ota_ecu::sim::run(a, &stop)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("ota-ecu-sim: {e}");
            std::process::exit(1)
        }
    }
}

/// A running ECU process; killed (SIGKILL, as a power cut: its flash files stay) when dropped.
pub struct Sim(pub Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start an ECU process with simulator `args` and wait until it listens on the bus.
pub fn spawn(args: &[String]) -> Sim {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "ecu_simulator_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIM_ARGS, args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let sim = Sim(child);
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the ECU simulator did not start");
    sim
}
