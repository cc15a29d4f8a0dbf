//! Command-line interface of `ota-repo`: argument definitions only; the work is in the modules.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ota-repo",
    version,
    about = "Publish the signed static trees of a vehicle OTA system: supplier image repositories, \
             the OEM master repository and regulator attestation repositories.",
    long_about = "Publish the signed static trees of a vehicle OTA system.\n\n\
        Each working directory holds ota-repo.json (settings, never published) and repository/, \
        a static tree of TUF metadata and targets that any web server or CDN can serve.\n\n\
        A supplier's first steps:\n  \
          ota-repo key generate --out acme-root.pem      # offline\n  \
          ota-repo key generate --out acme-online.pem\n  \
          ota-repo supplier init acme --name acme --root-key acme-root.pem --key acme-online.pem\n  \
          ota-repo supplier add-image acme --file brake.bin --uid brake-fw --version 1.0.0 \\\n      \
            --release-counter 1 --hardware-id BRAKE-ECU-A\n  \
          ota-repo supplier publish acme\n  \
          ota-repo verify acme"
)]
pub struct Cli {
    /// Pretend the current time is TIME (YYYY-MM-DDTHH:MM:SSZ), for reproducible trees and tests.
    #[arg(long, global = true, value_name = "TIME", hide = true)]
    pub now: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

const KEY_EXAMPLES: &str = "Examples:
  ota-repo key generate --out acme-root.pem          # RSA-3072, PKCS#8 PEM, mode 0600
  ota-repo key generate --bits 4096 --out oem-root.pem
  ota-repo key show acme-root.pem                     # key id, size, public PEM";

const SUPPLIER_EXAMPLES: &str = "Examples:
  ota-repo supplier init acme --name acme --root-key root.pem --key online.pem
  ota-repo supplier add-image acme --file brake.bin --uid brake-fw --version 1.4.0 \\
      --release-counter 3 --hardware-id BRAKE-A
  ota-repo supplier delegate acme --name tier2 --key tier2.pem --hardware-id ABS-1
  ota-repo supplier publish acme                      # from cron, to renew expiries
  ota-repo supplier rotate-key acme --role targets --new-key targets2.pem
  ota-repo verify acme --root pinned-1.root.json";

const OEM_EXAMPLES: &str = "Examples:
  ota-repo oem init oem --root-key root.pem --targets-key trust.pem --key online.pem
  ota-repo oem supplier add oem --name acme --root acme-1.root.json \\
      --url https://acme.example/repo --hardware-id 'BRAKE-*'
  ota-repo oem regulator add oem --name tuv --root tuv-1.root.json --url https://tuv.example/att
  ota-repo oem regulator threshold oem --required 1
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem vehicle add oem --vin VIN1 --ecu BRK-1:BRAKE-A --aftermarket CAM-1:DASHCAM
  ota-repo oem assign oem --vin VIN1 --serial BRK-1 --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem publish oem
  ota-repo oem supplier repin oem --name acme --root acme-new-1.root.json   # after a key theft";

const REGULATOR_EXAMPLES: &str = "Examples:
  ota-repo regulator init tuv --name tuv --key tuv.pem
  ota-repo regulator review tuv --master https://oem.example/repo --master-root oem-1.root.json \\
      --scanner 'clamscan --no-summary -d rules.ndb {}'
  ota-repo regulator publish tuv
  ota-repo regulator revoke tuv --image SHA256 --reason 'CVE-2026-0001'";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate and inspect RSA signing keys.
    #[command(subcommand, after_help = KEY_EXAMPLES)]
    Key(KeyCommand),
    /// A supplier's image repository: images, image manifests, tier-2 delegations.
    #[command(subcommand, after_help = SUPPLIER_EXAMPLES)]
    Supplier(SupplierCommand),
    /// The OEM's master repository: suppliers, regulators, inventory, review, assignments.
    #[command(subcommand, after_help = OEM_EXAMPLES)]
    Oem(OemCommand),
    /// A regulator's attestation repository: review, scan and attest images; revoke.
    #[command(subcommand, after_help = REGULATOR_EXAMPLES)]
    Regulator(RegulatorCommand),
    /// Check a whole published tree: root chain, signatures, versions, expiry, every target's
    /// length and hash, and every image manifest and its compact form.
    Verify {
        /// A working directory or a published tree (the directory holding timestamp.json).
        dir: PathBuf,
        /// Trusted root to start from (e.g. the 1.root.json you pinned). Without it, the tree's
        /// own 1.root.json is trusted on first use.
        #[arg(long, value_name = "ROOT.json")]
        root: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate an RSA private key (PKCS#8 PEM, file mode 0600). Never overwrites a file.
    Generate {
        /// Modulus size in bits (2048 to 8192).
        #[arg(long, default_value_t = 3072)]
        bits: usize,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a key's id, size and public key (PEM). Accepts private or public PEM files.
    Show {
        /// The PEM file (private or public key).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// `ROLE=VALUE` pairs.
fn role_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(r, v)| (r.trim().to_string(), v.trim().to_string()))
        .filter(|(r, v)| !r.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{s:?}: expected ROLE=VALUE, e.g. timestamp=1d"))
}

#[derive(Args, Debug)]
pub struct RoleKeyArgs {
    /// Key for every role that is not given its own key below (repeat for several keys).
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Root key(s); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub root_key: Vec<PathBuf>,
    /// Targets key(s).
    #[arg(long, value_name = "FILE")]
    pub targets_key: Vec<PathBuf>,
    /// Snapshot key(s).
    #[arg(long, value_name = "FILE")]
    pub snapshot_key: Vec<PathBuf>,
    /// Timestamp key(s).
    #[arg(long, value_name = "FILE")]
    pub timestamp_key: Vec<PathBuf>,
    /// Signature threshold of a role, e.g. root=2 (default 1 for every role).
    #[arg(long, value_name = "ROLE=N", value_parser = role_value)]
    pub threshold: Vec<(String, String)>,
    /// Lifetime of a role's signed documents, e.g. timestamp=6h
    /// (defaults: root=365d targets=90d snapshot=7d timestamp=1d).
    #[arg(long, value_name = "ROLE=DURATION", value_parser = role_value)]
    pub expires: Vec<(String, String)>,
}

#[derive(Subcommand, Debug)]
pub enum SupplierCommand {
    /// Create a supplier repository: root with role keys, thresholds and expiries, and a first
    /// (empty) publish.
    Init {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The supplier's name, as the OEM will know it.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        keys: RoleKeyArgs,
        /// Largest image accepted, in bytes (suffixes K, M, G allowed).
        #[arg(long, default_value = "1G", value_parser = parse_size)]
        max_image_size: u64,
    },
    /// Add a firmware image: stores it, signs its image manifest and compact manifest.
    /// Takes effect at the next `publish`.
    AddImage {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The image file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The image's stable identifier, e.g. brake-fw.
        #[arg(long)]
        uid: String,
        /// This release's version, e.g. 1.4.2.
        #[arg(long)]
        version: String,
        /// Anti-rollback counter: ECUs refuse images with a lower counter than installed.
        #[arg(long)]
        release_counter: u64,
        /// Hardware id the image fits (repeat for up to 4).
        #[arg(long = "hardware-id", value_name = "ID", required = true)]
        hardware_ids: Vec<String>,
        /// Sign with this tier-2 delegation instead of the top-level targets role.
        #[arg(long, default_value = "targets")]
        role: String,
        /// Accept a release counter lower than an earlier release of the same uid.
        #[arg(long)]
        allow_rollback: bool,
    },
    /// Delegate signing of images for some hardware ids to a tier-2 supplier.
    Delegate {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Name of the delegated role (the tier-2 supplier).
        #[arg(long = "name", value_name = "NAME", alias = "to")]
        to: String,
        /// The tier-2 supplier's key(s).
        #[arg(long, value_name = "FILE", required = true)]
        key: Vec<PathBuf>,
        /// Hardware ids the tier-2 supplier may sign images for.
        #[arg(long = "hardware-id", value_name = "ID", required = true)]
        hardware_ids: Vec<String>,
        /// New signature threshold of the role (default: unchanged).
        /// Signatures of distinct tier-2 keys an image manifest needs.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Target-name patterns it may sign (default `*`; hardware ids still restrict).
        #[arg(long = "path", value_name = "PATTERN")]
        paths: Vec<String>,
        /// Stop the search at this role for the targets it matches.
        #[arg(long)]
        terminating: bool,
        /// Lifetime of the delegated role's metadata (default 90d).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Remove a tier-2 delegation (its role file stays listed, empty, so clients' snapshot
    /// rules hold). Refused while it signs images, unless --drop-images.
    Undelegate {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Name of the tier-2 delegation to remove.
        #[arg(long)]
        name: String,
        /// Withdraw the images the delegation signs together with it.
        #[arg(long)]
        drop_images: bool,
    },
    /// Sign and write targets, snapshot and timestamp (consistent snapshots). Re-signs only
    /// what changed or is due to expire; the timestamp is always renewed, last.
    Publish {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Re-sign every role even if unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Replace a role's keys (root, targets, snapshot, timestamp or a delegation): writes
    /// N+1.root.json signed by the old and the new root keys, and re-signs what the role signs.
    RotateKey(RotateArgs),
}

/// `oem supplier repin` and `oem regulator repin`.
#[derive(Args, Debug)]
pub struct RepinArgs {
    /// Working directory: holds ota-repo.json (settings, never published) and repository/.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The supplier or regulator, by the OEM's name for it.
    #[arg(long)]
    pub name: String,
    /// Its new trusted root.json (it must verify).
    #[arg(long, value_name = "ROOT.json")]
    pub root: PathBuf,
    /// New base URL of its tree (default: unchanged).
    #[arg(long)]
    pub url: Option<String>,
}

/// `rotate-key`, the same for every publisher.
#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Working directory: holds ota-repo.json (settings, never published) and repository/.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The role whose keys are replaced (root, targets, snapshot, timestamp, a tier-2
    /// delegation; for the OEM also review and vehicles).
    #[arg(long)]
    pub role: String,
    /// The new key(s) of the role. Without it, a new RSA-3072 key is generated in DIR/keys/
    /// (mode 0600); move it offline if it is a root key.
    #[arg(long, value_name = "FILE")]
    pub new_key: Vec<PathBuf>,
    /// New threshold (default: unchanged).
    #[arg(long)]
    pub threshold: Option<u32>,
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

#[derive(Args, Debug)]
pub struct OemKeyArgs {
    #[command(flatten)]
    pub common: RoleKeyArgs,
    /// Key(s) of the `review` role (images sent for review).
    #[arg(long, value_name = "FILE")]
    pub review_key: Vec<PathBuf>,
    /// Key(s) of the `vehicles` role (per-vehicle assignments and the fleet index).
    #[arg(long, value_name = "FILE")]
    pub vehicles_key: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum OemCommand {
    /// Create a master repository and publish it (empty).
    ///
    /// Offline keys decide who is trusted: --root-key (the root of trust) and --targets-key (the
    /// supplier pins and the authorized regulators). Online keys sign day-to-day publishing:
    /// --key, or per role --timestamp-key, --snapshot-key, --review-key, --vehicles-key. An
    /// online key may not also be an offline one: a stolen online key must never be able to pin
    /// a supplier or authorize a regulator.
    Init {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        keys: OemKeyArgs,
        /// No longer used (refused): the per-vehicle tree sizes itself to the fleet.
        #[arg(long, value_name = "N", hide = true)]
        vehicle_bins: Option<u32>,
    },
    /// Pin, remove or replace suppliers.
    #[command(subcommand)]
    Supplier(OemSupplierCommand),
    /// Authorize or remove regulators, and set how many must approve.
    #[command(subcommand)]
    Regulator(OemRegulatorCommand),
    /// Add a vehicle to the inventory.
    #[command(subcommand)]
    Vehicle(VehicleCommand),
    /// Add, remove or replace one ECU of a vehicle.
    #[command(subcommand)]
    Ecu(EcuCommand),
    /// Send images to the regulators for review.
    #[command(subcommand)]
    Review(OemReviewCommand),
    /// Vehicle version reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Assign an image to ECUs: one ECU (--vin, --serial), every ECU of a vehicle the image fits
    /// (--vin), or every ECU of a hardware id in the fleet (--hardware-id).
    Assign {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle: with --serial, one ECU of it; alone, every ECU of it the image fits.
        #[arg(long, required_unless_present = "hardware_id")]
        vin: Option<String>,
        /// One ECU of the vehicle given with --vin, by serial.
        #[arg(long, requires = "vin", value_name = "SERIAL", alias = "ecu")]
        serial: Option<String>,
        /// Every ECU of this hardware id in the whole fleet (instead of --vin).
        #[arg(long, conflicts_with = "vin", value_name = "ID")]
        hardware_id: Option<String>,
        /// The supplier, by the name the OEM pinned it under.
        #[arg(long)]
        supplier: String,
        /// The image's stable identifier (e.g. brake-fw).
        #[arg(long)]
        uid: String,
        /// The release's version (e.g. 1.4.2).
        #[arg(long)]
        version: String,
    },
    /// Sign and write what changed: roles, and per vehicle only the vehicles that changed.
    Publish {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
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

#[derive(Subcommand, Debug)]
pub enum OemSupplierCommand {
    /// Pin a supplier's repository: its root keys and threshold, URL, and hardware ids.
    Add {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long)]
        name: String,
        /// The supplier's root.json (it must verify).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// Base URL of the supplier's published tree.
        #[arg(long)]
        url: String,
        /// Hardware id (pattern, `*` allowed) the supplier may serve; repeatable.
        #[arg(long = "hardware-id", value_name = "PATTERN", required = true)]
        hardware_ids: Vec<String>,
    },
    /// Remove a supplier and withdraw every vehicle assignment of its images.
    Remove {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long)]
        name: String,
    },
    /// Hand a supplier's hardware ids to another (already added) supplier and remove it.
    Replace {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long)]
        name: String,
        /// The supplier (already added) that takes over its hardware ids.
        #[arg(long = "with", value_name = "NEW")]
        with: String,
    },
    /// Re-pin a supplier to a new root (recovery from a stolen root key): vehicles drop what
    /// they walked under the old pin and start again from this root. Hardware ids and
    /// assignments stay.
    Repin(RepinArgs),
}

#[derive(Subcommand, Debug)]
pub enum OemRegulatorCommand {
    /// Authorize a regulator: pin its attestation repository's root keys and URL. A root whose
    /// keys another authorized regulator already has is refused (regulators count by keys).
    Add {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The regulator, by the OEM's name for it.
        #[arg(long)]
        name: String,
        /// The regulator's root.json (it must verify; its keys must be no other regulator's).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// Base URL of the published tree (the directory holding timestamp.json).
        #[arg(long)]
        url: String,
    },
    /// Withdraw a regulator's authorization.
    Remove {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The regulator, by the OEM's name for it.
        #[arg(long)]
        name: String,
    },
    /// Re-pin a regulator to a new root (recovery from a stolen root key): vehicles drop what
    /// they walked under the old pin and start again from this root.
    Repin(RepinArgs),
    /// How many distinct authorized regulators must approve an image.
    Threshold {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Distinct regulators (counted by their root keys) whose approval an image needs.
        #[arg(long, value_name = "N")]
        required: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Ingest a vehicle version report (from `ota-gateway report`): verified with the vehicle's
    /// registered key, each ECU's entry with the ECU's; unknown ECUs, changed keys and ECUs
    /// that did not report are flagged (DIR/flagged.json) for the replacement process.
    Ingest {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The signed vehicle version report (from `ota-gateway report`).
        #[arg(long, value_name = "REPORT.json")]
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum VehicleCommand {
    /// Add a vehicle and its ECUs to the inventory.
    Add {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// An ECU as SERIAL:HARDWARE_ID; repeatable.
        #[arg(long = "ecu", value_name = "SERIAL:HARDWARE_ID")]
        ecus: Vec<String>,
        /// An aftermarket ECU (never updated) as SERIAL:HARDWARE_ID; repeatable.
        #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
        aftermarket: Vec<String>,
    },
    /// Register the vehicle's public key (its gateway signs version reports with it).
    Key {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// PEM public key (or private key, of which the public half is kept).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum EcuCommand {
    /// Add an ECU to a vehicle.
    Add {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// The ECU, as SERIAL:HARDWARE_ID.
        #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
        ecu: String,
        /// The ECU is aftermarket: it is never assigned updates.
        #[arg(long)]
        aftermarket: bool,
    },
    /// Remove an ECU from a vehicle (and withdraw its assignment).
    Remove {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// The ECU's serial number.
        #[arg(long)]
        serial: String,
    },
    /// Register an ECU's public key (it signs its version reports with it).
    Key {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// The ECU's serial number.
        #[arg(long)]
        serial: String,
        /// PEM public key of the ECU (or private key, of which the public half is kept).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Replace an ECU; its assignment carries over if the hardware id is the same.
    Replace {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long)]
        vin: String,
        /// The ECU's serial number.
        #[arg(long)]
        serial: String,
        /// The new ECU, as SERIAL:HARDWARE_ID.
        #[arg(long = "with", value_name = "SERIAL:HARDWARE_ID")]
        with: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OemReviewCommand {
    /// Read the image's manifest from the supplier's repository (verified through the pinned
    /// root, as a vehicle would) and list the image in the signed `review` role.
    Submit {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The supplier, by the name the OEM pinned it under.
        #[arg(long)]
        supplier: String,
        /// The image's stable identifier (e.g. brake-fw).
        #[arg(long)]
        uid: String,
        /// The release's version (e.g. 1.4.2).
        #[arg(long)]
        version: String,
        /// Read the supplier's tree from this URL or directory instead of its pinned URL.
        #[arg(long, value_name = "URL_OR_DIR")]
        from: Option<String>,
        /// PEM bundle of the CAs to trust for HTTPS (default: the built-in web roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegulatorCommand {
    /// Create an attestation repository and publish it (empty).
    Init {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The regulator's name, as the OEM will know it.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        keys: RoleKeyArgs,
    },
    /// Pull the OEM's review queue; fetch, verify and scan each new image; attest the verdicts.
    /// Scanning rules: DIR/rules.json (known-vulnerable builds, byte patterns, scanner).
    Review {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The OEM master repository (URL or directory).
        #[arg(long, value_name = "URL_OR_DIR")]
        master: String,
        /// The OEM's root.json to trust on first use.
        #[arg(long, value_name = "OEM_ROOT.json")]
        master_root: PathBuf,
        /// External scanner, `{}` replaced by the image path; exit 0 = clean, 1 = findings,
        /// anything else = the scan failed (e.g. 'clamscan --no-summary -d rules.ndb {}').
        #[arg(long, value_name = "CMD")]
        scanner: Option<String>,
        /// Read supplier NAME's repository from this URL or directory instead of the URL the
        /// OEM pinned (its root is still checked against the pin); repeatable.
        #[arg(long = "supplier-from", value_name = "NAME=URL_OR_DIR", value_parser = role_value)]
        supplier_from: Vec<(String, String)>,
        /// PEM bundle of the CAs to trust for HTTPS (default: the built-in web roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Revoke an earlier approval: a signed revocation that outranks it. Revoking an image
    /// revokes every release of its bytes, and later releases of those bytes are rejected.
    Revoke {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// SHA-256 of the image (all its releases), or of one release's manifest body.
        #[arg(long, value_name = "SHA256")]
        image: String,
        /// Why (published in the signed revocation).
        #[arg(long)]
        reason: String,
    },
    /// Sign and write the attestation repository.
    Publish {
        /// Working directory: holds ota-repo.json (settings, never published) and repository/.
        #[arg(value_name = "DIR")]
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every subcommand, with the path to it, that has no help text.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                out.push(format!("{path} {} (no about)", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_of_every_subcommand_says_what_it_means() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        undocumented(&cmd, "ota-repo", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn every_command_group_shows_examples() {
        let cmd = Cli::command();
        for group in ["key", "supplier", "oem", "regulator"] {
            let sub = cmd.find_subcommand(group).unwrap();
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(help.starts_with("Examples:"), "{group}: {help:?}");
            // Each example is a command of this group.
            for line in help.lines().skip(1).filter(|l| l.starts_with("  ota-repo")) {
                assert!(
                    line.contains(&format!("ota-repo {group} "))
                        || line.contains("ota-repo verify "),
                    "{group}: {line}"
                );
            }
        }
    }
}
