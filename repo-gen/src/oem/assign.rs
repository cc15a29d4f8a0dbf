//! Assigning images to ECUs (the paper's Mv). Only images the OEM has submitted for review
//! (and so verified against the supplier's signed manifest) can be assigned.

use super::{store, Assignments, Inventory, Settings};
use crate::error::{Error, Result};
use ota_crypt::receiver::vehicle_group;
use ota_metadata::documents::{EcuAssignment, ReviewRequest};
use std::collections::BTreeMap;
use std::path::Path;

/// Which ECUs an assignment is for.
pub enum AssignTarget {
    /// One vehicle: the ECU with `serial`, or every ECU the image fits.
    Vehicle { vin: String, serial: Option<String> },
    /// Every non-aftermarket ECU with this hardware id in the fleet.
    HardwareId(String),
}

pub struct Assign {
    pub target: AssignTarget,
    pub supplier: String,
    pub uid: String,
    pub version: String,
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

/// Record the assignment; returns the (VIN, serial) pairs assigned.
pub fn assign(dir: &Path, a: Assign) -> Result<Vec<(String, String)>> {
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
    let mut db = super::reports::open(dir)?;
    let not_below = |vin: &str,
                     serial: &str,
                     r: Option<&ota_fleet::store::Reported>|
     -> Result<()> {
        match r {
            Some(r) if req.release_counter < r.release_counter => Err(Error::refused(format!(
                "ECU {serial} of {vin} reported running {} {} (release counter {}): it refuses {} {} (release counter {}), and the vehicle's other updates would wait on it; assign a release at counter {} or above",
                r.uid, r.version, r.release_counter, a.uid, a.version, req.release_counter, r.release_counter
            ))),
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
            })
        };
    let mut ecus: Vec<(String, String, String)> = Vec::new(); // (vin, serial, hardware id)
    match &a.target {
        AssignTarget::Vehicle { vin, serial } => {
            let inv = Inventory::load_for(dir, &[vin])?;
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
            let pairs: Vec<(String, String)> = ecus
                .iter()
                .map(|(v, s, _)| (v.clone(), s.clone()))
                .collect();
            let reported = super::reports::reported(&mut db, &pairs)?;
            for (vin, serial) in &pairs {
                not_below(vin, serial, reported.get(&(vin.clone(), serial.clone())))?;
            }
            if !ecus.is_empty() {
                let leaves = &inv.vehicle(vin)?.decryption_leaves;
                let mut assignments = Assignments::load_for(dir, &[vin])?;
                for (vin, serial, hw) in &ecus {
                    let x = assignment(vin, hw, leaves)?;
                    assignments
                        .vehicles
                        .entry(vin.clone())
                        .or_default()
                        .insert(serial.clone(), x);
                }
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
            // The ECUs of this hardware id that reported a higher counter (an index lookup),
            // those the inventory still lists as updatable refuse the assignment.
            for (vin, serial, r) in super::reports::running_above(&mut db, hw, req.release_counter)?
            {
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
                    ecus.push((vin, serial, hw.clone()));
                }
                assignments.save(dir)?;
            }
        }
    }
    if ecus.is_empty() {
        return Err(Error::refused(format!(
            "no ECU in the inventory matches; nothing assigned for {} {} (ECUs are selected by --vin VIN --ecu SERIAL: one ECU, by --vin VIN: every ECU of the vehicle the image fits, or by --hardware-id ID: every ECU of that hardware id in the fleet; aftermarket ECUs never)",
            a.uid, a.version
        )));
    }
    Ok(ecus.into_iter().map(|(v, s, _)| (v, s)).collect())
}
