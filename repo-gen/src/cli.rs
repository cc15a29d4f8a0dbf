//! Command-line interface of `ota-repo`: argument definitions only; the work is in the modules.
//!
//! One naming scheme throughout (old spellings still parse, hidden):
//! - the working directory is always the first positional, `DIR`;
//! - the thing a command adds, removes or changes (supplier, regulator, tier-2 delegation) is
//!   `--name NAME` (was `delegate --to`);
//! - an ECU is always `--ecu`: `SERIAL` to select one, `SERIAL:HARDWARE_ID` to describe a new
//!   one (was `--serial` in `oem assign` and `oem ecu remove|key|replace`);
//! - a threshold is always the flag `--threshold` (was `oem regulator threshold DIR K`, then
//!   `--required K`);
//! - every command that changes DIR takes `--wait SECONDS` (on its group, global).

use crate::commands::key::{KeyCommand, KEY_EXAMPLES};
use crate::commands::regulator::{RegulatorCommand, REGULATOR_EXAMPLES};
use crate::commands::supplier::{SupplierCommand, SUPPLIER_EXAMPLES};
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
          ota-repo verify acme",
    after_help = "Run `ota-repo COMMAND --help` for a command's options and examples."
)]
pub struct Cli {
    /// Pretend the current time is TIME (YYYY-MM-DDTHH:MM:SSZ), for reproducible trees and tests.
    #[arg(long, global = true, value_name = "TIME", hide = true)]
    pub now: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

pub const UPLOAD_EXAMPLES: &str = "Examples:
  ota-repo upload acme --to s3://acme-updates/repo          # AWS: credentials from the environment
  AWS_ENDPOINT_URL=https://minio.example:9000 ota-repo upload oem --to s3://ota/oem --prune
  ota-repo upload tuv --to /srv/www/tuv                     # a directory nginx serves
  ota-repo upload oem --to s3://ota/oem --dry-run           # what would be sent";

pub const OEM_EXAMPLES: &str = "Examples (acme-1.root.json and tuv-1.root.json: the supplier's and the regulator's first root):
  ota-repo oem init oem --root-key root.pem --targets-key trust.pem --key online.pem
  ota-repo oem supplier add oem --name acme --root acme-1.root.json \\
      --url https://acme.example/repo --hardware-id 'BRAKE-*'
  ota-repo oem regulator add oem --name tuv --root tuv-1.root.json --url https://tuv.example/att
  ota-repo oem regulator threshold oem --threshold 1
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem vehicle add oem --vin VIN1 --ecu BRK-1:BRAKE-A --aftermarket CAM-1:DASHCAM
  ota-repo oem assign oem --vin VIN1 --ecu BRK-1 --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem assign oem --hardware-id BRAKE-A --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem publish oem --wait 600                 # from cron: renews expiries
  ota-repo oem ecu replace oem --vin VIN1 --ecu BRK-1 --with BRK-9:BRAKE-A
  ota-repo oem supplier repin oem --name acme --root acme-new-1.root.json   # after a key theft";

pub const OEM_SUPPLIER_EXAMPLES: &str = "Examples:
  ota-repo oem supplier add oem --name acme --root acme-1.root.json \\
      --url https://acme.example/repo --hardware-id 'BRAKE-*' --hardware-id 'ABS-*'
  ota-repo oem supplier repin oem --name acme --root acme-new-1.root.json   # after a key theft
  ota-repo oem supplier replace oem --name acme --with bosch   # bosch takes over acme's ids
  ota-repo oem supplier remove oem --name bosch";

pub const OEM_REGULATOR_EXAMPLES: &str = "Examples:
  ota-repo oem regulator add oem --name tuv --root tuv-1.root.json --url https://tuv.example/att
  ota-repo oem regulator add oem --name dekra --root dekra-1.root.json --url https://dekra.example/att
  ota-repo oem regulator threshold oem --threshold 2  # both must approve
  ota-repo oem regulator max-age oem --max-age 6h    # a replayed regulator tree: 6 h at most
  ota-repo oem regulator repin oem --name tuv --root tuv-new-1.root.json
  ota-repo oem regulator remove oem --name dekra      # lower the threshold first";

pub const OEM_ECU_TRUST_EXAMPLES: &str =
    "Examples (the signer keys are offline keys, two of them by default):
  ota-repo oem ecu-trust oem --hardware-id BRAKE-A --supplier-key acme-targets.pub.pem \\
      --signer-key trust-a.pem --signer-key trust-b.pem   # version 1: provision ECUs with it
  ota-repo oem ecu-trust oem --hardware-id BRAKE-A --supplier acme \\
      --confirm-key 4f1c…e9 --signer-key trust-a.pem --signer-key trust-b.pem
                                  # acme rotated its targets key; 4f1c…e9 checked with acme
  ota-repo oem ecu-trust oem --hardware-id BRAKE-A --supplier acme --min-release-counter 8 \\
      --signer-key trust-a.pem --signer-key trust-b.pem   # release 7 was revoked
  ota-repo oem ecu-trust oem --hardware-id BRAKE-A --supplier-key brakeco.pub.pem \\
      --regulator-key tuv.pub.pem --regulator-threshold 1 --full \\
      --signer-key trust-c.pem --signer-key trust-d.pem \\
      --previous-signer-key trust-a.pem --previous-signer-key trust-b.pem
  ota-repo oem publish oem";

pub const OEM_VEHICLE_EXAMPLES: &str = "Examples:
  ota-repo oem vehicle add oem --vin VIN1 --ecu BRK-1:BRAKE-A --ecu HU-1:HU-GEN3 \\
      --aftermarket CAM-1:DASHCAM
  ota-repo oem vehicle key oem --vin VIN1 --key vin1-gateway.pub.pem";

pub const OEM_ECU_EXAMPLES: &str = "Examples:
  ota-repo oem ecu add oem --vin VIN1 --ecu ABS-1:ABS-MOD-1
  ota-repo oem ecu key oem --vin VIN1 --ecu ABS-1 --key abs-1.pub.pem
  ota-repo oem ecu replace oem --vin VIN1 --ecu ABS-1 --with ABS-2:ABS-MOD-1
  ota-repo oem ecu remove oem --vin VIN1 --ecu ABS-2";

pub const OEM_REVIEW_EXAMPLES: &str = "Examples:
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.0
  ota-repo oem review submit oem --supplier acme --uid brake-fw --version 1.4.1 \\
      --from /srv/mirror/acme/repository        # a local copy of the supplier's tree";

pub const OEM_REPORT_EXAMPLES: &str = "Examples:
  ota-repo oem report ingest oem --file version-report.json   # from `ota-gateway report`
  ota-repo oem report serve oem --listen 127.0.0.1:8440        # reports POSTed by `ota-gateway run`
  ota-repo oem report flags oem
  ota-repo oem report clear oem --vin VIN --ecu SERIAL          # after review
  ota-repo oem report events oem --vin VIN                      # installed, refused, reverted
  ota-repo oem report database oem --set postgres://ota@127.0.0.1:5432/fleet";

/// `--wait`, on every command group whose commands lock their working directory.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct WaitArgs {
    /// When another ota-repo command is working in DIR, wait up to SECONDS for it to finish
    /// instead of failing at once (for publishes from cron). Default: do not wait.
    #[arg(long, value_name = "SECONDS", global = true)]
    pub wait: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate and inspect signing keys.
    #[command(subcommand, after_help = KEY_EXAMPLES)]
    Key(KeyCommand),
    /// A supplier's image repository: images, image manifests, tier-2 delegations.
    #[command(after_help = SUPPLIER_EXAMPLES)]
    Supplier {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: SupplierCommand,
    },
    /// The OEM's master repository: suppliers, regulators, inventory, review, assignments.
    #[command(after_help = OEM_EXAMPLES)]
    Oem {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: OemCommand,
    },
    /// A regulator's attestation repository: review, scan and attest images; revoke.
    #[command(after_help = REGULATOR_EXAMPLES)]
    Regulator {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: RegulatorCommand,
    },
    /// Send a published tree (supplier, OEM or regulator) to object storage or a directory, in
    /// the order that keeps it whole for clients: images and versioned metadata first,
    /// root.json, then timestamp.json alone and last. Only what the store lacks is sent (names
    /// and sizes; written-once files never change). Objects carry their cache rules:
    /// timestamp.json and root.json --short-max-age, everything else immutable for a year. A
    /// failed or killed upload leaves the store serving the previous version; run it again.
    #[command(after_help = UPLOAD_EXAMPLES)]
    Upload {
        /// A working directory (its repository/ is sent; its lock is held) or a published tree.
        dir: PathBuf,
        /// s3://BUCKET/PREFIX (any S3-compatible store; endpoint, region and credentials from
        /// the AWS environment, e.g. AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, or ~/.aws/), file:///PATH,
        /// or a directory.
        #[arg(long, value_name = "URL")]
        to: String,
        /// After the upload, drop versioned metadata older than any the current and previous
        /// snapshots name (never the root chain, never targets).
        #[arg(long)]
        prune: bool,
        /// Transfers in flight at once.
        #[arg(long, value_name = "N", default_value_t = 8)]
        jobs: usize,
        /// Cache lifetime of timestamp.json and root.json, in seconds: keep it well under the
        /// timestamp's lifetime.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        short_max_age: u64,
        /// Say what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Check a whole published tree: root chain, signatures, versions, expiry, every target's
    /// length and hash, and every image manifest and its compact form (and that each delta it
    /// lists rebuilds its image).
    Verify {
        /// A working directory or a published tree (the directory holding timestamp.json).
        dir: PathBuf,
        /// Trusted root to start from (e.g. the 1.root.json you pinned). Default: the tree's
        /// own 1.root.json, trusted on first use.
        #[arg(long, value_name = "ROOT.json")]
        root: Option<PathBuf>,
    },
}

/// `ROLE=VALUE` pairs.
pub(crate) fn role_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(r, v)| (r.trim().to_string(), v.trim().to_string()))
        .filter(|(r, v)| !r.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{s:?}: expected ROLE=VALUE, e.g. timestamp=1d"))
}

#[derive(Args, Debug)]
pub struct RoleKeyArgs {
    /// Private key (PEM) for every role not given its own key below; repeat for several keys.
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Root key(s) (PEM); repeatable. Default: --key. Keep root keys offline.
    #[arg(long, value_name = "FILE")]
    pub root_key: Vec<PathBuf>,
    /// Targets key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub targets_key: Vec<PathBuf>,
    /// Snapshot key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub snapshot_key: Vec<PathBuf>,
    /// Timestamp key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub timestamp_key: Vec<PathBuf>,
    /// Signature threshold of a role, e.g. root=2: how many of its distinct keys must sign
    /// (1 to its number of keys); repeatable. Default: 1 for every role.
    #[arg(long, value_name = "ROLE=N", value_parser = role_value)]
    pub threshold: Vec<(String, String)>,
    /// Lifetime of a role's signed documents, a number with unit s, m, h, d or w, e.g.
    /// timestamp=6h; repeatable, at most 3653d. Defaults: root=365d targets=90d snapshot=7d
    /// timestamp=1d (OEM review and vehicles: 90d).
    #[arg(long, value_name = "ROLE=DURATION", value_parser = role_value)]
    pub expires: Vec<(String, String)>,
}

/// The working directory argument every publisher command takes first.
pub(crate) const DIR_HELP: &str =
    "Working directory: holds ota-repo.json (settings, never published) and repository/ (the tree to serve)";

/// `oem supplier repin` and `oem regulator repin`.
#[derive(Args, Debug)]
pub struct RepinArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The supplier or regulator, by the OEM's name for it.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Its new trusted root.json (it must verify).
    #[arg(long, value_name = "ROOT.json")]
    pub root: PathBuf,
    /// New base URL of its published tree (http(s):// or file:// URL, or an absolute path).
    /// Default: unchanged.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// `rotate-key`, the same for every publisher.
#[derive(Args, Debug)]
pub struct RotateArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The role whose keys are replaced (root, targets, snapshot, timestamp, a tier-2
    /// delegation; for the OEM also review and vehicles).
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// The new private key(s) (PEM) of the role; repeatable. Default: a new RSA-3072 key
    /// generated in DIR/keys/ (mode 0600); move it offline if it is a root key.
    #[arg(long, value_name = "FILE")]
    pub new_key: Vec<PathBuf>,
    /// New signature threshold of the role: how many of its distinct keys must sign (1 to
    /// the number of new keys). Default: unchanged.
    #[arg(long, value_name = "N")]
    pub threshold: Option<u32>,
}

#[derive(Args, Debug)]
pub struct OemKeyArgs {
    #[command(flatten)]
    pub common: RoleKeyArgs,
    /// Key(s) (PEM) of the online `review` role (images sent for review); repeatable.
    /// Default: --key.
    #[arg(long, value_name = "FILE")]
    pub review_key: Vec<PathBuf>,
    /// Key(s) (PEM) of the online `vehicles` role (per-vehicle assignments and the fleet
    /// index); repeatable. Default: --key.
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
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        #[command(flatten)]
        keys: OemKeyArgs,
        /// No longer used (refused): the per-vehicle tree sizes itself to the fleet.
        #[arg(long, value_name = "N", hide = true)]
        vehicle_bins: Option<u32>,
    },
    /// Pin, remove or replace suppliers.
    #[command(subcommand, after_help = OEM_SUPPLIER_EXAMPLES)]
    Supplier(OemSupplierCommand),
    /// Authorize or remove regulators, and set how many must approve.
    #[command(subcommand, after_help = OEM_REGULATOR_EXAMPLES)]
    Regulator(OemRegulatorCommand),
    /// Add a vehicle to the inventory, or register its key.
    #[command(subcommand, after_help = OEM_VEHICLE_EXAMPLES)]
    Vehicle(VehicleCommand),
    /// Add, remove or replace one ECU of a vehicle, or register its key.
    #[command(subcommand, after_help = OEM_ECU_EXAMPLES)]
    Ecu(EcuCommand),
    /// Send images to the regulators for review.
    #[command(subcommand, after_help = OEM_REVIEW_EXAMPLES)]
    Review(OemReviewCommand),
    /// Vehicle version reports.
    #[command(subcommand, after_help = OEM_REPORT_EXAMPLES)]
    Report(ReportCommand),
    /// Questions about the fleet, answered from what vehicles reported: who runs a release,
    /// who is behind one, which ECUs run a recalled image or are flagged.
    #[command(subcommand, after_help = OEM_FLEET_EXAMPLES)]
    Fleet(FleetCommand),
    /// Staged rollouts: a release to a growing share of a hardware id's ECUs, advanced or
    /// halted from what vehicles report.
    #[command(subcommand, after_help = OEM_ROLLOUT_EXAMPLES)]
    Rollout(RolloutCommand),
    /// Assign an image to ECUs, selected in one of three ways: one ECU (--vin VIN --ecu SERIAL),
    /// every ECU of a vehicle the image fits (--vin VIN), or every ECU of a hardware id in the
    /// whole fleet (--hardware-id ID). Aftermarket ECUs are never assigned.
    Assign {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle: with --ecu, one ECU of it; alone, every ECU of it the image fits.
        #[arg(long, value_name = "VIN")]
        vin: Option<String>,
        /// One ECU of the vehicle given with --vin, by serial.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: Option<String>,
        /// Every ECU of this hardware id in the whole fleet (instead of --vin).
        #[arg(long, value_name = "ID")]
        hardware_id: Option<String>,
        /// The supplier, by the name the OEM pinned it under.
        #[arg(long, value_name = "NAME")]
        supplier: String,
        /// The image's identifier (e.g. brake-fw).
        #[arg(long, value_name = "UID")]
        uid: String,
        /// The release's version (e.g. 1.4.2).
        #[arg(long, value_name = "VERSION")]
        version: String,
        /// Assign although the regulators have not (yet) approved the release, or cannot be
        /// reached: vehicles hold it (and the rest of their update) until they approve. A
        /// release a regulator revoked or rejected is refused even so.
        #[arg(long)]
        force: bool,
        /// PEM bundle of the CAs to trust for HTTPS when asking the supplier and the
        /// regulators. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The update set: the vehicle's assignments of one set are installed all or nothing,
        /// and each set on its own (one refused set does not hold back another). Default:
        /// the vehicle's default set.
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// An image the vehicle must run beside this one, as UID>=RELEASE_COUNTER (on any of
        /// its ECUs, after the update); repeatable. Checked now on what the vehicle reported
        /// and is assigned, and again by the gateway; a requirement met within one update
        /// joins the two sets.
        #[arg(long = "needs", value_name = "UID>=COUNTER")]
        needs: Vec<ota_metadata::documents::Requirement>,
        /// An image never to run beside this one, as UID or UID@VERSION; repeatable.
        #[arg(long = "conflicts-with", value_name = "UID[@VERSION]")]
        conflicts_with: Vec<ota_metadata::documents::Conflict>,
    },
    /// Sign and write what changed: roles, and per vehicle only the vehicles that changed.
    Publish {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// Re-sign every role even if unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Bring back damaged or missing nodes of the published vehicle tree from the copy a web
    /// server or store serves: every node is checked against its hash, and one that does not
    /// match is fetched from --from (same name), checked and written. (The nodes cannot be
    /// rebuilt from the OEM's state: the versions vehicles hold are only in the published tree.)
    Repair {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The served tree: its URL (https://…/master/) or a directory holding it.
        #[arg(long, value_name = "URL_OR_DIR")]
        from: String,
        /// PEM bundle of the CAs to trust for HTTPS. Default: the built-in web roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Issue the next version of an ECU trust document for one hardware id: the supplier keys
    /// (and threshold) its ECUs accept, the regulator keys (and threshold) they require in full
    /// mode, and the keys that sign the next version. Version N+1 must be signed by a threshold
    /// of version N's signer keys and of its own, as a TUF root; the command checks this as the
    /// ECU will. Written to DIR/ecu-trust/HW.V.bin; `oem publish` lists it as target
    /// ecu-trust.HW.V.bin and gateways forward it to ECUs holding an older version. Version 1
    /// is the file an ECU is provisioned with (ota-ecu-sim --trust).
    #[command(after_help = OEM_ECU_TRUST_EXAMPLES)]
    EcuTrust {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The ECUs' hardware id (A-Z a-z 0-9 - _ ., at most 32).
        #[arg(long, value_name = "ID")]
        hardware_id: String,
        /// A supplier key (public PEM; its targets key, which signs compact manifests) the ECUs
        /// accept; repeatable, at most 4. Or --supplier.
        #[arg(
            long = "supplier-key",
            value_name = "PUBLIC.pem",
            required_unless_present = "supplier",
            conflicts_with = "supplier"
        )]
        supplier_keys: Vec<PathBuf>,
        /// Take the supplier keys from pinned supplier NAME: the targets keys of its current
        /// root, walked from the OEM's pin (so a supplier's key rotation needs no PEM). Keys
        /// in neither the previous document nor the OEM's pin must be confirmed
        /// (--confirm-key): the command lists what changed.
        #[arg(long, value_name = "NAME")]
        supplier: Option<String>,
        /// With --supplier: a supplier key id (hex, as listed) that you checked with the
        /// supplier out of band and accept into the ECUs' trust; repeatable. Without it a key
        /// new since the previous document and not in the OEM's pin is refused (a stolen
        /// supplier root key could have put it in the chain).
        #[arg(long = "confirm-key", value_name = "KEYID", requires = "supplier")]
        confirm_keys: Vec<String>,
        /// With --supplier: read its tree from this URL or directory instead of its pinned URL
        /// (its root is still checked against the pin).
        #[arg(long, value_name = "URL_OR_DIR", requires = "supplier")]
        from: Option<String>,
        /// With --supplier: PEM bundle of the CAs to trust for HTTPS. Default: the built-in
        /// web roots.
        #[arg(long, value_name = "FILE", requires = "supplier")]
        ca: Option<PathBuf>,
        /// How many distinct supplier keys must sign a compact manifest. Default: 1 with
        /// --supplier-key, the supplier's targets threshold with --supplier.
        #[arg(long, value_name = "N")]
        supplier_threshold: Option<u8>,
        /// A regulator key (public PEM) whose compact attestation counts; repeatable, at most 4.
        #[arg(long = "regulator-key", value_name = "PUBLIC.pem")]
        regulator_keys: Vec<PathBuf>,
        /// How many distinct regulator keys must approve an image (full mode; 0 with no keys).
        #[arg(long, value_name = "N", default_value_t = 0)]
        regulator_threshold: u8,
        /// Full verification: the ECUs also require the regulators' approval (else partial:
        /// the supplier's signature only, for the smallest parts).
        #[arg(long)]
        full: bool,
        /// A private key that signs this version and is listed as a signer of the next one;
        /// repeatable, at most 4. Offline keys only: the OEM's online keys (timestamp,
        /// snapshot, review, vehicles) and the document's supplier and regulator keys are
        /// refused.
        #[arg(long = "signer-key", value_name = "PRIVATE.pem", required = true)]
        signer_keys: Vec<PathBuf>,
        /// How many distinct signer keys must sign the next version. Default: 2 for a new
        /// document (one stolen signer key alone cannot change what ECUs trust), the previous
        /// version's otherwise; 1 is allowed with a warning.
        #[arg(long, value_name = "N")]
        signer_threshold: Option<u8>,
        /// A private signer key of the previous version, when the signers change; repeatable.
        #[arg(long = "previous-signer-key", value_name = "PRIVATE.pem")]
        previous_signer_keys: Vec<PathBuf>,
        /// The ECUs refuse images with a lower release counter, whatever approval comes with
        /// them: raise it above a revoked release's counter. Default: the previous version's.
        #[arg(long, value_name = "COUNTER")]
        min_release_counter: Option<u64>,
        /// For ECUs whose firmware predates OEM instructions: a document that names no
        /// instruction key (format 2), so the ECUs install what their suppliers signed
        /// without the OEM's per-ECU instruction. By default the document names the OEM's
        /// instruction key and the ECUs refuse any image the OEM did not instruct them to
        /// install.
        #[arg(long)]
        legacy: bool,
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
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The supplier's root.json (it must verify).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// Base URL of the supplier's published tree (the directory holding timestamp.json):
        /// an http(s):// or file:// URL, or an absolute path.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Hardware id (pattern, `*` matches any run of characters) the supplier may serve;
        /// repeatable.
        #[arg(long = "hardware-id", value_name = "PATTERN", required = true)]
        hardware_ids: Vec<String>,
    },
    /// Remove a supplier and withdraw every vehicle assignment of its images.
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Hand a supplier's hardware ids to another (already added) supplier and remove it.
    Replace {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier to remove, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The supplier (already added, by name) that takes over its hardware ids.
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

pub use crate::commands::fleet::{FleetCommand, OEM_FLEET_EXAMPLES};
pub use crate::commands::rollout::{RolloutCommand, OEM_ROLLOUT_EXAMPLES};

#[derive(Subcommand, Debug)]
pub enum VehicleCommand {
    /// Import vehicles, their ECUs and the keys that sign their reports from a CSV file
    /// (`vin,ecus,aftermarket,vehicle_key`; ECUs as `SERIAL:HARDWARE_ID` or
    /// `SERIAL:HARDWARE_ID:KEY`, separated by `;`; a key is the base64 body of its public-key
    /// PEM on one line, e.g. `openssl pkey -pubin -outform DER | base64 -w0`). Every line is
    /// checked before anything is written; vehicles already there with the same ECUs are left
    /// as they are (keys added where none is registered; another key is refused), so
    /// importing the same file again changes nothing.
    Import {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The CSV file (a `vin,…` header line and `#` comment lines are skipped).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Add a vehicle and its ECUs to the inventory.
    Add {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number (or any fleet-unique id: ASCII letters, digits,
        /// '.', '_', '-').
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// An ECU as SERIAL:HARDWARE_ID; repeatable.
        #[arg(long = "ecu", value_name = "SERIAL:HARDWARE_ID")]
        ecus: Vec<String>,
        /// An aftermarket ECU (never updated) as SERIAL:HARDWARE_ID; repeatable.
        #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
        aftermarket: Vec<String>,
        /// Also issue the vehicle's decryption keys (for encrypted images) to this new file
        /// (mode 0600), to install in its gateway at the factory (`decryption_keys`).
        #[arg(long, value_name = "FILE")]
        decryption_keys: Option<PathBuf>,
        /// Also write the vehicle's secret to this new file (mode 0600), to install in its
        /// gateway at the factory (`vehicle_secret`): the vehicle finds and reads its
        /// assignments with it (see `vehicle secret`).
        #[arg(long, value_name = "FILE")]
        secret: Option<PathBuf>,
    },
    /// Write a vehicle's secret to a new file (mode 0600), to install in its gateway
    /// (`vehicle_secret`). The served tree names no vehicle: each finds its entry by a locator
    /// derived from this secret and reads it under a key derived from it. A replaced gateway
    /// is given the same secret again.
    Secret {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The secret file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Take a vehicle out of the fleet (scrapped, exported): its inventory entry and
    /// assignments go; the next publish withdraws its assignments (a higher version with none).
    /// Publish refuses a state that lost a vehicle the published tree lists unless it was
    /// removed this way.
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
    },
    /// Issue a vehicle's decryption keys (for encrypted images) to a new file (mode 0600), to
    /// install in its gateway (`decryption_keys`): a key path in the group of each hardware id
    /// it has an ECU of, so it can decrypt the images of those hardware ids only.
    ///
    /// A vehicle that holds keys already needs --replace (a new gateway: fresh keys, and the
    /// old unit's open nothing published from then on) or --again (the same unit's keys
    /// written again, with keys for any hardware id it gained since).
    DecryptionKeys {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The key file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The gateway was replaced: issue fresh keys and exclude the old unit's.
        #[arg(long, conflicts_with = "again")]
        replace: bool,
        /// Write the same unit's keys again (refused for a revoked vehicle).
        #[arg(long)]
        again: bool,
    },
    /// Exclude a vehicle (stolen, or its keys leaked) from every encrypted image wrapped from
    /// the next `oem publish` on; no other vehicle is re-keyed.
    RevokeKeys {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
    },
    /// Register the vehicle's public key (its gateway signs version reports with it).
    Key {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
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
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The new ECU, as SERIAL:HARDWARE_ID.
        #[arg(long, value_name = "SERIAL:HARDWARE_ID")]
        ecu: String,
        /// The ECU is aftermarket: it is never assigned updates.
        #[arg(long)]
        aftermarket: bool,
    },
    /// Remove an ECU from a vehicle (and withdraw its assignment).
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
    },
    /// Register an ECU's public key (it signs its version reports with it).
    Key {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
        /// PEM public key of the ECU (or private key, of which the public half is kept).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Replace an ECU; its assignment carries over if the hardware id is the same.
    Replace {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The vehicle identification number.
        #[arg(long, value_name = "VIN")]
        vin: String,
        /// The ECU to replace, by serial number.
        #[arg(long, value_name = "SERIAL", alias = "serial")]
        ecu: String,
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every argument of every subcommand, with the path to it, that has no help text; every
    /// subcommand without an `about`; every command group without examples.
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
        if cmd.has_subcommands() && path != "ota-repo" {
            let examples = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !examples.starts_with("Examples") {
                out.push(format!("{path} (a command group without examples)"));
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
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    /// The command lines of an Examples section: continuation lines joined, comments
    /// dropped, split into words as a shell would (single quotes only, as the examples use).
    pub(crate) fn example_commands(help: &str) -> Vec<Vec<String>> {
        let mut lines: Vec<String> = Vec::new();
        let mut continued = false;
        for l in help.lines().skip(1) {
            let l = l.trim();
            if continued {
                lines.last_mut().unwrap().push_str(l);
            } else if l.starts_with("ota-repo ") {
                lines.push(l.to_string());
            }
            continued = l.ends_with('\\');
            if continued {
                let last = lines.last_mut().unwrap();
                last.pop();
            }
        }
        lines
            .iter()
            .map(|line| {
                let (mut words, mut word, mut quoted, mut has) =
                    (Vec::new(), String::new(), false, false);
                for c in line.chars() {
                    match c {
                        '\'' => {
                            quoted = !quoted;
                            has = true;
                        }
                        '#' if !quoted && !has => break,
                        ' ' if !quoted => {
                            if has {
                                words.push(std::mem::take(&mut word));
                                has = false;
                            }
                        }
                        '|' if !quoted => break,
                        c => {
                            word.push(c);
                            has = true;
                        }
                    }
                }
                if has {
                    words.push(word);
                }
                words
            })
            .collect()
    }

    /// Every command group, with its path, and its examples.
    fn groups(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name());
            if sub.has_subcommands() {
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                out.push((p.clone(), help));
                groups(sub, &p, out);
            }
        }
    }

    #[test]
    fn every_command_group_shows_examples_that_parse() {
        let mut all = Vec::new();
        groups(&Cli::command(), "ota-repo", &mut all);
        let names: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        for g in [
            "ota-repo key",
            "ota-repo supplier",
            "ota-repo oem",
            "ota-repo regulator",
        ] {
            assert!(names.contains(&g), "{names:?}");
        }
        for (group, help) in &all {
            assert!(help.starts_with("Examples"), "{group}: {help:?}");
            let cmds = example_commands(help);
            assert!(!cmds.is_empty(), "{group}: no example");
            for words in cmds {
                let line = words.join(" ");
                // Each example is a command of this group (or the verify that ends a workflow).
                assert!(
                    line.starts_with(&format!("{group} ")) || line.starts_with("ota-repo verify "),
                    "{group}: {line}"
                );
                // Written with today's flags: hidden old spellings do not count.
                for old in ["--serial", "--required", "--to "] {
                    assert!(!line.contains(old), "{group}: old spelling {old}: {line}");
                }
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{group}: example does not parse: {line}\n{e}");
                }
            }
        }
    }

    #[test]
    fn old_spellings_still_parse() {
        for line in [
            "ota-repo supplier delegate d --to t2 --key k --sign-here --hardware-id H",
            "ota-repo oem assign d --vin V --serial S --supplier a --uid u --version 1",
            "ota-repo oem ecu remove d --vin V --serial S",
            "ota-repo oem ecu key d --vin V --serial S --key k",
            "ota-repo oem ecu replace d --vin V --serial S --with T:H",
            "ota-repo oem regulator threshold d --required 2",
            "ota-repo oem regulator threshold d 2",
        ] {
            let words: Vec<&str> = line.split(' ').collect();
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("{line}: {e}");
            }
        }
        // The old spellings stay out of the help.
        let mut help = Vec::new();
        Cli::command()
            .find_subcommand_mut("oem")
            .unwrap()
            .find_subcommand_mut("assign")
            .unwrap()
            .write_long_help(&mut help)
            .unwrap();
        let help = String::from_utf8(help).unwrap();
        assert!(
            help.contains("--ecu <SERIAL>") && !help.contains("--serial"),
            "{help}"
        );
    }
}
