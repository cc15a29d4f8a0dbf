//! The OEM's per-vehicle publishing at small scale, through the library: what each publish
//! writes and signs, that published files never change, that a rebuild gives the same tree,
//! and that `verify` refuses a damaged tree at the file that is wrong.

use ota_metadata::documents::vehicles::{check_node, node_path, NodeLink, VehicleNode};
use ota_metadata::documents::EcuAssignment;
use ota_metadata::{DateTime, SigningKey};
use ota_repo::oem::{self, EcuRecord, Inventory, Vehicle};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DAY: i64 = 86_400;

struct Fleet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    now: DateTime,
}

impl Fleet {
    fn repo(&self) -> PathBuf {
        self.dir.join("repository")
    }
}

fn assignment(version: &str) -> EcuAssignment {
    EcuAssignment {
        hardware_id: "BRAKE-A".into(),
        supplier: "acme".into(),
        uid: "brake-fw".into(),
        version: version.into(),
        release_counter: 1,
        target: format!("brake-fw-{version}.bin"),
        length: 1000,
        hashes: BTreeMap::from([("sha256".to_string(), "ab".repeat(32))]),
        key_wraps: None,
        compact_sha256: None,
        instruction: None,
        set: None,
        requires: Vec::new(),
        conflicts: Vec::new(),
    }
}

/// An OEM with `n` vehicles (`V000`…), each ECU assigned brake-fw 1.0, not yet published.
fn fleet(n: usize) -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let (k, off) = (tmp.path().join("k.pem"), tmp.path().join("off.pem"));
    for p in [&k, &off] {
        std::fs::write(
            p,
            SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap(),
        )
        .unwrap();
    }
    let dir = tmp.path().join("oem");
    let now = DateTime::now();
    let roles = ota_repo::supplier::RoleOptions {
        default_keys: vec![k],
        role_keys: ["root", "targets"]
            .into_iter()
            .map(|r| (r.to_string(), vec![off.clone()]))
            .collect(),
        ..Default::default()
    };
    oem::init(&dir, &roles, None, now).unwrap();
    let mut s = oem::Settings::load(&dir).unwrap();
    let root_bytes = std::fs::read(dir.join("repository/1.root.json")).unwrap();
    let root = ota_metadata::documents::verified_root("root", &root_bytes, 1 << 20).unwrap();
    s.suppliers.insert(
        "acme".into(),
        ota_metadata::documents::SupplierEntry {
            repository: ota_metadata::documents::RepositoryPin::pin(&root, "http://127.0.0.1/a")
                .unwrap(),
            hardware_ids: vec!["BRAKE-*".into()],
        },
    );
    s.save(&dir).unwrap();
    let mut inv = Inventory::default();
    let mut asg = oem::Assignments::default();
    for i in 0..n {
        let vin = format!("V{i:03}");
        let ecus = BTreeMap::from([(
            format!("E{i:03}"),
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
        asg.vehicles.insert(
            vin,
            BTreeMap::from([(format!("E{i:03}"), assignment("1.0"))]),
        );
    }
    inv.save(&dir).unwrap();
    asg.save(&dir).unwrap();
    Fleet {
        _tmp: tmp,
        dir,
        now,
    }
}

/// Every file under `repository/vehicles/`, with its bytes.
fn vehicle_files(f: &Fleet) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![f.repo().join("vehicles")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let b = std::fs::read(&p).unwrap();
                out.insert(p, b);
            }
        }
    }
    out
}

/// `vin`'s locator: where the tree holds it.
fn vin_key(f: &Fleet, vin: &str) -> String {
    oem::privacy::fleet_secret(&f.dir)
        .unwrap()
        .vehicle(vin)
        .locator()
}

/// The nodes on `vin`'s path in the served tree (the leaf, holding its sealed entry, last).
fn path_of(f: &Fleet, vin: &str) -> Vec<PathBuf> {
    let repo = f.repo();
    let key = vin_key(f, vin);
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

fn signed(r: &oem::OemReport) -> BTreeSet<String> {
    r.roles.signed.iter().map(|(n, _)| n.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_publish_writes_and_signs_only_what_changed_and_never_rewrites_a_file() {
    let f = fleet(300);
    let r = oem::publish(&f.dir, f.now, false).unwrap();
    assert_eq!(r.vehicles_written, 300);
    let v = ota_repo::verify::verify(&f.dir, None, f.now).unwrap();
    assert_eq!(v.vehicles, 300);
    let first = vehicle_files(&f);
    // Only the tree, no file per vehicle: 300 vehicles at 64 per leaf need inner nodes.
    let nodes = first
        .keys()
        .filter(|p| p.to_str().unwrap().contains("/tree/"))
        .count();
    assert_eq!(first.len(), nodes);
    assert!(nodes > 16 && nodes < 300, "{nodes}");

    // Nothing changed, lifetimes half gone: only index, snapshot and timestamp re-signed.
    let later = f.now.plus_seconds(4 * DAY);
    let r = oem::publish(&f.dir, later, false).unwrap();
    assert_eq!(
        (r.vehicles_written, r.fleet.nodes_written, r.fleet.shards),
        (0, 0, 0)
    );
    assert_eq!(signed(&r), set(&["vehicles", "snapshot", "timestamp"]));
    assert_eq!(vehicle_files(&f), first);

    // A command about one vehicle touches its shard only.
    oem::vehicle_add(&f.dir, "NEW1", &["E1:BRAKE-A".into()], &[]).unwrap();
    let pending: Vec<_> = std::fs::read_dir(f.dir.join("pending"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(pending, [vin_key(&f, "NEW1")[..3].to_string()]);
    // Nothing assigned to it yet: its entry (no ECUs) is published all the same, so an entry
    // appearing later would not tell the CDN that it got its first assignment.
    let r = oem::publish(&f.dir, later, false).unwrap();
    assert_eq!((r.vehicles_written, r.fleet.shards), (1, 1));
    // The nodes on its path are new; more only when its leaf was full and split (the fleet
    // secret is random, so whether it is depends on the run): then the split node's other
    // new children, at most 15.
    let added = vehicle_files(&f);
    let new: BTreeSet<&PathBuf> = added.keys().filter(|p| !first.contains_key(*p)).collect();
    assert_eq!(r.fleet.nodes_written, new.len());
    let path = path_of(&f, "NEW1");
    assert!(path.iter().all(|p| new.contains(p)), "{path:?} not all new");
    assert!(new.len() <= path.len() + 15, "{} new nodes", new.len());
    let first = added;
    assert!(!f.dir.join("pending").read_dir().unwrap().any(|_| true));

    // A change to one vehicle: the nodes on its path, nothing else.
    let mut a = oem::Assignments::load_for(&f.dir, &["V042"]).unwrap();
    a.vehicles
        .get_mut("V042")
        .unwrap()
        .insert("E042".into(), assignment("2.0"));
    a.save(&f.dir).unwrap();
    let r = oem::publish(&f.dir, later, false).unwrap();
    assert_eq!(r.vehicles_written, 1);
    assert_eq!(signed(&r), set(&["vehicles", "snapshot", "timestamp"]));
    let path = path_of(&f, "V042");
    assert_eq!(r.fleet.nodes_written, path.len());
    let after = vehicle_files(&f);
    for (p, b) in &first {
        assert_eq!(after.get(p), Some(b), "{} changed", p.display());
    }
    let new: BTreeSet<&PathBuf> = after.keys().filter(|p| !first.contains_key(*p)).collect();
    let want: BTreeSet<&PathBuf> = path.iter().collect();
    assert_eq!(new, want);
    let (e, doc) = oem::fleet::published_assignments(&f.dir, "V042")
        .unwrap()
        .unwrap();
    assert_eq!((e.version, doc.ecus["E042"].version.as_str()), (2, "2.0"));
    let v = ota_repo::verify::verify(&f.dir, None, later).unwrap();
    assert_eq!(v.vehicles, 301);

    // Files are never deleted or rewritten: a CDN may still serve the old tree to a vehicle
    // that read the old index.
    assert!(first.keys().all(|p| p.exists()));
}

#[test]
fn a_rebuild_without_the_record_continues_versions_and_gives_the_same_tree() {
    let f = fleet(200);
    oem::publish(&f.dir, f.now, false).unwrap();
    let mut a = oem::Assignments::load_for(&f.dir, &["V007"]).unwrap();
    a.vehicles
        .get_mut("V007")
        .unwrap()
        .insert("E007".into(), assignment("2.0"));
    a.save(&f.dir).unwrap();
    oem::publish(&f.dir, f.now, false).unwrap();
    let before = oem::Record::load(&f.dir).unwrap();

    // The record is lost: the publisher rebuilds from the state and the served tree.
    std::fs::remove_file(f.dir.join("published.json")).unwrap();
    let r = oem::publish(&f.dir, f.now, false).unwrap();
    assert!(r.fleet.bulk);
    assert_eq!((r.vehicles_written, r.fleet.nodes_written), (0, 0));
    assert_eq!(oem::Record::load(&f.dir).unwrap(), before);
    let (e, _) = oem::fleet::published_assignments(&f.dir, "V007")
        .unwrap()
        .unwrap();
    assert_eq!(e.version, 2);
}

/// Flip one byte of `p` (its length stays); returns the good bytes.
fn flip(p: &Path) -> Vec<u8> {
    let good = std::fs::read(p).unwrap();
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 1;
    std::fs::write(p, bad).unwrap();
    good
}

#[test]
fn verify_refuses_a_tampered_node_or_leaf_and_a_misplaced_node() {
    let f = fleet(150);
    oem::publish(&f.dir, f.now, false).unwrap();
    let nodes = path_of(&f, "V010");
    assert!(nodes.len() >= 2);
    for p in &nodes {
        let good = flip(p);
        let e = ota_repo::verify::verify(&f.dir, None, f.now)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(p.file_name().unwrap().to_str().unwrap()) && e.contains("sha256"),
            "{e}"
        );
        std::fs::write(p, good).unwrap();
    }
    ota_repo::verify::verify(&f.dir, None, f.now).unwrap();

    // The online keys sign an index whose root names, under one digit, a (valid) node of
    // another prefix.
    let repo = f.repo();
    let root_link = oem::fleet::served_tree(&repo).unwrap().unwrap();
    let mut root: VehicleNode = check_node(
        &std::fs::read(repo.join(node_path("", &root_link.sha256))).unwrap(),
        "",
    )
    .unwrap();
    let mut it = root.children.clone().into_iter();
    let (d0, _) = it.next().unwrap();
    let (d1, l1) = it.next().unwrap();
    std::fs::copy(
        repo.join(node_path(&d1, &l1.sha256)),
        repo.join(node_path(&d0, &l1.sha256)),
    )
    .unwrap();
    root.children.insert(d0, l1);
    let bytes = ota_metadata::canonical::to_canonical(&root).unwrap();
    let forged = NodeLink::of(&bytes);
    std::fs::write(repo.join(node_path("", &forged.sha256)), bytes).unwrap();
    let mut record = oem::Record::load(&f.dir).unwrap();
    record.tree = Some(forged);
    record.save(&f.dir).unwrap();
    ota_testkit::hide_served_vehicles_index(&repo);
    oem::publish(&f.dir, f.now, false).unwrap();
    let e = ota_repo::verify::verify(&f.dir, None, f.now)
        .unwrap_err()
        .to_string();
    assert!(e.contains("prefix"), "{e}");
}

/// A lost fleet secret, or another one in its place, is refused by every command, naming
/// it: never silently replaced (which would move every vehicle to a locator no gateway
/// knows, and strand the fleet on its old entries).
#[test]
fn a_lost_or_replaced_fleet_secret_is_refused_not_replaced() {
    let f = fleet(20);
    oem::publish(&f.dir, f.now, false).unwrap();
    let secret = f.dir.join(oem::privacy::FLEET_SECRET);
    let good = std::fs::read(&secret).unwrap();
    let shards = |f: &Fleet| -> BTreeSet<PathBuf> {
        std::fs::read_dir(f.dir.join("inventory"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let before = shards(&f);
    let tree = vehicle_files(&f);

    // Lost.
    std::fs::remove_file(&secret).unwrap();
    let e = oem::publish(&f.dir, f.now, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("fleet.secret is missing"), "{e}");
    let e = oem::vehicle_add(&f.dir, "NEW1", &["E1:BRAKE-A".into()], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("fleet.secret is missing"), "{e}");
    assert!(!secret.exists(), "no new secret was made");
    assert_eq!(shards(&f), before, "the state was not moved");

    // Another one (well formed).
    std::fs::write(&secret, format!("{}\n", "5a".repeat(32))).unwrap();
    let e = oem::publish(&f.dir, f.now, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not the fleet secret this OEM's state was made with"),
        "{e}"
    );
    let e = oem::vehicle_add(&f.dir, "V001", &["E1:BRAKE-A".into()], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the fleet secret"), "{e}");

    // Restored from the backup: everything as before.
    std::fs::write(&secret, &good).unwrap();
    let r = oem::publish(&f.dir, f.now, false).unwrap();
    assert_eq!(r.vehicles_written, 0);
    assert_eq!(vehicle_files(&f), tree);
    assert_eq!(shards(&f), before);
}

/// A lost instruction key is refused by name, never made anew: a new one would sign
/// instructions no ECU trust document names, stopping every ECU that requires them (found by
/// the attack pass).
#[test]
fn a_lost_instruction_key_is_refused_not_replaced() {
    let f = fleet(5);
    oem::publish(&f.dir, f.now, false).unwrap();
    let key = f.dir.join(oem::privacy::INSTRUCTION_KEY);
    let good = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    oem::vehicle_add(&f.dir, "NEW1", &["E1:BRAKE-A".into()], &[]).unwrap();
    let e = oem::publish(&f.dir, f.now, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("instruction.secret is missing"), "{e}");
    assert!(!key.exists());
    std::fs::write(&key, &good).unwrap();
    oem::publish(&f.dir, f.now, false).unwrap();
}
