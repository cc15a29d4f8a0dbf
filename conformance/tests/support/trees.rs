//! The three kinds of trees `ota-repo` publishes, built fresh with its library API, for the
//! independent readers (python-tuf in `python_tuf.rs`, tough in `tough_interop.rs`):
//!
//! - supplier `acme`: images in the top-level targets role and in a tier-2 delegation
//!   (`brakes-tier2`), each with its JSON and compact manifests;
//! - OEM: `acme` pinned and regulator `tuv` authorized (the `suppliers` and `regulators`
//!   extension fields of top-level targets, under the offline key), every image sent for review
//!   (`review.json`), two vehicles with assignments (`vehicles.json`, `vehicles/`), then the
//!   `vehicles` key rotated, so the tree has a root chain (`2.root.json`, a new `ota_roles`);
//! - regulator `tuv`: an attestation per release, approved or rejected.
//!
//! And what a reader should find in a tree, read from the files on disk with nothing but
//! `serde_json` ([`Expected`]), plus helpers to tamper with a copy of a tree.

use super::rsa_key;
use ota_metadata::documents::ImageTargets;
use ota_metadata::DateTime;
use ota_repo::supplier::RoleOptions;
use ota_repo::{oem, regulator, supplier};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const TIER2: &str = "brakes-tier2";
/// A tier-2 that signs for itself in its own directory, and the tier-3 it delegates to.
pub const TIER2_SELF: &str = "brakes-cal";
pub const TIER3: &str = "brakes-lib";

/// Images the tiers sign: (uid, version, release counter, hardware id, role, size).
pub const TIER_IMAGES: [(&str, &str, u64, &str, &str, usize); 2] = [
    ("brake-cal", "1.0", 1, "BRAKE-A", TIER2_SELF, 2000),
    ("brake-lib", "1.0", 1, "BRAKE-A", TIER3, 3000),
];

/// (uid, version, release counter, hardware id, role, size).
pub const IMAGES: [(&str, &str, u64, &str, &str, usize); 5] = [
    ("brake-fw", "1.0.0", 1, "BRAKE-A", "targets", 4097),
    ("brake-fw", "1.1.0", 2, "BRAKE-A", "targets", 70_000),
    ("infotainment", "5.2", 7, "HU-GEN3", "targets", 1),
    ("abs-fw", "3.0", 3, "ABS-MOD-1", TIER2, 32_768),
    ("abs-fw", "3.1", 4, "ABS-MOD-1", TIER2, 1),
];

pub struct Trees {
    pub tmp: tempfile::TempDir,
    pub now: DateTime,
    /// The image files given to the supplier, by target name (`uid-version.bin`).
    pub originals: BTreeMap<String, Vec<u8>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Trees {
    /// Working directory of the supplier, the OEM or the regulator.
    pub fn supplier(&self) -> PathBuf {
        self.tmp.path().join("acme")
    }
    pub fn oem(&self) -> PathBuf {
        self.tmp.path().join("oem")
    }
    pub fn regulator(&self) -> PathBuf {
        self.tmp.path().join("tuv")
    }

    /// The three published trees, by name.
    pub fn repos(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("supplier", self.supplier().join("repository")),
            ("oem", self.oem().join("repository")),
            ("regulator", self.regulator().join("repository")),
        ]
    }

    /// The tiers below acme: bosch (tier-2, [`TIER2_SELF`]) and conti (tier-3, [`TIER3`]),
    /// each with its key in its own directory, each releasing one image and handing over to
    /// its delegator; acme ingests. Their images go into `originals`.
    fn supply_chain(&self, acme: &Path, originals: &mut BTreeMap<String, Vec<u8>>) {
        use ota_repo::supplier::{tier, DelegateKeys};
        let tiers = self.tmp.path().join("tiers");
        let party = |name: &str| -> (PathBuf, PathBuf, PathBuf) {
            let d = tiers.join(name);
            std::fs::create_dir_all(&d).unwrap();
            let key = d.join("key.pem");
            ota_repo::keystore::generate(2048, &key).expect("tier key");
            let public = d.join("key.pub.pem");
            ota_repo::keystore::export_public(&key, &public).expect("public key");
            (d.join("tier"), key, public)
        };
        let (bosch, bosch_key, bosch_pub) = party("bosch");
        let (conti, conti_key, conti_pub) = party("conti");
        let delegate = |dir: &Path, name: &str, public: &Path, paths: &[&str]| {
            supplier::delegate(
                dir,
                supplier::Delegate {
                    name: name.into(),
                    keys: DelegateKeys::Public(vec![public.to_path_buf()]),
                    threshold: 1,
                    hardware_ids: vec!["BRAKE-A".into()],
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                    terminating: false,
                    expires: None,
                    replace: false,
                },
            )
            .unwrap_or_else(|e| panic!("delegate {name}: {e}"));
        };
        let init = |dir: &Path, name: &str, role: &str, key: &Path, paths: &[&str]| {
            tier::init_tier(
                dir,
                tier::TierInit {
                    name: name.into(),
                    role: role.into(),
                    keys: vec![key.to_path_buf()],
                    threshold: 1,
                    hardware_ids: vec!["BRAKE-A".into()],
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                    expires: None,
                    max_image_size: supplier::DEFAULT_MAX_IMAGE_SIZE,
                },
            )
            .unwrap_or_else(|e| panic!("init-tier {role}: {e}"));
        };
        let both = ["brake-cal-*", "brake-lib-*"];
        delegate(acme, TIER2_SELF, &bosch_pub, &both);
        init(&bosch, "bosch", TIER2_SELF, &bosch_key, &both);
        delegate(&bosch, TIER3, &conti_pub, &["brake-lib-*"]);
        init(&conti, "conti", TIER3, &conti_key, &["brake-lib-*"]);
        for (i, (uid, version, rc, hw, role, size)) in TIER_IMAGES.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size)
                .map(|j| (j.wrapping_mul(13) ^ (i * 5)) as u8)
                .collect();
            let file = self.tmp.path().join(format!("{uid}-{version}.src"));
            std::fs::write(&file, &bytes).unwrap();
            let dir = if role == TIER3 { &conti } else { &bosch };
            supplier::add_image(
                dir,
                supplier::AddImage {
                    file,
                    uid: uid.into(),
                    version: version.into(),
                    release_counter: rc,
                    hardware_ids: vec![hw.into()],
                    role: String::new(),
                    allow_rollback: false,
                    encrypt: None,
                    delta_from: Vec::new(),
                },
                self.now,
            )
            .unwrap_or_else(|e| panic!("add-image {uid} {version}: {e}"));
            originals.insert(ImageTargets::new(uid, version).image, bytes);
        }
        let from_conti = tiers.join("from-conti");
        tier::handover(&conti, &from_conti, false, self.now).expect("conti handover");
        supplier::ingest::ingest(&bosch, &from_conti, self.now).expect("bosch ingest");
        let from_bosch = tiers.join("from-bosch");
        tier::handover(&bosch, &from_bosch, false, self.now).expect("bosch handover");
        supplier::ingest::ingest(acme, &from_bosch, self.now).expect("acme ingest");
    }

    pub fn build() -> Trees {
        let tmp = tempfile::tempdir().expect("tempdir");
        let now = DateTime::now();
        let keydir = tmp.path().join("keys");
        std::fs::create_dir(&keydir).unwrap();
        let key = |i: usize, name: &str| -> PathBuf {
            let p = keydir.join(format!("{name}.pem"));
            std::fs::write(&p, rsa_key(i).to_pkcs8_pem().unwrap()).unwrap();
            p
        };
        let (acme_key, tier2_key) = (key(0, "acme"), key(1, "tier2"));
        let (oem_offline, oem_online) = (key(2, "oem-offline"), key(3, "oem-online"));
        let (tuv_key, vehicles_new) = (key(4, "tuv"), key(5, "vehicles-new"));
        let t = Trees {
            tmp,
            now,
            originals: BTreeMap::new(),
        };
        let s = |p: &Path| p.to_str().expect("UTF-8 path").to_string();

        // Supplier.
        let acme = t.supplier();
        supplier::init(
            &acme,
            supplier::Init {
                name: "acme".into(),
                roles: RoleOptions {
                    default_keys: vec![acme_key],
                    ..Default::default()
                },
                max_image_size: supplier::DEFAULT_MAX_IMAGE_SIZE,
            },
            now,
        )
        .expect("supplier init");
        supplier::delegate(
            &acme,
            supplier::Delegate {
                name: TIER2.into(),
                keys: ota_repo::supplier::DelegateKeys::Private(vec![tier2_key]),
                threshold: 1,
                hardware_ids: vec!["ABS-MOD-1".into()],
                paths: Vec::new(),
                terminating: false,
                expires: None,
                replace: false,
            },
        )
        .expect("supplier delegate");
        let mut originals = BTreeMap::new();
        for (i, (uid, version, rc, hw, role, size)) in IMAGES.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size)
                .map(|j| (j.wrapping_mul(31) ^ (i * 7)) as u8)
                .collect();
            let file = t.tmp.path().join(format!("{uid}-{version}.src"));
            std::fs::write(&file, &bytes).unwrap();
            supplier::add_image(
                &acme,
                supplier::AddImage {
                    file,
                    uid: uid.into(),
                    version: version.into(),
                    release_counter: rc,
                    hardware_ids: vec![hw.into()],
                    role: role.into(),
                    allow_rollback: false,
                    encrypt: None,
                    delta_from: Vec::new(),
                },
                now,
            )
            .unwrap_or_else(|e| panic!("add-image {uid} {version}: {e}"));
            originals.insert(ImageTargets::new(uid, version).image, bytes);
        }
        t.supply_chain(&acme, &mut originals);
        supplier::publish(&acme, now, false).expect("supplier publish");

        // Regulator, with a rule that rejects brake-fw below 1.1.0.
        let tuv = t.regulator();
        regulator::init(
            &tuv,
            "tuv",
            &RoleOptions {
                default_keys: vec![tuv_key],
                ..Default::default()
            },
            now,
        )
        .expect("regulator init");
        std::fs::write(
            tuv.join(regulator::RULES),
            r#"{"vulnerable": [{"advisory": "TEST-1", "uid": "brake-fw", "versions": "<1.1.0"}], "patterns": []}"#,
        )
        .unwrap();

        // OEM: offline root and targets key apart from the online one.
        let oem_dir = t.oem();
        let roles = RoleOptions {
            default_keys: vec![oem_online],
            role_keys: ["root", "targets"]
                .into_iter()
                .map(|r| (r.to_string(), vec![oem_offline.clone()]))
                .collect(),
            ..Default::default()
        };
        oem::init(&oem_dir, &roles, None, now).expect("oem init");
        oem::supplier_add(
            &oem_dir,
            "acme",
            &acme.join("repository/1.root.json"),
            &s(&acme.join("repository")),
            &["BRAKE-*".into(), "HU-*".into(), "ABS-*".into()],
        )
        .expect("oem supplier add");
        oem::regulator_add(
            &oem_dir,
            "tuv",
            &tuv.join("repository/1.root.json"),
            &s(&tuv.join("repository")),
        )
        .expect("oem regulator add");
        for (uid, version, ..) in IMAGES {
            let submit = oem::Submit {
                supplier: "acme",
                uid,
                version,
                from: None,
                ca: None,
                content_key: None,
            };
            oem::review_submit(&oem_dir, submit, now)
                .unwrap_or_else(|e| panic!("review submit {uid} {version}: {e}"));
        }
        oem::publish(&oem_dir, now, false).expect("oem publish");

        let master = s(&oem_dir.join("repository"));
        let opts = regulator::ReviewOpts {
            master: &master,
            master_root: &oem_dir.join("repository/1.root.json"),
            scanner: None,
            ca: None,
            supplier_from: BTreeMap::new(),
            decryption_keys: None,
        };
        let outcomes = regulator::review(&tuv, opts, now).expect("regulator review");
        assert_eq!(outcomes.len(), IMAGES.len(), "every image reviewed");
        for o in &outcomes {
            assert!(o.result.is_ok(), "review: {:?}", o.result);
        }
        regulator::publish(&tuv, now, false).expect("regulator publish");

        // Vehicles and assignments, then the `vehicles` key rotated (root v2).
        oem::vehicle_add(
            &oem_dir,
            "VIN0001",
            &["BRK-1:BRAKE-A".into(), "HU-1:HU-GEN3".into()],
            &[],
        )
        .expect("vehicle add");
        oem::vehicle_add(&oem_dir, "VIN0002", &["ABS-2:ABS-MOD-1".into()], &[])
            .expect("vehicle add");
        for (vin, serial, uid, version) in [
            ("VIN0001", "BRK-1", "brake-fw", "1.1.0"),
            ("VIN0001", "HU-1", "infotainment", "5.2"),
            ("VIN0002", "ABS-2", "abs-fw", "3.0"),
        ] {
            oem::assign(
                &oem_dir,
                oem::Assign {
                    target: oem::AssignTarget::Vehicle {
                        vin: vin.into(),
                        serial: Some(serial.into()),
                    },
                    supplier: "acme".into(),
                    uid: uid.into(),
                    version: version.into(),
                    approval: ota_repo::oem::Approval::NotAsked,
                    rules: Default::default(),
                },
            )
            .unwrap_or_else(|e| panic!("assign {uid} {version} to {vin}: {e}"));
        }
        oem::publish(&oem_dir, now, false).expect("oem publish");
        ota_repo::rotation::rotate::<oem::Settings>(
            &oem_dir,
            "vehicles",
            vec![vehicles_new],
            None,
            now,
        )
        .expect("rotate the OEM's vehicles key");
        assert!(oem_dir.join("repository/2.root.json").is_file());

        Trees { originals, ..t }
    }
}

/// `signed` of a metadata file.
pub fn signed(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    v["signed"].clone()
}

fn version_of(v: &Value) -> u64 {
    v["version"].as_u64().expect("version")
}

/// One target as a tree lists it, with the stored file it points to.
#[derive(Debug, Clone)]
pub struct ListedTarget {
    pub role: String,
    pub length: u64,
    pub sha256: String,
    /// `repository/targets/SHA256.NAME`
    pub stored: PathBuf,
    /// The `signed.targets[name]` entry.
    pub entry: Value,
}

/// What a correct reader of a tree must end with, read from the files on disk (the newest
/// root, timestamp, the snapshot it names, the targets roles the snapshot names, walking the
/// delegations of each).
#[derive(Debug)]
pub struct Expected {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    /// Delegated role -> version.
    pub delegated: BTreeMap<String, u64>,
    /// Delegated role -> the role that delegates it.
    pub delegators: BTreeMap<String, String>,
    /// Snapshot entries that are not targets roles: name -> (version, length, sha256).
    pub other_meta: BTreeMap<String, (u64, u64, String)>,
    pub targets_by_name: BTreeMap<String, ListedTarget>,
    /// The current `N.targets.json`.
    pub targets_file: PathBuf,
    /// `signed` of the newest root and of the current top-level targets.
    pub root_signed: Value,
    pub targets_signed: Value,
}

impl Expected {
    pub fn read(repo: &Path) -> Expected {
        let root = (1..)
            .take_while(|v| repo.join(format!("{v}.root.json")).is_file())
            .last()
            .expect("1.root.json");
        let root_signed = signed(&repo.join(format!("{root}.root.json")));
        assert_eq!(root_signed["consistent_snapshot"], true);
        let ts = signed(&repo.join("timestamp.json"));
        let snapshot = version_of(&ts["meta"]["snapshot.json"]);
        let snap = signed(&repo.join(format!("{snapshot}.snapshot.json")));
        let meta = snap["meta"].as_object().expect("snapshot meta");
        let role_version = |role: &str| -> u64 {
            version_of(
                meta.get(&format!("{role}.json"))
                    .unwrap_or_else(|| panic!("{role}.json not in the snapshot")),
            )
        };
        let targets = role_version("targets");
        let targets_file = repo.join(format!("{targets}.targets.json"));

        let mut delegated = BTreeMap::new();
        let mut delegators = BTreeMap::new();
        let mut targets_by_name = BTreeMap::new();
        let mut roles = vec![("targets".to_string(), targets_file.clone())];
        let mut targets_signed = Value::Null;
        while let Some((role, file)) = roles.pop() {
            let t = signed(&file);
            assert_eq!(t["_type"], "targets", "{}", file.display());
            for (name, entry) in t["targets"].as_object().expect("targets").iter() {
                let sha256 = entry["hashes"]["sha256"].as_str().expect("sha256");
                targets_by_name
                    .entry(name.clone())
                    .or_insert_with(|| ListedTarget {
                        role: role.clone(),
                        length: entry["length"].as_u64().expect("length"),
                        sha256: sha256.to_string(),
                        stored: repo.join("targets").join(format!("{sha256}.{name}")),
                        entry: entry.clone(),
                    });
            }
            if let Some(ds) = t["delegations"]["roles"].as_array() {
                for d in ds.iter().rev() {
                    let name = d["name"].as_str().expect("role name").to_string();
                    let v = role_version(&name);
                    delegated.insert(name.clone(), v);
                    delegators.insert(name.clone(), role.clone());
                    roles.push((name.clone(), repo.join(format!("{v}.{name}.json"))));
                }
            }
            if role == "targets" {
                targets_signed = t;
            }
        }
        let other_meta = meta
            .iter()
            .filter(|(n, _)| {
                let role = n.trim_end_matches(".json");
                role != "targets" && !delegated.contains_key(role)
            })
            .map(|(n, m)| {
                let v = version_of(m);
                let bytes = std::fs::read(repo.join(format!("{v}.{n}"))).unwrap();
                assert_eq!(
                    m["hashes"]["sha256"].as_str(),
                    Some(sha256_hex(&bytes).as_str()),
                    "{v}.{n} on disk matches the snapshot"
                );
                (n.clone(), (v, bytes.len() as u64, sha256_hex(&bytes)))
            })
            .collect();
        Expected {
            root,
            timestamp: version_of(&ts),
            snapshot,
            targets,
            delegated,
            delegators,
            other_meta,
            targets_by_name,
            targets_file,
            root_signed,
            targets_signed,
        }
    }
}

/// A copy of the directory tree `src` at `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Change one byte of a metadata file inside `signed`, keeping it valid JSON: the first digit
/// of the `expires` year becomes another digit. Returns the original bytes.
pub fn tamper_metadata(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let key = b"\"expires\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .unwrap_or_else(|| panic!("no expires in {}", path.display()));
    let digit = at
        + key.len()
        + bytes[at + key.len()..]
            .iter()
            .position(u8::is_ascii_digit)
            .unwrap();
    let mut t = bytes.clone();
    t[digit] = if t[digit] == b'3' { b'4' } else { b'3' };
    std::fs::write(path, t).unwrap();
    bytes
}

/// Flip one bit of the middle byte of a (non-empty) file. Returns the original bytes.
pub fn tamper_file(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    let mut t = bytes.clone();
    t[bytes.len() / 2] ^= 1;
    std::fs::write(path, t).unwrap();
    bytes
}
