//! Fleet benchmark: the time to publish assignments for 10,000 vehicles, and then for a change
//! to one vehicle. Keys are RSA-3072. The inventory and assignments are written as the OEM's
//! state files directly (a bulk import), so the figures are the publish itself.
//!
//! Run: `cargo bench -p ota-repo --bench fleet` (OTA_BENCH_VEHICLES overrides 10,000).

use ota_metadata::documents::EcuAssignment;
use ota_metadata::{DateTime, SigningKey};
use ota_repo::oem::{self, EcuRecord, Inventory, Vehicle};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let n: usize = std::env::var("OTA_BENCH_VEHICLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!("== ota-repo fleet benchmark ({n} vehicles, RSA-3072) ==");
    let tmp = tempfile::tempdir().unwrap();
    let key_path = tmp.path().join("k.pem");
    std::fs::write(
        &key_path,
        SigningKey::generate(3072).unwrap().to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    let offline_path = tmp.path().join("offline.pem");
    std::fs::write(
        &offline_path,
        SigningKey::generate(3072).unwrap().to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    let dir = tmp.path().join("oem");
    let now = DateTime::now();
    let roles = ota_repo::supplier::RoleOptions {
        default_keys: vec![key_path],
        role_keys: ["root", "targets"]
            .into_iter()
            .map(|r| (r.to_string(), vec![offline_path.clone()]))
            .collect(),
        ..Default::default()
    };
    oem::init(&dir, &roles, None, now).unwrap();

    let mut inv = Inventory::default();
    let mut assignments: BTreeMap<String, BTreeMap<String, EcuAssignment>> = BTreeMap::new();
    let assignment = |version: &str| EcuAssignment {
        hardware_id: "BRAKE-A".into(),
        supplier: "acme".into(),
        uid: "brake-fw".into(),
        version: version.into(),
        release_counter: 1,
        target: format!("brake-fw-{version}.bin"),
        length: 65_536,
        hashes: BTreeMap::from([("sha256".to_string(), "ab".repeat(32))]),
    };
    for i in 0..n {
        let vin = format!("VIN{i:08}");
        let ecus = BTreeMap::from([(
            "ECU1".to_string(),
            EcuRecord {
                hardware_id: "BRAKE-A".into(),
                ..Default::default()
            },
        )]);
        inv.vehicles.insert(
            vin.clone(),
            Vehicle {
                ecus,
                ..Default::default()
            },
        );
        assignments.insert(
            vin,
            BTreeMap::from([("ECU1".to_string(), assignment("1.0"))]),
        );
    }
    inv.save(&dir).unwrap();
    // The supplier must be pinned for assignments to stand; pin a throwaway root.
    let mut s = oem::Settings::load(&dir).unwrap();
    let root_bytes = std::fs::read(dir.join("repository/1.root.json")).unwrap();
    let root = ota_metadata::documents::verified_root("root", &root_bytes, 1 << 20).unwrap();
    s.suppliers.insert(
        "acme".into(),
        ota_metadata::documents::SupplierEntry {
            repository: ota_metadata::documents::RepositoryPin::pin(&root, "http://127.0.0.1/acme")
                .unwrap(),
            hardware_ids: vec!["BRAKE-*".into()],
        },
    );
    s.save(&dir).unwrap();
    std::fs::write(
        dir.join(oem::ASSIGNMENTS),
        serde_json::to_vec(&assignments).unwrap(),
    )
    .unwrap();

    let t = Instant::now();
    let r = oem::publish(&dir, now, false).unwrap();
    let full = t.elapsed();
    assert_eq!(r.vehicles_signed, n);
    println!(
        "publish {n} vehicles:        {:>8.2} s ({:.2} ms/vehicle)",
        full.as_secs_f64(),
        full.as_secs_f64() * 1e3 / n as f64
    );

    assignments
        .get_mut("VIN00000042")
        .unwrap()
        .insert("ECU1".into(), assignment("2.0"));
    std::fs::write(
        dir.join(oem::ASSIGNMENTS),
        serde_json::to_vec(&assignments).unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    let r = oem::publish(&dir, now, false).unwrap();
    let one = t.elapsed();
    assert_eq!(r.vehicles_signed, 1);
    println!(
        "publish a change to 1:       {:>8.3} s ({} roles signed)",
        one.as_secs_f64(),
        r.roles.signed.len()
    );
    println!(
        "ratio one-change / full:     {:>8.4}",
        one.as_secs_f64() / full.as_secs_f64()
    );

    let t = Instant::now();
    let v = ota_repo::verify::verify(&dir, None, now).unwrap();
    println!(
        "verify the whole tree:       {:>8.2} s ({} vehicles)",
        t.elapsed().as_secs_f64(),
        v.vehicles
    );
}
