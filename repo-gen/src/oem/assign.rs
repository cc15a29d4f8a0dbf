//! Assigning images to ECUs (the paper's Mv). Only images the OEM has submitted for review
//! (and so verified against the supplier's signed manifest) can be assigned.

use super::{store, Assignments, Inventory, Settings};
use crate::error::{AssignRefusal, Error, Result};
use crate::fsutil;
use ota_crypt::receiver::vehicle_group;
use ota_metadata::documents::{
    unmet, Conflict, EcuAssignment, Requirement, ReviewRequest, SupplierEntry, VehicleImages,
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
        .find(|r| {
            r.image.supplier == a.supplier && r.image.uid == a.uid && r.image.version == a.version
        })
        .ok_or_else(|| {
            AssignRefusal::NotSubmitted {
                supplier: a.supplier.clone(),
                uid: a.uid.clone(),
                version: a.version.clone(),
            }
            .into()
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

/// The assignment of the reviewed release `req` to an ECU of hardware id `hw`, with no set,
/// requirement or conflict; its key wraps and instruction are added at publish.
fn assignment_of(req: &ReviewRequest, hw: &str) -> EcuAssignment {
    EcuAssignment {
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
    }
}

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
    let probe = assignment_of(req, hw);
    let ecu = walk::Ecu {
        serial: "(director check)".into(),
        hardware_id: hw.into(),
    };
    let staging = tempfile::tempdir_in(dir).map_err(Error::io(dir))?;
    Ok(Some(
        walk::check_image(&mut repos, &master, &ecu, &probe, None, staging.path())
            .and_then(|checked| {
                walk::check_attestations_bundle(&mut repos, &master, &checked.release)
            })
            .map(|(approving, _bundle)| approving),
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
            Err(AssignRefusal::Vetoed {
                reason: e.to_string(),
            }
            .into())
        }
        Err(e)
            if *force
                && matches!(
                    e.check,
                    Check::NotApproved | Check::RegulatorUnreachable | Check::SupplierMetadata
                ) =>
        {
            if let Some(veto) = remembered_veto(&cache, &release)? {
                return Err(AssignRefusal::VetoedBefore {
                    reason: e.to_string(),
                    release,
                    veto,
                }
                .into());
            }
            Ok((Vec::new(), Some(e.to_string())))
        }
        Err(e)
            if matches!(
                e.check,
                Check::NotApproved | Check::RegulatorUnreachable | Check::SupplierMetadata
            ) =>
        {
            Err(AssignRefusal::NotApproved {
                reason: e.to_string(),
                uid: req.image.uid.clone(),
                version: req.image.version.clone(),
            }
            .into())
        }
        Err(e) => Err(AssignRefusal::WalkRefused {
            reason: e.to_string(),
        }
        .into()),
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
            return Err(AssignRefusal::RulesUnmet {
                vin: vin.to_string(),
                serial: serial.clone(),
                why: why.to_string(),
            }
            .into());
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
                return Err(AssignRefusal::RuleName { name: n.clone() }.into());
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
            return Err(AssignRefusal::TooManyRules { max: MAX_RULES }.into());
        }
        Ok(())
    }
}

/// Record the assignment; returns the ECUs assigned and what the regulators said.
///
/// The procedure: the rules the assignment carries are well formed → the supplier is known
/// and the release was submitted for review (so verified against the supplier's signed
/// manifest) → the ECUs are selected and each checked (not aftermarket, the image's hardware
/// id, the supplier's delegation, decryption keys, the release counter it reported, the
/// vehicle's requirements and conflicts) → the regulators are asked → the assignment is
/// written. Nothing is written unless every check passed.
pub fn assign(dir: &Path, a: Assign) -> Result<Assigned> {
    a.rules.check()?;
    let s = Settings::load(dir)?;
    let supplier = s
        .suppliers
        .get(&a.supplier)
        .ok_or_else(|| AssignRefusal::UnknownSupplier {
            supplier: a.supplier.clone(),
        })?;
    let req = reviewed(&s, &a)?;
    // The counter last reported by the vehicle decides (the report database).
    let db = super::reports::open_existing(dir)?;
    let mut job = Job {
        dir,
        a: &a,
        s: &s,
        supplier,
        req,
        db,
        approved_by: Vec::new(),
        forced: None,
    };
    let ecus = match &a.target {
        AssignTarget::Vehicle { .. } | AssignTarget::Ecus(_) => job.assign_selected()?,
        AssignTarget::HardwareId(hw) => job.assign_hardware_id(hw)?,
    };
    if ecus.is_empty() {
        return Err(AssignRefusal::NothingMatches {
            uid: a.uid.clone(),
            version: a.version.clone(),
        }
        .into());
    }
    Ok(Assigned {
        ecus: ecus.into_iter().map(|(v, s, _)| (v, s)).collect(),
        approved_by: job.approved_by,
        forced: job.forced,
    })
}

/// An ECU selected for the assignment: (VIN, serial, hardware id).
type Selected = (String, String, String);

/// One `oem assign` under way: the request, the release it names (as submitted for review),
/// its supplier, the report database, and what the regulators said once asked.
struct Job<'a> {
    dir: &'a Path,
    a: &'a Assign,
    s: &'a Settings,
    supplier: &'a SupplierEntry,
    req: &'a ReviewRequest,
    db: Option<ota_fleet::Db>,
    approved_by: Vec<String>,
    forced: Option<String>,
}

impl Job<'_> {
    /// One vehicle (one ECU, or every ECU of it the image fits) or a rollout stage's ECUs:
    /// selected and checked one by one, then against the release counters they reported, then
    /// every touched vehicle's rules with the assignments in place. Every local check passed:
    /// the regulators last (the network), then written.
    fn assign_selected(&mut self) -> Result<Vec<Selected>> {
        let selection = self.selection();
        let vins: Vec<&str> = selection.iter().map(|(v, _)| v.as_str()).collect();
        let inv = Inventory::load_for(self.dir, &vins)?;
        let ecus = self.select(&inv, &selection)?;
        self.check_reported(&ecus)?;
        if !ecus.is_empty() {
            let assignments = self.assignments_in_place(&inv, &vins, &ecus)?;
            self.ask(ecus.iter().map(|(_, _, hw)| hw.as_str()))?;
            assignments.save(self.dir)?;
        }
        Ok(ecus)
    }

    /// (VIN, serial) of each ECU named, or (VIN, `None`) for every ECU of a vehicle.
    fn selection(&self) -> Vec<(String, Option<String>)> {
        match &self.a.target {
            AssignTarget::Vehicle { vin, serial } => vec![(vin.clone(), serial.clone())],
            AssignTarget::Ecus(list) => list
                .iter()
                .map(|(v, s)| (v.clone(), Some(s.clone())))
                .collect(),
            AssignTarget::HardwareId(_) => Vec::new(),
        }
    }

    /// The ECUs selected, each checked: an ECU named must take the release (else refused); of
    /// a whole vehicle, the ECUs the image fits (not aftermarket, one of its hardware ids).
    fn select(
        &self,
        inv: &Inventory,
        selection: &[(String, Option<String>)],
    ) -> Result<Vec<Selected>> {
        let mut ecus = Vec::new();
        for (vin, serial) in selection {
            match serial {
                Some(serial) => {
                    let e = inv.ecu(vin, serial)?;
                    self.check_ecu(vin, serial, &e.hardware_id, e.aftermarket)?;
                    ecus.push((vin.clone(), serial.clone(), e.hardware_id.clone()));
                }
                None => {
                    for (serial, e) in &inv.vehicle(vin)?.ecus {
                        if !e.aftermarket && self.req.hardware_ids.contains(&e.hardware_id) {
                            self.check_ecu(vin, serial, &e.hardware_id, e.aftermarket)?;
                            ecus.push((vin.clone(), serial.clone(), e.hardware_id.clone()));
                        }
                    }
                }
            }
        }
        Ok(ecus)
    }

    /// An ECU can take the release: not aftermarket (it receives no updates), the image built
    /// for its hardware id, and the supplier delegated that hardware id (vehicles verify the
    /// image through that delegation).
    fn check_ecu(&self, vin: &str, serial: &str, hw: &str, aftermarket: bool) -> Result<()> {
        let (a, req) = (self.a, self.req);
        if aftermarket {
            return Err(AssignRefusal::Aftermarket {
                vin: vin.into(),
                serial: serial.into(),
            }
            .into());
        }
        if !req.hardware_ids.iter().any(|h| h == hw) {
            return Err(AssignRefusal::WrongHardwareId {
                uid: a.uid.clone(),
                version: a.version.clone(),
                image_hw: req.hardware_ids.clone(),
                vin: vin.into(),
                serial: serial.into(),
                ecu_hw: hw.into(),
            }
            .into());
        }
        self.check_delegated(hw)
    }

    /// The supplier is delegated hardware id `hw`: vehicles verify the image through that
    /// delegation, so they would refuse it for another hardware id.
    fn check_delegated(&self, hw: &str) -> Result<()> {
        if !self.supplier.serves(hw) {
            return Err(AssignRefusal::NotDelegated {
                supplier: self.a.supplier.clone(),
                hw: hw.into(),
                serves: self.supplier.hardware_ids.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// The ECUs selected against the release counters they last reported (the report
    /// database), each refused if it runs a higher one.
    fn check_reported(&mut self, ecus: &[Selected]) -> Result<()> {
        let pairs: Vec<(String, String)> = ecus
            .iter()
            .map(|(v, s, _)| (v.clone(), s.clone()))
            .collect();
        let reported = match self.db.as_mut() {
            Some(db) => super::reports::reported(db, &pairs)?,
            None => Default::default(),
        };
        for (vin, serial) in &pairs {
            self.check_not_below(vin, serial, reported.get(&(vin.clone(), serial.clone())))?;
        }
        Ok(())
    }

    /// Director check: an ECU refuses a release counter below the highest it has run, so such
    /// an assignment could only block every other update of the vehicle (updates are all or
    /// nothing). `r`: what the ECU last reported, if it did.
    fn check_not_below(
        &self,
        vin: &str,
        serial: &str,
        r: Option<&ota_fleet::store::Reported>,
    ) -> Result<()> {
        let (a, req) = (self.a, self.req);
        match r {
            Some(r) if req.release_counter < r.highest_release_counter => {
                Err(AssignRefusal::BelowReported {
                    vin: vin.into(),
                    serial: serial.into(),
                    running_uid: r.uid.clone(),
                    running_version: r.version.clone(),
                    running_counter: r.release_counter,
                    highest: r.highest_release_counter,
                    uid: a.uid.clone(),
                    version: a.version.clone(),
                    counter: req.release_counter,
                }
                .into())
            }
            _ => Ok(()),
        }
    }

    /// An encrypted image: the vehicle must hold keys of the group of the ECU's hardware id.
    /// The wraps it needs are named at every publish (`broadcast::plan`), from who is entitled
    /// then.
    fn check_keys(&self, vin: &str, hw: &str, leaves: &BTreeMap<String, u64>) -> Result<()> {
        if self.req.key_wraps.is_some() && !leaves.contains_key(&vehicle_group(hw)) {
            return Err(AssignRefusal::NoDecryptionKeys {
                uid: self.a.uid.clone(),
                version: self.a.version.clone(),
                vin: vin.into(),
                hw: hw.into(),
            }
            .into());
        }
        Ok(())
    }

    /// The assignment of the release to an ECU of hardware id `hw` in `vin` (whose decryption
    /// keys are `leaves`), once its keys are checked.
    fn assignment(
        &self,
        vin: &str,
        hw: &str,
        leaves: &BTreeMap<String, u64>,
    ) -> Result<EcuAssignment> {
        self.check_keys(vin, hw, leaves)?;
        let rules = &self.a.rules;
        Ok(EcuAssignment {
            set: rules.set.clone(),
            requires: rules.requires.clone(),
            conflicts: rules.conflicts.clone(),
            ..assignment_of(self.req, hw)
        })
    }

    /// The selected ECUs' assignments made and put in place over their vehicles' current
    /// ones, and every touched vehicle's requirements and conflicts checked on the result.
    /// Nothing written: the caller saves what is returned.
    fn assignments_in_place(
        &mut self,
        inv: &Inventory,
        vins: &[&str],
        ecus: &[Selected],
    ) -> Result<Assignments> {
        let made = ecus
            .iter()
            .map(|(vin, serial, hw)| {
                let leaves = &inv.vehicle(vin)?.decryption_leaves;
                Ok((vin, serial, self.assignment(vin, hw, leaves)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut assignments = Assignments::load_for(self.dir, vins)?;
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
            check_rules(&mut self.db, vin, &assignments.vehicles[vin])?;
        }
        Ok(assignments)
    }

    /// The regulators, asked before anything is written, once per hardware id concerned: the
    /// approving regulators (of the last asked), and why a release was assigned ahead of
    /// approval with --force (the first such reason).
    fn ask<'h>(&mut self, hws: impl Iterator<Item = &'h str>) -> Result<()> {
        let hws: std::collections::BTreeSet<&str> = hws.collect();
        for hw in hws {
            let (names, why) = ask_regulators(self.dir, self.s, self.req, hw, &self.a.approval)?;
            self.approved_by = names;
            self.forced = self.forced.take().or(why);
        }
        Ok(())
    }

    /// Every non-aftermarket ECU of hardware id `hw` in the fleet. The same checks hold for
    /// every such ECU: made once, and over the whole fleet, before anything is written; then
    /// shard by shard, so memory stays bounded.
    fn assign_hardware_id(&mut self, hw: &str) -> Result<Vec<Selected>> {
        let (a, req) = (self.a, self.req);
        if !req.hardware_ids.iter().any(|h| h == hw) {
            return Err(AssignRefusal::NotForHardwareId {
                uid: a.uid.clone(),
                version: a.version.clone(),
                image_hw: req.hardware_ids.clone(),
                hw: hw.into(),
            }
            .into());
        }
        self.check_delegated(hw)?;
        self.check_fleet_keys(hw)?;
        self.ask(std::iter::once(hw))?;
        self.check_running_above(hw)?;
        // Twice over the shards: first every vehicle's rules checked with the assignment in
        // place (nothing written), then written; a refusal leaves every shard as it was.
        let mut ecus = Vec::new();
        for write in [false, true] {
            for shard in store::shard_files(self.dir, store::INVENTORY_DIR)? {
                self.assign_shard(hw, &shard, write, &mut ecus)?;
            }
        }
        Ok(ecus)
    }

    /// An encrypted image: every vehicle it goes to must hold decryption keys, checked over
    /// the whole fleet before any shard is written, so a refusal leaves every assignment as it
    /// was.
    fn check_fleet_keys(&self, hw: &str) -> Result<()> {
        if self.req.key_wraps.is_none() {
            return Ok(());
        }
        for shard in store::shard_files(self.dir, store::INVENTORY_DIR)? {
            let (inv, _) =
                store::read_shard::<super::Vehicle>(self.dir, store::INVENTORY_DIR, &shard)?;
            for (vin, v) in &inv {
                for e in v.ecus.values() {
                    if e.hardware_id == hw && !e.aftermarket {
                        self.check_keys(vin, hw, &v.decryption_leaves)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The ECUs of hardware id `hw` that reported a higher release counter (an index lookup):
    /// those the inventory still lists as updatable refuse the assignment.
    fn check_running_above(&mut self, hw: &str) -> Result<()> {
        let above = match self.db.as_mut() {
            Some(db) => super::reports::running_above(db, hw, self.req.release_counter)?,
            None => Vec::new(),
        };
        for (vin, serial, r) in above {
            let inv = Inventory::load_for(self.dir, &[&vin])?;
            let listed = inv
                .vehicles
                .get(&vin)
                .and_then(|v| v.ecus.get(&serial))
                .is_some_and(|e| e.hardware_id == hw && !e.aftermarket);
            if listed {
                self.check_not_below(&vin, &serial, Some(&r))?;
            }
        }
        Ok(())
    }

    /// One inventory shard's ECUs of hardware id `hw`, their assignments put in place: with
    /// `write` false, every vehicle's rules checked on the result (nothing written); with
    /// `write`, the shard's assignments written and its ECUs added to `ecus`.
    fn assign_shard(
        &mut self,
        hw: &str,
        shard: &str,
        write: bool,
        ecus: &mut Vec<Selected>,
    ) -> Result<()> {
        let (inv, _) = store::read_shard::<super::Vehicle>(self.dir, store::INVENTORY_DIR, shard)?;
        let found: Vec<(String, String, &BTreeMap<String, u64>)> = inv
            .iter()
            .flat_map(|(vin, v)| {
                v.ecus
                    .iter()
                    .filter(|(_, e)| e.hardware_id == hw && !e.aftermarket)
                    .map(move |(serial, _)| (vin.clone(), serial.clone(), &v.decryption_leaves))
            })
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        let vins: Vec<&str> = found.iter().map(|(v, _, _)| v.as_str()).collect();
        let mut assignments = Assignments::load_for(self.dir, &vins)?;
        for (vin, serial, leaves) in found {
            let x = self.assignment(&vin, hw, leaves)?;
            assignments
                .vehicles
                .entry(vin.clone())
                .or_default()
                .insert(serial.clone(), x);
            if write {
                ecus.push((vin, serial, hw.to_string()));
            }
        }
        if write {
            return assignments.save(self.dir);
        }
        for (vin, vehicle) in &assignments.vehicles {
            check_rules(&mut self.db, vin, vehicle)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules are checked first, before the working directory is read: a set name with a
    /// control character is refused as such, whatever the directory holds.
    #[test]
    fn a_set_name_with_a_control_character_is_refused_as_a_rule_name() {
        let a = Assign {
            target: AssignTarget::HardwareId("ecu-a".into()),
            supplier: "acme".into(),
            uid: "brake".into(),
            version: "1.0".into(),
            approval: Approval::NotAsked,
            rules: Rules {
                set: Some("a\nb".into()),
                ..Rules::default()
            },
        };
        let e = assign(Path::new("/nonexistent"), a).unwrap_err();
        match e {
            Error::Assign(r) => match *r {
                AssignRefusal::RuleName { ref name } => assert_eq!(name, "a\nb"),
                ref other => panic!("another refusal: {other:?}"),
            },
            other => panic!("not an assign refusal: {other:?}"),
        }
    }
}
