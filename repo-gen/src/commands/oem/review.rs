//! `ota-repo oem review …`: images sent to the regulators for review.

use super::PUBLISH_HINT;
use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::Subcommand;
use ota_metadata::DateTime;
use std::path::{Path, PathBuf};

pub const OEM_REVIEW_EXAMPLES: &str = "Examples:
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.1 \\
      --from /srv/mirror/acme/repository        # a local copy of the supplier's tree";

#[derive(Subcommand, Debug)]
pub enum OemReviewCommand {
    /// Read the image's manifest from the supplier's repository (verified through the pinned
    /// root, as a vehicle would) and list the image in the signed `review` role.
    Submit {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the name the OEM pinned it under.
        #[arg(long, value_name = "NAME")]
        supplier: String,
        /// The image's identifier (e.g. brake-fw).
        #[arg(long, value_name = "UID")]
        uid: String,
        /// The release's version (e.g. 1.4.2).
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Read the supplier's tree from this URL or directory instead of its pinned URL (its
        /// root is still checked against the pin).
        #[arg(long, value_name = "URL_OR_DIR")]
        from: Option<String>,
        /// PEM bundle of the CAs to trust for HTTPS. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// An encrypted image's content-key file (written by `supplier add-image --encrypt`):
        /// the key is wrapped for every vehicle and regulator not excluded, and the wraps are
        /// published with the next `oem publish`.
        #[arg(long, value_name = "FILE")]
        content_key: Option<PathBuf>,
    },
}

impl OemReviewCommand {
    pub(super) fn dir(&self) -> &Path {
        match self {
            OemReviewCommand::Submit { dir, .. } => dir,
        }
    }
}

pub fn run(cmd: OemReviewCommand, now: DateTime) -> Result<()> {
    let OemReviewCommand::Submit {
        dir,
        supplier,
        uid,
        version,
        from,
        ca,
        content_key,
    } = cmd;
    let r = oem::review_submit(
        &dir,
        oem::Submit {
            supplier: &supplier,
            uid: &uid,
            version: &version,
            from: from.as_deref(),
            ca: ca.as_deref(),
            content_key: content_key.as_deref(),
        },
        now,
    )?;
    if r.key_wraps.is_some() {
        say!(
            "  encrypted: the content key is kept in DIR/{}; every publish wraps it for the regulators and the vehicles with an ECU of {:?}, less the excluded",
            oem::broadcast::CONTENT_KEYS,
            r.hardware_ids
        );
    }
    say!(
        "submitted {} {} of {supplier} for review ({} bytes, sha256 {}); {PUBLISH_HINT}",
        r.image.uid,
        r.image.version,
        r.image.length,
        r.image.hashes.get("sha256").map_or("?", String::as_str)
    );
    Ok(())
}
