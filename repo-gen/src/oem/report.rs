//! Version reports and the keys that sign them: registering a vehicle's and its ECUs' public
//! keys, and ingesting a vehicle version report (Uptane's detection of added, removed and
//! replaced ECUs). A report is accepted ECU by ECU: an ECU the inventory does not know, one
//! whose report does not verify with its registered key, one reporting another hardware id,
//! and one that did not report at all are flagged for the out-of-band replacement process
//! (`flagged.json`), never silently accepted.

use super::inventory::{Inventory, Reported};
use super::{read_state, write_state};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_ecu::uds::client::parse_identification;
use ota_metadata::documents::version_report::ecu_report_message;
use ota_metadata::documents::{EcuRecall, VehicleVersionReport};
use ota_metadata::keys::{Key, KeyId};
use ota_metadata::{DateTime, Envelope, SigningKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const FLAGGED: &str = "flagged.json";
/// Per VIN, the recalls its last accepted report carried.
pub const RECALLS: &str = "recalls.json";

/// A public key from a PEM file (public, or private of which the public half is taken).
pub fn public_key_file(path: &Path) -> Result<Key> {
    let bytes = fsutil::read_bounded(path, 64 * 1024)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::refused(format!("{}: not a PEM file", path.display())))?;
    if text.contains("PRIVATE KEY-----") {
        return Ok(SigningKey::from_pem(&text)
            .map_err(Error::meta(path))?
            .public()
            .clone());
    }
    let key = Key::rsa(text.clone());
    let parsed = key
        .to_public(&KeyId(path.display().to_string()))
        .map_err(Error::meta(path))?;
    match parsed {
        ota_metadata::PublicKey::Rsa(rsa) => Ok(Key::rsa(
            ota_metadata::signing::public_pem(&rsa)
                .map_err(|e| Error::refused(format!("{}: {e}", path.display())))?,
        )),
        _ => Err(Error::refused(format!(
            "{}: only RSA keys sign version reports",
            path.display()
        ))),
    }
}

pub fn vehicle_key(dir: &Path, vin: &str, key_file: &Path) -> Result<()> {
    super::Settings::load(dir)?;
    let key = public_key_file(key_file)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    inv.vehicle(vin)?;
    if let Some(v) = inv.vehicles.get_mut(vin) {
        v.key = Some(key);
    }
    inv.save(dir)
}

pub fn ecu_key(dir: &Path, vin: &str, serial: &str, key_file: &Path) -> Result<()> {
    super::Settings::load(dir)?;
    let key = public_key_file(key_file)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    inv.ecu(vin, serial)?;
    if let Some(e) = inv
        .vehicles
        .get_mut(vin)
        .and_then(|v| v.ecus.get_mut(serial))
    {
        e.key = Some(key);
    }
    inv.save(dir)
}

/// One ECU held for the out-of-band replacement process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub vin: String,
    pub serial: String,
    pub reason: String,
    pub report_generated: DateTime,
}

/// What an ingestion did.
#[derive(Debug, Default)]
pub struct Ingested {
    pub accepted: Vec<String>,
    pub flagged: Vec<Flag>,
    /// Installed images the vehicle found revoked by a regulator (recalls to act on: assign
    /// an approved image). Recorded in `recalls.json`.
    pub recalls: Vec<EcuRecall>,
    /// The report is the one ingested last, sent again: nothing changed.
    pub already_seen: bool,
}

/// Clear the flags of `vin` (only those of ECU `serial` when given) after review; returns the
/// flags removed. An error if none matched (a typo must not look like success).
pub fn clear_flags(dir: &Path, vin: &str, serial: Option<&str>) -> Result<Vec<Flag>> {
    super::Settings::load(dir)?;
    let all: Vec<Flag> = read_state(dir, FLAGGED)?;
    let (cleared, kept): (Vec<Flag>, Vec<Flag>) = all
        .into_iter()
        .partition(|f| f.vin == vin && serial.is_none_or(|s| f.serial == s));
    if cleared.is_empty() {
        return Err(Error::refused(format!(
            "no flag for {vin}{} in {}",
            serial.map(|s| format!(" ECU {s}")).unwrap_or_default(),
            dir.join(FLAGGED).display()
        )));
    }
    write_state(dir, FLAGGED, &kept)?;
    Ok(cleared)
}

/// The flags recorded (`flagged.json`).
pub fn flags(dir: &Path) -> Result<Vec<Flag>> {
    super::Settings::load(dir)?;
    read_state(dir, FLAGGED)
}

fn verify_ecu(key: &Key, ident: &[u8], nonce: &str, sig: &str) -> bool {
    let (Ok(nonce), Ok(sig)) = (hex::decode(nonce), hex::decode(sig)) else {
        return false;
    };
    let Ok(nonce) = <[u8; 16]>::try_from(nonce.as_slice()) else {
        return false;
    };
    key.to_public(&KeyId("ecu".into()))
        .is_ok_and(|k| k.verify(&ecu_report_message(ident, &nonce), &sig))
}

/// Largest version report accepted.
pub const MAX_REPORT: u64 = 4 << 20;

pub fn ingest(dir: &Path, file: &Path) -> Result<Ingested> {
    let bytes = fsutil::read_bounded(file, MAX_REPORT)?;
    ingest_bytes(dir, &file.display().to_string(), &bytes)
}

/// Ingest a report given as bytes (`what` names it in errors), as `ingest` does a file.
pub fn ingest_bytes(dir: &Path, what: &str, bytes: &[u8]) -> Result<Ingested> {
    super::Settings::load(dir)?;
    let file = Path::new(what);
    let what = what.to_string();
    let bytes = bytes.to_vec();
    let env = Envelope::parse(&what, &bytes, MAX_REPORT).map_err(Error::meta(file))?;
    let report: VehicleVersionReport = env
        .decode(&what, VehicleVersionReport::TYPE)
        .map_err(Error::meta(file))?;
    let mut inv = Inventory::load_for(dir, &[&report.vin])?;
    let vehicle = inv.vehicle(&report.vin)?.clone();
    let key = vehicle.key.clone().ok_or_else(|| {
        Error::refused(format!(
            "vehicle {} has no registered key (`oem vehicle key`): its report cannot be trusted",
            report.vin
        ))
    })?;
    let id = key.key_id()?;
    env.verify(
        &format!("version report of {}", report.vin),
        std::slice::from_ref(&id),
        1,
        &[(id.clone(), key)].into(),
    )
    .map_err(Error::meta(file))?;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let counter = report.extra.get("counter").and_then(|v| v.as_u64());
    if let Some(last) = vehicle.last_report {
        if vehicle.last_report_sha256.as_deref() == Some(digest.as_str()) {
            // The very report ingested last, sent again (an upload whose answer was lost).
            return Ok(Ingested {
                already_seen: true,
                ..Ingested::default()
            });
        }
        // Same second: the gateway's report counter orders them.
        let newer = report.generated > last
            || (report.generated == last
                && counter.unwrap_or(0) > vehicle.last_report_counter.unwrap_or(0));
        if !newer {
            return Err(Error::refused(format!(
                "{what}: generated {} (counter {}), not newer than the last report ingested for \
                 {} (generated {last}, counter {}): a replay?",
                report.generated,
                counter.unwrap_or(0),
                report.vin,
                vehicle.last_report_counter.unwrap_or(0)
            )));
        }
    }

    let mut out = Ingested::default();
    let flag = |serial: &str, reason: String| Flag {
        vin: report.vin.clone(),
        serial: serial.into(),
        reason,
        report_generated: report.generated,
    };
    let mut seen = std::collections::BTreeSet::new();
    for r in &report.ecus {
        seen.insert(r.serial.clone());
        let Some(rec) = vehicle.ecus.get(&r.serial) else {
            out.flagged.push(flag(
                &r.serial,
                "unknown ECU serial: added or replaced outside the inventory".into(),
            ));
            continue;
        };
        let Some(ecu_key) = &rec.key else {
            out.flagged.push(flag(
                &r.serial,
                "no key registered for this ECU (`oem ecu key`)".into(),
            ));
            continue;
        };
        let ident = hex::decode(&r.identification).unwrap_or_default();
        if !verify_ecu(ecu_key, &ident, &r.nonce, &r.signature) {
            out.flagged.push(flag(&r.serial, "the report does not verify with the registered ECU key: key changed or report forged".into()));
            continue;
        }
        // The signed identification is what counts, not the gateway's transcription of it.
        let Some(id) = parse_identification(&[&[0xF1, 0xA0][..], &ident].concat()) else {
            out.flagged
                .push(flag(&r.serial, "malformed identification".into()));
            continue;
        };
        if id.serial.as_str() != r.serial {
            out.flagged.push(flag(
                &r.serial,
                format!(
                    "the ECU signed serial {}, not {}",
                    id.serial.as_str(),
                    r.serial
                ),
            ));
            continue;
        }
        if id.hardware_id.as_str() != rec.hardware_id {
            out.flagged.push(flag(
                &r.serial,
                format!(
                    "reports hardware id {}, the inventory says {}",
                    id.hardware_id.as_str(),
                    rec.hardware_id
                ),
            ));
            continue;
        }
        let reported = id.image.map(|(uid, version)| Reported {
            uid: uid.as_str().into(),
            version: version.as_str().into(),
            sha256: hex::encode(id.sha256),
            release_counter: id.release_counter,
            at: report.generated,
        });
        if let Some(e) = inv
            .vehicles
            .get_mut(&report.vin)
            .and_then(|v| v.ecus.get_mut(&r.serial))
        {
            e.reported = reported;
        }
        out.accepted.push(r.serial.clone());
    }
    for serial in vehicle.ecus.keys().filter(|s| !seen.contains(*s)) {
        if vehicle.ecus[serial].aftermarket {
            continue;
        }
        let why = report
            .silent
            .iter()
            .find(|s| &s.serial == serial)
            .map_or("not in the report".to_string(), |s| s.reason.clone());
        out.flagged.push(flag(
            serial,
            format!("did not report ({why}): removed or replaced?"),
        ));
    }
    // Recalls: only for ECUs whose report was accepted (the rest is flagged anyway).
    out.recalls = report
        .recalls
        .iter()
        .filter(|r| out.accepted.contains(&r.serial))
        .cloned()
        .collect();
    let mut recalls: BTreeMap<String, Vec<EcuRecall>> = read_state(dir, RECALLS)?;
    recalls.insert(report.vin.clone(), out.recalls.clone());
    recalls.retain(|_, v| !v.is_empty());
    write_state(dir, RECALLS, &recalls)?;
    if let Some(v) = inv.vehicles.get_mut(&report.vin) {
        v.last_report = Some(report.generated);
        v.last_report_sha256 = Some(digest);
        v.last_report_counter = counter;
    }
    let mut all: Vec<Flag> = read_state(dir, FLAGGED)?;
    all.extend(out.flagged.iter().cloned());
    write_state(dir, FLAGGED, &all)?;
    inv.save(dir)?;
    Ok(out)
}
