//! The cross-repository walk of DESIGN.md, the gateway's full verification:
//!
//! 1. OEM master: root rotation, timestamp, snapshot, targets (the supplier pins and the
//!    authorized regulators, signed by the OEM's offline targets keys), and this vehicle's
//!    assignments (fleet index signed by the online `vehicles` role -> tree nodes -> the
//!    vehicle's assignments file, each by hash);
//! 2. for each ECU whose assignment differs from what is installed: the supplier's repository,
//!    pinned by the OEM: the image manifest, its signature, every field against the assignment,
//!    the hardware id against the ECU, the release counter against the installed one;
//! 3. the release (every field of that manifest, and its hash) attested by the regulators:
//!    a fresh, verified state of *every* authorized regulator's repository (an unreachable,
//!    frozen or expired one stops the update), no revocation from any, and approvals from a
//!    threshold of distinct regulators (counted by key material);
//! 4. the image itself, bounded and hashed while it streams, staged.
//!
//! The manifest comes before the attestations because an attestation is about a release (the
//! manifest's fields and hash), not just about bytes. Any failed check stops that ECU's
//! update with an error naming the check and the repository; the gateway then holds the
//! other ECUs of the update back too (all or nothing: `crate::gateway`). An
//! installed release that a regulator revoked later is reported as a recall.

mod assignments;
mod attestations;
mod error;
mod image;

pub use assignments::{find_in_tree, read_assignments, TreeError, Vehicle};
pub use attestations::{check_attestations_bundle, check_recall, Recall};
pub use error::{Check, Result, WalkError};
pub use image::{check_image, download_delta, download_image, CheckedImage};

use crate::tuf::{open_pinned, Fetch, Limits, MetadataStore, Updater};
use ota_metadata::documents::{
    regulators_of, suppliers_of, Assignments, EcuAssignment, RegulatorPolicy, Release,
    RepositoryPin, SupplierEntry,
};
use ota_metadata::DateTime;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use error::fail;

/// One ECU as the gateway knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ecu {
    pub serial: String,
    pub hardware_id: String,
}

/// What an ECU runs now, as far as the gateway knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub sha256: String,
    /// The release as attested (absent for images recorded before releases were tracked):
    /// what a later revocation is looked up by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// SHA-256 of the published target when it is not `sha256`: the ciphertext of an
    /// encrypted image (what assignments name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_sha256: Option<String>,
}

/// The verified view of the OEM master repository for one vehicle.
pub struct Master {
    pub url: String,
    pub suppliers: BTreeMap<String, SupplierEntry>,
    pub regulators: RegulatorPolicy,
    /// This vehicle's assignments (`None`: the OEM assigns it nothing).
    pub assignments: Option<Assignments>,
}

/// Step 1: refresh the master repository and read everything this vehicle needs from it.
/// `store` keeps the last accepted assignments (exact bytes) for rollback protection.
pub fn read_master<F: Fetch>(
    master: &mut Updater<F>,
    url: &str,
    vehicle: &Vehicle<'_>,
    store: &MetadataStore,
) -> Result<Master> {
    master
        .refresh()
        .map_err(|e| fail(Check::OemMetadata, url, e))?;
    let targets = master
        .trusted()
        .targets("targets")
        .ok_or_else(|| fail(Check::OemMetadata, url, "targets not loaded"))?;
    let suppliers = suppliers_of(&targets.signed).map_err(|e| fail(Check::SupplierPins, url, e))?;
    let regulators =
        regulators_of(&targets.signed).map_err(|e| fail(Check::RegulatorPolicy, url, e))?;
    let assignments = read_assignments(master, url, vehicle, store)?;
    Ok(Master {
        url: url.into(),
        suppliers,
        regulators,
        assignments,
    })
}

/// What the walk decided for one ECU.
#[derive(Debug)]
pub enum Decision {
    /// Nothing assigned to this ECU.
    Unassigned,
    /// The assigned image is already installed.
    UpToDate(EcuAssignment),
    /// The assigned image differs from what is installed.
    Update(EcuAssignment),
}

/// Compare the assignments with what is installed.
pub fn decide(master: &Master, ecu: &Ecu, installed: Option<&Installed>) -> Decision {
    let Some(a) = master
        .assignments
        .as_ref()
        .and_then(|a| a.ecus.get(&ecu.serial))
    else {
        return Decision::Unassigned;
    };
    let same = installed.is_some_and(|i| {
        Some(i.target_sha256.as_ref().unwrap_or(&i.sha256)) == a.hashes.get("sha256")
            && i.uid == a.uid
            && i.version == a.version
            && i.release_counter == a.release_counter
            && i.release.as_ref().is_none_or(|r| r.supplier == a.supplier)
    });
    if same {
        Decision::UpToDate(a.clone())
    } else {
        Decision::Update(a.clone())
    }
}

/// Opens (and refreshes once per run) the repositories the walk needs beyond the master.
pub struct Repositories<'f, F: Fetch> {
    fetcher: &'f F,
    limits: Limits,
    /// The time of this run: expiry, and the regulators' timestamp lifetime, are checked
    /// against it.
    pub(crate) now: DateTime,
    dir: PathBuf,
    open: BTreeMap<String, std::result::Result<Updater<&'f F>, String>>,
}

impl<'f, F: Fetch> Repositories<'f, F> {
    /// Repositories cached under `dir` (`dir/<kind>/<name>/`).
    pub fn new(fetcher: &'f F, limits: Limits, now: DateTime, dir: &Path) -> Self {
        Repositories {
            fetcher,
            limits,
            now,
            dir: dir.to_path_buf(),
            open: BTreeMap::new(),
        }
    }

    /// The refreshed repository `kind/name` pinned by `pin`, or why it could not be reached
    /// or verified (remembered for the rest of the run: one attempt per repository).
    fn get(
        &mut self,
        kind: &str,
        name: &str,
        pin: &RepositoryPin,
    ) -> std::result::Result<&mut Updater<&'f F>, String> {
        let key = format!("{kind}/{name}");
        if !self.open.contains_key(&key) {
            let opened = open_pinned(
                pin,
                &format!("{kind} {name}"),
                &self.dir.join(kind).join(name),
                self.fetcher,
                self.limits.clone(),
                self.now,
            )
            .and_then(|mut u| u.refresh().map(|_| u))
            .map_err(|e| e.to_string());
            self.open.insert(key.clone(), opened);
        }
        match self.open.get_mut(&key) {
            Some(Ok(u)) => Ok(u),
            Some(Err(e)) => Err(e.clone()),
            None => Err("internal: repository not opened".into()),
        }
    }
}
