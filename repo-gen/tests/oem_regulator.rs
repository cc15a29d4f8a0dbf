//! The OEM and regulator publishers through the CLI, on local directories (the nginx run is in
//! three_parties.rs): inventory, assignments, per-vehicle publishing, review, revocation, key
//! rotation of every role, and bad input.

use sha2::{Digest, Sha256};

/// The `ota-repo` binary in a temporary working directory.
type Env = ota_testkit::cli::CliEnv;

fn env_new() -> Env {
    Env::new(env!("CARGO_BIN_EXE_ota-repo"))
}

/// This file's steps over the shared environment.
trait Steps {
    fn world(&self);
    fn review(&self) -> String;
    fn verify(&self, dir: &str) -> String;
    fn assignments(&self, vin: &str) -> serde_json::Value;
}

impl Steps for Env {
    /// Supplier `acme` (two images), OEM pinning it, regulator `tuv`, both images reviewed and
    /// approved, two vehicles in the inventory.
    fn world(&self) {
        self.ok(&["key", "generate", "--bits", "2048", "--out", "k.pem"]);
        self.ok(&["key", "generate", "--bits", "2048", "--out", "offline.pem"]);
        // The regulator holds keys of its own (the OEM refuses one sharing a supplier's:
        // client/tests/trust_joints.rs `a_regulator_holding_a_suppliers_key_is_refused`).
        self.ok(&["key", "generate", "--bits", "2048", "--out", "tuv.pem"]);
        self.ok(&[
            "supplier", "init", "acme", "--name", "acme", "--key", "k.pem",
        ]);
        std::fs::write(self.path("a.bin"), vec![1u8; 3000]).unwrap();
        std::fs::write(self.path("b.bin"), vec![2u8; 4000]).unwrap();
        std::fs::write(self.path("r.bin"), vec![3u8; 100]).unwrap();
        for (f, uid, v, c, hw) in [
            ("a.bin", "brake-fw", "1.0", "1", "BRAKE-A"),
            ("b.bin", "brake-fw", "2.0", "2", "BRAKE-A"),
            ("r.bin", "radio", "1", "1", "RADIO"),
        ] {
            self.ok(&[
                "supplier",
                "add-image",
                "acme",
                "--file",
                f,
                "--uid",
                uid,
                "--version",
                v,
                "--release-counter",
                c,
                "--hardware-id",
                hw,
            ]);
        }
        self.ok(&["supplier", "publish", "acme"]);
        self.ok(&[
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
        self.ok(&[
            "oem",
            "supplier",
            "add",
            "oem",
            "--name",
            "acme",
            "--root",
            "acme/repository/1.root.json",
            "--url",
            &self.s("acme/repository"),
            "--hardware-id",
            "BRAKE-*",
        ]);
        self.ok(&[
            "regulator",
            "init",
            "reg",
            "--name",
            "tuv",
            "--key",
            "tuv.pem",
        ]);
        self.ok(&[
            "oem",
            "regulator",
            "add",
            "oem",
            "--name",
            "tuv",
            "--root",
            "reg/repository/1.root.json",
            "--url",
            &self.s("reg/repository"),
        ]);
        for v in ["1.0", "2.0"] {
            self.ok(&[
                "oem",
                "review",
                "submit",
                "oem",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                v,
            ]);
        }
        self.ok(&["oem", "publish", "oem"]);
        self.review();
        self.ok(&[
            "oem",
            "vehicle",
            "add",
            "oem",
            "--vin",
            "VIN1",
            "--ecu",
            "S1:BRAKE-A",
            "--ecu",
            "S2:BRAKE-A",
            "--aftermarket",
            "X9:BRAKE-A",
        ]);
        self.ok(&[
            "oem",
            "vehicle",
            "add",
            "oem",
            "--vin",
            "VIN2",
            "--ecu",
            "T1:BRAKE-A",
            "--ecu",
            "T2:RADIO",
        ]);
    }

    fn review(&self) -> String {
        let out = self.ok(&[
            "regulator",
            "review",
            "reg",
            "--master",
            "oem/repository",
            "--master-root",
            "oem/repository/1.root.json",
        ]);
        self.ok(&["regulator", "publish", "reg"]);
        out
    }

    fn verify(&self, dir: &str) -> String {
        self.ok(&[
            "verify",
            dir,
            "--root",
            &format!("{dir}/repository/1.root.json"),
        ])
    }

    fn assignments(&self, vin: &str) -> serde_json::Value {
        let (_, doc) = ota_repo::oem::fleet::published_assignments(&self.path("oem"), vin)
            .unwrap()
            .unwrap_or_else(|| panic!("no assignments of {vin} published"));
        serde_json::to_value(doc).unwrap()
    }
}

#[test]
fn review_assign_and_publish_per_vehicle() {
    let env = env_new();
    env.world();
    let reg = env.verify("reg");
    assert!(reg.contains("2 attestation(s)"), "{reg}");

    // One ECU, then every fitting ECU of a vehicle, then the whole fleet by hardware id.
    env.ok(&[
        "oem",
        "assign",
        "oem",
        "--vin",
        "VIN1",
        "--ecu",
        "S1",
        "--supplier",
        "acme",
        "--uid",
        "brake-fw",
        "--version",
        "1.0",
    ]);
    // VIN1's assignment, and VIN2's entry with none (every vehicle has an entry).
    let out = env.ok(&["oem", "publish", "oem"]);
    assert!(out.contains("wrote assignments of 2 vehicle(s)"), "{out}");
    let out = env.ok(&[
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
        "2.0",
    ]);
    assert!(
        out.contains("3 ECU(s)"),
        "aftermarket X9 must be skipped: {out}"
    );
    let out = env.ok(&["oem", "publish", "oem"]);
    assert!(out.contains("wrote assignments of 2 vehicle(s)"), "{out}");
    let a = env.assignments("VIN1");
    assert_eq!(a["ecus"]["S1"]["version"], "2.0");
    assert_eq!(a["ecus"]["S2"]["release_counter"], 2);
    assert!(a["ecus"].get("X9").is_none());
    let v = env.verify("oem");
    assert!(v.contains("2 vehicle(s)"), "{v}");

    // Nothing changed: no vehicle's file and no node is written.
    let out = env.ok(&["oem", "publish", "oem"]);
    assert!(
        out.contains("wrote assignments of 0 vehicle(s), 0 tree node(s)")
            && out.contains("kept   vehicles"),
        "{out}"
    );
    // A change to one vehicle writes that vehicle's file only (and its path, and the index).
    env.ok(&[
        "oem",
        "assign",
        "oem",
        "--vin",
        "VIN2",
        "--ecu",
        "T1",
        "--supplier",
        "acme",
        "--uid",
        "brake-fw",
        "--version",
        "1.0",
    ]);
    let out = env.ok(&["oem", "publish", "oem"]);
    assert!(
        out.contains("wrote assignments of 1 vehicle(s)") && out.contains("signed vehicles"),
        "{out}"
    );
    env.verify("oem");
}

#[test]
fn assignment_refusals_leave_everything_as_it_was() {
    let env = env_new();
    env.world();
    let before = env.state("oem");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--vin",
                "NOPE",
                "--ecu",
                "S1",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                "1.0",
            ],
            "unknown VIN",
        ),
        (
            &[
                "--vin",
                "VIN1",
                "--ecu",
                "S7",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                "1.0",
            ],
            "no ECU with serial",
        ),
        (
            &[
                "--vin",
                "VIN1",
                "--ecu",
                "X9",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                "1.0",
            ],
            "aftermarket",
        ),
        (
            &[
                "--vin",
                "VIN1",
                "--ecu",
                "S1",
                "--supplier",
                "nobody",
                "--uid",
                "brake-fw",
                "--version",
                "1.0",
            ],
            "unknown supplier",
        ),
        (
            &[
                "--vin",
                "VIN1",
                "--ecu",
                "S1",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                "9.9",
            ],
            "not been submitted",
        ),
        (
            &[
                "--vin",
                "VIN2",
                "--ecu",
                "T2",
                "--supplier",
                "acme",
                "--uid",
                "brake-fw",
                "--version",
                "1.0",
            ],
            "built for",
        ),
    ];
    for (args, says) in cases {
        let mut a = vec!["oem", "assign", "oem"];
        a.extend_from_slice(args);
        let err = env.fail(&a);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The radio image exists at the supplier, but acme is only delegated BRAKE-*.
    let err = env.fail(&[
        "oem",
        "review",
        "submit",
        "oem",
        "--supplier",
        "acme",
        "--uid",
        "radio",
        "--version",
        "1",
    ]);
    assert!(
        err.contains("RADIO") && err.contains("not delegated"),
        "{err}"
    );
    let err = env.fail(&[
        "oem",
        "review",
        "submit",
        "oem",
        "--supplier",
        "nobody",
        "--uid",
        "radio",
        "--version",
        "1",
    ]);
    assert!(err.contains("unknown supplier"), "{err}");
    let err = env.fail(&[
        "oem",
        "review",
        "submit",
        "oem",
        "--supplier",
        "acme",
        "--uid",
        "ghost",
        "--version",
        "1",
    ]);
    assert!(err.contains("ghost-1.bin"), "{err}");
    let err = env.fail(&[
        "oem", "ecu", "remove", "oem", "--vin", "VIN1", "--ecu", "S7",
    ]);
    assert!(err.contains("S7"), "{err}");
    let err = env.fail(&["oem", "regulator", "threshold", "oem", "--threshold", "2"]);
    assert!(err.contains("only 1 regulator"), "{err}");
    // A supplier root that does not verify.
    let root = std::fs::read_to_string(env.path("acme/repository/1.root.json")).unwrap();
    std::fs::write(
        env.path("bad-root.json"),
        root.replacen("\"version\": 1", "\"version\": 7", 1),
    )
    .unwrap();
    let err = env.fail(&[
        "oem",
        "supplier",
        "add",
        "oem",
        "--name",
        "evil",
        "--root",
        "bad-root.json",
        "--url",
        "http://x",
        "--hardware-id",
        "X",
    ]);
    assert!(
        err.contains("bad-root.json") && err.contains("threshold"),
        "{err}"
    );
    assert_eq!(before, env.state("oem"));
}

#[test]
fn exceptional_operations_on_ecus_and_suppliers() {
    let env = env_new();
    env.world();
    env.ok(&[
        "oem",
        "assign",
        "oem",
        "--vin",
        "VIN1",
        "--supplier",
        "acme",
        "--uid",
        "brake-fw",
        "--version",
        "2.0",
    ]);
    env.ok(&["oem", "publish", "oem"]);
    // Replacing an ECU with one of the same hardware id carries its assignment over.
    let out = env.ok(&[
        "oem",
        "ecu",
        "replace",
        "oem",
        "--vin",
        "VIN1",
        "--ecu",
        "S1",
        "--with",
        "S1B:BRAKE-A",
    ]);
    assert!(out.contains("carries over"), "{out}");
    // Removing an ECU withdraws its assignment.
    let out = env.ok(&[
        "oem", "ecu", "remove", "oem", "--vin", "VIN1", "--ecu", "S2",
    ]);
    assert!(out.contains("withdrew"), "{out}");
    env.ok(&[
        "oem",
        "ecu",
        "add",
        "oem",
        "--vin",
        "VIN1",
        "--ecu",
        "N1:BRAKE-A",
        "--aftermarket",
    ]);
    env.ok(&["oem", "publish", "oem"]);
    let a = env.assignments("VIN1");
    let ecus: Vec<&String> = a["ecus"].as_object().unwrap().keys().collect();
    assert_eq!(ecus, ["S1B"]);
    // Removing the supplier withdraws every assignment of its images.
    let out = env.ok(&["oem", "supplier", "remove", "oem", "--name", "acme"]);
    assert!(out.contains("withdrew 1 assignment"), "{out}");
    env.ok(&["oem", "publish", "oem"]);
    assert!(env.assignments("VIN1")["ecus"]
        .as_object()
        .unwrap()
        .is_empty());
    env.verify("oem");
}

#[test]
fn revocation_outranks_approval_and_sticks() {
    let env = env_new();
    env.world();
    let sha = hex::encode(Sha256::digest(vec![1u8; 3000]));
    let out = env.ok(&[
        "regulator",
        "revoke",
        "reg",
        "--image",
        &sha,
        "--reason",
        "CVE-2026-0001 in the CAN stack",
    ]);
    assert!(out.contains("revoked brake-fw 1.0"), "{out}");
    env.ok(&["regulator", "publish", "reg"]);
    // Attestations are per release (named by the manifest hash); the revocation is the one
    // about these bytes.
    let a: serde_json::Value = std::fs::read_dir(env.path("reg/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".attestation.json"))
        .map(|p| serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap())
        .find(|a| {
            a["signed"]["release"]["hashes"]["sha256"] == sha.as_str()
                && a["signed"]["verdict"] == "revoked"
        })
        .expect("a signed revocation of the image");
    assert_eq!(a["signed"]["release"]["uid"], "brake-fw");
    assert_eq!(a["signed"]["reason"], "CVE-2026-0001 in the CAN stack");
    // Reviewing again does not turn it back into an approval.
    env.review();
    let v = env.verify("reg");
    assert!(v.contains("2 attestation(s)"), "{v}");
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("reg/repository/timestamp.json")).unwrap())
            .unwrap();
    assert!(targets["signed"]["version"].as_u64().unwrap() >= 3);
    let err = env.fail(&[
        "regulator",
        "revoke",
        "reg",
        "--image",
        &sha,
        "--reason",
        "again",
    ]);
    assert!(err.contains("already revoked"), "{err}");
    let err = env.fail(&[
        "regulator",
        "revoke",
        "reg",
        "--image",
        &"ab".repeat(32),
        "--reason",
        "x",
    ]);
    assert!(err.contains("no attestation"), "{err}");
}

#[test]
fn every_role_of_oem_and_regulator_rotates() {
    let env = env_new();
    env.world();
    env.ok(&[
        "oem",
        "assign",
        "oem",
        "--vin",
        "VIN1",
        "--supplier",
        "acme",
        "--uid",
        "brake-fw",
        "--version",
        "2.0",
    ]);
    env.ok(&["oem", "publish", "oem"]);
    let tree_files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.path("oem/repository/vehicles/tree"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let tree_before = tree_files();
    assert!(!tree_before.is_empty());
    // The key ids the newest root names for `role` (top-level roles, or the online review
    // and vehicles roles in its `ota_roles`).
    let keyids = |tree: &str, role: &str| -> std::collections::BTreeSet<String> {
        let root: serde_json::Value = serde_json::from_slice(
            &std::fs::read(env.path(&format!("{tree}/repository/root.json"))).unwrap(),
        )
        .unwrap();
        let signed = &root["signed"];
        let r = if signed["roles"][role].is_object() {
            &signed["roles"][role]
        } else {
            &signed["ota_roles"][role]
        };
        r["keyids"]
            .as_array()
            .unwrap_or_else(|| panic!("{tree}: no role {role}"))
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    for role in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "review",
        "vehicles",
    ] {
        let old = keyids("oem", role);
        let out = env.ok(&["oem", "rotate-key", "oem", "--role", role]);
        assert!(
            out.contains(&format!("rotated the keys of {role}")),
            "{out}"
        );
        env.verify("oem");
        // The recovery: the old key is trusted no more for that role.
        let now = keyids("oem", role);
        assert!(now.is_disjoint(&old), "{role}: {old:?} still in {now:?}");
    }
    assert!(env.path("oem/repository/7.root.json").exists());
    // The vehicles key rotated: the index was re-signed (verified above from root v1); the
    // vehicle tree, which carries no signature, was not rewritten.
    assert_eq!(tree_files(), tree_before);
    for role in ["targets", "root", "timestamp"] {
        let old = keyids("reg", role);
        env.ok(&["regulator", "rotate-key", "reg", "--role", role]);
        assert!(env.verify("reg").contains("2 attestation(s)"));
        assert!(keyids("reg", role).is_disjoint(&old), "regulator {role}");
    }
    // The OEM's pin of the regulator still names root v1: a client walks the chain from it.
    env.ok(&[
        "regulator",
        "review",
        "reg",
        "--master",
        "oem/repository",
        "--master-root",
        "oem/repository/1.root.json",
    ]);
}
