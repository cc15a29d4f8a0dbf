use super::Settings;
use crate::error::Result;
use crate::fsutil;
use crate::publish::{self, body_of, role_signers, PublishPlan, Report, RoleDoc, Signer};
use crate::workdir;
use ota_metadata::documents::{attestation_target, veto_target};
use ota_metadata::roles::{Root, TargetFile, Targets};
use ota_metadata::{DateTime, SigningKey};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Sign and write the attestation repository's current content.
pub fn publish(dir: &Path, now: DateTime, force: bool) -> Result<Report> {
    // A key rotation a kill cut off is finished (or undone) first.
    crate::rotation::resume::<Settings>(dir, now)?;
    let s = Settings::load(dir)?;
    let root = publish::read_root(&workdir::repository_path(dir))?;
    publish_with(dir, &s, &root, now, force, &BTreeMap::new())
}

/// Publish `s` under `root`, with `also_sign` co-signing per role (during a key rotation):
/// the targets role listing every attestation and veto ([`targets_role`]), signed and
/// published.
pub fn publish_with(
    dir: &Path,
    s: &Settings,
    root: &Root,
    now: DateTime,
    force: bool,
    also_sign: &BTreeMap<String, Vec<SigningKey>>,
) -> Result<Report> {
    let repo = workdir::repository_path(dir);
    let keys = |role: &str| role_signers(root, role, &s.roles[role], also_sign);
    let (targets_k, snapshot_k, timestamp_k) =
        (keys("targets")?, keys("snapshot")?, keys("timestamp")?);
    let t = targets_role(&repo, s, now)?;
    let body = body_of(&t)?;
    let plan = PublishPlan {
        verbatim: Vec::new(),
        roles: vec![RoleDoc {
            name: "targets".into(),
            body,
            keys: targets_k.iter().collect(),
            lifetime: s.roles["targets"].lifetime()?,
        }],
        snapshot: Signer {
            keys: snapshot_k.iter().collect(),
            lifetime: s.roles["snapshot"].lifetime()?,
        },
        timestamp: Signer {
            keys: timestamp_k.iter().collect(),
            lifetime: s.roles["timestamp"].lifetime()?,
        },
        force,
    };
    publish::publish(&repo, now, &plan)
}

/// The regulator's targets role: every attestation, listed under the release it judges, and
/// every veto, the same signed file listed under the bytes it vetoes (written at attest time;
/// written again here if a record predates vetoes).
fn targets_role(repo: &Path, s: &Settings, now: DateTime) -> Result<Targets> {
    let mut t = Targets::new(1, now);
    for (sha, rec) in &s.attestations {
        t.targets.insert(
            attestation_target(sha),
            TargetFile {
                length: rec.file.length,
                hashes: BTreeMap::from([("sha256".to_string(), rec.file.sha256.clone())]),
                custom: Some(json!({
                    "kind": "attestation",
                    "verdict": rec.verdict,
                    "supplier": rec.release.supplier,
                    "uid": rec.release.uid,
                    "version": rec.release.version,
                    "release_counter": rec.release.release_counter,
                    "image_sha256": rec.release.hashes.get("sha256"),
                })),
            },
        );
    }
    for (sha, rec) in s.vetoes() {
        let name = veto_target(&sha);
        let file = repo
            .join("targets")
            .join(format!("{}.{name}", rec.file.sha256));
        if !file.exists() {
            let attestation = repo.join("targets").join(format!(
                "{}.{}",
                rec.file.sha256,
                attestation_target(&rec.release.manifest_sha256)
            ));
            let bytes = fsutil::read_bounded(&attestation, 1 << 20)?;
            fsutil::write_once(&file, &bytes)?;
        }
        t.targets.insert(
            name,
            TargetFile {
                length: rec.file.length,
                hashes: BTreeMap::from([("sha256".to_string(), rec.file.sha256.clone())]),
                custom: Some(json!({
                    "kind": "veto",
                    "verdict": rec.verdict,
                    "manifest_sha256": rec.release.manifest_sha256,
                })),
            },
        );
    }
    Ok(t)
}
