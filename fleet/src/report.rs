//! Checking a vehicle version report before it touches any state: parsed within bounds,
//! signed by the vehicle's registered key, and each ECU's entry signed by that ECU's
//! registered key (Uptane's detection of added, removed and replaced ECUs). The result, a
//! [`Verdict`], is what [`crate::store::apply`] records. An ECU the inventory does not know, one
//! whose entry does not verify, one reporting another hardware id and one that did not report
//! at all are flagged for the out-of-band replacement process, never silently accepted.

use crate::error::{FleetError, Result};
use ota_ecu::uds::client::parse_identification;
use ota_metadata::documents::version_report::ecu_report_message;
use ota_metadata::documents::{EcuEvent, EcuRecall, VehicleVersionReport};
use ota_metadata::keys::Key;
use ota_metadata::{DateTime, Envelope};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Largest version report accepted.
/// (A vehicle of 512 ECUs reports about 600 KiB; parsing takes a few times the bytes.)
pub const MAX_REPORT: u64 = 1 << 20;
/// Most ECUs a vehicle reports (a car has a hundred or so).
pub const MAX_ECUS: usize = 512;
/// Most events one report carries.
pub const MAX_EVENTS: usize = 512;
/// Longest serial, hardware id, uid, version or update name kept.
pub const MAX_NAME: usize = 128;
/// Longest reason kept (longer ones are cut, marked).
pub const MAX_REASON: usize = 512;

/// What the inventory knows of a vehicle: the keys its reports must verify with.
#[derive(Clone, Debug, Default)]
pub struct KnownVehicle {
    pub key: Option<Key>,
    pub ecus: BTreeMap<String, KnownEcu>,
}

#[derive(Clone, Debug, Default)]
pub struct KnownEcu {
    pub hardware_id: String,
    /// Fitted after manufacture by a third party: not expected to report.
    pub aftermarket: bool,
    pub key: Option<Key>,
}

/// The OEM's inventory as the backend reads it (the working directory's shards; a test's map).
pub trait Inventory: Send + Sync {
    /// The vehicle, or `None` when the inventory does not list it.
    fn vehicle(&self, vin: &str) -> Result<Option<Arc<KnownVehicle>>>;
}

impl Inventory for BTreeMap<String, Arc<KnownVehicle>> {
    fn vehicle(&self, vin: &str) -> Result<Option<Arc<KnownVehicle>>> {
        Ok(self.get(vin).cloned())
    }
}

/// What an ECU's verified entry says it runs (`None` fields: nothing installed through the
/// bootloader yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcuState {
    pub serial: String,
    pub hardware_id: String,
    pub image: Option<Running>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub uid: String,
    pub version: String,
    pub sha256: String,
    pub release_counter: u64,
}

/// One ECU held for the replacement process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub serial: String,
    pub reason: String,
}

/// A verified report, ready to record.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub vin: String,
    pub generated: DateTime,
    /// The gateway's report number: orders two reports of the same second.
    pub counter: u64,
    /// SHA-256 of the report's bytes: the same report again is "already seen".
    pub sha256: String,
    pub accepted: Vec<EcuState>,
    pub flagged: Vec<Flag>,
    /// Recalls of ECUs whose entry was accepted (the rest is flagged anyway).
    pub recalls: Vec<EcuRecall>,
    /// Events of ECUs the inventory lists for this vehicle.
    pub events: Vec<EcuEvent>,
}

/// How far ahead of the OEM's clock a report may be dated (gateway clocks drift; one dated
/// years ahead would make every later report a "replay").
pub const MAX_CLOCK_AHEAD: i64 = 24 * 3600;

/// Parse and verify `bytes` against the inventory.
pub fn verify(inventory: &dyn Inventory, bytes: &[u8]) -> Result<Verdict> {
    verify_at(inventory, bytes, crate::now())
}

/// [`verify`] at time `now` (Unix seconds).
pub fn verify_at(inventory: &dyn Inventory, bytes: &[u8], now: i64) -> Result<Verdict> {
    let (env, report) = parse(bytes)?;
    if report.generated.0 > now.saturating_add(MAX_CLOCK_AHEAD) {
        return Err(FleetError::Malformed(format!(
            "generated {}, more than a day ahead of the OEM's clock",
            report.generated
        )));
    }
    let vehicle = inventory
        .vehicle(&report.vin)?
        .ok_or_else(|| FleetError::UnknownVehicle(report.vin.clone()))?;
    verify_vehicle_signature(&env, &report.vin, &vehicle)?;
    let counter = report
        .extra
        .get("counter")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let (accepted, flagged) = check_ecus(&report, &vehicle);
    let recalls = report
        .recalls
        .iter()
        .filter(|r| accepted.iter().any(|a| a.serial == r.serial))
        .map(|r| EcuRecall {
            reason: cut(&r.reason),
            ..r.clone()
        })
        .collect();
    let events = report
        .events
        .iter()
        .filter(|e| vehicle.ecus.contains_key(&e.serial))
        .map(|e| EcuEvent {
            code: cut(&e.code),
            ..e.clone()
        })
        .collect();
    Ok(Verdict {
        vin: report.vin,
        generated: report.generated,
        counter,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
        accepted,
        flagged,
        recalls,
        events,
    })
}

/// The envelope and the report inside it, every field within bounds.
fn parse(bytes: &[u8]) -> Result<(Envelope, VehicleVersionReport)> {
    let what = "the report";
    let env = Envelope::parse(what, bytes, MAX_REPORT)
        .map_err(|e| FleetError::Malformed(e.to_string()))?;
    let report: VehicleVersionReport = env
        .decode(what, VehicleVersionReport::TYPE)
        .map_err(|e| FleetError::Malformed(e.to_string()))?;
    if report.ecus.len() + report.silent.len() > MAX_ECUS {
        return Err(FleetError::Malformed(format!(
            "{} ECUs; a vehicle reports at most {MAX_ECUS}",
            report.ecus.len() + report.silent.len()
        )));
    }
    if report.events.len() > MAX_EVENTS || report.recalls.len() > MAX_ECUS {
        return Err(FleetError::Malformed(format!(
            "{} events and {} recalls; at most {MAX_EVENTS} and {MAX_ECUS}",
            report.events.len(),
            report.recalls.len()
        )));
    }
    let names = std::iter::once(report.vin.as_str())
        .chain(report.ecus.iter().flat_map(|e| {
            [
                e.serial.as_str(),
                e.hardware_id.as_str(),
                e.uid.as_str(),
                e.version.as_str(),
            ]
        }))
        .chain(report.silent.iter().map(|s| s.serial.as_str()))
        .chain(report.recalls.iter().flat_map(|r| {
            [
                r.serial.as_str(),
                r.uid.as_str(),
                r.version.as_str(),
                r.regulator.as_str(),
            ]
        }))
        .chain(report.events.iter().flat_map(|e| {
            [
                e.serial.as_str(),
                e.uid.as_str(),
                e.version.as_str(),
                e.update.as_str(),
            ]
        }));
    for n in names {
        // Names reach operators' terminals and queries: no control characters.
        if n.chars().any(char::is_control) {
            return Err(FleetError::Malformed(format!(
                "a name with a control character: {}",
                n.escape_default().take(64).collect::<String>()
            )));
        }
        if n.len() > MAX_NAME {
            return Err(FleetError::Malformed(format!(
                "a name of {} bytes (at most {MAX_NAME}): {}…",
                n.len(),
                n.chars().take(32).collect::<String>()
            )));
        }
    }
    if report.events.iter().any(|e| i64::try_from(e.seq).is_err()) {
        return Err(FleetError::Malformed("an event number out of range".into()));
    }
    if report.events.iter().any(|e| e.at > report.generated) {
        return Err(FleetError::Malformed(
            "an event dated after the report that carries it".into(),
        ));
    }
    let counter = report.extra.get("counter").and_then(|v| v.as_u64());
    if counter.is_some_and(|c| i64::try_from(c).is_err()) {
        return Err(FleetError::Malformed("report counter out of range".into()));
    }
    Ok((env, report))
}

/// The report signed by the vehicle's registered key (threshold 1, key ids unique).
fn verify_vehicle_signature(env: &Envelope, vin: &str, vehicle: &KnownVehicle) -> Result<()> {
    let key = vehicle
        .key
        .as_ref()
        .ok_or_else(|| FleetError::NoVehicleKey(vin.to_string()))?;
    let bad = |reason: String| FleetError::BadSignature {
        vin: vin.to_string(),
        reason,
    };
    let parsed =
        keys::parsed(key).ok_or_else(|| bad("the registered key does not parse".into()))?;
    let sigs = env.signatures();
    let mut ids = BTreeSet::new();
    if sigs.iter().any(|s| !ids.insert(&s.keyid)) {
        return Err(bad("a key id signs twice".into()));
    }
    let sig = sigs
        .iter()
        .find(|s| s.keyid == parsed.id)
        .ok_or_else(|| bad("not signed by the vehicle's registered key (threshold 1)".into()))?;
    let ok = hex::decode(&sig.sig).is_ok_and(|b| parsed.public.verify(env.canonical_signed(), &b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "the vehicle key's signature does not verify (threshold 1)".into(),
        ))
    }
}

/// Registered keys parsed once: a server verifies many reports of the same vehicles, and
/// parsing an RSA key (PEM, ASN.1, big integers) and its key id costs as much as a signature.
mod keys {
    use ota_metadata::keys::{Key, KeyId, PublicKey};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    pub(super) struct Parsed {
        pub id: KeyId,
        pub public: PublicKey,
    }

    /// Keys kept parsed (a fleet's worth of shards in a server; cleared when full).
    const KEPT: usize = 1 << 16;

    pub(super) fn parsed(key: &Key) -> Option<Arc<Parsed>> {
        type Cache = HashMap<String, (Key, Arc<Parsed>)>;
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let name = format!("{}\n{}\n{}", key.keytype, key.scheme, key.keyval.public);
        if let Some((k, p)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
            // The whole key object (its id covers every field), not only its material.
            if k == key {
                return Some(p.clone());
            }
        }
        let id = key.key_id().ok()?;
        let public = key.to_public(&id).ok()?;
        let p = Arc::new(Parsed { id, public });
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= KEPT {
            c.clear();
        }
        c.insert(name, (key.clone(), p.clone()));
        Some(p)
    }
}

/// Each ECU entry checked against the inventory: accepted, or flagged with why.
fn check_ecus(report: &VehicleVersionReport, vehicle: &KnownVehicle) -> (Vec<EcuState>, Vec<Flag>) {
    let mut accepted = Vec::new();
    let mut flagged = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &report.ecus {
        if !seen.insert(r.serial.clone()) {
            flagged.push(flag(&r.serial, "reported twice in one report".into()));
            continue;
        }
        match check_ecu(r, vehicle.ecus.get(&r.serial)) {
            Ok(state) => accepted.push(state),
            Err(reason) => flagged.push(flag(&r.serial, reason)),
        }
    }
    // Duplicates of an accepted serial make the accepted entry doubtful too.
    accepted.retain(|a| !flagged.iter().any(|f| f.serial == a.serial));
    for (serial, ecu) in &vehicle.ecus {
        if seen.contains(serial) || ecu.aftermarket {
            continue;
        }
        let why = report
            .silent
            .iter()
            .find(|s| &s.serial == serial)
            .map_or("not in the report".to_string(), |s| s.reason.clone());
        flagged.push(flag(
            serial,
            format!("did not report ({why}): removed or replaced?"),
        ));
    }
    (accepted, flagged)
}

fn flag(serial: &str, reason: String) -> Flag {
    Flag {
        serial: serial.to_string(),
        reason: cut(&reason),
    }
}

/// One ECU's entry: what it runs, or why it is flagged.
fn check_ecu(
    r: &ota_metadata::documents::EcuReport,
    known: Option<&KnownEcu>,
) -> std::result::Result<EcuState, String> {
    let known =
        known.ok_or("unknown ECU serial: added or replaced outside the inventory".to_string())?;
    let key = known
        .key
        .as_ref()
        .ok_or("no key registered for this ECU (`oem ecu key`)".to_string())?;
    let ident = hex::decode(&r.identification).unwrap_or_default();
    if !verify_ecu(key, &ident, &r.nonce, &r.signature) {
        return Err(
            "the report does not verify with the registered ECU key: key changed or report forged"
                .into(),
        );
    }
    // The signed identification is what counts, not the gateway's transcription of it.
    let id = parse_identification(&[&[0xF1, 0xA0][..], &ident].concat())
        .ok_or("malformed identification".to_string())?;
    if id.serial.as_str() != r.serial {
        return Err(format!(
            "the ECU signed serial {}, not {}",
            id.serial.as_str(),
            r.serial
        ));
    }
    if i64::try_from(id.release_counter).is_err() {
        return Err(format!(
            "the ECU signed release counter {}, out of range",
            id.release_counter
        ));
    }
    if id.hardware_id.as_str() != known.hardware_id {
        return Err(format!(
            "reports hardware id {}, the inventory says {}",
            id.hardware_id.as_str(),
            known.hardware_id
        ));
    }
    Ok(EcuState {
        serial: r.serial.clone(),
        hardware_id: known.hardware_id.clone(),
        image: id.image.map(|(uid, version)| Running {
            uid: uid.as_str().into(),
            version: version.as_str().into(),
            sha256: hex::encode(id.sha256),
            release_counter: id.release_counter,
        }),
    })
}

fn verify_ecu(key: &Key, ident: &[u8], nonce: &str, sig: &str) -> bool {
    let (Ok(nonce), Ok(sig)) = (hex::decode(nonce), hex::decode(sig)) else {
        return false;
    };
    let Ok(nonce) = <[u8; 16]>::try_from(nonce.as_slice()) else {
        return false;
    };
    keys::parsed(key).is_some_and(|k| k.public.verify(&ecu_report_message(ident, &nonce), &sig))
}

/// `s` cut to [`MAX_REASON`] bytes on a character boundary.
pub(crate) fn cut(s: &str) -> String {
    if s.len() <= MAX_REASON {
        return s.to_string();
    }
    let mut end = MAX_REASON - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
