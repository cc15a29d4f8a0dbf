//! `ota-repo oem ecu …`: one ECU of a vehicle: add, remove, replace, register its key.

use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::Subcommand;
use std::path::{Path, PathBuf};

pub const OEM_ECU_EXAMPLES: &str = "Examples:
  ota-repo oem ecu add oem --vin VIN1 --ecu ABS-1:ABS-MOD-1
  ota-repo oem ecu key oem --vin VIN1 --ecu ABS-1 --key abs-1.pub.pem
  ota-repo oem ecu replace oem --vin VIN1 --ecu ABS-1 --with ABS-2:ABS-MOD-1
  ota-repo oem ecu remove oem --vin VIN1 --ecu ABS-2";

#[derive(Subcommand, Debug)]
pub enum EcuCommand {
    /// Add an ECU to a vehicle.
    Add {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The new ECU, as SERIAL:HARDWARE_ID.
        #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
        ecu: String,
        /// The ECU is aftermarket: it is never assigned updates.
        #[arg(long)]
        aftermarket: bool,
    },
    /// Remove an ECU from a vehicle (and withdraw its assignment).
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
    },
    /// Register an ECU's public key (it signs its version reports with it).
    Key {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
        /// PEM public key of the ECU (or private key, of which the public half is kept).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Replace an ECU; its assignment carries over if the hardware id is the same.
    Replace {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU to replace, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
        /// The new ECU, as SERIAL:HARDWARE_ID.
        #[arg(long = "with", value_name = "SERIAL:HARDWARE_ID")]
        with: String,
    },
}

impl EcuCommand {
    pub(super) fn dir(&self) -> &Path {
        match self {
            EcuCommand::Add { dir, .. }
            | EcuCommand::Key { dir, .. }
            | EcuCommand::Remove { dir, .. }
            | EcuCommand::Replace { dir, .. } => dir,
        }
    }
}

pub fn run(cmd: EcuCommand) -> Result<()> {
    match cmd {
        EcuCommand::Add {
            dir,
            vin,
            ecu,
            aftermarket,
        } => {
            oem::ecu_add(&dir, &vin, &ecu, aftermarket)?;
            say!(
                "added ECU {ecu} to {vin}{}",
                if aftermarket {
                    " (aftermarket: never updated)"
                } else {
                    ""
                }
            );
        }
        EcuCommand::Key {
            dir,
            vin,
            ecu: serial,
            key,
        } => {
            oem::ecu_key(&dir, &vin, &serial, &key)?;
            say!("registered the key of ECU {serial} of {vin}");
        }
        EcuCommand::Remove {
            dir,
            vin,
            ecu: serial,
        } => {
            let withdrawn = oem::ecu_remove(&dir, &vin, &serial)?;
            say!(
                "removed ECU {serial} from {vin}{}",
                if withdrawn {
                    "; withdrew its assignment"
                } else {
                    ""
                }
            );
        }
        EcuCommand::Replace {
            dir,
            vin,
            ecu: serial,
            with,
        } => {
            let carried = oem::ecu_replace(&dir, &vin, &serial, &with)?;
            say!(
                "replaced ECU {serial} of {vin} by {with}{}",
                if carried {
                    "; its assignment carries over"
                } else {
                    "; assign an image to it"
                }
            );
        }
    }
    Ok(())
}
