//! The small CLI cases of issue 9, each as a user meets it: the real binary on real files.
//!
//! 1. a `--file` that is a FIFO is refused before the lock, without hanging;
//! 2. a 0-byte image is refused;
//! 3. `key show K | head -1` (a closed stdout) does not panic;
//! 4. a non-ASCII name is shown as typed ('é', not 'Ã©');
//! 5. an Ed25519 key is named by its own OID (1.3.101.112), not RSA's;
//! 6. `ota-repo.json` with an unknown field, or a threshold of 0 or above the role's keys, is
//!    refused naming the file and the field or role;
//! 7. `--wait SECONDS` waits for the lock and proceeds, or fails after the timeout;
//!
//! and `--help` as documentation: `oem assign` names its three selector modes, every
//! subcommand's `--help` says what each flag means, and the supplier examples run as written.

use clap::CommandFactory;
use ota_repo::cli::Cli;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

type Env = ota_testkit::cli::CliEnv;

const BIN: &str = env!("CARGO_BIN_EXE_ota-repo");

/// Throwaway Ed25519 key pair (test-only, never used for anything else).
const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFwYhMFkykX9dVIgfXlRKSRjg+4Sf6i7cFFlA8GFJeLG\n-----END PRIVATE KEY-----\n";
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAiQnYFn8N4dDvOjSedP7fk2l19r8SjnVujp46obdgiXY=\n-----END PUBLIC KEY-----\n";
const ED25519_OID: &str = "1.3.101.112";
const RSA_OID: &str = "1.2.840.113549.1.1.1";

fn env_new() -> Env {
    Env::new(BIN)
}

fn key(env: &Env, name: &str) -> String {
    env.ok(&["key", "generate", "--bits", "2048", "--out", name]);
    name.to_string()
}

/// `oem vehicle add` of `vin` with one ECU (`SERIAL:HARDWARE_ID`), which must succeed.
fn add_vehicle(env: &Env, vin: &str, ecu: &str) {
    env.ok(&["oem", "vehicle", "add", "oem", "--vin", vin, "--ecu", ecu]);
}

/// `oem ecu add` of `ecu` (`SERIAL:HARDWARE_ID`) to `vin`, which must succeed.
fn add_ecu(env: &Env, vin: &str, ecu: &str) {
    env.ok(&["oem", "ecu", "add", "oem", "--vin", vin, "--ecu", ecu]);
}

/// An OEM working directory `dir` (online key `oem.pem`, offline key `offline.pem`, made
/// the first time).
fn oem_init(env: &Env, dir: &str) {
    for k in ["oem.pem", "offline.pem"] {
        if !env.path(k).exists() {
            key(env, k);
        }
    }
    env.ok(&[
        "oem",
        "init",
        dir,
        "--root-key",
        "offline.pem",
        "--targets-key",
        "offline.pem",
        "--key",
        "oem.pem",
    ]);
}

/// A supplier working directory `acme` (published, empty).
fn supplier(env: &Env) {
    let k = key(env, "acme.pem");
    env.ok(&["supplier", "init", "acme", "--name", "acme", "--key", &k]);
}

fn add_image<'a>(file: &'a str, uid: &'a str) -> Vec<&'a str> {
    vec![
        "supplier",
        "add-image",
        "acme",
        "--file",
        file,
        "--uid",
        uid,
        "--version",
        "1.0.0",
        "--release-counter",
        "1",
        "--hardware-id",
        "BRAKE-A",
    ]
}

/// An OEM working directory `oem` with separate offline and online keys.
fn oem(env: &Env) {
    let root = key(env, "oem-root.pem");
    let online = key(env, "oem-online.pem");
    env.ok(&[
        "oem",
        "init",
        "oem",
        "--root-key",
        &root,
        "--targets-key",
        &root,
        "--key",
        &online,
    ]);
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    Command::new(BIN)
        .current_dir(env.tmp.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ota-repo")
}

/// Wait for `child` at most `limit`; `None` (after killing it) if it did not finish.
fn wait_at_most(mut child: Child, limit: Duration) -> Option<Output> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("waiting").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Hold the lock of working directory `dir` from this process, as another command would.
fn hold_lock(dir: &Path) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".ota-repo.lock"))
        .unwrap();
    f.try_lock().expect("the directory is free");
    f
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

// ---- 1. a FIFO as --file ------------------------------------------------------------------

#[test]
fn a_fifo_as_file_is_refused_at_once_before_the_lock() {
    let env = env_new();
    supplier(&env);
    oem(&env);
    mkfifo(&env.path("image.fifo"));
    mkfifo(&env.path("report.fifo"));
    let before = env.state("acme");
    // The directories are locked by "another command": a check made after taking the lock
    // would report the lock, not the file. Nobody ever writes to the FIFOs: opening one for
    // reading would block forever.
    let _acme = hold_lock(&env.path("acme"));
    let _oem = hold_lock(&env.path("oem"));
    for args in [
        add_image("image.fifo", "brake-fw"),
        vec!["oem", "report", "ingest", "oem", "--file", "report.fifo"],
    ] {
        let child = spawn(&env, &args);
        let o = wait_at_most(child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{args:?} hangs on a FIFO"));
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(".fifo") && err.contains("FIFO"), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
        assert!(!err.contains("another ota-repo command"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(before, env.state("acme"));
}

// ---- 2. an empty image --------------------------------------------------------------------

#[test]
fn an_empty_image_is_refused_and_changes_nothing() {
    let env = env_new();
    supplier(&env);
    env.write("empty.bin", b"");
    let before = env.state("acme");
    let err = env.fail(&add_image("empty.bin", "brake-fw"));
    assert!(err.contains("empty.bin") && err.contains("empty"), "{err}");
    assert_eq!(before, env.state("acme"));
    // One byte is an image.
    env.write("one.bin", b"x");
    env.ok(&add_image("one.bin", "brake-fw"));
}

// ---- 3. a closed stdout -------------------------------------------------------------------

/// Run with stdout a pipe whose reading end is already closed: every write fails (EPIPE).
fn run_into_closed_pipe(env: &Env, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .current_dir(env.tmp.path())
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_the_output_not_the_command() {
    let env = env_new();
    supplier(&env);
    // `ota-repo key show K | head -1`, with head gone before the first line.
    let o = run_into_closed_pipe(&env, &["key", "show", "acme.pem"]);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.status.success(), "{err}");
    // The work of a command is done however its output fares.
    env.write("fw.bin", &[7u8; 1000]);
    let o = run_into_closed_pipe(&env, &add_image("fw.bin", "brake-fw"));
    assert!(
        o.status.success() && !stderr(&o).contains("panicked"),
        "{}",
        stderr(&o)
    );
    let o = run_into_closed_pipe(&env, &["supplier", "publish", "acme"]);
    assert!(
        o.status.success() && !stderr(&o).contains("panicked"),
        "{}",
        stderr(&o)
    );
    let out = env.ok(&["verify", "acme"]);
    assert!(out.contains("1 image(s)"), "{out}");
}

// ---- 4. non-ASCII names -------------------------------------------------------------------

#[test]
fn a_non_ascii_name_is_shown_as_typed() {
    let env = env_new();
    supplier(&env);
    env.write("fw.bin", &[1u8; 100]);
    for (args, name) in [
        (add_image("fw.bin", "café"), "café"),
        (
            vec![
                "supplier",
                "delegate",
                "acme",
                "--name",
                "zuliefer-ü",
                "--key",
                "acme.pem",
                "--sign-here",
                "--hardware-id",
                "ABS-1",
            ],
            "zuliefer-ü",
        ),
    ] {
        let err = env.fail(&args);
        let c = name.chars().last().unwrap();
        assert!(err.contains(name), "{err}");
        assert!(err.contains(&format!("'{c}'")), "{err}");
        assert!(!err.contains('Ã'), "mojibake: {err}");
    }
}

// ---- 5. Ed25519 keys ----------------------------------------------------------------------

#[test]
fn an_ed25519_key_is_named_by_its_own_oid() {
    let env = env_new();
    env.write("ed.pem", ED25519_PRIVATE.as_bytes());
    env.write("ed.pub.pem", ED25519_PUBLIC.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path("ed.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // `key show` of either half: the same TUF key object (ed25519, hex), the Ed25519 OID.
    let private = env.ok(&["key", "show", "ed.pem"]);
    let public = env.ok(&["key", "show", "ed.pub.pem"]);
    for shown in [&private, &public] {
        assert!(shown.contains(ED25519_OID), "{shown}");
        assert!(!shown.contains(RSA_OID), "{shown}");
        assert!(shown.contains("ed25519 / ed25519"), "{shown}");
    }
    assert_eq!(private.lines().next(), public.lines().next(), "same key id");
    assert_eq!(
        private.lines().last(),
        public.lines().last(),
        "same public key"
    );
    // Signing with it is refused, naming what it is.
    let err = env.fail(&[
        "supplier", "init", "acme", "--name", "acme", "--key", "ed.pem",
    ]);
    assert!(
        err.contains(ED25519_OID) && err.contains("Ed25519"),
        "{err}"
    );
    assert!(!err.contains(RSA_OID), "{err}");
    assert!(err.contains("RSA keys only"), "{err}");
}

/// Throwaway P-384 key pair (test-only): PKCS#8 private half and SPKI public half.
const P384_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDD6mSuYlemQaoHmEpRN\nSuynUBwdVeSnj8bP+VtDn3XqbHDLN84pbP/2FnEbktzn4g2hZANiAASGXSAKC878\nihtwiw/ugZwj3k0us3Wm6YFCaa+DwPtfBkNVZOxR1c9fBvUTi3rdMwPzKz5jcavT\nph2wts7qlw/oL4oai80SEtNm7iDaHO3gD5wwz8tNSjLX4U4KjzPkevM=\n-----END PRIVATE KEY-----\n";
const P384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEhl0gCgvO/IobcIsP7oGcI95NLrN1pumB\nQmmvg8D7XwZDVWTsUdXPXwb1E4t63TMD8ys+Y3Gr06YdsLbO6pcP6C+KGovNEhLT\nZu4g2hzt4A+cMM/LTUoy1+FOCo8z5Hrz\n-----END PUBLIC KEY-----\n";

/// `key show` of files that are not TUF keys says what each one is: an empty file, text
/// without a PEM block, a SEC1 EC key, a P-384 key (named by its own curve, not P-256's).
#[test]
fn key_show_names_what_a_file_is_when_it_is_not_a_key() {
    let env = env_new();
    env.write("empty.pem", b"");
    env.write("text.pem", b"hello\n");
    env.write("p384.pem", P384_PRIVATE.as_bytes());
    env.write("p384.pub.pem", P384_PUBLIC.as_bytes());
    let sec1 = P384_PRIVATE.replace("PRIVATE KEY", "EC PRIVATE KEY");
    env.write("sec1.pem", sec1.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    for f in ["p384.pem", "sec1.pem"] {
        std::fs::set_permissions(env.path(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for (file, says) in [
        ("empty.pem", "the file is empty"),
        ("text.pem", "no PEM block"),
        ("sec1.pem", "SEC1 form; convert it to PKCS#8"),
        ("p384.pem", "on the curve P-384 (OID 1.3.132.0.34)"),
        ("p384.pub.pem", "on the curve P-384 (OID 1.3.132.0.34)"),
    ] {
        let err = env.fail(&["key", "show", file]);
        assert!(err.contains(file) && err.contains(says), "{file}: {err}");
        assert!(!err.contains("NUL byte"), "{file}: {err}");
    }
}

// ---- 6. ota-repo.json read strictly -------------------------------------------------------

fn edit_settings(env: &Env, dir: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = env.path(&format!("{dir}/ota-repo.json"));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn settings_with_an_unknown_field_or_an_impossible_threshold_are_refused() {
    let env = env_new();
    supplier(&env);
    key(&env, "tier2.pem");
    env.ok(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "tier2",
        "--key",
        "tier2.pem",
        "--sign-here",
        "--hardware-id",
        "ABS-1",
    ]);
    let pristine = std::fs::read(env.path("acme/ota-repo.json")).unwrap();
    let restore = || std::fs::write(env.path("acme/ota-repo.json"), &pristine).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &[&str]); 6] = [
        // A misspelt setting at the top, in a role, in a delegation.
        (|v| v["max_image_sise"] = 5.into(), &["max_image_sise"]),
        (
            |v| v["roles"]["snapshot"]["treshold"] = 2.into(),
            &["treshold"],
        ),
        (
            |v| v["delegations"][0]["hardware_id"] = "ABS-2".into(),
            &["hardware_id"],
        ),
        // Thresholds nobody can meet, or that let nobody sign.
        (
            |v| v["roles"]["targets"]["threshold"] = 3.into(),
            &["targets", "threshold 3", "1 key"],
        ),
        (
            |v| v["roles"]["timestamp"]["threshold"] = 0.into(),
            &["timestamp", "threshold 0"],
        ),
        (
            |v| v["delegations"][0]["threshold"] = 2.into(),
            &["tier2", "threshold 2"],
        ),
    ];
    for (edit, says) in cases {
        restore();
        edit_settings(&env, "acme", edit);
        let before = env.state("acme");
        let err = env.fail(&["supplier", "publish", "acme"]);
        assert!(err.contains("ota-repo.json"), "{err}");
        for s in says {
            assert!(err.contains(s), "{s:?} not in {err}");
        }
        assert_eq!(before, env.state("acme"), "{err}");
    }
    restore();
    env.ok(&["supplier", "publish", "acme"]);

    // The OEM's and the regulator's settings too.
    oem(&env);
    edit_settings(&env, "oem", |v| v["regulator_treshold"] = 1.into());
    let err = env.fail(&["oem", "publish", "oem"]);
    assert!(
        err.contains("ota-repo.json") && err.contains("regulator_treshold"),
        "{err}"
    );
    edit_settings(&env, "oem", |v| {
        v.as_object_mut().unwrap().remove("regulator_treshold");
        v["regulator_threshold"] = 0.into();
    });
    let err = env.fail(&["oem", "publish", "oem"]);
    assert!(
        err.contains("ota-repo.json") && err.contains("regulator_threshold 0"),
        "{err}"
    );
    let reg = key(&env, "tuv.pem");
    env.ok(&["regulator", "init", "tuv", "--name", "tuv", "--key", &reg]);
    edit_settings(&env, "tuv", |v| v["scanner"] = "clamscan".into());
    let err = env.fail(&["regulator", "publish", "tuv"]);
    assert!(
        err.contains("ota-repo.json") && err.contains("scanner"),
        "{err}"
    );
}

// ---- 7. --wait ----------------------------------------------------------------------------

#[test]
fn wait_blocks_on_the_lock_then_proceeds_or_times_out() {
    let env = env_new();
    supplier(&env);
    let lock = hold_lock(&env.path("acme"));

    // Without --wait: refused at once, naming the directory and the way to wait.
    let start = Instant::now();
    let err = env.fail(&["supplier", "publish", "acme"]);
    // At once, not after a wait: far below the 60 s wait asked for below, on any machine.
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(err.contains("acme") && err.contains("--wait"), "{err}");

    // --wait 1: refused after about a second.
    let start = Instant::now();
    let err = env.fail(&["supplier", "publish", "acme", "--wait", "1"]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(err.contains("acme") && err.contains("1 s"), "{err}");

    // --wait 60: still waiting while the lock is held, done once it is released.
    let child = spawn(&env, &["supplier", "publish", "acme", "--wait", "60"]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "did not wait for the lock"
    );
    drop(lock);
    let o = wait_at_most(child, Duration::from_secs(30)).expect("finished after the release");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("waiting"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("signed timestamp"));

    // Every command group that locks takes it, before or after the subcommand.
    env.ok(&["supplier", "--wait", "5", "publish", "acme"]);
    oem(&env);
    env.ok(&["oem", "publish", "oem", "--wait", "5"]);
}

// ---- --help as documentation --------------------------------------------------------------

#[test]
fn oem_assign_names_its_three_selector_modes() {
    let env = env_new();
    oem(&env);
    let base = [
        "oem",
        "assign",
        "oem",
        "--supplier",
        "acme",
        "--uid",
        "fw",
        "--version",
        "1",
    ];
    for selector in [
        &[][..],                                     // none
        &["--ecu", "S1"][..],                        // an ECU without its vehicle
        &["--vin", "V1", "--hardware-id", "HW"][..], // two modes at once
        &["--ecu", "S1", "--hardware-id", "HW"][..],
    ] {
        let args: Vec<&str> = base.iter().chain(selector).copied().collect();
        let err = env.fail(&args);
        for mode in ["--vin VIN --ecu SERIAL", "--vin VIN)", "--hardware-id ID"] {
            assert!(err.contains(mode), "{selector:?}: {mode:?} not in {err}");
        }
    }
    // The old spelling still selects one ECU (and gets as far as the supplier check).
    let err = env.fail(&[
        "oem",
        "assign",
        "oem",
        "--vin",
        "V1",
        "--serial",
        "S1",
        "--supplier",
        "acme",
        "--uid",
        "fw",
        "--version",
        "1",
    ]);
    assert!(err.contains("acme"), "{err}");
}

/// Every subcommand's path, e.g. `["oem", "regulator", "threshold"]`.
fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    for sub in cmd.get_subcommands() {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        if sub.has_subcommands() {
            leaves(sub, p.clone(), out);
        }
        out.push((p, sub.clone()));
    }
}

#[test]
fn help_of_every_subcommand_says_what_each_flag_means() {
    let env = env_new();
    let mut all = Vec::new();
    leaves(&Cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 30, "{}", all.len());
    for (path, cmd) in all {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = env.ok(&args);
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if let Some(long) = a.get_long() {
                assert!(
                    help.contains(&format!("--{long}")),
                    "{path:?}: --{long}\n{help}"
                );
            }
            // The first words of its help text follow it.
            let text = a.get_long_help().or(a.get_help()).unwrap().to_string();
            let start: String = text
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                flat.contains(&start),
                "{path:?} {id}: {start:?} not in\n{help}"
            );
        }
        if cmd.has_subcommands() {
            assert!(help.contains("Examples"), "{path:?}: no examples\n{help}");
        }
    }
}

/// The supplier group's examples, run in order as written (with the keys and images they
/// name), end with a tree that verifies.
#[test]
fn the_supplier_examples_run_as_written() {
    let env = env_new();
    for k in [
        "acme-root.pem",
        "acme-online.pem",
        "tier2.pem",
        "targets2.pem",
        "bosch.pem",
    ] {
        key(&env, k);
    }
    // The tier-2's public half, as the key examples make it.
    env.ok(&["key", "public", "bosch.pem", "--out", "bosch.pub.pem"]);
    env.write("brake.bin", &[3u8; 4000]);
    env.write("abs.bin", &[4u8; 3000]);
    env.write("cal.bin", &[5u8; 2000]);
    let help = Cli::command()
        .find_subcommand("supplier")
        .unwrap()
        .get_after_help()
        .unwrap()
        .to_string();
    let mut ran = 0;
    for line in help.replace("\\\n", " ").lines().skip(1) {
        let line = line.split(" #").next().unwrap().trim();
        let Some(rest) = line.strip_prefix("ota-repo ") else {
            continue;
        };
        // Words as a shell splits them (the examples quote with single quotes only).
        let words: Vec<&str> = rest
            .split_whitespace()
            .map(|w| w.trim_matches('\''))
            .collect();
        env.ok(&words);
        ran += 1;
    }
    assert!(ran >= 14, "{ran} examples ran");
}

/// A directory or FIFO given as a key is named as such, not as missing; a full disk while an
/// image is copied names where it was being written, not the input (issue 27, 11).
#[test]
fn key_and_disk_errors_name_the_right_file() {
    let env = env_new();
    std::fs::create_dir(env.path("keys-dir")).unwrap();
    let err = env.fail(&["supplier", "init", "a", "--name", "a", "--key", "keys-dir"]);
    assert!(err.contains("is a directory, not a key file"), "{err}");
    let fifo = env.path("k.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = env.fail(&["supplier", "init", "b", "--name", "b", "--key", "k.fifo"]);
    assert!(err.contains("FIFO"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");

    // The copy of a 512 KiB image hits a file-size limit of 64 KiB (as a full disk would):
    // the error names the tree's targets directory, not the image.
    let k = key(&env, "k.pem");
    env.ok(&["supplier", "init", "acme", "--name", "acme", "--key", &k]);
    env.write("big.bin", &vec![7u8; 512 << 10]);
    let out = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" supplier add-image acme --file big.bin --uid fw --version 1 --release-counter 1 --hardware-id HW")
        .arg(BIN)
        .current_dir(env.tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("acme/repository/targets"), "{err}");
    assert!(!err.contains("big.bin"), "{err}");
}

/// `oem vehicle secret` provisions a gateway (and a replacement gateway with the same secret):
/// a new private file, never an existing one, for a vehicle of the inventory only.
#[test]
fn vehicle_secrets_are_issued_privately_and_again_the_same() {
    use std::os::unix::fs::PermissionsExt;
    let env = env_new();
    oem(&env);
    env.ok(&[
        "oem",
        "vehicle",
        "add",
        "oem",
        "--vin",
        "VIN-A",
        "--ecu",
        "E1:BRAKE-A",
        "--secret",
        "a.secret",
    ]);
    env.ok(&[
        "oem",
        "vehicle",
        "secret",
        "oem",
        "--vin",
        "VIN-A",
        "--out",
        "a2.secret",
    ]);
    let (a, a2) = (
        std::fs::read(env.path("a.secret")).unwrap(),
        std::fs::read(env.path("a2.secret")).unwrap(),
    );
    assert_eq!(a, a2, "a replaced gateway gets the same secret");
    assert_eq!(a.trim_ascii().len(), 64);
    for f in ["a.secret", "a2.secret"] {
        let mode = std::fs::metadata(env.path(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // Never over an existing file; never for a vehicle not in the inventory.
    let err = env.fail(&[
        "oem", "vehicle", "secret", "oem", "--vin", "VIN-A", "--out", "a.secret",
    ]);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fail(&[
        "oem", "vehicle", "secret", "oem", "--vin", "VIN-X", "--out", "x.secret",
    ]);
    assert!(err.contains("VIN-X"), "{err}");
    assert!(!env.path("x.secret").exists());
    // Nothing of it is printed, nor published.
    let out = env.ok(&["oem", "publish", "oem"]);
    let hex = String::from_utf8(a).unwrap();
    assert!(!out.contains(hex.trim()));
    let tree = env.fingerprint("oem/repository", &[]);
    for p in tree.keys() {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            !bytes.windows(64).any(|w| w == hex.trim().as_bytes()),
            "{}",
            p.display()
        );
    }
}

/// `oem vehicle import`: a CSV fleet goes in whole or not at all, importing it again changes
/// nothing, and a line that contradicts the inventory is refused by name.
#[test]
fn vehicles_import_from_csv_all_or_nothing_and_idempotent() {
    let env = env_new();
    oem_init(&env, "oem");
    env.write(
        "fleet.csv",
        b"vin,ecus,aftermarket\nVIN1,BRK-1:BRAKE-A;HU-1:HU-GEN3,\nVIN2,BRK-2:BRAKE-A,CAM-2:AFTER-1\n",
    );
    let out = env.ok(&["oem", "vehicle", "import", "oem", "--file", "fleet.csv"]);
    assert!(out.contains("imported 2 vehicle(s); 0 already"), "{out}");
    let state = env.state("oem");
    let out = env.ok(&["oem", "vehicle", "import", "oem", "--file", "fleet.csv"]);
    assert!(out.contains("imported 0 vehicle(s); 2 already"), "{out}");
    assert_eq!(env.state("oem"), state, "importing again changed the state");
    // VIN2 with other ECUs, and a new VIN3: refused whole; VIN3 is not added.
    env.write("more.csv", b"VIN3,BRK-3:BRAKE-A\nVIN2,BRK-9:BRAKE-A\n");
    let err = env.fail(&["oem", "vehicle", "import", "oem", "--file", "more.csv"]);
    assert!(err.contains("VIN2") && err.contains("other ECUs"), "{err}");
    assert_eq!(env.state("oem"), state);
    // A malformed line is named.
    env.write("bad.csv", b"VIN4,BRK-4:BRAKE-A\nVIN5,BRK-5\n");
    let err = env.fail(&["oem", "vehicle", "import", "oem", "--file", "bad.csv"]);
    assert!(err.contains("line 2"), "{err}");
    // The imported vehicles are the inventory's: assignable, and their ECUs as given.
    env.ok(&[
        "oem",
        "vehicle",
        "secret",
        "oem",
        "--vin",
        "VIN2",
        "--out",
        "vin2.secret",
    ]);
    let err = env.fail(&[
        "oem", "vehicle", "add", "oem", "--vin", "VIN1", "--ecu", "X:Y",
    ]);
    assert!(err.contains("already in the inventory"), "{err}");
}

/// The one-line key column of an import file: the base64 body of a public-key PEM.
fn key_column(env: &Env, pem_file: &str) -> String {
    let pem = std::fs::read_to_string(env.path(pem_file)).unwrap();
    let public = ota_metadata::SigningKey::from_pem(&pem)
        .unwrap()
        .public()
        .keyval
        .public
        .clone();
    public.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// `oem vehicle import` with keys: the vehicle's and its ECUs' keys go in as `oem vehicle key`
/// and `oem ecu key` would register them (the same inventory bytes), keys are added to a
/// vehicle imported without them, and a key other than the registered one is refused whole.
#[test]
fn vehicles_import_with_the_keys_that_sign_their_reports() {
    let env = env_new();
    let init = |dir: &str| oem_init(&env, dir);
    init("oem");
    let (vk, ek, other) = (
        key(&env, "vehicle.pem"),
        key(&env, "ecu.pem"),
        key(&env, "other.pem"),
    );
    let (vcol, ecol, ocol) = (
        key_column(&env, &vk),
        key_column(&env, &ek),
        key_column(&env, &other),
    );
    // Imported without keys, then the same vehicles with keys: keys added, nothing else.
    env.write("bare.csv", b"VIN1,BRK-1:BRAKE-A;HU-1:HU-GEN3,\n");
    env.ok(&["oem", "vehicle", "import", "oem", "--file", "bare.csv"]);
    env.write(
        "keyed.csv",
        format!(
            "vin,ecus,aftermarket,vehicle_key\nVIN1,BRK-1:BRAKE-A:{ecol};HU-1:HU-GEN3,,{vcol}\n"
        )
        .as_bytes(),
    );
    let out = env.ok(&["oem", "vehicle", "import", "oem", "--file", "keyed.csv"]);
    assert!(out.contains("keys added to 1"), "{out}");
    let keyed = env.state("oem");
    // Registering the same keys by hand changes nothing: the import stored them as those
    // commands do (so the ingest verifies reports with them, and no report history is reset).
    env.ok(&[
        "oem", "vehicle", "key", "oem", "--vin", "VIN1", "--key", &vk,
    ]);
    env.ok(&[
        "oem", "ecu", "key", "oem", "--vin", "VIN1", "--serial", "BRK-1", "--key", &ek,
    ]);
    assert_eq!(
        env.state("oem"),
        keyed,
        "the imported keys are not the registered form"
    );
    // The same file again: nothing.
    let out = env.ok(&["oem", "vehicle", "import", "oem", "--file", "keyed.csv"]);
    assert!(
        out.contains("1 already") && out.contains("keys added to 0"),
        "{out}"
    );
    assert_eq!(env.state("oem"), keyed);
    // Another key for the vehicle or for an ECU: refused whole, naming the command that
    // changes a key; a new vehicle on the same file is not added either.
    for (file, line, names) in [
        (
            "vkey.csv",
            format!("VIN9,X-9:BRAKE-A\nVIN1,BRK-1:BRAKE-A;HU-1:HU-GEN3,,{ocol}\n"),
            "oem vehicle key",
        ),
        (
            "ekey.csv",
            format!("VIN9,X-9:BRAKE-A\nVIN1,BRK-1:BRAKE-A:{ocol};HU-1:HU-GEN3,\n"),
            "oem ecu key",
        ),
    ] {
        env.write(file, line.as_bytes());
        let err = env.fail(&["oem", "vehicle", "import", "oem", "--file", file]);
        assert!(err.contains("VIN1") && err.contains(names), "{file}: {err}");
        assert_eq!(env.state("oem"), keyed, "{file}");
    }
    // A key that is not an RSA public key, or not base64: the line is named.
    env.write(
        "badkey.csv",
        format!(
            "VIN9,X-9:BRAKE-A\nVIN8,X-8:BRAKE-A,,{}\n",
            &vcol[..vcol.len() / 2]
        )
        .as_bytes(),
    );
    let err = env.fail(&["oem", "vehicle", "import", "oem", "--file", "badkey.csv"]);
    assert!(
        err.contains("line 2") && err.contains("vehicle's key"),
        "{err}"
    );
    // A fresh OEM importing the keyed file holds the same keys as the one keyed by hand.
    init("oem2");
    env.ok(&["oem", "vehicle", "import", "oem2", "--file", "keyed.csv"]);
    let inventory = |dir: &str| -> Vec<String> {
        let mut keys: Vec<String> = env
            .state(dir)
            .into_keys()
            .filter(|p| p.starts_with(env.path(dir).join("inventory")))
            .flat_map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                text.split("-----BEGIN PUBLIC KEY-----")
                    .skip(1)
                    .map(|k| k.split("-----END").next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(inventory("oem2"), inventory("oem"));
    assert_eq!(inventory("oem2").len(), 2, "the vehicle's key and BRK-1's");
}

/// `oem fleet running` as an operator reads it: one line per ECU (a replayed or reverted
/// entry said to be below what the ECU reported before), `--json` with the same rows and the
/// highest counter, `--count` one number.
#[test]
fn fleet_queries_print_lines_json_and_counts() {
    let env = env_new();
    oem_init(&env, "oem");
    let ecu = |serial: &str, version: &str, counter: u64| ota_fleet::report::EcuState {
        serial: serial.into(),
        hardware_id: "BRAKE-A".into(),
        image: Some(ota_fleet::report::Running {
            uid: "brake-fw".into(),
            version: version.into(),
            sha256: "00".repeat(32),
            release_counter: counter,
        }),
    };
    let mut db = ota_repo::oem::reports::open(&env.path("oem")).unwrap();
    db.transaction(|tx| {
        ota_fleet::store::record_ecu(tx, "VIN1", &ecu("S1", "1.0", 1), 1000)?;
        // VIN2's S1 ran 2.0, then an older entry (1.0) came back.
        ota_fleet::store::record_ecu(tx, "VIN2", &ecu("S1", "2.0", 2), 1000)?;
        ota_fleet::store::record_ecu(tx, "VIN2", &ecu("S1", "1.0", 1), 2000)
    })
    .unwrap();
    drop(db);
    let running = [
        "oem",
        "fleet",
        "running",
        "oem",
        "--uid",
        "brake-fw",
        "--version",
        "1.0",
    ];
    let out = env.ok(&running);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("VIN1 S1 BRAKE-A brake-fw 1.0 (release counter 1")
            && !lines[0].contains("BELOW"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("VIN2 S1 BRAKE-A brake-fw 1.0")
            && lines[1].contains("BELOW the counter 2 it reported before"),
        "{out}"
    );
    let mut json = running.to_vec();
    json.push("--json");
    let rows: serde_json::Value = serde_json::from_str(&env.ok(&json)).unwrap();
    let got: Vec<(String, u64, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["vin"].as_str().unwrap().to_string(),
                r["release_counter"].as_u64().unwrap(),
                r["highest_release_counter"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("VIN1".into(), 1, 1), ("VIN2".into(), 1, 2)]);
    let mut count = running.to_vec();
    count.push("--count");
    assert_eq!(env.ok(&count).trim(), "2");
}

/// The README's test command on a machine without the programs its tests need, where it may
/// not install them: it names every missing one and fails, instead of letting the tests that
/// need them skip (`scripts/prerequisites.sh`, run first by `scripts/test.sh`).
#[test]
fn the_test_command_names_what_is_missing_instead_of_skipping() {
    let bin = tempfile::tempdir().unwrap();
    let id = Command::new("bash")
        .args(["-c", "command -v id"])
        .output()
        .unwrap();
    let id = String::from_utf8(id.stdout).unwrap();
    std::os::unix::fs::symlink(id.trim(), bin.path().join("id")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/prerequisites.sh");
    let out = Command::new("/bin/bash")
        .arg(script)
        .env("PATH", bin.path())
        .env("OTA_NO_INSTALL", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["nginx", "clamscan", "faketime", "python-tuf", "moto_server"] {
        assert!(err.contains(name), "{name} not named: {err}");
    }
    let test_sh =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test.sh"))
            .unwrap();
    assert!(test_sh.contains("scripts/prerequisites.sh") && test_sh.contains("CI="));
}

/// `oem rollout status`, `advance` and `halt` as an operator reads them: a line per rollout
/// (stage, assigned, succeeded, failed, pending, why it stopped), the same as JSON, a halt on
/// failures (a refusal and a revert) said by name, an unknown rollout refused by name.
#[test]
fn rollouts_print_their_progress_and_halts() {
    use ota_fleet::rollout::{self, Rollout, State};
    use ota_metadata::documents::{EcuEvent, Outcome};
    let env = env_new();
    oem_init(&env, "oem");
    assert_eq!(env.ok(&["oem", "rollout", "status", "oem"]), "no rollout\n");
    assert_eq!(
        env.ok(&["oem", "rollout", "advance", "oem"]),
        "no rollout running\n"
    );
    let id = Rollout::id_of("acme", "brake-fw", "2.0", "BRAKE-A");
    let r = Rollout {
        id: id.clone(),
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
    let members: Vec<(String, String)> = ["VIN1", "VIN2", "VIN3", "VIN4"]
        .iter()
        .map(|v| (v.to_string(), "S1".to_string()))
        .collect();
    let mut db = ota_repo::oem::reports::open(&env.path("oem")).unwrap();
    db.transaction(|tx| {
        rollout::create(tx, &r)?;
        rollout::add_members(tx, &id, 0, &members)
    })
    .unwrap();
    // VIN1 runs 2.0; VIN2 refused it; on VIN3 it faulted and was reverted; VIN4 is silent.
    let verdict = |vin: &str, running: bool, failed: Option<Outcome>| ota_fleet::report::Verdict {
        vin: vin.into(),
        generated: ota_metadata::DateTime(2000),
        counter: 0,
        sha256: format!("{vin}-report"),
        accepted: running
            .then(|| ota_fleet::report::EcuState {
                serial: "S1".into(),
                hardware_id: "BRAKE-A".into(),
                image: Some(ota_fleet::report::Running {
                    uid: "brake-fw".into(),
                    version: "2.0".into(),
                    sha256: "00".repeat(32),
                    release_counter: 2,
                }),
            })
            .into_iter()
            .collect(),
        flagged: Vec::new(),
        recalls: Vec::new(),
        events: failed
            .map(|outcome| EcuEvent {
                seq: 1,
                serial: "S1".into(),
                outcome,
                code: "why".into(),
                uid: "brake-fw".into(),
                version: "2.0".into(),
                update: "assignments v2".into(),
                at: ota_metadata::DateTime(2000),
            })
            .into_iter()
            .collect(),
    };
    for v in [
        verdict("VIN1", true, None),
        verdict("VIN2", false, Some(Outcome::Refused)),
        verdict("VIN3", false, Some(Outcome::Reverted)),
    ] {
        db.transaction(|tx| ota_fleet::store::apply(tx, &v, 2000))
            .unwrap();
    }
    drop(db);
    let status = env.ok(&["oem", "rollout", "status", "oem"]);
    assert_eq!(
        status,
        format!("{id} Running stage 1 of 2 (50%): 4 assigned, 1 succeeded, 2 failed, 1 pending\n")
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["oem", "rollout", "status", "oem", "--json"])).unwrap();
    assert_eq!(json[0]["rollout"]["id"], id.as_str());
    assert_eq!(json[0]["progress"]["failed"], 2);
    assert_eq!(json[0]["progress"]["succeeded"], 1);
    // 2 of 4 failed (50%) passes the 30% limit: advance halts it.
    let out = env.ok(&["oem", "rollout", "advance", "oem"]);
    assert!(
        out.starts_with(&format!("{id}: HALTED: ")) && out.contains("2 of 4 ECUs failed"),
        "{out}"
    );
    let status = env.ok(&["oem", "rollout", "status", "oem"]);
    assert!(
        status.starts_with(&format!("{id} Halted stage 1 of 2")),
        "{status}"
    );
    assert!(status.contains("2 of 4 ECUs failed"), "{status}");
    // Halted stays halted; a rollout that does not exist is named.
    assert_eq!(
        env.ok(&["oem", "rollout", "advance", "oem"]),
        "no rollout running\n"
    );
    let err = env.fail(&[
        "oem",
        "rollout",
        "halt",
        "oem",
        "--id",
        "acme/x/1/Y",
        "--reason",
        "test",
    ]);
    assert!(err.contains("no rollout acme/x/1/Y"), "{err}");
    let out = env.ok(&[
        "oem", "rollout", "halt", "oem", "--id", &id, "--reason", "by hand",
    ]);
    assert_eq!(
        out,
        format!("halted {id}: 0 pending assignment(s) withdrawn\n")
    );
}

/// Invariant: an ECU serial is held by one vehicle of the fleet, and a report-signing key by
/// one vehicle or one ECU, whichever command (add, ECU add/replace, key registration, import)
/// tries to give it to a second; a serial or key taken out (ECU removed or replaced, key
/// changed, vehicle removed) is free again; and the index that answers this across shards is
/// rebuilt from the inventory when lost, and never blocks on an entry no record holds (a
/// command interrupted between claiming and writing its record).
/// Scenario: Fleet backend | one ECU serial registered in two vehicles, one key for two vehicles or ECUs | refused naming the holder; free again once taken out
#[test]
fn one_serial_names_one_ecu_and_one_key_signs_for_one_party() {
    let env = env_new();
    oem_init(&env, "oem");
    let (k1, k2, k3) = (
        key(&env, "k1.pem"),
        key(&env, "k2.pem"),
        key(&env, "k3.pem"),
    );
    let add = |vin: &str, ecu: &str| -> Output {
        env.run(&["oem", "vehicle", "add", "oem", "--vin", vin, "--ecu", ecu])
    };
    let refused = |out: Output, want: &[&str]| {
        assert!(!out.status.success(), "accepted: {want:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        for w in want {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
    };
    assert!(add("VIN1", "S1:BRAKE-A").status.success());
    // The same serial in a second vehicle, by each command that adds one.
    refused(add("VIN2", "S1:BRAKE-A"), &["S1", "VIN1"]);
    assert!(add("VIN2", "S2:BRAKE-A").status.success());
    let ecu = |args: &[&str]| -> Output {
        let mut all = vec!["oem", "ecu"];
        all.extend_from_slice(args);
        env.run(&all)
    };
    refused(
        ecu(&["add", "oem", "--vin", "VIN2", "--ecu", "S1:BRAKE-A"]),
        &["S1", "VIN1"],
    );
    refused(
        ecu(&[
            "replace",
            "oem",
            "--vin",
            "VIN2",
            "--ecu",
            "S2",
            "--with",
            "S1:BRAKE-A",
        ]),
        &["S1", "VIN1"],
    );
    let before = env.state("oem");
    env.write("dup.csv", b"VIN3,S9:BRAKE-A\nVIN4,S1:BRAKE-A\n");
    refused(
        env.run(&["oem", "vehicle", "import", "oem", "--file", "dup.csv"]),
        &["S1", "VIN1"],
    );
    env.write("twice.csv", b"VIN3,S9:BRAKE-A\nVIN4,S9:BRAKE-A\n");
    refused(
        env.run(&["oem", "vehicle", "import", "oem", "--file", "twice.csv"]),
        &["S9", "VIN3", "VIN4"],
    );
    assert_eq!(env.state("oem"), before, "a refused import wrote something");

    // Keys: one signer each, the vehicle and its own ECUs included.
    let vkey =
        |vin: &str, k: &str| env.run(&["oem", "vehicle", "key", "oem", "--vin", vin, "--key", k]);
    let ekey =
        |vin: &str, s: &str, k: &str| ecu(&["key", "oem", "--vin", vin, "--serial", s, "--key", k]);
    assert!(vkey("VIN1", &k1).status.success());
    refused(vkey("VIN2", &k1), &["vehicle VIN1", "VIN2"]);
    refused(ekey("VIN1", "S1", &k1), &["vehicle VIN1", "ECU S1"]);
    assert!(ekey("VIN2", "S2", &k2).status.success());
    refused(ekey("VIN1", "S1", &k2), &["ECU S2 of vehicle VIN2"]);
    let col2 = key_column(&env, &k2);
    env.write("key.csv", format!("VIN5,S5:BRAKE-A,,{col2}\n").as_bytes());
    refused(
        env.run(&["oem", "vehicle", "import", "oem", "--file", "key.csv"]),
        &["ECU S2 of vehicle VIN2", "VIN5"],
    );
    // Registering a vehicle's own key again is no conflict.
    assert!(vkey("VIN1", &k1).status.success());
    // The same private key under another public exponent (same modulus, so the same p and q):
    // the same key.
    {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        use rsa::traits::PublicKeyParts;
        let pem = std::fs::read_to_string(env.path(&k1)).unwrap();
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let other_e =
            rsa::RsaPublicKey::new(private.n().clone(), rsa::BigUint::from(17u32)).unwrap();
        let text = other_e
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        env.write("k1-e17.pem", text.as_bytes());
    }
    refused(vkey("VIN2", "k1-e17.pem"), &["vehicle VIN1", "VIN2"]);
    // The OEM's own signing keys sign for no vehicle or ECU.
    for own in ["oem.pem", "offline.pem"] {
        refused(vkey("VIN2", own), &["OEM's own signing keys"]);
        refused(ekey("VIN2", "S2", own), &["OEM's own signing keys"]);
    }

    // Taken out, free again: a changed key, a removed ECU, a removed vehicle.
    assert!(vkey("VIN1", &k3).status.success());
    assert!(vkey("VIN2", &k1).status.success());
    assert!(ecu(&["remove", "oem", "--vin", "VIN1", "--ecu", "S1"])
        .status
        .success());
    assert!(ecu(&["add", "oem", "--vin", "VIN2", "--ecu", "S1:BRAKE-A"])
        .status
        .success());
    assert!(env
        .run(&["oem", "vehicle", "remove", "oem", "--vin", "VIN2"])
        .status
        .success());
    assert!(add("VIN6", "S1:BRAKE-A").status.success());
    assert!(ekey("VIN6", "S1", &k2).status.success());
    assert!(vkey("VIN6", &k1).status.success());

    // The index lost: rebuilt from the inventory, so duplicates are still refused.
    std::fs::remove_dir_all(env.path("oem/claims")).unwrap();
    refused(add("VIN7", "S1:BRAKE-A"), &["S1", "VIN6"]);
    refused(vkey("VIN1", &k2), &["ECU S1 of vehicle VIN6"]);
    // An entry no record holds (a command stopped after claiming): blocks nobody.
    let dir = env.path("oem");
    let stale = ota_repo::oem::claims::Claim::serial("S8");
    let mut c = ota_repo::oem::claims::Claims::load_for(&dir, [&stale]).unwrap();
    c.claim(&dir, &stale, &ota_repo::oem::claims::Owner::vehicle("VIN9"))
        .unwrap();
    c.save(&dir).unwrap();
    assert!(add("VIN8", "S8:BRAKE-A").status.success());
    refused(add("VIN9", "S8:BRAKE-A"), &["S8", "VIN8"]);
}

/// The serial and key index is only as good as its agreement with the inventory: a claims
/// shard deleted, emptied, corrupted or restored from an older copy, or an inventory shard
/// restored from a backup, is seen (each shard's inode, size and change time are recorded as
/// the program left them) and the index rebuilt, so duplicates stay refused; a restore that
/// brought one serial back into two vehicles stops `oem publish` until it is resolved.
/// Scenario: Fleet backend | the serial and key index or an inventory shard is deleted, emptied, corrupted or restored from a backup | seen and rebuilt: duplicates still refused, and a publish refuses a serial two vehicles hold until one gives it up
#[test]
fn a_changed_or_restored_index_or_inventory_is_seen_and_rebuilt() {
    let env = env_new();
    oem_init(&env, "oem");
    let k1 = key(&env, "k1.pem");
    let ok = |args: &[&str]| {
        env.ok(args);
    };
    let refused = |args: &[&str], want: &[&str]| {
        let err = env.fail(args);
        for w in want {
            assert!(err.contains(w), "{args:?}: {w:?} not in: {err}");
        }
    };
    add_vehicle(&env, "VIN1", "S1:BRAKE-A");
    add_vehicle(&env, "VIN2", "T1:BRAKE-A");
    ok(&[
        "oem", "vehicle", "key", "oem", "--vin", "VIN1", "--key", &k1,
    ]);
    let claims = env.path("oem/claims");
    let shards = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&claims)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.len() == 7 && n.ends_with(".json") && n != "seen.json"
            })
            .collect()
    };
    let dup_serial = [
        "oem",
        "ecu",
        "add",
        "oem",
        "--vin",
        "VIN2",
        "--ecu",
        "S1:BRAKE-A",
    ];
    let dup_key = [
        "oem", "vehicle", "key", "oem", "--vin", "VIN2", "--key", &k1,
    ];
    let copy_dir = |from: &Path, to: &Path| {
        let _ = std::fs::remove_dir_all(to);
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    };
    let backup = env.path("claims.bak");
    copy_dir(&claims, &backup);
    // Each damage to the index: the duplicates are still refused.
    let damages: [(&str, &dyn Fn()); 4] = [
        ("shards deleted", &|| {
            shards()
                .iter()
                .for_each(|p| std::fs::remove_file(p).unwrap())
        }),
        ("shards emptied", &|| {
            shards()
                .iter()
                .for_each(|p| std::fs::write(p, b"{}").unwrap())
        }),
        ("a shard corrupted", &|| {
            std::fs::write(&shards()[0], b"").unwrap()
        }),
        ("an older copy restored", &|| {
            // Older: from before VIN1's key was registered.
            std::fs::remove_dir_all(&claims).unwrap();
            copy_dir(&backup, &claims);
            for p in shards() {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("key:") {
                    std::fs::remove_file(&p).unwrap();
                }
            }
        }),
    ];
    for (i, (what, damage)) in damages.into_iter().enumerate() {
        damage();
        let err = env.fail(&dup_serial);
        assert!(err.contains("S1") && err.contains("VIN1"), "{what}: {err}");
        damage();
        let err = env.fail(&dup_key);
        assert!(err.contains("vehicle VIN1"), "{what}: {err}");
        // And nothing legitimate is blocked.
        add_ecu(&env, "VIN2", &format!("U-{i}:BRAKE-A"));
    }

    // An inventory shard restored from a backup taken before S1 moved from VIN1 to VIN2.
    let fleet = ota_repo::oem::privacy::fleet_secret(&env.path("oem")).unwrap();
    let shard = ota_repo::oem::store::shard_of(&fleet, "VIN1");
    let vin1 = env.path(&format!("oem/inventory/{shard}.json"));
    let old_vin1 = std::fs::read(&vin1).unwrap();
    ok(&[
        "oem", "ecu", "remove", "oem", "--vin", "VIN1", "--ecu", "S1",
    ]);
    ok(&dup_serial);
    std::fs::write(&vin1, &old_vin1).unwrap();
    // Both now hold S1: a third vehicle is refused it, and the publish refuses the fleet.
    refused(
        &[
            "oem",
            "vehicle",
            "add",
            "oem",
            "--vin",
            "VIN3",
            "--ecu",
            "S1:BRAKE-A",
        ],
        &["S1"],
    );
    refused(
        &["oem", "publish", "oem"],
        &[
            "ECU serial S1 is held by vehicle VIN1 and vehicle VIN2",
            "oem ecu remove",
        ],
    );
    // Resolved: the vehicle that no longer has it gives it up, and the publish goes through.
    ok(&[
        "oem", "ecu", "remove", "oem", "--vin", "VIN1", "--ecu", "S1",
    ]);
    ok(&["oem", "publish", "oem"]);
}

/// The second attack round on the index: resolving a restored duplicate as the refusal says
/// (from either holder) leaves the claim with the one that keeps it; the duplicates list, a
/// symbolic-link shard, a FIFO in place of the index's records and stamps forged after an edit
/// do not let a duplicate through (`oem publish --force` rebuilds from the whole inventory); a
/// key registered for a vehicle never becomes an OEM signing key; a command that cannot bring
/// the index up to date changes nothing.
/// Scenario: Fleet backend | a restored duplicate resolved as the refusal says; the duplicates list deleted; a shard behind a symbolic link edited; stamps forged; a vehicle's key offered as an OEM key | the claim stays with the holder that keeps it, every other way is refused, and a refused command writes nothing
#[test]
fn a_restored_duplicate_is_resolved_without_freeing_the_claim() {
    let env = env_new();
    oem_init(&env, "oem");
    let k1 = key(&env, "k1.pem");
    let ok = |args: &[&str]| {
        env.ok(args);
    };
    let dir = env.path("oem");
    // VIN1 and VIN2 both hold S1 after VIN1's shard is restored from a backup; `which` gives
    // up its copy as the refusal advises, and the claim must stay with the other.
    for which in ["VIN1", "VIN2"] {
        let _ = std::fs::remove_dir_all(&dir);
        oem_init(&env, "oem");
        let fleet = ota_repo::oem::privacy::fleet_secret(&dir).unwrap();
        let shard_file = |vin: &str| {
            dir.join(format!(
                "inventory/{}.json",
                ota_repo::oem::store::shard_of(&fleet, vin)
            ))
        };
        add_vehicle(&env, "VIN1", "S1:BRAKE-A");
        add_vehicle(&env, "VIN2", "T1:BRAKE-A");
        let backup = std::fs::read(shard_file("VIN1")).unwrap();
        ok(&[
            "oem", "ecu", "remove", "oem", "--vin", "VIN1", "--ecu", "S1",
        ]);
        add_ecu(&env, "VIN2", "S1:BRAKE-A");
        std::fs::write(shard_file("VIN1"), &backup).unwrap();
        let err = env.fail(&["oem", "publish", "oem"]);
        assert!(
            err.contains("held by vehicle VIN1 and vehicle VIN2"),
            "{err}"
        );
        // The duplicates list deleted: seen and rebuilt, still refused.
        std::fs::remove_file(dir.join("claims/duplicates.json")).unwrap();
        let err = env.fail(&["oem", "publish", "oem"]);
        assert!(
            err.contains("held by vehicle VIN1 and vehicle VIN2"),
            "{err}"
        );
        ok(&["oem", "ecu", "remove", "oem", "--vin", which, "--ecu", "S1"]);
        let keeper = if which == "VIN1" { "VIN2" } else { "VIN1" };
        let err = env.fail(&[
            "oem",
            "vehicle",
            "add",
            "oem",
            "--vin",
            "VIN3",
            "--ecu",
            "S1:BRAKE-A",
        ]);
        assert!(err.contains(keeper), "{which} gave S1 up: {err}");
        ok(&["oem", "publish", "oem"]);
    }

    let fleet = ota_repo::oem::privacy::fleet_secret(&dir).unwrap();
    let shard_file = |vin: &str| {
        dir.join(format!(
            "inventory/{}.json",
            ota_repo::oem::store::shard_of(&fleet, vin)
        ))
    };
    // An inventory shard behind a symbolic link, edited where it points: seen.
    add_vehicle(&env, "VIN4", "U1:BRAKE-A");
    let linked = shard_file("VIN4");
    let outside = env.path("outside.json");
    std::fs::copy(&linked, &outside).unwrap();
    std::fs::remove_file(&linked).unwrap();
    std::os::unix::fs::symlink(&outside, &linked).unwrap();
    add_vehicle(&env, "VIN5", "U5:BRAKE-A");
    let text = std::fs::read_to_string(&outside).unwrap();
    let held_elsewhere = if text.contains("\"VIN1\"") {
        "U5"
    } else {
        "T1"
    };
    // A serial another vehicle holds, written into the linked shard's own vehicle.
    std::fs::write(
        &outside,
        text.replace("\"U1\"", &format!("\"{held_elsewhere}\"")),
    )
    .unwrap();
    let err = env.fail(&["oem", "publish", "oem"]);
    assert!(
        err.contains(&format!("ECU serial {held_elsewhere}")),
        "{err}"
    );
    std::fs::write(&outside, &text).unwrap();
    ok(&["oem", "publish", "oem"]);

    // Stamps forged after an edit (what a file system keeping whole seconds could miss): a
    // plain publish cannot see it; `--force` rebuilds from the whole inventory and refuses.
    let vin4 = std::fs::read_to_string(&outside).unwrap();
    std::fs::write(&outside, vin4.replace("\"U1\"", "\"U5\"")).unwrap();
    ota_repo::oem::claims::record(&dir, ota_repo::oem::claims::Written::AllInventory).unwrap();
    let err = env.fail(&["oem", "publish", "oem", "--force"]);
    assert!(err.contains("ECU serial U5"), "{err}");
    std::fs::write(&outside, &vin4).unwrap();
    ok(&["oem", "publish", "oem", "--force"]);

    // A FIFO where the index keeps its stamps: no hang; the index is rebuilt over it.
    std::fs::remove_file(dir.join("claims/seen.json")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("claims/seen.json"))
        .status()
        .unwrap()
        .success());
    let err = env.fail(&[
        "oem",
        "vehicle",
        "add",
        "oem",
        "--vin",
        "VIN6",
        "--ecu",
        "U5:BRAKE-A",
    ]);
    assert!(err.contains("U5") && err.contains("VIN5"), "{err}");

    // A vehicle's report key offered as an OEM signing key: refused.
    ok(&[
        "oem", "vehicle", "key", "oem", "--vin", "VIN5", "--key", &k1,
    ]);
    let err = env.fail(&[
        "oem",
        "rotate-key",
        "oem",
        "--role",
        "vehicles",
        "--new-key",
        &k1,
    ]);
    assert!(err.contains("report key of vehicle VIN5"), "{err}");

    // An index that cannot be brought up to date (another shard unreadable) stops a removal
    // before it writes anything.
    let v2 = shard_file("VIN2");
    let v5 = shard_file("VIN5");
    if v2 != v5 {
        let good = std::fs::read(&v2).unwrap();
        std::fs::write(&v2, b"not json").unwrap();
        let before = env.state("oem");
        env.fail(&["oem", "vehicle", "remove", "oem", "--vin", "VIN5"]);
        env.fail(&[
            "oem", "ecu", "remove", "oem", "--vin", "VIN5", "--ecu", "U5",
        ]);
        let after = env.state("oem");
        let changed: Vec<_> = after
            .iter()
            .filter(|(p, h)| before.get(*p) != Some(h))
            .map(|(p, _)| p.clone())
            .collect();
        assert!(
            changed.iter().all(|p| p.starts_with(dir.join("claims"))),
            "a refused removal wrote {changed:?}"
        );
        std::fs::write(&v2, good).unwrap();
        ok(&["oem", "vehicle", "remove", "oem", "--vin", "VIN5"]);
    }
}
