//! Signed version reports made as a gateway and its ECUs make them, and the inventory that
//! knows their keys, for the fleet backend's tests.
#![allow(dead_code)]

use ota_fleet::report::{KnownEcu, KnownVehicle};
use ota_fleet::{Db, Location};
use ota_metadata::documents::version_report::ecu_report_message;
use ota_metadata::documents::{EcuEvent, EcuReport, Outcome, VehicleVersionReport};
use ota_metadata::{DateTime, Key, SigningKey};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Keys are slow to make: one vehicle key and one ECU key serve every test.
pub fn vehicle_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap())
}
pub fn ecu_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap())
}

fn field(s: &str) -> [u8; 32] {
    let mut f = [0u8; 32];
    f[..s.len()].copy_from_slice(s.as_bytes());
    f
}

/// ECU `serial` (hardware id `hw`) running `image` (uid, version, release counter), signed
/// with `key`.
pub fn ecu_entry(
    key: &SigningKey,
    serial: &str,
    hw: &str,
    image: Option<(&str, &str, u64)>,
) -> EcuReport {
    let mut id = [0u8; ota_ecu::uds::IDENTIFICATION_LEN];
    id[0..32].copy_from_slice(&field(serial));
    id[32..64].copy_from_slice(&field(hw));
    if let Some((uid, version, counter)) = image {
        id[64..96].copy_from_slice(&field(uid));
        id[96..128].copy_from_slice(&field(version));
        id[128..160].copy_from_slice(&[7u8; 32]);
        id[160..168].copy_from_slice(&1000u64.to_be_bytes());
        id[168..176].copy_from_slice(&counter.to_be_bytes());
    }
    let nonce = [9u8; 16];
    let sig = key.sign(&ecu_report_message(&id, &nonce)).unwrap();
    let (uid, version, counter) = image.unwrap_or(("", "", 0));
    EcuReport {
        serial: serial.into(),
        hardware_id: hw.into(),
        uid: uid.into(),
        version: version.into(),
        sha256: hex::encode([7u8; 32]),
        length: 1000,
        release_counter: counter,
        identification: hex::encode(id),
        nonce: hex::encode(nonce),
        signature: hex::encode(sig),
    }
}

/// A vehicle report, signed with the shared vehicle key.
pub fn report(
    vin: &str,
    generated: i64,
    counter: u64,
    ecus: Vec<EcuReport>,
    events: Vec<EcuEvent>,
) -> Vec<u8> {
    report_with_recalls(vin, generated, counter, ecus, events, Vec::new())
}

/// A vehicle report listing `recalls`, signed with the shared vehicle key.
pub fn report_with_recalls(
    vin: &str,
    generated: i64,
    counter: u64,
    ecus: Vec<EcuReport>,
    events: Vec<EcuEvent>,
    recalls: Vec<ota_metadata::documents::EcuRecall>,
) -> Vec<u8> {
    let mut doc = VehicleVersionReport::new(vin, DateTime(generated), ecus, Vec::new());
    doc.extra
        .insert("counter".into(), serde_json::Value::from(counter));
    doc.events = events;
    doc.recalls = recalls;
    ota_metadata::sign_document(&doc, &[vehicle_key()]).unwrap()
}

pub fn event(seq: u64, serial: &str, outcome: Outcome, version: &str) -> EcuEvent {
    EcuEvent {
        seq,
        serial: serial.into(),
        outcome,
        code: if outcome == Outcome::Refused {
            "0xF3 signature".into()
        } else {
            String::new()
        },
        uid: "brake-fw".into(),
        version: version.into(),
        update: "assignments v3".into(),
        at: DateTime(500),
    }
}

/// An inventory of `vins`, each with ECUs S1 and S2 (hardware id BRAKE-A) keyed with the
/// shared keys.
pub fn inventory(vins: &[&str]) -> BTreeMap<String, Arc<KnownVehicle>> {
    let ecu = |hw: &str| KnownEcu {
        hardware_id: hw.into(),
        aftermarket: false,
        key: Some(public(ecu_key())),
    };
    vins.iter()
        .map(|v| {
            (
                v.to_string(),
                Arc::new(KnownVehicle {
                    key: Some(public(vehicle_key())),
                    ecus: [("S1".into(), ecu("BRAKE-A")), ("S2".into(), ecu("BRAKE-A"))].into(),
                }),
            )
        })
        .collect()
}

pub fn public(k: &SigningKey) -> Key {
    k.public().clone()
}

/// The two reports of S1 and S2 of `vin` running brake-fw `version` at `counter`.
pub fn both(version: &str, counter: u64) -> Vec<EcuReport> {
    ["S1", "S2"]
        .iter()
        .map(|s| {
            ecu_entry(
                ecu_key(),
                s,
                "BRAKE-A",
                Some(("brake-fw", version, counter)),
            )
        })
        .collect()
}

/// The databases every store test runs on: SQLite in `dir`, and PostgreSQL when installed (in
/// CI always: the test fails when it is missing).
pub struct Databases {
    pub pg: Option<ota_testkit::postgres::PgServer>,
    pub dir: tempfile::TempDir,
}

impl Databases {
    pub fn new() -> Self {
        Databases {
            pg: ota_testkit::postgres::PgServer::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh database of each kind, named `name`.
    pub fn each(&self, name: &str) -> Vec<(Location, Db)> {
        let mut out = Vec::new();
        let sqlite = Location::Sqlite(self.dir.path().join(format!("{name}.sqlite")));
        out.push((sqlite.clone(), Db::open(&sqlite).unwrap()));
        if let Some(pg) = &self.pg {
            let at = Location::Postgres(pg.database(name));
            out.push((at.clone(), Db::open(&at).unwrap()));
        }
        out
    }
}
