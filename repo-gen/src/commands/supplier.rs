//! `ota-repo supplier …`: a supplier's image repository: create it, add images, publish,
//! rotate its keys. The supply chain (tier-2 delegations, tier directories and their
//! hand-overs) is in [`tier`].

pub mod tier;

use crate::cli::{RoleKeyArgs, RotateArgs, DIR_HELP};
use crate::commands::{print_report, role_options, rotate};
use crate::error::{Error, Result};
use crate::{supplier, workdir};
use clap::{Args, Subcommand};
use ota_metadata::DateTime;
use std::path::{Path, PathBuf};
use tier::{
    DelegateArgs, HandoverArgs, IngestArgs, InitTierArgs, RotateTierKeyArgs, UndelegateArgs,
};

pub const SUPPLIER_EXAMPLES: &str = "Examples (keys from `ota-repo key generate`):
  ota-repo supplier init acme --name acme --root-key acme-root.pem --key acme-online.pem
  ota-repo supplier add-image acme --file brake.bin --uid brake-fw --version 1.4.0 \\
      --release-counter 3 --hardware-id BRAKE-A
  ota-repo supplier delegate acme --name tier2 --key tier2.pem --sign-here --hardware-id ABS-1
  ota-repo supplier add-image acme --file abs.bin --uid abs-fw --version 2.0 \\
      --release-counter 1 --hardware-id ABS-1 --role tier2
  ota-repo supplier publish acme

The supply chain: a tier-2 signs for itself in its own directory and hands the signed files over
  ota-repo supplier delegate acme --name brake-cal --public-key bosch.pub.pem \\
      --hardware-id BRAKE-A --path 'brake-cal-*'              # acme: public key only
  ota-repo supplier init-tier bosch --name bosch --role brake-cal --key bosch.pem \\
      --hardware-id BRAKE-A --path 'brake-cal-*'              # bosch, in its own CI
  ota-repo supplier add-image bosch --file cal.bin --uid brake-cal --version 1.0 \\
      --release-counter 1 --hardware-id BRAKE-A
  ota-repo supplier handover bosch --out to-acme/
  ota-repo supplier ingest acme --from to-acme/               # acme checks, takes it in
  ota-repo supplier publish acme
  ota-repo supplier publish acme --wait 600           # from cron: renews expiries
  ota-repo supplier rotate-key acme --role targets --new-key targets2.pem
  ota-repo supplier undelegate acme --name tier2 --drop-images
  ota-repo supplier publish acme
  ota-repo verify acme --root acme/repository/1.root.json";

#[derive(Subcommand, Debug)]
pub enum SupplierCommand {
    /// Create a supplier repository: root with role keys, thresholds and expiries, and a first
    /// (empty) publish.
    Init {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier's name, as the OEM will pin it (ASCII letters, digits, '.', '_', '-').
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        keys: RoleKeyArgs,
        /// Largest image accepted, in bytes; suffixes K, M, G multiply by 1024, 1024², 1024³.
        #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
        max_image_size: u64,
    },
    /// Add a firmware image: stores it, signs its image manifest and compact manifest.
    /// Takes effect at the next `publish`.
    AddImage(AddImageArgs),
    /// Delegate signing of images for some hardware ids to a tier-2 supplier.
    Delegate(DelegateArgs),
    /// Create a tier directory: a tier-2 (or tier-3) supplier's own, which signs one role of
    /// its delegator's repository with keys that never leave it. Hand its role over with
    /// `supplier handover`.
    InitTier(InitTierArgs),
    /// Sign a tier directory's role (a new version when its content changed) and write it,
    /// the roles of the tiers below it that it took in, and every file they list, to a new
    /// directory for the delegator (`supplier ingest`).
    Handover(HandoverArgs),
    /// Check a delegate's hand-over against this directory's delegations (signatures,
    /// versions, names, hardware ids, every file and image manifest, the delegations it makes)
    /// and take it in for the next publish (or hand-over). Nothing is kept unless all of it
    /// checks out.
    Ingest(IngestArgs),
    /// Rotate a tier directory's own key: its manifests are signed again with the new key,
    /// and so is its next hand-over. The delegator then runs `supplier delegate --replace
    /// --public-key NEW` and ingests that hand-over.
    RotateTierKey(RotateTierKeyArgs),
    /// Remove a tier-2 delegation (its role file stays listed, empty, so clients' snapshot
    /// rules hold). Refused while it signs images, unless --drop-images.
    Undelegate(UndelegateArgs),
    /// Sign and write targets, snapshot and timestamp (consistent snapshots). Re-signs only
    /// what changed or is due to expire; the timestamp is always renewed, last.
    Publish {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Re-sign every role even if unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Replace a role's keys (root, targets, snapshot, timestamp or a delegation): writes
    /// N+1.root.json signed by the old and the new root keys, and re-signs what the role signs.
    RotateKey(RotateArgs),
}

impl SupplierCommand {
    /// The working directory the command changes, locked while it runs; `None` for the two
    /// that create one (the library refuses a directory already in use).
    fn dir(&self) -> Option<&Path> {
        match self {
            SupplierCommand::Init { .. } | SupplierCommand::InitTier(_) => None,
            SupplierCommand::AddImage(AddImageArgs { dir, .. })
            | SupplierCommand::Handover(HandoverArgs { dir, .. })
            | SupplierCommand::Ingest(IngestArgs { dir, .. })
            | SupplierCommand::RotateTierKey(RotateTierKeyArgs { dir, .. })
            | SupplierCommand::Delegate(DelegateArgs { dir, .. })
            | SupplierCommand::Undelegate(UndelegateArgs { dir, .. })
            | SupplierCommand::Publish { dir, .. }
            | SupplierCommand::RotateKey(RotateArgs { dir, .. }) => Some(dir),
        }
    }
}

pub fn run(cmd: SupplierCommand, wait: Option<u64>, now: DateTime) -> Result<()> {
    // Input files are checked before the lock is taken: a FIFO or an empty image fails at
    // once instead of blocking (or failing later) with the directory locked.
    if let SupplierCommand::AddImage(a) = &cmd {
        supplier::check_image_file(&a.file)?;
    }
    // Commands that change a working directory hold its lock until they return.
    let _lock = match cmd.dir() {
        Some(dir) => workdir::lock_waiting(dir, wait)?,
        None => None,
    };
    match cmd {
        SupplierCommand::Init {
            dir,
            name,
            keys,
            max_image_size,
        } => init(&dir, name, &keys, max_image_size, now),
        SupplierCommand::AddImage(a) => add_image(a, now),
        SupplierCommand::Delegate(a) => tier::delegate(a),
        SupplierCommand::InitTier(a) => tier::init_tier(a),
        SupplierCommand::Handover(a) => tier::handover(a, now),
        SupplierCommand::Ingest(a) => tier::ingest(a, now),
        SupplierCommand::RotateTierKey(a) => tier::rotate_tier_key(a),
        SupplierCommand::Undelegate(a) => tier::undelegate(a),
        SupplierCommand::Publish { dir, force } => {
            let r = supplier::publish(&dir, now, force)?;
            say!("published {}", workdir::repository_path(&dir).display());
            print_report(&r);
            Ok(())
        }
        SupplierCommand::RotateKey(args) => {
            rotate(args, now, crate::rotation::rotate::<supplier::Settings>)
        }
    }
}

fn init(
    dir: &Path,
    name: String,
    keys: &RoleKeyArgs,
    max_image_size: u64,
    now: DateTime,
) -> Result<()> {
    let roles = role_options(keys)?;
    supplier::init(
        dir,
        supplier::Init {
            name: name.clone(),
            roles,
            max_image_size,
        },
        now,
    )?;
    say!("created supplier repository {name:?} in {}", dir.display());
    say!(
        "  serve {} with any web server",
        workdir::repository_path(dir).display()
    );
    Ok(())
}

/// `supplier add-image`.
#[derive(Args, Debug)]
pub struct AddImageArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The image: a regular, non-empty file of at most --max-image-size bytes.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The image's identifier, the same for every version, e.g. brake-fw (ASCII letters,
    /// digits, '.', '_', '-'; at most 32 bytes).
    #[arg(long, value_name = "UID")]
    pub uid: String,
    /// This release's version, e.g. 1.4.2 (as --uid, and '+'; at most 32 bytes).
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Anti-rollback counter (a whole number): ECUs refuse an image whose counter is below
    /// the installed one's.
    #[arg(long, value_name = "N")]
    pub release_counter: u64,
    /// Hardware id of the ECUs the image fits; repeat for up to 4.
    #[arg(long = "hardware-id", value_name = "ID", required = true)]
    pub hardware_ids: Vec<String>,
    /// Sign with this delegation (its --name, one whose keys this directory holds) instead
    /// of the top-level targets role. Default: targets, or a tier directory's own role.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Accept a release counter lower than an earlier release of the same uid (ECUs that
    /// installed that release will refuse this one).
    #[arg(long)]
    pub allow_rollback: bool,
    /// Encrypt the image (XChaCha20-Poly1305 in independently authenticated chunks) under
    /// a fresh content key, written to DIR/content-keys/UID-VERSION.json: hand that file to
    /// the OEM (`oem review submit --content-key`), which wraps the key for the vehicles
    /// and regulators it authorizes. The manifest keeps the plaintext's hash and length.
    #[arg(long)]
    pub encrypt: bool,
    /// With --encrypt: bytes per authenticated chunk (1K to 16M; suffixes K, M).
    #[arg(long, value_name = "SIZE", default_value = "64K", value_parser = parse_size, requires = "encrypt")]
    pub chunk_size: u64,
    /// Also publish a delta that rebuilds this image from an earlier VERSION of the same
    /// uid in this repository (repeat for several): vehicles whose ECU runs that release
    /// download and send over CAN only the delta. The manifest still signs the whole
    /// image, which the ECU checks after rebuilding it. Not with --encrypt.
    #[arg(
        long = "delta-from",
        value_name = "VERSION",
        conflicts_with = "encrypt"
    )]
    pub delta_from: Vec<String>,
}

fn add_image(a: AddImageArgs, now: DateTime) -> Result<()> {
    let chunk_size = a.chunk_size;
    let chunk_size = u32::try_from(chunk_size)
        .map_err(|_| Error::refused(format!("--chunk-size {chunk_size}: too large")))?;
    let added = supplier::add_image(
        &a.dir,
        supplier::AddImage {
            file: a.file,
            uid: a.uid,
            version: a.version,
            release_counter: a.release_counter,
            hardware_ids: a.hardware_ids,
            role: a.role.unwrap_or_default(),
            allow_rollback: a.allow_rollback,
            encrypt: a.encrypt.then_some(chunk_size),
            delta_from: a.delta_from,
        },
        now,
    )?;
    for w in &added.warnings {
        tell!("ota-repo: warning: {w}");
    }
    let r = &added.record;
    say!(
        "added {} {} (release counter {}, {} bytes, sha256 {}) signed by {}; run `ota-repo supplier publish` to publish it",
        r.uid, r.version, r.release_counter, r.image.length, r.image.sha256, r.role
    );
    for d in &r.deltas {
        say!(
            "  delta from {}: {} bytes ({:.1}% of the image)",
            d.from_version,
            d.file.length,
            d.file.length as f64 * 100.0 / r.image.length.max(1) as f64
        );
    }
    if let (Some(e), Some(k)) = (&r.encryption, &added.content_key) {
        say!(
            "  encrypted: plaintext {} bytes, sha256 {}; content key in {} (hand it to the OEM: `oem review submit --content-key`)",
            e.plaintext.length,
            e.plaintext.sha256,
            k.display()
        );
    }
    Ok(())
}

/// Sizes like `1048576`, `64K`, `512M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 1048576, 64K, 512M, 1G)"))
}
