//! The `ota-tuf-conformance` binary, run for real against trees built here: a supplier tree
//! published by `ota-repo` (read through `file://` URLs and plain paths) and test repositories
//! written by `support::minirepo` served over HTTP by a server that records every request, so
//! the tests can check what was fetched the way the tuf-conformance suite does.

mod support;

use support::http::Server;
use support::minirepo::{MiniRepo, TestKey};
use support::{files, image_bytes, run, run_with, s, status, SupplierTree};

/// A test directory with a client metadata dir `meta`, a target dir `targets` and a
/// repository dir `repo`.
struct Dirs {
    _tmp: tempfile::TempDir,
    meta: std::path::PathBuf,
    targets: std::path::PathBuf,
    repo: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        meta: tmp.path().join("meta"),
        targets: tmp.path().join("targets"),
        repo: tmp.path().join("repo"),
        _tmp: tmp,
    }
}

/// A repository served over HTTP with a client metadata dir initialised from its root v1.
struct Served {
    d: Dirs,
    repo: MiniRepo,
    server: Server,
}

impl Served {
    fn new(consistent: bool, keys: [std::sync::Arc<TestKey>; 4]) -> Served {
        let d = dirs();
        let repo = MiniRepo::new(&d.repo, consistent, keys);
        let server = Server::start(d.repo.clone());
        Served { d, repo, server }
    }

    fn init(&self) -> i32 {
        let root = self.d.repo.join("metadata/1.root.json");
        run(&["--metadata-dir", s(&self.d.meta), "init", s(&root)])
    }

    fn refresh_args(&self) -> Vec<String> {
        vec![
            "--metadata-url".into(),
            self.server.url("metadata/"),
            "--metadata-dir".into(),
            s(&self.d.meta).into(),
            "refresh".into(),
        ]
    }

    fn refresh(&self) -> i32 {
        let args = self.refresh_args();
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn download_args(&self, targets: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--metadata-url".into(),
            self.server.url("metadata/"),
            "--metadata-dir".into(),
            s(&self.d.meta).into(),
        ];
        for t in targets {
            a.push("--target-name".into());
            a.push(t.to_string());
        }
        a.extend([
            "--target-dir".into(),
            s(&self.d.targets).into(),
            "--target-base-url".into(),
            self.server.url("targets/"),
            "download".into(),
        ]);
        a
    }

    fn download(&self, targets: &[&str]) -> i32 {
        let args = self.download_args(targets);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn meta(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.d.meta.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }
}

fn ecdsa_keys() -> [std::sync::Arc<TestKey>; 4] {
    [
        TestKey::p256(1),
        TestKey::p256(2),
        TestKey::p256(3),
        TestKey::p256(4),
    ]
}

#[test]
fn init_and_refresh_over_file_urls_store_the_exact_bytes_served() {
    let t = SupplierTree::new(&[("brake-fw", "1.0.0", 3000)]);
    let meta = t.path("meta");
    let root = t.repo.join("1.root.json");
    assert_eq!(run(&["--metadata-dir", s(&meta), "init", s(&root)]), 0);
    assert_eq!(files(&meta), ["root.json"]);
    assert_eq!(
        std::fs::read(meta.join("root.json")).unwrap(),
        t.read("1.root.json")
    );

    let url = format!("file://{}", s(&t.repo));
    assert_eq!(
        run(&[
            "--metadata-url",
            &url,
            "--metadata-dir",
            s(&meta),
            "refresh"
        ]),
        0
    );
    assert_eq!(
        files(&meta),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    let served = [
        ("root.json", "1.root.json".to_string()),
        ("timestamp.json", "timestamp.json".to_string()),
        (
            "snapshot.json",
            format!("{}.snapshot.json", t.version("snapshot")),
        ),
        (
            "targets.json",
            format!("{}.targets.json", t.version("targets")),
        ),
    ];
    for (local, remote) in served {
        assert_eq!(
            std::fs::read(meta.join(local)).unwrap(),
            t.read(&remote),
            "{local} holds the bytes of {remote}"
        );
    }
    // A refresh with nothing new succeeds and changes nothing.
    assert_eq!(
        run(&[
            "--metadata-url",
            &url,
            "--metadata-dir",
            s(&meta),
            "refresh"
        ]),
        0
    );
}

#[test]
fn downloads_targets_from_plain_paths_reports_them_in_order_and_keeps_verified_copies() {
    use std::os::unix::fs::MetadataExt as _;
    let t = SupplierTree::new(&[("brake-fw", "1.0.0", 3000), ("abs-fw", "2.1", 70_000)]);
    let (meta, out) = (t.path("meta"), t.path("out"));
    let root = t.repo.join("1.root.json");
    assert_eq!(run(&["--metadata-dir", s(&meta), "init", s(&root)]), 0);
    let (a, b) = (
        support::image_name("brake-fw", "1.0.0"),
        support::image_name("abs-fw", "2.1"),
    );
    let targets_url = t.repo.join("targets");
    // The targets are fetched several at once; what the order given decides is the order of
    // the lookups and of the report, read here from the command's own output.
    let download = |names: &[&str]| {
        let mut args = vec!["--metadata-url", s(&t.repo), "--metadata-dir", s(&meta)];
        for n in names {
            args.extend(["--target-name", n]);
        }
        args.extend([
            "--target-dir",
            s(&out),
            "--target-base-url",
            s(&targets_url),
            "download",
        ]);
        let o = support::run_with(None, &args);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        (support::status(o), stdout)
    };
    let reported = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.split_once(" (listed by "))
            .map(|(t, _)| t.rsplit(": ").next().unwrap_or(t).to_string())
            .collect()
    };
    let (code, stdout) = download(&[&a, &b]);
    assert_eq!(code, 0);
    assert_eq!(reported(&stdout), [a.clone(), b.clone()], "{stdout}");
    assert_eq!(stdout.matches("downloaded to").count(), 2, "{stdout}");
    assert_eq!(files(&out), [b.clone(), a.clone()]);
    assert_eq!(
        std::fs::read(out.join(&a)).unwrap(),
        image_bytes("brake-fw", 3000)
    );
    assert_eq!(
        std::fs::read(out.join(&b)).unwrap(),
        image_bytes("abs-fw", 70_000)
    );
    // A replaced file is a new inode (downloads land by rename): the inode, not a clock,
    // tells whether a copy was kept.
    let inode = |n: &str| std::fs::metadata(out.join(n)).unwrap().ino();

    // Again, in the other order: both copies verify, so neither file is replaced.
    let before = (inode(&a), inode(&b));
    let (code, stdout) = download(&[&b, &a]);
    assert_eq!(code, 0);
    assert_eq!(reported(&stdout), [b.clone(), a.clone()], "{stdout}");
    assert_eq!(stdout.matches("already holds it").count(), 2, "{stdout}");
    assert_eq!((inode(&a), inode(&b)), before);

    // A damaged copy is downloaded again.
    std::fs::write(out.join(&a), b"damaged").unwrap();
    let (code, stdout) = download(&[&a]);
    assert_eq!(code, 0);
    assert!(stdout.contains("downloaded to"), "{stdout}");
    assert_eq!(
        std::fs::read(out.join(&a)).unwrap(),
        image_bytes("brake-fw", 3000)
    );
}

#[test]
fn over_http_init_requests_nothing_and_verified_targets_are_not_fetched_again() {
    let mut srv = Served::new(true, ecdsa_keys());
    srv.repo.add_target("targets", "first.txt", b"first target");
    srv.repo
        .add_target("targets", "dir/second.bin", &[7u8; 5000]);
    srv.repo.publish();
    // init with a metadata URL too: still no request.
    let root = srv.d.repo.join("metadata/1.root.json");
    let url = srv.server.url("metadata/");
    assert_eq!(
        run(&[
            "--metadata-url",
            &url,
            "--metadata-dir",
            s(&srv.d.meta),
            "init",
            s(&root)
        ]),
        0
    );
    assert_eq!(
        srv.server.take(),
        Vec::<String>::new(),
        "init made a request"
    );

    assert_eq!(srv.refresh(), 0);
    // The sequence tuf-conformance's test_basic_init_and_refresh expects.
    assert_eq!(
        srv.server.take(),
        [
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/2.snapshot.json",
            "/metadata/2.targets.json"
        ]
    );

    assert_eq!(srv.download(&["first.txt", "dir/second.bin"]), 0);
    let sha = |d: &[u8]| {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(d))
    };
    let mut requests = srv.server.take();
    // The two targets are downloaded at once: their requests may come in either order (sorted
    // here; "/targets/729b…" sorts before "/targets/dir/…").
    requests[2..].sort();
    assert_eq!(
        requests,
        [
            "/metadata/2.root.json".to_string(),
            "/metadata/timestamp.json".to_string(),
            format!("/targets/{}.first.txt", sha(b"first target")),
            format!("/targets/dir/{}.second.bin", sha(&[7u8; 5000])),
        ],
        "nothing new to refresh; targets under their consistent-snapshot names"
    );
    assert_eq!(files(&srv.d.targets), ["dir%2Fsecond.bin", "first.txt"]);
    assert_eq!(
        std::fs::read(srv.d.targets.join("first.txt")).unwrap(),
        b"first target"
    );

    // Both are present and verify: no target request at all.
    assert_eq!(srv.download(&["dir/second.bin", "first.txt"]), 0);
    assert_eq!(
        srv.server.take(),
        ["/metadata/2.root.json", "/metadata/timestamp.json"]
    );
    assert_eq!(
        files(&srv.d.meta),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    for role in ["root", "timestamp", "snapshot", "targets"] {
        assert_eq!(
            srv.meta(&format!("{role}.json")),
            srv.repo.served(role),
            "{role}"
        );
    }
}

#[test]
fn no_consistent_snapshots_ed25519_keys_unknown_fields_and_meta_without_lengths() {
    let mut srv = Served::new(
        false,
        [
            TestKey::ed25519(1),
            TestKey::ed25519(2),
            TestKey::p256(3),
            TestKey::rsa(0),
        ],
    );
    srv.repo
        .extra
        .insert("x-custom".into(), serde_json::json!({"nested": [1, 2]}));
    srv.repo
        .add_target("targets", "a dir/file+1.txt", b"spaced");
    srv.repo.publish();
    assert_eq!(srv.init(), 0);
    assert_eq!(srv.download(&["a dir/file+1.txt"]), 0);
    assert_eq!(
        srv.server.take(),
        [
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/snapshot.json",
            "/metadata/targets.json",
            "/targets/a%20dir/file%2B1.txt",
        ],
        "unversioned metadata and target names without consistent snapshots"
    );
    assert_eq!(files(&srv.d.targets), ["a%20dir%2Ffile%2B1.txt"]);
    for role in ["timestamp", "snapshot", "targets"] {
        assert_eq!(srv.meta(&format!("{role}.json")), srv.repo.served(role));
    }
}

#[test]
fn meta_hashes_and_lengths_are_checked_when_listed() {
    let mut srv = Served::new(true, ecdsa_keys());
    srv.repo.meta_hashes = true;
    srv.repo.add_target("targets", "t.txt", b"x");
    srv.repo.publish();
    assert_eq!(srv.init(), 0);
    assert_eq!(srv.refresh(), 0);

    // targets.json changes behind the snapshot's back: the listed hash no longer matches.
    srv.repo.add_target("targets", "u.txt", b"y");
    srv.repo.publish();
    let v = srv.repo.version("targets");
    let honest = srv.repo.read_meta(&format!("{v}.targets.json"));
    let older = srv.repo.read_meta(&format!("{}.targets.json", v - 1));
    let mut forged: serde_json::Value = serde_json::from_slice(&older).unwrap();
    forged["signed"]["version"] = v.into();
    std::fs::write(
        srv.repo.dir.join(format!("metadata/{v}.targets.json")),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    assert_eq!(srv.refresh(), 1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&srv.meta("targets.json")).unwrap()["signed"]
            ["version"],
        v - 1,
        "the trusted targets stay"
    );
    std::fs::write(
        srv.d.repo.join(format!("metadata/{v}.targets.json")),
        honest,
    )
    .unwrap();
    assert_eq!(srv.refresh(), 0);
}

/// Scenario: Root rotation | a rotation to other key types (ed25519, ECDSA) | followed and verified
#[test]
fn root_rotation_that_changes_the_key_types() {
    let mut srv = Served::new(
        true,
        [
            TestKey::rsa(0),
            TestKey::p256(2),
            TestKey::p256(3),
            TestKey::p256(4),
        ],
    );
    assert_eq!(srv.init(), 0);
    assert_eq!(srv.refresh(), 0);
    // root: RSA -> ed25519; timestamp: ECDSA -> RSA.
    srv.repo.rotate_root(
        vec![TestKey::ed25519(9)],
        Some(("timestamp", TestKey::rsa(1))),
    );
    srv.repo.publish_timestamp();
    srv.server.take();
    assert_eq!(srv.refresh(), 0);
    assert_eq!(srv.meta("root.json"), srv.repo.served("root"));
    assert_eq!(srv.meta("timestamp.json"), srv.repo.served("timestamp"));
    assert_eq!(
        srv.server.take(),
        [
            "/metadata/2.root.json",
            "/metadata/3.root.json",
            "/metadata/timestamp.json",
            // The timestamp keys changed: the local snapshot is forgotten and fetched again
            // (fast-forward recovery), the local targets still verify.
            "/metadata/1.snapshot.json",
        ]
    );
}

#[test]
fn unusual_role_names_are_quoted_in_urls_and_file_names() {
    let mut srv = Served::new(true, ecdsa_keys());
    for (i, name) in ["?", "#", "../delegatedrole", "/delegatedrole"]
        .iter()
        .enumerate()
    {
        srv.repo.delegate(
            "targets",
            name,
            TestKey::ed25519(20 + i as u8),
            &["*"],
            false,
        );
    }
    srv.repo.publish();
    assert_eq!(srv.init(), 0);
    assert_eq!(srv.download(&["nonexistent target"]), 1);
    let requests = srv.server.take();
    // python's quote(role, "") for every role, in delegation order (pre-order search).
    assert_eq!(
        requests[4..],
        [
            "/metadata/1.%3F.json",
            "/metadata/1.%23.json",
            "/metadata/1...%2Fdelegatedrole.json",
            "/metadata/1.%2Fdelegatedrole.json",
        ]
    );
    // Every role trusted, each in one file inside the metadata dir.
    let stored = files(&srv.d.meta);
    assert_eq!(stored.len(), 8, "{stored:?}");
    assert!(stored
        .iter()
        .all(|f| f.ends_with(".json") && !f.contains('/')));
    assert!(stored.contains(&"%3F.json".to_string()), "{stored:?}");
    assert!(!srv
        .d
        .meta
        .parent()
        .unwrap()
        .join("delegatedrole.json")
        .exists());
    assert_eq!(files(&srv.d.targets), Vec::<String>::new());
}

#[test]
fn failures_exit_1() {
    let mut srv = Served::new(true, ecdsa_keys());
    srv.repo.add_target("targets", "one", b"1");
    srv.repo.add_target("targets", "two", b"2");
    srv.repo.publish();

    // Argument errors: 1, not clap's 2; help is not an error.
    assert_eq!(run(&["--help"]), 0);
    assert_eq!(run(&["--no-such-flag", "refresh"]), 1);
    assert_eq!(run(&["--metadata-dir", s(&srv.d.meta)]), 1);
    assert_eq!(run(&["--metadata-dir", s(&srv.d.meta), "bogus"]), 1);
    assert_eq!(run(&["--metadata-dir", s(&srv.d.meta), "refresh"]), 1);
    // No trusted root yet.
    assert_eq!(srv.refresh(), 1);
    assert_eq!(srv.server.take(), Vec::<String>::new());
    // A root whose signature does not verify is not installed.
    let mut root: serde_json::Value =
        serde_json::from_slice(&srv.repo.read_meta("1.root.json")).unwrap();
    root["signed"]["version"] = 7.into();
    let bad_root = srv.d.repo.join("bad-root.json");
    std::fs::write(&bad_root, serde_json::to_vec(&root).unwrap()).unwrap();
    assert_eq!(
        run(&["--metadata-dir", s(&srv.d.meta), "init", s(&bad_root)]),
        1
    );
    assert_eq!(files(&srv.d.meta), Vec::<String>::new());
    assert_eq!(srv.init(), 0);

    // A target no role lists.
    assert_eq!(srv.download(&["missing"]), 1);
    // Stop at the first failure: "two" is never fetched.
    srv.server.take();
    assert_eq!(srv.download(&["one", "missing", "two"]), 1);
    assert_eq!(files(&srv.d.targets), ["one"]);
    assert!(srv.server.take().iter().all(|r| !r.ends_with(".two")));

    // The repository serves other bytes for "two": refused, nothing kept.
    srv.repo.substitute_target("two", b"3");
    assert_eq!(srv.download(&["two"]), 1);
    assert_eq!(files(&srv.d.targets), ["one"]);

    // A timestamp with a bad signature: refused, the trusted one stays.
    let trusted_ts = srv.meta("timestamp.json");
    let mut ts: serde_json::Value =
        serde_json::from_slice(&srv.repo.read_meta("timestamp.json")).unwrap();
    ts["signed"]["version"] = 99.into();
    std::fs::write(
        srv.d.repo.join("metadata/timestamp.json"),
        serde_json::to_vec(&ts).unwrap(),
    )
    .unwrap();
    assert_eq!(srv.refresh(), 1);
    assert_eq!(srv.meta("timestamp.json"), trusted_ts);
    assert_eq!(srv.download(&["one"]), 1);
}

/// Scenario: Freeze | metadata checked at a later (fake) clock | the refresh fails
#[test]
fn under_faketime_expired_metadata_fails_the_refresh() {
    if !support::faketime_available() {
        return;
    }
    let mut srv = Served::new(true, ecdsa_keys());
    srv.repo.expires.insert(
        "timestamp".into(),
        ota_metadata::DateTime::now().plus_seconds(86_400),
    );
    srv.repo.add_target("targets", "t", b"t");
    srv.repo.publish();
    assert_eq!(srv.init(), 0);
    let args = srv.refresh_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(status(run_with(Some("+0d"), &args)), 0);
    let trusted_ts = srv.meta("timestamp.json");
    // Three days on, the (same) timestamp has expired: refresh and download fail.
    let out = run_with(Some("+3d"), &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(status(out), 1);
    assert!(stderr.contains("expired"), "{stderr}");
    let dl = srv.download_args(&["t"]);
    let dl: Vec<&str> = dl.iter().map(String::as_str).collect();
    assert_eq!(status(run_with(Some("+3d"), &dl)), 1);
    assert_eq!(files(&srv.d.targets), Vec::<String>::new());
    assert_eq!(srv.meta("timestamp.json"), trusted_ts);

    // The repository publishes a fresh timestamp: the expired local one is only the rollback
    // reference, and the refresh succeeds at that fake date.
    srv.repo.expires.insert(
        "timestamp".into(),
        ota_metadata::DateTime::now().plus_seconds(10 * 86_400),
    );
    srv.repo.publish_timestamp();
    assert_eq!(status(run_with(Some("+3d"), &args)), 0);
    assert_eq!(status(run_with(Some("+3d"), &dl)), 0);
    assert_eq!(files(&srv.d.targets), ["t"]);
}

#[test]
fn succinct_hash_bin_delegations_are_followed() {
    let mut srv = Served::new(true, ecdsa_keys());
    srv.repo
        .delegate_succinct("targets", "bins", 3, TestKey::ed25519(40));
    // The target goes into the bin its path hashes to, as TAP 15 says.
    let bin = ota_metadata::roles::SuccinctRoles {
        keyids: vec![],
        threshold: 1,
        bit_length: 3,
        name_prefix: "bins".into(),
        extra: Default::default(),
    }
    .role_for("fw/app.bin");
    srv.repo.add_target(&bin, "fw/app.bin", b"binned");
    srv.repo.publish();
    assert_eq!(srv.init(), 0);
    assert_eq!(srv.download(&["fw/app.bin"]), 0);
    let requests = srv.server.take();
    // Exactly the one bin is fetched, not the other seven.
    let bins: Vec<&String> = requests.iter().filter(|r| r.contains("bins-")).collect();
    assert_eq!(bins.len(), 1, "{requests:?}");
    assert!(bins[0].contains(&bin), "{requests:?}");
    assert_eq!(
        std::fs::read(srv.d.targets.join("fw%2Fapp.bin")).unwrap(),
        b"binned"
    );
    // A target in no bin's list is not found.
    assert_eq!(srv.download(&["fw/other.bin"]), 1);
}
