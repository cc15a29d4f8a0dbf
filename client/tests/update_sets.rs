//! Update sets, requirements and conflicts (issue 28): the assignments of one set are installed
//! all or nothing, sets on their own; a requirement met within the update joins two sets; an
//! unmet requirement or a conflict refuses the set, at the OEM (`oem assign`) and in the
//! gateway.

mod world;

use ota_client::gateway::{EcuError, EcuOutcome};
use ota_metadata::documents::{Conflict, Requirement};
use ota_repo::oem;
use world::{installed, outcome, World};

/// brake-fw `version` assigned to ECU `serial` of VIN1 with `rules`, as a director that skips
/// the OEM's own checks would (the gateway's are what is under test); then published.
fn assign_raw(w: &World, serial: &str, version: &str, rules: oem::Rules) {
    oem::assign(
        &w.p("oem"),
        assignment(serial, version, rules, oem::Approval::NotAsked),
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    w.published("oem");
}

fn assignment(
    serial: &str,
    version: &str,
    rules: oem::Rules,
    approval: oem::Approval,
) -> oem::Assign {
    oem::Assign {
        target: oem::AssignTarget::Vehicle {
            vin: "VIN1".into(),
            serial: Some(serial.into()),
        },
        supplier: "acme".into(),
        uid: "brake-fw".into(),
        version: version.into(),
        approval,
        rules,
    }
}

fn set(name: &str) -> oem::Rules {
    oem::Rules {
        set: Some(name.into()),
        ..Default::default()
    }
}

/// tuv revokes brake-fw 2.0's bytes: every vehicle refuses it.
fn revoke_2_0(w: &World) {
    let sha = world::sha_hex(&[2u8; 5000]);
    ota_repo::regulator::revoke(&w.p("tuv"), &sha, "backdoor", w.now).unwrap();
    ota_repo::regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    w.published("tuv");
}

fn held_back(out: &[(String, EcuOutcome)], serial: &str) -> bool {
    matches!(
        out.iter().find(|(s, _)| s == serial).map(|(_, o)| o),
        Some(EcuOutcome::HeldBack { .. })
    )
}

/// Scenario: Fleet backend | one of a vehicle's two independent update sets is refused (a revoked release) | the other set is installed; in one set, the refusal holds both back (all or nothing)
#[test]
fn one_refused_set_does_not_hold_back_another() {
    // Control: the default set, all or nothing.
    let w = World::new();
    revoke_2_0(&w);
    assign_raw(&w, "S1", "1.0", oem::Rules::default());
    assign_raw(&w, "S2", "2.0", oem::Rules::default());
    let out = w.update();
    assert!(held_back(&out, "S1"), "{}", outcome(&out, "S1"));
    assert!(installed(&w, "S1").is_none());

    // Two sets: S1's goes in, S2's is refused alone.
    let w = World::new();
    revoke_2_0(&w);
    assign_raw(&w, "S1", "1.0", set("brakes"));
    assign_raw(&w, "S2", "2.0", set("comfort"));
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-fw 1.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert_eq!(installed(&w, "S1").unwrap(), vec![1u8; 5000]);
    assert!(
        outcome(&out, "S2").contains("revoked"),
        "{}",
        outcome(&out, "S2")
    );
    assert!(installed(&w, "S2").is_none());
}

/// Scenario: Fleet backend | an image that needs another ECU's newer release is assigned in another set, and that set is refused | the requirement joins the two sets: neither is installed (an image never runs without what it needs)
#[test]
fn a_requirement_met_within_the_update_joins_the_sets() {
    let w = World::new();
    revoke_2_0(&w);
    let needs_2 = oem::Rules {
        set: Some("brakes".into()),
        requires: vec!["brake-fw>=2".parse::<Requirement>().unwrap()],
        conflicts: Vec::new(),
    };
    // S1's 0.9 (counter 1) needs brake-fw at counter 2: only S2's 2.0 can give it (assigned
    // first: the OEM checks a requirement against what the vehicle is assigned).
    assign_raw(&w, "S2", "2.0", set("comfort"));
    assign_raw(&w, "S1", "0.9", needs_2);
    let out = w.update();
    assert!(held_back(&out, "S1"), "{}", outcome(&out, "S1"));
    assert!(installed(&w, "S1").is_none() && installed(&w, "S2").is_none());
}

/// Scenario: Fleet backend | an assignment whose requirement no ECU will meet, or that conflicts with another ECU's image | refused by the gateway before any ECU hears of it (a dependency failure, reported) and by `oem assign` on what the vehicle reported and is assigned
#[test]
fn unmet_requirements_and_conflicts_are_refused_by_gateway_and_oem() {
    let w = World::new();
    let needs_abs = oem::Rules {
        requires: vec!["abs-fw>=3".parse().unwrap()],
        ..Default::default()
    };
    // The OEM refuses it: no ECU of VIN1 runs or is assigned abs-fw.
    let err = oem::assign(
        &w.p("oem"),
        assignment("S1", "1.0", needs_abs.clone(), oem::Approval::NotAsked),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs an ECU running abs-fw"), "{err}");
    assert!(oem::Assignments::load(&w.p("oem"))
        .unwrap()
        .vehicles
        .get("VIN1")
        .is_none_or(|a| a.is_empty()));
    // A director that skips the checks: the gateway refuses the set itself.
    assign_raw_unchecked(&w, "S1", "1.0", needs_abs);
    let out = w.update();
    let s1 = out.iter().find(|(s, _)| s == "S1").unwrap();
    assert!(
        matches!(&s1.1, EcuOutcome::Failed(EcuError::Dependency(why)) if why.contains("abs-fw")),
        "{}",
        outcome(&out, "S1")
    );
    assert!(installed(&w, "S1").is_none());

    // A conflict: S2 runs brake-fw 2.0 (installed); S1's 1.0 never runs beside it.
    let w = World::new();
    assign_raw(&w, "S2", "2.0", set("comfort"));
    assert!(outcome(&w.update(), "S2").starts_with("updated"));
    let never_beside_2 = oem::Rules {
        set: Some("brakes".into()),
        conflicts: vec!["brake-fw@2.0".parse::<Conflict>().unwrap()],
        ..Default::default()
    };
    assign_raw_unchecked(&w, "S1", "1.0", never_beside_2);
    let out = w.update();
    assert!(
        outcome(&out, "S1").contains("never runs beside brake-fw@2.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(installed(&w, "S1").is_none());
}

/// Write an assignment with `rules` past the OEM's rule check (a compromised or careless
/// director): straight into the OEM's assignment state, then published.
fn assign_raw_unchecked(w: &World, serial: &str, version: &str, rules: oem::Rules) {
    let plain = oem::Rules {
        set: rules.set.clone(),
        ..Default::default()
    };
    oem::assign(
        &w.p("oem"),
        assignment(serial, version, plain, oem::Approval::NotAsked),
    )
    .unwrap();
    let mut all = oem::Assignments::load_for(&w.p("oem"), &["VIN1"]).unwrap();
    let a = all
        .vehicles
        .get_mut("VIN1")
        .and_then(|v| v.get_mut(serial))
        .unwrap();
    a.requires = rules.requires;
    a.conflicts = rules.conflicts;
    all.save(&w.p("oem")).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    w.published("oem");
}

/// Scenario: Fleet backend | an image conflicts with what another ECU runs now, and the set that would replace it on that ECU fails | refused: rules are checked with the set alone (the other sets may fail) and with every set installed (they may succeed)
#[test]
fn rules_hold_whether_the_other_sets_succeed_or_fail() {
    let w = World::new();
    // S2 runs brake-fw 2.0.
    assign_raw(&w, "S2", "2.0", set("comfort"));
    assert!(outcome(&w.update(), "S2").starts_with("updated"));
    // S2 is to go back to 0.9 (its counter below the one it runs: the gateway refuses it) in
    // one set; S1's 1.0, in another, never runs beside brake-fw 2.0.
    assign_raw(&w, "S2", "0.9", set("comfort"));
    let never_beside_2 = oem::Rules {
        set: Some("brakes".into()),
        conflicts: vec!["brake-fw@2.0".parse::<Conflict>().unwrap()],
        ..Default::default()
    };
    assign_raw(&w, "S1", "1.0", never_beside_2);
    let out = w.update();
    assert!(
        outcome(&out, "S2").contains("release counter"),
        "{}",
        outcome(&out, "S2")
    );
    assert!(
        outcome(&out, "S1").contains("never runs beside brake-fw@2.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(installed(&w, "S1").is_none());
}
