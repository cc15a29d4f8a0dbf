//! Interoperability with tough, an independent TUF implementation, in both directions:
//!
//! 1. `tough_reads_our_supplier_tree`: a supplier tree written by `ota-repo` (top-level and
//!    tier-2 delegated targets, consistent snapshots, then a `targets` and a `root` key rotation)
//!    loads and verifies in tough, and every target tough lists downloads with the exact bytes
//!    we stored. After the rotations tough starts from the ORIGINAL `1.root.json` and must walk
//!    the root chain.
//! 2. `tough_reads_our_oem_and_regulator_trees`: the OEM tree (standard `roles`, the online
//!    roles' keys in root's `ota_roles` extension, supplier pins and regulators in the
//!    `suppliers` and `regulators` extension fields of top-level targets, `review.json` and
//!    `vehicles.json` in the snapshot, a root rotation) loads in tough from its `1.root.json`
//!    with every extension field intact, and every regulator attestation downloads with the
//!    exact bytes stored; a tampered OEM targets file or attestation is refused.
//! 3. `our_verifier_accepts_tough_signed_repo`: a repository signed by tough's
//!    `RepositoryEditor` (with a tough-made delegation) passes `ota_metadata::TrustedSet`, and a
//!    tampered targets file does not.

mod support;

use ota_metadata::documents::ImageTargets;
use ota_metadata::roles::{RoleKeys, Root, TOP_LEVEL_ROLES};
use ota_metadata::{sign_document, DateTime, Envelope, MetadataLimits, SigningKey, TrustedSet};
use ota_repo::supplier::{self, Settings};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::editor::signed::PathExists;
use tough::editor::RepositoryEditor;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{PathPattern, PathSet};
use tough::{IntoVec, Repository, RepositoryLoader, TargetName};
use url::Url;

const TIER2: &str = "tier2-brakes";

/// Generate 2048-bit RSA keys in parallel and write them as PKCS#8 PEM files `<name>.pem`.
fn make_keys(dir: &Path, names: &[&str]) -> BTreeMap<String, (PathBuf, SigningKey)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                s.spawn(move || {
                    let key = SigningKey::generate(2048).expect("generate RSA key");
                    let path = dir.join(format!("{name}.pem"));
                    std::fs::write(&path, key.to_pkcs8_pem().expect("PEM")).expect("write key");
                    (name.to_string(), (path, key))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("key thread"))
            .collect()
    })
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn dir_url(p: &Path) -> Url {
    Url::from_directory_path(p).expect("absolute directory path")
}

/// Load a tree with tough, trusting `root` (the bytes of some `N.root.json`).
async fn tough_load(root: &[u8], repo: &Path) -> Repository {
    RepositoryLoader::new(&root, dir_url(repo), dir_url(&repo.join("targets")))
        .load()
        .await
        .unwrap_or_else(|e| panic!("tough refused the tree in {}: {e}", repo.display()))
}

/// Load a tree with tough, trusting `root`; tough's error if it refuses.
async fn tough_try_load(root: &[u8], repo: &Path) -> Result<Repository, tough::error::Error> {
    RepositoryLoader::new(&root, dir_url(repo), dir_url(&repo.join("targets")))
        .load()
        .await
}

async fn tough_read(repo: &Repository, name: &TargetName) -> Vec<u8> {
    repo.read_target(name)
        .await
        .unwrap_or_else(|e| panic!("tough could not fetch {}: {e}", name.raw()))
        .unwrap_or_else(|| panic!("tough does not list {}", name.raw()))
        .into_vec()
        .await
        .unwrap_or_else(|e| panic!("tough rejected the content of {}: {e}", name.raw()))
}

/// Every target tough enumerates (top-level and delegated) must be exactly what the supplier's
/// settings say was published, and must download with the bytes we stored.
async fn check_all_targets(
    tough_repo: &Repository,
    work: &Path,
    originals: &BTreeMap<String, Vec<u8>>,
) {
    let settings = Settings::load(work).expect("supplier settings");
    let targets_dir = work.join("repository").join("targets");

    // name -> (expected bytes, signing role), from our own records.
    let mut expected: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    for img in &settings.images {
        let names = ImageTargets::new(&img.uid, &img.version);
        for (name, info) in [
            (&names.image, &img.image),
            (&names.manifest, &img.manifest),
            (&names.compact, &img.compact),
        ] {
            let stored = std::fs::read(targets_dir.join(format!("{}.{name}", info.sha256)))
                .unwrap_or_else(|e| panic!("stored target {name}: {e}"));
            assert_eq!(stored.len() as u64, info.length, "{name}: stored length");
            assert_eq!(sha256_hex(&stored), info.sha256, "{name}: stored sha256");
            if name == &names.image {
                assert_eq!(
                    &stored, &originals[name],
                    "{name}: stored image != original"
                );
            }
            expected.insert(name.clone(), (stored, img.role.clone()));
        }
    }
    assert!(
        expected.values().any(|(_, r)| r == TIER2),
        "the test tree should have delegated targets"
    );

    // What tough lists, in all roles.
    let listed: BTreeSet<String> = tough_repo
        .all_targets()
        .map(|(n, _)| n.raw().to_string())
        .collect();
    let want: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(listed, want, "targets tough enumerates");

    // The split between the top-level role and the delegation.
    let top: BTreeSet<String> = tough_repo
        .targets()
        .signed
        .targets
        .keys()
        .map(|n| n.raw().to_string())
        .collect();
    let delegated: BTreeSet<String> = tough_repo
        .delegated_role(TIER2)
        .expect("tough knows the tier-2 delegation")
        .targets
        .as_ref()
        .expect("tough loaded the tier-2 role's metadata")
        .signed
        .targets
        .keys()
        .map(|n| n.raw().to_string())
        .collect();
    for (name, (_, role)) in &expected {
        if role == "targets" {
            assert!(top.contains(name), "{name} should be in top-level targets");
        } else {
            assert_eq!(role, TIER2);
            assert!(delegated.contains(name), "{name} should be in {TIER2}");
        }
    }

    // Download every one through tough (it checks length and sha256) and compare.
    for (name, target) in tough_repo.all_targets() {
        let (want_bytes, _) = &expected[name.raw()];
        assert_eq!(
            target.length,
            want_bytes.len() as u64,
            "{}: length",
            name.raw()
        );
        let got = tough_read(tough_repo, name).await;
        assert_eq!(&got, want_bytes, "{}: bytes tough read", name.raw());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tough_reads_our_supplier_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let keydir = tmp.path().join("keys");
    std::fs::create_dir(&keydir).unwrap();
    let keys = make_keys(
        &keydir,
        &[
            "root",
            "targets",
            "snapshot",
            "timestamp",
            "tier2",
            "targets-new",
            "root-new",
        ],
    );
    let path = |n: &str| keys[n].0.clone();
    let work = tmp.path().join("acme");
    let repo = work.join("repository");
    let now = DateTime::now();

    supplier::init(
        &work,
        supplier::Init {
            name: "acme".into(),
            roles: supplier::RoleOptions {
                role_keys: ["root", "targets", "snapshot", "timestamp"]
                    .iter()
                    .map(|r| (r.to_string(), vec![path(r)]))
                    .collect(),
                ..Default::default()
            },
            max_image_size: supplier::DEFAULT_MAX_IMAGE_SIZE,
        },
        now,
    )
    .expect("supplier init");
    supplier::delegate(
        &work,
        supplier::Delegate {
            name: TIER2.into(),
            keys: ota_repo::supplier::DelegateKeys::Private(vec![path("tier2")]),
            threshold: 1,
            hardware_ids: vec!["ECU.BRAKE-01".into(), "ECU.BRAKE-02".into()],
            paths: Vec::new(),
            terminating: false,
            expires: None,
            replace: false,
        },
    )
    .expect("supplier delegate");

    // (uid, version, release counter, hardware id, role, size). Sizes include the smallest
    // (one byte: an image is never empty), a non-round size and one larger than tough's and
    // our read buffers.
    let images: [(&str, &str, u64, &str, &str, usize); 5] = [
        ("gateway", "1.0.0", 1, "ECU.GW-01", "targets", 1),
        ("gateway", "1.1.0+build.7", 2, "ECU.GW-01", "targets", 2),
        (
            "infotainment",
            "2.3.1",
            5,
            "ECU.HU-01",
            "targets",
            1_234_567,
        ),
        ("brake-ctl", "4.0.0", 9, "ECU.BRAKE-01", TIER2, 4097),
        ("brake-ctl-rear", "1.0", 1, "ECU.BRAKE-02", TIER2, 65_536),
    ];
    let srcdir = tmp.path().join("src");
    std::fs::create_dir(&srcdir).unwrap();
    let mut originals = BTreeMap::new();
    for (uid, version, rc, hw, role, size) in images {
        let bytes = random_bytes(size);
        let file = srcdir.join(format!("{uid}-{version}.img"));
        std::fs::write(&file, &bytes).unwrap();
        supplier::add_image(
            &work,
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
    supplier::publish(&work, now, false).expect("supplier publish");

    let root1 = std::fs::read(repo.join("1.root.json")).unwrap();
    let t = tough_load(&root1, &repo).await;
    assert_eq!(t.root().signed.version.get(), 1);
    assert!(t.root().signed.consistent_snapshot);
    check_all_targets(&t, &work, &originals).await;

    // Rotate the targets key (root v2), then the root key (root v3).
    ota_repo::rotation::rotate::<supplier::Settings>(
        &work,
        "targets",
        vec![path("targets-new")],
        None,
        now,
    )
    .expect("rotate targets key");
    ota_repo::rotation::rotate::<supplier::Settings>(
        &work,
        "root",
        vec![path("root-new")],
        None,
        now,
    )
    .expect("rotate root key");
    for v in 1..=3 {
        assert!(
            repo.join(format!("{v}.root.json")).is_file(),
            "{v}.root.json"
        );
    }

    // tough, still trusting only the ORIGINAL 1.root.json, walks 1 -> 2 -> 3.
    let t = tough_load(&root1, &repo).await;
    let root = &t.root().signed;
    assert_eq!(root.version.get(), 3, "tough should end on root v3");
    let ids = |role: tough::schema::RoleType| -> BTreeSet<String> {
        root.roles[&role]
            .keyids
            .iter()
            .map(|k| hex::encode(k.as_ref()))
            .collect()
    };
    assert_eq!(
        ids(tough::schema::RoleType::Targets),
        BTreeSet::from([keys["targets-new"].1.key_id().0.clone()]),
        "root v3 lists the new targets key"
    );
    assert_eq!(
        ids(tough::schema::RoleType::Root),
        BTreeSet::from([keys["root-new"].1.key_id().0.clone()]),
        "root v3 lists the new root key"
    );
    check_all_targets(&t, &work, &originals).await;

    // Starting from the intermediate root (v2) reaches the same end.
    let root2 = std::fs::read(repo.join("2.root.json")).unwrap();
    assert_eq!(
        tough_load(&root2, &repo).await.root().signed.version.get(),
        3
    );
}

#[tokio::test(flavor = "current_thread")]
async fn tough_reads_our_oem_and_regulator_trees() {
    use support::trees::{copy_dir, tamper_file, tamper_metadata, Expected, Trees, IMAGES};
    let trees = Trees::build();

    // The OEM tree, from its first root.
    let repo = trees.oem().join("repository");
    let exp = Expected::read(&repo);
    let root1 = std::fs::read(repo.join("1.root.json")).unwrap();
    let t = tough_load(&root1, &repo).await;
    assert_eq!(t.root().signed.version.get(), exp.root, "oem: root version");
    assert_eq!(exp.root, 2, "the OEM's vehicles key was rotated once");
    assert_eq!(t.timestamp().signed.version.get(), exp.timestamp);
    assert_eq!(t.snapshot().signed.version.get(), exp.snapshot);
    assert_eq!(t.targets().signed.version.get(), exp.targets);
    // Unknown fields survive tough's parsing, equal to what we signed.
    assert_eq!(
        t.root().signed._extra.get("ota_roles"),
        Some(&exp.root_signed["ota_roles"]),
        "oem: root's ota_roles in tough"
    );
    let roles = &exp.root_signed["ota_roles"];
    assert!(roles["review"]["keyids"].is_array() && roles["vehicles"]["keyids"].is_array());
    let extra = &t.targets().signed._extra;
    for field in ["suppliers", "regulators"] {
        assert_eq!(
            extra.get(field),
            Some(&exp.targets_signed[field]),
            "oem: targets' {field} in tough"
        );
    }
    assert_eq!(
        extra.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"regulators".to_string(), &"suppliers".to_string()])
    );
    let acme_url = trees.supplier().join("repository");
    assert_eq!(
        extra["suppliers"]["acme"]["url"].as_str(),
        acme_url.to_str(),
        "oem: the supplier pin as tough parsed it"
    );
    assert!(
        extra["regulators"]["regulators"]["tuv"]["root"]["keyids"].is_array(),
        "oem: the regulator tuv as tough parsed it: {}",
        extra["regulators"]
    );
    assert_eq!(t.all_targets().count(), 0, "oem: no targets");
    // review.json and vehicles.json, listed by the snapshot tough verified.
    let meta = &t.snapshot().signed.meta;
    assert_eq!(exp.other_meta.len(), 2);
    for (name, (version, length, sha256)) in &exp.other_meta {
        let m = meta
            .get(name)
            .unwrap_or_else(|| panic!("oem: tough's snapshot has no {name}"));
        assert_eq!(m.version.get(), *version, "oem: {name} version");
        assert_eq!(m.length, Some(*length), "oem: {name} length");
        let h = m.hashes.as_ref().expect("hashes");
        assert_eq!(
            hex::encode(h.sha256.as_ref()),
            *sha256,
            "oem: {name} sha256"
        );
    }

    // Negative: the targets file holding the pins, one byte changed inside `signed`.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("oem");
    copy_dir(&repo, &copy);
    tamper_metadata(&copy.join(exp.targets_file.file_name().unwrap()));
    let Err(err) = tough_try_load(&root1, &copy).await else {
        panic!("tough accepted a tampered OEM targets file");
    };
    eprintln!("tough on a tampered OEM targets file: {err}");
    assert!(
        err.to_string().to_lowercase().contains("hash mismatch"),
        "expected a hash mismatch, got: {err}"
    );

    // The regulator tree: every attestation, exactly the bytes stored.
    let repo = trees.regulator().join("repository");
    let exp = Expected::read(&repo);
    let root1 = std::fs::read(repo.join("1.root.json")).unwrap();
    let t = tough_load(&root1, &repo).await;
    assert_eq!(t.root().signed.version.get(), exp.root);
    assert_eq!(t.timestamp().signed.version.get(), exp.timestamp);
    assert_eq!(t.snapshot().signed.version.get(), exp.snapshot);
    assert_eq!(t.targets().signed.version.get(), exp.targets);
    let listed: BTreeSet<String> = t.all_targets().map(|(n, _)| n.raw().to_string()).collect();
    assert_eq!(
        listed,
        exp.targets_by_name.keys().cloned().collect(),
        "regulator: targets tough enumerates"
    );
    let settings = ota_repo::regulator::Settings::load(&trees.regulator()).unwrap();
    assert_eq!(settings.attestations.len(), IMAGES.len());
    for (release, record) in &settings.attestations {
        let name = format!("{release}.attestation.json");
        let entry = &exp.targets_by_name[&name];
        assert_eq!(entry.sha256, record.file.sha256, "{name}: recorded sha256");
        let target = TargetName::new(&name).unwrap();
        let got = tough_read(&t, &target).await;
        let stored = std::fs::read(&entry.stored).unwrap();
        assert_eq!(got, stored, "{name}: bytes tough read");
        assert_eq!(sha256_hex(&got), record.file.sha256, "{name}: sha256");
        let custom = &t
            .all_targets()
            .find(|(n, _)| n.raw() == name)
            .unwrap()
            .1
            .custom;
        assert_eq!(
            serde_json::to_value(custom).unwrap(),
            entry.entry["custom"],
            "{name}: custom fields in tough"
        );
    }

    // Negative: one attestation's stored bytes changed.
    let copy = work.path().join("tuv");
    copy_dir(&repo, &copy);
    let (name, entry) = exp.targets_by_name.iter().next().unwrap();
    tamper_file(&copy.join("targets").join(entry.stored.file_name().unwrap()));
    let t = tough_load(&root1, &copy).await;
    let target = TargetName::new(name).unwrap();
    let read = match t.read_target(&target).await {
        Ok(Some(stream)) => stream.into_vec().await.map(|_| ()),
        Ok(None) => panic!("tough does not list {name}"),
        Err(e) => Err(e),
    };
    let err = read.expect_err("tough accepted a tampered attestation");
    eprintln!("tough on a tampered attestation: {err}");
    assert!(
        err.to_string().to_lowercase().contains("hash mismatch"),
        "expected a hash mismatch, got: {err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn our_verifier_accepts_tough_signed_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let keydir = tmp.path().join("keys");
    std::fs::create_dir(&keydir).unwrap();
    let keys = make_keys(&keydir, &["root", "online", "tier2"]);
    let (root_key, online_key) = (&keys["root"].1, &keys["online"].1);
    let now = DateTime::now();

    // tough cannot create a root, so we build and sign it with our own types: one root key,
    // one online key for targets, snapshot and timestamp, consistent snapshots.
    let mut role_keys = BTreeMap::new();
    for role in TOP_LEVEL_ROLES {
        let k = if role == "root" { root_key } else { online_key };
        role_keys.insert(
            role.to_string(),
            RoleKeys {
                keyids: vec![k.key_id().clone()],
                threshold: 1,
            },
        );
    }
    let root = Root {
        type_: Root::TYPE.into(),
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: 1,
        expires: now.plus_seconds(365 * 86_400),
        keys: [root_key, online_key]
            .iter()
            .map(|k| (k.key_id().clone(), k.public().clone()))
            .collect(),
        roles: role_keys,
        extra_roles: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    let root_path = tmp.path().join("root.json");
    std::fs::write(&root_path, sign_document(&root, &[root_key]).unwrap()).unwrap();

    // Targets to publish: top-level ones and one for the delegated role.
    let input = tmp.path().join("input");
    std::fs::create_dir(&input).unwrap();
    let mut contents = BTreeMap::new();
    for (name, size) in [
        ("firmware-a.bin", 1usize),
        ("firmware-b.bin", 70_000),
        ("config.json", 123),
        ("brakes-1.bin", 4097),
    ] {
        let bytes = random_bytes(size);
        std::fs::write(input.join(name), &bytes).unwrap();
        contents.insert(name.to_string(), bytes);
    }

    let key_source = |p: &Path| -> Vec<Box<dyn KeySource>> {
        vec![Box::new(LocalKeySource {
            path: p.to_path_buf(),
        })]
    };
    let online = key_source(&keys["online"].0);
    let tier2 = key_source(&keys["tier2"].0);
    let expires = |days: i64| now.plus_seconds(days * 86_400).to_string();
    let one = NonZeroU64::new(1).unwrap();

    let mut editor = RepositoryEditor::new(&root_path)
        .await
        .expect("tough editor");
    editor
        .targets_version(one)
        .unwrap()
        .targets_expires(expires(30).parse().unwrap())
        .unwrap()
        .snapshot_version(one)
        .snapshot_expires(expires(7).parse().unwrap())
        .timestamp_version(one)
        .timestamp_expires(expires(1).parse().unwrap());
    for name in ["firmware-a.bin", "firmware-b.bin", "config.json"] {
        editor.add_target_path(input.join(name)).await.unwrap();
    }
    editor
        .delegate_role(
            "tier2",
            &tier2,
            PathSet::Paths(vec![PathPattern::new("brakes-*").unwrap()]),
            false,
            one,
            expires(30).parse().unwrap(),
            one,
        )
        .await
        .expect("tough delegate_role");
    editor
        .sign_targets_editor(&online)
        .await
        .unwrap()
        .change_delegated_targets("tier2")
        .unwrap()
        .add_target_path(input.join("brakes-1.bin"))
        .await
        .unwrap()
        // The editor of a delegated role starts without version and expiry.
        .targets_version(one)
        .unwrap()
        .targets_expires(expires(30).parse().unwrap())
        .unwrap();
    editor.sign_targets_editor(&tier2).await.unwrap();
    editor
        .change_delegated_targets("targets")
        .unwrap()
        .targets_version(one)
        .unwrap()
        .targets_expires(expires(30).parse().unwrap())
        .unwrap();
    let signed = editor.sign(&online).await.expect("tough sign");

    let meta = tmp.path().join("metadata");
    let targets_out = meta.join("targets");
    signed.write(&meta).await.expect("tough write metadata");
    signed
        .copy_targets(&input, &targets_out, PathExists::Fail)
        .await
        .expect("tough copy targets (top-level and delegated)");

    let read = |name: &str| {
        std::fs::read(meta.join(name)).unwrap_or_else(|e| panic!("tough wrote no {name}: {e}"))
    };
    // tough's consistent-snapshot names are the ones our tree uses.
    let root_bytes = read("1.root.json");
    let ts_bytes = read("timestamp.json");
    let snap_bytes = read("1.snapshot.json");
    let targets_bytes = read("1.targets.json");
    let tier2_bytes = read("1.tier2.json");

    let load = |targets: &[u8]| -> ota_metadata::Result<TrustedSet> {
        let mut ts = TrustedSet::new(&root_bytes, now, MetadataLimits::default())?;
        ts.update_timestamp(&ts_bytes)?;
        ts.update_snapshot(&snap_bytes, false)?;
        ts.update_targets(targets)?;
        Ok(ts)
    };
    let mut ts = load(&targets_bytes).expect("our verifier accepts tough's repository");
    ts.update_delegated_targets(&tier2_bytes, "tier2", "targets")
        .expect("our verifier accepts tough's delegated role");

    // Every target, in the role that lists it, matches the content tough stored.
    let top = &ts.targets("targets").unwrap().signed;
    // tough writes its own key object for the delegated key: the same PEM without the trailing
    // newline, hence another key id than ours for the same key. We verify against the id the
    // delegating role lists, as REFERENCES.md says, so this must not matter.
    let d = top.delegations.as_ref().expect("tough's delegations");
    let ours = &keys["tier2"].1;
    let listed = &d.role("tier2").expect("tier2 delegated").keyids;
    assert_eq!(listed.len(), 1);
    assert_ne!(
        &listed[0],
        ours.key_id(),
        "tough and we now agree on key ids"
    );
    assert_eq!(
        d.keys[&listed[0]].keyval.public.trim_end(),
        ours.public().keyval.public.trim_end(),
        "same key material"
    );
    let del = &ts.targets("tier2").unwrap().signed;
    assert_eq!(
        top.targets.keys().collect::<Vec<_>>(),
        ["config.json", "firmware-a.bin", "firmware-b.bin"]
    );
    assert_eq!(del.targets.keys().collect::<Vec<_>>(), ["brakes-1.bin"]);
    assert!(top
        .delegations
        .as_ref()
        .and_then(|d| d.role("tier2"))
        .is_some_and(|r| r.matches("brakes-1.bin") && !r.matches("firmware-a.bin")));
    for (name, bytes) in &contents {
        let entry = top
            .targets
            .get(name)
            .or_else(|| del.targets.get(name))
            .unwrap_or_else(|| panic!("{name} not listed"));
        let sha = sha256_hex(bytes);
        assert_eq!(entry.length, bytes.len() as u64, "{name}: length");
        assert_eq!(entry.hashes["sha256"], sha, "{name}: sha256");
        let stored = std::fs::read(targets_out.join(format!("{sha}.{name}")))
            .unwrap_or_else(|e| panic!("tough stored no {sha}.{name}: {e}"));
        assert_eq!(&stored, bytes, "{name}: stored content");
    }

    // Negative: one byte changed inside "signed" of tough's targets.json.
    let needle = b"firmware-a.bin";
    let at = targets_bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("target name in targets.json")
        + "firmware-".len();
    let mut tampered = targets_bytes.clone();
    tampered[at] = b'z';
    match load(&tampered) {
        Err(ota_metadata::Error::Hash { .. }) => {}
        other => panic!("tampered targets.json: expected a hash mismatch, got {other:?}"),
    }
    // The signature check on its own (not only the snapshot's hash) catches it too.
    let env = Envelope::parse("targets", &tampered, u64::MAX).expect("still valid JSON");
    let role = root.role("targets").unwrap();
    let err = env
        .verify("targets", &role.keyids, role.threshold, &root.keys)
        .expect_err("signature over tampered targets verified");
    assert!(
        matches!(err, ota_metadata::Error::Threshold { .. }),
        "unexpected error {err:?}"
    );
    let env = Envelope::parse("targets", &targets_bytes, u64::MAX).unwrap();
    env.verify("targets", &role.keyids, role.threshold, &root.keys)
        .expect("untampered targets verify");
}

/// tough reads a supplier tree whose tier-2 signed its role for itself and delegates to a
/// tier-3 that did too (both handed over and ingested): it loads every role, nested ones
/// included, and enumerates exactly the targets each lists.
#[tokio::test(flavor = "current_thread")]
async fn tough_reads_a_tree_with_tier_2_and_tier_3_roles() {
    use support::trees::{Expected, Trees, TIER2_SELF, TIER3};
    let trees = Trees::build();
    let repo = trees.supplier().join("repository");
    let exp = Expected::read(&repo);
    assert_eq!(exp.delegators[TIER3], TIER2_SELF);
    let root1 = std::fs::read(repo.join("1.root.json")).unwrap();
    let t = tough_load(&root1, &repo).await;
    let listed: BTreeSet<String> = t.all_targets().map(|(n, _)| n.raw().to_string()).collect();
    assert_eq!(
        listed,
        exp.targets_by_name.keys().cloned().collect(),
        "supplier: targets tough enumerates"
    );
    let nested = t
        .delegated_role(TIER3)
        .expect("tough knows the tier-3 role");
    assert_eq!(
        nested
            .targets
            .as_ref()
            .expect("the tier-3 role's metadata")
            .signed
            .targets
            .len(),
        exp.targets_by_name
            .values()
            .filter(|x| x.role == TIER3)
            .count()
    );
}
