//! Dispatch of a parsed command line to its command group in [`crate::commands`].

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::Result;
use ota_metadata::DateTime;

pub fn run(cli: Cli) -> Result<()> {
    // The hidden --now pins the time, for reproducible trees and tests.
    let now = match &cli.now {
        Some(t) => DateTime::parse(t)?,
        None => DateTime::now(),
    };
    match cli.command {
        Command::Key(k) => commands::key::run(k),
        Command::Supplier { wait, command } => commands::supplier::run(command, wait.wait, now),
        Command::Oem { wait, command } => commands::oem::run(command, wait.wait, now),
        Command::Regulator { wait, command } => commands::regulator::run(command, wait.wait, now),
        Command::Upload(a) => commands::upload::run(a),
        Command::Verify(a) => commands::verify::run(a, now),
    }
}
