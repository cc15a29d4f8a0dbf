//! `ota-repo upload` (issue 14), the real binary: to a directory, and to a real S3-compatible
//! server on loopback (moto's, `ota_testkit::s3`): only what the store lacks is sent, each
//! object carries its cache rules, a TUF client reads the tree through the store's HTTP
//! endpoint, a kill mid-upload leaves the store serving the previous version (the next run
//! completes it), a store holding a newer timestamp is refused, and `--prune` drops old
//! metadata but never the root chain.

use ota_client::tuf::{targets_url, AnyFetcher, CaRoots, HttpFetcher, Limits, Updater};
use ota_metadata::DateTime;
use ota_testkit::s3::{http, S3Server};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Env = ota_testkit::cli::CliEnv;
const BIN: &str = env!("CARGO_BIN_EXE_ota-repo");
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Supplier acme with one image, published.
fn supplier() -> Env {
    let env = Env::new(BIN);
    env.ok(&["key", "generate", "--bits", "2048", "--out", "k.pem"]);
    env.ok(&[
        "supplier", "init", "acme", "--name", "acme", "--key", "k.pem",
    ]);
    add(&env, "1.0", 5000);
    env
}

fn add(env: &Env, version: &str, size: usize) {
    let file = format!("fw-{version}.bin");
    let bytes: Vec<u8> = (0..size)
        .map(|i| (i * 31 % 251) as u8 ^ version.len() as u8)
        .collect();
    env.write(&file, &bytes);
    env.ok(&[
        "supplier",
        "add-image",
        "acme",
        "--file",
        &file,
        "--uid",
        "brake-fw",
        "--version",
        version,
        "--release-counter",
        "1",
        "--hardware-id",
        "BRAKE-A",
        "--allow-rollback",
    ]);
    env.ok(&["supplier", "publish", "acme"]);
}

/// Files under `dir`, relative, `/`-separated.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// "sent N object(s)" out of the command's output.
fn sent(out: &str) -> usize {
    out.split("sent ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out:?}"))
}

/// Scenario: CDN publishing | an upload repeated, then after one change, then with --prune | only missing objects are sent; --prune drops old snapshots and never a root or a target
#[test]
fn a_directory_upload_sends_only_what_is_missing_and_prune_keeps_the_root_chain() {
    let env = supplier();
    let out = env.ok(&["upload", "acme", "--to", "served"]);
    let local = files(&env.path("acme/repository"));
    assert_eq!(files(&env.path("served")), local);
    assert_eq!(sent(&out), local.len());
    // Nothing new: nothing sent.
    assert_eq!(sent(&env.ok(&["upload", "acme", "--to", "served"])), 0);
    // One image more: exactly the new files (its three targets, the new metadata, the
    // timestamp), the dry run saying so first.
    add(&env, "2.0", 7000);
    let new = files(&env.path("acme/repository"))
        .difference(&local)
        .count()
        + 1;
    let dry = env.ok(&["upload", "acme", "--to", "served", "--dry-run"]);
    assert!(
        dry.contains(&format!("would send {new} object(s)")),
        "{dry}"
    );
    assert_eq!(
        sent(&env.ok(&[
            "upload",
            "acme",
            "--to",
            &format!("file://{}", env.s("served"))
        ])),
        new
    );
    assert_eq!(
        std::fs::read(env.path("served/timestamp.json")).unwrap(),
        std::fs::read(env.path("acme/repository/timestamp.json")).unwrap()
    );
    // Several publishes later, --prune drops snapshots older than the previous one, and
    // never a root or a target.
    for _ in 0..3 {
        env.ok(&["supplier", "publish", "acme", "--force"]);
    }
    env.ok(&["supplier", "rotate-key", "acme", "--role", "root"]);
    env.ok(&["upload", "acme", "--to", "served", "--prune"]);
    let served = files(&env.path("served"));
    let snapshots: Vec<&String> = served
        .iter()
        .filter(|f| f.ends_with(".snapshot.json"))
        .collect();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(served.contains("1.root.json") && served.contains("2.root.json"));
    assert_eq!(
        served.iter().filter(|f| f.starts_with("targets/")).count(),
        6
    );
    assert!(!served.contains("1.targets.json"));
}

/// A TUF client over the tree at `url`, trusting `root`: refreshed, it returns the timestamp
/// version it accepted and whether it lists `target`.
fn refresh(url: &str, root: &Path, cache: &Path, target: &str) -> (u64, bool) {
    std::fs::create_dir_all(cache).unwrap();
    if !cache.join("root.json").exists() {
        std::fs::copy(root, cache.join("root.json")).unwrap();
    }
    let limits = Limits::default();
    let fetcher = AnyFetcher::new(HttpFetcher::new(&limits, CaRoots::None).unwrap());
    let mut up = Updater::new(
        cache,
        url,
        &targets_url(url),
        fetcher,
        limits,
        DateTime::now(),
    )
    .unwrap();
    up.refresh().unwrap();
    let version = up.trusted().timestamp().unwrap().signed.version;
    (version, up.get_targetinfo(target).unwrap().is_some())
}

/// The version of the local tree's timestamp.
fn local_version(env: &Env) -> u64 {
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("acme/repository/timestamp.json")).unwrap())
            .unwrap();
    ts["signed"]["version"].as_u64().unwrap()
}

fn upload(env: &Env, s3: &S3Server, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(env.tmp.path())
        .args(["upload", "acme", "--to", "s3://ota/acme"])
        .args(extra);
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    c
}

/// Scenario: CDN publishing | the upload to an S3 store is killed mid-way, or a machine behind the store uploads its older tree | clients keep reading the previous version whole and the next run completes it; the older upload is refused
#[test]
fn s3_upload_with_cache_rules_survives_a_kill_and_refuses_to_roll_back() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    s3.public_bucket("ota");
    let env = supplier();
    let out = upload(&env, &s3, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each object carries its rules.
    let sha = |name: &str| {
        files(&env.path("acme/repository/targets"))
            .into_iter()
            .find(|f| f.ends_with(name))
            .unwrap()
    };
    for (path, cc, ct) in [
        (
            "timestamp.json".to_string(),
            "public, max-age=60",
            "application/json",
        ),
        (
            "root.json".to_string(),
            "public, max-age=60",
            "application/json",
        ),
        ("1.snapshot.json".to_string(), IMMUTABLE, "application/json"),
        (
            format!("targets/{}", sha("brake-fw-1.0.bin")),
            IMMUTABLE,
            "application/octet-stream",
        ),
    ] {
        let (status, headers, _) = http(s3.port, "GET", &format!("/ota/acme/{path}"), &[], b"");
        assert_eq!(status, 200, "{path}");
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("cache-control"), Some(cc), "{path}");
        assert_eq!(h("content-type"), Some(ct), "{path}");
    }

    // A client reads the tree through the store.
    let url = format!("{}/ota/acme/", s3.endpoint());
    let root = env.path("acme/repository/1.root.json");
    let cache = env.path("client");
    let v1 = local_version(&env);
    assert_eq!(refresh(&url, &root, &cache, "brake-fw-1.0.bin"), (v1, true));

    // A large image (sent in parts), the upload killed while it is on its way.
    add(&env, "2.0", 40 << 20);
    // The new targets role: the first new object the upload sends, before the image.
    let new_targets = files(&env.path("acme/repository"))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".targets.json")?.parse::<u64>().ok())
        .max()
        .unwrap();
    let new_targets = format!("acme/{new_targets}.targets.json");
    let mut child = upload(&env, &s3, &["--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, _, listing) = http(s3.port, "GET", "/ota?list-type=2&prefix=acme/", &[], b"");
        if String::from_utf8_lossy(&listing).contains(&new_targets) {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the upload finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The store still serves the previous version, whole.
    assert!(local_version(&env) > v1);
    assert_eq!(
        refresh(&url, &root, &cache, "brake-fw-2.0.bin"),
        (v1, false)
    );
    // The next run completes it, and sends nothing already there.
    let out = upload(&env, &s3, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        refresh(&url, &root, &cache, "brake-fw-2.0.bin"),
        (local_version(&env), true)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(sent(&stdout) <= 4, "{stdout}");

    // Another machine published once more and uploaded: this one, behind, is refused.
    let copy = env.path("acme-copy");
    let status = Command::new("cp")
        .args(["-a", &env.s("acme"), &copy.display().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    env.ok(&["supplier", "publish", "acme-copy", "--force"]);
    let mut ahead = Command::new(BIN);
    ahead
        .current_dir(env.tmp.path())
        .args(["upload", "acme-copy", "--to", "s3://ota/acme"]);
    for (k, v) in s3.env() {
        ahead.env(k, v);
    }
    assert!(ahead.output().unwrap().status.success());
    let behind = upload(&env, &s3, &[]).output().unwrap();
    assert!(!behind.status.success());
    let err = String::from_utf8_lossy(&behind.stderr);
    assert!(err.contains("newer than the local"), "{err}");
}
