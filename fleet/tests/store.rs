//! The report store, each case on SQLite and on a real PostgreSQL server (same statements, same
//! behaviour): reports recorded once, replays refused, storage per vehicle bounded whatever a
//! vehicle's key signs, nothing written for a report that does not verify.

mod common;
use common::*;
use ota_fleet::report::verify;
use ota_fleet::sql::Value;
use ota_fleet::store::{self, Applied, MAX_EVENTS_PER_VEHICLE, MAX_FLAGS_PER_VEHICLE};
use ota_fleet::{Db, FleetError};
use ota_metadata::documents::Outcome;

fn ingest(db: &mut Db, bytes: &[u8]) -> Result<Applied, FleetError> {
    ota_fleet::ingest(db, &inventory(&["VIN1", "VIN2"]), bytes)
}

fn count(db: &mut Db, sql: &str) -> i64 {
    db.transaction(|tx| tx.count(sql, &[])).unwrap()
}

/// Scenario: Fleet backend | a vehicle's report sent again, an older one replayed, two made in the same second | the same one again changes nothing, an older one is refused as a replay, the same second is ordered by the gateway's signed counter (SQLite and PostgreSQL)
#[test]
fn a_report_is_recorded_once_and_a_replay_is_refused() {
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("replay") {
        let r1 = report("VIN1", 1000, 1, both("1.0", 1), vec![]);
        let got = ingest(&mut db, &r1).unwrap();
        assert!(
            matches!(got, Applied::Ingested { accepted: 2, ref flagged, .. } if flagged.is_empty()),
            "{at}: {got:?}"
        );
        let running = db
            .transaction(|tx| store::reported(tx, "VIN1", "S2"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                running.uid.as_str(),
                running.version.as_str(),
                running.release_counter
            ),
            ("brake-fw", "1.0", 1),
            "{at}"
        );
        assert_eq!(ingest(&mut db, &r1).unwrap(), Applied::AlreadySeen, "{at}");

        let r2 = report("VIN1", 2000, 2, both("2.0", 2), vec![]);
        ingest(&mut db, &r2).unwrap();
        // Older, signed by the same key: refused, and what S2 runs stays 2.0.
        let old = report("VIN1", 1500, 9, both("1.5", 1), vec![]);
        let err = ingest(&mut db, &old).unwrap_err();
        assert!(matches!(err, FleetError::Replay { .. }), "{at}: {err}");
        // The same second: the counter orders.
        let same_lower = report("VIN1", 2000, 1, both("1.5", 1), vec![]);
        assert!(matches!(
            ingest(&mut db, &same_lower),
            Err(FleetError::Replay { .. })
        ));
        let same_higher = report("VIN1", 2000, 3, both("3.0", 3), vec![]);
        ingest(&mut db, &same_higher).unwrap();
        let running = db
            .transaction(|tx| store::reported(tx, "VIN1", "S1"))
            .unwrap()
            .unwrap();
        assert_eq!(running.version, "3.0", "{at}");
    }
}

/// Scenario: Fleet backend | one vehicle's key signs reports naming thousands of made-up ECUs (a flag flood) | at most 64 flags per vehicle are kept, the rest counted in one row; a report of more than 512 ECUs is refused whole (SQLite and PostgreSQL)
#[test]
fn one_vehicle_key_cannot_grow_the_flags_past_the_cap() {
    let dbs = Databases::new();
    let template = ecu_entry(ecu_key(), "S1", "BRAKE-A", None);
    let fakes = |round: usize| -> Vec<_> {
        (0..500)
            .map(|i| {
                let mut e = template.clone();
                e.serial = format!("FAKE-{round}-{i}");
                e
            })
            .collect()
    };
    for (at, mut db) in dbs.each("flood") {
        for round in 0..10 {
            let r = report("VIN1", 1000 + round as i64, 0, fakes(round), vec![]);
            let got = ingest(&mut db, &r).unwrap();
            // Every fake flagged, and S1 and S2 (silent) too.
            let Applied::Ingested { flagged, .. } = got else {
                panic!("{at}")
            };
            assert_eq!(flagged.len(), 502, "{at}");
        }
        let rows = count(&mut db, "SELECT COUNT(*) FROM flags WHERE vin = 'VIN1'");
        assert_eq!(rows, MAX_FLAGS_PER_VEHICLE + 1, "{at}");
        let overflow = db
            .transaction(|tx| {
                tx.row(
                    "SELECT times FROM flags WHERE vin = 'VIN1' AND serial = '*'",
                    &[],
                )
            })
            .unwrap();
        // 5,020 flags (5,000 fakes and the silent S1 and S2 ten times), the first 64 kept by
        // name, the rest counted.
        assert_eq!(overflow, Some(vec![Value::Int(5020 - 64)]), "{at}");
        // Flags of another vehicle are unaffected by the cap.
        let other = report(
            "VIN2",
            1000,
            0,
            vec![ecu_entry(ecu_key(), "S1", "BRAKE-A", None)],
            vec![],
        );
        ingest(&mut db, &other).unwrap();
        assert_eq!(
            count(&mut db, "SELECT COUNT(*) FROM flags WHERE vin = 'VIN2'"),
            1,
            "{at}"
        );
        // More ECUs than any vehicle has: refused before anything is checked or written.
        let mut many = fakes(99);
        many.extend(fakes(98).into_iter().take(100));
        let r = report("VIN1", 5000, 0, many, vec![]);
        assert!(
            matches!(ingest(&mut db, &r), Err(FleetError::Malformed(m)) if m.contains("a vehicle reports at most 512")),
            "{at}"
        );
    }
}

/// Scenario: Fleet backend | reports carry what happened to each ECU (installed, refused with the ECU's code, recalled), repeated until old | each event kept once whatever the number of reports repeating it, the newest 256 per vehicle (SQLite and PostgreSQL)
#[test]
fn events_are_kept_once_and_bounded() {
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("events") {
        let first = vec![
            event(1, "S1", Outcome::Refused, "2.0"),
            event(2, "S1", Outcome::Installed, "2.1"),
        ];
        ingest(
            &mut db,
            &report("VIN1", 1000, 1, both("2.1", 2), first.clone()),
        )
        .unwrap();
        let mut again = first.clone();
        again.push(event(3, "S2", Outcome::Recalled, "2.1"));
        let got = ingest(&mut db, &report("VIN1", 1001, 2, both("2.1", 2), again)).unwrap();
        assert!(
            matches!(got, Applied::Ingested { new_events: 1, .. }),
            "{at}: {got:?}"
        );
        let events = db.transaction(|tx| store::events(tx, "VIN1")).unwrap();
        let got: Vec<(u64, Outcome, &str)> = events
            .iter()
            .map(|e| (e.seq, e.outcome, e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, Outcome::Refused, "0xF3 signature"),
                (2, Outcome::Installed, ""),
                (3, Outcome::Recalled, "")
            ],
            "{at}"
        );
        assert_eq!(events[1].update, "assignments v3");
        // An event of an ECU the vehicle does not have is not kept.
        let stray = vec![event(4, "S9", Outcome::Installed, "2.1")];
        ingest(&mut db, &report("VIN1", 1002, 3, both("2.1", 2), stray)).unwrap();
        assert_eq!(
            db.transaction(|tx| store::events(tx, "VIN1"))
                .unwrap()
                .len(),
            3
        );
        // Many events: the newest are kept.
        for chunk in 0..3u64 {
            let batch = (0..200)
                .map(|i| event(10 + chunk * 200 + i, "S1", Outcome::Installed, "2.1"))
                .collect();
            ingest(
                &mut db,
                &report("VIN1", 2000 + chunk as i64, 0, both("2.1", 2), batch),
            )
            .unwrap();
        }
        let events = db.transaction(|tx| store::events(tx, "VIN1")).unwrap();
        assert_eq!(events.len() as i64, MAX_EVENTS_PER_VEHICLE, "{at}");
        assert_eq!(events.last().unwrap().seq, 10 + 599, "{at}");
    }
}

/// Scenario: Fleet backend | a report that does not verify (unknown vehicle, another key, a tampered ECU entry) | refused or flagged before anything about the vehicle is written (SQLite and PostgreSQL)
#[test]
fn a_report_that_does_not_verify_writes_nothing() {
    let dbs = Databases::new();
    let inv = inventory(&["VIN1"]);
    for (at, mut db) in dbs.each("unverified") {
        let unknown = report("VIN9", 1000, 1, both("1.0", 1), vec![]);
        assert!(matches!(
            verify(&inv, &unknown),
            Err(FleetError::UnknownVehicle(_))
        ));
        // Signed by another key than VIN1's.
        let mut doc: serde_json::Value =
            serde_json::from_slice(&report("VIN1", 1000, 1, both("1.0", 1), vec![])).unwrap();
        doc["signatures"][0]["sig"] = serde_json::Value::from("00".repeat(256));
        let forged = serde_json::to_vec(&doc).unwrap();
        assert!(
            matches!(
                ota_fleet::ingest(&mut db, &inv, &forged),
                Err(FleetError::BadSignature { .. })
            ),
            "{at}"
        );
        assert_eq!(count(&mut db, "SELECT COUNT(*) FROM vehicles"), 0, "{at}");
        // An ECU entry whose identification was changed after the ECU signed it: that ECU is
        // flagged, nothing recorded of what it runs.
        let mut entries = both("1.0", 1);
        let mut id = hex::decode(&entries[0].identification).unwrap();
        id[96] = b'9';
        entries[0].identification = hex::encode(id);
        let got =
            ota_fleet::ingest(&mut db, &inv, &report("VIN1", 1000, 1, entries, vec![])).unwrap();
        let Applied::Ingested {
            accepted, flagged, ..
        } = got
        else {
            panic!()
        };
        assert_eq!((accepted, flagged.len()), (1, 1), "{at}");
        assert!(db
            .transaction(|tx| store::reported(tx, "VIN1", "S1"))
            .unwrap()
            .is_none());
        assert!(db
            .transaction(|tx| store::reported(tx, "VIN1", "S2"))
            .unwrap()
            .is_some());
    }
}

/// Scenario: Fleet backend | a report database migrated by a newer release | refused with the versions named, nothing written (SQLite and PostgreSQL)
#[test]
fn a_database_of_a_newer_release_is_refused() {
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("newer") {
        db.transaction(|tx| {
            tx.exec(
                "INSERT INTO schema_migrations (version, applied) VALUES (99, 0)",
                &[],
            )
        })
        .unwrap();
        drop(db);
        let err = Db::open(&at).err().expect("opened a newer database");
        assert!(
            matches!(err, FleetError::NewerSchema { found: 99, .. }),
            "{at}: {err}"
        );
    }
}

/// Fleet queries answer from the newest verified reports: who runs a release, who is behind a
/// release's counter on its hardware ids (SQLite and PostgreSQL).
/// Scenario: Fleet backend | a compromised gateway replays an older ECU entry, and the OEM asks who runs a release or is behind | the ECU is listed as reported, marked below the highest counter it reported before (never passed off as its plain current state)
#[test]
fn queries_answer_who_runs_a_release_and_who_is_behind() {
    use ota_fleet::query;
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("queries") {
        ingest(&mut db, &report("VIN1", 1000, 1, both("1.0", 1), vec![])).unwrap();
        ingest(&mut db, &report("VIN2", 1000, 1, both("2.0", 2), vec![])).unwrap();
        // VIN1 moves to 2.0 for S1 only.
        let mixed = vec![
            ecu_entry(ecu_key(), "S1", "BRAKE-A", Some(("brake-fw", "2.0", 2))),
            ecu_entry(ecu_key(), "S2", "BRAKE-A", Some(("brake-fw", "1.0", 1))),
        ];
        ingest(&mut db, &report("VIN1", 2000, 2, mixed, vec![])).unwrap();
        let running = db
            .transaction(|tx| query::running(tx, "brake-fw", "2.0"))
            .unwrap();
        let who: Vec<(&str, &str)> = running
            .iter()
            .map(|r| (r.vin.as_str(), r.serial.as_str()))
            .collect();
        assert_eq!(
            who,
            [("VIN1", "S1"), ("VIN2", "S1"), ("VIN2", "S2")],
            "{at}"
        );
        assert_eq!(
            db.transaction(|tx| query::count_running(tx, "brake-fw", "2.0"))
                .unwrap(),
            3
        );
        let behind = db
            .transaction(|tx| query::behind(tx, &["BRAKE-A".into(), "BRAKE-B".into()], 2))
            .unwrap();
        let who: Vec<(&str, &str, u64)> = behind
            .iter()
            .map(|r| (r.vin.as_str(), r.serial.as_str(), r.release_counter))
            .collect();
        assert_eq!(who, [("VIN1", "S2", 1)], "{at}");
        assert!(behind.iter().all(|r| !r.below_highest()), "{at}");
        // An older entry of VIN2's S1 replayed (1.0 after 2.0): listed as reported, and said
        // to be below the highest counter it reported.
        let replayed = vec![
            ecu_entry(ecu_key(), "S1", "BRAKE-A", Some(("brake-fw", "1.0", 1))),
            ecu_entry(ecu_key(), "S2", "BRAKE-A", Some(("brake-fw", "2.0", 2))),
        ];
        ingest(&mut db, &report("VIN2", 3000, 2, replayed, vec![])).unwrap();
        let behind = db
            .transaction(|tx| query::behind(tx, &["BRAKE-A".into()], 2))
            .unwrap();
        let who: Vec<(&str, &str, u64, bool)> = behind
            .iter()
            .map(|r| {
                (
                    r.vin.as_str(),
                    r.serial.as_str(),
                    r.highest_release_counter,
                    r.below_highest(),
                )
            })
            .collect();
        assert_eq!(
            who,
            [("VIN1", "S2", 1, false), ("VIN2", "S1", 2, true)],
            "{at}"
        );
    }
}

/// Scenario: Fleet backend | a vehicle's key signs a report whose names carry terminal escape sequences (an ECU serial, an event's uid) | refused whole as malformed: names reach operators' terminals and queries
#[test]
fn names_with_control_characters_are_refused() {
    let inv = inventory(&["VIN1"]);
    let mut entries = both("1.0", 1);
    entries[1].serial = "S9\u{1b}[2J".into();
    let r = report("VIN1", 1000, 1, entries, vec![]);
    assert!(matches!(verify(&inv, &r), Err(FleetError::Malformed(m)) if m.contains("control")));
    let mut e = event(1, "S1", Outcome::Installed, "1.0");
    e.uid = "brake\nfw".into();
    let r = report("VIN1", 1000, 1, both("1.0", 1), vec![e]);
    assert!(matches!(verify(&inv, &r), Err(FleetError::Malformed(_))));
}

/// A rollout's state and its members' outcomes, read from the reports (SQLite and PostgreSQL);
/// the policy halts before it advances.
#[test]
fn rollouts_read_their_members_outcomes_from_the_reports() {
    use ota_fleet::rollout::{self, Decision, Rollout, State};
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("rollout") {
        let r = Rollout {
            id: Rollout::id_of("acme", "brake-fw", "2.0", "BRAKE-A"),
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "2.0".into(),
            hardware_id: "BRAKE-A".into(),
            stages: vec![50, 100],
            stage: 0,
            success_bar: 50,
            failure_limit: 30,
            state: State::Running,
            reason: String::new(),
            started: 1,
            updated: 1,
        };
        db.transaction(|tx| rollout::create(tx, &r)).unwrap();
        // A second start of the same rollout while it runs is refused.
        assert!(
            db.transaction(|tx| rollout::create(tx, &r)).is_err(),
            "{at}"
        );
        let members = [("VIN1", "S1"), ("VIN1", "S2"), ("VIN2", "S1")]
            .map(|(v, s)| (v.to_string(), s.to_string()));
        db.transaction(|tx| rollout::add_members(tx, &r.id, 0, &members))
            .unwrap();
        // VIN1's S1 runs 2.0; VIN2's S1 refused it; VIN1's S2 still runs 1.0.
        let vin1 = vec![
            ecu_entry(ecu_key(), "S1", "BRAKE-A", Some(("brake-fw", "2.0", 2))),
            ecu_entry(ecu_key(), "S2", "BRAKE-A", Some(("brake-fw", "1.0", 1))),
        ];
        ingest(&mut db, &report("VIN1", 1000, 1, vin1, vec![])).unwrap();
        let refused = vec![event(1, "S1", Outcome::Refused, "2.0")];
        ingest(&mut db, &report("VIN2", 1000, 1, both("1.0", 1), refused)).unwrap();
        let got = db.transaction(|tx| rollout::members(tx, &r)).unwrap();
        let outcomes: Vec<(&str, &str, bool, bool)> = got
            .iter()
            .map(|m| (m.vin.as_str(), m.serial.as_str(), m.succeeded, m.failed))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("VIN1", "S1", true, false),
                ("VIN1", "S2", false, false),
                ("VIN2", "S1", false, true)
            ],
            "{at}"
        );
        let p = rollout::progress(&got);
        // 1 of 3 failed (33%) is above 30%: halt, although 1 of 3 (33%) succeeded... below
        // the 50% bar anyway; with the limit at 40% it would wait.
        assert!(matches!(rollout::decide(&r, &p), Decision::Halt(_)), "{at}");
        let lenient = Rollout {
            failure_limit: 40,
            ..r.clone()
        };
        assert_eq!(rollout::decide(&lenient, &p), Decision::Wait);
        let easy = Rollout {
            failure_limit: 40,
            success_bar: 30,
            ..r.clone()
        };
        assert_eq!(rollout::decide(&easy, &p), Decision::Advance);
        let last = Rollout { stage: 1, ..easy };
        assert_eq!(rollout::decide(&last, &p), Decision::Done);
        db.transaction(|tx| rollout::set(tx, &r.id, 0, State::Halted, "field reports", 5))
            .unwrap();
        let stored = db
            .transaction(|tx| rollout::get(tx, &r.id))
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.state, stored.reason.as_str()),
            (State::Halted, "field reports")
        );
    }
}

/// Scenario: Fleet backend | a compromised gateway's report carries an ECU entry signed at a release counter no database column holds (2^63) | that ECU is flagged and the rest of the report recorded: nothing half-written
#[test]
fn an_ecu_counter_out_of_range_is_flagged_not_half_written() {
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("range") {
        let entries = vec![
            ecu_entry(ecu_key(), "S1", "BRAKE-A", Some(("brake-fw", "2.0", 2))),
            ecu_entry(
                ecu_key(),
                "S2",
                "BRAKE-A",
                Some(("brake-fw", "9.9", 1 << 63)),
            ),
        ];
        let got = ingest(&mut db, &report("VIN1", 1000, 1, entries, vec![])).unwrap();
        let Applied::Ingested {
            accepted, flagged, ..
        } = got
        else {
            panic!("{at}")
        };
        assert_eq!(accepted, 1, "{at}");
        assert!(flagged
            .iter()
            .any(|f| f.serial == "S2" && f.reason.contains("out of range")));
        assert!(db
            .transaction(|tx| store::reported(tx, "VIN1", "S2"))
            .unwrap()
            .is_none());
    }
}

/// Scenario: Fleet backend | a stolen vehicle key signs a report dated years ahead, or events dated after their report or numbered near 2^63, so that every genuine report after it is a "replay" and genuine events are pushed out | refused (more than a day ahead; events after their report); events are kept newest by date; a new vehicle key forgets the old key's history
#[test]
fn a_report_dated_ahead_cannot_freeze_a_vehicle() {
    let dbs = Databases::new();
    let now = ota_fleet::now();
    for (at, mut db) in dbs.each("ahead") {
        let ahead = report("VIN1", now + 3 * 24 * 3600, 1, both("1.0", 1), vec![]);
        assert!(
            matches!(ingest(&mut db, &ahead), Err(FleetError::Malformed(m)) if m.contains("ahead")),
            "{at}"
        );
        let mut late = event(1, "S1", Outcome::Installed, "1.0");
        late.at = ota_metadata::DateTime(now + 10);
        let r = report("VIN1", now, 1, both("1.0", 1), vec![late]);
        assert!(
            matches!(ingest(&mut db, &r), Err(FleetError::Malformed(m)) if m.contains("an event dated after the report that carries it")),
            "{at}"
        );
        // Events numbered near 2^63 but dated earlier do not push out a genuine newer one.
        let forged: Vec<_> = (0..300u64)
            .map(|i| {
                let mut e = event((1 << 62) + i, "S1", Outcome::Installed, "0.1");
                e.at = ota_metadata::DateTime(now - 100_000 + i as i64);
                e
            })
            .collect();
        ingest(
            &mut db,
            &report("VIN1", now - 10, 1, both("1.0", 1), forged),
        )
        .unwrap();
        let mut genuine = event(7, "S1", Outcome::Refused, "2.0");
        genuine.at = ota_metadata::DateTime(now - 5);
        ingest(
            &mut db,
            &report("VIN1", now - 5, 2, both("1.0", 1), vec![genuine]),
        )
        .unwrap();
        let events = db.transaction(|tx| store::events(tx, "VIN1")).unwrap();
        assert!(
            events.iter().any(|e| e.seq == 7),
            "{at}: the genuine event was pushed out"
        );
        // A new key: the history is forgotten, a report older than the last is news again.
        db.transaction(|tx| store::forget_vehicle(tx, "VIN1"))
            .unwrap();
        ingest(
            &mut db,
            &report("VIN1", now - 1000, 1, both("1.0", 1), vec![]),
        )
        .unwrap();
    }
}

/// Scenario: Fleet backend | a compromised gateway replays an ECU's older signed entry (a lower release counter) in a newer report, to make the OEM assign a release below what the ECU runs | the highest counter an ECU ever reported is kept (the director's refusal on it: client/tests/fleet_ops.rs)
#[test]
fn a_replayed_older_ecu_entry_cannot_lower_the_highest_counter() {
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("highest") {
        ingest(&mut db, &report("VIN1", 1000, 1, both("7.0", 7), vec![])).unwrap();
        ingest(&mut db, &report("VIN1", 2000, 2, both("2.0", 2), vec![])).unwrap();
        let r = db
            .transaction(|tx| store::reported(tx, "VIN1", "S1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.release_counter, r.highest_release_counter),
            (2, 7),
            "{at}"
        );
    }
}

/// Scenario: Fleet backend | a vehicle's recalls change from report to report (listed, gone, listed again; some left by an import) | the store holds exactly the newest report's recalls, whatever came before (SQLite and PostgreSQL)
#[test]
fn recalls_are_those_of_the_newest_report() {
    let dbs = Databases::new();
    let recall = |serial: &str| ota_metadata::documents::EcuRecall {
        serial: serial.into(),
        uid: "brake-fw".into(),
        version: "1.0".into(),
        regulator: "tuv".into(),
        reason: "backdoor".into(),
    };
    let held = |db: &mut Db| -> Vec<(String, String)> {
        db.transaction(|tx| store::recalls(tx))
            .unwrap()
            .into_iter()
            .map(|(vin, r)| (vin, r.serial))
            .collect()
    };
    for (at, mut db) in dbs.each("recalls") {
        // An import (an older release's files) left a recall of VIN1 S2 with no report yet.
        db.transaction(|tx| {
            tx.exec(
                "INSERT INTO recalls (vin, serial, uid, version, regulator, reason, reported_at)
                 VALUES ('VIN1', 'S2', 'brake-fw', '0.9', 'tuv', 'imported', 0)",
                &[],
            )
        })
        .unwrap();
        let steps: [(i64, Vec<&str>); 5] = [
            (1000, vec![]),
            (2000, vec!["S1"]),
            (3000, vec!["S1", "S2"]),
            (4000, vec![]),
            (5000, vec!["S2"]),
        ];
        for (i, (generated, serials)) in steps.iter().enumerate() {
            let r = report_with_recalls(
                "VIN1",
                *generated,
                1,
                both("1.0", 1),
                vec![],
                serials.iter().map(|s| recall(s)).collect(),
            );
            ingest(&mut db, &r).unwrap();
            let want: Vec<_> = serials
                .iter()
                .map(|s| ("VIN1".to_string(), s.to_string()))
                .collect();
            assert_eq!(held(&mut db), want, "{at}: after report {i}");
        }
        // A replay of the report that listed S1 and S2 changes nothing.
        let old = report_with_recalls(
            "VIN1",
            3000,
            1,
            both("1.0", 1),
            vec![],
            vec![recall("S1"), recall("S2")],
        );
        assert!(ingest(&mut db, &old).is_err());
        assert_eq!(held(&mut db), vec![("VIN1".into(), "S2".into())], "{at}");
    }
}

/// Scenario: Fleet backend | an ECU refused the release before a rollout of it started (an earlier try, months ago), then joins the rollout | the old refusal is history: only events its vehicle reports after it joined count against the rollout (by event number, not the gateway's clock)
#[test]
fn a_rollout_counts_only_what_happened_after_a_member_joined() {
    use ota_fleet::rollout::{self, Rollout, State};
    let dbs = Databases::new();
    for (at, mut db) in dbs.each("rollout_history") {
        // Before the rollout: VIN1's S1 refused 2.0 (event 1), still runs 1.0.
        let old = vec![event(1, "S1", Outcome::Refused, "2.0")];
        ingest(&mut db, &report("VIN1", 1000, 1, both("1.0", 1), old)).unwrap();
        let r = Rollout {
            id: Rollout::id_of("acme", "brake-fw", "2.0", "BRAKE-A"),
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "2.0".into(),
            hardware_id: "BRAKE-A".into(),
            stages: vec![100],
            stage: 0,
            success_bar: 50,
            failure_limit: 30,
            state: State::Running,
            reason: String::new(),
            started: 2000,
            updated: 2000,
        };
        db.transaction(|tx| rollout::create(tx, &r)).unwrap();
        let members = [("VIN1", "S1"), ("VIN2", "S1")].map(|(v, s)| (v.to_string(), s.to_string()));
        db.transaction(|tx| rollout::add_members(tx, &r.id, 0, &members))
            .unwrap();
        let failed = |db: &mut Db| -> Vec<(String, bool)> {
            db.transaction(|tx| rollout::members(tx, &r))
                .unwrap()
                .into_iter()
                .map(|m| (m.vin, m.failed))
                .collect()
        };
        assert_eq!(
            failed(&mut db),
            [("VIN1".to_string(), false), ("VIN2".to_string(), false)],
            "{at}: the refusal from before the rollout counted"
        );
        // The same report sent again (event 1 repeated) changes nothing; event 2, a refusal
        // after joining, counts; VIN2 (no events before) fails with its first event.
        let again = vec![
            event(1, "S1", Outcome::Refused, "2.0"),
            event(2, "S1", Outcome::Refused, "2.0"),
        ];
        ingest(&mut db, &report("VIN1", 3000, 2, both("1.0", 1), again)).unwrap();
        let first = vec![event(1, "S1", Outcome::Refused, "2.0")];
        ingest(&mut db, &report("VIN2", 3000, 1, both("1.0", 1), first)).unwrap();
        assert_eq!(
            failed(&mut db),
            [("VIN1".to_string(), true), ("VIN2".to_string(), true)],
            "{at}"
        );
        // A new vehicle key: its gateway numbers afresh, and every new event counts.
        db.transaction(|tx| ota_fleet::store::forget_vehicle(tx, "VIN1"))
            .unwrap();
        assert_eq!(failed(&mut db)[0], ("VIN1".to_string(), false), "{at}");
        let fresh = vec![event(1, "S1", Outcome::Refused, "2.0")];
        ingest(&mut db, &report("VIN1", 4000, 1, both("1.0", 1), fresh)).unwrap();
        assert_eq!(failed(&mut db)[0], ("VIN1".to_string(), true), "{at}");
    }
}

/// Scenario: Fleet backend | one batch of the ingest server holds several reports of one vehicle (newer, the same again, an older replay) beside other vehicles' | each judged as if it came alone, in arrival order: the newer recorded, the same one "already seen", the older refused; other vehicles unaffected (SQLite and PostgreSQL)
#[test]
fn a_batch_judges_each_report_as_if_it_came_alone() {
    let dbs = Databases::new();
    let inv = inventory(&["VIN1", "VIN2"]);
    for (at, mut db) in dbs.each("batch") {
        let bytes = [
            report("VIN1", 1000, 1, both("1.0", 1), vec![]),
            report("VIN2", 1000, 1, both("1.0", 1), vec![]),
            report("VIN1", 2000, 2, both("2.0", 2), vec![]),
            report("VIN1", 2000, 2, both("2.0", 2), vec![]),
            report("VIN1", 1500, 9, both("1.5", 1), vec![]),
            report(
                "VIN2",
                3000,
                2,
                both("3.0", 3),
                vec![event(1, "S1", Outcome::Installed, "3.0")],
            ),
        ];
        // The same bytes twice: the fourth is the third again.
        let verdicts: Vec<_> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| verify(&inv, if i == 3 { &bytes[2] } else { b }).unwrap())
            .collect();
        let refs: Vec<_> = verdicts.iter().collect();
        let got = db
            .transaction(|tx| store::apply_batch(tx, &refs, 5000))
            .unwrap();
        let kinds: Vec<&str> = got
            .iter()
            .map(|r| match r {
                Ok(Applied::Ingested { .. }) => "ingested",
                Ok(Applied::AlreadySeen) => "seen",
                Err(FleetError::Replay { .. }) => "replay",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["ingested", "ingested", "ingested", "seen", "replay", "ingested"],
            "{at}"
        );
        let running = |db: &mut Db, vin: &str| {
            db.transaction(|tx| store::reported(tx, vin, "S1"))
                .unwrap()
                .unwrap()
                .version
        };
        assert_eq!(running(&mut db, "VIN1"), "2.0", "{at}");
        assert_eq!(running(&mut db, "VIN2"), "3.0", "{at}");
        assert_eq!(
            db.transaction(|tx| store::events(tx, "VIN2"))
                .unwrap()
                .len(),
            1,
            "{at}"
        );
        // Sent again alone, each answers the same.
        assert_eq!(ingest(&mut db, &bytes[2]).unwrap(), Applied::AlreadySeen);
        assert!(matches!(
            ingest(&mut db, &bytes[4]),
            Err(FleetError::Replay { .. })
        ));
    }
}
