//! The fleet on a public CDN reveals nothing (issue 23): a fleet of thousands of vehicles is
//! published and uploaded, every served byte is scanned for every VIN, ECU serial and assigned
//! image, the sealed entries of vehicles with and without an update are the same size, and a
//! vehicle still updates through the store (moto's S3 server) and through nginx over HTTPS.

mod world;

use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuOutcome, GatewayError};
use ota_client::walk::Check;
use ota_metadata::documents::vehicles::{check_node, node_path, VehicleNode};
use ota_repo::oem::{self, EcuRecord, Inventory, Vehicle};
use ota_testkit::s3::S3Server;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use world::{outcome, World};

/// Vehicles besides the world's VIN1.
const FLEET: usize = 3000;

fn vin(i: usize) -> String {
    format!("WDD2130421B{i:06}")
}

fn serial(i: usize) -> String {
    format!("BRK-{i:06}")
}

/// Add `FLEET` one-ECU vehicles shard by shard (as an import would), assign brake-fw 1.0 to
/// every BRAKE-A ECU, then 2.0 to every other vehicle: half the fleet has an update pending.
fn populate(w: &World) {
    let dir = w.p("oem");
    // One load and one save of the whole fleet's shards, as an import would do.
    let mut inv = Inventory::load(&dir).unwrap();
    for i in 0..FLEET {
        let ecus = BTreeMap::from([(
            serial(i),
            EcuRecord {
                hardware_id: "BRAKE-A".into(),
                ..Default::default()
            },
        )]);
        inv.vehicles.insert(
            vin(i),
            Vehicle {
                ecus,
                ..Default::default()
            },
        );
    }
    inv.save(&dir).unwrap();
    let assign = |target, version: &str| {
        oem::assign(
            &dir,
            oem::Assign {
                target,
                supplier: "acme".into(),
                uid: "brake-fw".into(),
                version: version.into(),
                approval: ota_repo::oem::Approval::NotAsked,
                rules: Default::default(),
            },
        )
        .unwrap();
    };
    assign(oem::AssignTarget::HardwareId("BRAKE-A".into()), "1.0");
    // 2.0 for the even vehicles: the same assignment as VIN1's S1 gets, written in bulk.
    assign(
        oem::AssignTarget::Vehicle {
            vin: "VIN1".into(),
            serial: Some("S1".into()),
        },
        "2.0",
    );
    let mut asg = oem::Assignments::load(&dir).unwrap();
    let two = asg.vehicles["VIN1"]["S1"].clone();
    for i in (0..FLEET).filter(|i| i % 2 == 0) {
        asg.vehicles
            .get_mut(&vin(i))
            .unwrap()
            .insert(serial(i), two.clone());
    }
    asg.save(&dir).unwrap();
    oem::publish(&dir, w.now, false).unwrap();
    w.published("oem");
}

/// Every file of the OEM's tree, relative to it.
fn files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(repo).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// What must never be served: every VIN, every serial, and (in the vehicle tree and the index)
/// the assigned images' names and hashes. Grouped by length, so a scan looks each window up.
struct Needles {
    anywhere: BTreeMap<usize, HashSet<Vec<u8>>>,
    per_vehicle: BTreeMap<usize, HashSet<Vec<u8>>>,
}

fn by_len(v: impl IntoIterator<Item = Vec<u8>>) -> BTreeMap<usize, HashSet<Vec<u8>>> {
    let mut out: BTreeMap<usize, HashSet<Vec<u8>>> = BTreeMap::new();
    for n in v {
        out.entry(n.len()).or_default().insert(n);
    }
    out
}

fn needles(w: &World) -> Needles {
    // The world's short names as JSON strings: "VIN1" bare occurs by chance in 3 MB of base64.
    let mut anywhere: Vec<Vec<u8>> =
        vec![b"\"VIN1\"".to_vec(), b"\"S1\"".to_vec(), b"\"S2\"".to_vec()];
    for i in 0..FLEET {
        anywhere.push(vin(i).into_bytes());
        anywhere.push(serial(i).into_bytes());
    }
    let asg = oem::Assignments::load_for(&w.p("oem"), &["VIN1", &vin(0), &vin(1)]).unwrap();
    let mut per_vehicle = BTreeSet::new();
    for a in asg.vehicles.values().flat_map(|e| e.values()) {
        per_vehicle.insert(a.target.clone().into_bytes());
        per_vehicle.insert(a.uid.clone().into_bytes());
        per_vehicle.insert(a.hardware_id.clone().into_bytes());
        for h in a.hashes.values() {
            per_vehicle.insert(h.clone().into_bytes());
        }
    }
    assert!(
        per_vehicle.len() >= 5,
        "two images assigned: {per_vehicle:?}"
    );
    Needles {
        anywhere: by_len(anywhere),
        per_vehicle: by_len(per_vehicle),
    }
}

/// A needle found in `hay`, if any.
fn find(hay: &[u8], needles: &BTreeMap<usize, HashSet<Vec<u8>>>) -> Option<String> {
    needles.iter().find_map(|(len, set)| {
        hay.windows(*len)
            .find(|w| set.contains(*w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
    })
}

/// Scan `(name, bytes)` of everything served: no VIN or serial anywhere; no assigned image in
/// anything about vehicles (the index and the tree). The review role and the targets name the
/// images sent for review and the ECU trust documents: what the OEM ships, not who gets it
/// (the suppliers' trees list the same images publicly).
fn scan(served: &[(String, Vec<u8>)], n: &Needles) {
    assert!(served.len() > 50, "{} files", served.len());
    for (name, bytes) in served {
        if let Some(found) = find(bytes, &n.anywhere) {
            panic!("{name} contains {found:?}");
        }
        if name.contains("vehicles") {
            if let Some(found) = find(bytes, &n.per_vehicle) {
                panic!("{name} contains {found:?}");
            }
        }
    }
}

/// The sealed entries of the served tree: (locator, base64 length).
fn entries(served: &[(String, Vec<u8>)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (name, bytes) in served.iter().filter(|(n, _)| n.contains("vehicles/tree/")) {
        let node: VehicleNode = serde_json::from_slice(bytes).unwrap();
        let prefix = name
            .rsplit('/')
            .next()
            .and_then(|f| f.split('.').next())
            .map(|p| if p == "root" { "" } else { p })
            .unwrap();
        check_node(bytes, prefix).unwrap();
        for (k, v) in node.entries {
            out.insert(k, v.len());
        }
    }
    out
}

/// Entries of vehicles with an update pending and without are the same size; the number of
/// vehicles is what an observer counts.
fn check_sizes(w: &World, served: &[(String, Vec<u8>)]) {
    let entries = entries(served);
    assert_eq!(entries.len(), FLEET + 1, "every vehicle, VIN1 too");
    let (mut updated, mut not) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..FLEET {
        let len = entries[&w.locator(&vin(i))];
        if i % 2 == 0 {
            updated.insert(len);
        } else {
            not.insert(len);
        }
    }
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated, not, "sizes tell who has an update");
}

/// Scenario: Fleet privacy | an outsider GETs every file of a 3,000-vehicle OEM tree from the S3 store | no VIN, serial or assigned image appears, entries with and without an update are the same size, and the vehicle still updates
#[test]
fn the_store_serves_no_vin_serial_or_assignment_and_the_vehicle_still_updates() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    let w = world::s3_world(&s3);
    populate(&w);
    let port: u16 = s3.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    // What the store serves, fetched as any outsider would.
    let served: Vec<(String, Vec<u8>)> = files(&w.p("oem/repository"))
        .into_iter()
        .map(|f| {
            let name = format!("/ota/oem/{}", f.display());
            let (status, _, body) = ota_testkit::s3::http(port, "GET", &name, &[], b"");
            assert_eq!(status, 200, "{name}");
            (name, body)
        })
        .collect();
    scan(&served, &needles(&w));
    check_sizes(&w, &served);

    // VIN1 finds its own entry and updates (S1 was assigned 2.0 above).
    let out = w.update();
    let s1 = &out.iter().find(|(s, _)| s == "S1").unwrap().1;
    assert!(
        matches!(s1, EcuOutcome::Updated { version, .. } if version == "2.0"),
        "{}",
        summary(s1)
    );
}

/// Scenario: Fleet privacy | the same fleet served by nginx over HTTPS | nothing names a vehicle, and the vehicle updates through it
#[test]
fn nginx_serves_no_vin_serial_or_assignment_and_the_vehicle_still_updates() {
    let Some((w, _nginx, _ca)) = world::served_world() else {
        return;
    };
    populate(&w);
    let repo = w.p("oem/repository");
    let served: Vec<(String, Vec<u8>)> = files(&repo)
        .into_iter()
        .map(|f| {
            (
                f.display().to_string(),
                std::fs::read(repo.join(&f)).unwrap(),
            )
        })
        .collect();
    scan(&served, &needles(&w));
    check_sizes(&w, &served);
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 2.0"));
}

/// The sealed entry at `locator` in the served tree.
fn served_entry(w: &World, locator: &str) -> String {
    let repo = w.p("oem/repository");
    let mut link = oem::fleet::served_tree(&repo).unwrap().unwrap();
    for depth in 0.. {
        let p = repo.join(node_path(&locator[..depth], &link.sha256));
        let node = check_node(&std::fs::read(&p).unwrap(), &locator[..depth]).unwrap();
        if node.is_leaf() {
            return node.entries[locator].clone();
        }
        link = node.children[&locator[depth..depth + 1]].clone();
    }
    unreachable!()
}

fn run_master_check(w: &World) -> Result<Vec<(String, EcuOutcome)>, GatewayError> {
    let gw = w.gateway_at(w.now);
    let mut fw = DirForwarder::new(w.p("ecus"));
    gw.run(Some(&mut fw))
}

/// Scenario: Stolen keys | with the OEM's online keys (not its fleet secret), another vehicle's public entry is put at a vehicle's locator | the vehicle refuses it by name (it does not open under its key), never reads it as its own
#[test]
fn an_entry_moved_to_another_vehicles_locator_is_refused() {
    use ota_metadata::documents::vehicles::{finish, update, Leaf, DEFAULT_LEAF_MAX};
    let w = World::new();
    oem::vehicle_add(&w.p("oem"), "VIN2", &["X1:BRAKE-A".into()], &[]).unwrap();
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::HardwareId("BRAKE-A".into()),
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "2.0".into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));

    // The attacker copies VIN2's sealed entry (public on the CDN) to VIN1's locator, and signs
    // the index with the stolen online key (the publisher's own code does the signing here).
    let (vin1, vin2) = (w.locator("VIN1"), w.locator("VIN2"));
    let moved = Leaf::new(vin1, served_entry(&w, &vin2));
    let repo = w.p("oem/repository");
    let mut record = oem::Record::load(&w.p("oem")).unwrap();
    let mut src = oem::fleet::RepoTree::new(&repo, true);
    let mut sink = oem::fleet::RepoTree::new(&repo, true);
    let t = update(
        &mut src,
        &mut sink,
        "",
        record.tree.as_ref(),
        vec![moved],
        DEFAULT_LEAF_MAX,
    )
    .unwrap();
    record.tree = finish(&mut sink, t).unwrap();
    record.save(&w.p("oem")).unwrap();
    ota_testkit::hide_served_vehicles_index(&repo);
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    w.published("oem");

    match run_master_check(&w) {
        Err(GatewayError::Walk(e)) => {
            assert_eq!(e.check, Check::Assignments, "{e}");
            assert!(e.reason.contains("does not authenticate"), "{e}");
        }
        Err(e) => panic!("expected a refused entry, got {e}"),
        Ok(out) => panic!(
            "expected a refused entry, got {:?}",
            out.iter()
                .map(|(s, o)| format!("{s}: {}", summary(o)))
                .collect::<Vec<_>>()
        ),
    }
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        vec![1u8; 5000],
        "1.0 stays installed"
    );
}

/// Scenario: Fleet privacy | a gateway given another vehicle's secret | finds no entry of its own (nothing assigned), and one given a malformed secret is refused at load
#[test]
fn a_wrong_or_malformed_secret() {
    let w = World::new();
    w.assign("S1", "1.0");
    oem::vehicle_add(&w.p("oem"), "VIN2", &["X1:BRAKE-A".into()], &[]).unwrap();
    w.provision("VIN2");
    std::fs::copy(w.p("secrets/VIN2.secret"), w.p("secrets/VIN1.secret")).unwrap();
    assert!(outcome(&w.update(), "S1").starts_with("nothing assigned"));
    std::fs::write(w.p("secrets/VIN1.secret"), "not a secret\n").unwrap();
    match run_master_check(&w) {
        Err(e) => assert!(
            e.to_string().contains("vehicle_secret: not 64 hex digits"),
            "{e}"
        ),
        Ok(_) => panic!("a malformed secret was accepted"),
    }
}

/// Scenario: Fleet privacy | a gateway configured to send its version reports over plain HTTP to a remote host | refused at load (HTTPS only; plain HTTP only to loopback)
#[test]
fn reports_go_over_https_only() {
    let w = World::new();
    let cfg = w.config_for("r.toml", "VIN1", &[("S1".into(), "BRAKE-A".into())]);
    let base = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(w.p("v.pem"), world::key_pem()).unwrap();
    for (url, ok) in [
        ("http://reports.example.com/r", false),
        ("http://10.1.2.3:8080/r", false),
        ("http://127.0.0.1:8080/r", true),
        ("https://reports.example.com/r", true),
    ] {
        let text = format!("report_url = \"{url}\"\nvehicle_key = \"v.pem\"\n{base}");
        std::fs::write(&cfg, text).unwrap();
        let r = ota_client::config::Config::load(&cfg);
        assert_eq!(r.is_ok(), ok, "{url}: {:?}", r.err());
        if !ok {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("HTTPS only"), "{e}");
        }
    }
}

/// Scenario: Fleet privacy | the report endpoint answers the POST with a redirect (302) to another host | the report is not counted as delivered (the redirect is not followed as a body-less GET)
#[test]
fn a_redirected_report_is_a_failure_not_a_delivery() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    other.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = write!(
            c,
            "HTTP/1.1 302 Found\r\nLocation: http://{other_addr}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    let http = ota_client::tuf::HttpFetcher::new(
        &ota_client::tuf::Limits::default(),
        ota_client::tuf::CaRoots::None,
    )
    .unwrap();
    let r = http.post_json(&format!("http://{addr}/reports"), b"{\"report\":1}");
    server.join().unwrap();
    assert!(r.is_err(), "a redirect counted as delivered: {r:?}");
    // Nothing reached the other host.
    assert!(other.accept().is_err());
}

/// Scenario: Stolen keys | with the OEM's online keys, a tree without this vehicle's entry (or with no tree at all) after the vehicle accepted one | refused by name, not read as "nothing assigned"
#[test]
fn a_vanished_entry_is_refused() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    // The attacker signs an index naming no tree.
    let repo = w.p("oem/repository");
    let mut record = oem::Record::load(&w.p("oem")).unwrap();
    record.tree = None;
    record.save(&w.p("oem")).unwrap();
    ota_testkit::hide_served_vehicles_index(&repo);
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    match run_master_check(&w) {
        Err(GatewayError::Walk(e)) => {
            assert_eq!(e.check, Check::Assignments, "{e}");
            assert!(
                e.reason.contains("no entry at this vehicle's locator"),
                "{e}"
            );
        }
        Err(e) => panic!("expected a refused tree, got {e}"),
        Ok(out) => panic!(
            "expected a refused tree, got {:?}",
            out.iter()
                .map(|(s, o)| format!("{s}: {}", summary(o)))
                .collect::<Vec<_>>()
        ),
    }
}

/// Scenario: Fleet privacy | an observer compares entries across publishes: a vehicle with no assignment, one with some of its ECUs assigned, one with all | every vehicle has an entry from the first publish, and the size follows the vehicle's number of ECUs only
#[test]
fn entries_exist_for_every_vehicle_and_their_size_does_not_tell_what_is_assigned() {
    let w = World::new();
    // VIN1: S1 and S2; VIN2: two ECUs, nothing ever assigned.
    oem::vehicle_add(
        &w.p("oem"),
        "VIN2",
        &["X1:BRAKE-A".into(), "X2:BRAKE-A".into()],
        &[],
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    let sizes = |w: &World| -> BTreeMap<String, usize> {
        let repo = w.p("oem/repository");
        let served: Vec<(String, Vec<u8>)> = files(&repo)
            .into_iter()
            .map(|f| {
                (
                    f.display().to_string(),
                    std::fs::read(repo.join(&f)).unwrap(),
                )
            })
            .collect();
        entries(&served)
    };
    let before = sizes(&w);
    assert_eq!(
        before.len(),
        2,
        "both vehicles have an entry, none assigned"
    );
    w.assign("S1", "1.0");
    let one = sizes(&w);
    w.assign("S2", "2.0");
    let two = sizes(&w);
    let (v1, v2) = (w.locator("VIN1"), w.locator("VIN2"));
    for s in [&before, &one, &two] {
        assert_eq!(s[&v1], before[&v1]);
        assert_eq!(s[&v2], before[&v2]);
    }
    assert_eq!(before[&v1], before[&v2], "two ECUs each");
}

/// Scenario: Fleet privacy | the vehicle_secret path names a FIFO (or any non-regular file) | refused at once, not a hang
#[test]
fn a_secret_that_is_not_a_regular_file_is_refused() {
    let w = World::new();
    w.assign("S1", "1.0");
    std::fs::remove_file(w.p("secrets/VIN1.secret")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(w.p("secrets/VIN1.secret"))
        .status()
        .unwrap();
    assert!(status.success());
    match run_master_check(&w) {
        Err(e) => assert!(e.to_string().contains("not a regular file"), "{e}"),
        Ok(_) => panic!("a FIFO secret was read"),
    }
}
