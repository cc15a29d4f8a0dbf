//! `ota-repo` driven as a user drives it: the real binary, real files, real errors.

/// Throwaway keys of the wrong type (test-only, never used for anything else).
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFwYhMFkykX9dVIgfXlRKSRjg+4Sf6i7cFFlA8GFJeLG\n-----END PRIVATE KEY-----\n";
const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXIWWtOhL3JXZlGPj\nOJ05qZV2ELt+hJO8S9MxKrxmT4GhRANCAARYhvMbqyW8QM6GcKkLcUjcB02tH0fY\nA8Sk9rITLs2dMo3vYUOAon9DvCmOqx8vEMQjv4AF6t6xp6KQdXyn1FH5\n-----END PRIVATE KEY-----\n";

/// The `ota-repo` binary in a temporary working directory.
type Env = ota_testkit::cli::CliEnv;

fn env_new() -> Env {
    Env::new(env!("CARGO_BIN_EXE_ota-repo"))
}

/// This file's shortcuts over the shared environment.
trait Steps {
    fn key(&self, name: &str) -> String;
    fn supplier(&self) -> String;
}

impl Steps for Env {
    fn key(&self, name: &str) -> String {
        self.ok(&["key", "generate", "--bits", "2048", "--out", name]);
        name.to_string()
    }
    /// A supplier repository `acme` with one image published.
    fn supplier(&self) -> String {
        let k = self.key("acme.pem");
        self.ok(&["supplier", "init", "acme", "--name", "acme", "--key", &k]);
        self.write("fw1.bin", &vec![1u8; 5000]);
        self.ok(&add("fw1.bin", "brake-fw", "1.0.0", "5", "BRAKE-A"));
        self.ok(&["supplier", "publish", "acme"]);
        k
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

#[test]
fn help_describes_every_command() {
    let env = env_new();
    let top = env.ok(&["--help"]);
    for cmd in ["key", "supplier", "verify"] {
        assert!(top.contains(cmd), "{top}");
    }
    let sup = env.ok(&["supplier", "--help"]);
    for cmd in ["init", "add-image", "delegate", "publish", "rotate-key"] {
        assert!(sup.contains(cmd), "{sup}");
    }
    assert!(env
        .ok(&["supplier", "add-image", "--help"])
        .contains("--release-counter"));
}

#[test]
fn key_generate_is_private_and_never_overwrites() {
    let env = env_new();
    let out = env.ok(&["key", "generate", "--bits", "2048", "--out", "k.pem"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("k.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read_to_string(env.path("k.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let err = env.fail(&["key", "generate", "--bits", "2048", "--out", "k.pem"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(env.path("k.pem")).unwrap(), pem);
    // `show` gives the same key id as `generate` printed, and the public PEM.
    let shown = env.ok(&["key", "show", "k.pem"]);
    let id = out
        .split("key id ")
        .nth(1)
        .unwrap()
        .trim_end_matches([')', '\n']);
    assert!(shown.contains(id), "{shown} vs {out}");
    assert!(shown.contains("-----BEGIN PUBLIC KEY-----"));
    assert!(!shown.contains("PRIVATE"));
    let err = env.fail(&["key", "generate", "--bits", "1024", "--out", "small.pem"]);
    assert!(err.contains("1024 bits"), "{err}");
    assert!(!env.path("small.pem").exists());
}

#[test]
fn key_show_of_the_public_half_gives_the_same_id() {
    let env = env_new();
    env.key("k.pem");
    let shown = env.ok(&["key", "show", "k.pem"]);
    let pem_start = shown.find("-----BEGIN PUBLIC KEY-----").unwrap();
    env.write("pub.pem", &shown.as_bytes()[pem_start..]);
    let shown_pub = env.ok(&["key", "show", "pub.pem"]);
    assert_eq!(shown.lines().next(), shown_pub.lines().next());
}

#[test]
fn publish_then_verify_with_a_pinned_root() {
    let env = env_new();
    env.supplier();
    let out = env.ok(&["verify", "acme"]);
    assert!(out.contains("3 target(s), 1 image(s)"), "{out}");
    let pinned = env.ok(&[
        "verify",
        "acme/repository",
        "--root",
        "acme/repository/1.root.json",
    ]);
    assert!(!pinned.contains("trusting the tree's own"), "{pinned}");
    // A second publish with nothing new keeps targets and snapshot, renews the timestamp.
    let again = env.ok(&["supplier", "publish", "acme"]);
    assert!(
        again.contains("kept   targets") && again.contains("kept   snapshot"),
        "{again}"
    );
    assert!(again.contains("signed timestamp v3"), "{again}");
    env.ok(&["verify", "acme"]);
}

#[test]
fn bad_keys_get_clear_errors_and_create_nothing() {
    let env = env_new();
    env.write("garbage.pem", b"hello, I am not a key\n");
    env.write("ed.pem", ED25519_PEM.as_bytes());
    env.write("ec.pem", P256_PEM.as_bytes());
    env.write(
        "truncated.pem",
        b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    );
    env.key("real.pem");
    let shown = env.ok(&["key", "show", "real.pem"]);
    env.write(
        "public.pem",
        &shown.as_bytes()[shown.find("-----BEGIN").unwrap()..],
    );
    for (file, says) in [
        ("garbage.pem", "not a PEM file"),
        ("ed.pem", "RSA keys only"),
        ("ec.pem", "RSA keys only"),
        ("truncated.pem", "garbage"),
        ("public.pem", "public key"),
        ("missing.pem", "does not exist"),
    ] {
        let err = env.fail(&["supplier", "init", "acme", "--name", "acme", "--key", file]);
        if says != "garbage" {
            assert!(err.contains(says), "{file}: {err}");
        }
        assert!(err.contains(file), "error should name {file}: {err}");
        assert!(!env.path("acme/ota-repo.json").exists());
    }
}

#[test]
fn missing_and_oversized_images_are_refused_and_change_nothing() {
    let env = env_new();
    let k = env.key("k.pem");
    env.ok(&[
        "supplier",
        "init",
        "acme",
        "--name",
        "acme",
        "--key",
        &k,
        "--max-image-size",
        "4K",
    ]);
    let before = env.state("acme");
    let err = env.fail(&add("nope.bin", "fw", "1", "1", "HW"));
    assert!(err.contains("nope.bin"), "{err}");
    env.write("big.bin", &vec![0u8; 4097]);
    let err = env.fail(&add("big.bin", "fw", "1", "1", "HW"));
    assert!(err.contains("4097 bytes") && err.contains("4096"), "{err}");
    env.write("dir.bin", b"");
    std::fs::remove_file(env.path("dir.bin")).unwrap();
    std::fs::create_dir(env.path("dir.bin")).unwrap();
    let err = env.fail(&add("dir.bin", "fw", "1", "1", "HW"));
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(before, env.state("acme"));
    env.write("ok.bin", &vec![0u8; 4096]);
    env.ok(&add("ok.bin", "fw", "1", "1", "HW"));
}

#[test]
fn duplicates_bad_names_and_rollbacks() {
    let env = env_new();
    env.supplier();
    let before = env.state("acme");
    let err = env.fail(&add("fw1.bin", "brake-fw", "1.0.0", "6", "BRAKE-A"));
    assert!(err.contains("already in the repository"), "{err}");
    // uid "brake" version "fw-1.0.0" would collide on the target name brake-fw-1.0.0.bin.
    let err = env.fail(&add("fw1.bin", "brake", "fw-1.0.0", "6", "BRAKE-A"));
    assert!(err.contains("target name"), "{err}");
    // Names that would leave the repository's directories, or name nothing: refused by the
    // naming rule, each for its own reason.
    for (uid, hw, why) in [
        ("../etc", "HW", "\"../etc\" must not start with '.' or '-'"),
        ("ok", "a/b", "\"a/b\" contains '/'"),
        ("ok", "", "\"\" must be 1 to"),
    ] {
        let err = env.fail(&add("fw1.bin", uid, "2", "6", hw));
        assert!(err.contains(why), "{err}");
    }
    // Lower release counter: refused unless asked for.
    let err = env.fail(&add("fw1.bin", "brake-fw", "0.9.0", "4", "BRAKE-A"));
    assert!(
        err.contains("--allow-rollback") && err.contains("below 5"),
        "{err}"
    );
    assert_eq!(before, env.state("acme"));
    let mut args = add("fw1.bin", "brake-fw", "0.9.0", "4", "BRAKE-A");
    args.push("--allow-rollback");
    let o = env.run(&args);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    // Equal counter: accepted with a warning about the never-increment policy.
    let o = env.run(&add("fw1.bin", "brake-fw", "1.0.1", "5", "BRAKE-A"));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Uptane discourages"));
    env.ok(&["supplier", "publish", "acme"]);
    assert!(env.ok(&["verify", "acme"]).contains("3 image(s)"));
}

#[test]
fn tree_signed_by_an_unknown_key_fails_verification() {
    let env = env_new();
    env.supplier();
    // Another repository's root, pinned against this tree.
    let k2 = env.key("other.pem");
    env.ok(&["supplier", "init", "other", "--name", "other", "--key", &k2]);
    let err = env.fail(&["verify", "acme", "--root", "other/repository/1.root.json"]);
    assert!(err.contains("threshold"), "{err}");
    // A timestamp re-signed by a key the root does not list.
    let ts_path = env.path("acme/repository/timestamp.json");
    let mut ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ts_path).unwrap()).unwrap();
    let other_ts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path("other/repository/timestamp.json")).unwrap(),
    )
    .unwrap();
    ts["signatures"] = other_ts["signatures"].clone();
    std::fs::write(&ts_path, serde_json::to_vec(&ts).unwrap()).unwrap();
    let err = env.fail(&["verify", "acme"]);
    assert!(
        err.contains("timestamp") && err.contains("threshold"),
        "{err}"
    );
}

#[test]
fn tampered_targets_and_metadata_fail_verification() {
    let env = env_new();
    env.supplier();
    let targets = env.path("acme/repository/targets");
    let image = std::fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".brake-fw-1.0.0.bin"))
        .unwrap();
    let original = std::fs::read(&image).unwrap();
    let mut bad = original.clone();
    bad[100] ^= 0xff;
    std::fs::write(&image, &bad).unwrap();
    let err = env.fail(&["verify", "acme"]);
    assert!(err.contains("sha256"), "{err}");
    std::fs::write(&image, &original[..4000]).unwrap();
    let err = env.fail(&["verify", "acme"]);
    assert!(err.contains("4000 bytes"), "{err}");
    std::fs::write(&image, &original).unwrap();
    env.ok(&["verify", "acme"]);
    // Modified signed bytes in targets metadata: snapshot hash and signature both catch it.
    let t = env.path("acme/repository/2.targets.json");
    let text = std::fs::read_to_string(&t).unwrap();
    std::fs::write(
        &t,
        text.replace("\"release_counter\": 5", "\"release_counter\": 9"),
    )
    .unwrap();
    let err = env.fail(&["verify", "acme"]);
    assert!(err.contains("2.targets.json"), "{err}");
}

/// Scenario: Delegations | a tier-2 supplier signing for hardware outside its delegation | refused
#[test]
fn tier2_delegation_signs_only_its_hardware() {
    let env = env_new();
    env.supplier();
    let t2 = env.key("tier2.pem");
    env.ok(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "bosch",
        "--key",
        &t2,
        "--sign-here",
        "--hardware-id",
        "ABS-1",
        "--hardware-id",
        "ABS-2",
    ]);
    env.write("abs.bin", &vec![7u8; 3000]);
    let mut args = add("abs.bin", "abs-fw", "2.0", "1", "BRAKE-A");
    args.extend(["--role", "bosch"]);
    let err = env.fail(&args);
    assert!(err.contains("bosch") && err.contains("BRAKE-A"), "{err}");
    let mut args = add("abs.bin", "abs-fw", "2.0", "1", "ABS-2");
    args.extend(["--role", "bosch"]);
    env.ok(&args);
    let mut args = add("abs.bin", "x", "1", "1", "ABS-1");
    args.extend(["--role", "nobody"]);
    assert!(env.fail(&args).contains("no delegation named"));
    env.ok(&["supplier", "publish", "acme"]);
    let out = env.ok(&["verify", "acme"]);
    assert!(
        out.contains("2 targets role(s)") && out.contains("2 image(s)"),
        "{out}"
    );
    assert!(env.path("acme/repository/1.bosch.json").exists());
    // The tier-2 image manifest is signed by the tier-2 key, not the supplier's.
    let manifest = std::fs::read_dir(env.path("acme/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("abs-fw-2.0.image.json"))
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let shown = env.ok(&["key", "show", "tier2.pem"]);
    assert!(shown.contains(m["signatures"][0]["keyid"].as_str().unwrap()));
    // Delegating the name again, for other hardware: refused, the name is taken.
    let err = env.fail(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "bosch",
        "--key",
        &t2,
        "--sign-here",
        "--hardware-id",
        "X",
    ]);
    assert!(err.contains("delegation \"bosch\" already exists"), "{err}");
}

/// Scenario: Stolen keys | a supplier rotates every role's keys | the tree verifies from the first root
#[test]
fn rotating_keys_keeps_the_tree_verifiable_from_the_first_root() {
    let env = env_new();
    env.supplier();
    env.ok(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "tier2",
        "--key",
        "acme.pem",
        "--sign-here",
        "--hardware-id",
        "T2",
    ]);
    env.ok(&["supplier", "publish", "acme"]);
    for (role, key) in [
        ("root", "root2.pem"),
        ("targets", "targets2.pem"),
        ("timestamp", "ts2.pem"),
        ("snapshot", "snap2.pem"),
        ("tier2", "t2b.pem"),
    ] {
        env.key(key);
        env.ok(&[
            "supplier",
            "rotate-key",
            "acme",
            "--role",
            role,
            "--new-key",
            key,
        ]);
        let out = env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
        assert!(out.contains("1 image(s)"), "after rotating {role}: {out}");
    }
    assert!(env.path("acme/repository/5.root.json").exists());
    assert!(!env.path("acme/repository/6.root.json").exists());
    // The old targets key no longer signs anything new.
    let out = env.ok(&["verify", "acme"]);
    assert!(out.contains("root v5"), "{out}");
    env.write("fw2.bin", &[2u8; 100]);
    env.ok(&add("fw2.bin", "brake-fw", "1.1.0", "6", "BRAKE-A"));
    env.ok(&["supplier", "publish", "acme"]);
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
    // Without --new-key a fresh key is generated in DIR/keys and used.
    let out = env.ok(&["supplier", "rotate-key", "acme", "--role", "timestamp"]);
    assert!(out.contains("acme/keys/timestamp-"), "{out}");
    env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
    assert!(env.path("acme/repository/6.root.json").exists());
    // Rotating to a threshold the keys cannot meet is refused and changes nothing.
    let before = env.state("acme");
    let err = env.fail(&[
        "supplier",
        "rotate-key",
        "acme",
        "--role",
        "root",
        "--new-key",
        "root2.pem",
        "--threshold",
        "2",
    ]);
    assert!(err.contains("threshold 2"), "{err}");
    assert_eq!(before, env.state("acme"));
}

#[test]
fn expired_tree_fails_and_publish_renews_it() {
    let env = env_new();
    env.supplier();
    // A century on, whatever today's date: past every expiry.
    let later = ota_metadata::DateTime::now()
        .plus_seconds(100 * 365 * 86_400)
        .to_string();
    let err = env.fail(&["--now", &later, "verify", "acme"]);
    assert!(err.contains("expired"), "{err}");
    // Root expired too (365 days by default): only a root rotation would renew it, so renew
    // just the short-lived roles a week ahead instead.
    let week = ota_metadata::DateTime::now()
        .plus_seconds(8 * 86_400)
        .to_string();
    assert!(env
        .fail(&["--now", &week, "verify", "acme"])
        .contains("expired"));
    let out = env.ok(&["--now", &week, "supplier", "publish", "acme"]);
    assert!(
        out.contains("signed snapshot") && out.contains("signed timestamp"),
        "{out}"
    );
    env.ok(&["--now", &week, "verify", "acme"]);
}

#[test]
fn commands_on_a_non_repository_explain_what_to_do() {
    let env = env_new();
    std::fs::create_dir(env.path("empty")).unwrap();
    let err = env.fail(&["supplier", "publish", "empty"]);
    assert!(err.contains("supplier init"), "{err}");
    let err = env.fail(&["verify", "empty"]);
    assert!(err.contains("1.root.json"), "{err}");
}

#[test]
fn removing_a_tier2_delegation_keeps_clients_working() {
    let env = env_new();
    env.supplier();
    let t2 = env.key("tier2.pem");
    env.ok(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "bosch",
        "--key",
        &t2,
        "--sign-here",
        "--hardware-id",
        "ABS-1",
    ]);
    env.write("abs.bin", &[7u8; 300]);
    let mut args = add("abs.bin", "abs-fw", "2.0", "1", "ABS-1");
    args.extend(["--role", "bosch"]);
    env.ok(&args);
    env.ok(&["supplier", "publish", "acme"]);
    let before = env.state("acme");
    let err = env.fail(&["supplier", "undelegate", "acme", "--name", "bosch"]);
    assert!(err.contains("--drop-images"), "{err}");
    assert_eq!(before, env.state("acme"));
    let out = env.ok(&[
        "supplier",
        "undelegate",
        "acme",
        "--name",
        "bosch",
        "--drop-images",
    ]);
    assert!(out.contains("1 image(s) withdrawn"), "{out}");
    env.ok(&["supplier", "publish", "acme"]);
    // The snapshot still lists bosch.json (clients refuse a snapshot that drops a file), the
    // targets role no longer delegates to it, and the tree verifies from its first root.
    let snap = std::fs::read_dir(env.path("acme/repository"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".snapshot.json"))
        .max_by_key(|n| n.split('.').next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path(&format!("acme/repository/{snap}"))).unwrap(),
    )
    .unwrap();
    assert!(s["signed"]["meta"].get("bosch.json").is_some());
    let out = env.ok(&["verify", "acme", "--root", "acme/repository/1.root.json"]);
    assert!(
        out.contains("1 targets role(s)") && out.contains("1 image(s)"),
        "{out}"
    );
    // The name cannot be delegated again (its file is retired).
    let err = env.fail(&[
        "supplier",
        "delegate",
        "acme",
        "--name",
        "bosch",
        "--key",
        &t2,
        "--sign-here",
        "--hardware-id",
        "ABS-1",
    ]);
    assert!(
        err.contains("\"bosch\" was removed and its name is retired"),
        "{err}"
    );
}
