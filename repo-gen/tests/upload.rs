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
    // Several publishes later, --prune drops snapshots older than the previous one the store
    // served, and never a root or a target.
    for _ in 0..3 {
        env.ok(&["supplier", "publish", "acme", "--force"]);
    }
    env.ok(&["supplier", "rotate-key", "acme", "--role", "root"]);
    // The first prune keeps what the store was serving (its clients are mid-walk in it); the
    // next drops it.
    env.ok(&["upload", "acme", "--to", "served", "--prune"]);
    env.ok(&["supplier", "publish", "acme", "--force"]);
    env.ok(&["upload", "acme", "--to", "served", "--prune"]);
    let served = files(&env.path("served"));
    let snapshots: Vec<&String> = served
        .iter()
        .filter(|f| f.ends_with(".snapshot.json"))
        .collect();
    // The new one, and the two the store served last (current and previous).
    assert_eq!(snapshots.len(), 3, "{snapshots:?}");
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

/// Scenario: CDN publishing | the upload to an S3 store is killed mid-way, pruned, or a machine behind the store uploads its older tree | clients keep reading the previous version whole and the next run completes it; --prune drops old snapshots from the store and never a root or a target; the older upload is refused
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

    // --prune against the store: a few publishes later, the old snapshots go; the root chain
    // and every target stay, and clients still read the tree.
    for _ in 0..3 {
        env.ok(&["supplier", "publish", "acme", "--force"]);
    }
    for _ in 0..2 {
        let out = upload(&env, &s3, &["--prune"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, _, listing) = http(s3.port, "GET", "/ota?list-type=2&prefix=acme/", &[], b"");
    let listing = String::from_utf8_lossy(&listing).into_owned();
    assert!(!listing.contains("acme/1.snapshot.json"), "{listing}");
    assert!(listing.contains("acme/1.root.json"), "{listing}");
    for t in files(&env.path("acme/repository/targets")) {
        assert!(listing.contains(&format!("acme/targets/{t}")), "{t} pruned");
    }
    assert_eq!(
        refresh(&url, &root, &cache, "brake-fw-2.0.bin"),
        (local_version(&env), true)
    );

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

use ota_testkit::copy_tree;

/// `ota-repo verify` of the served tree, pinned to the first root.
fn verify_served(env: &Env, served: &str) {
    env.ok(&[
        "verify",
        served,
        "--root",
        &env.s(&format!("{served}/1.root.json")),
    ]);
}

/// Scenario: CDN publishing | the working directory restored from a backup, published again (the same versions, other bytes) and uploaded | refused: the store keeps serving its own tree, whole
#[test]
fn a_restored_tree_is_refused_instead_of_forking_the_store() {
    let env = supplier();
    env.ok(&["upload", "acme", "--to", "served"]);
    copy_tree(&env.path("acme"), &env.path("acme.bak"));
    add(&env, "2.0", 6000);
    env.ok(&["upload", "acme", "--to", "served"]);
    let served_ts = std::fs::read(env.path("served/timestamp.json")).unwrap();
    // The backup comes back; the same release is added again: the same versions, other bytes.
    std::fs::remove_dir_all(env.path("acme")).unwrap();
    copy_tree(&env.path("acme.bak"), &env.path("acme"));
    add(&env, "2.0", 6000);
    let err = env.fail(&["upload", "acme", "--to", "served"]);
    assert!(
        err.contains("already serves") && err.contains("with other bytes"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(env.path("served/timestamp.json")).unwrap(),
        served_ts,
        "the store's timestamp was replaced"
    );
    verify_served(&env, "served");
}

/// Scenario: CDN publishing | the working directory restored from a backup taken after an upload, the store moved on, then only the timestamp renewed (cron) | refused: the tree's snapshot is older than the one the store serves and clients hold (found by the attack pass)
#[test]
fn a_restored_tree_whose_timestamp_alone_was_renewed_is_refused() {
    let env = supplier();
    env.ok(&["upload", "acme", "--to", "served"]);
    copy_tree(&env.path("acme"), &env.path("acme.bak"));
    add(&env, "2.0", 6000);
    env.ok(&["upload", "acme", "--to", "served"]);
    let served_ts = std::fs::read(env.path("served/timestamp.json")).unwrap();
    std::fs::remove_dir_all(env.path("acme")).unwrap();
    copy_tree(&env.path("acme.bak"), &env.path("acme"));
    // Every 13 hours the timestamp alone is due: twice, and the tree's timestamp is newer
    // than the store's, over a snapshot older than the store's.
    for hours in [13, 26] {
        let later = ota_metadata::DateTime::now().plus_seconds(hours * 3600);
        let r = ota_repo::supplier::publish(&env.path("acme"), later, false).unwrap();
        assert_eq!(
            r.signed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["timestamp"]
        );
    }
    let err = env.fail(&["upload", "acme", "--to", "served"]);
    assert!(err.contains("restored from an older backup"), "{err}");
    assert_eq!(
        std::fs::read(env.path("served/timestamp.json")).unwrap(),
        served_ts
    );
    verify_served(&env, "served");
}

/// Scenario: CDN publishing | a tree uploaded to the prefix of another party's tree (a wrong --to) | refused: the other tree stays whole
#[test]
fn an_upload_to_another_trees_prefix_is_refused() {
    let env = supplier();
    env.ok(&["upload", "acme", "--to", "served"]);
    let before = files(&env.path("served"));
    env.ok(&["key", "generate", "--bits", "2048", "--out", "r.pem"]);
    env.ok(&[
        "regulator",
        "init",
        "tuv",
        "--name",
        "tuv",
        "--key",
        "r.pem",
    ]);
    let err = env.fail(&["upload", "tuv", "--to", "served"]);
    assert!(err.contains("holds another tree"), "{err}");
    assert_eq!(files(&env.path("served")), before);
    verify_served(&env, "served");
}

/// Scenario: CDN publishing | an upload named by the tree's path while a publish holds the working directory, or a tree whose timestamp names a snapshot it lacks | the upload waits for the lock (or fails naming it); the timestamp is never sent before what it names
#[test]
fn an_upload_never_sends_a_timestamp_ahead_of_its_files() {
    let env = supplier();
    env.ok(&["upload", "acme", "--to", "served"]);
    // A publish holds the lock: the upload by the tree's path is refused too.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.path("acme/.ota-repo.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let err = env.fail(&["upload", &env.s("acme/repository"), "--to", "served"]);
    assert!(err.contains("acme"), "{err}");
    drop(lock);
    // A tree whose timestamp names a snapshot that is missing: nothing sent, the store whole.
    add(&env, "2.0", 6000);
    let served_ts = std::fs::read(env.path("served/timestamp.json")).unwrap();
    let current = files(&env.path("acme/repository"))
        .into_iter()
        .filter_map(|f| f.strip_suffix(".snapshot.json")?.parse::<u64>().ok())
        .max()
        .unwrap();
    let snap = env.path(&format!("acme/repository/{current}.snapshot.json"));
    let kept = std::fs::read(&snap).unwrap();
    std::fs::remove_file(&snap).unwrap();
    env.fail(&["upload", "acme", "--to", "served"]);
    assert_eq!(
        std::fs::read(env.path("served/timestamp.json")).unwrap(),
        served_ts
    );
    std::fs::write(&snap, kept).unwrap();
    env.ok(&["upload", "acme", "--to", "served"]);
    verify_served(&env, "served");
}

/// Scenario: CDN publishing | several publishes between two uploads, then an upload with --prune | what the store was serving stays (clients mid-update still find it); the next prune drops it
#[test]
fn prune_keeps_what_the_store_was_serving() {
    let env = supplier();
    env.ok(&["upload", "acme", "--to", "served"]);
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("served/timestamp.json")).unwrap()).unwrap();
    let served = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    for _ in 0..4 {
        env.ok(&["supplier", "publish", "acme", "--force"]);
    }
    env.ok(&["upload", "acme", "--to", "served", "--prune"]);
    let name = format!("{served}.snapshot.json");
    assert!(
        env.path(&format!("served/{name}")).exists(),
        "{name} pruned"
    );
    // Everything that snapshot names is still there.
    let snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path(&format!("served/{name}"))).unwrap())
            .unwrap();
    for (file, m) in snap["signed"]["meta"].as_object().unwrap() {
        let v = m["version"].as_u64().unwrap();
        assert!(
            env.path(&format!("served/{v}.{file}")).exists(),
            "{v}.{file}"
        );
    }
    env.ok(&["supplier", "publish", "acme", "--force"]);
    env.ok(&["upload", "acme", "--to", "served", "--prune"]);
    assert!(!env.path(&format!("served/{name}")).exists());
    verify_served(&env, "served");
}

/// Scenario: CDN publishing | a symbolic link in the tree (an image, or targets/ itself pointing outside), or a private key left in repository/ | publish and upload refuse, naming the file; nothing outside the tree changes mode; the key is never made readable nor served
#[test]
fn links_and_private_keys_in_the_tree_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = supplier();
    // A private key left in the tree.
    std::fs::copy(
        env.path("k.pem"),
        env.path("acme/repository/backup-key.pem"),
    )
    .unwrap();
    std::fs::set_permissions(
        env.path("acme/repository/backup-key.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let err = env.fail(&["supplier", "publish", "acme", "--force"]);
    assert!(err.contains("backup-key.pem holds a private key"), "{err}");
    let err = env.fail(&["upload", "acme", "--to", "served"]);
    assert!(err.contains("backup-key.pem holds a private key"), "{err}");
    assert!(!env.path("served").exists());
    let mode = std::fs::metadata(env.path("acme/repository/backup-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_file(env.path("acme/repository/backup-key.pem")).unwrap();
    // A secret (the OEM's fleet secret, a vehicle's) left in the tree.
    std::fs::write(
        env.path("acme/repository/vehicle.secret"),
        format!("{}\n", "3c".repeat(32)),
    )
    .unwrap();
    let err = env.fail(&["upload", "acme", "--to", "served"]);
    assert!(
        err.contains("vehicle.secret holds a private key or secret"),
        "{err}"
    );
    assert!(!env.path("served").exists());
    std::fs::remove_file(env.path("acme/repository/vehicle.secret")).unwrap();

    // targets/ replaced by a link to a directory outside the tree (mode 0700).
    let outside = env.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(env.path("acme/repository/targets")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), outside.join(e.file_name())).unwrap();
    }
    std::fs::remove_dir_all(env.path("acme/repository/targets")).unwrap();
    std::os::unix::fs::symlink(&outside, env.path("acme/repository/targets")).unwrap();
    let err = env.fail(&["upload", "acme", "--to", "served"]);
    assert!(err.contains("symbolic link"), "{err}");
    add_fails(&env, "3.0");
    let err = env.fail(&["supplier", "publish", "acme", "--force"]);
    assert!(err.contains("symbolic link"), "{err}");
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "a directory outside the tree changed mode"
    );
    assert!(!env.path("served").exists());
}

/// `supplier add-image` of `version`, which must fail (the tree is refused).
fn add_fails(env: &Env, version: &str) {
    let file = format!("fw-{version}.bin");
    env.write(&file, &[3u8; 1000]);
    let err = env.fail(&[
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
    assert!(err.contains("symbolic link"), "{err}");
}
