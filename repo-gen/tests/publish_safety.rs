//! A careless operator cannot lose or roll back a published tree: the real `ota-repo` binary
//! on real files, each case checked for "the tree and ota-repo.json unchanged, or repaired".
//!
//! `OTA_REPO_BIN=/path/to/ota-repo` runs these tests against another build (e.g. an older one,
//! to show they fail there).

use std::collections::BTreeMap;
use std::path::PathBuf;

type Env = ota_testkit::cli::CliEnv;

fn bin() -> String {
    std::env::var("OTA_REPO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ota-repo").to_string())
}

fn env_new() -> Env {
    Env::new(&bin())
}

trait Steps {
    fn key(&self, name: &str) -> String;
    /// A supplier repository `acme` with one image published: targets, snapshot and
    /// timestamp at version 2.
    fn supplier(&self) -> String;
    /// The version of `timestamp.json` and the snapshot version it names.
    fn versions(&self, dir: &str) -> (u64, u64);
}

impl Steps for Env {
    fn key(&self, name: &str) -> String {
        self.ok(&["key", "generate", "--bits", "2048", "--out", name]);
        name.to_string()
    }
    fn supplier(&self) -> String {
        let k = self.key("acme.pem");
        self.ok(&["supplier", "init", "acme", "--name", "acme", "--key", &k]);
        self.write("fw1.bin", &[1u8; 5000]);
        self.ok(&add("fw1.bin", "brake-fw", "1.0.0", "5", "BRAKE-A"));
        self.ok(&["supplier", "publish", "acme"]);
        k
    }
    fn versions(&self, dir: &str) -> (u64, u64) {
        let ts: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.path(&format!("{dir}/repository/timestamp.json"))).unwrap(),
        )
        .unwrap();
        (
            ts["signed"]["version"].as_u64().unwrap(),
            ts["signed"]["meta"]["snapshot.json"]["version"]
                .as_u64()
                .unwrap(),
        )
    }
}

fn add<'a>(
    file: &'a str,
    uid: &'a str,
    version: &'a str,
    counter: &'a str,
    hw: &'a str,
) -> Vec<&'a str> {
    vec![
        "supplier",
        "add-image",
        "acme",
        "--file",
        file,
        "--uid",
        uid,
        "--version",
        version,
        "--release-counter",
        counter,
        "--hardware-id",
        hw,
    ]
}

/// Every file of `before` is still there with the same content, except those named in `gone`
/// (file names) and `timestamp.json`, the one file replaced in place.
fn unchanged_except(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
    gone: &[&str],
) {
    for (path, sha) in before {
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "timestamp.json" || gone.contains(&&*name) {
            continue;
        }
        assert_eq!(
            after.get(path),
            Some(sha),
            "{} was replaced or removed",
            path.display()
        );
    }
}

// 1. A published versioned file is immutable; versions continue from the highest published.

#[test]
fn deleted_timestamp_continues_the_versions_and_rewrites_nothing() {
    let env = env_new();
    env.supplier();
    assert_eq!(env.versions("acme"), (2, 2));
    let before = env.state("acme/repository");
    std::fs::remove_file(env.path("acme/repository/timestamp.json")).unwrap();
    env.ok(&["supplier", "publish", "acme"]);
    unchanged_except(&before, &env.state("acme/repository"), &[]);
    // A vehicle that saw timestamp v2 and snapshot v2 accepts what follows.
    let (ts, snap) = env.versions("acme");
    assert!(ts > 2 && snap >= 2, "timestamp v{ts}, snapshot v{snap}");
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
    // And a new image still publishes above every earlier version.
    env.write("fw2.bin", &[2u8; 300]);
    env.ok(&add("fw2.bin", "brake-fw", "1.1.0", "6", "BRAKE-A"));
    env.ok(&["supplier", "publish", "acme"]);
    unchanged_except(&before, &env.state("acme/repository"), &[]);
    assert!(env.path("acme/repository/3.targets.json").exists());
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
}

#[test]
fn deleted_current_snapshot_continues_above_it() {
    let env = env_new();
    env.supplier();
    let before = env.state("acme/repository");
    std::fs::remove_file(env.path("acme/repository/2.snapshot.json")).unwrap();
    env.ok(&["supplier", "publish", "acme"]);
    unchanged_except(&before, &env.state("acme/repository"), &["2.snapshot.json"]);
    let (ts, snap) = env.versions("acme");
    assert!(ts > 2 && snap > 2, "timestamp v{ts}, snapshot v{snap}");
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
}

#[test]
fn lost_timestamp_without_a_copy_is_refused_with_the_repair() {
    let env = env_new();
    env.supplier();
    std::fs::remove_file(env.path("acme/repository/timestamp.json")).unwrap();
    // The copy kept beside ota-repo.json is gone too: the version cannot be known.
    let _ = std::fs::remove_file(env.path("acme/last-timestamp.json"));
    let before = env.state("acme");
    let err = env.fail(&["supplier", "publish", "acme"]);
    assert!(
        err.contains("timestamp.json is missing") && err.contains("Restore timestamp.json"),
        "{err}"
    );
    assert_eq!(before, env.state("acme"));
}

#[test]
fn a_stray_higher_version_on_disk_is_skipped_not_overwritten() {
    let env = env_new();
    env.supplier();
    // Left by an interrupted publish (and perhaps already uploaded): never overwritten.
    env.write(
        "acme/repository/3.targets.json",
        b"{\"left\": \"by a crash\"}",
    );
    let before = env.state("acme/repository");
    env.write("fw2.bin", &[2u8; 300]);
    env.ok(&add("fw2.bin", "brake-fw", "1.1.0", "6", "BRAKE-A"));
    let out = env.ok(&["supplier", "publish", "acme"]);
    assert!(out.contains("signed targets v4"), "{out}");
    unchanged_except(&before, &env.state("acme/repository"), &[]);
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
}

#[test]
fn deleted_root_json_is_refused_with_the_copy_command() {
    let env = env_new();
    env.supplier();
    std::fs::remove_file(env.path("acme/repository/root.json")).unwrap();
    let before = env.state("acme");
    let err = env.fail(&["supplier", "publish", "acme"]);
    assert!(err.contains("cp ") && err.contains("1.root.json"), "{err}");
    assert_eq!(before, env.state("acme"));
    std::fs::copy(
        env.path("acme/repository/1.root.json"),
        env.path("acme/repository/root.json"),
    )
    .unwrap();
    env.ok(&["supplier", "publish", "acme"]);
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
}

// 2. `init` never replaces the root of a published tree whose ota-repo.json was lost.

#[test]
fn init_over_a_published_tree_without_settings_is_refused() {
    let env = env_new();
    env.supplier();
    let (root, targets) = (env.key("root.pem"), env.key("targets.pem"));
    std::fs::remove_file(env.path("acme/ota-repo.json")).unwrap();
    let before = env.state("acme");
    for args in [
        vec![
            "supplier", "init", "acme", "--name", "acme", "--key", "acme.pem",
        ],
        vec![
            "oem",
            "init",
            "acme",
            "--key",
            "acme.pem",
            "--root-key",
            &root,
            "--targets-key",
            &targets,
        ],
        vec![
            "regulator",
            "init",
            "acme",
            "--name",
            "tuv",
            "--key",
            "acme.pem",
        ],
    ] {
        let err = env.fail(&args);
        assert!(
            err.contains("acme/repository already holds a published tree")
                && err.contains("acme/ota-repo.json")
                && err.contains("Restore"),
            "{args:?}: {err}"
        );
        assert_eq!(before, env.state("acme"), "{args:?} changed the tree");
    }
    // The served tree itself is no working directory either.
    let before = env.state("acme");
    let err = env.fail(&[
        "supplier",
        "init",
        "acme/repository",
        "--name",
        "acme",
        "--key",
        "acme.pem",
    ]);
    assert!(err.contains("is a published tree"), "{err}");
    assert_eq!(before, env.state("acme"));
}
