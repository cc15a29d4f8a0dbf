//! `ota-repo oem report …`: vehicle version reports, kept in the report database (SQLite or
//! PostgreSQL, [`crate::oem::reports`]): ingest one, serve the gateways' POSTs, list and clear
//! the flags, show a vehicle's events, choose the database.

use crate::cli::DIR_HELP;
use crate::commands::fleet::printable;
use crate::error::{Error, Result};
use crate::{fsutil, oem};
use clap::Subcommand;
use std::path::{Path, PathBuf};

pub const OEM_REPORT_EXAMPLES: &str = "Examples:
  ota-repo oem report ingest oem --file version-report.json   # from `ota-gateway report`
  ota-repo oem report serve oem --listen 127.0.0.1:8440        # reports POSTed by `ota-gateway run`
  ota-repo oem report flags oem
  ota-repo oem report clear oem --vin VIN --ecu SERIAL          # after review
  ota-repo oem report events oem --vin VIN                      # installed, refused, reverted
  ota-repo oem report database oem --set postgres://ota@127.0.0.1:5432/fleet";

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Ingest a vehicle version report (from `ota-gateway report`): verified with the vehicle's
    /// registered key, each ECU's entry with the ECU's, then recorded in the report database;
    /// unknown ECUs, changed keys and ECUs that did not report are flagged for the replacement
    /// process.
    Ingest {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The signed vehicle version report (a regular file, from `ota-gateway report`).
        #[arg(long, value_name = "REPORT.json")]
        file: PathBuf,
    },
    /// Collect the reports gateways POST (`report_url` of `ota-gateway run`) into the report
    /// database: plain HTTP for loopback, behind the TLS web server (deploy/nginx). Each
    /// report's signatures are checked before anything is written; answers 200 (ingested, or
    /// the same report again), 400 with the reason, 503 when the database fails (the gateway
    /// sends it again later). Runs beside every other command (it takes no lock).
    Serve {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8440")]
        listen: std::net::SocketAddr,
        /// Connections served at once; more are closed at once (raised to what the open-file
        /// limit allows, at most).
        #[arg(long, value_name = "N", default_value_t = 4096)]
        max_connections: usize,
        /// Seconds a connection may take in all (request head, body and answer): a client
        /// slower than that is cut off.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        deadline: u64,
        /// Stop after N requests (tests).
        #[arg(long, value_name = "N", hide = true)]
        max_requests: Option<u64>,
    },
    /// List the ECUs flagged for the replacement process.
    Flags {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
    },
    /// Clear the flags of a vehicle (or of one of its ECUs) after review.
    Clear {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle whose flags are cleared.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// Only this ECU's flags.
        #[arg(long, value_name = "SERIAL")]
        ecu: Option<String>,
    },
    /// What happened to a vehicle's ECUs, as its reports said: installed, refused (with the
    /// ECU's code), reverted, recalled; oldest first.
    Events {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Show where reports are kept, or choose: an SQLite file (the default,
    /// DIR/reports.sqlite) or a PostgreSQL server for several ingest nodes. The database is
    /// opened and its schema migrated before the choice is recorded.
    Database {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// `postgres://USER@HOST:PORT/DB` (no TLS: a local server or a tunnel; a password in
        /// the URL would be stored in settings.json: use the server's peer or trust
        /// authentication instead) or an SQLite file path.
        #[arg(long, value_name = "URL", conflicts_with = "default")]
        set: Option<String>,
        /// Return to DIR/reports.sqlite.
        #[arg(long)]
        default: bool,
    },
}

impl ReportCommand {
    /// The working directory locked while the command runs. The report database orders
    /// reports and flags itself: only choosing the database takes the lock, so reports never
    /// wait for (or delay) a publish.
    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            ReportCommand::Ingest { .. }
            | ReportCommand::Flags { .. }
            | ReportCommand::Clear { .. }
            | ReportCommand::Events { .. }
            | ReportCommand::Serve { .. } => None,
            ReportCommand::Database { dir, .. } => Some(dir),
        }
    }
}

pub fn run(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Serve {
            dir,
            listen,
            max_connections,
            deadline,
            max_requests,
        } => oem::serve::serve(
            &dir,
            oem::serve::Serve {
                listen,
                max_connections,
                deadline: std::time::Duration::from_secs(deadline.max(1)),
                max_requests,
            },
        )?,
        ReportCommand::Flags { dir } => {
            for f in oem::flags(&dir)? {
                println!(
                    "{} {} (first {}, last {}, {} time(s)): {}",
                    f.vin,
                    f.serial,
                    f.first_seen,
                    f.last_seen,
                    f.times,
                    printable(&f.reason)
                );
            }
        }
        ReportCommand::Clear { dir, vin, ecu } => {
            for f in oem::clear_flags(&dir, &vin, ecu.as_deref())? {
                say!(
                    "cleared the flag of ECU {} of {}: {}",
                    f.serial,
                    f.vin,
                    printable(&f.reason)
                );
            }
        }
        ReportCommand::Events { dir, vin, json } => events(&dir, &vin, json)?,
        ReportCommand::Database { dir, set, default } => database(&dir, set.as_deref(), default)?,
        ReportCommand::Ingest { dir, file } => ingest(&dir, &file)?,
    }
    Ok(())
}

fn events(dir: &Path, vin: &str, json: bool) -> Result<()> {
    let events = oem::reports::events(dir, vin)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&events).map_err(|e| Error::refused(e.to_string()))?
        );
        return Ok(());
    }
    for e in events {
        println!(
            "{} #{} {} {} {} {}{}{}",
            e.at,
            e.seq,
            e.serial,
            e.outcome.as_str(),
            e.uid,
            e.version,
            if e.code.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.code)
            },
            if e.update.is_empty() {
                String::new()
            } else {
                format!(" update {}", e.update)
            },
        );
    }
    Ok(())
}

/// `database`: with --set or --default, choose (and say so); either way print where reports
/// are kept.
fn database(dir: &Path, set: Option<&str>, default: bool) -> Result<()> {
    let at = if set.is_some() || default {
        let at = oem::reports::set_database(dir, set)?;
        say!(
            "reports are kept in {at} (schema version {})",
            ota_fleet::schema::VERSION
        );
        at
    } else {
        let s = oem::Settings::load(dir)?;
        oem::reports::location(dir, &s)
    };
    println!("{at}");
    Ok(())
}

fn ingest(dir: &Path, file: &Path) -> Result<()> {
    fsutil::check_regular(file)?;
    let ota_fleet::Applied::Ingested {
        accepted,
        flagged,
        recalls,
        new_events,
    } = oem::ingest(dir, file)?
    else {
        say!("already ingested: the same report as the last one (nothing changed)");
        return Ok(());
    };
    say!("accepted the reports of {accepted} ECU(s); {new_events} new event(s)");
    for c in &recalls {
        tell!(
            "ota-repo: RECALL: ECU {} runs {} {}, revoked by regulator {}: {} (assign an approved image)",
            printable(&c.serial), printable(&c.uid), printable(&c.version), printable(&c.regulator), printable(&c.reason)
        );
    }
    for f in &flagged {
        tell!(
            "ota-repo: FLAGGED ECU {}: {}",
            printable(&f.serial),
            printable(&f.reason)
        );
    }
    if !flagged.is_empty() {
        return Err(Error::refused(format!(
            "{} ECU(s) flagged for the out-of-band replacement process (`ota-repo oem report flags`)",
            flagged.len()
        )));
    }
    Ok(())
}
