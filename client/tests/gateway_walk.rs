//! The gateway's cross-repository walk against real trees made by `ota-repo` (supplier, OEM,
//! regulators), read from disk: what installs, and every check that must stop an update.

mod world;

use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuError, EcuOutcome, Gateway};
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
    assert_eq!(
        std::fs::read_dir(w.p("state/staging"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "staging left behind"
    );
}

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

#[test]
fn withdrawn_supplier_means_nothing_assigned() {
    let w = World::new();
    w.assign("S1", "1.0");
    oem::supplier_remove(&w.p("oem"), "acme").unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    assert!(matches!(outcome(&w.update(), "S1"), EcuOutcome::Unassigned));
}
