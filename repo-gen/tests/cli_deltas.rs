//! `supplier add-image --delta-from` (issue 26), as a supplier meets it: the real binary on
//! real files. A delta is published as a target of its own that the signed image manifest
//! lists (base release and its hash, length, hashes); it rebuilds the image exactly; what
//! cannot be a delta is refused before anything is stored.

use ota_ecu::delta::{make, Encoding};
use ota_testkit::images::point_release_pair;
use sha2::{Digest, Sha256};

type Env = ota_testkit::cli::CliEnv;

const BIN: &str = env!("CARGO_BIN_EXE_ota-repo");

fn add<'a>(file: &'a str, version: &'a str, counter: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "supplier",
        "add-image",
        "acme",
        "--file",
        file,
        "--uid",
        "brake-fw",
        "--version",
        version,
        "--release-counter",
        counter,
        "--hardware-id",
        "BRAKE-A",
    ];
    v.extend_from_slice(more);
    v
}

fn supplier() -> Env {
    let env = Env::new(BIN);
    env.ok(&["key", "generate", "--bits", "2048", "--out", "acme.pem"]);
    env.ok(&[
        "supplier", "init", "acme", "--name", "acme", "--key", "acme.pem",
    ]);
    env
}

/// The one file in the published targets directory whose name ends with `suffix`.
fn published(env: &Env, suffix: &str) -> Vec<u8> {
    let dir = env.path("acme/repository/targets");
    let found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(found.len(), 1, "{suffix} in {}", dir.display());
    std::fs::read(found[0].path()).unwrap()
}

/// The newest `N.targets.json` of acme's published tree.
fn latest_targets(env: &Env) -> String {
    let dir = env.path("acme/repository");
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u64 = name.strip_suffix(".targets.json")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max()
        .expect("a published targets role");
    std::fs::read_to_string(newest.1).unwrap()
}

/// Scenario: Deltas | the supplier publishes a delta from an earlier release | a signed target the manifest lists, rebuilding the image exactly
#[test]
fn a_delta_is_published_listed_in_the_signed_manifest_and_rebuilds_the_image() {
    let env = supplier();
    let (v10, v11) = point_release_pair(40_000, 0);
    env.write("fw-1.0.bin", &v10);
    env.write("fw-1.1.bin", &v11);
    env.ok(&add("fw-1.0.bin", "1.0", "1", &[]));
    let out = env.ok(&add("fw-1.1.bin", "1.1", "2", &["--delta-from", "1.0"]));
    assert!(out.contains("delta from 1.0: "), "{out}");
    env.ok(&["supplier", "publish", "acme"]);

    let delta = published(&env, ".brake-fw-1.1.from-1.0.delta");
    assert!(delta.len() * 10 < v11.len(), "{} bytes", delta.len());
    let rebuilt = make::apply(Encoding::Delta, &v10, &delta, v11.len() as u64, 4092).unwrap();
    assert!(rebuilt == v11, "the published delta rebuilds 1.1");

    // The signed manifest lists it: its base's hash, and the delta's length and hash.
    let manifest: serde_json::Value =
        serde_json::from_slice(&published(&env, ".brake-fw-1.1.image.json")).unwrap();
    let d = &manifest["signed"]["deltas"][0];
    assert_eq!(d["from_version"], "1.0");
    assert_eq!(d["from_sha256"], hex::encode(Sha256::digest(&v10)));
    assert_eq!(d["target"], "brake-fw-1.1.from-1.0.delta");
    assert_eq!(d["length"], delta.len());
    assert_eq!(d["hashes"]["sha256"], hex::encode(Sha256::digest(&delta)));
    // ... and the targets role lists the delta with those very length and hash.
    let targets: serde_json::Value = serde_json::from_str(&latest_targets(&env)).unwrap();
    let t = &targets["signed"]["targets"]["brake-fw-1.1.from-1.0.delta"];
    assert_eq!(t["length"], delta.len());
    assert_eq!(t["custom"]["kind"], "delta");
    // The manifest's image is still the whole image.
    assert_eq!(manifest["signed"]["length"], v11.len());
}

#[test]
fn deltas_that_cannot_be_are_refused_before_anything_is_stored() {
    let env = supplier();
    let (v10, v11) = point_release_pair(20_000, 0);
    env.write("fw-1.0.bin", &v10);
    env.write("fw-1.1.bin", &v11);
    env.ok(&add("fw-1.0.bin", "1.0", "1", &[]));
    env.ok(&["supplier", "publish", "acme"]);
    let before = env.fingerprint("acme", &["acme/.lock"]);
    let refused = |args: Vec<&str>, says: &str| {
        let err = env.fail(&args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(
            env.fingerprint("acme", &["acme/.lock"]),
            before,
            "{args:?} changed files"
        );
    };
    refused(
        add("fw-1.1.bin", "1.1", "2", &["--delta-from", "0.5"]),
        "--delta-from 0.5: no release 0.5 of brake-fw",
    );
    refused(
        add(
            "fw-1.1.bin",
            "1.1",
            "2",
            &["--delta-from", "1.0", "--delta-from", "1.0"],
        ),
        "--delta-from 1.0: given twice",
    );
    refused(
        add("fw-1.1.bin", "1.1", "2", &["--delta-from", "1.1"]),
        "--delta-from 1.1",
    );
    refused(
        add(
            "fw-1.1.bin",
            "1.1",
            "2",
            &["--delta-from", "1.0", "--encrypt"],
        ),
        "cannot be used with",
    );
    // A delta from an encrypted release would carry its plaintext.
    env.write("fw-2.0.bin", &v11);
    env.ok(&add("fw-2.0.bin", "2.0", "3", &["--encrypt"]));
    env.write("fw-2.1.bin", &v10);
    let err = env.fail(&add("fw-2.1.bin", "2.1", "4", &["--delta-from", "2.0"]));
    assert!(
        err.contains("--delta-from 2.0: that release is encrypted"),
        "{err}"
    );
}

#[test]
fn a_delta_no_smaller_than_the_image_is_not_published() {
    let env = supplier();
    // Unrelated pseudo-random images: the delta carries every byte.
    let noise = |seed: u64| -> Vec<u8> {
        let mut x = seed;
        (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    env.write("a.bin", &noise(1));
    env.write("b.bin", &noise(2));
    env.ok(&add("a.bin", "1.0", "1", &[]));
    let o = env.run(&add("b.bin", "1.1", "2", &["--delta-from", "1.0"]));
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the delta from 1.0") && err.contains("not smaller than the image"),
        "{err}"
    );
    env.ok(&["supplier", "publish", "acme"]);
    let targets = latest_targets(&env);
    assert!(!targets.contains(".delta"), "{targets}");
}

/// Scenario: Deltas | a supplier signs a manifest listing a delta that rebuilds other bytes than the image (an encoder bug, or a stolen supplier key) | `supplier publish` (which verifies what it would publish, as `ota-repo verify` does) refuses, naming the delta, before any vehicle downloads it
#[test]
fn a_signed_delta_that_does_not_rebuild_its_image_is_never_published() {
    use ota_repo::supplier::{self, Settings};
    let env = supplier();
    let (v10, v11) = point_release_pair(20_000, 0);
    env.write("fw-1.0.bin", &v10);
    env.write("fw-1.1.bin", &v11);
    env.ok(&add("fw-1.0.bin", "1.0", "1", &[]));
    env.ok(&add("fw-1.1.bin", "1.1", "2", &["--delta-from", "1.0"]));
    env.ok(&["supplier", "publish", "acme"]);
    env.ok(&["verify", "acme"]);

    // The supplier's own tooling gone wrong: a delta (well formed, from the right base) to
    // other bytes, stored and signed into 1.1's manifest as if it were the right one.
    let dir = env.path("acme");
    let repo = dir.join("repository");
    let mut s = Settings::load(&dir).unwrap();
    let mut other = v11.clone();
    other[5] ^= 0xFF;
    let wrong = make::delta(&v10, &other);
    let file = supplier::store_target(&repo, "brake-fw-1.1.from-1.0.delta", &wrong).unwrap();
    let key =
        ota_metadata::SigningKey::from_pem(&std::fs::read_to_string(env.path("acme.pem")).unwrap())
            .unwrap();
    let r = s.images.iter_mut().find(|i| i.version == "1.1").unwrap();
    r.deltas[0].file = file;
    let m = supplier::manifest_of("acme", r).unwrap();
    let (manifest, compact) = supplier::write_manifests(&repo, &m, &[&key]).unwrap();
    r.manifest = manifest;
    r.compact = compact;
    s.save(&dir).unwrap();
    // `publish` verifies the tree it would publish, so it refuses, and the served tree stays.
    let err = env.fail(&["supplier", "publish", "acme"]);
    assert!(
        err.contains("the delta from 1.0: it rebuilds other bytes than the image"),
        "{err}"
    );
    env.ok(&["verify", "acme/repository"]);
}
