//! A kill at every durable write of `rotate-key`, `publish` and `upload` (issue 27): the real
//! binary, aborted at step N (`OTA_REPO_FAULT_AT=N`: no unwinding, as SIGKILL or a power cut)
//! for every N until a run completes. After each kill the next ordinary command must work and
//! leave a tree that verifies; a cut rotation is finished or undone, never stuck; a cut upload
//! leaves the store serving the old tree or the new one, whole.

use std::os::unix::process::ExitStatusExt;
use std::process::Output;

type Env = ota_testkit::cli::CliEnv;
const BIN: &str = env!("CARGO_BIN_EXE_ota-repo");
const SIGABRT: i32 = 6;

use ota_testkit::copy_tree;

/// Replace `dir` with the copy in `from`.
fn restore(env: &Env, dir: &str, from: &str) {
    let _ = std::fs::remove_dir_all(env.path(dir));
    copy_tree(&env.path(from), &env.path(dir));
}

/// Run `args` aborted at step `n`: the step's name if it aborted there, `None` if the run had
/// fewer steps (and succeeded).
fn run_killed(env: &Env, args: &[&str], n: u64) -> Option<String> {
    let out: Output = std::process::Command::new(BIN)
        .current_dir(env.tmp.path())
        .args(args)
        .env("OTA_REPO_FAULT_AT", n.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.signal() != Some(SIGABRT) {
        assert!(out.status.success(), "{args:?} at step {n}: {stderr}");
        return None;
    }
    let line = stderr
        .lines()
        .find(|l| l.contains("fault injection: abort at step"))
        .unwrap_or_else(|| panic!("aborted without naming the step: {stderr}"));
    Some(line.split_once(": abort at ").unwrap().1.to_string())
}

/// For every step of `args` (from the state `base` of `dir`): kill it there, then `recover`.
/// Returns the steps seen.
fn at_every_step(env: &Env, dir: &str, base: &str, args: &[&str], recover: impl Fn(&str)) -> usize {
    let mut steps = 0;
    for n in 1u64.. {
        assert!(n < 200, "the steps never end");
        restore(env, dir, base);
        let Some(step) = run_killed(env, args, n) else {
            break;
        };
        steps += 1;
        recover(&step);
    }
    steps
}

/// `ota-repo verify` of a working directory's tree or a served one, from its first root.
fn verify(env: &Env, tree: &str) {
    let root = if env.path(&format!("{tree}/repository")).exists() {
        format!("{tree}/repository/1.root.json")
    } else {
        format!("{tree}/1.root.json")
    };
    env.ok(&["verify", tree, "--root", &env.s(&root)]);
}

/// The key ids root lists for `role` in the tree of working directory `dir`.
fn root_keyids(env: &Env, dir: &str, role: &str) -> Vec<String> {
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path(&format!("{dir}/repository/root.json"))).unwrap(),
    )
    .unwrap();
    let r = &root["signed"];
    let ids = match r["roles"].get(role) {
        Some(x) => x["keyids"].clone(),
        None => r["ota_roles"][role]["keyids"].clone(),
    };
    ids.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn key_id(env: &Env, file: &str) -> String {
    let out = env.ok(&["key", "show", file]);
    out.lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string()
}

fn key(env: &Env, name: &str) -> String {
    env.ok(&["key", "generate", "--bits", "2048", "--out", name]);
    name.to_string()
}

/// An OEM working directory `oem`: one offline key for root and targets, one online key.
fn oem_init(env: &Env) {
    let k = key(env, "online.pem");
    let off = key(env, "offline.pem");
    env.ok(&[
        "oem",
        "init",
        "oem",
        "--root-key",
        &off,
        "--targets-key",
        &off,
        "--key",
        &k,
    ]);
}

fn supplier(env: &Env) {
    let k = key(env, "k.pem");
    env.ok(&["supplier", "init", "acme", "--name", "acme", "--key", &k]);
    for v in ["1.0", "2.0"] {
        env.write(&format!("fw-{v}.bin"), &vec![v.len() as u8; 3000]);
        env.ok(&[
            "supplier",
            "add-image",
            "acme",
            "--file",
            &format!("fw-{v}.bin"),
            "--uid",
            "brake-fw",
            "--version",
            v,
            "--release-counter",
            "1",
            "--hardware-id",
            "BRAKE-A",
            "--allow-rollback",
        ]);
    }
    env.ok(&["supplier", "publish", "acme"]);
}

/// A rotation of `role` of publisher `kind` in `dir`, killed at each step: the next publish
/// finishes or undoes it, the tree verifies, and rotating again (if undone) works.
fn rotation_survives_kills(env: &Env, kind: &str, dir: &str, role: &str) {
    let new = key(env, &format!("{dir}-{role}-new.pem"));
    let new_id = key_id(env, &new);
    copy_tree(&env.path(dir), &env.path(&format!("{dir}.base")));
    let args = [kind, "rotate-key", dir, "--role", role, "--new-key", &new];
    let steps = at_every_step(env, dir, &format!("{dir}.base"), &args, |step| {
        let what = format!("{kind} {role} rotation killed at {step}");
        env.ok(&[kind, "publish", dir]);
        verify(env, dir);
        assert!(
            !env.path(&format!("{dir}/rotation.json")).exists(),
            "{what}: still in flight"
        );
        // Finished, or undone and then run again: either way the new key is in force.
        if !root_keyids(env, dir, role).contains(&new_id) {
            env.ok(&args);
        }
        assert!(
            root_keyids(env, dir, role).contains(&new_id),
            "{what}: the new key is not in force"
        );
        env.ok(&[kind, "publish", dir, "--force"]);
        verify(env, dir);
    });
    assert!(steps >= 5, "only {steps} steps");
}

/// Scenario: Stolen keys | `rotate-key` (supplier targets) killed at each of its writes | the next publish finishes or undoes it; the tree verifies; the rotation completes
#[test]
fn a_supplier_targets_rotation_killed_anywhere_recovers() {
    let env = Env::new(BIN);
    supplier(&env);
    rotation_survives_kills(&env, "supplier", "acme", "targets");
}

/// Scenario: Stolen keys | `rotate-key` of the OEM's root and of its vehicles role killed at each of their writes | the next publish finishes or undoes it; the tree verifies; the rotation completes
#[test]
fn oem_root_and_vehicles_rotations_killed_anywhere_recover() {
    let env = Env::new(BIN);
    oem_init(&env);
    env.ok(&[
        "oem",
        "vehicle",
        "add",
        "oem",
        "--vin",
        "VIN1",
        "--ecu",
        "S1:BRAKE-A",
    ]);
    env.ok(&["oem", "publish", "oem"]);
    rotation_survives_kills(&env, "oem", "oem", "vehicles");
    rotation_survives_kills(&env, "oem", "oem", "root");
}

/// Scenario: CDN publishing | `publish` and `upload` killed at each of their writes | the next publish works and the tree verifies; the store serves the old tree or the new one, whole, and the next upload completes it
#[test]
fn publish_and_upload_killed_anywhere_recover() {
    let env = Env::new(BIN);
    supplier(&env);
    env.ok(&["upload", "acme", "--to", "served"]);
    env.write("fw-3.0.bin", &[3u8; 4000]);
    env.ok(&[
        "supplier",
        "add-image",
        "acme",
        "--file",
        "fw-3.0.bin",
        "--uid",
        "brake-fw",
        "--version",
        "3.0",
        "--release-counter",
        "2",
        "--hardware-id",
        "BRAKE-A",
    ]);
    copy_tree(&env.path("acme"), &env.path("acme.base"));
    let publishes = at_every_step(
        &env,
        "acme",
        "acme.base",
        &["supplier", "publish", "acme"],
        |step| {
            env.ok(&["supplier", "publish", "acme"]);
            verify(&env, "acme");
            let _ = step;
        },
    );
    assert!(publishes >= 3, "{publishes}");

    // The publish done, the upload killed at each object it sends.
    restore(&env, "acme", "acme.base");
    env.ok(&["supplier", "publish", "acme"]);
    copy_tree(&env.path("served"), &env.path("served.base"));
    let uploads = at_every_step(
        &env,
        "served",
        "served.base",
        &["upload", "acme", "--to", "served"],
        |step| {
            // What a client sees now: the old tree or the new one, whole.
            verify(&env, "served");
            let served = std::fs::read(env.path("served/timestamp.json")).unwrap();
            let old = std::fs::read(env.path("served.base/timestamp.json")).unwrap();
            let new = std::fs::read(env.path("acme/repository/timestamp.json")).unwrap();
            assert!(
                served == old || served == new,
                "killed at {step}: a third timestamp"
            );
            env.ok(&["upload", "acme", "--to", "served"]);
            assert_eq!(
                std::fs::read(env.path("served/timestamp.json")).unwrap(),
                new
            );
            verify(&env, "served");
        },
    );
    assert!(uploads >= 3, "{uploads}");
}

/// Scenario: CDN publishing | the OEM's first publish of a fleet (the vehicle tree built in bulk) killed at each node and file it writes | nothing temporary is ever among the served names; the next publish sweeps it and the tree verifies
#[test]
fn an_oem_fleet_publish_killed_anywhere_leaves_no_temporary_in_the_tree() {
    let env = Env::new(BIN);
    oem_init(&env);
    for i in 0..120 {
        env.ok(&[
            "oem",
            "vehicle",
            "add",
            "oem",
            "--vin",
            &format!("VIN{i}"),
            "--ecu",
            &format!("S-{i}:BRAKE-A"),
        ]);
    }
    copy_tree(&env.path("oem"), &env.path("oem.base"));
    let temporaries = |dir: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![env.path(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    out.push(e.path().display().to_string());
                }
            }
        }
        out
    };
    let steps = at_every_step(
        &env,
        "oem",
        "oem.base",
        &["oem", "publish", "oem"],
        |step| {
            assert!(
                temporaries("oem/repository").is_empty(),
                "killed at {step}: {:?}",
                temporaries("oem/repository")
            );
            env.ok(&["oem", "publish", "oem"]);
            assert!(temporaries("oem").is_empty(), "{:?}", temporaries("oem"));
            verify(&env, "oem");
        },
    );
    assert!(steps >= 3, "{steps}");
}
