//! The OEM's fleet operations (issue 28): the director's checks at assignment.

mod world;

use ota_metadata::documents::Outcome;

use ota_metadata::DateTime;
use ota_repo::oem;
use world::World;

fn assign(w: &World, target: oem::AssignTarget, version: &str) -> ota_repo::error::Result<()> {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target,
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: version.into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .map(|_| ())
}

/// VIN1's S1 as reported running brake-fw 2.0 (release counter 2).
fn s1_running_2_0() -> ota_fleet::report::EcuState {
    ota_fleet::report::EcuState {
        serial: "S1".into(),
        hardware_id: "BRAKE-A".into(),
        image: Some(ota_fleet::report::Running {
            uid: "brake-fw".into(),
            version: "2.0".into(),
            sha256: "00".repeat(32),
            release_counter: 2,
        }),
    }
}

/// Scenario: Uptane release counter | the OEM assigns an ECU a release below the counter the vehicle last reported it running (by mistake, or a compromised director's script) | refused at `oem assign`, for one ECU and for a whole hardware id (nothing written): the ECU would refuse it, and the vehicle's other updates would wait on it
#[test]
fn an_assignment_below_the_reported_counter_is_refused() {
    let w = World::new();
    let dir = w.p("oem");
    // VIN1's S1 reported running brake-fw 2.0 (release counter 2).
    let s1 = s1_running_2_0();
    oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::record_ecu(tx, "VIN1", &s1, DateTime::now().0))
        .unwrap();
    let one = |serial: &str| oem::AssignTarget::Vehicle {
        vin: "VIN1".into(),
        serial: Some(serial.into()),
    };
    let err = assign(&w, one("S1"), "1.0").unwrap_err().to_string();
    assert!(
        err.contains("release counter 2") && err.contains("S1"),
        "{err}"
    );
    // The whole hardware id: refused whole, nothing assigned to S2 either.
    let before = oem::Assignments::load(&dir).unwrap().vehicles;
    let err = assign(&w, oem::AssignTarget::HardwareId("BRAKE-A".into()), "1.0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("S1"), "{err}");
    assert_eq!(oem::Assignments::load(&dir).unwrap().vehicles, before);
    // The same counter, or another ECU that reported nothing, is fine.
    assign(&w, one("S1"), "2.0").unwrap();
    assign(&w, one("S2"), "1.0").unwrap();
}

/// Scenario: Fleet backend | a compromised gateway replays an ECU's older signed entry (a lower release counter) in a newer report, so the OEM would assign a release between that counter and the highest the ECU ever reported | refused at `oem assign`: the director checks the highest counter the ECU ever reported, not the last one
#[test]
fn a_replayed_lower_report_does_not_open_an_assignment_below_the_highest_counter() {
    let w = World::new();
    let dir = w.p("oem");
    let mut replayed = s1_running_2_0();
    if let Some(image) = replayed.image.as_mut() {
        image.version = "1.0".into();
        image.release_counter = 1;
    }
    let now = DateTime::now().0;
    let mut db = oem::reports::open(&dir).unwrap();
    // S1 reported 2.0 (counter 2); a later report replays its older entry (1.0, counter 1).
    db.transaction(|tx| ota_fleet::store::record_ecu(tx, "VIN1", &s1_running_2_0(), now))
        .unwrap();
    db.transaction(|tx| ota_fleet::store::record_ecu(tx, "VIN1", &replayed, now + 60))
        .unwrap();
    drop(db);
    let s1 = || oem::AssignTarget::Vehicle {
        vin: "VIN1".into(),
        serial: Some("S1".into()),
    };
    // 1.0 is not below the last report's counter (1), but is below the highest (2).
    match assign(&w, s1(), "1.0") {
        Err(ota_repo::error::Error::Assign(r)) => match *r {
            ota_repo::error::AssignRefusal::BelowReported {
                running_counter,
                highest,
                counter,
                ..
            } => assert_eq!((running_counter, highest, counter), (1, 2, 1)),
            other => panic!("refused for another reason: {other}"),
        },
        other => panic!("not refused as below the reported counter: {other:?}"),
    }
    assign(&w, s1(), "2.0").unwrap();
}

/// Scenario: Uptane release counter | the report database is lost (deleted, a restore without it) and the OEM assigns below what a vehicle reported | refused: a database made here before and missing now is named as lost (restore it, or start afresh knowingly), never read as "no vehicle reported anything"
#[test]
fn a_lost_report_database_is_not_an_empty_one() {
    let w = World::new();
    let dir = w.p("oem");
    let s1 = s1_running_2_0();
    oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::record_ecu(tx, "VIN1", &s1, DateTime::now().0))
        .unwrap();
    let saved = std::fs::read(dir.join("reports.sqlite")).unwrap();
    std::fs::remove_file(dir.join("reports.sqlite")).unwrap();
    let s1_target = || oem::AssignTarget::Vehicle {
        vin: "VIN1".into(),
        serial: Some("S1".into()),
    };
    let err = assign(&w, s1_target(), "1.0").unwrap_err().to_string();
    assert!(
        err.contains("reports.sqlite is missing") && err.contains("backup"),
        "{err}"
    );
    assert!(
        !dir.join("reports.sqlite").exists(),
        "an empty one was made"
    );
    let err = oem::reports::open_existing(&dir).err().unwrap().to_string();
    assert!(err.contains("missing"), "{err}");
    // Restored: the director refuses as before.
    std::fs::write(dir.join("reports.sqlite"), saved).unwrap();
    let err = assign(&w, s1_target(), "1.0").unwrap_err().to_string();
    assert!(err.contains("release counter 2"), "{err}");
}

/// `oem assign` of brake-fw `version` to ECU `serial` of VIN1, asking the regulators as the
/// CLI does (`force`: `--force`).
fn ask(w: &World, serial: &str, version: &str, force: bool) -> Result<oem::Assigned, String> {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: "VIN1".into(),
                serial: Some(serial.into()),
            },
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: version.into(),
            approval: oem::Approval::Ask {
                ca: None,
                force,
                now: w.now,
            },
            rules: Default::default(),
        },
    )
    .map_err(|e| e.to_string())
}

/// The assignments recorded for VIN1, as (serial, version).
fn recorded(w: &World) -> Vec<(String, String)> {
    oem::Assignments::load(&w.p("oem"))
        .unwrap()
        .vehicles
        .get("VIN1")
        .map(|m| {
            m.iter()
                .map(|(s, a)| (s.clone(), a.version.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Scenario: Regulators | the OEM assigns a release a regulator revoked, or one a regulator rejected while another approved it | refused at `oem assign`, even with --force, nothing written: every vehicle would refuse it (the director asks the regulators through the vehicles' own walk)
#[test]
fn an_assignment_of_a_vetoed_release_is_refused_even_forced() {
    let w = World::new();
    // Approved by tuv: assigned, and the answer names who approved.
    let done = ask(&w, "S1", "1.0", false).unwrap();
    assert_eq!(done.approved_by, ["tuv"]);
    assert_eq!(done.ecus, [("VIN1".to_string(), "S1".to_string())]);
    // 2.0's bytes revoked by tuv.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![2u8; 5000]));
    ota_repo::regulator::revoke(&w.p("tuv"), &sha, "backdoor in the CAN stack", w.now).unwrap();
    ota_repo::regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    for force in [false, true] {
        let err = ask(&w, "S2", "2.0", force).unwrap_err();
        assert!(
            err.contains("tuv revoked") && err.contains("never assigned"),
            "{err}"
        );
    }
    // A second regulator whose scanner finds something in every image: it rejects 0.9,
    // which tuv approved; one veto is enough.
    w.add_regulator("dekra");
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    w.published("oem");
    let opts = ota_repo::regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: Some("false {}".into()),
        ca: None,
        supplier_from: Default::default(),
        decryption_keys: None,
    };
    ota_repo::regulator::review(&w.p("dekra"), opts, w.now).unwrap();
    ota_repo::regulator::publish(&w.p("dekra"), w.now, false).unwrap();
    for force in [false, true] {
        let err = ask(&w, "S2", "0.9", force).unwrap_err();
        assert!(err.contains("dekra rejected"), "{err}");
    }
    assert_eq!(recorded(&w), [("S1".to_string(), "1.0".to_string())]);
}

/// Scenario: Regulators | the OEM assigns a release fewer regulators approved than it requires (review pending), or while a regulator cannot be reached | refused at `oem assign` (vehicles would hold the update and every other update of the vehicle); --force assigns it ahead of approval, saying so
#[test]
fn an_assignment_not_yet_approved_is_refused_unless_forced() {
    let w = World::new();
    // Two regulators required; dekra has not reviewed anything yet.
    w.add_regulator("dekra");
    oem::regulator_threshold(&w.p("oem"), 2).unwrap();
    let err = ask(&w, "S1", "1.0", false).unwrap_err();
    assert!(
        err.contains("1 of 2 required") && err.contains("--force"),
        "{err}"
    );
    assert!(recorded(&w).is_empty());
    let done = ask(&w, "S1", "1.0", true).unwrap();
    assert!(
        done.forced.as_deref().is_some_and(|w| w.contains("1 of 2")),
        "{done:?}"
    );
    assert_eq!(recorded(&w), [("S1".to_string(), "1.0".to_string())]);
    // A regulator that cannot be reached: the same.
    oem::regulator_threshold(&w.p("oem"), 1).unwrap();
    std::fs::rename(w.p("tuv/repository"), w.p("tuv/elsewhere")).unwrap();
    let err = ask(&w, "S2", "2.0", false).unwrap_err();
    assert!(err.contains("tuv") && err.contains("--force"), "{err}");
    assert!(ask(&w, "S2", "2.0", true).unwrap().forced.is_some());
}

/// Scenario: Uptane hardware id | the OEM assigns an image to an ECU of another hardware id | refused at `oem assign`, nothing written
#[test]
fn an_assignment_to_another_hardware_id_is_refused() {
    let w = World::new();
    oem::vehicle_add(&w.p("oem"), "VIN2", &["B1:BRAKE-B".into()], &[]).unwrap();
    let err = oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: "VIN2".into(),
                serial: Some("B1".into()),
            },
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "1.0".into(),
            approval: oem::Approval::Ask {
                ca: None,
                force: true,
                now: w.now,
            },
            rules: Default::default(),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hardware id BRAKE-B"), "{err}");
    assert!(!oem::Assignments::load(&w.p("oem"))
        .unwrap()
        .vehicles
        .contains_key("VIN2"));
}

/// A verified report of `vin` as the backend records it: `running` ECUs on brake-fw
/// `version` (counter 1), and `refused` ECUs with a refusal event about it.
fn reported(w: &World, vin: &str, at: i64, running: &[&str], refused: &[&str], version: &str) {
    let failed: Vec<(&str, Outcome)> = refused.iter().map(|s| (*s, Outcome::Refused)).collect();
    reported_with(w, vin, at, running, &failed, version)
}

/// [`reported`] with each failed ECU's outcome (refused, or reverted by its bootloader).
fn reported_with(
    w: &World,
    vin: &str,
    at: i64,
    running: &[&str],
    failed: &[(&str, Outcome)],
    version: &str,
) {
    use ota_fleet::report::{EcuState, Running, Verdict};
    use ota_metadata::documents::EcuEvent;
    let verdict = Verdict {
        vin: vin.into(),
        generated: DateTime(at),
        counter: 0,
        sha256: format!("{vin}-{at}"),
        accepted: running
            .iter()
            .map(|s| EcuState {
                serial: s.to_string(),
                hardware_id: "BRAKE-A".into(),
                image: Some(Running {
                    uid: "brake-fw".into(),
                    version: version.into(),
                    sha256: "00".repeat(32),
                    release_counter: 1,
                }),
            })
            .collect(),
        flagged: Vec::new(),
        recalls: Vec::new(),
        events: failed
            .iter()
            .enumerate()
            .map(|(i, (s, outcome))| EcuEvent {
                seq: at as u64 * 100 + i as u64,
                serial: s.to_string(),
                outcome: *outcome,
                code: match outcome {
                    Outcome::Reverted => "faulted before confirming itself".into(),
                    _ => "NRC 0x72 programming failure".into(),
                },
                uid: "brake-fw".into(),
                version: version.into(),
                update: "assignments v2".into(),
                at: DateTime(at),
            })
            .collect(),
    };
    oem::reports::open(&w.p("oem"))
        .unwrap()
        .transaction(|tx| ota_fleet::store::apply(tx, &verdict, at))
        .unwrap();
}

/// The ECUs assigned brake-fw 1.0, as (VIN, serial).
fn assigned_1_0(w: &World) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (vin, ecus) in oem::Assignments::load(&w.p("oem")).unwrap().vehicles {
        for (serial, a) in ecus {
            if a.version == "1.0" {
                out.push((vin.clone(), serial));
            }
        }
    }
    out
}

/// Scenario: Fleet backend | a release that fails in the field is rolled out to a hardware id | assigned stage by stage (10%, 50%, 100%), advanced when the ECUs so far report running it, halted when their refusals and reverts pass the limit, and the assignments not yet installed are withdrawn
#[test]
fn a_rollout_advances_on_success_and_halts_on_failures() {
    let w = World::new();
    add_brake_vehicles(&w, 2..=20);
    let approval = oem::Approval::Ask {
        ca: None,
        force: false,
        now: w.now,
    };
    let step = oem::rollout::start(
        &w.p("oem"),
        oem::rollout::Start {
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "1.0".into(),
            hardware_id: "BRAKE-A".into(),
            stages: vec![10, 50, 100],
            success_bar: 50,
            failure_limit: 20,
            approval: approval.clone(),
        },
        w.now.0,
    )
    .unwrap();
    // 21 ECUs of BRAKE-A: 10% is 3 of them.
    assert!(
        matches!(
            step,
            oem::rollout::Step::Assigned {
                stage: 0,
                assigned: 3,
                ..
            }
        ),
        "{step:?}"
    );
    let first = assigned_1_0(&w);
    assert_eq!(first.len(), 3);
    // Nobody reported: it waits.
    let steps = oem::rollout::advance(&w.p("oem"), &approval, w.now.0).unwrap();
    assert!(
        matches!(steps[..], [oem::rollout::Step::Waiting { .. }]),
        "{steps:?}"
    );
    // Two of the three report running it: 66% meets the 50% bar, the next stage goes out.
    let t = w.now.0;
    reported(&w, &first[0].0, t + 1, &[&first[0].1], &[], "1.0");
    reported(&w, &first[1].0, t + 1, &[&first[1].1], &[], "1.0");
    let steps = oem::rollout::advance(&w.p("oem"), &approval, t).unwrap();
    assert!(
        matches!(
            steps[..],
            [oem::rollout::Step::Assigned {
                stage: 1,
                assigned: 8,
                ..
            }]
        ),
        "{steps:?}"
    );
    let second = assigned_1_0(&w);
    assert_eq!(second.len(), 11);
    // Three of the eleven fail (27%, above the 20% limit): two refuse it, and on the third
    // it faults at start-up and its bootloader reverts it. Halted, and the nine that did not
    // install it lose the assignment; the two that run it keep theirs.
    let refusing: Vec<&(String, String)> = second
        .iter()
        .filter(|e| !first[..2].contains(e))
        .take(3)
        .collect();
    for (i, (vin, serial)) in refusing.iter().enumerate() {
        let outcome = if i == 2 {
            Outcome::Reverted
        } else {
            Outcome::Refused
        };
        reported_with(&w, vin, t + 2 + i as i64, &[], &[(serial, outcome)], "1.0");
    }
    let steps = oem::rollout::advance(&w.p("oem"), &approval, t).unwrap();
    let [oem::rollout::Step::Halted {
        reason, withdrawn, ..
    }] = &steps[..]
    else {
        panic!("{steps:?}")
    };
    assert!(reason.contains("3 of 11 ECUs failed"), "{reason}");
    assert_eq!(*withdrawn, 9);
    let mut kept = assigned_1_0(&w);
    kept.sort();
    let mut ran = first[..2].to_vec();
    ran.sort();
    assert_eq!(kept, ran);
    // Halted stays halted: advance no longer touches it.
    assert!(oem::rollout::advance(&w.p("oem"), &approval, t)
        .unwrap()
        .is_empty());
    let status = oem::rollout::status(&w.p("oem")).unwrap();
    assert_eq!(status[0].rollout.state, ota_fleet::rollout::State::Halted);
    assert_eq!(
        (status[0].progress.succeeded, status[0].progress.failed),
        (2, 3)
    );
}

/// Scenario: Fleet backend | the OEM chooses its report database by a relative path, an in-memory database or an SQLite URI (reports acknowledged and lost; `oem assign` run from elsewhere finding no reports) | a relative path is the working directory's; in-memory databases and URIs are refused
#[test]
fn report_database_paths_are_the_working_directorys_and_on_disk() {
    let w = World::new();
    let dir = w.p("oem");
    for bad in [
        ":memory:",
        "file:x?mode=memory",
        "sqlite:",
        "",
        "mysql://db/reports",
    ] {
        let err = oem::reports::set_database(&dir, Some(bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SQLite file"), "{bad}: {err}");
    }
    // A directory that does not exist is named, not made (a typo must not look like success).
    let err = oem::reports::set_database(&dir, Some("db/reports.sqlite"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("db/reports.sqlite"), "{err}");
    std::fs::create_dir(dir.join("db")).unwrap();
    // Relative to the working directory, wherever the command runs.
    let at = oem::reports::set_database(&dir, Some("db/reports.sqlite")).unwrap();
    assert_eq!(
        at,
        ota_fleet::Location::Sqlite(dir.join("db/reports.sqlite"))
    );
    assert!(dir.join("db/reports.sqlite").exists());
}

/// Scenario: Regulators | after the OEM saw a regulator veto a release, the regulator's tree is rolled back to before the veto (or blocked) and the OEM runs `oem assign --force` | refused: a veto once seen is remembered, --force never assigns it
#[test]
fn a_veto_once_seen_is_not_forced_past_a_rolled_back_regulator() {
    let w = World::new();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![2u8; 5000]));
    let before = w.p("tuv-before");
    ota_testkit::copy_tree(&w.p("tuv/repository"), &before);
    ota_repo::regulator::revoke(&w.p("tuv"), &sha, "backdoor", w.now).unwrap();
    ota_repo::regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    assert!(ask(&w, "S2", "2.0", false).unwrap_err().contains("revoked"));
    // The tree from before the revocation is served again.
    std::fs::remove_dir_all(w.p("tuv/repository")).unwrap();
    ota_testkit::copy_tree(&before, &w.p("tuv/repository"));
    let err = ask(&w, "S2", "2.0", true).unwrap_err();
    assert!(err.contains("seen vetoing"), "{err}");
    assert!(recorded(&w).is_empty());
}

/// Scenario: Fleet backend | a stolen vehicle key signed a report dated ahead and events numbered ahead; the OEM registers the vehicle's new key | the vehicle's report history is forgotten: reports under the new key are news again
#[test]
fn a_new_vehicle_key_forgets_the_old_keys_report_history() {
    let w = World::new();
    let dir = w.p("oem");
    let old = w.p("old-vehicle.pem");
    // Keys of the vehicle's own (the OEM's keys are refused as a vehicle's).
    std::fs::write(&old, world::regulator_key_pem("old-vehicle")).unwrap();
    oem::vehicle_key(&dir, "VIN1", &old).unwrap();
    reported(&w, "VIN1", DateTime::now().0 + 3600, &["S1"], &[], "1.0");
    let rows = |w: &World| {
        oem::reports::open(&w.p("oem"))
            .unwrap()
            .transaction(|tx| tx.count("SELECT COUNT(*) FROM vehicles WHERE vin = 'VIN1'", &[]))
            .unwrap()
    };
    assert_eq!(rows(&w), 1);
    let new = w.p("new-vehicle.pem");
    std::fs::write(&new, world::regulator_key_pem("new-vehicle")).unwrap();
    oem::vehicle_key(&dir, "VIN1", &new).unwrap();
    assert_eq!(rows(&w), 0);
}

/// Vehicles `VIN{i}` for each `i`, one BRAKE-A ECU each (serial `B-VIN{i}`: a serial names one
/// ECU in the fleet).
fn add_brake_vehicles(w: &World, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        oem::vehicle_add(
            &w.p("oem"),
            &format!("VIN{i}"),
            &[format!("B-VIN{i}:BRAKE-A")],
            &[],
        )
        .unwrap();
    }
}

fn start_rollout(
    w: &World,
    version: &str,
    stages: Vec<u32>,
    failure_limit: u32,
) -> oem::rollout::Step {
    oem::rollout::start(
        &w.p("oem"),
        oem::rollout::Start {
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: version.into(),
            hardware_id: "BRAKE-A".into(),
            stages,
            success_bar: 50,
            failure_limit,
            approval: oem::Approval::Ask {
                ca: None,
                force: false,
                now: w.now,
            },
        },
        w.now.0,
    )
    .unwrap()
}

fn assigned_to(w: &World, vin: &str, serial: &str) -> Option<(String, Option<String>)> {
    oem::Assignments::load_for(&w.p("oem"), &[vin])
        .unwrap()
        .vehicles
        .get(vin)
        .and_then(|v| v.get(serial))
        .map(|a| (a.version.clone(), a.set.clone()))
}

fn assign_by_hand(w: &World, vin: &str, serial: &str, version: &str, set: Option<&str>) {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: vin.into(),
                serial: Some(serial.into()),
            },
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: version.into(),
            approval: oem::Approval::NotAsked,
            rules: oem::Rules {
                set: set.map(str::to_string),
                ..Default::default()
            },
        },
    )
    .unwrap();
}

/// Scenario: Fleet backend | a rollout meets ECUs the OEM assigned by hand (before, and during it), then halts | the rollout leaves ECUs holding another assignment alone, and its halt withdraws only its own assignments (its release, its set)
#[test]
fn a_rollout_touches_only_its_own_assignments() {
    let w = World::new();
    for vin in ["VIN2", "VIN3"] {
        oem::vehicle_add(&w.p("oem"), vin, &[format!("B-{vin}:BRAKE-A")], &[]).unwrap();
    }
    assign_by_hand(&w, "VIN2", "B-VIN2", "2.0", None);
    start_rollout(&w, "1.0", vec![100], 50);
    assert_eq!(
        assigned_to(&w, "VIN2", "B-VIN2"),
        Some(("2.0".into(), None)),
        "overwritten"
    );
    let rollout_set = Some("rollout acme/brake-fw/1.0/BRAKE-A".to_string());
    assert_eq!(
        assigned_to(&w, "VIN3", "B-VIN3"),
        Some(("1.0".into(), rollout_set))
    );
    // By hand during the rollout, in a set of its own.
    assign_by_hand(&w, "VIN3", "B-VIN3", "2.0", Some("manual"));
    oem::rollout::halt(&w.p("oem"), "acme/brake-fw/1.0/BRAKE-A", "test", w.now.0).unwrap();
    assert_eq!(
        assigned_to(&w, "VIN3", "B-VIN3"),
        Some(("2.0".into(), Some("manual".into())))
    );
    assert_eq!(
        assigned_to(&w, "VIN2", "B-VIN2"),
        Some(("2.0".into(), None))
    );
    assert_eq!(
        assigned_to(&w, "VIN1", "S1"),
        None,
        "the rollout's own is withdrawn"
    );
}

/// Scenario: Fleet backend | one rollout cannot assign its next stage (its regulator unreachable) while another is past its failure limit | `rollout advance` still halts the other (each rollout on its own) and exits non-zero naming the one it could not move
#[test]
fn one_stuck_rollout_does_not_keep_another_from_halting() {
    let w = World::new();
    add_brake_vehicles(&w, 2..=9);
    // 0.9 sorts first: it goes out to half, its members all succeed, its next stage is due.
    start_rollout(&w, "0.9", vec![50, 100], 50);
    // 1.0 goes to half of the rest (the ECUs 0.9 holds are busy), with no failure allowed;
    // two ECUs stay free for 0.9's next stage.
    start_rollout(&w, "1.0", vec![50, 100], 0);
    let t = w.now.0;
    for (vin, ecus) in oem::Assignments::load(&w.p("oem")).unwrap().vehicles {
        for (serial, a) in ecus {
            let (running, refused): (Vec<&str>, Vec<&str>) = if a.version == "0.9" {
                (vec![&serial], vec![])
            } else {
                (vec![], vec![&serial])
            };
            reported(&w, &vin, t + 1, &running, &refused, &a.version);
        }
    }
    // 0.9's next stage cannot be checked with the regulator.
    std::fs::rename(w.p("tuv/repository"), w.p("tuv/gone")).unwrap();
    let approval = oem::Approval::Ask {
        ca: None,
        force: false,
        now: w.now,
    };
    let steps = oem::rollout::advance(&w.p("oem"), &approval, t).unwrap();
    assert!(
        matches!(&steps[0], oem::rollout::Step::Failed { id, .. } if id.contains("0.9")),
        "{steps:?}"
    );
    assert!(
        matches!(&steps[1], oem::rollout::Step::Halted { id, .. } if id.contains("1.0")),
        "{steps:?}"
    );
}

/// Scenario: Regulators | a regulator revokes a release while its staged rollout waits on its first stage | `rollout advance` halts it (whatever the progress) and withdraws its pending assignments, instead of failing on every run while vehicles hold the vetoed release
#[test]
fn a_rollout_of_a_release_vetoed_mid_way_is_halted_and_withdrawn() {
    let w = World::new();
    add_brake_vehicles(&w, 2..=4);
    start_rollout(&w, "2.0", vec![50, 100], 50);
    let assigned = |w: &World| -> usize {
        oem::Assignments::load(&w.p("oem"))
            .unwrap()
            .vehicles
            .values()
            .flat_map(|e| e.values())
            .filter(|a| a.version == "2.0")
            .count()
    };
    assert!(assigned(&w) > 0);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![2u8; 5000]));
    ota_repo::regulator::revoke(&w.p("tuv"), &sha, "backdoor", w.now).unwrap();
    ota_repo::regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    let approval = oem::Approval::Ask {
        ca: None,
        force: false,
        now: w.now,
    };
    let steps = oem::rollout::advance(&w.p("oem"), &approval, w.now.0).unwrap();
    assert!(
        matches!(&steps[..], [oem::rollout::Step::Halted { reason, withdrawn, .. }]
            if reason.contains("vetoed") && *withdrawn > 0),
        "{steps:?}"
    );
    assert_eq!(assigned(&w), 0, "the vetoed release is still assigned");
    let status = oem::rollout::status(&w.p("oem")).unwrap();
    assert_eq!(status[0].rollout.state, ota_fleet::rollout::State::Halted);
    // Halted rollouts are not looked at again.
    assert!(oem::rollout::advance(&w.p("oem"), &approval, w.now.0)
        .unwrap()
        .is_empty());
}

/// Scenario: Fleet backend | an assignment to a whole hardware id carries a conflict that only a vehicle in the last shard has | refused, and no shard is written (the rules of every vehicle are checked before any shard is)
#[test]
fn a_hardware_id_assignment_refused_in_one_shard_writes_no_shard() {
    let w = World::new();
    let dir = w.p("oem");
    let vins: Vec<String> = (2..=40).map(|i| format!("VIN{i}")).collect();
    for vin in &vins {
        oem::vehicle_add(&dir, vin, &[format!("B-{vin}:BRAKE-A")], &[]).unwrap();
    }
    let fleet = oem::privacy::fleet_secret(&dir).unwrap();
    let last = vins
        .iter()
        .max_by_key(|v| oem::store::shard_of(&fleet, v))
        .unwrap();
    // That vehicle reported an abs-fw ECU.
    let abs = ota_fleet::report::EcuState {
        serial: "A1".into(),
        hardware_id: "ABS-1".into(),
        image: Some(ota_fleet::report::Running {
            uid: "abs-fw".into(),
            version: "3.0".into(),
            sha256: String::new(),
            release_counter: 3,
        }),
    };
    oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::record_ecu(tx, last, &abs, 1))
        .unwrap();
    let err = oem::assign(
        &dir,
        oem::Assign {
            target: oem::AssignTarget::HardwareId("BRAKE-A".into()),
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "1.0".into(),
            approval: oem::Approval::NotAsked,
            rules: oem::Rules {
                conflicts: vec!["abs-fw".parse().unwrap()],
                ..Default::default()
            },
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("never runs beside abs-fw"), "{err}");
    assert!(oem::Assignments::load(&dir)
        .unwrap()
        .vehicles
        .values()
        .all(|v| v.is_empty()));
}

/// Scenario: Fleet backend | a vehicle removed (scrapped) and added again; its history from before, and reports signed before the re-add, offered afterwards | removal ends its history: nothing from before counts, and a report generated before the re-add is refused
#[test]
fn a_removed_vehicle_added_again_starts_a_new_history() {
    let w = World::new();
    let dir = w.p("oem");
    let t = DateTime::now().0;
    // VIN1 reported S1 running 1.0 and S2 refusing it.
    reported(&w, "VIN1", t - 100, &["S1"], &["S2"], "1.0");
    let count = |w: &World, table: &str| {
        oem::reports::open(&w.p("oem"))
            .unwrap()
            .transaction(|tx| {
                tx.count(
                    &format!("SELECT COUNT(*) FROM {table} WHERE vin = 'VIN1'"),
                    &[],
                )
            })
            .unwrap()
    };
    assert_eq!((count(&w, "ecus"), count(&w, "events")), (1, 1));
    oem::vehicle_remove(&dir, "VIN1", DateTime(t)).unwrap();
    for table in ["ecus", "events", "flags", "recalls", "rollout_members"] {
        assert_eq!(count(&w, table), 0, "{table} after the removal");
    }
    assert!(oem::reports::events(&dir, "VIN1").unwrap().is_empty());
    // Back in the fleet (the same VIN, a unit rebuilt). A report signed before the re-add,
    // kept and offered now, is refused; one generated after it counts.
    oem::vehicle_add(
        &dir,
        "VIN1",
        &["S1:BRAKE-A".into(), "S2:BRAKE-A".into()],
        &[],
    )
    .unwrap();
    let stale = verdict_at("VIN1", t - 50);
    let err = oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::apply(tx, &stale, t))
        .unwrap_err()
        .to_string();
    assert!(err.contains("before the vehicle's history began"), "{err}");
    assert_eq!(count(&w, "ecus"), 0);
    reported(&w, "VIN1", DateTime::now().0 + 5, &["S1"], &[], "1.0");
    assert_eq!(count(&w, "ecus"), 1);
    // The same through `oem vehicle import`.
    oem::vehicle_remove(&dir, "VIN1", DateTime::now()).unwrap();
    assert_eq!(count(&w, "ecus"), 0);
    let csv = w.p("back.csv");
    std::fs::write(&csv, "VIN1,S1:BRAKE-A;S2:BRAKE-A\n").unwrap();
    assert_eq!(oem::import::import_file(&dir, &csv).unwrap().added, 1);
    let err = oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::apply(tx, &verdict_at("VIN1", t), t))
        .unwrap_err()
        .to_string();
    assert!(err.contains("before the vehicle's history began"), "{err}");
}

/// A report of `vin` generated at `at`: S1 running brake-fw 1.0.
fn verdict_at(vin: &str, at: i64) -> ota_fleet::report::Verdict {
    ota_fleet::report::Verdict {
        vin: vin.into(),
        generated: DateTime(at),
        counter: 0,
        sha256: format!("{vin}-{at}-stale"),
        accepted: vec![ota_fleet::report::EcuState {
            serial: "S1".into(),
            hardware_id: "BRAKE-A".into(),
            image: Some(ota_fleet::report::Running {
                uid: "brake-fw".into(),
                version: "1.0".into(),
                sha256: "00".repeat(32),
                release_counter: 1,
            }),
        }],
        flagged: Vec::new(),
        recalls: Vec::new(),
        events: Vec::new(),
    }
}
