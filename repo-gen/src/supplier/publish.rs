use super::DelegationConfig;
use super::{ImageRecord, Settings};
use crate::error::Result;
use crate::publish::{
    self, body_of, cosigned, role_signers, PublishPlan, Report, RoleDoc, Signer, Verbatim,
};
use crate::workdir;
use ota_metadata::documents::{ImageKind, ImageTargetCustom, ImageTargets};
use ota_metadata::roles::{DelegatedRole, Delegations, Root, TargetFile, Targets};
use ota_metadata::{DateTime, KeyId, SigningKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn target_entries(images: &[&ImageRecord]) -> BTreeMap<String, TargetFile> {
    let mut out = BTreeMap::new();
    for img in images {
        let names = ImageTargets::new(&img.uid, &img.version);
        for (name, info, kind) in [
            (names.image, &img.image, ImageKind::Image),
            (names.manifest, &img.manifest, ImageKind::ImageManifest),
            (names.compact, &img.compact, ImageKind::CompactManifest),
        ] {
            let custom = ImageTargetCustom {
                kind,
                uid: img.uid.clone(),
                version: img.version.clone(),
                release_counter: img.release_counter,
                hardware_ids: img.hardware_ids.clone(),
            };
            out.insert(
                name,
                TargetFile {
                    length: info.length,
                    hashes: BTreeMap::from([("sha256".to_string(), info.sha256.clone())]),
                    custom: serde_json::to_value(custom).ok(),
                },
            );
        }
        for d in &img.deltas {
            let custom = ImageTargetCustom {
                kind: ImageKind::Delta,
                uid: img.uid.clone(),
                version: img.version.clone(),
                release_counter: img.release_counter,
                hardware_ids: img.hardware_ids.clone(),
            };
            out.insert(
                ImageTargets::delta(&img.uid, &img.version, &d.from_version),
                TargetFile {
                    length: d.file.length,
                    hashes: BTreeMap::from([("sha256".to_string(), d.file.sha256.clone())]),
                    custom: serde_json::to_value(custom).ok(),
                },
            );
        }
    }
    out
}

/// The delegations `s` publishes, with the keys each signs with here (none for a delegate that
/// signs for itself). A self-signing delegate is listed once its first hand-over is ingested:
/// until then there is no role file for clients to fetch.
pub(super) fn live_delegations<'s>(
    s: &'s Settings,
    also_sign: &BTreeMap<String, Vec<SigningKey>>,
) -> Result<Vec<(&'s DelegationConfig, Vec<SigningKey>)>> {
    let mut out = Vec::new();
    for d in &s.delegations {
        if d.external() {
            if s.ingested.contains_key(&d.name) {
                out.push((d, Vec::new()));
            }
        } else {
            out.push((d, cosigned(&d.name, d.role.load_keys(&d.name)?, also_sign)));
        }
    }
    Ok(out)
}

/// The targets document of role `role` in `s`: its images, and the delegations `s` makes.
pub(super) fn delegating_doc(
    s: &Settings,
    role: &str,
    live: &[(&DelegationConfig, Vec<SigningKey>)],
    now: DateTime,
) -> Targets {
    let images: Vec<&ImageRecord> = s.images.iter().filter(|i| i.role == role).collect();
    let mut doc = Targets::new(1, now);
    doc.targets = target_entries(&images);
    if live.is_empty() {
        return doc;
    }
    let mut keys = BTreeMap::new();
    let mut roles = Vec::new();
    let mut hw = BTreeMap::new();
    for (d, dk) in live {
        let keyids: Vec<KeyId> = if d.external() {
            for (id, k) in &d.public_keys {
                keys.insert(id.clone(), k.clone());
            }
            d.public_keys.keys().cloned().collect()
        } else {
            // Only the configured keys (listed first) are delegated to; `also_sign` keys
            // merely co-sign.
            let configured = &dk[..d.role.keys.len().min(dk.len())];
            for k in configured {
                keys.insert(k.key_id().clone(), k.public().clone());
            }
            configured.iter().map(|k| k.key_id().clone()).collect()
        };
        roles.push(DelegatedRole {
            name: d.name.clone(),
            keyids,
            threshold: d.role.threshold,
            terminating: d.terminating,
            paths: Some(d.paths.clone()),
            path_hash_prefixes: None,
            extra: BTreeMap::new(),
        });
        hw.insert(d.name.clone(), d.hardware_ids.clone());
    }
    doc.delegations = Some(Delegations {
        keys,
        roles,
        succinct_roles: None,
        extra: BTreeMap::new(),
    });
    doc.delegated_hardware_ids = Some(hw);
    doc
}

/// The roles `s` took in from delegates that sign for themselves, verbatim. Each must still
/// verify against the delegation that brings it (after `supplier delegate --replace`, a
/// hand-over signed with the new keys must be ingested first).
pub(super) fn verbatim_roles(dir: &Path, s: &Settings) -> Result<Vec<Verbatim>> {
    let mut out = Vec::new();
    for (name, r) in &s.ingested {
        let path = dir.join(super::DELEGATED_DIR).join(format!("{name}.json"));
        let bytes =
            crate::fsutil::read_bounded(&path, ota_metadata::MetadataLimits::default().targets)?;
        if hex::encode(Sha256::digest(&bytes)) != r.sha256 {
            return Err(crate::error::Error::Config {
                path,
                reason: format!("not the file of role {name} that was ingested (its SHA-256 differs): ingest the hand-over again"),
            });
        }
        if let Some(d) = s.delegation(name) {
            let env = ota_metadata::Envelope::parse(name, &bytes, bytes.len() as u64)
                .map_err(crate::error::Error::meta(&path))?;
            let keyids: Vec<KeyId> = d.public_keys.keys().cloned().collect();
            env.verify(name, &keyids, d.role.threshold, &d.public_keys)
                .map_err(|e| crate::error::Error::refused(format!(
                    "delegation {name}: its last hand-over is not signed by the keys delegated now ({e}); ingest a hand-over signed with them"
                )))?;
        }
        out.push(Verbatim {
            name: name.clone(),
            version: r.version,
            bytes,
        });
    }
    Ok(out)
}

/// Sign and write the repository's current content. `force` re-signs every role.
pub fn publish(dir: &Path, now: DateTime, force: bool) -> Result<Report> {
    // A key rotation a kill cut off is finished (or undone) first.
    crate::rotation::resume::<Settings>(dir, now)?;
    let s = Settings::load(dir)?;
    let repo = workdir::repository_path(dir);
    let root = publish::read_root(&repo)?;
    publish_with(&repo, &s, &root, now, force, &BTreeMap::new())
}

/// [`publish`] without checking the result: only for tests that need a tree `verify` must
/// reject (a rogue supplier's). No command offers it.
#[doc(hidden)]
pub fn publish_unverified(dir: &Path, now: DateTime) -> Result<Report> {
    let s = Settings::load(dir)?;
    let repo = workdir::repository_path(dir);
    let root = publish::read_root(&repo)?;
    publish_plan(&repo, &s, &root, now, false, &BTreeMap::new(), false)
}

/// Publish `s` under `root`. `also_sign` adds signers per role: during a key rotation the
/// outgoing keys sign too, so clients that still trust the old root accept the new files.
pub fn publish_with(
    repo: &Path,
    s: &Settings,
    root: &Root,
    now: DateTime,
    force: bool,
    also_sign: &BTreeMap<String, Vec<SigningKey>>,
) -> Result<Report> {
    publish_plan(repo, s, root, now, force, also_sign, true)
}

fn publish_plan(
    repo: &Path,
    s: &Settings,
    root: &Root,
    now: DateTime,
    force: bool,
    also_sign: &BTreeMap<String, Vec<SigningKey>>,
    check: bool,
) -> Result<Report> {
    if let Some(t) = &s.tier {
        return Err(crate::error::Error::refused(format!(
            "this is a tier directory (it signs role {} for its delegator): hand it over with `supplier handover`",
            t.role
        )));
    }
    let targets_keys = role_signers(root, "targets", &s.roles["targets"], also_sign)?;
    let snapshot_keys = role_signers(root, "snapshot", &s.roles["snapshot"], also_sign)?;
    let timestamp_keys = role_signers(root, "timestamp", &s.roles["timestamp"], also_sign)?;
    let live = live_delegations(s, also_sign)?;
    let top = delegating_doc(s, "targets", &live, now);

    let mut roles = vec![RoleDoc {
        name: "targets".into(),
        body: body_of(&top)?,
        keys: targets_keys.iter().collect(),
        lifetime: s.roles["targets"].lifetime()?,
    }];
    for (d, dk) in live.iter().filter(|(d, _)| !d.external()) {
        let mut t = Targets::new(1, now);
        let images: Vec<&ImageRecord> = s.images.iter().filter(|i| i.role == d.name).collect();
        t.targets = target_entries(&images);
        roles.push(RoleDoc {
            name: d.name.clone(),
            body: body_of(&t)?,
            keys: dk.iter().collect(),
            lifetime: d.role.lifetime()?,
        });
    }
    // Retired delegations: kept listed, empty, delegated by no one.
    for name in &s.retired {
        roles.push(RoleDoc {
            name: name.clone(),
            body: body_of(&Targets::new(1, now))?,
            keys: targets_keys.iter().collect(),
            lifetime: s.roles["targets"].lifetime()?,
        });
    }
    let dir = repo.parent().unwrap_or(Path::new("."));
    let verbatim = verbatim_roles(dir, s)?;
    let plan = PublishPlan {
        verbatim,
        roles,
        snapshot: Signer {
            keys: snapshot_keys.iter().collect(),
            lifetime: s.roles["snapshot"].lifetime()?,
        },
        timestamp: Signer {
            keys: timestamp_keys.iter().collect(),
            lifetime: s.roles["timestamp"].lifetime()?,
        },
        force,
    };
    if check {
        publish::publish(repo, now, &plan)
    } else {
        publish::publish_unverified(repo, now, &plan)
    }
}
