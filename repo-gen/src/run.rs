//! Dispatch of parsed commands, and what each prints.

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::verify;
use ota_metadata::DateTime;

pub fn run(cli: Cli) -> Result<()> {
    let now = match &cli.now {
        Some(t) => DateTime::parse(t)?,
        None => DateTime::now(),
    };
    match cli.command {
        Command::Key(k) => crate::commands::key::run(k),
        Command::Supplier { wait, command } => {
            crate::commands::supplier::run(command, wait.wait, now)
        }
        Command::Oem { wait, command } => crate::commands::oem::run(command, wait.wait, now),
        Command::Regulator { wait, command } => {
            crate::commands::regulator::run(command, wait.wait, now)
        }
        Command::Upload {
            dir,
            to,
            prune,
            jobs,
            short_max_age,
            dry_run,
            wait,
        } => {
            // Also when the tree is named by its path: a publish must not change it mid-upload.
            let workdir = crate::upload::working_dir_of(&dir);
            let _lock = crate::workdir::lock_waiting(&workdir, wait.wait)?;
            let r = crate::upload::upload(
                &dir,
                &crate::upload::UploadOpts {
                    to,
                    prune,
                    jobs,
                    short_max_age,
                    dry_run,
                    s3_config: Vec::new(),
                },
            )?;
            let verb = if dry_run { "would send" } else { "sent" };
            say!(
                "{verb} {} object(s), {} bytes, to {}; {} already there{}",
                r.sent,
                r.bytes,
                r.destination,
                r.already,
                if prune {
                    format!("; pruned {}", r.pruned)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Verify { dir, root } => {
            let s = verify::verify(&dir, root.as_deref(), now)?;
            let extra = if s.attestations > 0 {
                format!(", {} attestation(s), {} veto(es)", s.attestations, s.vetoes)
            } else if s.extra_roles.is_empty() {
                String::new()
            } else {
                format!(
                    ", roles {} and {} vehicle(s)",
                    s.extra_roles.join(", "),
                    s.vehicles
                )
            };
            say!(
                "OK {}: root v{}, timestamp v{}, snapshot v{}, {} targets role(s), {} target(s), {} image(s){extra} verified{}",
                verify::tree_dir(&dir).display(),
                s.root_version,
                s.timestamp_version,
                s.snapshot_version,
                s.targets_roles,
                s.targets,
                s.images,
                if s.pinned_root { "" } else { " (trusting the tree's own 1.root.json; pass --root to pin one)" }
            );
            Ok(())
        }
    }
}
