//! The trust model under attack (issue 8): each test mounts one attack an attacker with a
//! stolen key (or a blocked network path) could try, on real trees made by `ota-repo`, and
//! checks the gateway refuses it, and that the documented recovery works.

mod world;

use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuError, EcuOutcome, Gateway, GatewayError};
use ota_client::walk::{Check, WalkError};
use ota_metadata::{sign_document, Envelope, SigningKey};
use ota_repo::{oem, regulator, supplier};
use serde_json::{json, Value};
use std::path::Path;
use world::{installed, new_key, outcome, read_json, sha_hex, write_json, World};

fn failed_at(out: Vec<(String, EcuOutcome)>, serial: &str, check: Check) -> WalkError {
    let o = out.into_iter().find(|(s, _)| s == serial).unwrap().1;
    let EcuOutcome::Failed(EcuError::Walk(e)) = o else {
        panic!("expected a failed {check:?} check, got {}", summary(&o))
    };
    assert_eq!(e.check, check, "{e}");
    e
}

/// Assert that the run stopped at the master repository's `check` (for every ECU).
fn master_failed(w: &World, check: Check) -> WalkError {
    let gw = w.gateway_at(w.now);
    let mut fw = DirForwarder::new(w.p("ecus"));
    match gw.run(Some(&mut fw)) {
        Err(GatewayError::Walk(e)) => {
            assert_eq!(e.check, check, "{e}");
            e
        }
        Err(e) => panic!("expected a failed {check:?} check, got {e}"),
        Ok(out) => panic!(
            "expected a failed {check:?} check, got {:?}",
            out.iter()
                .map(|(s, o)| format!("{s}: {}", summary(o)))
                .collect::<Vec<_>>()
        ),
    }
}

fn signing_key(pem_path: &Path) -> SigningKey {
    SigningKey::from_pem(&std::fs::read_to_string(pem_path).unwrap()).unwrap()
}

// ---- 1. One regulator counted twice -------------------------------------------------------

/// Scenario: Regulators | one regulator listed under two names to meet a threshold of 2 | counts once; refused
#[test]
fn one_regulator_listed_under_two_names_counts_once() {
    let w = World::new();
    // The OEM tool refuses to authorize the same root twice.
    let err = oem::regulator_add(
        &w.p("oem"),
        "tuvbis",
        &w.p("tuv/repository/1.root.json"),
        &w.url("tuv"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("shares keys with regulator tuv"),
        "{err}"
    );

    // A master that lists it twice anyway (hand-edited settings) with threshold 2: the gateway
    // counts tuv once and refuses.
    let settings = w.p("oem/ota-repo.json");
    let mut s = read_json(&settings);
    let tuv = s["regulators"]["tuv"].clone();
    s["regulators"]["tuvbis"] = tuv;
    s["regulator_threshold"] = json!(2);
    write_json(&settings, &s);
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    w.assign("S1", "1.0");
    let e = failed_at(w.update(), "S1", Check::NotApproved);
    assert!(e.reason.contains("count as 1"), "{e}");
    assert!(installed(&w, "S1").is_none());
}

// ---- 2. Blocking the regulator that revoked ------------------------------------------------

/// Scenario: Regulators | the regulator that revoked an image is made unreachable | the update stops (fail closed)
#[test]
fn blocking_the_revoking_regulator_stops_the_update() {
    let w = World::new();
    w.add_regulator("dekra");
    w.review("dekra");
    // Threshold 1: tuv's approval alone would do, were dekra's revocation not there.
    let sha = sha_hex(&[1u8; 5000]);
    regulator::revoke(&w.p("dekra"), &sha, "backdoor in the CAN stack", w.now).unwrap();
    regulator::publish(&w.p("dekra"), w.now, false).unwrap();
    w.assign("S1", "1.0");

    // The attacker blocks dekra: the update stops, naming dekra.
    let repo = w.p("dekra/repository");
    let blocked = w.p("dekra/blocked");
    std::fs::rename(&repo, &blocked).unwrap();
    let e = failed_at(w.update(), "S1", Check::RegulatorUnreachable);
    assert!(e.reason.contains("regulator dekra"), "{e}");
    assert!(installed(&w, "S1").is_none());

    // A tampered (unverifiable) state of dekra is no better than none.
    std::fs::rename(&blocked, &repo).unwrap();
    let ts = repo.join("timestamp.json");
    let good = std::fs::read(&ts).unwrap();
    let mut v = read_json(&ts);
    v["signed"]["version"] = json!(v["signed"]["version"].as_u64().unwrap() + 1);
    write_json(&ts, &v);
    let e = failed_at(w.update(), "S1", Check::RegulatorUnreachable);
    assert!(e.reason.contains("regulator dekra"), "{e}");

    // An expired state (frozen since its last publish) is no better either: dekra's timestamp
    // ran out a minute ago while the master and tuv are fresh.
    std::fs::write(&ts, good).unwrap();
    regulator::publish(&w.p("dekra"), w.now.plus_seconds(60 - 86_400), true).unwrap();
    let gw = w.gateway_at(w.now.plus_seconds(120));
    let out = gw.run(Some(&mut DirForwarder::new(w.p("ecus")))).unwrap();
    let e = failed_at(out, "S1", Check::RegulatorUnreachable);
    assert!(
        e.reason.contains("regulator dekra") && e.reason.contains("expired"),
        "{e}"
    );

    // Reached and fresh again: the revocation wins over tuv's approval.
    regulator::publish(&w.p("dekra"), w.now, true).unwrap();
    let e = failed_at(w.update(), "S1", Check::Revoked);
    assert!(e.reason.contains("dekra revoked brake-fw 1.0"), "{e}");
    assert!(installed(&w, "S1").is_none());
}

// ---- 3. Attestations bind releases, not bytes ----------------------------------------------

/// Scenario: Regulators | approved bytes re-released under another version | need a new approval
#[test]
fn approved_bytes_released_again_under_another_version_need_a_new_review() {
    let w = World::new();
    // The approved bytes of 1.0, released again as 9.9.9 with the highest release counter
    // (which would lock out every later update), not reviewed.
    let f = w.p("fw-1.0.bin");
    supplier::add_image(
        &w.p("acme"),
        supplier::AddImage {
            file: f,
            uid: "brake-fw".into(),
            version: "9.9.9".into(),
            release_counter: u64::MAX,
            hardware_ids: vec!["BRAKE-A".into()],
            role: "targets".into(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        },
        w.now,
    )
    .unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    // Sent for review (an online role), but not reviewed yet.
    oem::review_submit(
        &w.p("oem"),
        oem::Submit {
            supplier: "acme",
            uid: "brake-fw",
            version: "9.9.9",
            from: None,
            ca: None,
            content_key: None,
        },
        w.now,
    )
    .unwrap();
    w.assign("S1", "9.9.9");
    let e = failed_at(w.update(), "S1", Check::NotApproved);
    assert!(e.reason.contains("tuv: no attestation"), "{e}");
    assert!(installed(&w, "S1").is_none());

    // Reviewed as its own release, it is judged on its own (and approved).
    w.review("tuv");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 9.9.9"));
}

/// Scenario: Regulators | an attestation of another release replayed | does not approve
#[test]
fn an_attestation_about_another_release_does_not_approve() {
    let w = World::new();
    w.assign("S1", "1.0");
    // tuv's attestation of 1.0, rewritten to claim another release counter, re-signed by tuv
    // (a regulator bug or a confused naming): every field is checked, not just the bytes.
    let reg = regulator_settings(&w, "tuv");
    let (release_id, rec) = reg["attestations"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["release"]["version"] == "1.0")
        .map(|(k, r)| (k.clone(), r.clone()))
        .unwrap();
    let file = w.p(&format!(
        "tuv/repository/targets/{}.{release_id}.attestation.json",
        rec["file"]["sha256"].as_str().unwrap()
    ));
    let env = Envelope::parse("a", &std::fs::read(&file).unwrap(), 1 << 20).unwrap();
    let mut signed = env.signed_value().clone();
    signed["release"]["release_counter"] = json!(7);
    let key = signing_key(&w.p("tuv.pem"));
    let bytes = sign_document(&signed, &[&key]).unwrap();
    let stored = supplier::store_target(
        &w.p("tuv/repository"),
        &format!("{release_id}.attestation.json"),
        &bytes,
    )
    .unwrap();
    let mut s = regulator_settings(&w, "tuv");
    s["attestations"][&release_id]["file"] = serde_json::to_value(&stored).unwrap();
    write_json(&w.p("tuv/ota-repo.json"), &s);
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    let e = failed_at(w.update(), "S1", Check::NotApproved);
    assert!(e.reason.contains("release counter"), "{e}");
}

fn regulator_settings(w: &World, name: &str) -> Value {
    read_json(&w.p(&format!("{name}/ota-repo.json")))
}

// ---- 4. Who is trusted is signed offline ---------------------------------------------------

/// Scenario: Stolen keys | an online key reused for an offline role | refused by the OEM tool
#[test]
fn the_oem_refuses_an_online_key_for_its_offline_roles() {
    let w = World::new();
    let shared = supplier::RoleOptions {
        default_keys: vec![w.p("k.pem")],
        ..Default::default()
    };
    let err = oem::init(&w.p("oem2"), &shared, None, w.now).unwrap_err();
    assert!(err.to_string().contains("offline"), "{err}");
    assert!(!w.p("oem2/repository/1.root.json").exists());
    // Nor can a rotation move an online role onto the offline key.
    let err = ota_repo::rotation::rotate::<oem::Settings>(
        &w.p("oem"),
        "vehicles",
        vec![w.p("offline.pem")],
        None,
        w.now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("offline"), "{err}");
}

/// Scenario: Stolen keys | stolen OEM online keys pin a rogue supplier | refused: pins are signed by the offline targets keys
#[test]
fn the_online_keys_cannot_pin_a_rogue_supplier() {
    let w = World::new();
    w.assign("S1", "1.0");
    // With every online key (timestamp, snapshot, review, vehicles: k.pem) the attacker
    // re-signs the OEM's targets with a rogue supplier pin.
    let repo = w.p("oem/repository");
    let ts = read_json(&repo.join("timestamp.json"));
    let snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let mut snapshot = read_json(&repo.join(format!("{snap_v}.snapshot.json")));
    let targets_v = snapshot["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let mut targets = read_json(&repo.join(format!("{targets_v}.targets.json")))["signed"].clone();
    let mut rogue = targets["suppliers"]["acme"].clone();
    rogue["hardware_ids"] = json!(["*"]);
    targets["suppliers"]["rogue"] = rogue;
    targets["version"] = json!(targets_v + 1);
    let online = signing_key(&w.p("k.pem"));
    let t_bytes = sign_document(&targets, &[&online]).unwrap();
    std::fs::write(
        repo.join(format!("{}.targets.json", targets_v + 1)),
        &t_bytes,
    )
    .unwrap();
    snapshot["signed"]["version"] = json!(snap_v + 1);
    snapshot["signed"]["meta"]["targets.json"] = json!({"version": targets_v + 1});
    let s_bytes = sign_document(&snapshot["signed"], &[&online]).unwrap();
    std::fs::write(repo.join(format!("{}.snapshot.json", snap_v + 1)), &s_bytes).unwrap();
    let mut ts_signed = ts["signed"].clone();
    ts_signed["version"] = json!(ts_signed["version"].as_u64().unwrap() + 1);
    ts_signed["meta"]["snapshot.json"] = json!({
        "version": snap_v + 1,
        "length": s_bytes.len(),
        "hashes": {"sha256": sha_hex(&s_bytes)},
    });
    std::fs::write(
        repo.join("timestamp.json"),
        sign_document(&ts_signed, &[&online]).unwrap(),
    )
    .unwrap();
    let gw = w.gateway_at(w.now);
    let mut fw = DirForwarder::new(w.p("ecus"));
    match gw.run(Some(&mut fw)) {
        Err(GatewayError::Walk(e)) => {
            assert_eq!(e.check, Check::OemMetadata, "{e}");
            assert!(e.reason.contains("targets"), "{e}");
        }
        other => panic!("the forged targets must be refused, got {other:?}"),
    }
    assert!(installed(&w, "S1").is_none());
}

/// With `stolen` (a root key of tree `name`), publish `2.root.json` handing every role to a
/// key of the attacker's.
fn rotate_root_to_attacker(w: &World, name: &str, stolen: &Path) {
    let attacker_path = new_key(w, &format!("attacker-{name}.pem"));
    let attacker = signing_key(&attacker_path);
    let stolen = signing_key(stolen);
    let mut root = read_json(&w.p(&format!("{name}/repository/1.root.json")))["signed"].clone();
    let id = attacker.key_id().0.clone();
    root["version"] = json!(2);
    root["keys"] = json!({ id.clone(): serde_json::to_value(attacker.public()).unwrap() });
    for role in ["root", "timestamp", "snapshot", "targets"] {
        root["roles"][role] = json!({"keyids": [id.clone()], "threshold": 1});
    }
    std::fs::write(
        w.p(&format!("{name}/repository/2.root.json")),
        sign_document(&root, &[&stolen, &attacker]).unwrap(),
    )
    .unwrap();
}

// ---- 5. Re-pinning after a supplier's root key was stolen ----------------------------------

/// Scenario: Stolen keys | a supplier's root keys stolen and rotated by the attacker | re-pinning the supplier drops the attacker's chain
#[test]
fn re_pinning_a_supplier_drops_the_attackers_root_chain() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));

    // The attacker holds acme's root key (k.pem) and rotates acme's root to keys of its own.
    rotate_root_to_attacker(&w, "acme", &w.p("k.pem"));
    w.assign("S1", "2.0");
    let e = failed_at(w.update(), "S1", Check::SupplierMetadata);
    assert!(e.reason.contains("timestamp"), "{e}");

    // Recovery: acme publishes afresh under new keys; the OEM re-pins it.
    let fresh = new_key(&w, "acme-new.pem");
    w.supplier("acme-new", &fresh);
    oem::supplier_repin(
        &w.p("oem"),
        "acme",
        &w.p("acme-new/repository/1.root.json"),
        Some(&w.url("acme-new")),
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    // The same releases (same manifest bodies): the regulator's attestations still hold.
    assert!(
        outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"),
        "the gateway must start again from the new pin"
    );
    assert_eq!(installed(&w, "S1").unwrap(), vec![2u8; 5000]);
}

// ---- 6. Fast-forwarded assignments ---------------------------------------------------------

/// What the attacker with the OEM's online keys does to push VIN1's assignments up: start the
/// publisher from a tree that lists VIN1 at version 999 with no ECUs (so the publisher sees a
/// change and writes version 1000), marking VIN1's shard as changed.
fn fast_forward_vin1(w: &World) {
    use ota_metadata::documents::vehicles::{finish, update, Leaf, VehicleEntry, DEFAULT_LEAF_MAX};
    // The attacker holds the OEM's publishing machine: its online keys and its fleet secret.
    let secret = oem::privacy::fleet_secret(&w.p("oem"))
        .unwrap()
        .vehicle("VIN1");
    let repo = w.p("oem/repository");
    let mut record = oem::Record::load(&w.p("oem")).unwrap();
    let mut src = oem::fleet::RepoTree::new(&repo, true);
    let mut sink = oem::fleet::RepoTree::new(&repo, true);
    let bogus = Leaf::seal(
        "VIN1",
        &VehicleEntry {
            version: 999,
            ecus: Default::default(),
        },
        &secret,
    )
    .unwrap();
    let t = update(
        &mut src,
        &mut sink,
        "",
        record.tree.as_ref(),
        vec![bogus],
        DEFAULT_LEAF_MAX,
    )
    .unwrap();
    record.tree = finish(&mut sink, t).unwrap();
    record.save(&w.p("oem")).unwrap();
    ota_testkit::hide_served_vehicles_index(&repo);
    std::fs::create_dir_all(w.p("oem/pending")).unwrap();
    std::fs::write(
        w.p(&format!("oem/pending/{}", &w.locator("VIN1")[..3])),
        b"",
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
}

fn published_version(w: &World, vin: &str) -> u64 {
    oem::fleet::published_assignments(&w.p("oem"), vin)
        .unwrap()
        .unwrap()
        .0
        .version
}

/// Scenario: Stolen keys | a stolen vehicles key fast-forwards a vehicle's assignments | forgotten once the OEM rotates the key
#[test]
fn fast_forwarded_assignments_are_forgotten_when_the_oem_rotates_the_keys() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated"));
    let record = w.p("oem/published.json");
    let honest = std::fs::read(&record).unwrap();

    // With the online keys, the attacker publishes VIN1's assignments as version 1000.
    fast_forward_vin1(&w);
    assert_eq!(published_version(&w, "VIN1"), 1000);
    assert!(outcome(&w.update(), "S1").starts_with("up to date"));

    // The OEM restores its own record (and the attacker's index is gone): its next
    // assignments (version 2) are below what the vehicle accepted, and refused as a rollback
    // while the stolen keys are still trusted.
    std::fs::write(&record, honest).unwrap();
    ota_testkit::hide_served_vehicles_index(&w.p("oem/repository"));
    w.assign("S1", "2.0");
    assert_eq!(published_version(&w, "VIN1"), 2);
    let e = master_failed(&w, Check::AssignmentsRollback);
    assert!(e.reason.contains("older than the accepted 1000"), "{e}");

    // Recovery: the OEM rotates the stolen online keys; the vehicle forgets the version it
    // accepted under the old `vehicles` keys.
    for role in ["vehicles", "snapshot", "timestamp"] {
        let key = new_key(&w, &format!("{role}-2.pem"));
        ota_repo::rotation::rotate::<oem::Settings>(&w.p("oem"), role, vec![key], None, w.now)
            .unwrap();
    }
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-fw 2.0"),
        "{}",
        outcome(&out, "S1")
    );
}

/// Scenario: Rollback | one vehicle's assignments replaced by an older version | refused (assignments rollback)
#[test]
fn a_rollback_of_one_vehicles_assignments_is_refused() {
    let w = World::new();
    w.assign("S1", "1.0");
    let old_record = std::fs::read(w.p("oem/published.json")).unwrap();
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    w.assign("S1", "2.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"));

    // The online keys re-publish the older tree under a new, validly signed index: the index,
    // snapshot and timestamp are all fresh, only VIN1's version went back (2 -> 1).
    std::fs::write(w.p("oem/published.json"), old_record).unwrap();
    ota_testkit::hide_served_vehicles_index(&w.p("oem/repository"));
    let r = oem::publish(&w.p("oem"), w.now, false).unwrap();
    assert!(r.roles.signed.iter().any(|(role, _)| role == "vehicles"));
    assert_eq!(published_version(&w, "VIN1"), 1);
    let e = master_failed(&w, Check::AssignmentsRollback);
    assert!(e.reason.contains("version 1 "), "{e}");
    // Nothing was forwarded: the ECU still runs 2.0.
    assert_eq!(installed(&w, "S1").unwrap(), vec![2u8; 5000]);
}

// ---- 7. Installed, then revoked ------------------------------------------------------------

/// Scenario: Regulators | an installed image revoked later | reported as a recall
#[test]
fn an_image_revoked_after_installation_is_reported_as_a_recall() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated"));
    regulator::revoke(&w.p("tuv"), &sha_hex(&[1u8; 5000]), "CVE-2026-1234", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();

    // check (no forwarder) and update both report it.
    let gw = w.gateway_at(w.now);
    let checked = gw.run(None).unwrap();
    let o = &checked.iter().find(|(s, _)| s == "S1").unwrap().1;
    let EcuOutcome::Recalled { uid, recall, .. } = o else {
        panic!("expected a recall, got {}", summary(o))
    };
    assert_eq!(
        (uid.as_str(), recall.regulator.as_str()),
        ("brake-fw", "tuv")
    );
    assert!(recall.reason.contains("CVE-2026-1234"));
    assert!(outcome(&w.update(), "S1").starts_with("RECALLED"));
    // status shows it, from the recorded state.
    let status = gw.status().unwrap();
    assert!(status.contains("RECALLED by regulator tuv"), "{status}");

    // The version report carries it to the OEM.
    let mut config = w.config("BRAKE-A");
    config.vehicle_key = Some(w.p("k.pem"));
    let gw = Gateway::new(config, w.now).unwrap();
    let report = gw.report(&mut DirForwarder::new(w.p("ecus"))).unwrap();
    let r: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(r["signed"]["recalls"][0]["serial"], "S1");
    assert_eq!(r["signed"]["recalls"][0]["regulator"], "tuv");

    // An approved update clears it.
    w.assign("S1", "2.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"));
    assert!(!w.gateway_at(w.now).status().unwrap().contains("RECALLED"));
}

/// Scenario: Stolen keys | a regulator's root keys stolen | re-pinning the regulator drops the attacker's chain
#[test]
fn re_pinning_a_regulator_drops_the_attackers_root_chain() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    // tuv's root key is stolen and its root rotated to the attacker's keys: with tuv's state
    // unverifiable, no update passes (fail closed).
    rotate_root_to_attacker(&w, "tuv", &w.p("tuv.pem"));
    w.assign("S1", "2.0");
    let e = failed_at(w.update(), "S1", Check::RegulatorUnreachable);
    assert!(e.reason.contains("regulator tuv"), "{e}");

    // Recovery: tuv starts a new repository under new keys and reviews again; the OEM re-pins.
    w.add_regulator("tuv2");
    let settings = w.p("oem/ota-repo.json");
    let mut s = read_json(&settings);
    s["regulators"].as_object_mut().unwrap().remove("tuv2");
    write_json(&settings, &s);
    oem::regulator_repin(
        &w.p("oem"),
        "tuv",
        &w.p("tuv2/repository/1.root.json"),
        Some(&w.url("tuv2")),
    )
    .unwrap();
    w.review("tuv2");
    assert!(
        outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"),
        "the gateway must start again from the new pin"
    );
}
