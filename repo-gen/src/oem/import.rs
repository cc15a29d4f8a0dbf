//! `oem vehicle import`: the fleet from a CSV file, shard by shard, all or nothing.
//!
//! ```text
//! # vin,ecus,aftermarket                     (a header or comment lines are skipped)
//! WDD2130421A000001,BRK-1:BRAKE-A;HU-1:HU-GEN3,
//! WDD2130421A000002,BRK-2:BRAKE-A,DASHCAM-9:AFTER-1
//! ```
//! Every line is checked (VIN, serials, hardware ids, duplicates within the file and against
//! the inventory) before anything is written. A vehicle already in the inventory with the same
//! ECUs is left as it is, so importing the same file again changes nothing; one with other ECUs
//! is refused (`oem ecu add/remove/replace` change a vehicle's ECUs).

use super::inventory::{parse_ecu, EcuRecord, Inventory, Vehicle};
use super::store;
use crate::error::{Error, Result};
use ota_metadata::names;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Largest import file read.
pub const MAX_FILE: u64 = 1 << 30;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: usize,
    pub unchanged: usize,
}

/// Parse the CSV text; every line checked, none written. Errors name the line.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vehicle>> {
    let mut out: BTreeMap<String, Vehicle> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if line.is_empty() || line.starts_with('#') || (n == 1 && line.starts_with("vin,")) {
            continue;
        }
        let bad = |why: String| Error::refused(format!("line {n}: {why}"));
        let mut cols = line.split(',');
        let vin = cols.next().unwrap_or_default().trim();
        let ecus = cols.next().unwrap_or_default().trim();
        let after = cols.next().unwrap_or_default().trim();
        if cols.next().is_some() {
            return Err(bad("more than three columns (vin,ecus,aftermarket)".into()));
        }
        names::check_vin(vin).map_err(|e| bad(e.to_string()))?;
        let mut v = Vehicle::default();
        for (specs, aftermarket) in [(ecus, false), (after, true)] {
            for spec in specs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let (serial, hardware_id) = parse_ecu(spec).map_err(|e| bad(e.to_string()))?;
                let rec = EcuRecord {
                    hardware_id,
                    aftermarket,
                    ..Default::default()
                };
                if v.ecus.insert(serial.clone(), rec).is_some() {
                    return Err(bad(format!("ECU serial {serial} given twice for {vin}")));
                }
            }
        }
        if v.ecus.is_empty() {
            return Err(bad(format!("vehicle {vin} has no ECU")));
        }
        if out.insert(vin.to_string(), v).is_some() {
            return Err(bad(format!("vehicle {vin} is in the file twice")));
        }
    }
    Ok(out)
}

/// The same ECUs (serials, hardware ids, aftermarket), whatever was reported since.
fn same_ecus(a: &Vehicle, b: &Vehicle) -> bool {
    a.ecus.len() == b.ecus.len()
        && a.ecus.iter().zip(&b.ecus).all(|((sa, x), (sb, y))| {
            sa == sb && x.hardware_id == y.hardware_id && x.aftermarket == y.aftermarket
        })
}

/// Import `vehicles` into the inventory of `dir`: checked whole, then written shard by shard.
pub fn import(dir: &Path, vehicles: BTreeMap<String, Vehicle>) -> Result<Imported> {
    super::Settings::load(dir)?;
    let fleet = super::privacy::fleet_secret(dir)?;
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for vin in vehicles.keys() {
        by_shard
            .entry(store::shard_of(&fleet, vin))
            .or_default()
            .push(vin.clone());
    }
    // Checked against the inventory first: nothing is written unless every line fits.
    let mut new: BTreeSet<&str> = BTreeSet::new();
    let mut unchanged = 0;
    for vins in by_shard.values() {
        let refs: Vec<&str> = vins.iter().map(String::as_str).collect();
        let inv = Inventory::load_for(dir, &refs)?;
        for vin in vins {
            match inv.vehicles.get(vin) {
                None => {
                    new.insert(vin);
                }
                Some(held) if same_ecus(held, &vehicles[vin]) => unchanged += 1,
                Some(_) => {
                    return Err(Error::refused(format!(
                        "vehicle {vin} is in the inventory with other ECUs: nothing imported (change its ECUs with `oem ecu add/remove/replace`)"
                    )))
                }
            }
        }
    }
    for vins in by_shard.values() {
        let added: Vec<&str> = vins
            .iter()
            .map(String::as_str)
            .filter(|v| new.contains(v))
            .collect();
        if added.is_empty() {
            continue;
        }
        let mut inv = Inventory::load_for(dir, &added)?;
        for vin in &added {
            inv.vehicles
                .insert((*vin).to_string(), vehicles[*vin].clone());
        }
        inv.save(dir)?;
        // Back in the fleet: no longer removed.
        let (mut removed, scope) = store::load::<String>(dir, store::REMOVED_DIR, Some(&added))?;
        if added.iter().any(|v| removed.remove(*v).is_some()) {
            store::save(dir, store::REMOVED_DIR, &removed, &scope)?;
        }
    }
    Ok(Imported {
        added: new.len(),
        unchanged,
    })
}

/// [`parse`] the file at `path`, then [`import`] it.
pub fn import_file(dir: &Path, path: &Path) -> Result<Imported> {
    let bytes = crate::fsutil::read_bounded(path, MAX_FILE)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Config {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    let vehicles = parse(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    import(dir, vehicles)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lines_are_checked_and_named() {
        let ok = parse("vin,ecus,aftermarket\n# comment\nVIN1,S1:BRAKE-A;S2:HU-A,X1:AFTER\n\nVIN2,S3:BRAKE-A\n")
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok["VIN1"].ecus["X1"].aftermarket);
        assert!(!ok["VIN1"].ecus["S1"].aftermarket);
        for (text, line) in [
            ("VIN1,S1:BRAKE-A\nVIN1,S2:BRAKE-A\n", "line 2"),
            ("VIN1,S1:BRAKE-A;S1:HU-A\n", "line 1"),
            ("VIN1,S1\n", "line 1"),
            ("VIN1,\n", "line 1"),
            ("VIN1,S1:B,,extra\n", "line 1"),
            ("VIN 1,S1:B\n", "line 1"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(line), "{text:?}: {err}");
        }
    }
}
