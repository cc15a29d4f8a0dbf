//! Test fixtures: supplier trees built with `ota_repo`'s own library functions (so the client
//! is tested against exactly what the publisher writes), fetchers that record or misbehave,
//! and a tiny HTTP/1.1 server.

#![allow(dead_code)]

pub mod http;

use ota_client::tuf::{self, DirFetcher, Fetch, FetchError, Limits, RangeSink, Updater};
use ota_metadata::documents::ImageTargets;
use ota_metadata::{DateTime, SigningKey};
use ota_repo::supplier;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// RSA-2048 test keys (PKCS#8 PEM), generated once per test binary on two threads: key
/// generation is the slow part of building trees, and no test needs fresh randomness.
pub const KEYS: usize = 12;

fn key_pems() -> &'static [String] {
    static PEMS: OnceLock<Vec<String>> = OnceLock::new();
    PEMS.get_or_init(|| {
        let gen = |n: usize| -> Vec<String> {
            (0..n)
                .map(|_| {
                    SigningKey::generate(2048)
                        .and_then(|k| k.to_pkcs8_pem())
                        .expect("generate RSA key")
                })
                .collect()
        };
        let half = std::thread::spawn(move || gen(KEYS / 2));
        let mut v = gen(KEYS - KEYS / 2);
        v.extend(half.join().expect("key thread"));
        v
    })
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

pub fn image_name(uid: &str, version: &str) -> String {
    ImageTargets::new(uid, version).image
}

/// A supplier working directory, its published tree, and a client directory beside them.
pub struct Tree {
    pub tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub repo: PathBuf,
    pub now: DateTime,
}

/// Keys 0..=3 are the initial root, targets, snapshot and timestamp keys; tests use the others
/// for delegations and rotations.
impl Tree {
    /// A published tree with one image, `brake-fw` 1.0.0 (5000 bytes), in the top-level role.
    pub fn new() -> Tree {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keydir = tmp.path().join("keys");
        std::fs::create_dir(&keydir).unwrap();
        for (i, pem) in key_pems().iter().enumerate() {
            std::fs::write(keydir.join(format!("k{i}.pem")), pem).unwrap();
        }
        let work = tmp.path().join("supplier");
        let now = DateTime::now();
        let t = Tree {
            repo: work.join("repository"),
            work,
            tmp,
            now,
        };
        let role_keys = ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .enumerate()
            .map(|(i, r)| (r.to_string(), vec![t.key(i)]))
            .collect();
        supplier::init(
            &t.work,
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
        t.add_image("brake-fw", "1.0.0", 5000, "targets", "BRAKE-A");
        t.publish();
        t
    }

    pub fn key(&self, i: usize) -> PathBuf {
        self.tmp.path().join("keys").join(format!("k{i}.pem"))
    }

    pub fn signing_key(&self, i: usize) -> SigningKey {
        SigningKey::from_pem(&key_pems()[i]).unwrap()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Add an image of `len` bytes (content from [`image_bytes`]); returns its target name.
    pub fn add_image(&self, uid: &str, version: &str, len: usize, role: &str, hw: &str) -> String {
        let src = self.tmp.path().join(format!("{uid}-{version}.src"));
        std::fs::write(&src, image_bytes(uid, len)).unwrap();
        supplier::add_image(
            &self.work,
            supplier::AddImage {
                file: src,
                uid: uid.into(),
                version: version.into(),
                release_counter: 1,
                hardware_ids: vec![hw.into()],
                role: role.into(),
                allow_rollback: false,
                encrypt: None,
                delta_from: Vec::new(),
            },
            self.now,
        )
        .unwrap_or_else(|e| panic!("add-image {uid}: {e}"));
        image_name(uid, version)
    }

    pub fn delegate(&self, name: &str, key: usize, paths: &[&str], hw: &[&str], terminating: bool) {
        supplier::delegate(
            &self.work,
            supplier::Delegate {
                name: name.into(),
                keys: ota_repo::supplier::DelegateKeys::Private(vec![self.key(key)]),
                threshold: 1,
                hardware_ids: hw.iter().map(|s| s.to_string()).collect(),
                paths: paths.iter().map(|s| s.to_string()).collect(),
                terminating,
                expires: None,
                replace: false,
            },
        )
        .expect("delegate");
    }

    pub fn publish(&self) {
        supplier::publish(&self.work, self.now, false).expect("publish");
    }

    /// Replace `role`'s keys with the given pool keys (threshold 1).
    pub fn rotate(&self, role: &str, keys: &[usize]) {
        let keys = keys.iter().map(|&i| self.key(i)).collect();
        ota_repo::rotation::rotate::<supplier::Settings>(&self.work, role, keys, Some(1), self.now)
            .unwrap_or_else(|e| panic!("rotate {role}: {e}"));
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.repo.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    pub fn write(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.repo.join(file), bytes).unwrap();
    }

    /// `signed.<field>` of a published file, unverified.
    pub fn signed(&self, file: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.read(file)).unwrap();
        v["signed"].clone()
    }

    /// The version of `role` the published tree currently lists.
    pub fn version(&self, role: &str) -> u64 {
        match role {
            "timestamp" => self.signed("timestamp.json")["version"].as_u64().unwrap(),
            "snapshot" => self.signed("timestamp.json")["meta"]["snapshot.json"]["version"]
                .as_u64()
                .unwrap(),
            _ => {
                let snap = format!("{}.snapshot.json", self.version("snapshot"));
                self.signed(&snap)["meta"][format!("{role}.json")]["version"]
                    .as_u64()
                    .unwrap()
            }
        }
    }

    /// The published file of `role` under its versioned name.
    pub fn role_file(&self, role: &str) -> Vec<u8> {
        match role {
            "timestamp" => self.read("timestamp.json"),
            _ => self.read(&format!("{}.{role}.json", self.version(role))),
        }
    }

    /// The stored file of target `name` (`targets/SHA.name`).
    pub fn target_file(&self, name: &str) -> PathBuf {
        let dir = self.repo.join("targets");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split_once('.'))
                    .is_some_and(|(_, rest)| rest == name)
            })
            .unwrap_or_else(|| panic!("no stored target {name}"))
    }

    /// A client metadata directory holding `N.root.json` as its trusted root.
    pub fn client_dir(&self, name: &str, root_version: u64) -> PathBuf {
        let dir = self.path(name);
        let root = self.read(&format!("{root_version}.root.json"));
        tuf::init_trusted_root(&dir, &root, &Limits::default()).expect("init trusted root");
        dir
    }

    pub fn metadata_url(&self) -> String {
        self.repo.to_str().unwrap().to_string()
    }

    pub fn targets_url(&self) -> String {
        self.repo.join("targets").to_str().unwrap().to_string()
    }

    /// An updater over this tree through `fetcher`, trusting `1.root.json`.
    pub fn updater_with<F: Fetch>(
        &self,
        dir: &str,
        fetcher: F,
        limits: Limits,
        now: DateTime,
    ) -> Updater<F> {
        let meta = if self.path(dir).join("root.json").exists() {
            self.path(dir)
        } else {
            self.client_dir(dir, 1)
        };
        Updater::new(
            meta,
            &self.metadata_url(),
            &self.targets_url(),
            fetcher,
            limits,
            now,
        )
        .expect("updater")
    }

    pub fn updater(&self, dir: &str) -> Updater<DirFetcher> {
        self.updater_with(dir, DirFetcher::new(), Limits::default(), self.now)
    }
}

/// Names of the files in `dir`, sorted.
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

/// A fetcher that records the last path segment of every URL and whether the fetch worked.
pub struct Recorder<F> {
    pub inner: F,
    pub log: Mutex<Vec<(String, bool)>>,
}

impl<F> Recorder<F> {
    pub fn new(inner: F) -> Self {
        Recorder {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }
    pub fn take(&self) -> Vec<(String, bool)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl<F: Fetch> Fetch for Recorder<F> {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let r = self.inner.fetch_into(url, max_len, sink);
        self.record(url, r.is_ok());
        r
    }
    fn fetch_range_into(
        &self,
        url: &str,
        offset: u64,
        max_len: u64,
        sink: &mut dyn RangeSink,
    ) -> Result<u64, FetchError> {
        let r = self.inner.fetch_range_into(url, offset, max_len, sink);
        self.record(url, r.is_ok());
        r
    }
}

impl<F> Recorder<F> {
    fn record(&self, url: &str, ok: bool) {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        self.log.lock().unwrap().push((name, ok));
    }
}

/// A broken fetcher: for URLs ending in `victim` it ignores `max_len` and returns the real
/// bytes followed by a megabyte of spaces (endless data, as far as any bound is concerned).
pub struct Endless {
    pub victim: &'static str,
}

impl Fetch for Endless {
    fn fetch_into(&self, url: &str, max_len: u64, sink: &mut dyn Write) -> Result<u64, FetchError> {
        let bytes = self.fetch(url, max_len)?;
        sink.write_all(&bytes).unwrap();
        Ok(bytes.len() as u64)
    }
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        if url.ends_with(self.victim) {
            let mut v = DirFetcher::new().fetch(url, u64::MAX)?;
            v.extend(std::iter::repeat_n(b' ', 1 << 20));
            Ok(v)
        } else {
            DirFetcher::new().fetch(url, max_len)
        }
    }
}

/// A tree with two levels of delegation, written with `ota_repo`'s generic consistent-snapshot
/// publisher (the supplier workflow delegates one level only):
///
/// ```text
/// targets -> A ("*")            -> B ("x*", terminating): lists nothing
///                               -> C ("*"):               lists x1, c1
///         -> D ("*")                                      lists x1, y1
/// ```
pub fn nested_tree() -> Tree {
    use ota_repo::publish::{self, PublishPlan, RoleDoc, Signer};
    use ota_repo::root_build::build_root;
    use ota_repo::workdir::RoleConfig;
    use serde_json::json;

    let tree = Tree::new();
    let nested = tree.path("nested");
    std::fs::create_dir_all(&nested).unwrap();
    let mut roles = std::collections::BTreeMap::new();
    for (i, r) in ["root", "targets", "snapshot", "timestamp"]
        .iter()
        .enumerate()
    {
        roles.insert(
            r.to_string(),
            RoleConfig::new(vec![tree.key(i)], 1, "7d").unwrap(),
        );
    }
    let root = build_root(&roles, 1, tree.now).unwrap();
    let k = |i| tree.signing_key(i);
    let (k0, k1, k2, k3, k4) = (k(0), k(1), k(2), k(3), k(4));
    publish::write_root(&nested, &root, &[&k0]).unwrap();

    let id = k4.key_id().0.clone();
    let role = |name: &str, paths: &[&str], terminating: bool| {
        json!({"name": name, "keyids": [id], "threshold": 1, "terminating": terminating,
               "paths": paths})
    };
    let delegations =
        |roles: Vec<serde_json::Value>| json!({"keys": {id.clone(): k4.public()}, "roles": roles});
    let file = |name: &str| json!({"length": 1, "hashes": {"sha256": hex_of(name)}});
    let body = |targets: serde_json::Value, deleg: Option<serde_json::Value>| {
        let mut b = json!({"_type": "targets", "spec_version": "1.0.31", "targets": targets});
        if let Some(d) = deleg {
            b["delegations"] = d;
        }
        b
    };
    fn doc<'k>(name: &str, body: serde_json::Value, key: &'k SigningKey) -> RoleDoc<'k> {
        RoleDoc {
            name: name.into(),
            body,
            keys: vec![key],
            lifetime: 86_400,
        }
    }
    let plan = PublishPlan {
        verbatim: Vec::new(),
        roles: vec![
            doc(
                "targets",
                body(
                    json!({}),
                    Some(delegations(vec![
                        role("A", &["*"], false),
                        role("D", &["*"], false),
                    ])),
                ),
                &k1,
            ),
            doc(
                "A",
                body(
                    json!({}),
                    Some(delegations(vec![
                        role("B", &["x*"], true),
                        role("C", &["*"], false),
                    ])),
                ),
                &k4,
            ),
            doc("B", body(json!({}), None), &k4),
            doc(
                "C",
                body(json!({"x1": file("C/x1"), "c1": file("C/c1")}), None),
                &k4,
            ),
            doc(
                "D",
                body(json!({"x1": file("D/x1"), "y1": file("D/y1")}), None),
                &k4,
            ),
        ],
        snapshot: Signer {
            keys: vec![&k2],
            lifetime: 86_400,
        },
        timestamp: Signer {
            keys: vec![&k3],
            lifetime: 86_400,
        },
        force: false,
    };
    // Written as specified, even a tree a client must refuse (`publish` would check it first),
    // and before its target files exist.
    publish::publish_unverified(&nested, tree.now, &plan).unwrap();
    Tree {
        repo: nested,
        work: tree.work.clone(),
        now: tree.now,
        tmp: tree.tmp,
    }
}

fn hex_of(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// One targets role of [`custom_tree`].
pub struct RoleSpec {
    pub name: &'static str,
    /// The `targets` object.
    pub targets: serde_json::Value,
    /// The `delegations` object, if any ([`delegations_of`]).
    pub delegations: Option<serde_json::Value>,
    /// Pool keys that sign the role.
    pub signers: Vec<usize>,
    /// This project's `delegated_hardware_ids` extension, if any.
    pub hardware_ids: Option<serde_json::Value>,
}

/// A tree of arbitrary targets roles (one must be "targets", signed by key 1), written with
/// `ota_repo`'s generic consistent-snapshot publisher into `dir` of a fresh [`Tree`]. Keys
/// 0, 2 and 3 sign root, snapshot and timestamp, as in [`Tree::new`].
pub fn custom_tree(dir: &str, roles: Vec<RoleSpec>) -> Tree {
    use ota_repo::publish::{self, PublishPlan, RoleDoc, Signer};
    use ota_repo::root_build::build_root;
    use ota_repo::workdir::RoleConfig;
    use serde_json::json;

    let tree = Tree::new();
    let out = tree.path(dir);
    std::fs::create_dir_all(&out).unwrap();
    let mut configs = std::collections::BTreeMap::new();
    for (i, r) in ["root", "targets", "snapshot", "timestamp"]
        .iter()
        .enumerate()
    {
        configs.insert(
            r.to_string(),
            RoleConfig::new(vec![tree.key(i)], 1, "7d").unwrap(),
        );
    }
    let root = build_root(&configs, 1, tree.now).unwrap();
    let pool: Vec<SigningKey> = (0..KEYS).map(|i| tree.signing_key(i)).collect();
    publish::write_root(&out, &root, &[&pool[0]]).unwrap();
    let docs = roles
        .iter()
        .map(|r| {
            let mut body = json!({"_type": "targets", "spec_version": "1.0.31",
                                  "targets": r.targets.clone()});
            if let Some(d) = &r.delegations {
                body["delegations"] = d.clone();
            }
            if let Some(h) = &r.hardware_ids {
                body["delegated_hardware_ids"] = h.clone();
            }
            RoleDoc {
                name: r.name.into(),
                body,
                keys: r.signers.iter().map(|&i| &pool[i]).collect(),
                lifetime: 86_400,
            }
        })
        .collect();
    let plan = PublishPlan {
        verbatim: Vec::new(),
        roles: docs,
        snapshot: Signer {
            keys: vec![&pool[2]],
            lifetime: 86_400,
        },
        timestamp: Signer {
            keys: vec![&pool[3]],
            lifetime: 86_400,
        },
        force: false,
    };
    // Written as specified, even a tree a client must refuse (`publish` would check it first),
    // and before its target files exist.
    publish::publish_unverified(&out, tree.now, &plan).unwrap();
    Tree {
        repo: out,
        work: tree.work.clone(),
        now: tree.now,
        tmp: tree.tmp,
    }
}

/// A `delegations` object: each (role, pool key, path patterns, terminating), threshold 1.
pub fn delegations_of(roles: &[(&str, usize, &[&str], bool)]) -> serde_json::Value {
    use serde_json::json;
    let pems = key_pems();
    let mut keys = serde_json::Map::new();
    let mut entries = Vec::new();
    for (name, k, paths, terminating) in roles {
        let key = SigningKey::from_pem(&pems[*k]).unwrap();
        keys.insert(key.key_id().0.clone(), json!(key.public()));
        entries.push(
            json!({"name": name, "keyids": [key.key_id()], "threshold": 1,
                            "terminating": terminating, "paths": paths}),
        );
    }
    json!({"keys": keys, "roles": entries})
}

/// The targets entry of a file holding `data`.
pub fn target_entry(data: &[u8]) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    serde_json::json!({"length": data.len(), "hashes": {"sha256": hex::encode(Sha256::digest(data))}})
}
