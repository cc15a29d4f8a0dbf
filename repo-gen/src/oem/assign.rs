//! Assigning images to ECUs (the paper's Mv). Only images the OEM has submitted for review
//! (and so verified against the supplier's signed manifest) can be assigned.

use super::{store, Assignments, Inventory, Settings};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::receiver::vehicle_group;
use ota_metadata::documents::{
    unmet, Conflict, EcuAssignment, Requirement, ReviewRequest, VehicleImages,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Which ECUs an assignment is for.
pub enum AssignTarget {
    /// One vehicle: the ECU with `serial`, or every ECU the image fits.
    Vehicle { vin: String, serial: Option<String> },
    /// Every non-aftermarket ECU with this hardware id in the fleet.
    HardwareId(String),
    /// These ECUs, (VIN, serial) each (a rollout's stage): checked and written as one.
    Ecus(Vec<(String, String)>),
}

pub struct Assign {
    pub target: AssignTarget,
    pub supplier: String,
    pub uid: String,
    pub version: String,
    /// Whether the regulators are asked first.
    pub approval: Approval,
    /// The update set, requirements and conflicts the assignments carry.
    pub rules: Rules,
}

/// What an assignment says about the vehicle's other images (checked here on what the vehicle
/// reported and is assigned, and again by the gateway on what it runs).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// The update set: assignments of one set are installed all or nothing, sets on their own.
    /// `None`: the vehicle's default set.
    pub set: Option<String>,
    pub requires: Vec<Requirement>,
    pub conflicts: Vec<Conflict>,
}

/// How `oem assign` asks the regulators about the release: as a vehicle will, so that an
/// assignment every vehicle would refuse (and that would hold back the vehicle's other
/// updates, which are all or nothing) is refused at the OEM instead.
#[derive(Clone, Debug)]
pub enum Approval {
    /// Ask every authorized regulator through the vehicles' own walk (supplier manifest, then
    /// attestations): a veto (revoked or rejected, this release or its bytes under any
    /// version) is refused always; too few approvals, or a regulator or the supplier that
    /// cannot be reached, is refused unless `force` (a release staged before its approval:
    /// vehicles hold it until approved).
    Ask {
        /// CA bundle for HTTPS (default: the built-in web roots).
        ca: Option<std::path::PathBuf>,
        force: bool,
        now: ota_metadata::DateTime,
    },
    /// Not asked. Library callers only (the CLI always asks): tests that play a director who
    /// skips its checks, to show what vehicles refuse by themselves.
    NotAsked,
}

fn reviewed<'a>(s: &'a Settings, a: &Assign) -> Result<&'a ReviewRequest> {
    s.reviews
        .iter()
        .find(|r| r.image.supplier == a.supplier && r.image.uid == a.uid && r.image.version == a.version)
        .ok_or_else(|| {
            Error::refused(format!(
                "{} {} of supplier {} has not been submitted for review; run `oem review submit` first",
                a.uid, a.version, a.supplier
            ))
        })
}

/// What the regulators said, when asked (names of the approving ones, or why not and forced).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// (VIN, serial) of each ECU assigned.
    pub ecus: Vec<(String, String)>,
    /// The regulators whose approvals count, when asked.
    pub approved_by: Vec<String>,
    /// Set when `--force` assigned a release the regulators did not (yet) approve: why.
    pub forced: Option<String>,
}

const VETOES: &str = "vetoes.json";

/// Record that a regulator vetoed `release` (SUPPLIER/UID/VERSION).
fn remember_veto(cache: &Path, release: &str, why: &str) -> Result<()> {
    let path = cache.join(VETOES);
    let mut all: BTreeMap<String, String> = read_vetoes(&path)?;
    if all.contains_key(release) {
        return Ok(());
    }
    all.insert(release.to_string(), why.to_string());
    let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::refused(e.to_string()))?;
    fsutil::write_atomic(&path, &bytes)
}

fn remembered_veto(cache: &Path, release: &str) -> Result<Option<String>> {
    Ok(read_vetoes(&cache.join(VETOES))?.remove(release))
}

fn read_vetoes(path: &Path) -> Result<BTreeMap<String, String>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let bytes = fsutil::read_bounded(path, 16 << 20)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Walk the release `req` for hardware id `hw` as a vehicle would (supplier manifest, then the
/// regulators' attestations): the approving regulators' names, or why a vehicle would refuse
/// it. `None` when not asked.
fn walk_regulators(
    dir: &Path,
    s: &Settings,
    req: &ReviewRequest,
    hw: &str,
    approval: &Approval,
) -> Result<Option<std::result::Result<Vec<String>, ota_client::walk::WalkError>>> {
    use ota_client::walk;
    let Approval::Ask { ca, now, .. } = approval else {
        return Ok(None);
    };
    let limits = ota_client::tuf::Limits::default();
    let fetcher = crate::net::fetcher(ca.as_deref(), &limits)?;
    // The regulators' and the supplier's verified metadata is kept between runs, as a
    // vehicle keeps it: a later assign refuses their rollback.
    let cache = dir.join("director-cache");
    fsutil::private_dir(&cache)?;
    let mut repos = walk::Repositories::new(&fetcher, limits, *now, &cache);
    let master = walk::Master {
        url: dir.join("repository").display().to_string(),
        suppliers: s.suppliers.clone(),
        regulators: s.regulator_policy()?,
        assignments: None,
    };
    let probe = EcuAssignment {
        hardware_id: hw.into(),
        supplier: req.image.supplier.clone(),
        uid: req.image.uid.clone(),
        version: req.image.version.clone(),
        release_counter: req.release_counter,
        target: req.image.target.clone(),
        length: req.image.length,
        hashes: req.image.hashes.clone(),
        key_wraps: None,
        compact_sha256: req.compact_sha256.clone(),
        instruction: None,
        set: None,
        requires: Vec::new(),
        conflicts: Vec::new(),
    };
    let ecu = walk::Ecu {
        serial: "(director check)".into(),
        hardware_id: hw.into(),
    };
    let staging = tempfile::tempdir_in(dir).map_err(Error::io(dir))?;
    Ok(Some(
        walk::check_image(&mut repos, &master, &ecu, &probe, None, staging.path())
            .and_then(|checked| walk::check_attestations(&mut repos, &master, &checked.release)),
    ))
}

/// Whether a regulator vetoes (revoked or rejected) the release SUPPLIER/UID/VERSION for
/// hardware id `hw` now, or was seen vetoing it before: why. A regulator that cannot be
/// reached is no veto (`oem rollout advance` halts a rollout on a veto, not on a network
/// failure).
pub(crate) fn vetoed(
    dir: &Path,
    supplier: &str,
    uid: &str,
    version: &str,
    hw: &str,
    approval: &Approval,
) -> Result<Option<String>> {
    let s = Settings::load(dir)?;
    let release = format!("{supplier}/{uid}/{version}");
    let cache = dir.join("director-cache");
    if let Some(veto) = remembered_veto(&cache, &release)? {
        return Ok(Some(veto));
    }
    let Some(req) = s
        .reviews
        .iter()
        .find(|r| r.image.supplier == supplier && r.image.uid == uid && r.image.version == version)
    else {
        return Ok(None);
    };
    match walk_regulators(dir, &s, req, hw, approval)? {
        Some(Err(e))
            if matches!(
                e.check,
                ota_client::walk::Check::Revoked | ota_client::walk::Check::Rejected
            ) =>
        {
            remember_veto(&cache, &release, &e.to_string())?;
            Ok(Some(e.to_string()))
        }
        _ => Ok(None),
    }
}

/// Ask the regulators about the release `req` for hardware id `hw`, as a vehicle would.
fn ask_regulators(
    dir: &Path,
    s: &Settings,
    req: &ReviewRequest,
    hw: &str,
    approval: &Approval,
) -> Result<(Vec<String>, Option<String>)> {
    use ota_client::walk::Check;
    let Approval::Ask { force, .. } = approval else {
        return Ok((Vec::new(), None));
    };
    let Some(asked) = walk_regulators(dir, s, req, hw, approval)? else {
        return Ok((Vec::new(), None));
    };
    let cache = dir.join("director-cache");
    let release = format!(
        "{}/{}/{}",
        req.image.supplier, req.image.uid, req.image.version
    );
    match asked {
        Ok(names) => Ok((names, None)),
        Err(e) if matches!(e.check, Check::Revoked | Check::Rejected) => {
            // Remembered: a regulator tree rolled back or blocked later cannot make --force
            // assign what a regulator was once seen to veto.
            remember_veto(&cache, &release, &e.to_string())?;
            Err(Error::refused(format!(
                "{e}: vehicles refuse a vetoed release, so it is never assigned (not even with --force); assign an approved release"
            )))
        }
        Err(e)
            if *force
                && matches!(
                    e.check,
                    Check::NotApproved | Check::RegulatorUnreachable | Check::SupplierMetadata
                ) =>
        {
            if let Some(veto) = remembered_veto(&cache, &release)? {
                return Err(Error::refused(format!(
                    "{e}; and a regulator was seen vetoing {release} before ({veto}): not assigned, not even with --force"
                )));
            }
            Ok((Vec::new(), Some(e.to_string())))
        }
        Err(e) if matches!(e.check, Check::NotApproved | Check::RegulatorUnreachable | Check::SupplierMetadata) => {
            Err(Error::refused(format!(
                "{e}: vehicles would refuse {} {} now, and their other updates would wait on it; wait for the regulators, or --force to assign it ahead of approval",
                req.image.uid, req.image.version
            )))
        }
        Err(e) => Err(Error::refused(format!(
            "{e}: vehicles would refuse this assignment"
        ))),
    }
}

/// Every assignment of `vin` checked against its requirements and conflicts on the vehicle
/// as it will be: what each ECU last reported running, overlaid by what it is assigned.
fn check_rules(
    db: &mut Option<ota_fleet::Db>,
    vin: &str,
    assigned: &BTreeMap<String, EcuAssignment>,
) -> Result<()> {
    if assigned
        .values()
        .all(|x| x.requires.is_empty() && x.conflicts.is_empty())
    {
        return Ok(());
    }
    let mut after: VehicleImages = match db.as_mut() {
        Some(db) => super::reports::vehicle_running(db, vin)?,
        None => VehicleImages::new(),
    };
    for (serial, x) in assigned {
        after.insert(
            serial.clone(),
            (x.uid.clone(), x.version.clone(), x.release_counter),
        );
    }
    for (serial, x) in assigned {
        if let Some(why) = unmet(serial, x, &after) {
            return Err(Error::refused(format!(
                "ECU {serial} of {vin}: {why}; the gateway would refuse its update set (assign what it needs first, or in the same --set)"
            )));
        }
    }
    Ok(())
}

/// Most requirements or conflicts one assignment carries.
const MAX_RULES: usize = 32;

impl Rules {
    /// Names as the rest of the metadata's (printable, bounded), few rules, none twice.
    fn check(&self) -> Result<()> {
        let names = self
            .set
            .iter()
            .chain(self.requires.iter().map(|r| &r.uid))
            .chain(self.conflicts.iter().map(|c| &c.uid))
            .chain(self.conflicts.iter().filter_map(|c| c.version.as_ref()));
        for n in names {
            if n.is_empty() || n.len() > 128 || n.chars().any(char::is_control) {
                return Err(Error::refused(format!(
                    "{:?}: a set name, uid or version is 1 to 128 characters, none a control character",
                    n.escape_default().to_string()
                )));
            }
        }
        let dup = |v: Vec<String>| {
            let n = v.len();
            let set: std::collections::BTreeSet<String> = v.into_iter().collect();
            set.len() != n
        };
        if self.requires.len() > MAX_RULES
            || self.conflicts.len() > MAX_RULES
            || dup(self.requires.iter().map(|r| r.uid.clone()).collect())
            || dup(self.conflicts.iter().map(|c| c.to_string()).collect())
        {
            return Err(Error::refused(format!(
                "at most {MAX_RULES} requirements and {MAX_RULES} conflicts, each uid once"
            )));
        }
        Ok(())
    }
}

/// Record the assignment; returns the ECUs assigned and what the regulators said.
pub fn assign(dir: &Path, a: Assign) -> Result<Assigned> {
    a.rules.check()?;
    let s = Settings::load(dir)?;
    let supplier = s
        .suppliers
        .get(&a.supplier)
        .ok_or_else(|| Error::refused(format!("unknown supplier {:?}", a.supplier)))?;
    let req = reviewed(&s, &a)?;

    // The ECUs in question, each checked.
    // Director checks: an ECU refuses a release counter below the one it runs, so such an
    // assignment could only block every other update of the vehicle (updates are all or
    // nothing). The counter last reported by the vehicle decides (the report database).
    let mut db = super::reports::open_existing(dir)?;
    let not_below = |vin: &str,
                     serial: &str,
                     r: Option<&ota_fleet::store::Reported>|
     -> Result<()> {
        match r {
            Some(r) if req.release_counter < r.highest_release_counter => {
                let highest = if r.highest_release_counter > r.release_counter {
                    format!(
                        ", and release counter {} before that",
                        r.highest_release_counter
                    )
                } else {
                    String::new()
                };
                Err(Error::refused(format!(
                    "ECU {serial} of {vin} reported running {} {} (release counter {}{highest}): it refuses {} {} (release counter {}), and the vehicle's other updates would wait on it; assign a release at counter {} or above",
                    r.uid, r.version, r.release_counter, a.uid, a.version, req.release_counter, r.highest_release_counter
                )))
            }
            _ => Ok(()),
        }
    };
    let check = |vin: &str, serial: &str, hw: &str, aftermarket: bool| -> Result<()> {
        if aftermarket {
            return Err(Error::refused(format!(
                "ECU {serial} of {vin} is aftermarket: it receives no updates"
            )));
        }
        if !req.hardware_ids.iter().any(|h| h == hw) {
            return Err(Error::refused(format!(
                "{} {} is built for {:?}, not for ECU {serial} of {vin} (hardware id {hw})",
                a.uid, a.version, req.hardware_ids
            )));
        }
        if !supplier.serves(hw) {
            return Err(Error::refused(format!(
                "supplier {} is not delegated hardware id {hw} (it serves {:?})",
                a.supplier, supplier.hardware_ids
            )));
        }
        Ok(())
    };
    // An encrypted image: the vehicle must hold keys of the group of the ECU's hardware id.
    // The wraps it needs are named at every publish (`broadcast::plan`), from who is
    // entitled then.
    let encrypted = req.key_wraps.is_some();
    let keys_for = |vin: &str, hw: &str, leaves: &BTreeMap<String, u64>| -> Result<()> {
        if encrypted && !leaves.contains_key(&vehicle_group(hw)) {
            return Err(Error::refused(format!(
                "{} {} is encrypted and vehicle {vin} holds no decryption keys for hardware id {hw}: issue them with `oem vehicle decryption-keys --vin {vin} --out FILE` (--again if it holds keys already) and install the file in its gateway",
                a.uid, a.version
            )));
        }
        Ok(())
    };
    let assignment =
        |vin: &str, hw: &str, leaves: &BTreeMap<String, u64>| -> Result<EcuAssignment> {
            keys_for(vin, hw, leaves)?;
            Ok(EcuAssignment {
                hardware_id: hw.into(),
                supplier: a.supplier.clone(),
                uid: a.uid.clone(),
                version: a.version.clone(),
                release_counter: req.release_counter,
                target: req.image.target.clone(),
                length: req.image.length,
                hashes: req.image.hashes.clone(),
                key_wraps: None,
                compact_sha256: req.compact_sha256.clone(),
                instruction: None,
                set: a.rules.set.clone(),
                requires: a.rules.requires.clone(),
                conflicts: a.rules.conflicts.clone(),
            })
        };
    let mut ecus: Vec<(String, String, String)> = Vec::new(); // (vin, serial, hardware id)
                                                              // The regulators, asked before anything is written (once per hardware id concerned).
    let (mut approved_by, mut forced) = (Vec::new(), None);
    let mut ask = |hws: &mut dyn Iterator<Item = &str>| -> Result<()> {
        let hws: std::collections::BTreeSet<&str> = hws.collect();
        for hw in hws {
            let (names, why) = ask_regulators(dir, &s, req, hw, &a.approval)?;
            approved_by = names;
            forced = forced.take().or(why);
        }
        Ok(())
    };
    match &a.target {
        AssignTarget::Vehicle { .. } | AssignTarget::Ecus(_) => {
            let selection: Vec<(String, Option<String>)> = match &a.target {
                AssignTarget::Vehicle { vin, serial } => vec![(vin.clone(), serial.clone())],
                AssignTarget::Ecus(list) => list
                    .iter()
                    .map(|(v, s)| (v.clone(), Some(s.clone())))
                    .collect(),
                AssignTarget::HardwareId(_) => Vec::new(),
            };
            let vins: Vec<&str> = selection.iter().map(|(v, _)| v.as_str()).collect();
            let inv = Inventory::load_for(dir, &vins)?;
            for (vin, serial) in &selection {
                match serial {
                    Some(serial) => {
                        let e = inv.ecu(vin, serial)?;
                        check(vin, serial, &e.hardware_id, e.aftermarket)?;
                        ecus.push((vin.clone(), serial.clone(), e.hardware_id.clone()));
                    }
                    None => {
                        for (serial, e) in &inv.vehicle(vin)?.ecus {
                            if !e.aftermarket && req.hardware_ids.contains(&e.hardware_id) {
                                check(vin, serial, &e.hardware_id, e.aftermarket)?;
                                ecus.push((vin.clone(), serial.clone(), e.hardware_id.clone()));
                            }
                        }
                    }
                }
            }
            let pairs: Vec<(String, String)> = ecus
                .iter()
                .map(|(v, s, _)| (v.clone(), s.clone()))
                .collect();
            let reported = match db.as_mut() {
                Some(db) => super::reports::reported(db, &pairs)?,
                None => Default::default(),
            };
            for (vin, serial) in &pairs {
                not_below(vin, serial, reported.get(&(vin.clone(), serial.clone())))?;
            }
            if !ecus.is_empty() {
                let made = ecus
                    .iter()
                    .map(|(vin, serial, hw)| {
                        let leaves = &inv.vehicle(vin)?.decryption_leaves;
                        Ok((vin, serial, assignment(vin, hw, leaves)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut assignments = Assignments::load_for(dir, &vins)?;
                for (vin, serial, x) in made {
                    assignments
                        .vehicles
                        .entry(vin.clone())
                        .or_default()
                        .insert(serial.clone(), x);
                }
                let touched: std::collections::BTreeSet<&str> =
                    ecus.iter().map(|(v, _, _)| v.as_str()).collect();
                for vin in touched {
                    check_rules(&mut db, vin, &assignments.vehicles[vin])?;
                }
                // Every local check passed: the regulators last (the network), then write.
                ask(&mut ecus.iter().map(|(_, _, hw)| hw.as_str()))?;
                assignments.save(dir)?;
            }
        }
        AssignTarget::HardwareId(hw) => {
            // The same checks hold for every ECU with this hardware id: made once, before
            // anything is written. Then shard by shard, so memory stays bounded.
            if !req.hardware_ids.iter().any(|h| h == hw) {
                return Err(Error::refused(format!(
                    "{} {} is built for {:?}, not for hardware id {hw}",
                    a.uid, a.version, req.hardware_ids
                )));
            }
            if !supplier.serves(hw) {
                return Err(Error::refused(format!(
                    "supplier {} is not delegated hardware id {hw} (it serves {:?})",
                    a.supplier, supplier.hardware_ids
                )));
            }
            // An encrypted image: every vehicle it goes to must hold decryption keys,
            // checked over the whole fleet before any shard is written.
            // Every vehicle it goes to must hold decryption keys (an encrypted image) and run
            // no higher release counter: checked over the whole fleet before any shard is
            // written, so a refusal leaves every assignment as it was.
            if encrypted {
                for shard in store::shard_files(dir, store::INVENTORY_DIR)? {
                    let (inv, _) =
                        store::read_shard::<super::Vehicle>(dir, store::INVENTORY_DIR, &shard)?;
                    for (vin, v) in &inv {
                        for e in v.ecus.values() {
                            if &e.hardware_id == hw && !e.aftermarket {
                                keys_for(vin, hw, &v.decryption_leaves)?;
                            }
                        }
                    }
                }
            }
            ask(&mut std::iter::once(hw.as_str()))?;
            // The ECUs of this hardware id that reported a higher counter (an index lookup),
            // those the inventory still lists as updatable refuse the assignment.
            let above = match db.as_mut() {
                Some(db) => super::reports::running_above(db, hw, req.release_counter)?,
                None => Vec::new(),
            };
            for (vin, serial, r) in above {
                let inv = Inventory::load_for(dir, &[&vin])?;
                let listed = inv
                    .vehicles
                    .get(&vin)
                    .and_then(|v| v.ecus.get(&serial))
                    .is_some_and(|e| &e.hardware_id == hw && !e.aftermarket);
                if listed {
                    not_below(&vin, &serial, Some(&r))?;
                }
            }
            // Twice over the shards: first every vehicle's rules checked with the assignment in
            // place (nothing written), then written; a refusal leaves every shard as it was.
            for write in [false, true] {
                for shard in store::shard_files(dir, store::INVENTORY_DIR)? {
                    let (inv, _) =
                        store::read_shard::<super::Vehicle>(dir, store::INVENTORY_DIR, &shard)?;
                    let found: Vec<(String, String, &BTreeMap<String, u64>)> = inv
                        .iter()
                        .flat_map(|(vin, v)| {
                            v.ecus
                                .iter()
                                .filter(|(_, e)| &e.hardware_id == hw && !e.aftermarket)
                                .map(move |(serial, _)| {
                                    (vin.clone(), serial.clone(), &v.decryption_leaves)
                                })
                        })
                        .collect();
                    if found.is_empty() {
                        continue;
                    }
                    let vins: Vec<&str> = found.iter().map(|(v, _, _)| v.as_str()).collect();
                    let mut assignments = Assignments::load_for(dir, &vins)?;
                    for (vin, serial, leaves) in found {
                        let x = assignment(&vin, hw, leaves)?;
                        assignments
                            .vehicles
                            .entry(vin.clone())
                            .or_default()
                            .insert(serial.clone(), x);
                        if write {
                            ecus.push((vin, serial, hw.clone()));
                        }
                    }
                    if write {
                        assignments.save(dir)?;
                        continue;
                    }
                    for (vin, vehicle) in &assignments.vehicles {
                        check_rules(&mut db, vin, vehicle)?;
                    }
                }
            }
        }
    }
    if ecus.is_empty() {
        return Err(Error::refused(format!(
            "no ECU in the inventory matches; nothing assigned for {} {} (ECUs are selected by --vin VIN --ecu SERIAL: one ECU, by --vin VIN: every ECU of the vehicle the image fits, or by --hardware-id ID: every ECU of that hardware id in the fleet; aftermarket ECUs never)",
            a.uid, a.version
        )));
    }
    Ok(Assigned {
        ecus: ecus.into_iter().map(|(v, s, _)| (v, s)).collect(),
        approved_by,
        forced,
    })
}
