//! python-tuf (the reference TUF implementation, `pip install tuf`) as an independent reader of
//! the three kinds of trees `ota-repo` publishes: supplier, OEM and regulator.
//!
//! Each tree is built fresh ([`support::trees`]), served by the logging HTTP server on
//! 127.0.0.1 ([`support::http`]), and read by `conformance/python/read_tree.py`, which runs
//! python-tuf's ngclient `Updater` from the tree's `1.root.json`: refresh, every delegation,
//! `get_targetinfo` and `download_target` for every target. Its JSON summary is compared with
//! the files on disk: versions of every role, the targets (names, roles, lengths, sha256 of
//! the stored files and of the supplier's original images), the extension fields python-tuf
//! keeps (`ota_roles`, `suppliers`, `regulators`), the OEM's `review.json`/`vehicles.json`
//! against the snapshot, and the consistent-snapshot paths python-tuf requested.
//! `python_tuf_refuses_tampered_trees` flips one byte per case (timestamp, a newer root, the
//! current targets, a delegated role, a target, the OEM's review.json) and expects
//! python-tuf's own error (a bad signature, a hash mismatch) at the right step.
//!
//! python-tuf is a test-setup peer, never a Rust dependency. When it is not importable the
//! tests print a notice and pass, except under `CI`, where they fail (`.ci/run` installs it).

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::http::Server;
use support::trees::{
    copy_dir, sha256_hex, tamper_file, tamper_metadata, Expected, Trees, IMAGES, TIER2, TIER3,
    TIER_IMAGES,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/read_tree.py");

use ota_testkit::python3 as python;

/// Whether python-tuf (and its RSA backend, pyca/cryptography) can be imported. Missing: a
/// notice and `false`, except under CI, where it is a failure.
fn python_tuf_available() -> bool {
    let why = match python().arg(SCRIPT).arg("--check").output() {
        Ok(o) if o.status.success() => {
            eprintln!("{}", String::from_utf8_lossy(&o.stdout).trim());
            return true;
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("python3: {e}"),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "python-tuf is required under CI (`.ci/run` installs it with pip): {why}"
    );
    eprintln!("NOTICE: skipping the python-tuf test: {why} (`pip install tuf` to run it)");
    false
}

struct Run {
    ok: bool,
    out: Value,
    /// The request paths the HTTP server saw.
    requests: Vec<String>,
}

/// Serve `repo` over HTTP and read it with python-tuf, trusting its `1.root.json`.
fn read_tree(repo: &Path) -> Run {
    let server = Server::start(repo.to_path_buf());
    let out = python()
        .arg(SCRIPT)
        .arg(repo)
        .arg(repo.join("1.root.json"))
        .arg("--url")
        .arg(server.url(""))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let parsed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "read_tree.py ({}) printed no JSON ({e}):\n{stdout}\n{stderr}",
            out.status
        )
    });
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "read_tree.py exited {}:\n{stdout}\n{stderr}",
        out.status
    );
    Run {
        ok: out.status.success(),
        out: parsed,
        requests: server.take(),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Fields of a `signed` object that the TUF specification does not define for its type.
fn extension_fields(signed: &Value, standard: &[&str]) -> BTreeSet<String> {
    signed
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !standard.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// python-tuf read `repo` successfully, and everything it reports agrees with the files on
/// disk. Returns the downloads (name -> sha256) and python-tuf's summary.
fn check_read(what: &str, repo: &Path) -> (BTreeMap<String, String>, Value) {
    let exp = Expected::read(repo);
    let run = read_tree(repo);
    let j = &run.out;
    assert!(
        run.ok,
        "python-tuf refused the {what} tree {}:\n{j:#}",
        repo.display()
    );
    eprintln!("python-tuf read the {what} tree: {j}");

    // Versions of what python-tuf trusts at the end.
    assert_eq!(u(&j["root"]["version"]), exp.root, "{what}: root version");
    assert_eq!(
        u(&j["timestamp"]["version"]),
        exp.timestamp,
        "{what}: timestamp version"
    );
    assert_eq!(
        u(&j["snapshot"]["version"]),
        exp.snapshot,
        "{what}: snapshot version"
    );
    assert_eq!(
        u(&j["targets"]["version"]),
        exp.targets,
        "{what}: targets version"
    );
    let delegated: BTreeMap<String, (u64, String)> = j["delegated"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(r, d)| {
            let by = d["delegator"].as_str().unwrap().to_string();
            (r.clone(), (u(&d["version"]), by))
        })
        .collect();
    let want: BTreeMap<String, (u64, String)> = exp
        .delegated
        .iter()
        .map(|(r, v)| (r.clone(), (*v, exp.delegators[r].clone())))
        .collect();
    assert_eq!(delegated, want, "{what}: delegated roles python-tuf loaded");
    let meta: BTreeSet<String> = ["targets".to_string()]
        .into_iter()
        .chain(exp.delegated.keys().cloned())
        .map(|r| format!("{r}.json"))
        .chain(exp.other_meta.keys().cloned())
        .collect();
    assert_eq!(
        strings(&j["snapshot"]["meta"]),
        meta,
        "{what}: snapshot meta"
    );

    // Unknown fields python-tuf kept.
    assert_eq!(
        strings(&j["root"]["extension_fields"]),
        extension_fields(
            &exp.root_signed,
            &[
                "_type",
                "spec_version",
                "consistent_snapshot",
                "version",
                "expires",
                "keys",
                "roles"
            ]
        ),
        "{what}: root extension fields"
    );
    assert_eq!(
        strings(&j["targets"]["extension_fields"]),
        extension_fields(
            &exp.targets_signed,
            &[
                "_type",
                "spec_version",
                "version",
                "expires",
                "targets",
                "delegations"
            ]
        ),
        "{what}: targets extension fields"
    );

    // Every target listed in any role was found by python-tuf's lookup and downloaded, with
    // the length and sha256 of the file stored in the tree.
    let mut downloaded = BTreeMap::new();
    for d in j["downloaded"].as_array().unwrap() {
        let name = d["name"].as_str().unwrap().to_string();
        let listed = exp
            .targets_by_name
            .get(&name)
            .unwrap_or_else(|| panic!("{what}: python-tuf downloaded {name}, which is not listed"));
        assert_eq!(d["role"], listed.role.as_str(), "{what}: {name}: role");
        let stored = std::fs::read(&listed.stored)
            .unwrap_or_else(|e| panic!("{}: {e}", listed.stored.display()));
        let sha = d["sha256"].as_str().unwrap().to_string();
        assert_eq!(sha, sha256_hex(&stored), "{what}: {name}: sha256");
        assert_eq!(sha, listed.sha256, "{what}: {name}: listed sha256");
        assert_eq!(
            u(&d["length"]),
            stored.len() as u64,
            "{what}: {name}: length"
        );
        assert!(
            downloaded.insert(name.clone(), sha).is_none(),
            "{what}: {name} downloaded twice"
        );
    }
    assert_eq!(
        downloaded.keys().collect::<BTreeSet<_>>(),
        exp.targets_by_name.keys().collect::<BTreeSet<_>>(),
        "{what}: targets python-tuf downloaded"
    );

    // Snapshot entries that are not targets roles, against the snapshot python-tuf verified.
    let others: BTreeMap<String, (u64, u64, String)> = j["snapshot_files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, f)| {
            let sha = f["sha256"].as_str().unwrap().to_string();
            (n.clone(), (u(&f["version"]), u(&f["length"]), sha))
        })
        .collect();
    assert_eq!(
        others, exp.other_meta,
        "{what}: files listed by the snapshot"
    );

    // Fetched over HTTP, by consistent-snapshot names only.
    let requested: BTreeSet<&str> = run.requests.iter().map(String::as_str).collect();
    let mut must = vec![
        "/timestamp.json".to_string(),
        format!("/{}.root.json", exp.root + 1),
        format!("/{}.snapshot.json", exp.snapshot),
        format!("/{}.targets.json", exp.targets),
    ];
    must.extend((2..=exp.root).map(|v| format!("/{v}.root.json")));
    must.extend(exp.delegated.iter().map(|(r, v)| format!("/{v}.{r}.json")));
    must.extend(
        exp.targets_by_name
            .iter()
            .map(|(n, t)| format!("/targets/{}.{n}", t.sha256)),
    );
    for m in &must {
        assert!(
            requested.contains(m.as_str()),
            "{what}: python-tuf never requested {m}; it requested {requested:?}"
        );
    }
    for never in ["/root.json", "/snapshot.json", "/targets.json"] {
        assert!(
            !requested.contains(never),
            "{what}: python-tuf requested {never} (not a consistent-snapshot name)"
        );
    }
    (downloaded, j.clone())
}

#[test]
fn python_tuf_reads_our_supplier_tree() {
    if !python_tuf_available() {
        return;
    }
    let trees = Trees::build();
    let repo = trees.supplier().join("repository");
    let (downloaded, _) = check_read("supplier", &repo);
    // Three targets per image (image, JSON manifest, compact manifest), some delegated, some
    // signed by a tier-2 and a tier-3 for themselves and handed over.
    assert_eq!(downloaded.len(), 3 * (IMAGES.len() + TIER_IMAGES.len()));
    let exp = Expected::read(&repo);
    assert!(exp.delegated.contains_key(TIER2));
    assert_eq!(
        exp.delegators[TIER3],
        support::trees::TIER2_SELF,
        "the tier-3 is nested"
    );
    assert!(exp.targets_by_name.values().any(|t| t.role == TIER3));
    assert!(exp.targets_by_name.values().any(|t| t.role == TIER2));
    // The images python-tuf got are the supplier's original files.
    for (name, bytes) in &trees.originals {
        assert_eq!(
            downloaded.get(name),
            Some(&sha256_hex(bytes)),
            "supplier: {name} is not the original image"
        );
    }
}

#[test]
fn python_tuf_reads_our_oem_tree() {
    if !python_tuf_available() {
        return;
    }
    let trees = Trees::build();
    let repo = trees.oem().join("repository");
    let (downloaded, j) = check_read("oem", &repo);
    // Standard roles; the extra roles' keys in root's extension, the pins in targets'.
    assert_eq!(
        u(&j["root"]["version"]),
        2,
        "root rotated once (vehicles key)"
    );
    assert_eq!(
        strings(&j["root"]["extension_fields"]),
        ["ota_roles".into()].into()
    );
    assert_eq!(
        strings(&j["targets"]["extension_fields"]),
        ["regulators".to_string(), "suppliers".to_string()].into()
    );
    assert!(
        downloaded.is_empty(),
        "the OEM's targets role lists no targets"
    );
    let types: BTreeMap<&str, &str> = j["snapshot_files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, f)| (n.as_str(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        BTreeMap::from([("review.json", "review"), ("vehicles.json", "vehicles")])
    );
}

#[test]
fn python_tuf_reads_our_regulator_tree() {
    if !python_tuf_available() {
        return;
    }
    let trees = Trees::build();
    let repo = trees.regulator().join("repository");
    let (downloaded, _) = check_read("regulator", &repo);
    // One attestation per release reviewed, each the file the regulator recorded.
    let settings = ota_repo::regulator::Settings::load(&trees.regulator()).unwrap();
    assert_eq!(settings.attestations.len(), IMAGES.len());
    let recorded: BTreeSet<&String> = settings
        .attestations
        .values()
        .map(|a| &a.file.sha256)
        .collect();
    assert_eq!(downloaded.values().collect::<BTreeSet<_>>(), recorded);
    for manifest_sha in settings.attestations.keys() {
        let name = format!("{manifest_sha}.attestation.json");
        assert!(
            downloaded.contains_key(&name),
            "regulator: {name} not downloaded"
        );
    }
}

#[test]
fn python_tuf_refuses_tampered_trees() {
    if !python_tuf_available() {
        return;
    }
    let trees = Trees::build();
    let work = tempfile::tempdir().unwrap();
    let mut case = 0;
    for (what, repo) in trees.repos() {
        let exp = Expected::read(&repo);
        let rel = |p: &Path| p.strip_prefix(&repo).unwrap().to_path_buf();
        // (file to tamper, metadata or not, python-tuf's exception, the step it fails at)
        let mut cases = vec![
            (
                "timestamp.json".into(),
                true,
                "UnsignedMetadataError",
                "refresh".to_string(),
            ),
            (
                rel(&exp.targets_file),
                true,
                "LengthOrHashMismatchError",
                "refresh".to_string(),
            ),
        ];
        for v in 2..=exp.root {
            cases.push((
                format!("{v}.root.json").into(),
                true,
                "UnsignedMetadataError",
                "refresh".to_string(),
            ));
        }
        for (role, v) in &exp.delegated {
            cases.push((
                format!("{v}.{role}.json").into(),
                true,
                "LengthOrHashMismatchError",
                format!("load delegated role {role}"),
            ));
        }
        // A target (the largest one), or else the first file the snapshot lists besides
        // the targets roles.
        if let Some((name, t)) = exp.targets_by_name.iter().max_by_key(|(_, t)| t.length) {
            cases.push((
                rel(&t.stored),
                false,
                "LengthOrHashMismatchError",
                format!("download_target({name})"),
            ));
        } else {
            let (name, (v, ..)) = exp.other_meta.iter().next().expect("snapshot files");
            cases.push((
                format!("{v}.{name}").into(),
                true,
                "LengthOrHashMismatchError",
                format!("check {name} against the snapshot"),
            ));
        }
        for (file, is_metadata, error, stage) in cases {
            case += 1;
            let copy = work.path().join(format!("case-{case}"));
            copy_dir(&repo, &copy);
            if is_metadata {
                tamper_metadata(&copy.join(&file));
            } else {
                tamper_file(&copy.join(&file));
            }
            let run = read_tree(&copy);
            let j = &run.out;
            let file = file.display();
            assert!(
                !run.ok,
                "{what}: python-tuf accepted a tampered {file}:\n{j:#}"
            );
            let (got_error, got_stage) = (
                j["error"].as_str().unwrap_or_default(),
                j["stage"].as_str().unwrap_or_default(),
            );
            eprintln!("{what}: tampered {file}: python-tuf: {got_error} (at {got_stage})");
            assert!(
                got_error.starts_with(error),
                "{what}: tampered {file}: expected {error}, got {got_error}"
            );
            assert!(
                got_stage.starts_with(&stage),
                "{what}: tampered {file}: expected a refusal at {stage}, got {got_stage}"
            );
        }
    }
    assert!(case >= 10, "{case} cases");
}
