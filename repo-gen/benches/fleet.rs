//! Fleet benchmark: publishing per-vehicle assignments at 10,000, 100,000 and 1,000,000
//! vehicles (RSA-3072 keys), and what one vehicle downloads.
//!
//! For each fleet size, in a fresh OEM directory:
//! 1. import: the inventory through `oem vehicle import`'s code (`oem::import::import`,
//!    timed: the goal is 60 s for 1M vehicles), then the assignments written shard by shard
//!    (`Assignments`, not timed);
//! 2. first publish: the whole tree (its leaves hold the vehicles' assignments);
//! 3. freshness renewal: nothing changed, `now` moved 4 days on (the index's 7-day lifetime
//!    half gone): only index, snapshot and timestamp are re-signed;
//! 4. a change to one vehicle: the nodes on its path, index, snapshot, timestamp;
//! 5. what a vehicle downloads, counted through the real client code (`read_master` over a
//!    counting fetcher reading the tree from disk): a first (cold) check, a check after the
//!    renewal, and a check after the change to another vehicle, for a vehicle on another
//!    branch (the common case) and for one in the changed vehicle's own leaf (the worst case);
//! 6. `ota-repo verify` of the whole tree.
//!
//! Each publish runs in a child process (this binary again), so its time is the publish's
//! own and its peak RSS (VmHWM, read by the child at its end) is the publisher's alone. Then a
//! table of leaf sizes and fan-outs, computed on in-memory trees of 10,000 to 1,000,000 VINs
//! serialised exactly as published, shows why fan-out 16 and at most 64 vehicles (and 16 KiB)
//! per leaf were chosen.
//!
//! Run: `cargo bench -p ota-repo --bench fleet` (OTA_BENCH_FLEETS=10000,100000 to choose sizes;
//! `OTA_BENCH_QUICK=1`, as `.ci/run` does so the benchmark never rots: 2,000 vehicles and the
//! shape table at 10,000 only).

use ota_client::tuf::{init_trusted_root, Counting, DirFetcher, Limits, MetadataStore, Updater};
use ota_crypt::fleet::{FleetSecret, VehicleSecret};
use ota_metadata::documents::vehicles::{self, Leaf, NodeLink, VehicleEntry, VehicleNode};
use ota_metadata::documents::EcuAssignment;
use ota_metadata::DateTime;
use ota_repo::oem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DAY: i64 = 86_400;

fn vin(i: usize) -> String {
    format!("VIN{i:08}")
}

/// The serial of vehicle `i`'s ECU.
fn serial(i: usize) -> String {
    format!("ECU-{i}")
}

fn assignment(version: &str) -> EcuAssignment {
    EcuAssignment {
        hardware_id: "BRAKE-A".into(),
        supplier: "acme".into(),
        uid: "brake-fw".into(),
        version: version.into(),
        release_counter: 1,
        target: format!("brake-fw-{version}.bin"),
        length: 65_536,
        hashes: BTreeMap::from([("sha256".to_string(), "ab".repeat(32))]),
        key_wraps: None,
        // Known, as for any image reviewed since instructions: every changed ECU gets one.
        compact_sha256: Some("cd".repeat(32)),
        instruction: None,
        set: None,
        requires: Vec::new(),
        conflicts: Vec::new(),
    }
}

/// `n` vehicles as `oem vehicle import` reads them: one ECU each (serials unique in the
/// fleet), with the vehicle's and the ECU's keys: RSA-2048 public keys, each its own (a key
/// signs for one vehicle or ECU). Generating two million key pairs would take a day, so one
/// real key's modulus is varied in eight of its middle bytes: each parses and is checked as
/// any key is, and each is distinct.
fn write_fleet_csv(path: &Path, n: usize) {
    use base64::Engine;
    use std::io::Write;
    let key = ota_metadata::SigningKey::generate(2048).unwrap();
    let column: String = key
        .public()
        .keyval
        .public
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let der = b64.decode(column).unwrap();
    // The modulus of a 2048-bit key's SubjectPublicKeyInfo spans bytes 33..289.
    const VARIED: usize = 120;
    let key_column = |k: u64| {
        let mut d = der.clone();
        d[VARIED..VARIED + 8].copy_from_slice(&k.to_be_bytes());
        b64.encode(d)
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "vin,ecus,aftermarket,vehicle_key").unwrap();
    for i in 0..n {
        let (ecu, vehicle) = (key_column(2 * i as u64), key_column(2 * i as u64 + 1));
        writeln!(out, "{},{}:BRAKE-A:{ecu},,{vehicle}", vin(i), serial(i)).unwrap();
    }
    out.flush().unwrap();
}

/// Run `oem vehicle import`'s code in a child process; its time and peak RSS.
fn import(dir: &Path, csv: &Path) -> Published {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", "import"])
        .arg(dir)
        .arg(csv)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "import failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = out.split_whitespace().collect();
    Published {
        secs: f[0].parse().unwrap(),
        max_rss_kib: f[1].parse().unwrap(),
        written: f[2].parse().unwrap(),
        nodes: 0,
        signed: String::new(),
    }
}

/// Child modes: `--child publish DIR NOW`: one publish; `--child import DIR CSV`: one import;
/// its figures on stdout as one line.
fn child(args: &[String]) {
    if args[0] == "import" {
        let t = Instant::now();
        let r = oem::import::import_file(Path::new(&args[1]), Path::new(&args[2])).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!("{secs} {} {}", peak_rss_kib(), r.added);
        return;
    }
    let dir = PathBuf::from(&args[1]);
    let now = DateTime(args[2].parse().unwrap());
    let t = Instant::now();
    let r = oem::publish(&dir, now, false).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let signed: Vec<String> = r.roles.signed.iter().map(|(n, _)| n.clone()).collect();
    println!(
        "{secs} {} {} {} {}",
        peak_rss_kib(),
        r.vehicles_written,
        r.fleet.nodes_written,
        signed.join(",")
    );
}

struct Published {
    secs: f64,
    written: usize,
    nodes: usize,
    signed: String,
    max_rss_kib: i64,
}

/// Run one publish in a child process; its time and peak RSS.
fn publish(dir: &Path, now: DateTime) -> Published {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", "publish"])
        .arg(dir)
        .arg(now.0.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "publish failed");
    let out = String::from_utf8(out.stdout).unwrap();
    let f: Vec<&str> = out.split_whitespace().collect();
    Published {
        secs: f[0].parse().unwrap(),
        max_rss_kib: f[1].parse().unwrap(),
        written: f[2].parse().unwrap(),
        nodes: f[3].parse().unwrap(),
        signed: f.get(4).unwrap_or(&"").to_string(),
    }
}

/// The peak resident set of this process (VmHWM), in KiB: read by the child itself at its end,
/// so the figure is the publish's alone.
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A vehicle checking the OEM tree through the gateway's own code, counting what it fetches.
struct Observer {
    vin: String,
    secret: VehicleSecret,
    meta: PathBuf,
    state: PathBuf,
}

#[derive(Default, Clone, Copy)]
struct Download {
    total: u64,
    requests: usize,
    timestamp: u64,
    snapshot: u64,
    index: u64,
    nodes: u64,
    node_files: usize,
    other: u64,
}

impl Observer {
    fn new(base: &Path, vin: &str, repo: &Path, fleet: &FleetSecret) -> Self {
        let meta = base.join(format!("obs-{vin}/meta"));
        std::fs::create_dir_all(&meta).unwrap();
        init_trusted_root(
            &meta,
            &std::fs::read(repo.join("1.root.json")).unwrap(),
            &Limits::default(),
        )
        .unwrap();
        Observer {
            vin: vin.into(),
            secret: fleet.vehicle(vin),
            meta,
            state: base.join(format!("obs-{vin}/state")),
        }
    }

    fn check(&self, repo: &Path, now: DateTime) -> Download {
        let url = repo.display().to_string();
        let fetcher = Counting::new(DirFetcher::new());
        let mut up =
            Updater::new(&self.meta, &url, &url, &fetcher, Limits::default(), now).unwrap();
        let store = MetadataStore::new(&self.state);
        let vehicle = ota_client::walk::Vehicle {
            vin: &self.vin,
            secret: &self.secret,
        };
        let m = ota_client::walk::read_master(&mut up, &url, &vehicle, &store).unwrap();
        assert!(m.assignments.is_some());
        let mut d = Download::default();
        for (u, n) in fetcher.take() {
            d.total += n;
            d.requests += 1;
            if u.ends_with("timestamp.json") {
                d.timestamp += n;
            } else if u.ends_with(".snapshot.json") {
                d.snapshot += n;
            } else if u.ends_with(".vehicles.json") {
                d.index += n;
            } else if u.contains("/vehicles/tree/") {
                d.nodes += n;
                d.node_files += 1;
            } else {
                d.other += n;
            }
        }
        d
    }
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

struct Row {
    n: usize,
    /// `oem vehicle import` alone: seconds, peak RSS in KiB.
    import_only: (f64, i64),
    import: f64,
    first: Published,
    renew: Published,
    change: Published,
    cold: Download,
    after_renewal: Download,
    after_change: Download,
    sibling_after_change: Download,
    verify: f64,
    depth: usize,
}

fn run(n: usize, keys: &(PathBuf, PathBuf)) -> Row {
    println!("-- {n} vehicles");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oem");
    let now = DateTime::now();
    let roles = ota_repo::supplier::RoleOptions {
        default_keys: vec![keys.0.clone()],
        role_keys: ["root", "targets"]
            .into_iter()
            .map(|r| (r.to_string(), vec![keys.1.clone()]))
            .collect(),
        ..Default::default()
    };
    oem::init(&dir, &roles, None, now).unwrap();
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

    // The inventory through `oem vehicle import`'s code (timed: the goal is 60 s for
    // 1M vehicles), then the assignments shard by shard (as `oem assign --hardware-id` would).
    let fleet = oem::privacy::fleet_secret(&dir).unwrap();
    let t = Instant::now();
    let csv = tmp.path().join("fleet.csv");
    write_fleet_csv(&csv, n);
    let imported = import(&dir, &csv);
    assert_eq!(imported.written, n);
    println!(
        "   oem vehicle import {:.1} s ({} MiB of CSV: each vehicle's and its ECU's RSA-2048 keys), peak RSS {} MiB",
        imported.secs,
        std::fs::metadata(&csv).unwrap().len() >> 20,
        imported.max_rss_kib / 1024
    );
    let import_only = (imported.secs, imported.max_rss_kib);
    let mut by_shard: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    for i in 0..n {
        let v = vin(i);
        by_shard
            .entry(oem::store::shard_of(&fleet, &v))
            .or_default()
            .push((v, i));
    }
    for vins in by_shard.values() {
        let refs: Vec<&str> = vins.iter().map(|(v, _)| v.as_str()).collect();
        let mut asg = oem::Assignments::load_for(&dir, &refs).unwrap();
        for (v, i) in vins {
            asg.vehicles
                .insert(v.clone(), BTreeMap::from([(serial(*i), assignment("1.0"))]));
        }
        asg.save(&dir).unwrap();
    }
    drop(by_shard);
    let import = t.elapsed().as_secs_f64();
    println!("   import {import:.1} s");

    let repo = dir.join("repository");
    let first = publish(&dir, now);
    assert_eq!(first.written, n);
    println!(
        "   first publish {:.2} s, {} nodes, peak RSS {} MiB",
        first.secs,
        first.nodes,
        first.max_rss_kib / 1024
    );

    // The changed vehicle, and two observers: one on another branch, one in its leaf.
    let changed = vin(42);
    let locator = |v: &str| fleet.vehicle(v).locator();
    let ck = locator(&changed);
    let leaf = leaf_of(&repo, &ck);
    let far = (0..n)
        .map(vin)
        .find(|v| locator(v)[..1] != ck[..1])
        .unwrap();
    // The leaf names locators only: find a VIN whose locator is there.
    let near = (0..n)
        .map(vin)
        .find(|v| *v != changed && leaf.1.entries.contains_key(&locator(v)))
        .expect("a vehicle sharing a leaf");
    let far = Observer::new(tmp.path(), &far, &repo, &fleet);
    let near = Observer::new(tmp.path(), &near, &repo, &fleet);
    let cold = far.check(&repo, now);
    near.check(&repo, now);

    let later = now.plus_seconds(4 * DAY);
    let renew = publish(&dir, later);
    assert_eq!((renew.written, renew.nodes), (0, 0));
    println!("   renewal {:.3} s, signed {}", renew.secs, renew.signed);
    let after_renewal = far.check(&repo, later);
    near.check(&repo, later);

    let t = Instant::now();
    let mut asg = oem::Assignments::load_for(&dir, &[&changed]).unwrap();
    asg.vehicles
        .get_mut(&changed)
        .unwrap()
        .insert(serial(42), assignment("2.0"));
    asg.save(&dir).unwrap();
    let record_change = t.elapsed().as_secs_f64();
    let change = publish(&dir, later);
    assert_eq!(change.written, 1);
    println!(
        "   change one {:.3} s ({} nodes, signed {}; recording the change {:.3} s)",
        change.secs, change.nodes, change.signed, record_change
    );
    let after_change = far.check(&repo, later);
    let sibling_after_change = near.check(&repo, later);

    let t = Instant::now();
    let v = ota_repo::verify::verify(&dir, None, later).unwrap();
    let verify = t.elapsed().as_secs_f64();
    assert_eq!(v.vehicles, n);
    println!("   verify {verify:.1} s");
    println!("   cleaning up");
    Row {
        n,
        import_only,
        import,
        first,
        renew,
        change,
        cold,
        after_renewal,
        after_change,
        sibling_after_change,
        verify,
        depth: leaf.0,
    }
}

/// The depth and the leaf holding locator `key` in the served tree.
fn leaf_of(repo: &Path, key: &str) -> (usize, VehicleNode) {
    let mut link = oem::fleet::served_tree(repo).unwrap().unwrap();
    for depth in 0.. {
        let b = std::fs::read(repo.join(vehicles::node_path(&key[..depth], &link.sha256))).unwrap();
        let node = vehicles::check_node(&b, &key[..depth]).unwrap();
        if node.is_leaf() {
            return (depth + 1, node);
        }
        link = node.children[&key[depth..depth + 1]].clone();
    }
    unreachable!()
}

// ---- Choosing fan-out and leaf size ---------------------------------------------------------

struct Shape {
    nodes: usize,
    root: u64,
    cold_avg: f64,
    cold_max: u64,
    depth_max: usize,
}

/// The canonical tree over `keys` (locators, sorted) with `digits` hex digits per level and
/// at most `leaf_max` per leaf, serialised exactly as published; path sizes per vehicle.
/// Every vehicle's entry is `sealed`: one vehicle's sealed entry stands for all, since every
/// one-ECU entry pads to the same size and only sizes shape the tree.
fn shape(keys: &[(String, String)], sealed: &str, digits: usize, leaf_max: usize) -> Shape {
    let mut b = ShapeBuilder {
        digits,
        leaf_max,
        sealed: sealed.into(),
        s: Shape {
            nodes: 0,
            root: 0,
            cold_avg: 0.0,
            cold_max: 0,
            depth_max: 0,
        },
        total: 0.0,
    };
    let l = b.node(keys, 0, 0, 1);
    if b.s.root == 0 {
        b.s.root = l.length;
    }
    b.s.cold_avg = b.total / keys.len() as f64;
    b.s
}

/// Builds one tree shape: the parameters and what is summed over the vehicles.
struct ShapeBuilder {
    digits: usize,
    leaf_max: usize,
    sealed: String,
    s: Shape,
    /// Sum over vehicles of the bytes on the path from the root to their leaf.
    total: f64,
}

impl ShapeBuilder {
    /// A vehicle as the fleet publish above makes it: one ECU assigned.
    fn entry() -> VehicleEntry {
        VehicleEntry {
            version: 1,
            ecus: BTreeMap::from([("ECU1".to_string(), assignment("1.0"))]),
        }
    }

    /// The link to the node over `keys`; `above`: bytes of the nodes above it.
    fn node(
        &mut self,
        keys: &[(String, String)],
        prefix_len: usize,
        above: u64,
        depth: usize,
    ) -> NodeLink {
        let digits = self.digits;
        let prefix = keys[0].0[..prefix_len].to_string();
        self.s.nodes += 1;
        // Every entry is the same size: whether they fit is decided on one of them, and the
        // leaf is built only when they do.
        let sample = Leaf::new(keys[0].0.clone(), self.sealed.clone());
        if vehicles::fits(std::iter::repeat_n(&sample, keys.len()), self.leaf_max) {
            let node = VehicleNode {
                type_: VehicleNode::TYPE.into(),
                prefix,
                children: BTreeMap::new(),
                entries: keys
                    .iter()
                    .map(|(k, _)| (k.clone(), self.sealed.clone()))
                    .collect(),
            };
            let b = ota_metadata::canonical::to_canonical(&node).unwrap();
            let path = above + b.len() as u64;
            self.total += path as f64 * keys.len() as f64;
            self.s.cold_max = self.s.cold_max.max(path);
            self.s.depth_max = self.s.depth_max.max(depth);
            return NodeLink::of(&b);
        }
        // The node's own size does not depend on its children's content, only on their
        // number: serialise it with placeholder links first to learn `above` for them.
        let mut groups: Vec<(String, &[(String, String)])> = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let d = &keys[start].0[prefix_len..prefix_len + digits];
            let end = start
                + keys[start..].partition_point(|k| &k.0[prefix_len..prefix_len + digits] == d);
            groups.push((d.to_string(), &keys[start..end]));
            start = end;
        }
        let placeholder = NodeLink {
            length: 1000,
            sha256: "0".repeat(64),
        };
        let mut node = VehicleNode {
            type_: VehicleNode::TYPE.into(),
            prefix,
            children: groups
                .iter()
                .map(|(d, _)| (d.clone(), placeholder.clone()))
                .collect(),
            entries: BTreeMap::new(),
        };
        let own = ota_metadata::canonical::to_canonical(&node).unwrap().len() as u64;
        for (d, g) in groups {
            let l = self.node(g, prefix_len + digits, above + own, depth + 1);
            node.children.insert(d, l);
        }
        let b = ota_metadata::canonical::to_canonical(&node).unwrap();
        if prefix_len == 0 {
            self.s.root = b.len() as u64;
        }
        NodeLink::of(&b)
    }
}

/// `OTA_BENCH_QUICK`: small sizes, so that `.ci/run` runs every step quickly.
fn quick() -> bool {
    std::env::var_os("OTA_BENCH_QUICK").is_some()
}

fn shapes() {
    println!("\n== Fan-out and leaf size, computed on in-memory trees serialised as published ==");
    println!(
        "| vehicles | fan-out | leaf max | nodes | depth max | root node (fetched after any change) | cold path, mean | cold path, max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let sizes: &[usize] = if quick() {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        let fleet = FleetSecret(ota_crypt::Key([3; 32]));
        let mut keys: Vec<(String, String)> = (0..n)
            .map(|i| (fleet.vehicle(&vin(i)).locator(), vin(i)))
            .collect();
        keys.sort();
        // Padded as the publisher pads a one-ECU vehicle.
        let sealed = ShapeBuilder::entry()
            .seal_padded(&vin(0), &fleet.vehicle(&vin(0)), vehicles::padded_for(1))
            .unwrap();
        let mut cases = vec![(1, 16), (1, 32), (1, 64), (1, 128)];
        if n == 1_000_000 {
            cases.extend([(2, 32), (2, 64)]);
        }
        for (digits, leaf_max) in cases {
            let s = shape(&keys, &sealed, digits, leaf_max);
            println!(
                "| {n} | {} | {leaf_max} | {} | {} | {} | {} | {} |",
                16usize.pow(digits as u32),
                s.nodes,
                s.depth_max,
                kib(s.root),
                kib(s.cold_avg as u64),
                kib(s.cold_max)
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]);
        return;
    }
    let sizes: Vec<usize> = std::env::var("OTA_BENCH_FLEETS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick() {
                vec![2_000]
            } else {
                vec![10_000, 100_000, 1_000_000]
            }
        });
    println!(
        "== ota-repo fleet benchmark (RSA-3072, {} cores) ==",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let keydir = tempfile::tempdir().unwrap();
    let keys = (
        keydir.path().join("online.pem"),
        keydir.path().join("offline.pem"),
    );
    for p in [&keys.0, &keys.1] {
        ota_repo::keystore::generate(3072, p).unwrap();
    }
    let rows: Vec<Row> = sizes.iter().map(|&n| run(n, &keys)).collect();

    println!("\n== Publishing (time of the publish itself; peak RSS of the publishing process) ==");
    println!("| vehicles | first publish | peak RSS | renewal (nothing changed) | peak RSS | change one vehicle | files written | verify all |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {} MiB | {:.3} s | {} MiB | {:.3} s | 1 + {} nodes | {:.1} s |",
            r.n,
            r.first.secs,
            r.first.max_rss_kib / 1024,
            r.renew.secs,
            r.renew.max_rss_kib / 1024,
            r.change.secs,
            r.change.nodes,
            r.verify
        );
    }
    println!(
        "(the import, not in the first publish's figure: `oem vehicle import` of the CSV {}; with the assignments written shard by shard {})",
        rows.iter()
            .map(|r| format!("{:.1} s and peak RSS {} MiB", r.import_only.0, r.import_only.1 / 1024))
            .collect::<Vec<_>>()
            .join(", "),
        rows.iter()
            .map(|r| format!("{:.0} s", r.import))
            .collect::<Vec<_>>()
            .join(", ")
    );

    println!("\n== What one vehicle downloads (through the client, from disk) ==");
    println!("| vehicles | depth | first check | after a renewal | after one change elsewhere | same, vehicle in the changed leaf |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let d = |d: &Download| format!("{} ({} req.)", kib(d.total), d.requests);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.n,
            r.depth,
            d(&r.cold),
            d(&r.after_renewal),
            d(&r.after_change),
            d(&r.sibling_after_change)
        );
    }
    println!(
        "\nBreakdown (bytes): timestamp / snapshot / index / nodes (files; the leaf holds the assignments) / other"
    );
    for r in &rows {
        for (what, d) in [
            ("first check", &r.cold),
            ("after one change elsewhere", &r.after_change),
            ("in the changed leaf", &r.sibling_after_change),
        ] {
            println!(
                "  {:>8} {what:<27} {} / {} / {} / {} ({}) / {}",
                r.n, d.timestamp, d.snapshot, d.index, d.nodes, d.node_files, d.other
            );
        }
    }
    shapes();
}
