//! `ota-repo oem fleet …`: questions about the fleet, answered from the report database
//! ([`ota_fleet::query`]). Read-only: no working-directory lock; plain lines or JSON.

use crate::cli::DIR_HELP;
use crate::error::{Error, Result};
use crate::oem;
use clap::Subcommand;
use ota_fleet::query::{self, EcuRow};
use ota_fleet::Db;
use std::path::PathBuf;

pub const OEM_FLEET_EXAMPLES: &str = "Examples:
  ota-repo oem fleet running oem --uid brake-fw --version 1.4.0
  ota-repo oem fleet behind oem --supplier acme --uid brake-fw --version 1.4.0 --json
  ota-repo oem fleet recalled oem
  ota-repo oem fleet flagged oem";

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// The ECUs whose last report says they run this release.
    Running {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The image's identifier (e.g. brake-fw).
        #[arg(long, value_name = "UID")]
        uid: String,
        /// The release's version.
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Print only how many.
        #[arg(long)]
        count: bool,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The ECUs of a release's hardware ids whose last report shows a lower release counter:
    /// those the release has not reached yet (ECUs that never reported are not listed).
    Behind {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, when two submitted the same uid and version.
        #[arg(long, value_name = "NAME")]
        supplier: Option<String>,
        /// The image's identifier of a release submitted for review.
        #[arg(long, value_name = "UID")]
        uid: String,
        /// The release's version.
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Print only how many.
        #[arg(long)]
        count: bool,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The ECUs whose last report says their image was revoked by a regulator (recalls to act
    /// on: assign an approved release).
    Recalled {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The ECUs flagged for the replacement process (as `oem report flags`).
    Flagged {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
}

impl FleetCommand {
    fn dir(&self) -> &PathBuf {
        match self {
            FleetCommand::Running { dir, .. }
            | FleetCommand::Behind { dir, .. }
            | FleetCommand::Recalled { dir, .. }
            | FleetCommand::Flagged { dir, .. } => dir,
        }
    }
}

pub fn run(cmd: FleetCommand) -> Result<()> {
    let mut db = oem::reports::open(cmd.dir())?;
    match cmd {
        FleetCommand::Running {
            uid,
            version,
            count,
            json,
            ..
        } => {
            if count {
                let n = db.transaction(|tx| query::count_running(tx, &uid, &version))?;
                println!("{n}");
                return Ok(());
            }
            let rows = db.transaction(|tx| query::running(tx, &uid, &version))?;
            print_rows(&rows, json)
        }
        FleetCommand::Behind {
            dir,
            supplier,
            uid,
            version,
            count,
            json,
        } => {
            let s = oem::Settings::load(&dir)?;
            let release = reviewed(&s, supplier.as_deref(), &uid, &version)?;
            if count {
                let n = db.transaction(|tx| {
                    query::count_behind(tx, &release.hardware_ids, release.release_counter)
                })?;
                println!("{n}");
                return Ok(());
            }
            let rows = db.transaction(|tx| {
                query::behind(tx, &release.hardware_ids, release.release_counter)
            })?;
            print_rows(&rows, json)
        }
        FleetCommand::Recalled { json, .. } => recalled(&mut db, json),
        FleetCommand::Flagged { json, .. } => flagged(&mut db, json),
    }
}

/// `recalled`: the ECUs running an image a regulator revoked, with the revocation.
fn recalled(db: &mut Db, json: bool) -> Result<()> {
    let recalls = db.transaction(ota_fleet::store::recalls)?;
    if json {
        let v: Vec<serde_json::Value> = recalls
            .iter()
            .map(|(vin, r)| serde_json::json!({"vin": vin, "recall": r}))
            .collect();
        return print_json(&v);
    }
    for (vin, r) in recalls {
        println!(
            "{} {} {} {} revoked by {}: {}",
            vin,
            r.serial,
            r.uid,
            r.version,
            r.regulator,
            printable(&r.reason)
        );
    }
    Ok(())
}

/// `flagged`: the ECUs flagged for the replacement process.
fn flagged(db: &mut Db, json: bool) -> Result<()> {
    let flags = db.transaction(ota_fleet::store::flags)?;
    if json {
        let v: Vec<serde_json::Value> = flags
            .iter()
            .map(|f| {
                serde_json::json!({
                    "vin": f.vin, "serial": f.serial, "reason": f.reason,
                    "first_seen": f.first_seen, "last_seen": f.last_seen, "times": f.times,
                })
            })
            .collect();
        return print_json(&v);
    }
    for f in flags {
        println!("{} {}: {}", f.vin, f.serial, printable(&f.reason));
    }
    Ok(())
}

/// The release submitted for review (its counter and hardware ids).
fn reviewed<'a>(
    s: &'a oem::Settings,
    supplier: Option<&str>,
    uid: &str,
    version: &str,
) -> Result<&'a ota_metadata::documents::ReviewRequest> {
    let found: Vec<_> = s
        .reviews
        .iter()
        .filter(|r| {
            r.image.uid == uid
                && r.image.version == version
                && supplier.is_none_or(|x| r.image.supplier == x)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::refused(format!(
            "{uid} {version} was not submitted for review (`oem review submit`)"
        ))),
        _ => Err(Error::refused(format!(
            "{uid} {version} was submitted by several suppliers: name one with --supplier"
        ))),
    }
}

fn print_rows(rows: &[EcuRow], json: bool) -> Result<()> {
    if json {
        return print_json(rows);
    }
    for r in rows {
        // A replayed older entry (or a revert) is shown as what was reported, and said to be
        // below what the ECU reported before: never passed off as its plain current state.
        let below = if r.below_highest() {
            format!(
                "; BELOW the counter {} it reported before: replayed or reverted, see `oem fleet flagged`",
                r.highest_release_counter
            )
        } else {
            String::new()
        };
        println!(
            "{} {} {} {} {} (release counter {}, reported {}{below})",
            r.vin, r.serial, r.hardware_id, r.uid, r.version, r.release_counter, r.reported_at
        );
    }
    Ok(())
}

fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::refused(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Text a vehicle's report chose, safe for the operator's terminal: control characters shown
/// escaped (the report server's own rule).
pub use ota_fleet::server::printable;
