//! Fixtures for the CLI tests: running the real binary, RSA test keys, a supplier tree written
//! by `ota-repo`, a test repository writer ([`minirepo`]) and a logging HTTP server ([`http`]);
//! for the interop tests, the three kinds of trees ([`trees`]).

#![allow(dead_code)]

pub mod http;
pub mod minirepo;
pub mod trees;

use ota_metadata::documents::ImageTargets;
use ota_metadata::{DateTime, SigningKey};
use ota_repo::supplier;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_ota-tuf-conformance");

/// RSA-2048 test keys, generated once per test binary (on two threads: it is the slow part).
pub fn rsa_key(i: usize) -> SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let gen = |n: usize| -> Vec<SigningKey> {
            (0..n)
                .map(|_| SigningKey::generate(2048).expect("generate RSA key"))
                .collect()
        };
        let half = std::thread::spawn(move || gen(3));
        let mut v = gen(3);
        v.extend(half.join().expect("key thread"));
        v
    })[i]
        .clone()
}

/// Run the binary with `args` (optionally under `faketime -f OFFSET`).
pub fn run_with(faketime: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = match faketime {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args)
        .env_remove("FAKETIME")
        .env_remove("LD_PRELOAD");
    cmd.output().expect("run ota-tuf-conformance")
}

/// Run the binary and return its exit status (-1 for a signal), printing its output so a
/// failing test shows why.
pub fn run(args: &[&str]) -> i32 {
    status(run_with(None, args))
}

pub fn status(out: Output) -> i32 {
    eprintln!(
        "--- exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.code().unwrap_or(-1)
}

/// Whether `faketime` can be used. Missing: a notice and `false`, except under CI, where it
/// is a failure (.ci/run installs it).
pub fn faketime_available() -> bool {
    let found = Command::new("faketime")
        .args(["-f", "+0d", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "faketime is required under CI (apt-get install -y faketime)"
        );
        eprintln!("NOTICE: faketime is not installed; skipping the faketime test");
    }
    found
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Names of the files in `dir`, sorted (empty if it does not exist).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Deterministic content for an image.
pub fn image_bytes(uid: &str, len: usize) -> Vec<u8> {
    let seed = uid
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// A supplier repository published by `ota-repo` (consistent snapshots, RSA keys).
pub struct SupplierTree {
    pub tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub repo: PathBuf,
    pub now: DateTime,
}

impl SupplierTree {
    /// A published tree listing the images `(uid, version, length)`.
    pub fn new(images: &[(&str, &str, usize)]) -> SupplierTree {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keydir = tmp.path().join("keys");
        std::fs::create_dir(&keydir).unwrap();
        let mut role_keys = std::collections::BTreeMap::new();
        for (i, role) in ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .enumerate()
        {
            let path = keydir.join(format!("{role}.pem"));
            std::fs::write(&path, rsa_key(i).to_pkcs8_pem().unwrap()).unwrap();
            role_keys.insert(role.to_string(), vec![path]);
        }
        let work = tmp.path().join("supplier");
        let now = DateTime::now();
        supplier::init(
            &work,
            supplier::Init {
                name: "acme".into(),
                roles: supplier::RoleOptions {
                    role_keys,
                    ..Default::default()
                },
                max_image_size: supplier::DEFAULT_MAX_IMAGE_SIZE,
            },
            now,
        )
        .expect("supplier init");
        let t = SupplierTree {
            repo: work.join("repository"),
            work,
            tmp,
            now,
        };
        for (uid, version, len) in images {
            t.add_image(uid, version, *len);
        }
        supplier::publish(&t.work, t.now, false).expect("publish");
        t
    }

    pub fn add_image(&self, uid: &str, version: &str, len: usize) -> String {
        let src = self.tmp.path().join(format!("{uid}-{version}.src"));
        std::fs::write(&src, image_bytes(uid, len)).unwrap();
        supplier::add_image(
            &self.work,
            supplier::AddImage {
                file: src,
                uid: uid.into(),
                version: version.into(),
                release_counter: 1,
                hardware_ids: vec!["BRAKE-A".into()],
                role: "targets".into(),
                allow_rollback: false,
                encrypt: None,
                delta_from: Vec::new(),
            },
            self.now,
        )
        .unwrap_or_else(|e| panic!("add-image {uid}: {e}"));
        image_name(uid, version)
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.repo.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// `signed` of a published file, unverified.
    pub fn signed(&self, file: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.read(file)).unwrap();
        v["signed"].clone()
    }

    /// The current version of snapshot or a targets role, as the published tree lists it.
    pub fn version(&self, role: &str) -> u64 {
        let snap = self.signed("timestamp.json")["meta"]["snapshot.json"]["version"]
            .as_u64()
            .unwrap();
        if role == "snapshot" {
            return snap;
        }
        self.signed(&format!("{snap}.snapshot.json"))["meta"][format!("{role}.json")]["version"]
            .as_u64()
            .unwrap()
    }
}

pub fn image_name(uid: &str, version: &str) -> String {
    ImageTargets::new(uid, version).image
}
