//! `ota-repo verify` over a role delegated by two roles: it must verify against each
//! delegation, as a client searching either path checks it.

use ota_metadata::{DateTime, SigningKey};
use ota_repo::publish::{self, PublishPlan, RoleDoc, Signer};
use ota_repo::root_build::build_root;
use ota_repo::workdir::RoleConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys 0..=3 sign root, targets, snapshot, timestamp; targets -> A (key 4) -> D (key 6) and
/// targets -> B (key 5) -> D (key 7); D is signed by `d_signers`. Returns the tree.
fn publish_tree(dir: &Path, keys: &[SigningKey], d_signers: &[usize], now: DateTime) -> PathBuf {
    // The tree may be one `verify` must reject: `publish` itself would refuse to write it.
    let mut roles = BTreeMap::new();
    for (i, r) in ["root", "targets", "snapshot", "timestamp"]
        .iter()
        .enumerate()
    {
        let pem = dir.join(format!("k{i}.pem"));
        std::fs::write(&pem, keys[i].to_pkcs8_pem().unwrap()).unwrap();
        roles.insert(r.to_string(), RoleConfig::new(vec![pem], 1, "7d").unwrap());
    }
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    publish::write_root(&repo, &build_root(&roles, 1, now).unwrap(), &[&keys[0]]).unwrap();
    let targets = |to: &[(&str, usize)]| -> Value {
        let mut b = json!({"_type": "targets", "spec_version": "1.0.31", "targets": {}});
        if !to.is_empty() {
            let mut ks = serde_json::Map::new();
            let mut entries = Vec::new();
            for (name, k) in to {
                let id = keys[*k].key_id().0.clone();
                ks.insert(id.clone(), json!(keys[*k].public()));
                entries.push(json!({"name": name, "keyids": [id], "threshold": 1,
                                    "terminating": false, "paths": ["*"]}));
            }
            b["delegations"] = json!({"keys": ks, "roles": entries});
        }
        b
    };
    let role = |name: &str, body: Value, signers: &[usize]| RoleDoc {
        name: name.into(),
        body,
        keys: signers.iter().map(|&i| &keys[i]).collect(),
        lifetime: 86_400,
    };
    let plan = PublishPlan {
        verbatim: Vec::new(),
        roles: vec![
            role("targets", targets(&[("A", 4), ("B", 5)]), &[1]),
            role("A", targets(&[("D", 6)]), &[4]),
            role("B", targets(&[("D", 7)]), &[5]),
            role("D", targets(&[]), d_signers),
        ],
        snapshot: Signer {
            keys: vec![&keys[2]],
            lifetime: 86_400,
        },
        timestamp: Signer {
            keys: vec![&keys[3]],
            lifetime: 86_400,
        },
        force: false,
    };
    publish::publish_unverified(&repo, now, &plan).unwrap();
    repo
}

#[test]
fn a_role_delegated_twice_must_verify_against_both_delegations() {
    let keys: Vec<SigningKey> = (0..8)
        .map(|_| SigningKey::generate(2048).unwrap())
        .collect();
    let now = DateTime::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };

    let both = publish_tree(&dir("both"), &keys, &[6, 7], now);
    let summary = ota_repo::verify::verify(&both, None, now).unwrap();
    assert_eq!(summary.targets_roles, 4);

    // Signed for A's delegation only: a client searching through B refuses D.
    let one = publish_tree(&dir("one"), &keys, &[6], now);
    let err = ota_repo::verify::verify(&one, None, now).unwrap_err();
    assert!(err.to_string().contains("D, as delegated by B"), "{err}");
}
