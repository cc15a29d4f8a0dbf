//! `ota-repo oem …`: the OEM's master repository. This file holds the group's command list,
//! its lock and dispatch, and the commands on the repository as a whole (init, publish,
//! repair, rotate-key); each subgroup, and the two commands with many flags, has its file in
//! `oem/`. The report database's groups (report, fleet, rollout) are in `commands/`.

pub mod assign;
pub mod ecu;
pub mod ecu_trust;
pub mod regulator;
pub mod review;
pub mod supplier;
pub mod vehicle;

use crate::cli::{RoleKeyArgs, RotateArgs, DIR_HELP};
use crate::commands::fleet::{FleetCommand, OEM_FLEET_EXAMPLES};
use crate::commands::report::{ReportCommand, OEM_REPORT_EXAMPLES};
use crate::commands::rollout::{RolloutCommand, OEM_ROLLOUT_EXAMPLES};
use crate::commands::{print_report, role_options, rotate};
use crate::error::Result;
use crate::{oem, workdir};
use assign::AssignArgs;
use clap::{Args, Subcommand};
use ecu::{EcuCommand, OEM_ECU_EXAMPLES};
use ecu_trust::{EcuTrustArgs, OEM_ECU_TRUST_EXAMPLES};
use ota_metadata::DateTime;
use regulator::{OemRegulatorCommand, OEM_REGULATOR_EXAMPLES};
use review::{OemReviewCommand, OEM_REVIEW_EXAMPLES};
use std::path::{Path, PathBuf};
use supplier::{OemSupplierCommand, OEM_SUPPLIER_EXAMPLES};
use vehicle::{VehicleCommand, OEM_VEHICLE_EXAMPLES};

pub const OEM_EXAMPLES: &str = "Examples (acme-1.root.json and tuv-1.root.json: the supplier's and the regulator's first root):
  ota-repo oem init oem --root-key root.pem --targets-key trust.pem --key online.pem
  ota-repo oem supplier add oem --name acme --root acme-1.root.json \\
      --url https://acme.example/repo --hardware-id 'BRAKE-*'
  ota-repo oem regulator add oem --name tuv --root tuv-1.root.json --url https://tuv.example/att
  ota-repo oem regulator threshold oem --threshold 1
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem vehicle add oem --vin VIN1 --ecu BRK-1:BRAKE-A --aftermarket CAM-1:DASHCAM
  ota-repo oem assign oem --vin VIN1 --ecu BRK-1 --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem assign oem --hardware-id BRAKE-A --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem publish oem --wait 600                 # from cron: renews expiries
  ota-repo oem ecu replace oem --vin VIN1 --ecu BRK-1 --with BRK-9:BRAKE-A
  ota-repo oem supplier repin oem --name acme --root acme-new-1.root.json   # after a key theft";

/// What a command that changes the master repository's state says last: nothing reaches a
/// vehicle before the next publish.
const PUBLISH_HINT: &str = "run `ota-repo oem publish` to publish it";

#[derive(Args, Debug)]
pub struct OemKeyArgs {
    #[command(flatten)]
    pub common: RoleKeyArgs,
    /// Key(s) (PEM) of the online `review` role (images sent for review); repeatable.
    /// Default: --key.
    #[arg(long, value_name = "FILE")]
    pub review_key: Vec<PathBuf>,
    /// Key(s) (PEM) of the online `vehicles` role (per-vehicle assignments and the fleet
    /// index); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub vehicles_key: Vec<PathBuf>,
}

/// `oem supplier repin` and `oem regulator repin`.
#[derive(Args, Debug)]
pub struct RepinArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The supplier or regulator, by the OEM's name for it.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Its new trusted root.json (it must verify).
    #[arg(long, value_name = "ROOT.json")]
    pub root: PathBuf,
    /// New base URL of its published tree (http(s):// or file:// URL, or an absolute path).
    /// Default: unchanged.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum OemCommand {
    /// Create a master repository and publish it (empty).
    ///
    /// Offline keys decide who is trusted: --root-key (the root of trust) and --targets-key (the
    /// supplier pins and the authorized regulators). Online keys sign day-to-day publishing:
    /// --key, or per role --timestamp-key, --snapshot-key, --review-key, --vehicles-key. An
    /// online key may not also be an offline one: a stolen online key must never be able to pin
    /// a supplier or authorize a regulator.
    Init {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        #[command(flatten)]
        keys: OemKeyArgs,
        /// No longer used (refused): the per-vehicle tree sizes itself to the fleet.
        #[arg(long, value_name = "N", hide = true)]
        vehicle_bins: Option<u32>,
    },
    /// Pin, remove or replace suppliers.
    #[command(subcommand, after_help = OEM_SUPPLIER_EXAMPLES)]
    Supplier(OemSupplierCommand),
    /// Authorize or remove regulators, and set how many must approve.
    #[command(subcommand, after_help = OEM_REGULATOR_EXAMPLES)]
    Regulator(OemRegulatorCommand),
    /// Add a vehicle to the inventory, or register its key.
    #[command(subcommand, after_help = OEM_VEHICLE_EXAMPLES)]
    Vehicle(VehicleCommand),
    /// Add, remove or replace one ECU of a vehicle, or register its key.
    #[command(subcommand, after_help = OEM_ECU_EXAMPLES)]
    Ecu(EcuCommand),
    /// Send images to the regulators for review.
    #[command(subcommand, after_help = OEM_REVIEW_EXAMPLES)]
    Review(OemReviewCommand),
    /// Vehicle version reports.
    #[command(subcommand, after_help = OEM_REPORT_EXAMPLES)]
    Report(ReportCommand),
    /// Questions about the fleet, answered from what vehicles reported: who runs a release,
    /// who is behind one, which ECUs run a recalled image or are flagged.
    #[command(subcommand, after_help = OEM_FLEET_EXAMPLES)]
    Fleet(FleetCommand),
    /// Staged rollouts: a release to a growing share of a hardware id's ECUs, advanced or
    /// halted from what vehicles report.
    #[command(subcommand, after_help = OEM_ROLLOUT_EXAMPLES)]
    Rollout(RolloutCommand),
    /// Assign an image to ECUs, selected in one of three ways: one ECU (--vin VIN --ecu SERIAL),
    /// every ECU of a vehicle the image fits (--vin VIN), or every ECU of a hardware id in the
    /// whole fleet (--hardware-id ID). Aftermarket ECUs are never assigned.
    Assign(AssignArgs),
    /// Sign and write what changed: roles, and per vehicle only the vehicles that changed.
    Publish {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Re-sign every role even if unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Bring back damaged or missing nodes of the published vehicle tree from the copy a web
    /// server or store serves: every node is checked against its hash, and one that does not
    /// match is fetched from --from (same name), checked and written. (The nodes cannot be
    /// rebuilt from the OEM's state: the versions vehicles hold are only in the published tree.)
    Repair {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The served tree: its URL (https://…/master/) or a directory holding it.
        #[arg(long, value_name = "URL_OR_DIR")]
        from: String,
        /// PEM bundle of the CAs to trust for HTTPS. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Issue the next version of an ECU trust document for one hardware id: the supplier keys
    /// (and threshold) its ECUs accept, the regulator keys (and threshold) they require in full
    /// mode, and the keys that sign the next version. Version N+1 must be signed by a threshold
    /// of version N's signer keys and of its own, as a TUF root; the command checks this as the
    /// ECU will. Written to DIR/ecu-trust/HW.V.bin; `oem publish` lists it as target
    /// ecu-trust.HW.V.bin and gateways forward it to ECUs holding an older version. Version 1
    /// is the file an ECU is provisioned with (ota-ecu-sim --trust).
    #[command(after_help = OEM_ECU_TRUST_EXAMPLES)]
    EcuTrust(EcuTrustArgs),
    /// Replace a role's keys (any role, root included): writes N+1.root.json signed by the old
    /// and the new root keys, and re-signs what the role signs. Without --new-key, a new
    /// RSA-3072 key is generated in DIR/keys/.
    RotateKey(RotateArgs),
}

impl OemCommand {
    /// The working directory locked while the command runs; `None` for `init`, which creates
    /// it, and for the commands that only use the report database.
    fn dir(&self) -> Option<&Path> {
        Some(match self {
            OemCommand::Init { .. } => return None,
            OemCommand::Supplier(cmd) => cmd.dir(),
            OemCommand::Regulator(cmd) => cmd.dir(),
            OemCommand::Vehicle(cmd) => cmd.dir(),
            OemCommand::Ecu(cmd) => cmd.dir(),
            OemCommand::Review(cmd) => cmd.dir(),
            OemCommand::Report(cmd) => return cmd.dir(),
            // Reads of the report database.
            OemCommand::Fleet(_) => return None,
            OemCommand::Rollout(cmd) => cmd.dir(),
            OemCommand::Assign(AssignArgs { dir, .. })
            | OemCommand::EcuTrust(EcuTrustArgs { dir, .. })
            | OemCommand::Repair { dir, .. }
            | OemCommand::Publish { dir, .. }
            | OemCommand::RotateKey(RotateArgs { dir, .. }) => dir,
        })
    }
}

pub fn run(cmd: OemCommand, wait: Option<u64>, now: DateTime) -> Result<()> {
    let _lock = match cmd.dir() {
        Some(dir) => workdir::lock_waiting(dir, wait)?,
        None => None,
    };
    match cmd {
        OemCommand::Init {
            dir,
            keys,
            vehicle_bins,
        } => init(&dir, &keys, vehicle_bins, now)?,
        OemCommand::Supplier(cmd) => supplier::run(cmd)?,
        OemCommand::Regulator(cmd) => regulator::run(cmd)?,
        OemCommand::Vehicle(cmd) => vehicle::run(cmd, now)?,
        OemCommand::Ecu(cmd) => ecu::run(cmd)?,
        OemCommand::Review(cmd) => review::run(cmd, now)?,
        OemCommand::Report(cmd) => crate::commands::report::run(cmd)?,
        OemCommand::Fleet(cmd) => crate::commands::fleet::run(cmd)?,
        OemCommand::Rollout(cmd) => crate::commands::rollout::run(cmd, now)?,
        OemCommand::Assign(a) => assign::run(a, now)?,
        OemCommand::EcuTrust(a) => ecu_trust::run(a, now)?,
        OemCommand::Repair { dir, from, ca } => {
            let repo = workdir::repository_path(&dir);
            let n = oem::fleet::repair_from(&repo, &from, ca.as_deref())?;
            say!("{n} vehicle-tree node(s) brought back from {from}; every node now matches its hash");
        }
        OemCommand::Publish { dir, force } => publish(&dir, force, now)?,
        OemCommand::RotateKey(args) => {
            // A key a vehicle or ECU signs its reports with never becomes one of the OEM's.
            oem::claims::refuse_registered(&args.dir, &args.new_key)?;
            rotate(args, now, crate::rotation::rotate::<oem::Settings>)?;
        }
    }
    Ok(())
}

/// `oem init`: the roles every publisher has, and the OEM's own two online roles.
fn init(dir: &Path, keys: &OemKeyArgs, vehicle_bins: Option<u32>, now: DateTime) -> Result<()> {
    let mut roles = role_options(&keys.common)?;
    for (role, files) in [
        ("review", &keys.review_key),
        ("vehicles", &keys.vehicles_key),
    ] {
        if !files.is_empty() {
            roles.role_keys.insert(role.into(), files.clone());
        }
    }
    oem::init(dir, &roles, vehicle_bins, now)?;
    say!("created OEM master repository in {}", dir.display());
    Ok(())
}

fn publish(dir: &Path, force: bool, now: DateTime) -> Result<()> {
    let r = oem::publish(dir, now, force)?;
    say!("published {}", workdir::repository_path(dir).display());
    for w in &r.withdrawn {
        tell!("ota-repo: warning: assignment of {w} withdrawn: the ECU, its hardware id or its supplier is no longer valid");
    }
    say!(
        "  wrote assignments of {} vehicle(s), {} tree node(s)",
        r.vehicles_written,
        r.fleet.nodes_written
    );
    print_report(&r.roles);
    Ok(())
}
