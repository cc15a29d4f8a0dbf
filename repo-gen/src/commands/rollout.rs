//! `ota-repo oem rollout …`: staged rollouts ([`crate::oem::rollout`]). `start` assigns the
//! first stage; `advance`, from cron before `oem publish`, moves each running rollout on,
//! halts it or finishes it from what vehicles reported; `status` shows where each stands;
//! `halt` stops one by hand.

use crate::cli::DIR_HELP;
use crate::error::{Error, Result};
use crate::oem::rollout::{self, Start, Step};
use crate::oem::Approval;
use clap::Subcommand;
use ota_metadata::DateTime;
use std::path::{Path, PathBuf};

pub const OEM_ROLLOUT_EXAMPLES: &str = "Examples:
  ota-repo oem rollout start oem --supplier acme --uid brake-fw --version 1.4.0 \\
                        --hardware-id BRAKE-A --stages 1,10,50,100 --success-bar 95 --failure-limit 2
  # then `ota-repo oem publish oem`; from cron, every hour: advance, then publish
  ota-repo oem rollout advance oem
  ota-repo oem rollout status oem --json
  ota-repo oem rollout halt oem --id acme/brake-fw/1.4.0/BRAKE-A --reason 'field reports'";

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start a rollout of a release to one hardware id's ECUs and assign its first stage
    /// (the regulators asked first, as `oem assign` does). Run `oem publish` after.
    Start {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the name the OEM pinned it under.
        #[arg(long, value_name = "NAME")]
        supplier: String,
        /// The image's identifier (e.g. brake-fw).
        #[arg(long, value_name = "UID")]
        uid: String,
        /// The release's version.
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// The hardware id whose ECUs receive it.
        #[arg(long, value_name = "ID")]
        hardware_id: String,
        /// Cumulative shares of the hardware id's ECUs, in percent, rising to 100.
        #[arg(
            long,
            value_name = "P,P,…",
            value_delimiter = ',',
            default_value = "1,10,50,100"
        )]
        stages: Vec<u32>,
        /// Percent of the ECUs assigned so far that must report running the release before
        /// the next stage is assigned.
        #[arg(long, value_name = "PERCENT", default_value_t = 95)]
        success_bar: u32,
        /// Percent of the ECUs assigned so far whose refusal or revert halts the rollout
        /// (withdrawing the assignments not yet installed).
        #[arg(long, value_name = "PERCENT", default_value_t = 2)]
        failure_limit: u32,
        /// Assign although the regulators have not (yet) approved the release (as `oem
        /// assign --force`; a vetoed release is refused even so).
        #[arg(long)]
        force: bool,
        /// PEM bundle of the CAs to trust for HTTPS when asking the supplier and the
        /// regulators. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Move every running rollout on: the next stage when the ECUs assigned so far meet the
    /// success bar, halt when their failures pass the limit, done after the last stage. Run
    /// `oem publish` after (both from cron).
    Advance {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// As `oem assign --force`, for the stages assigned now.
        #[arg(long)]
        force: bool,
        /// PEM bundle of the CAs to trust for HTTPS. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Where each rollout stands: stage, ECUs assigned, succeeded, failed, pending.
    Status {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Print JSON (one array) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Halt a rollout by hand: the assignments its ECUs have not installed are withdrawn.
    Halt {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The rollout (SUPPLIER/UID/VERSION/HARDWARE_ID, as `status` shows it).
        #[arg(long, value_name = "ID")]
        id: String,
        /// Why (kept with the rollout).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

impl RolloutCommand {
    pub fn dir(&self) -> &PathBuf {
        match self {
            RolloutCommand::Start { dir, .. }
            | RolloutCommand::Advance { dir, .. }
            | RolloutCommand::Status { dir, .. }
            | RolloutCommand::Halt { dir, .. } => dir,
        }
    }
}

pub fn run(cmd: RolloutCommand, now: DateTime) -> Result<()> {
    match cmd {
        RolloutCommand::Start {
            dir,
            supplier,
            uid,
            version,
            hardware_id,
            stages,
            success_bar,
            failure_limit,
            force,
            ca,
        } => {
            let step = rollout::start(
                &dir,
                Start {
                    supplier,
                    uid,
                    version,
                    hardware_id,
                    stages,
                    success_bar,
                    failure_limit,
                    approval: Approval::Ask { ca, force, now },
                },
                now.0,
            )?;
            say(&step);
            eprintln!("ota-repo: run `ota-repo oem publish` to publish it");
        }
        RolloutCommand::Advance { dir, force, ca } => {
            let steps = rollout::advance(&dir, &Approval::Ask { ca, force, now }, now.0)?;
            if steps.is_empty() {
                println!("no rollout running");
            }
            for s in &steps {
                say(s);
            }
            let failed = steps
                .iter()
                .filter(|s| matches!(s, Step::Failed { .. }))
                .count();
            if failed > 0 {
                return Err(Error::refused(format!(
                    "{failed} rollout(s) could not move on (above); the others were handled"
                )));
            }
        }
        RolloutCommand::Status { dir, json } => status(&dir, json)?,
        RolloutCommand::Halt { dir, id, reason } => {
            let withdrawn = rollout::halt(&dir, &id, &reason, now.0)?;
            println!("halted {id}: {withdrawn} pending assignment(s) withdrawn");
            eprintln!("ota-repo: run `ota-repo oem publish` to publish it");
        }
    }
    Ok(())
}

/// `status`: every rollout, as JSON or one line each.
fn status(dir: &Path, json: bool) -> Result<()> {
    let all = rollout::status(dir)?;
    if json {
        let text = serde_json::to_string_pretty(&all).map_err(|e| Error::refused(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    if all.is_empty() {
        println!("no rollout");
    }
    for s in all {
        let r = &s.rollout;
        let p = &s.progress;
        println!(
            "{} {:?} stage {} of {} ({}%): {} assigned, {} succeeded, {} failed, {} pending{}",
            r.id,
            r.state,
            r.stage + 1,
            r.stages.len(),
            r.stages.get(r.stage).copied().unwrap_or(0),
            p.members,
            p.succeeded,
            p.failed,
            p.pending(),
            if r.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.reason)
            }
        );
    }
    Ok(())
}

fn say(s: &Step) {
    match s {
        Step::Assigned {
            id,
            stage,
            assigned,
        } => println!(
            "{id}: stage {} assigned to {assigned} more ECU(s)",
            stage + 1
        ),
        Step::Halted {
            id,
            reason,
            withdrawn,
        } => println!("{id}: HALTED: {reason}; {withdrawn} pending assignment(s) withdrawn"),
        Step::Done { id } => println!("{id}: done"),
        Step::Failed { id, error } => println!("{id}: NOT ADVANCED: {error}"),
        Step::Waiting { id, progress } => println!(
            "{id}: waiting: {} of {} succeeded, {} failed, {} pending",
            progress.succeeded,
            progress.members,
            progress.failed,
            progress.pending()
        ),
    }
}
