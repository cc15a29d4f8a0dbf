//! A small TUF repository writer for the tests, in the spirit of tuf-conformance's
//! `RepositorySimulator`: what `ota-repo` never writes (and other publishers do) is easy here —
//! ed25519 and ECDSA keys, `consistent_snapshot: false`, meta entries without length or hashes,
//! unknown fields, root rotations that change the key type, role names that need quoting.
//!
//! Documents are built as JSON values and signed over their canonical form. Files are stored
//! under the names a client must request, percent-encoded as python's
//! `urllib.parse.quote(name, "")` (independently of the client's own encoder), for the
//! literal-path HTTP server in `http.rs`:
//!
//! ```text
//! DIR/metadata/N.root.json  timestamp.json  [V.]snapshot.json  [V.]<quoted role>.json
//! DIR/targets/<path>  or, with consistent snapshots, DIR/targets/<dir>/<sha256>.<name>
//! ```

use ota_metadata::canonical::to_canonical;
use ota_metadata::keys::{Key, KeyId, KeyVal};
use ota_metadata::{DateTime, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A key the test repository signs with.
pub enum TestKey {
    Rsa(Box<SigningKey>),
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

fn key_object(keytype: &str, scheme: &str, public: String) -> Key {
    Key {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval: KeyVal {
            public,
            extra: BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    }
}

impl TestKey {
    pub fn rsa(i: usize) -> Arc<TestKey> {
        Arc::new(TestKey::Rsa(Box::new(super::rsa_key(i))))
    }
    pub fn ed25519(seed: u8) -> Arc<TestKey> {
        Arc::new(TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &[seed; 32],
        )))
    }
    pub fn p256(seed: u8) -> Arc<TestKey> {
        let k = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).expect("P-256 scalar");
        Arc::new(TestKey::P256(k))
    }

    pub fn public(&self) -> Key {
        match self {
            TestKey::Rsa(k) => k.public().clone(),
            TestKey::Ed25519(k) => key_object(
                "ed25519",
                "ed25519",
                hex::encode(k.verifying_key().as_bytes()),
            ),
            TestKey::P256(k) => {
                use p256::pkcs8::{EncodePublicKey, LineEnding};
                let pem = k
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("P-256 PEM");
                // securesystemslib's spelling: keytype "ecdsa", PEM public key.
                key_object("ecdsa", "ecdsa-sha2-nistp256", pem)
            }
        }
    }

    pub fn id(&self) -> KeyId {
        self.public().key_id().expect("key id")
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => k.sign(msg).expect("RSA sign"),
            TestKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(msg).to_bytes().to_vec()
            }
            TestKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// python's `urllib.parse.quote(s, safe)`: unreserved characters and `safe` stay.
pub fn quote(s: &str, safe: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || safe.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sign `signed` with `keys`: the envelope as pretty JSON (not canonical, so that "the exact
/// bytes served" is a real check).
pub fn sign(signed: &Value, keys: &[&TestKey]) -> Vec<u8> {
    let msg = to_canonical(signed).expect("canonical");
    let sigs: Vec<Value> = keys
        .iter()
        .map(|k| json!({"keyid": k.id().0, "sig": hex::encode(k.sign(&msg))}))
        .collect();
    let mut out =
        serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": sigs})).unwrap();
    out.push(b'\n');
    out
}

struct Delegation {
    name: String,
    key: Arc<TestKey>,
    paths: Vec<String>,
    terminating: bool,
}

pub struct MiniRepo {
    pub dir: PathBuf,
    pub consistent: bool,
    /// Put length and sha256 into snapshot and timestamp meta entries (tuf-conformance's
    /// simulator leaves them out by default).
    pub meta_hashes: bool,
    /// Expiry per role; absent: now + 7 days.
    pub expires: BTreeMap<String, DateTime>,
    /// Extra (unknown) fields put into every `signed` object.
    pub extra: Map<String, Value>,
    root_keys: Vec<Arc<TestKey>>,
    keys: BTreeMap<String, Vec<Arc<TestKey>>>,
    root_version: u64,
    versions: BTreeMap<String, u64>,
    targets: BTreeMap<String, Map<String, Value>>,
    delegations: BTreeMap<String, Vec<Delegation>>,
    /// TAP 15 succinct delegations: parent -> (name prefix, bit length, key).
    succinct: BTreeMap<String, (String, u32, Arc<TestKey>)>,
    /// Target path -> content.
    pub artifacts: BTreeMap<String, Vec<u8>>,
}

impl MiniRepo {
    /// A repository whose root, timestamp, snapshot and targets roles are signed by one key
    /// each; root v1 and the first timestamp/snapshot/targets are published.
    pub fn new(dir: &Path, consistent: bool, keys: [Arc<TestKey>; 4]) -> MiniRepo {
        let [root, timestamp, snapshot, targets] = keys;
        let mut repo = MiniRepo {
            dir: dir.to_path_buf(),
            consistent,
            meta_hashes: false,
            succinct: BTreeMap::new(),
            expires: BTreeMap::new(),
            extra: Map::new(),
            root_keys: vec![root],
            keys: BTreeMap::from([
                ("timestamp".to_string(), vec![timestamp]),
                ("snapshot".to_string(), vec![snapshot]),
                ("targets".to_string(), vec![targets]),
            ]),
            root_version: 0,
            versions: BTreeMap::new(),
            targets: BTreeMap::from([("targets".to_string(), Map::new())]),
            delegations: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        };
        std::fs::create_dir_all(dir.join("metadata")).unwrap();
        std::fs::create_dir_all(dir.join("targets")).unwrap();
        let signers = repo.root_keys.clone();
        repo.publish_root(&signers);
        repo.publish();
        repo
    }

    fn expiry(&self, role: &str) -> String {
        self.expires
            .get(role)
            .copied()
            .unwrap_or_else(|| DateTime::now().plus_seconds(7 * 86_400))
            .to_string()
    }

    fn with_extra(&self, mut v: Value) -> Value {
        if let Value::Object(m) = &mut v {
            for (k, x) in &self.extra {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    }

    fn write_meta(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join("metadata").join(file), bytes).unwrap();
    }

    pub fn read_meta(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("metadata").join(file)).unwrap()
    }

    pub fn root_version(&self) -> u64 {
        self.root_version
    }

    pub fn version(&self, role: &str) -> u64 {
        self.versions.get(role).copied().unwrap_or(0)
    }

    fn root_body(&self) -> Value {
        let mut keys = Map::new();
        let mut roles = Map::new();
        let mut role = |name: &str, ks: &[Arc<TestKey>]| {
            for k in ks {
                keys.insert(k.id().0, serde_json::to_value(k.public()).unwrap());
            }
            let ids: Vec<String> = ks.iter().map(|k| k.id().0).collect();
            roles.insert(name.into(), json!({"keyids": ids, "threshold": 1}));
        };
        role("root", &self.root_keys);
        for (name, ks) in &self.keys {
            if ["timestamp", "snapshot", "targets"].contains(&name.as_str()) {
                role(name, ks);
            }
        }
        self.with_extra(json!({
            "_type": "root",
            "spec_version": "1.0.31",
            "consistent_snapshot": self.consistent,
            "version": self.root_version + 1,
            "expires": self.expiry("root"),
            "keys": keys,
            "roles": roles,
        }))
    }

    /// Publish the next root version signed by `signers` (the current root keys sign the first).
    pub fn publish_root(&mut self, signers: &[Arc<TestKey>]) {
        let body = self.root_body();
        let keys: Vec<&TestKey> = signers.iter().map(|k| &**k).collect();
        self.root_version += 1;
        self.write_meta(
            &format!("{}.root.json", self.root_version),
            &sign(&body, &keys),
        );
    }

    /// Replace the root keys (and optionally a top-level role's keys) and publish the next root,
    /// signed by the old root keys and the new ones.
    pub fn rotate_root(&mut self, new_root: Vec<Arc<TestKey>>, role: Option<(&str, Arc<TestKey>)>) {
        let mut signers = self.root_keys.clone();
        signers.extend(new_root.iter().cloned());
        self.root_keys = new_root;
        if let Some((name, key)) = role {
            self.keys.insert(name.into(), vec![key]);
        }
        self.publish_root(&signers);
    }

    /// List `path` (content `data`) in targets role `role` and store the file.
    pub fn add_target(&mut self, role: &str, path: &str, data: &[u8]) {
        let sha = hex::encode(Sha256::digest(data));
        self.targets.entry(role.into()).or_default().insert(
            path.into(),
            json!({"length": data.len(), "hashes": {"sha256": sha}}),
        );
        self.artifacts.insert(path.into(), data.to_vec());
        self.store_target(path, data, &sha);
    }

    /// Serve `data` as the file of `path` without changing any metadata (substitution attack).
    pub fn substitute_target(&self, path: &str, data: &[u8]) {
        let sha = self.targets.values().find_map(|t| {
            t.get(path)
                .and_then(|v| v["hashes"]["sha256"].as_str().map(String::from))
        });
        self.store_target(path, data, &sha.expect("listed target"));
    }

    fn store_target(&self, path: &str, data: &[u8], sha: &str) {
        let rel = if self.consistent {
            match path.rsplit_once('/') {
                Some((dir, name)) => format!("{}/{sha}.{}", quote(dir, "/"), quote(name, "")),
                None => format!("{sha}.{}", quote(path, "")),
            }
        } else {
            quote(path, "/")
        };
        let file = self.dir.join("targets").join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }

    /// `parent` delegates `name` (paths `paths`) to `key`, threshold 1.
    pub fn delegate(
        &mut self,
        parent: &str,
        name: &str,
        key: Arc<TestKey>,
        paths: &[&str],
        terminating: bool,
    ) {
        self.keys.insert(name.into(), vec![key.clone()]);
        self.targets.entry(name.into()).or_default();
        self.delegations
            .entry(parent.into())
            .or_default()
            .push(Delegation {
                name: name.into(),
                key,
                paths: paths.iter().map(|s| s.to_string()).collect(),
                terminating,
            });
    }

    /// `parent` delegates to `2^bits` succinct hash bins `PREFIX-HEX`, all signed by `key`.
    pub fn delegate_succinct(&mut self, parent: &str, prefix: &str, bits: u32, key: Arc<TestKey>) {
        let width = bits.div_ceil(4) as usize;
        for bin in 0..(1u32 << bits) {
            let name = format!("{prefix}-{bin:0width$x}");
            self.keys.insert(name.clone(), vec![key.clone()]);
            self.targets.entry(name).or_default();
        }
        self.succinct
            .insert(parent.into(), (prefix.into(), bits, key));
    }

    fn role_file(&self, role: &str, version: u64) -> String {
        if self.consistent {
            format!("{version}.{}.json", quote(role, ""))
        } else {
            format!("{}.json", quote(role, ""))
        }
    }

    fn meta_entry(&self, version: u64, bytes: &[u8]) -> Value {
        if self.meta_hashes {
            json!({"version": version, "length": bytes.len(),
                   "hashes": {"sha256": hex::encode(Sha256::digest(bytes))}})
        } else {
            json!({"version": version})
        }
    }

    fn bump(&mut self, role: &str) -> u64 {
        let v = self.versions.entry(role.into()).or_insert(0);
        *v += 1;
        *v
    }

    /// Publish a new version of every targets role, then snapshot, then timestamp.
    pub fn publish(&mut self) {
        let mut snapshot_meta = Map::new();
        let roles: Vec<String> = self.targets.keys().cloned().collect();
        for role in roles {
            let version = self.bump(&role);
            let mut body = json!({
                "_type": "targets",
                "spec_version": "1.0.31",
                "version": version,
                "expires": self.expiry(&role),
                "targets": self.targets[&role].clone(),
            });
            if let Some(ds) = self.delegations.get(&role) {
                let mut keys = Map::new();
                let mut entries = Vec::new();
                for d in ds {
                    keys.insert(d.key.id().0, serde_json::to_value(d.key.public()).unwrap());
                    entries.push(json!({"name": d.name, "keyids": [d.key.id().0],
                        "threshold": 1, "terminating": d.terminating, "paths": d.paths}));
                }
                body["delegations"] = json!({"keys": keys, "roles": entries});
            }
            if let Some((prefix, bits, key)) = self.succinct.get(&role) {
                let keys = json!({ key.id().0: serde_json::to_value(key.public()).unwrap() });
                body["delegations"] = json!({"keys": keys, "succinct_roles": {
                    "keyids": [key.id().0], "threshold": 1, "bit_length": bits, "name_prefix": prefix}});
            }
            let body = self.with_extra(body);
            let keys: Vec<&TestKey> = self.keys[&role].iter().map(|k| &**k).collect();
            let bytes = sign(&body, &keys);
            self.write_meta(&self.role_file(&role, version), &bytes);
            snapshot_meta.insert(format!("{role}.json"), self.meta_entry(version, &bytes));
        }
        let version = self.bump("snapshot");
        let body = self.with_extra(json!({
            "_type": "snapshot", "spec_version": "1.0.31", "version": version,
            "expires": self.expiry("snapshot"), "meta": snapshot_meta,
        }));
        let keys: Vec<&TestKey> = self.keys["snapshot"].iter().map(|k| &**k).collect();
        let snapshot = sign(&body, &keys);
        self.write_meta(&self.role_file("snapshot", version), &snapshot);
        let meta = self.meta_entry(version, &snapshot);
        self.publish_timestamp_with(meta);
    }

    /// Publish a new timestamp naming the current snapshot.
    pub fn publish_timestamp(&mut self) {
        let v = self.version("snapshot");
        let file = self.role_file("snapshot", v);
        let meta = self.meta_entry(v, &self.read_meta(&file));
        self.publish_timestamp_with(meta);
    }

    fn publish_timestamp_with(&mut self, snapshot_meta: Value) {
        let version = self.bump("timestamp");
        let body = self.with_extra(json!({
            "_type": "timestamp", "spec_version": "1.0.31", "version": version,
            "expires": self.expiry("timestamp"), "meta": {"snapshot.json": snapshot_meta},
        }));
        let keys: Vec<&TestKey> = self.keys["timestamp"].iter().map(|k| &**k).collect();
        self.write_meta("timestamp.json", &sign(&body, &keys));
    }

    /// The served bytes of `role`'s current version.
    pub fn served(&self, role: &str) -> Vec<u8> {
        match role {
            "root" => self.read_meta(&format!("{}.root.json", self.root_version)),
            "timestamp" => self.read_meta("timestamp.json"),
            _ => self.read_meta(&self.role_file(role, self.version(role))),
        }
    }
}
