//! `ota-repo regulator …`: a regulator's attestation repository: review the images the OEM
//! submits (fetch, verify, scan), attest the verdicts, revoke, publish, rotate its keys.

use crate::cli::{role_value, RoleKeyArgs, RotateArgs, DIR_HELP};
use crate::commands::{print_report, role_options, rotate};
use crate::error::{Error, Result};
use crate::{regulator, workdir};
use clap::{Args, Subcommand};
use ota_metadata::DateTime;
use std::path::{Path, PathBuf};

pub const REGULATOR_EXAMPLES: &str = "Examples:
  ota-repo regulator init tuv --name tuv --root-key tuv-root.pem --key tuv.pem
  ota-repo regulator review tuv --master https://oem.example/repo --master-root oem-1.root.json \\
      --scanner 'clamscan --no-summary -d rules.ndb {}'
  ota-repo regulator publish tuv
  ota-repo regulator publish tuv --wait 600           # from cron: renews expiries
  ota-repo regulator revoke tuv --image SHA256 --reason 'CVE-2026-0001'
  ota-repo regulator publish tuv
  ota-repo regulator rotate-key tuv --role targets";

#[derive(Subcommand, Debug)]
pub enum RegulatorCommand {
    /// Create an attestation repository and publish it (empty).
    Init {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The regulator's name, as the OEM will know it (ASCII letters, digits, '.', '_', '-').
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        keys: RoleKeyArgs,
    },
    /// Pull the OEM's review queue; fetch, verify and scan each new image; attest the verdicts.
    /// Scanning rules: DIR/rules.json (known-vulnerable builds, byte patterns, scanner).
    Review(ReviewArgs),
    /// Revoke an earlier approval: a signed revocation that outranks it. Revoking an image
    /// revokes every release of its bytes, and later releases of those bytes are rejected.
    Revoke {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// SHA-256 (hex) of the image (all its releases), or of one release's manifest body.
        #[arg(long, value_name = "SHA256")]
        image: String,
        /// Why (published in the signed revocation).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Sign and write the attestation repository.
    Publish {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Re-sign every role even if unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Replace a role's keys (any role, root included): writes N+1.root.json signed by the old
    /// and the new root keys, and re-signs what the role signs. Without --new-key, a new
    /// RSA-3072 key is generated in DIR/keys/.
    RotateKey(RotateArgs),
}

impl RegulatorCommand {
    /// The working directory the command changes, locked while it runs; `None` for `init`,
    /// which creates it.
    fn dir(&self) -> Option<&Path> {
        match self {
            RegulatorCommand::Init { .. } => None,
            RegulatorCommand::Review(ReviewArgs { dir, .. })
            | RegulatorCommand::Revoke { dir, .. }
            | RegulatorCommand::Publish { dir, .. }
            | RegulatorCommand::RotateKey(RotateArgs { dir, .. }) => Some(dir),
        }
    }
}

pub fn run(cmd: RegulatorCommand, wait: Option<u64>, now: DateTime) -> Result<()> {
    let _lock = match cmd.dir() {
        Some(dir) => workdir::lock_waiting(dir, wait)?,
        None => None,
    };
    match cmd {
        RegulatorCommand::Init { dir, name, keys } => {
            regulator::init(&dir, &name, &role_options(&keys)?, now)?;
            say!(
                "created attestation repository of regulator {name:?} in {}",
                dir.display()
            );
        }
        RegulatorCommand::Review(a) => review(a, now)?,
        RegulatorCommand::Revoke { dir, image, reason } => {
            for r in regulator::revoke(&dir, &image, &reason, now)? {
                say!(
                    "revoked {} {} of {} (release counter {})",
                    r.release.uid,
                    r.release.version,
                    r.release.supplier,
                    r.release.release_counter
                );
            }
            say!("run `ota-repo regulator publish` to publish the revocation");
        }
        RegulatorCommand::Publish { dir, force } => {
            let r = regulator::publish(&dir, now, force)?;
            say!("published {}", workdir::repository_path(&dir).display());
            print_report(&r);
        }
        RegulatorCommand::RotateKey(args) => {
            rotate(args, now, crate::rotation::rotate::<regulator::Settings>)?;
        }
    }
    Ok(())
}

/// `regulator review`.
#[derive(Args, Debug)]
pub struct ReviewArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The OEM master repository (URL or directory).
    #[arg(long, value_name = "URL_OR_DIR")]
    pub master: String,
    /// The OEM's root.json to trust on first use (later roots are verified from it).
    #[arg(long, value_name = "OEM_ROOT.json")]
    pub master_root: PathBuf,
    /// External scanner, `{}` replaced by the image path; exit 0 = clean, 1 = findings,
    /// anything else = the scan failed (e.g. 'clamscan --no-summary -d rules.ndb {}').
    /// Default: the scanner of DIR/rules.json, if any.
    #[arg(long, value_name = "CMD")]
    pub scanner: Option<String>,
    /// Read supplier NAME's repository from this URL or directory instead of the URL the
    /// OEM pinned (its root is still checked against the pin); repeatable.
    #[arg(long = "supplier-from", value_name = "NAME=URL_OR_DIR", value_parser = role_value)]
    pub supplier_from: Vec<(String, String)>,
    /// PEM bundle of the CAs to trust for HTTPS. Default: the built-in web roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// This regulator's decryption keys (`oem regulator decryption-keys`): encrypted images
    /// are decrypted before they are scanned; one that cannot be is rejected.
    #[arg(long, value_name = "FILE")]
    pub decryption_keys: Option<PathBuf>,
}

/// Each image of the OEM's queue on its own: one that cannot be reviewed is reported and
/// counted, and the others are still attested (the command then fails, naming how many).
fn review(a: ReviewArgs, now: DateTime) -> Result<()> {
    let outcomes = regulator::review(
        &a.dir,
        regulator::ReviewOpts {
            master: &a.master,
            master_root: &a.master_root,
            scanner: a.scanner,
            ca: a.ca.as_deref(),
            supplier_from: a.supplier_from.into_iter().collect(),
            decryption_keys: a.decryption_keys.as_deref(),
        },
        now,
    )?;
    let mut failed = 0;
    for o in &outcomes {
        let img = &o.request.image;
        match &o.result {
            Ok(v) => say!(
                "{:?}: {} {} of {} ({} finding(s))",
                v,
                img.uid,
                img.version,
                img.supplier,
                o.findings
            ),
            Err(e) => {
                failed += 1;
                tell!("ota-repo: error: not attested: {e}");
            }
        }
    }
    say!(
        "{} image(s) reviewed; run `ota-repo regulator publish` to publish the verdicts",
        outcomes.len() - failed
    );
    if failed > 0 {
        return Err(Error::refused(format!(
            "{failed} image(s) could not be reviewed"
        )));
    }
    Ok(())
}
