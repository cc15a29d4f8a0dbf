//! `ota-repo oem assign`: which release each selected ECU is to install, asked of the
//! regulators first.

use super::PUBLISH_HINT;
use crate::cli::DIR_HELP;
use crate::error::{Error, Result};
use crate::oem;
use clap::Args;
use ota_metadata::DateTime;
use std::path::PathBuf;

/// `oem assign`.
#[derive(Args, Debug)]
pub struct AssignArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The vehicle: with --ecu, one ECU of it; alone, every ECU of it the image fits.
    #[arg(long, value_name = "VIN")]
    pub vin: Option<String>,
    /// One ECU of the vehicle given with --vin, by serial.
    #[arg(long, value_name = "SERIAL", alias = "serial")]
    pub ecu: Option<String>,
    /// Every ECU of this hardware id in the whole fleet (instead of --vin).
    #[arg(long, value_name = "ID")]
    pub hardware_id: Option<String>,
    /// The supplier, by the name the OEM pinned it under.
    #[arg(long, value_name = "NAME")]
    pub supplier: String,
    /// The image's identifier (e.g. brake-fw).
    #[arg(long, value_name = "UID")]
    pub uid: String,
    /// The release's version (e.g. 1.4.2).
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Assign although the regulators have not (yet) approved the release, or cannot be
    /// reached: vehicles hold it (and the rest of their update) until they approve. A
    /// release a regulator revoked or rejected is refused even so.
    #[arg(long)]
    pub force: bool,
    /// PEM bundle of the CAs to trust for HTTPS when asking the supplier and the
    /// regulators. Default: the built-in web roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The update set: the vehicle's assignments of one set are installed all or nothing,
    /// and each set on its own (one refused set does not hold back another). Default:
    /// the vehicle's default set.
    #[arg(long, value_name = "NAME")]
    pub set: Option<String>,
    /// An image the vehicle must run beside this one, as UID>=RELEASE_COUNTER (on any of
    /// its ECUs, after the update); repeatable. Checked now on what the vehicle reported
    /// and is assigned, and again by the gateway; a requirement met within one update
    /// joins the two sets.
    #[arg(long = "needs", value_name = "UID>=COUNTER")]
    pub needs: Vec<ota_metadata::documents::Requirement>,
    /// An image never to run beside this one, as UID or UID@VERSION; repeatable.
    #[arg(long = "conflicts-with", value_name = "UID[@VERSION]")]
    pub conflicts_with: Vec<ota_metadata::documents::Conflict>,
}

pub(super) fn run(a: AssignArgs, now: DateTime) -> Result<()> {
    let AssignArgs {
        dir,
        vin,
        ecu,
        hardware_id,
        supplier,
        uid,
        version,
        force,
        ca,
        set,
        needs,
        conflicts_with,
    } = a;
    let target = assign_target(vin, ecu, hardware_id)?;
    let done = oem::assign(
        &dir,
        oem::Assign {
            target,
            supplier,
            uid: uid.clone(),
            version: version.clone(),
            approval: oem::Approval::Ask { ca, force, now },
            rules: oem::Rules {
                set,
                requires: needs,
                conflicts: conflicts_with,
            },
        },
    )?;
    if let Some(why) = &done.forced {
        crate::warn::warn(format!(
            "assigned with --force although {why}: vehicles hold {uid} {version} (and the rest of their update) until the regulators approve it"
        ));
    } else {
        say!("approved by {}", done.approved_by.join(", "));
    }
    for (v, s) in &done.ecus {
        say!("assigned {uid} {version} to {v}/{s}");
    }
    say!("{} ECU(s); {PUBLISH_HINT}", done.ecus.len());
    Ok(())
}

/// Which ECUs `oem assign` is for, from its selector flags: exactly one of its three modes.
fn assign_target(
    vin: Option<String>,
    ecu: Option<String>,
    hardware_id: Option<String>,
) -> Result<oem::AssignTarget> {
    let problem = match (vin, ecu, hardware_id) {
        (Some(vin), serial, None) => return Ok(oem::AssignTarget::Vehicle { vin, serial }),
        (None, None, Some(h)) => return Ok(oem::AssignTarget::HardwareId(h)),
        (None, None, None) => "no ECUs selected",
        (None, Some(_), None) => "--ecu needs the --vin of its vehicle",
        (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
            "--hardware-id selects ECUs across the fleet and cannot be combined with --vin or --ecu"
        }
    };
    Err(Error::AssignSelector { problem })
}
