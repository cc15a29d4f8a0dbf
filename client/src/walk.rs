//! The cross-repository walk of DESIGN.md, the gateway's full verification:
//!
//! 1. OEM master: root rotation, timestamp, snapshot, targets (supplier pins), `regulators`,
//!    and this vehicle's assignments (fleet index -> bin -> signed assignments);
//! 2. for each ECU whose assignment differs from what is installed: attestations for exactly
//!    that image from the regulators the OEM authorizes (a threshold of distinct regulators
//!    approving, none revoking);
//! 3. the supplier's repository, pinned by the OEM: the image manifest, its signature, every
//!    field against the assignment, the hardware id against the ECU, the release counter
//!    against the installed one;
//! 4. the image itself, bounded and hashed while it streams, staged.
//!
//! Any failed check stops that ECU's update with an error naming the check and the repository;
//! other ECUs carry on.

use crate::image::{fetch_image, find_image, ImageInfo, VerifiedImage};
use crate::tuf::{open_pinned, Fetch, Limits, MetadataStore, Updater};
use ota_metadata::documents::vehicles::bin_of;
use ota_metadata::documents::{
    suppliers_of, Assignments, Attestation, EcuAssignment, Regulators, SupplierEntry, VehicleBin,
    VehicleIndex, Verdict,
};
use ota_metadata::roles::sha256_of;
use ota_metadata::{DateTime, Envelope};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A failed check: which one, where, and why.
#[derive(Debug)]
pub struct WalkError {
    pub check: &'static str,
    pub repository: String,
    pub reason: String,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} check failed ({}): {}",
            self.check, self.repository, self.reason
        )
    }
}

impl std::error::Error for WalkError {}

fn fail(check: &'static str, repository: &str, reason: impl fmt::Display) -> WalkError {
    WalkError {
        check,
        repository: repository.into(),
        reason: reason.to_string(),
    }
}

pub type Result<T> = std::result::Result<T, WalkError>;

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
}

/// The verified view of the OEM master repository for one vehicle.
pub struct Master {
    pub url: String,
    pub suppliers: BTreeMap<String, SupplierEntry>,
    pub regulators: Regulators,
    /// This vehicle's assignments (`None`: the OEM assigns it nothing).
    pub assignments: Option<Assignments>,
}

/// Size bound for bins and assignment files.
const MAX_VEHICLE_FILE: u64 = 16 << 20;

/// Step 1: refresh the master repository and read everything this vehicle needs from it.
/// `store` keeps the last accepted assignments (exact bytes) for rollback protection.
pub fn read_master<F: Fetch>(
    master: &mut Updater<F>,
    url: &str,
    vin: &str,
    store: &MetadataStore,
) -> Result<Master> {
    master.refresh().map_err(|e| fail("OEM metadata", url, e))?;
    let targets = master
        .trusted()
        .targets("targets")
        .ok_or_else(|| fail("OEM metadata", url, "targets not loaded"))?;
    let suppliers = suppliers_of(&targets.signed).map_err(|e| fail("OEM supplier pins", url, e))?;
    let regulators = master
        .load_extra_role::<Regulators>("regulators", Regulators::TYPE, |r| r.expires, |r| r.version)
        .map_err(|e| fail("OEM regulators role", url, e))?
        .signed;
    let assignments = read_assignments(master, url, vin, store)?;
    Ok(Master {
        url: url.into(),
        suppliers,
        regulators,
        assignments,
    })
}

fn read_assignments<F: Fetch>(
    master: &Updater<F>,
    url: &str,
    vin: &str,
    store: &MetadataStore,
) -> Result<Option<Assignments>> {
    let check = "vehicle assignments";
    let index = master
        .load_extra_role::<VehicleIndex>(
            "vehicles",
            VehicleIndex::TYPE,
            |r| r.expires,
            |r| r.version,
        )
        .map_err(|e| fail(check, url, e))?
        .signed;
    let bin = bin_of(vin, index.bins);
    let Some(bin_meta) = index.bin_files.get(&bin) else {
        return Ok(None);
    };
    let sha = bin_meta
        .hashes
        .as_ref()
        .map(|h| sha256_of(h, "bin"))
        .transpose()
        .map_err(|e| fail(check, url, e))?
        .ok_or_else(|| fail(check, url, format!("bin {bin} has no sha256 in the index")))?;
    let bytes = master
        .fetch_metadata_file_cached(
            &format!("vehicles/bins/{}.bin-{bin}.json", hex::encode(sha)),
            "vehicle-bin",
            bin_meta,
            MAX_VEHICLE_FILE,
        )
        .map_err(|e| fail(check, url, e))?;
    let b: VehicleBin =
        serde_json::from_slice(&bytes).map_err(|e| fail(check, url, format!("bin {bin}: {e}")))?;
    if b.bin != bin {
        return Err(fail(
            check,
            url,
            format!("bin file holds bin {}, expected {bin}", b.bin),
        ));
    }
    let Some(meta) = b.vehicles.get(vin) else {
        return Ok(None);
    };
    let path = format!(
        "vehicles/{}/{}.assignments.json",
        crate::tuf::encode::url_segment(vin),
        meta.version
    );
    let bytes = master
        .fetch_metadata_file_cached(&path, "assignments-file", meta, MAX_VEHICLE_FILE)
        .map_err(|e| fail(check, url, e))?;
    let root = &master.trusted().root().signed;
    let r = root.role("vehicles").map_err(|e| fail(check, url, e))?;
    let env = Envelope::parse(&path, &bytes, MAX_VEHICLE_FILE).map_err(|e| fail(check, url, e))?;
    env.verify(
        &format!("assignments of {vin}"),
        &r.keyids,
        r.threshold,
        &root.keys,
    )
    .map_err(|e| fail(check, url, e))?;
    let a: Assignments = env
        .decode(&path, Assignments::TYPE)
        .map_err(|e| fail(check, url, e))?;
    if a.vin != vin || a.version != meta.version {
        return Err(fail(
            check,
            url,
            format!(
                "file is {} v{}, the bin lists {vin} v{}",
                a.vin, a.version, meta.version
            ),
        ));
    }
    if a.expires <= master.trusted().now() {
        return Err(fail(
            check,
            url,
            format!("assignments of {vin} expired at {}", a.expires),
        ));
    }
    // Rollback: never accept older assignments than the last accepted ones.
    if let Ok(Some(prev)) = store.read("assignments", MAX_VEHICLE_FILE) {
        if let Ok(p) = Envelope::parse("assignments", &prev, MAX_VEHICLE_FILE)
            .and_then(|e| e.decode::<Assignments>("assignments", Assignments::TYPE))
        {
            if a.version < p.version {
                return Err(fail(
                    check,
                    url,
                    format!(
                        "version {} is older than the accepted {} (rollback)",
                        a.version, p.version
                    ),
                ));
            }
        }
    }
    store
        .write("assignments", &bytes)
        .map_err(|e| fail(check, url, e))?;
    Ok(Some(a))
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
        Some(&i.sha256) == a.hashes.get("sha256") && i.uid == a.uid && i.version == a.version
    });
    if same {
        Decision::UpToDate(a.clone())
    } else {
        Decision::Update(a.clone())
    }
}

/// Opens (and refreshes once) the repositories the walk needs beyond the master.
pub struct Repositories<'f, F: Fetch> {
    fetcher: &'f F,
    limits: Limits,
    now: DateTime,
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

    fn get(
        &mut self,
        kind: &str,
        name: &str,
        pin: &ota_metadata::documents::RepositoryPin,
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

/// Step 2: a threshold of the OEM's authorized regulators approve exactly this image, and none
/// revoked it. Returns the approving regulators.
pub fn check_attestations<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    a: &EcuAssignment,
) -> Result<Vec<String>> {
    let check = "regulator attestations";
    let sha = a
        .hashes
        .get("sha256")
        .cloned()
        .ok_or_else(|| fail(check, &master.url, "assignment lists no sha256"))?;
    let target = format!("{sha}.attestation.json");
    let mut approved = Vec::new();
    let mut problems = Vec::new();
    for (name, pin) in &master.regulators.regulators {
        let up = match repos.get("regulators", name, pin) {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        match attestation_of(up, &target, &pin.url) {
            Ok(None) => problems.push(format!("{name}: no attestation for {sha}")),
            Ok(Some(att)) => {
                let same =
                    att.image.length == a.length && att.image.hashes.get("sha256") == Some(&sha);
                if !same {
                    problems.push(format!("{name}: attestation is about another image"));
                    continue;
                }
                match att.verdict {
                    Verdict::Approved => approved.push(name.clone()),
                    Verdict::Rejected => problems.push(format!(
                        "{name}: rejected ({} finding(s))",
                        att.findings.len()
                    )),
                    Verdict::Revoked => {
                        return Err(fail(
                            check,
                            &pin.url,
                            format!(
                                "{name} revoked {} {}: {}",
                                a.uid,
                                a.version,
                                att.reason.unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if (approved.len() as u64) < u64::from(master.regulators.threshold.max(1)) {
        return Err(fail(
            check,
            &master.url,
            format!(
                "{} of {} required regulator approvals for {} {} ({})",
                approved.len(),
                master.regulators.threshold,
                a.uid,
                a.version,
                problems.join("; ")
            ),
        ));
    }
    Ok(approved)
}

/// The verified attestation `target` of one regulator repository, if it lists one.
fn attestation_of<F: Fetch>(
    up: &mut Updater<F>,
    target: &str,
    url: &str,
) -> std::result::Result<Option<Attestation>, String> {
    let Some(crate::tuf::Found { info, signer, .. }) =
        up.get_targetinfo(target).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if info.length > 1 << 20 {
        return Err(format!("attestation of {} bytes", info.length));
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = up
        .download_target(target, &info, tmp.path())
        .map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let env = Envelope::parse(target, &bytes, 1 << 20).map_err(|e| e.to_string())?;
    env.verify(
        &format!("attestation {target} ({url})"),
        &signer.keyids,
        signer.threshold,
        &signer.keys,
    )
    .map_err(|e| e.to_string())?;
    env.decode(target, Attestation::TYPE)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Step 3 (and 4 when `download`): the image from the supplier the OEM pinned, every manifest
/// field checked against the assignment and the ECU.
pub fn check_image<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    ecu: &Ecu,
    a: &EcuAssignment,
    installed: Option<&Installed>,
    staging: &Path,
    download: bool,
) -> Result<(ImageInfo, Option<PathBuf>)> {
    let check = "image manifest";
    let entry = master.suppliers.get(&a.supplier).ok_or_else(|| {
        fail(
            "supplier delegation",
            &master.url,
            format!("supplier {:?} is not pinned by the OEM", a.supplier),
        )
    })?;
    let url = entry.repository.url.clone();
    if !entry.serves(&ecu.hardware_id) {
        return Err(fail(
            "supplier delegation",
            &master.url,
            format!(
                "supplier {} is not delegated hardware id {}",
                a.supplier, ecu.hardware_id
            ),
        ));
    }
    if a.hardware_id != ecu.hardware_id {
        return Err(fail(
            "hardware id",
            &master.url,
            format!(
                "assignment is for {}, ECU {} is {}",
                a.hardware_id, ecu.serial, ecu.hardware_id
            ),
        ));
    }
    let up = repos
        .get("suppliers", &a.supplier, &entry.repository)
        .map_err(|e| fail("supplier metadata", &url, e))?;
    let (info, path) = if download {
        let VerifiedImage { info, path } =
            fetch_image(up, &url, &a.uid, &a.version, staging).map_err(|e| fail(check, &url, e))?;
        (info, Some(path))
    } else {
        (
            find_image(up, &url, &a.uid, &a.version, staging).map_err(|e| fail(check, &url, e))?,
            None,
        )
    };
    let discard = |e: WalkError| {
        if let Some(p) = &path {
            let _ = std::fs::remove_file(p);
        }
        e
    };
    let m = &info.manifest;
    let mismatch = |field: &str, signed: String, assigned: String| {
        discard(fail(
            check,
            &url,
            format!("{field}: the supplier signed {signed}, the OEM assigned {assigned}"),
        ))
    };
    if m.uid != a.uid {
        return Err(mismatch("uid", m.uid.clone(), a.uid.clone()));
    }
    if m.version != a.version {
        return Err(mismatch("version", m.version.clone(), a.version.clone()));
    }
    if m.length != a.length || info.target.length != a.length {
        return Err(mismatch(
            "length",
            m.length.to_string(),
            a.length.to_string(),
        ));
    }
    if m.hashes.get("sha256") != a.hashes.get("sha256") {
        return Err(mismatch(
            "sha256",
            format!("{:?}", m.hashes.get("sha256")),
            format!("{:?}", a.hashes.get("sha256")),
        ));
    }
    if m.release_counter != a.release_counter {
        return Err(mismatch(
            "release counter",
            m.release_counter.to_string(),
            a.release_counter.to_string(),
        ));
    }
    if !m.hardware_ids.contains(&ecu.hardware_id) {
        return Err(discard(fail(
            "hardware id",
            &url,
            format!(
                "{} {} is built for {:?}, not {}",
                m.uid, m.version, m.hardware_ids, ecu.hardware_id
            ),
        )));
    }
    if let Some(i) = installed {
        if m.release_counter < i.release_counter {
            return Err(discard(fail(
                "release counter",
                &url,
                format!(
                    "{} {} has release counter {}, below the installed {} ({} {})",
                    m.uid, m.version, m.release_counter, i.release_counter, i.uid, i.version
                ),
            )));
        }
    }
    Ok((info, path))
}
