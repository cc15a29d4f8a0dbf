//! `ota-repo verify`: check a whole published tree with the client's own trust rules
//! ([`crate::verify`]).

use crate::error::Result;
use crate::verify;
use clap::Args;
use ota_metadata::DateTime;
use std::path::PathBuf;

/// `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A working directory or a published tree (the directory holding timestamp.json).
    pub dir: PathBuf,
    /// Trusted root to start from (e.g. the 1.root.json you pinned). Default: the tree's
    /// own 1.root.json, trusted on first use.
    #[arg(long, value_name = "ROOT.json")]
    pub root: Option<PathBuf>,
}

pub fn run(a: VerifyArgs, now: DateTime) -> Result<()> {
    let VerifyArgs { dir, root } = a;
    let s = verify::verify(&dir, root.as_deref(), now)?;
    // What the tree holds beyond a supplier's: an attestation repository's verdicts, or the
    // master repository's extra roles and vehicles.
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
