//! The OEM's working state against the tree it published (issue 27, 7 and 8): the published
//! tree is the truth about which vehicles exist and which assignment versions they hold. A
//! state that lost a vehicle is refused, not published as "no assignments"; a state restored
//! from an older backup continues the versions above the published ones; a damaged node of the
//! vehicle tree is rewritten by `publish --force`.

mod world;

use ota_repo::oem;
use world::{outcome, World};

use ota_testkit::copy_tree;

/// The OEM's per-vehicle state (what a backup of the working directory's state holds).
const STATE: [&str; 4] = ["inventory", "assignments", "pending", "published.json"];

fn backup_state(w: &World, to: &str) {
    for s in STATE {
        let from = w.p(&format!("oem/{s}"));
        let dest = w.p(&format!("{to}/{s}"));
        if from.is_dir() {
            copy_tree(&from, &dest);
        } else if from.exists() {
            std::fs::create_dir_all(w.p(to)).unwrap();
            std::fs::copy(&from, &dest).unwrap();
        }
    }
}

fn restore_state(w: &World, from: &str) {
    for s in STATE {
        let dest = w.p(&format!("oem/{s}"));
        if dest.is_dir() {
            std::fs::remove_dir_all(&dest).unwrap();
        } else if dest.exists() {
            std::fs::remove_file(&dest).unwrap();
        }
        let src = w.p(&format!("{from}/{s}"));
        if src.is_dir() {
            copy_tree(&src, &dest);
        } else if src.exists() {
            std::fs::copy(&src, &dest).unwrap();
        }
    }
}

fn verify_oem(w: &World) {
    ota_repo::verify::verify(
        &w.p("oem/repository"),
        Some(&w.p("oem/repository/1.root.json")),
        w.now,
    )
    .unwrap();
}

/// Scenario: Uptane VIN | the OEM's inventory lost (deleted, or one shard of it), then a publish | refused, naming the vehicle; the published assignments stay; `oem vehicle remove` is the way to take a vehicle out
#[test]
fn a_lost_inventory_is_refused_and_vehicle_remove_withdraws() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    let timestamp = std::fs::read(w.p("oem/repository/timestamp.json")).unwrap();
    std::fs::rename(w.p("oem/inventory"), w.p("inventory.lost")).unwrap();
    let err = match oem::publish(&w.p("oem"), w.now, true) {
        Ok(_) => panic!("a state without the vehicle was published"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("VIN1") && err.contains("not in the inventory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(w.p("oem/repository/timestamp.json")).unwrap(),
        timestamp,
        "something was published"
    );
    // The state comes back: publishing works again and the assignment is still there.
    std::fs::rename(w.p("inventory.lost"), w.p("oem/inventory")).unwrap();
    oem::publish(&w.p("oem"), w.now, true).unwrap();
    assert!(outcome(&w.update(), "S1").starts_with("up to date"));

    // Removed by the command: its assignments are withdrawn (a higher version with none).
    oem::vehicle_remove(&w.p("oem"), "VIN1", w.now).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    verify_oem(&w);
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("nothing assigned"),
        "{}",
        outcome(&out, "S1")
    );
    // And it can come back.
    oem::vehicle_add(&w.p("oem"), "VIN1", &["S1:BRAKE-A".into()], &[]).unwrap();
    w.assign("S1", "2.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"));
}

/// Scenario: Uptane VIN | the OEM's state restored from an older backup, then a change and a publish | the vehicle's assignments version continues above the published one, so its gateway takes the change (no rollback refusal)
#[test]
fn a_restored_state_continues_the_published_versions() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    backup_state(&w, "backup");
    // Two changes after the backup: VIN1's entry is at version 3.
    w.assign("S1", "2.0");
    w.assign("S2", "2.0");
    let out = w.update();
    assert!(outcome(&out, "S2").starts_with("updated to brake-fw 2.0"));
    // The old state comes back (S1 -> 1.0 only, and the record of the version-1 tree); the
    // OEM then assigns S1 2.0: VIN1's entry changes again, and must go above version 3.
    restore_state(&w, "backup");
    w.assign("S1", "2.0");
    verify_oem(&w);
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("up to date (brake-fw 2.0)"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(
        outcome(&out, "S2").starts_with("nothing assigned"),
        "{}",
        outcome(&out, "S2")
    );
}

/// Scenario: CDN publishing | a node of the published vehicle tree damaged on disk (same length) | `oem publish --force` reads every node, refuses naming the damaged file and how to restore it; `oem repair --from` the served copy brings it back, publishing works and the tree verifies
#[test]
fn a_damaged_vehicle_tree_node_is_found_and_repaired_from_the_served_copy() {
    let w = World::new();
    w.assign("S1", "1.0");
    ota_repo::upload::upload(
        &w.p("oem"),
        &ota_repo::upload::UploadOpts {
            to: w.s("served"),
            prune: false,
            jobs: 2,
            short_max_age: 60,
            dry_run: false,
            s3_config: vec![],
        },
    )
    .unwrap();
    let tree = w.p("oem/repository/vehicles/tree");
    let node = std::fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let good = std::fs::read(&node).unwrap();
    let mut bad = good.clone();
    let at = bad.iter().position(|b| b.is_ascii_digit()).unwrap();
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&node, &bad).unwrap();
    let err = match oem::publish(&w.p("oem"), w.now, true) {
        Ok(_) => panic!("published over a damaged node"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("is damaged") && err.contains("oem repair"),
        "{err}"
    );
    // Brought back from the served tree (the same name): a second copy that is damaged too is
    // refused, the good one is taken.
    let name = node
        .strip_prefix(w.p("oem/repository"))
        .unwrap()
        .to_path_buf();
    let served_node = w.p("served").join(&name);
    let served_good = std::fs::read(&served_node).unwrap();
    std::fs::write(&served_node, &bad).unwrap();
    assert!(oem::fleet::repair_from(&w.p("oem/repository"), &w.s("served"), None).is_err());
    std::fs::write(&served_node, &served_good).unwrap();
    assert_eq!(
        oem::fleet::repair_from(&w.p("oem/repository"), &w.s("served"), None).unwrap(),
        1
    );
    oem::publish(&w.p("oem"), w.now, true).unwrap();
    assert_eq!(std::fs::read(&node).unwrap(), good);
    verify_oem(&w);
}
