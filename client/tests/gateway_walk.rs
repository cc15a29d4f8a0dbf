//! The gateway's cross-repository walk against real trees made by `ota-repo` (supplier, OEM,
//! regulators), read from disk: what installs, and every check that must stop an update.

mod world;

use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuError, EcuOutcome, Gateway, GatewayError};
use ota_client::walk::{Check, WalkError};
use ota_repo::{oem, regulator};
use world::World;

fn outcome<'a>(out: &'a [(String, EcuOutcome)], serial: &str) -> &'a EcuOutcome {
    &out.iter().find(|(s, _)| s == serial).unwrap().1
}

/// Assert that ECU `serial` failed at `check`; returns the error for assertions on its context.
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

fn installed(w: &World, serial: &str) -> Option<Vec<u8>> {
    std::fs::read(w.p(&format!("ecus/{serial}/image.bin"))).ok()
}

#[test]
fn installs_what_is_assigned_and_attested_then_is_up_to_date() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = w.gateway_at(w.now);
    let check = gw.run(None).unwrap();
    assert!(matches!(
        outcome(&check, "S1"),
        EcuOutcome::WouldUpdate { .. }
    ));
    assert!(
        installed(&w, "S1").is_none(),
        "check must not download or forward"
    );
    let out = w.update();
    assert!(
        matches!(outcome(&out, "S1"), EcuOutcome::Updated { version, .. } if version == "1.0"),
        "{}",
        summary(outcome(&out, "S1"))
    );
    assert!(matches!(outcome(&out, "S2"), EcuOutcome::Unassigned));
    assert_eq!(installed(&w, "S1").unwrap(), vec![1u8; 5000]);
    let compact = std::fs::read(w.p("ecus/S1/manifest.bin")).unwrap();
    let c = ota_metadata::documents::compact::parse_compact(&compact).unwrap();
    assert_eq!(
        (
            c.body.uid.as_str(),
            c.body.version.as_str(),
            c.body.release_counter
        ),
        ("brake-fw", "1.0", 1)
    );
    let again = w.update();
    assert!(matches!(outcome(&again, "S1"), EcuOutcome::UpToDate { .. }));
    let status = gw.status().unwrap();
    assert!(
        status.contains("S1 [BRAKE-A]: brake-fw 1.0 (release counter 1)"),
        "{status}"
    );
    // An upgrade with a higher release counter goes through.
    w.assign("S1", "2.0");
    assert!(
        matches!(outcome(&w.update(), "S1"), EcuOutcome::Updated { version, .. } if version == "2.0")
    );
    assert_eq!(installed(&w, "S1").unwrap(), vec![2u8; 5000]);
}

/// Scenario: Uptane release counter | an image with a release counter below the installed one | refused before download
#[test]
fn release_counter_rollback_is_refused() {
    let w = World::new();
    w.assign("S1", "2.0");
    w.update();
    w.assign("S1", "0.9");
    let e = failed_at(w.update(), "S1", Check::ReleaseCounter);
    assert!(e.reason.contains("below the installed 2"), "{e}");
    assert_eq!(
        installed(&w, "S1").unwrap(),
        vec![2u8; 5000],
        "the installed image stays"
    );
}

/// Scenario: Regulators | an image revoked by a regulator | refused
#[test]
fn a_revocation_stops_the_update() {
    let w = World::new();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![1u8; 5000]));
    regulator::revoke(&w.p("tuv"), &sha, "backdoor found after release", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    w.assign("S1", "1.0");
    let e = failed_at(w.update(), "S1", Check::Revoked);
    assert!(e.reason.contains("tuv revoked"), "{e}");
    assert!(e.reason.contains("backdoor found"), "{e}");
    assert!(installed(&w, "S1").is_none());
}

/// Scenario: Regulators | fewer approvals than the OEM's threshold | refused until enough approve
#[test]
fn regulator_threshold_counts_distinct_approvals() {
    let w = World::new();
    w.add_regulator("dekra");
    oem::regulator_threshold(&w.p("oem"), 2).unwrap();
    w.assign("S1", "1.0");
    let e = failed_at(w.update(), "S1", Check::NotApproved);
    assert!(e.reason.contains("1 of 2 required"), "{e}");
    assert!(e.reason.contains("dekra: no attestation"), "{e}");
    w.review("dekra");
    assert!(
        matches!(outcome(&w.update(), "S1"), EcuOutcome::Updated { regulators, .. } if regulators.len() == 2)
    );
}

/// Scenario: Uptane hardware id | an image for another hardware id | refused
#[test]
fn hardware_id_mismatch_with_the_ecu_is_refused() {
    let w = World::new();
    w.assign("S2", "1.0");
    let gw = Gateway::new(w.config("BRAKE-Z"), w.now).unwrap();
    gw.init(false).unwrap();
    let mut fw = DirForwarder::new(w.p("ecus"));
    let out = gw.run(Some(&mut fw)).unwrap();
    let e = failed_at(out, "S2", Check::HardwareId);
    assert!(e.reason.contains("BRAKE-Z"), "{e}");
    assert!(installed(&w, "S2").is_none());
}

/// Scenario: Arbitrary software | a tampered image on the supplier's server | refused while streaming; nothing forwarded or staged
#[test]
fn a_tampered_image_is_refused_and_nothing_is_forwarded() {
    let w = World::new();
    w.assign("S1", "1.0");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![1u8; 5000]));
    let stored = w.p(&format!("acme/repository/targets/{sha}.brake-fw-1.0.bin"));
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    // The manifest and attestations pass; the bytes fail their signed hash while streaming.
    failed_at(w.update(), "S1", Check::Image);
    assert!(installed(&w, "S1").is_none());
    // Nothing unverified stays in staging (nor in its downloads in progress).
    for dir in ["state/staging", "state/staging/incoming"] {
        let files = std::fs::read_dir(w.p(dir))
            .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
            .unwrap_or(0);
        assert_eq!(files, 0, "{dir}: staging left behind");
    }
}

/// Scenario: Freeze | expired OEM metadata | every ECU's update stops
#[test]
fn expired_master_metadata_stops_everything() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = w.gateway_at(w.now.plus_seconds(30 * 86_400));
    let mut fw = DirForwarder::new(w.p("ecus"));
    let err = gw.run(Some(&mut fw)).unwrap_err().to_string();
    assert!(
        err.contains("OEM metadata") && err.contains("expired"),
        "{err}"
    );
    assert!(installed(&w, "S1").is_none());
}

/// Scenario: Suppliers | a supplier removed by the OEM | its assignments are withdrawn
#[test]
fn withdrawn_supplier_means_nothing_assigned() {
    let w = World::new();
    w.assign("S1", "1.0");
    oem::supplier_remove(&w.p("oem"), "acme").unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    assert!(matches!(outcome(&w.update(), "S1"), EcuOutcome::Unassigned));
}

// ---- The fleet tree: each file on the vehicle's path is checked where it is reached ---------

/// VIN1 and 80 more vehicles (over a leaf's worth), every BRAKE-A ECU assigned 1.0, published.
fn fleet_world() -> World {
    let w = World::new();
    for i in 0..80 {
        oem::vehicle_add(
            &w.p("oem"),
            &format!("FLEET{i:03}"),
            &[format!("F-{i:03}:BRAKE-A")],
            &[],
        )
        .unwrap();
    }
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::HardwareId("BRAKE-A".into()),
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "1.0".into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    w
}

/// The files on VIN1's path in the served tree: the nodes from the root down to the leaf that
/// holds its assignments.
fn vin1_path(w: &World) -> Vec<std::path::PathBuf> {
    use ota_metadata::documents::vehicles::{check_node, node_path};
    let repo = w.p("oem/repository");
    let key = w.locator("VIN1");
    let mut link = oem::fleet::served_tree(&repo).unwrap().unwrap();
    let mut nodes = Vec::new();
    for depth in 0.. {
        let p = repo.join(node_path(&key[..depth], &link.sha256));
        let node = check_node(&std::fs::read(&p).unwrap(), &key[..depth]).unwrap();
        nodes.push(p);
        if node.is_leaf() {
            assert!(node.entries.contains_key(&key));
            return nodes;
        }
        link = node.children[&key[depth..depth + 1]].clone();
    }
    unreachable!()
}

/// Flip one byte in the middle of `p` (its length stays), run `f`, restore `p`.
fn with_flipped_byte<T>(p: &std::path::Path, f: impl FnOnce() -> T) -> T {
    let good = std::fs::read(p).unwrap();
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x01;
    std::fs::write(p, &bad).unwrap();
    let out = f();
    std::fs::write(p, &good).unwrap();
    out
}

/// Scenario: Uptane VIN | a tampered node or leaf of the vehicle tree | refused at that depth
#[test]
fn a_tampered_node_or_bin_is_refused_at_that_step() {
    let w = fleet_world();
    let nodes = vin1_path(&w);
    assert!(
        nodes.len() >= 2,
        "41 vehicles need an inner node: {nodes:?}"
    );
    let leaf = nodes.len() - 1;
    for (depth, node) in nodes.iter().enumerate() {
        let e = with_flipped_byte(node, || master_failed(&w, Check::VehicleTree));
        assert!(
            e.reason.contains(&format!("(depth {depth})")) && e.reason.contains("sha256"),
            "{} {depth}/{leaf}: {e}",
            node.display()
        );
    }
    assert!(installed(&w, "S1").is_none(), "nothing forwarded");
    // Intact again: the update goes through.
    assert!(
        matches!(outcome(&w.update(), "S1"), EcuOutcome::Updated { version, .. } if version == "1.0")
    );
}

#[test]
fn a_check_with_nothing_new_fetches_no_node_again() {
    use ota_client::tuf::{
        init_trusted_root, Counting, DirFetcher, Limits, MetadataStore, Updater,
    };
    let w = fleet_world();
    let url = w.url("oem");
    let meta = w.p("vehicle-metadata");
    std::fs::create_dir_all(&meta).unwrap();
    let limits = Limits::default();
    init_trusted_root(
        &meta,
        &std::fs::read(w.p("oem/repository/1.root.json")).unwrap(),
        &limits,
    )
    .unwrap();
    let fetcher = Counting::new(DirFetcher::new());
    let store = MetadataStore::new(w.p("vehicle-state"));
    let check = || {
        let mut up = Updater::new(&meta, &url, &url, &fetcher, limits.clone(), w.now).unwrap();
        let secret = oem::privacy::fleet_secret(&w.p("oem"))
            .unwrap()
            .vehicle("VIN1");
        let vehicle = ota_client::walk::Vehicle {
            vin: "VIN1",
            secret: &secret,
        };
        let m = ota_client::walk::read_master(&mut up, &url, &vehicle, &store).unwrap();
        assert_eq!(m.assignments.unwrap().ecus["S1"].version, "1.0");
        fetcher.take()
    };
    let tree = |log: &[(String, u64)]| -> Vec<String> {
        log.iter()
            .filter(|(u, _)| u.contains("/vehicles/"))
            .map(|(u, _)| u.clone())
            .collect()
    };
    let nodes = vin1_path(&w);
    let cold = check();
    assert_eq!(tree(&cold).len(), nodes.len(), "{cold:?}");

    // Nothing new: no node, not even the index.
    let again = check();
    assert!(tree(&again).is_empty(), "{again:?}");
    assert!(
        !again.iter().any(|(u, _)| u.contains("vehicles.json")),
        "{again:?}"
    );

    // A change to another vehicle: the nodes whose hash changed are fetched (the root at
    // least), VIN1's own leaf and the nodes it shares nothing with are not.
    let other = (0..80)
        .map(|i| format!("FLEET{i:03}"))
        .find(|v| {
            let (k1, k2) = (w.locator(v), w.locator("VIN1"));
            k1[..1] != k2[..1]
        })
        .unwrap();
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                serial: Some(format!("F-{}", &other["FLEET".len()..])),
                vin: other,
            },
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "2.0".into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    let changed = check();
    let fetched = tree(&changed);
    assert_eq!(fetched.len(), 1, "only the root node: {changed:?}");
    assert!(fetched[0].contains("/vehicles/tree/root."), "{fetched:?}");
    let leaf = nodes.last().unwrap().file_name().unwrap().to_str().unwrap();
    assert!(!changed.iter().any(|(u, _)| u.contains(leaf)));
}
