//! `ota-repo oem ecu-trust`: the next version of the trust document an ECU of one hardware id
//! holds (the supplier and regulator keys it accepts, and who signs the next version).

use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::Args;
use ota_metadata::DateTime;
use std::path::PathBuf;

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

/// `oem ecu-trust`.
#[derive(Args, Debug)]
pub struct EcuTrustArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The ECUs' hardware id (A-Z a-z 0-9 - _ ., at most 32).
    #[arg(long, value_name = "ID")]
    pub hardware_id: String,
    /// A supplier key (public PEM; its targets key, which signs compact manifests) the ECUs
    /// accept; repeatable, at most 4. Or --supplier.
    #[arg(
        long = "supplier-key",
        value_name = "PUBLIC.pem",
        required_unless_present = "supplier",
        conflicts_with = "supplier"
    )]
    pub supplier_keys: Vec<PathBuf>,
    /// Take the supplier keys from pinned supplier NAME: the targets keys of its current
    /// root, walked from the OEM's pin (so a supplier's key rotation needs no PEM). Keys
    /// in neither the previous document nor the OEM's pin must be confirmed
    /// (--confirm-key): the command lists what changed.
    #[arg(long, value_name = "NAME")]
    pub supplier: Option<String>,
    /// With --supplier: a supplier key id (hex, as listed) that you checked with the
    /// supplier out of band and accept into the ECUs' trust; repeatable. Without it a key
    /// new since the previous document and not in the OEM's pin is refused (a stolen
    /// supplier root key could have put it in the chain).
    #[arg(long = "confirm-key", value_name = "KEYID", requires = "supplier")]
    pub confirm_keys: Vec<String>,
    /// With --supplier: read its tree from this URL or directory instead of its pinned URL
    /// (its root is still checked against the pin).
    #[arg(long, value_name = "URL_OR_DIR", requires = "supplier")]
    pub from: Option<String>,
    /// With --supplier: PEM bundle of the CAs to trust for HTTPS. Default: the built-in
    /// web roots.
    #[arg(long, value_name = "FILE", requires = "supplier")]
    pub ca: Option<PathBuf>,
    /// How many distinct supplier keys must sign a compact manifest. Default: 1 with
    /// --supplier-key, the supplier's targets threshold with --supplier.
    #[arg(long, value_name = "N")]
    pub supplier_threshold: Option<u8>,
    /// A regulator key (public PEM) whose compact attestation counts; repeatable, at most 4.
    #[arg(long = "regulator-key", value_name = "PUBLIC.pem")]
    pub regulator_keys: Vec<PathBuf>,
    /// How many distinct regulator keys must approve an image (full mode; 0 with no keys).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub regulator_threshold: u8,
    /// Full verification: the ECUs also require the regulators' approval (else partial:
    /// the supplier's signature only, for the smallest parts).
    #[arg(long)]
    pub full: bool,
    /// A private key that signs this version and is listed as a signer of the next one;
    /// repeatable, at most 4. Offline keys only: the OEM's online keys (timestamp,
    /// snapshot, review, vehicles) and the document's supplier and regulator keys are
    /// refused.
    #[arg(long = "signer-key", value_name = "PRIVATE.pem", required = true)]
    pub signer_keys: Vec<PathBuf>,
    /// How many distinct signer keys must sign the next version. Default: 2 for a new
    /// document (one stolen signer key alone cannot change what ECUs trust), the previous
    /// version's otherwise; 1 is allowed with a warning.
    #[arg(long, value_name = "N")]
    pub signer_threshold: Option<u8>,
    /// A private signer key of the previous version, when the signers change; repeatable.
    #[arg(long = "previous-signer-key", value_name = "PRIVATE.pem")]
    pub previous_signer_keys: Vec<PathBuf>,
    /// The ECUs refuse images with a lower release counter, whatever approval comes with
    /// them: raise it above a revoked release's counter. Default: the previous version's.
    #[arg(long, value_name = "COUNTER")]
    pub min_release_counter: Option<u64>,
    /// For ECUs whose firmware predates OEM instructions: a document that names no
    /// instruction key (format 2), so the ECUs install what their suppliers signed
    /// without the OEM's per-ECU instruction. By default the document names the OEM's
    /// instruction key and the ECUs refuse any image the OEM did not instruct them to
    /// install.
    #[arg(long)]
    pub legacy: bool,
}

pub(super) fn run(a: EcuTrustArgs, now: DateTime) -> Result<()> {
    // With --supplier, the keys are walked from the OEM's pin (fetching the supplier's tree);
    // else they are the PEM files given.
    let suppliers = match a.supplier {
        Some(name) => oem::ecu_trust::SupplierKeys::Pinned {
            name,
            from: a.from,
            ca: a.ca,
            now,
        },
        None => oem::ecu_trust::SupplierKeys::Files(a.supplier_keys),
    };
    let hardware_id = a.hardware_id;
    let (version, path) = oem::ecu_trust(
        &a.dir,
        &oem::EcuTrust {
            hardware_id: hardware_id.clone(),
            suppliers,
            supplier_threshold: a.supplier_threshold,
            regulator_keys: a.regulator_keys,
            regulator_threshold: a.regulator_threshold,
            full: a.full,
            signer_keys: a.signer_keys,
            signer_threshold: a.signer_threshold,
            confirmed_keys: a.confirm_keys,
            previous_signer_keys: a.previous_signer_keys,
            min_release_counter: a.min_release_counter,
            legacy: a.legacy,
        },
    )?;
    say!(
        "trust document version {version} for {hardware_id}: {}; publish to send it to the vehicles",
        path.display()
    );
    Ok(())
}
