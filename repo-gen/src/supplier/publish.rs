use super::{ImageRecord, Settings};
use crate::error::Result;
use crate::publish::{self, body_of, cosigned, role_signers, PublishPlan, Report, RoleDoc, Signer};
use crate::workdir;
use ota_metadata::documents::{ImageKind, ImageTargetCustom, ImageTargets};
use ota_metadata::roles::{DelegatedRole, Delegations, Root, TargetFile, Targets};
use ota_metadata::{DateTime, SigningKey};
use std::collections::BTreeMap;
use std::path::Path;

fn target_entries(images: &[&ImageRecord]) -> BTreeMap<String, TargetFile> {
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
    }
    out
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
    let targets_keys = role_signers(root, "targets", &s.roles["targets"], also_sign)?;
    let snapshot_keys = role_signers(root, "snapshot", &s.roles["snapshot"], also_sign)?;
    let timestamp_keys = role_signers(root, "timestamp", &s.roles["timestamp"], also_sign)?;
    let deleg_keys: Vec<Vec<SigningKey>> = s
        .delegations
        .iter()
        .map(|d| Ok(cosigned(&d.name, d.role.load_keys(&d.name)?, also_sign)))
        .collect::<Result<_>>()?;

    let images_of = |role: &str| {
        s.images
            .iter()
            .filter(|i| i.role == role)
            .collect::<Vec<_>>()
    };
    let mut top = Targets::new(1, now);
    top.targets = target_entries(&images_of("targets"));
    if !s.delegations.is_empty() {
        let mut keys = BTreeMap::new();
        let mut roles = Vec::new();
        let mut hw = BTreeMap::new();
        for (d, dk) in s.delegations.iter().zip(&deleg_keys) {
            // Only the configured keys (listed first) are delegated to; `also_sign` keys
            // merely co-sign.
            let configured = &dk[..d.role.keys.len().min(dk.len())];
            for k in configured {
                keys.insert(k.key_id().clone(), k.public().clone());
            }
            roles.push(DelegatedRole {
                name: d.name.clone(),
                keyids: configured.iter().map(|k| k.key_id().clone()).collect(),
                threshold: d.role.threshold,
                terminating: d.terminating,
                paths: Some(d.paths.clone()),
                path_hash_prefixes: None,
                extra: BTreeMap::new(),
            });
            hw.insert(d.name.clone(), d.hardware_ids.clone());
        }
        top.delegations = Some(Delegations {
            keys,
            roles,
            succinct_roles: None,
            extra: BTreeMap::new(),
        });
        top.delegated_hardware_ids = Some(hw);
    }

    let mut roles = vec![RoleDoc {
        name: "targets".into(),
        body: body_of(&top)?,
        keys: targets_keys.iter().collect(),
        lifetime: s.roles["targets"].lifetime()?,
    }];
    for (d, dk) in s.delegations.iter().zip(&deleg_keys) {
        let mut t = Targets::new(1, now);
        t.targets = target_entries(&images_of(&d.name));
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
    let plan = PublishPlan {
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
