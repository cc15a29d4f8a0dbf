//! The confidentiality commands (issue 11) as a user meets them: the real `ota-repo` binary on
//! real files. Keys are private files that are never overwritten; a vehicle that holds keys
//! gets them again only when told whether its gateway is the same unit (--again) or a new one
//! (--replace: fresh keys), and a revoked one only fresh keys; an encrypted image is not
//! submitted without its
//! content key, nor with another image's; and an assignment the fleet cannot decrypt is
//! refused before anything is written.

use std::os::unix::fs::PermissionsExt;

type Env = ota_testkit::cli::CliEnv;

const BIN: &str = env!("CARGO_BIN_EXE_ota-repo");
const MARKER: &[u8] = b"TOP-SECRET-CALIBRATION";

fn mode(env: &Env, p: &str) -> u32 {
    std::fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o777
}

/// acme with brake-fw 1.0 (encrypted) and 0.9 (plain), published; an OEM pinning acme, with
/// VIN1 (issued keys) and VIN2 (none), both with a BRAKE-A ECU.
fn world() -> Env {
    let env = Env::new(BIN);
    env.ok(&["key", "generate", "--bits", "2048", "--out", "k.pem"]);
    env.ok(&["key", "generate", "--bits", "2048", "--out", "offline.pem"]);
    env.ok(&[
        "supplier", "init", "acme", "--name", "acme", "--key", "k.pem",
    ]);
    env.write("fw.bin", &MARKER.repeat(500));
    let add = |v: &str, extra: &[&str]| {
        let mut args = vec![
            "supplier",
            "add-image",
            "acme",
            "--file",
            "fw.bin",
            "--uid",
            "brake-fw",
            "--version",
            v,
            "--release-counter",
            "1",
            "--hardware-id",
            "BRAKE-A",
        ];
        args.extend_from_slice(extra);
        env.ok(&args)
    };
    let out = add("1.0", &["--encrypt", "--chunk-size", "4K"]);
    assert!(out.contains("content-keys/brake-fw-1.0.json"), "{out}");
    add("0.9", &[]);
    env.ok(&["supplier", "publish", "acme"]);
    env.ok(&[
        "oem",
        "init",
        "oem",
        "--root-key",
        "offline.pem",
        "--targets-key",
        "offline.pem",
        "--key",
        "k.pem",
    ]);
    env.ok(&[
        "oem",
        "supplier",
        "add",
        "oem",
        "--name",
        "acme",
        "--root",
        "acme/repository/1.root.json",
        "--url",
        &env.s("acme/repository"),
        "--hardware-id",
        "BRAKE-*",
    ]);
    env.ok(&[
        "oem",
        "vehicle",
        "add",
        "oem",
        "--vin",
        "VIN1",
        "--ecu",
        "S1:BRAKE-A",
        "--decryption-keys",
        "vin1.keys",
    ]);
    env.ok(&[
        "oem",
        "vehicle",
        "add",
        "oem",
        "--vin",
        "VIN2",
        "--ecu",
        "S2:BRAKE-A",
    ]);
    env
}

/// `oem vehicle decryption-keys` for `vin` into `out`.
fn issue<'a>(vin: &'a str, out: &'a str) -> [&'a str; 8] {
    [
        "oem",
        "vehicle",
        "decryption-keys",
        "oem",
        "--vin",
        vin,
        "--out",
        out,
    ]
}

/// brake-fw 1.0 assigned to every BRAKE-A ECU of the fleet (ahead of any regulator's
/// approval: these tests are about decryption keys).
const ASSIGN_FLEET: [&str; 12] = [
    "oem",
    "assign",
    "oem",
    "--hardware-id",
    "BRAKE-A",
    "--supplier",
    "acme",
    "--uid",
    "brake-fw",
    "--version",
    "1.0",
    "--force",
];

fn submit<'a>(version: &'a str, key: Option<&'a str>) -> Vec<&'a str> {
    let mut v = vec![
        "oem",
        "review",
        "submit",
        "oem",
        "--supplier",
        "acme",
        "--uid",
        "brake-fw",
        "--version",
        version,
    ];
    if let Some(k) = key {
        v.extend_from_slice(&["--content-key", k]);
    }
    v
}

/// The receiver leaves a key file holds, by group.
fn leaves(env: &Env, p: &str) -> Vec<(String, u64)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path(p)).unwrap()).unwrap();
    v["groups"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(g, k)| (g.clone(), k["leaf"].as_u64().unwrap()))
        .collect()
}

#[test]
fn keys_are_private_reissued_only_as_told_and_never_after_revocation() {
    let env = world();
    // The supplier's content key and the vehicle's keys are private files, in private
    // directories.
    assert_eq!(mode(&env, "acme/content-keys/brake-fw-1.0.json"), 0o600);
    assert_eq!(mode(&env, "acme/content-keys"), 0o700);
    assert_eq!(mode(&env, "vin1.keys"), 0o600);
    // The published tree holds the ciphertext only.
    let leaked = env
        .state("acme/repository")
        .keys()
        .filter(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(MARKER.len())
                .any(|w| w == MARKER)
        })
        .count();
    assert_eq!(leaked, 1, "exactly the plain image 0.9 carries the marker");
    // One group: the hardware id of its one ECU.
    assert_eq!(leaves(&env, "vin1.keys"), [("hw:BRAKE-A".to_string(), 0)]);

    // Keys issued before: the command asks which case this is, and writes nothing.
    let err = env.fail(&issue("VIN1", "again.keys"));
    assert!(
        err.contains("--replace") && err.contains("--again"),
        "{err}"
    );
    assert!(!env.path("again.keys").exists());
    // The same unit: the same keys; an existing file is not replaced.
    let mut again = issue("VIN1", "again.keys").to_vec();
    again.push("--again");
    env.ok(&again);
    assert_eq!(
        std::fs::read(env.path("vin1.keys")).unwrap(),
        std::fs::read(env.path("again.keys")).unwrap()
    );
    let err = env.fail(&again);
    assert!(err.contains("already exists"), "{err}");
    // A replaced gateway: fresh keys (another leaf), the old unit's excluded.
    let mut replace = issue("VIN1", "new-unit.keys").to_vec();
    replace.push("--replace");
    let out = env.ok(&replace);
    assert!(out.contains("old unit"), "{out}");
    assert_eq!(
        leaves(&env, "new-unit.keys"),
        [("hw:BRAKE-A".to_string(), 1)]
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("oem/broadcast.json")).unwrap()).unwrap();
    assert_eq!(
        state["groups"]["hw:BRAKE-A"]["excluded"],
        serde_json::json!([0])
    );
    // Another vehicle, other keys.
    env.ok(&issue("VIN2", "vin2.keys"));
    assert_ne!(
        std::fs::read(env.path("vin1.keys")).unwrap(),
        std::fs::read(env.path("vin2.keys")).unwrap()
    );
    // Revoked: never issued again; a new gateway gets fresh keys only.
    env.ok(&["oem", "vehicle", "revoke-keys", "oem", "--vin", "VIN2"]);
    let mut again2 = issue("VIN2", "x.keys").to_vec();
    again2.push("--again");
    let err = env.fail(&again2);
    assert!(err.contains("revoked"), "{err}");
    assert!(!env.path("x.keys").exists());
    let err = env.fail(&["oem", "vehicle", "revoke-keys", "oem", "--vin", "NOPE"]);
    assert!(err.contains("NOPE"), "{err}");
    // The OEM's secret is private too, in a private directory.
    assert_eq!(mode(&env, "oem/keys/broadcast.secret"), 0o600);
    assert_eq!(mode(&env, "oem/keys"), 0o700);
}

#[test]
fn an_encrypted_image_needs_its_own_content_key() {
    let env = world();
    let before = env.fingerprint("oem", &["cache"]);
    let err = env.fail(&submit("1.0", None));
    assert!(err.contains("--content-key"), "{err}");
    // A key file for another image (same key, another version named) is refused.
    let text = std::fs::read_to_string(env.path("acme/content-keys/brake-fw-1.0.json")).unwrap();
    env.write("other.json", text.replace("\"1.0\"", "\"1.1\"").as_bytes());
    let err = env.fail(&submit("1.0", Some("other.json")));
    assert!(err.contains("not of brake-fw 1.0"), "{err}");
    // A plain image with a content key is a mistake too.
    let err = env.fail(&submit("0.9", Some("acme/content-keys/brake-fw-1.0.json")));
    assert!(err.contains("not encrypted"), "{err}");
    assert_eq!(
        env.fingerprint("oem", &["cache"]),
        before,
        "a refused submit changed the OEM's directory"
    );
    let out = env.ok(&submit("1.0", Some("acme/content-keys/brake-fw-1.0.json")));
    assert!(out.contains("wraps it"), "{out}");
    // The OEM keeps the content key (to wrap it again at every publish), privately.
    let kept: Vec<_> = std::fs::read_dir(env.path("oem/keys/content"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(mode(&env, "oem/keys/content"), 0o700);
    assert_eq!(
        std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Scenario: Confidentiality | the OEM submits an encrypted image for review before any vehicle holds decryption keys | publishing, a second submit and issuing keys afterwards all work (the first secret comes with its state; a secret alone would read as a lost state and stop every publish)
#[test]
fn a_content_key_wrapped_before_any_keys_were_issued_does_not_stop_publishing() {
    let env = world();
    env.ok(&[
        "oem",
        "init",
        "oem2",
        "--root-key",
        "offline.pem",
        "--targets-key",
        "offline.pem",
        "--key",
        "k.pem",
    ]);
    env.ok(&[
        "oem",
        "supplier",
        "add",
        "oem2",
        "--name",
        "acme",
        "--root",
        "acme/repository/1.root.json",
        "--url",
        &env.s("acme/repository"),
        "--hardware-id",
        "BRAKE-*",
    ]);
    let submit2 = |version: &str, key: Option<&str>| {
        let mut args = submit(version, key);
        args[3] = "oem2";
        env.ok(&args);
    };
    submit2("1.0", Some("acme/content-keys/brake-fw-1.0.json"));
    assert!(env.path("oem2/keys/broadcast.secret").exists());
    env.ok(&["oem", "publish", "oem2"]);
    submit2("0.9", None);
    env.ok(&[
        "oem",
        "vehicle",
        "add",
        "oem2",
        "--vin",
        "VIN9",
        "--ecu",
        "S9:BRAKE-A",
        "--decryption-keys",
        "vin9.keys",
    ]);
    env.ok(&["oem", "publish", "oem2"]);
}

#[test]
fn an_assignment_a_vehicle_cannot_decrypt_is_refused_whole() {
    let env = world();
    env.ok(&submit("1.0", Some("acme/content-keys/brake-fw-1.0.json")));
    let before = env.fingerprint("oem", &["cache"]);
    // VIN2 holds no keys: the fleet-wide assignment is refused, nothing written for VIN1.
    let err = env.fail(&ASSIGN_FLEET);
    assert!(
        err.contains("VIN2") && err.contains("decryption-keys"),
        "{err}"
    );
    assert_eq!(env.fingerprint("oem", &["cache"]), before);
    // With keys issued, it goes through.
    env.ok(&issue("VIN2", "vin2.keys"));
    env.ok(&ASSIGN_FLEET);
}

#[test]
fn chunk_sizes_out_of_range_are_refused_before_anything_is_stored() {
    let env = world();
    let before = env.state("acme");
    let err = env.fail(&[
        "supplier",
        "add-image",
        "acme",
        "--file",
        "fw.bin",
        "--uid",
        "brake-fw",
        "--version",
        "2.0",
        "--release-counter",
        "2",
        "--hardware-id",
        "BRAKE-A",
        "--encrypt",
        "--chunk-size",
        "100",
    ]);
    assert!(err.contains("--chunk-size"), "{err}");
    // --chunk-size without --encrypt is a usage error.
    let err = env.fail(&[
        "supplier",
        "add-image",
        "acme",
        "--file",
        "fw.bin",
        "--uid",
        "brake-fw",
        "--version",
        "2.0",
        "--release-counter",
        "2",
        "--hardware-id",
        "BRAKE-A",
        "--chunk-size",
        "4K",
    ]);
    assert!(
        err.contains("required arguments were not provided") && err.contains("--encrypt"),
        "{err}"
    );
    assert_eq!(env.state("acme"), before);
}

/// Scenario: Confidentiality | the OEM's broadcast state or its secret is lost (deleted, or a partial restore) after keys were issued | refused by name, never started afresh: a new state would hand out leaves vehicles already hold and forget every revocation, a new secret would silently re-key the fleet
#[test]
fn a_lost_broadcast_state_or_secret_is_refused_not_started_afresh() {
    let env = world();
    std::fs::rename(
        env.path("oem/broadcast.json"),
        env.path("broadcast.json.bak"),
    )
    .unwrap();
    let err = env.fail(&issue("VIN2", "vin2.keys"));
    assert!(
        err.contains("broadcast.json") && err.contains("restore"),
        "{err}"
    );
    let err = env.fail(&["oem", "publish", "oem"]);
    assert!(err.contains("broadcast.json"), "{err}");
    assert!(!env.path("oem/broadcast.json").exists());
    std::fs::rename(
        env.path("broadcast.json.bak"),
        env.path("oem/broadcast.json"),
    )
    .unwrap();

    std::fs::rename(
        env.path("oem/keys/broadcast.secret"),
        env.path("secret.bak"),
    )
    .unwrap();
    let err = env.fail(&issue("VIN2", "vin2.keys"));
    assert!(
        err.contains("broadcast.secret") && err.contains("restore"),
        "{err}"
    );
    assert!(
        !env.path("oem/keys/broadcast.secret").exists(),
        "a new secret was made"
    );
    assert!(!env.path("vin2.keys").exists());
    std::fs::rename(
        env.path("secret.bak"),
        env.path("oem/keys/broadcast.secret"),
    )
    .unwrap();
    env.ok(&issue("VIN2", "vin2.keys"));
}

/// Scenario: Confidentiality | someone loosens the OEM's broadcast secret to 0644 | the next command that reads it narrows it back to 0600 and warns that it may have leaked
#[test]
fn a_loosened_broadcast_secret_is_narrowed_with_a_warning() {
    let env = world();
    let secret = env.path("oem/keys/broadcast.secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.run(&issue("VIN2", "vin2.keys"));
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("readable by others") && err.contains("narrowed"),
        "{err}"
    );
    assert_eq!(mode(&env, "oem/keys/broadcast.secret"), 0o600);
}
