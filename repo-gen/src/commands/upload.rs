//! `ota-repo upload`: send a published tree to object storage or a directory
//! ([`crate::upload`]), in the order that keeps it whole for the clients reading it.

use crate::cli::WaitArgs;
use crate::error::Result;
use crate::{upload, workdir};
use clap::Args;
use std::path::PathBuf;

pub const UPLOAD_EXAMPLES: &str = "Examples:
  ota-repo upload acme --to s3://acme-updates/repo          # AWS: credentials from the environment
  AWS_ENDPOINT_URL=https://minio.example:9000 ota-repo upload oem --to s3://ota/oem --prune
  ota-repo upload tuv --to /srv/www/tuv                     # a directory nginx serves
  ota-repo upload oem --to s3://ota/oem --dry-run           # what would be sent";

/// `upload`.
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// A working directory (its repository/ is sent; its lock is held) or a published tree.
    pub dir: PathBuf,
    /// s3://BUCKET/PREFIX (any S3-compatible store; endpoint, region and credentials from
    /// the AWS environment, e.g. AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, or ~/.aws/), file:///PATH,
    /// or a directory.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// After the upload, drop versioned metadata older than any the current and previous
    /// snapshots name (never the root chain, never targets).
    #[arg(long)]
    pub prune: bool,
    /// Transfers in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Cache lifetime of timestamp.json and root.json, in seconds: keep it well under the
    /// timestamp's lifetime.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub short_max_age: u64,
    /// Say what would be sent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub fn run(a: UploadArgs) -> Result<()> {
    let UploadArgs {
        dir,
        to,
        prune,
        jobs,
        short_max_age,
        dry_run,
        wait,
    } = a;
    // Also when the tree is named by its path: a publish must not change it mid-upload.
    let workdir = upload::working_dir_of(&dir);
    let _lock = workdir::lock_waiting(&workdir, wait.wait)?;
    let r = upload::upload(
        &dir,
        &upload::UploadOpts {
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
