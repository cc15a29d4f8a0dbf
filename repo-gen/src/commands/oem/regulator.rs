//! `ota-repo oem regulator …`: the regulators the OEM authorizes, how many must approve an
//! image, how old a regulator's timestamp may be, and their decryption keys.

use super::{RepinArgs, PUBLISH_HINT};
use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::Subcommand;
use std::path::{Path, PathBuf};

pub const OEM_REGULATOR_EXAMPLES: &str = "Examples:
  ota-repo oem regulator add oem --name tuv --root tuv-1.root.json --url https://tuv.example/att
  ota-repo oem regulator add oem --name dekra --root dekra-1.root.json --url https://dekra.example/att
  ota-repo oem regulator threshold oem --threshold 2  # both must approve
  ota-repo oem regulator max-age oem --max-age 6h    # a replayed regulator tree: 6 h at most
  ota-repo oem regulator repin oem --name tuv --root tuv-new-1.root.json
  ota-repo oem regulator remove oem --name dekra      # lower the threshold first";

#[derive(Subcommand, Debug)]
pub enum OemRegulatorCommand {
    /// Authorize a regulator: pin its attestation repository's root keys and URL. A root whose
    /// keys another authorized regulator already has is refused (regulators count by keys).
    Add {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The regulator, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The regulator's root.json (it must verify; its keys must be no other regulator's).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// Base URL of its published tree (the directory holding timestamp.json): an
        /// http(s):// or file:// URL, or an absolute path.
        #[arg(long, value_name = "URL")]
        url: String,
    },
    /// Issue an authorized regulator its decryption keys (to scan encrypted images) to a new
    /// file (mode 0600); `regulator review --decryption-keys` reads it.
    DecryptionKeys {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The regulator, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The key file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Withdraw a regulator's authorization (and exclude it from images encrypted from now on).
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The regulator, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Re-pin a regulator to a new root (recovery from a stolen root key): vehicles drop what
    /// they walked under the old pin and start again from this root.
    Repin(RepinArgs),
    /// Set the longest a regulator's timestamp may run (a new OEM: 12h). Vehicles refuse a
    /// regulator whose timestamp runs longer, which bounds how long an attacker replaying a
    /// regulator's tree from before a revocation can still install the revoked release.
    /// Regulators renew their timestamp more often (`regulator publish` from cron; their
    /// default lifetime is 6h).
    MaxAge {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// A duration (30m, 12h, 1d), or `none` for no bound beyond each timestamp's expiry.
        #[arg(long, value_name = "DURATION")]
        max_age: String,
    },
    /// Set how many distinct authorized regulators must approve an image.
    Threshold {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Distinct regulators (counted by their keys, in every role) whose approval an image needs:
        /// 1 to the number authorized.
        #[arg(
            long,
            value_name = "N",
            alias = "required",
            required_unless_present = "threshold_positional"
        )]
        threshold: Option<u32>,
        /// The threshold as the old positional argument (`oem regulator threshold DIR N`).
        #[arg(value_name = "N", hide = true, conflicts_with = "threshold")]
        threshold_positional: Option<u32>,
    },
}

impl OemRegulatorCommand {
    pub(super) fn dir(&self) -> &Path {
        match self {
            OemRegulatorCommand::Add { dir, .. }
            | OemRegulatorCommand::DecryptionKeys { dir, .. }
            | OemRegulatorCommand::Remove { dir, .. }
            | OemRegulatorCommand::Threshold { dir, .. }
            | OemRegulatorCommand::MaxAge { dir, .. }
            | OemRegulatorCommand::Repin(RepinArgs { dir, .. }) => dir,
        }
    }
}

pub fn run(cmd: OemRegulatorCommand) -> Result<()> {
    match cmd {
        OemRegulatorCommand::Repin(RepinArgs {
            dir,
            name,
            root,
            url,
        }) => {
            oem::regulator_repin(&dir, &name, &root, url.as_deref())?;
            say!(
                "re-pinned regulator {name} to {}; {PUBLISH_HINT}",
                root.display()
            );
        }
        OemRegulatorCommand::Add {
            dir,
            name,
            root,
            url,
        } => {
            oem::regulator_add(&dir, &name, &root, &url)?;
            say!("authorized regulator {name} ({url}); {PUBLISH_HINT}");
        }
        OemRegulatorCommand::Remove { dir, name } => {
            oem::regulator_remove(&dir, &name)?;
            say!("removed regulator {name}; {PUBLISH_HINT}");
        }
        OemRegulatorCommand::MaxAge { dir, max_age } => {
            let age = (max_age != "none").then_some(max_age.as_str());
            oem::regulator_max_age(&dir, age)?;
            match age {
                Some(a) => say!(
                    "vehicles will refuse a regulator whose timestamp runs longer than {a}; {PUBLISH_HINT}"
                ),
                None => say!("no bound on regulator timestamps beyond their expiry; {PUBLISH_HINT}"),
            }
        }
        OemRegulatorCommand::Threshold {
            dir,
            threshold,
            threshold_positional,
        } => {
            // clap requires one of the two.
            let k = threshold.or(threshold_positional).unwrap_or(0);
            oem::regulator_threshold(&dir, k)?;
            say!("images now need {k} distinct regulator approval(s); {PUBLISH_HINT}");
        }
        OemRegulatorCommand::DecryptionKeys { dir, name, out } => {
            let leaf = oem::broadcast::regulator_keys(&dir, &name, &out)?;
            say!(
                "wrote the decryption keys of regulator {name} (receiver {leaf}) to {}",
                out.display()
            );
        }
    }
    Ok(())
}
