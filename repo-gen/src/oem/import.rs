//! `oem vehicle import`: the fleet from a CSV file, shard by shard, all or nothing.
//!
//! ```text
//! # vin,ecus,aftermarket,vehicle_key          (a header or comment lines are skipped)
//! WDD2130421A000001,BRK-1:BRAKE-A:MIIBIjAN…;HU-1:HU-GEN3,,MIIBIjAN…
//! WDD2130421A000002,BRK-2:BRAKE-A,DASHCAM-9:AFTER-1
//! ```
//! An ECU is `SERIAL:HARDWARE_ID`, or `SERIAL:HARDWARE_ID:KEY` with the public key that signs
//! its reports; the fourth column is the vehicle's (gateway's) key. A key is the base64 body of
//! its public-key PEM on one line (`openssl pkey -pubin -outform DER | base64 -w0`), as a
//! factory's database exports it: RSA, checked like `oem vehicle key` checks a file.
//!
//! Every line is checked (VIN, serials, hardware ids, keys, duplicates within the file and
//! against the inventory) before anything is written; lines are parsed on every core (a key
//! takes microseconds, a million vehicles have millions). A vehicle already in the inventory
//! with the same ECUs is left as it is, so importing the same file again changes nothing; its
//! keys are added where none is registered, and a key other than the registered one is refused
//! (a new key is registered with `oem vehicle key`/`oem ecu key`, which say what it resets).
//! One with other ECUs is refused (`oem ecu add/remove/replace` change a vehicle's ECUs).

use super::claims;
use super::inventory::{parse_ecu, EcuRecord, Inventory, Vehicle};
use super::store;
use crate::error::{Error, Result};
use ota_metadata::keys::Key;
use ota_metadata::names;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Largest import file read.
pub const MAX_FILE: u64 = 1 << 30;

/// Longest key column accepted (an RSA-8192 key's base64 is about 1,400 characters).
const MAX_KEY_TEXT: usize = 4096;

/// Longest line accepted: a vehicle with 64 ECUs, each with a key, fits many times over. A
/// longer line is refused by its length before any of it is parsed or echoed.
const MAX_LINE: usize = 1 << 20;

/// At most this much of a wrong value is quoted back in an error.
const QUOTE: usize = 64;

/// `value` as an error quotes it: the first [`QUOTE`] characters.
fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE) {
        Some((end, _)) => format!("{}… ({} bytes)", &value[..end], value.len()),
        None => value.to_string(),
    }
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: usize,
    pub unchanged: usize,
    /// Vehicles already there whose keys (none registered before) the file gave.
    pub keyed: usize,
}

/// Some lines parsed (line number, VIN, vehicle), or the first wrong one (number, why).
type Part = std::result::Result<Vec<(usize, String, Vehicle)>, (usize, String)>;

/// Parse the CSV text; every line checked, none written. Errors name the line (the first
/// wrong line of the file, whichever core found it).
pub fn parse(text: &str) -> Result<BTreeMap<String, Vehicle>> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = lines.len().div_ceil(cores).max(1);
    let parsed: Vec<Part> = std::thread::scope(|s| {
        let workers: Vec<_> = lines
            .chunks(chunk)
            .map(|part| s.spawn(move || part_of(part)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err((0, "a parser thread failed".into())))
            })
            .collect()
    });
    if let Some((n, why)) = parsed
        .iter()
        .filter_map(|p| p.as_ref().err())
        .min_by_key(|(n, _)| *n)
    {
        return Err(Error::refused(format!("line {n}: {why}")));
    }
    let mut out: BTreeMap<String, Vehicle> = BTreeMap::new();
    for (n, vin, v) in parsed.into_iter().flatten().flatten() {
        if out.contains_key(&vin) {
            return Err(Error::refused(format!(
                "line {n}: vehicle {vin} is in the file twice"
            )));
        }
        out.insert(vin, v);
    }
    Ok(out)
}

/// Some lines of the file, parsed; or the first wrong one (its number, why).
fn part_of(lines: &[(usize, &str)]) -> Part {
    let mut out = Vec::new();
    for &(n, raw) in lines {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || (n == 1 && line.starts_with("vin,")) {
            continue;
        }
        if line.len() > MAX_LINE {
            return Err((
                n,
                format!("{} bytes long; a line is at most {MAX_LINE}", line.len()),
            ));
        }
        let (vin, v) = line_of(line).map_err(|why| (n, why))?;
        out.push((n, vin, v));
    }
    Ok(out)
}

/// One line: `vin,ecus,aftermarket,vehicle_key`.
fn line_of(line: &str) -> std::result::Result<(String, Vehicle), String> {
    let mut cols = line.split(',');
    let vin = cols.next().unwrap_or_default().trim();
    let ecus = cols.next().unwrap_or_default().trim();
    let after = cols.next().unwrap_or_default().trim();
    let vehicle_key = cols.next().unwrap_or_default().trim();
    if cols.next().is_some() {
        return Err("more than four columns (vin,ecus,aftermarket,vehicle_key)".into());
    }
    if vin.len() > QUOTE {
        return Err(format!("VIN {}: longer than any VIN", quote(vin)));
    }
    names::check_vin(vin).map_err(|e| e.to_string())?;
    let mut v = Vehicle::default();
    for (specs, aftermarket) in [(ecus, false), (after, true)] {
        for spec in specs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (ecu, key) = match spec.splitn(3, ':').nth(2) {
                Some(key) => (&spec[..spec.len() - key.len() - 1], Some(key)),
                None => (spec, None),
            };
            if ecu.len() > 2 * QUOTE + 1 {
                return Err(format!(
                    "ECU {}: longer than a serial and a hardware id",
                    quote(ecu)
                ));
            }
            let (serial, hardware_id) = parse_ecu(ecu).map_err(|e| e.to_string())?;
            let key = key
                .map(|k| key_of(k).map_err(|e| format!("the key of ECU {serial}: {e}")))
                .transpose()?;
            let rec = EcuRecord {
                hardware_id,
                aftermarket,
                key,
            };
            if v.ecus.insert(serial.clone(), rec).is_some() {
                return Err(format!("ECU serial {serial} given twice for {vin}"));
            }
        }
    }
    if v.ecus.is_empty() {
        return Err(format!("vehicle {vin} has no ECU"));
    }
    if !vehicle_key.is_empty() {
        v.key = Some(key_of(vehicle_key).map_err(|e| format!("the vehicle's key: {e}"))?);
    }
    Ok((vin.to_string(), v))
}

/// A key column: the base64 body of a public-key PEM.
fn key_of(text: &str) -> std::result::Result<Key, String> {
    if text.len() > MAX_KEY_TEXT {
        return Err(format!("longer than {MAX_KEY_TEXT} characters"));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err("not base64 (the body of a public-key PEM on one line)".into());
    }
    let mut pem = String::with_capacity(text.len() + 64);
    pem.push_str("-----BEGIN PUBLIC KEY-----\n");
    for part in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(part).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    super::report::public_key_pem(&pem)
}

/// The same ECUs (serials, hardware ids, aftermarket), whatever was reported since.
fn same_ecus(a: &Vehicle, b: &Vehicle) -> bool {
    a.ecus.len() == b.ecus.len()
        && a.ecus.iter().zip(&b.ecus).all(|((sa, x), (sb, y))| {
            sa == sb && x.hardware_id == y.hardware_id && x.aftermarket == y.aftermarket
        })
}

/// What the file does to a vehicle already in the inventory.
enum Known {
    Unchanged,
    /// The file gives keys where none is registered.
    Keyed,
}

/// Compare a vehicle of the file with the inventory's record of it.
fn against_held(vin: &str, held: &Vehicle, file: &Vehicle) -> Result<Known> {
    if !same_ecus(held, file) {
        return Err(Error::refused(format!(
            "vehicle {vin} is in the inventory with other ECUs: nothing imported (change its ECUs with `oem ecu add/remove/replace`)"
        )));
    }
    let mut keyed = false;
    let pairs = std::iter::once((None, &held.key, &file.key)).chain(
        held.ecus
            .iter()
            .zip(&file.ecus)
            .map(|((serial, h), (_, f))| (Some(serial), &h.key, &f.key)),
    );
    for (serial, held, given) in pairs {
        match (held, given) {
            (_, None) => {}
            (None, Some(_)) => keyed = true,
            (Some(h), Some(g)) if h == g => {}
            (Some(_), Some(_)) => {
                let (what, command) = match serial {
                    None => (format!("vehicle {vin}'s key"), "oem vehicle key"),
                    Some(s) => (format!("the key of ECU {s} of {vin}"), "oem ecu key"),
                };
                return Err(Error::refused(format!(
                    "{what} in the file is not the one registered: nothing imported (a new key is registered with `{command}`)"
                )));
            }
        }
    }
    Ok(if keyed {
        Known::Keyed
    } else {
        Known::Unchanged
    })
}

/// The file's keys added to a held record (where none is registered).
fn add_keys(held: &mut Vehicle, file: &Vehicle) {
    if held.key.is_none() {
        held.key.clone_from(&file.key);
    }
    for (serial, e) in held.ecus.iter_mut() {
        if e.key.is_none() {
            e.key = file.ecus.get(serial).and_then(|f| f.key.clone());
        }
    }
}

/// Threads writing shards.
const WRITERS: usize = 8;

/// Write one shard's new vehicles, and the keys of those already there (`touched`: VINs of
/// one shard).
fn write_shard(
    dir: &Path,
    touched: &[&str],
    vehicles: &BTreeMap<String, Vehicle>,
    new: &BTreeSet<&str>,
) -> Result<()> {
    let mut inv = Inventory::load_for(dir, touched)?;
    for vin in touched {
        let file = &vehicles[*vin];
        match inv.vehicles.get_mut(*vin) {
            Some(held) => add_keys(held, file),
            None => {
                inv.vehicles.insert((*vin).to_string(), file.clone());
            }
        }
    }
    inv.save_unstamped(dir)?;
    // Back in the fleet: no longer removed.
    let added: Vec<&str> = touched
        .iter()
        .copied()
        .filter(|v| new.contains(v))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let (mut removed, scope) = store::load::<String>(dir, store::REMOVED_DIR, Some(&added))?;
    if added.iter().any(|v| removed.remove(*v).is_some()) {
        store::save(dir, store::REMOVED_DIR, &removed, &scope)?;
    }
    Ok(())
}

/// What checking one shard's vehicles against the inventory found.
struct Checked<'a> {
    new: Vec<&'a str>,
    keyed: Vec<&'a str>,
    unchanged: usize,
    /// The claims the file's records make that the inventory's do not yet.
    wanted: Vec<(claims::Claim, claims::Owner)>,
}

/// Check the file's vehicles of one shard (`vins`) against the inventory's records.
fn check_shard<'a>(
    dir: &Path,
    vins: &'a [String],
    vehicles: &BTreeMap<String, Vehicle>,
) -> Result<Checked<'a>> {
    let refs: Vec<&str> = vins.iter().map(String::as_str).collect();
    let inv = Inventory::load_for(dir, &refs)?;
    let mut c = Checked {
        new: Vec::new(),
        keyed: Vec::new(),
        unchanged: 0,
        wanted: Vec::new(),
    };
    for vin in vins {
        let held = inv.vehicles.get(vin);
        match held {
            None => c.new.push(vin),
            Some(held) => match against_held(vin, held, &vehicles[vin])? {
                Known::Unchanged => c.unchanged += 1,
                Known::Keyed => c.keyed.push(vin),
            },
        }
        c.wanted
            .extend(claims::new_claims(vin, held, &vehicles[vin]));
    }
    Ok(c)
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
    // Checked against the inventory first: nothing is written unless every line fits. Shard
    // by shard on every core (each vehicle's claims fingerprint its keys).
    let groups: Vec<&Vec<String>> = by_shard.values().collect();
    let checked: std::sync::Mutex<Vec<Checked>> = std::sync::Mutex::new(Vec::new());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::fsutil::try_each_parallel(&groups, cores, |vins| {
        let c = check_shard(dir, vins, &vehicles)?;
        checked
            .lock()
            .map_err(|_| Error::refused("internal: a checker thread failed"))?
            .push(c);
        Ok(())
    })?;
    let mut new: BTreeSet<&str> = BTreeSet::new();
    let mut keyed: BTreeSet<&str> = BTreeSet::new();
    let mut unchanged = 0;
    let mut wanted = Vec::new();
    for c in checked
        .into_inner()
        .map_err(|_| Error::refused("internal: a checker thread failed"))?
    {
        new.extend(c.new);
        keyed.extend(c.keyed);
        unchanged += c.unchanged;
        wanted.extend(c.wanted);
    }
    // No serial or key held twice, within the file or with the fleet (claimed before any
    // record is written).
    claims::claim_all(dir, wanted)?;
    // Vehicles back in the fleet after a removal: their report history starts again now (as
    // `oem vehicle add` does), in one transaction before their tombstones go.
    let new_vins: Vec<&str> = new.iter().copied().collect();
    let (removed, _) = store::load::<String>(dir, store::REMOVED_DIR, Some(&new_vins))?;
    let back: Vec<&str> = new_vins
        .iter()
        .copied()
        .filter(|v| removed.contains_key(*v))
        .collect();
    super::reports::end_history(dir, &back, ota_metadata::DateTime::now().0)?;
    // Written shard by shard on several threads: each shard is its own files (and fsyncs,
    // which dominate: about 4,096 shards whatever the fleet), so they overlap on the disk.
    let groups: Vec<Vec<&str>> = by_shard
        .values()
        .map(|vins| {
            vins.iter()
                .map(String::as_str)
                .filter(|v| new.contains(v) || keyed.contains(v))
                .collect::<Vec<&str>>()
        })
        .filter(|g| !g.is_empty())
        .collect();
    crate::fsutil::try_each_parallel(&groups, WRITERS, |group| {
        write_shard(dir, group, &vehicles, &new)
    })?;
    claims::record(dir, claims::Written::AllInventory)?;
    Ok(Imported {
        added: new.len(),
        unchanged,
        keyed: keyed.len(),
    })
}

/// [`parse`] the file at `path`, then [`import`] it.
pub fn import_file(dir: &Path, path: &Path) -> Result<Imported> {
    let vehicles = {
        let bytes = crate::fsutil::read_bounded(path, MAX_FILE)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Config {
            path: path.to_path_buf(),
            reason: "not UTF-8 text".into(),
        })?;
        parse(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        // The text is dropped here, before the import: at a million vehicles it is most of a
        // gigabyte that the writing would otherwise hold for nothing.
    };
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
            ("VIN1,S1:B,,,extra\n", "line 1"),
            ("VIN1,S1:B,,not-base64!\n", "line 1"),
            ("VIN1,S1:B:QUJD\n", "line 1"),
            ("VIN1,S1:B\nVIN2,S2:B,,QUJD\n", "line 2"),
            ("VIN 1,S1:B\n", "line 1"),
            (
                &format!("{},S1:B\n", "V".repeat(10_000)),
                "longer than any VIN",
            ),
            (
                &format!("VIN1,S1:{}\n", "B".repeat(10_000)),
                "longer than a serial",
            ),
            (
                &format!("VIN1,S1:B,,{}\n", "A".repeat(2 << 20)),
                "bytes long; a line is at most",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(line), "{text:?}: {err}");
            assert!(
                err.len() < 300,
                "the error quotes too much: {} bytes",
                err.len()
            );
        }
        // A key of another algorithm is named as what it is, not by RSA's OID.
        let ed25519 = "MCowBQYDK2VwAyEAiQnYFn8N4dDvOjSedP7fk2l19r8SjnVujp46obdgiXY=";
        let err = parse(&format!("VIN1,S1:B,,{ed25519}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Ed25519")
                && err.contains("1.3.101.112")
                && !err.contains("1.2.840.113549"),
            "{err}"
        );
    }
}
