//! The vehicle inventory: which ECUs (serial, hardware id) each vehicle has. Kept in the OEM's
//! working directory as readable JSON shards ([`super::store`]), never published; assignments
//! are checked against it. A command about one vehicle reads and writes its shard only.

use super::claims::{self, Claim, Claims, Owner};
use super::{store, Assignments};
use crate::error::{Error, Result};
use ota_metadata::{names, Key};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EcuRecord {
    pub hardware_id: String,
    /// Fitted after manufacture by a third party: never assigned updates.
    #[serde(default)]
    pub aftermarket: bool,
    /// The ECU's public key, registered at the factory: its version reports must verify with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vehicle {
    pub ecus: BTreeMap<String, EcuRecord>,
    /// The vehicle's (gateway's) public key: version reports must be signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// Its leaf in each receiver group it was issued decryption keys for (group -> leaf;
    /// [`super::broadcast`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decryption_leaves: BTreeMap<String, u64>,
}

/// The vehicles of the shards loaded. `Inventory::default()` filled and saved replaces the
/// whole inventory (a bulk import).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    pub vehicles: BTreeMap<String, Vehicle>,
    scope: store::Scope,
}

impl Inventory {
    /// The whole fleet (O(fleet): for fleet-wide commands and tests).
    pub fn load(dir: &Path) -> Result<Self> {
        let (vehicles, scope) = store::load(dir, store::INVENTORY_DIR, None)?;
        Ok(Inventory { vehicles, scope })
    }
    /// The shards holding `vins`.
    pub fn load_for(dir: &Path, vins: &[&str]) -> Result<Self> {
        let (vehicles, scope) = store::load(dir, store::INVENTORY_DIR, Some(vins))?;
        Ok(Inventory { vehicles, scope })
    }
    /// Write back the shards that changed (marking them for the next publish), and stamp
    /// them in the serial and key index ([`claims`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let written = self.save_unstamped(dir)?;
        claims::record(dir, claims::Written::Inventory(&written))
    }
    /// [`Inventory::save`] without the stamps: for an import's writer threads, which stamp
    /// every shard once at the end.
    pub(crate) fn save_unstamped(&self, dir: &Path) -> Result<BTreeSet<String>> {
        store::save(dir, store::INVENTORY_DIR, &self.vehicles, &self.scope)
    }
    pub fn vehicle(&self, vin: &str) -> Result<&Vehicle> {
        self.vehicles.get(vin).ok_or_else(|| {
            Error::refused(format!(
                "unknown VIN {vin:?}: add it with `oem vehicle add`"
            ))
        })
    }
    pub fn ecu(&self, vin: &str, serial: &str) -> Result<&EcuRecord> {
        self.vehicle(vin)?.ecus.get(serial).ok_or_else(|| {
            Error::refused(format!("vehicle {vin} has no ECU with serial {serial:?}"))
        })
    }
}

/// `SERIAL:HARDWARE_ID` as given on the command line.
pub fn parse_ecu(spec: &str) -> Result<(String, String)> {
    let (serial, hw) = spec
        .split_once(':')
        .ok_or_else(|| Error::refused(format!("--ecu {spec:?}: expected SERIAL:HARDWARE_ID")))?;
    names::check_ecu_serial(serial)?;
    names::check_hardware_id(hw)?;
    Ok((serial.into(), hw.into()))
}

fn check_oem(dir: &Path) -> Result<()> {
    super::Settings::load(dir).map(|_| ())
}

pub fn vehicle_add(dir: &Path, vin: &str, ecus: &[String], aftermarket: &[String]) -> Result<()> {
    check_oem(dir)?;
    names::check_vin(vin)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    if inv.vehicles.contains_key(vin) {
        return Err(Error::refused(format!(
            "vehicle {vin} is already in the inventory"
        )));
    }
    let mut v = Vehicle::default();
    for spec in ecus.iter().chain(aftermarket) {
        let (serial, hardware_id) = parse_ecu(spec)?;
        let rec = EcuRecord {
            hardware_id,
            aftermarket: aftermarket.contains(spec),
            ..Default::default()
        };
        if v.ecus.insert(serial.clone(), rec).is_some() {
            return Err(Error::refused(format!(
                "ECU serial {serial} given twice for {vin}"
            )));
        }
    }
    // Its serials claimed first: no two vehicles hold one ECU.
    let wanted = claims::of_vehicle(vin, &v);
    let mut c = Claims::load_for(dir, wanted.iter().map(|(c, _)| c))?;
    for (claim, owner) in &wanted {
        c.claim(dir, claim, owner)?;
    }
    c.save(dir)?;
    inv.vehicles.insert(vin.into(), v);
    inv.save(dir)?;
    // Back in the fleet: no longer removed, and its history starts again now.
    let (mut removed, scope) = store::load::<String>(dir, store::REMOVED_DIR, Some(&[vin]))?;
    if removed.remove(vin).is_some() {
        super::reports::end_history(dir, &[vin], ota_metadata::DateTime::now().0)?;
        store::save(dir, store::REMOVED_DIR, &removed, &scope)?;
    }
    Ok(())
}

/// Take vehicle `vin` out of the fleet (scrapped, exported): its inventory entry and
/// assignments go, and a tombstone records that it went by a command, so the next publish
/// withdraws its assignments (a higher version with none) instead of refusing a state that lost
/// it. Adding it again later clears the tombstone.
pub fn vehicle_remove(dir: &Path, vin: &str, now: ota_metadata::DateTime) -> Result<()> {
    check_oem(dir)?;
    names::check_vin(vin)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let release = Release::load(dir, claims::of_vehicle(vin, inv.vehicle(vin)?))?;
    // Its decryption keys first: a vehicle leaving the fleet opens nothing published after.
    super::broadcast::exclude_vehicle(dir, vin, &inv.vehicle(vin)?.decryption_leaves)?;
    // The tombstone first: a crash after it leaves a vehicle still listed, which is safe.
    let (mut removed, scope) = store::load::<String>(dir, store::REMOVED_DIR, Some(&[vin]))?;
    removed.insert(vin.into(), now.to_string());
    store::save(dir, store::REMOVED_DIR, &removed, &scope)?;
    // Its report history ends: nothing it reported counts for a vehicle added again later.
    super::reports::end_history(dir, &[vin], now.0)?;
    let mut a = super::Assignments::load_for(dir, &[vin])?;
    a.vehicles.remove(vin);
    a.save(dir)?;
    inv.vehicles.remove(vin);
    inv.save(dir)?;
    // Its serials and keys free for others, once no record holds them.
    release.finish(dir)
}

/// Claims a command gives up: loaded before it writes anything (so an index that cannot be
/// made current stops the command before it changed a thing), released once the records no
/// longer hold them.
pub(crate) struct Release {
    claims: Claims,
    gone: Vec<(Claim, Owner)>,
}

impl Release {
    pub(crate) fn load(dir: &Path, gone: Vec<(Claim, Owner)>) -> Result<Self> {
        let claims = Claims::load_for(dir, gone.iter().map(|(c, _)| c))?;
        Ok(Release { claims, gone })
    }
    /// After the records were saved.
    pub(crate) fn finish(mut self, dir: &Path) -> Result<()> {
        for (claim, owner) in &self.gone {
            self.claims.release(dir, claim, owner)?;
        }
        self.claims.save(dir)
    }
}

/// Claim `claim` for `owner` (before the record holding it is saved).
pub(crate) fn claim_one(dir: &Path, claim: &Claim, owner: &Owner) -> Result<()> {
    let mut c = Claims::load_for(dir, [claim])?;
    c.claim(dir, claim, owner)?;
    c.save(dir)
}

pub fn ecu_add(dir: &Path, vin: &str, spec: &str, aftermarket: bool) -> Result<()> {
    check_oem(dir)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let (serial, hardware_id) = parse_ecu(spec)?;
    inv.vehicle(vin)?;
    let v = inv
        .vehicles
        .get_mut(vin)
        .ok_or_else(|| Error::refused(format!("unknown VIN {vin:?}")))?;
    if v.ecus.contains_key(&serial) {
        return Err(Error::refused(format!(
            "vehicle {vin} already has an ECU {serial}"
        )));
    }
    claim_one(dir, &Claim::serial(&serial), &Owner::vehicle(vin))?;
    v.ecus.insert(
        serial,
        EcuRecord {
            hardware_id,
            aftermarket,
            ..Default::default()
        },
    );
    inv.save(dir)
}

/// Remove an ECU and withdraw its assignment. Returns whether an assignment was withdrawn.
pub fn ecu_remove(dir: &Path, vin: &str, serial: &str) -> Result<bool> {
    check_oem(dir)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let release = Release::load(dir, ecu_claims(vin, serial, inv.ecu(vin, serial)?))?;
    let mut assignments = Assignments::load_for(dir, &[vin])?;
    let withdrawn = assignments
        .vehicles
        .get_mut(vin)
        .is_some_and(|a| a.remove(serial).is_some());
    if let Some(v) = inv.vehicles.get_mut(vin) {
        v.ecus.remove(serial);
        super::broadcast::drop_unentitled(dir, vin, v)?;
    }
    // Assignments first: an ECU must never be left assigned but absent from the inventory.
    assignments.save(dir)?;
    inv.save(dir)?;
    release.finish(dir)?;
    Ok(withdrawn)
}

/// Replace ECU `old` by `new_spec` (SERIAL:HARDWARE_ID). The assignment carries over when the
/// hardware id is the same (the image fits), and is withdrawn otherwise. Returns whether it
/// carried over.
pub fn ecu_replace(dir: &Path, vin: &str, old: &str, new_spec: &str) -> Result<bool> {
    check_oem(dir)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let old_rec = inv.ecu(vin, old)?.clone();
    let (serial, hardware_id) = parse_ecu(new_spec)?;
    if serial != old && inv.vehicle(vin)?.ecus.contains_key(&serial) {
        return Err(Error::refused(format!(
            "vehicle {vin} already has an ECU {serial}"
        )));
    }
    // The old part's key goes with it (the new one registers its own); its serial too, if
    // the new part has another.
    let mut gone = ecu_claims(vin, old, &old_rec);
    gone.retain(|(c, _)| *c != Claim::serial(&serial));
    let release = Release::load(dir, gone)?;
    if serial != old {
        claim_one(dir, &Claim::serial(&serial), &Owner::vehicle(vin))?;
    }
    let mut assignments = Assignments::load_for(dir, &[vin])?;
    let mut carried = false;
    if let Some(a) = assignments.vehicles.get_mut(vin) {
        if let Some(e) = a.remove(old) {
            if e.hardware_id == hardware_id {
                a.insert(serial.clone(), e);
                carried = true;
            }
        }
    }
    if let Some(v) = inv.vehicles.get_mut(vin) {
        v.ecus.remove(old);
        v.ecus.insert(
            serial.clone(),
            // A new part: its key must be registered anew (`oem ecu key`).
            EcuRecord {
                hardware_id,
                aftermarket: old_rec.aftermarket,
                ..Default::default()
            },
        );
        super::broadcast::drop_unentitled(dir, vin, v)?;
    }
    assignments.save(dir)?;
    inv.save(dir)?;
    release.finish(dir)?;
    Ok(carried)
}

/// The claims ECU `serial` of `vin` holds (its serial, and its key if registered).
fn ecu_claims(vin: &str, serial: &str, rec: &EcuRecord) -> Vec<(Claim, Owner)> {
    let mut out = vec![(Claim::serial(serial), Owner::vehicle(vin))];
    if let Some(k) = &rec.key {
        out.push((Claim::key(k), Owner::ecu(vin, serial)));
    }
    out
}
