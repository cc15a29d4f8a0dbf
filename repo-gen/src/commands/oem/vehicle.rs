//! `ota-repo oem vehicle …`: the vehicle inventory (one by one or imported from CSV), and
//! what each vehicle's gateway is given at the factory: its secret, its decryption keys, the
//! key it signs reports with.

use super::PUBLISH_HINT;
use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::{Args, Subcommand};
use ota_metadata::DateTime;
use std::path::{Path, PathBuf};

pub const OEM_VEHICLE_EXAMPLES: &str = "Examples:
  ota-repo oem vehicle add oem --vin VIN1 --ecu BRK-1:BRAKE-A --ecu HU-1:HU-GEN3 \\
      --aftermarket CAM-1:DASHCAM
  ota-repo oem vehicle key oem --vin VIN1 --key vin1-gateway.pub.pem";

#[derive(Subcommand, Debug)]
pub enum VehicleCommand {
    /// Import vehicles, their ECUs and the keys that sign their reports from a CSV file
    /// (`vin,ecus,aftermarket,vehicle_key`; ECUs as `SERIAL:HARDWARE_ID` or
    /// `SERIAL:HARDWARE_ID:KEY`, separated by `;`; a key is the base64 body of its public-key
    /// PEM on one line, e.g. `openssl pkey -pubin -outform DER | base64 -w0`). Every line is
    /// checked before anything is written; vehicles already there with the same ECUs are left
    /// as they are (keys added where none is registered; another key is refused), so
    /// importing the same file again changes nothing.
    Import {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The CSV file (a `vin,…` header line and `#` comment lines are skipped).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Add a vehicle and its ECUs to the inventory.
    Add(AddArgs),
    /// Write a vehicle's secret to a new file (mode 0600), to install in its gateway
    /// (`vehicle_secret`). The served tree names no vehicle: each finds its entry by a locator
    /// derived from this secret and reads it under a key derived from it. A replaced gateway
    /// is given the same secret again.
    Secret {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The secret file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Take a vehicle out of the fleet (scrapped, exported): its inventory entry and
    /// assignments go; the next publish withdraws its assignments (a higher version with none).
    /// Publish refuses a state that lost a vehicle the published tree lists unless it was
    /// removed this way.
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
    },
    /// Issue a vehicle's decryption keys (for encrypted images) to a new file (mode 0600), to
    /// install in its gateway (`decryption_keys`): a key path in the group of each hardware id
    /// it has an ECU of, so it can decrypt the images of those hardware ids only.
    ///
    /// A vehicle that holds keys already needs --replace (a new gateway: fresh keys, and the
    /// old unit's open nothing published from then on) or --again (the same unit's keys
    /// written again, with keys for any hardware id it gained since).
    DecryptionKeys {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The key file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The gateway was replaced: issue fresh keys and exclude the old unit's.
        #[arg(long, conflicts_with = "again")]
        replace: bool,
        /// Write the same unit's keys again (refused for a revoked vehicle).
        #[arg(long)]
        again: bool,
    },
    /// Exclude a vehicle (stolen, or its keys leaked) from every encrypted image wrapped from
    /// the next `oem publish` on; no other vehicle is re-keyed.
    RevokeKeys {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
    },
    /// Register the vehicle's public key (its gateway signs version reports with it).
    Key {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// PEM public key (or private key, of which the public half is kept).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
}

impl VehicleCommand {
    pub(super) fn dir(&self) -> &Path {
        match self {
            VehicleCommand::Add(AddArgs { dir, .. })
            | VehicleCommand::Import { dir, .. }
            | VehicleCommand::Remove { dir, .. }
            | VehicleCommand::Key { dir, .. }
            | VehicleCommand::DecryptionKeys { dir, .. }
            | VehicleCommand::Secret { dir, .. }
            | VehicleCommand::RevokeKeys { dir, .. } => dir,
        }
    }
}

pub fn run(cmd: VehicleCommand, now: DateTime) -> Result<()> {
    match cmd {
        VehicleCommand::Add(a) => add(a)?,
        VehicleCommand::Secret { dir, vin, out } => {
            oem::privacy::issue_vehicle_secret(&dir, &vin, &out)?;
            say!(
                "wrote the secret of vehicle {vin} to {}: install it in its gateway (vehicle_secret)",
                out.display()
            );
        }
        VehicleCommand::Import { dir, file } => {
            let r = oem::import::import_file(&dir, &file)?;
            say!(
                "imported {} vehicle(s); {} already in the inventory with the same ECUs; keys added to {}; {PUBLISH_HINT}",
                r.added,
                r.unchanged,
                r.keyed
            );
        }
        VehicleCommand::Remove { dir, vin } => {
            oem::vehicle_remove(&dir, &vin, now)?;
            say!("removed vehicle {vin}; {PUBLISH_HINT} (its assignments are withdrawn)");
        }
        VehicleCommand::DecryptionKeys {
            dir,
            vin,
            out,
            replace,
            again,
        } => decryption_keys(&dir, &vin, &out, replace, again)?,
        VehicleCommand::RevokeKeys { dir, vin } => {
            let leaves = oem::broadcast::vehicle_revoke_keys(&dir, &vin)?;
            say!(
                "vehicle {vin} ({}) is excluded from every encrypted image wrapped from the next publish on; {PUBLISH_HINT}. What it decrypted before, and wraps of earlier publishes someone kept, stay open to its keys",
                receivers(leaves.iter().map(|(g, l)| (g, l)))
            );
        }
        VehicleCommand::Key { dir, vin, key } => {
            oem::vehicle_key(&dir, &vin, &key)?;
            say!("registered the key of vehicle {vin}");
        }
    }
    Ok(())
}

/// `oem vehicle add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The vehicle identification number (or any fleet-unique id: ASCII letters, digits,
    /// '.', '_', '-').
    #[arg(long, value_name = "VIN")]
    pub vin: String,
    /// An ECU as SERIAL:HARDWARE_ID; repeatable.
    #[arg(long = "ecu", value_name = "SERIAL:HARDWARE_ID")]
    pub ecus: Vec<String>,
    /// An aftermarket ECU (never updated) as SERIAL:HARDWARE_ID; repeatable.
    #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
    pub aftermarket: Vec<String>,
    /// Also issue the vehicle's decryption keys (for encrypted images) to this new file
    /// (mode 0600), to install in its gateway at the factory (`decryption_keys`).
    #[arg(long, value_name = "FILE")]
    pub decryption_keys: Option<PathBuf>,
    /// Also write the vehicle's secret to this new file (mode 0600), to install in its
    /// gateway at the factory (`vehicle_secret`): the vehicle finds and reads its
    /// assignments with it (see `vehicle secret`).
    #[arg(long, value_name = "FILE")]
    pub secret: Option<PathBuf>,
}

/// `vehicle add`, and with --secret and --decryption-keys what its gateway is given at the
/// factory.
fn add(a: AddArgs) -> Result<()> {
    let AddArgs {
        dir,
        vin,
        ecus,
        aftermarket,
        decryption_keys,
        secret,
    } = a;
    oem::vehicle_add(&dir, &vin, &ecus, &aftermarket)?;
    say!(
        "added vehicle {vin} with {} ECU(s)",
        ecus.len() + aftermarket.len()
    );
    if let Some(out) = secret {
        oem::privacy::issue_vehicle_secret(&dir, &vin, &out)?;
        say!(
            "  its secret in {}: install it in its gateway (vehicle_secret)",
            out.display()
        );
    }
    if let Some(out) = decryption_keys {
        let leaves = oem::broadcast::vehicle_keys(&dir, &vin, &out, oem::broadcast::Reissue::No)?;
        say!(
            "  decryption keys ({}) in {}: install them in its gateway",
            receivers(&leaves),
            out.display()
        );
    }
    Ok(())
}

fn decryption_keys(dir: &Path, vin: &str, out: &Path, replace: bool, again: bool) -> Result<()> {
    use oem::broadcast::Reissue;
    let how = match (replace, again) {
        (true, _) => Reissue::Replace,
        (_, true) => Reissue::Again,
        _ => Reissue::No,
    };
    let leaves = oem::broadcast::vehicle_keys(dir, vin, out, how)?;
    say!(
        "wrote the decryption keys of vehicle {vin} ({}) to {}: install them in its gateway",
        receivers(&leaves),
        out.display()
    );
    if replace {
        say!("  the old unit's keys open nothing wrapped from the next publish on; {PUBLISH_HINT}");
    }
    Ok(())
}

/// A vehicle's receiver leaves, for messages: `receiver 3 of hw:BRAKE-A, …`.
fn receivers<'a>(leaves: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    leaves
        .into_iter()
        .map(|(g, l)| format!("receiver {l} of {g}"))
        .collect::<Vec<_>>()
        .join(", ")
}
