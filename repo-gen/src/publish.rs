//! The one consistent-snapshot writer every publisher shares.
//!
//! Given the documents a repository should now contain, it re-signs only what changed (or is
//! due to expire), writes `N.<role>.json` and `N.snapshot.json` under new names, and writes
//! `timestamp.json` last, atomically: until that rename a client sees the previous tree whole,
//! and after it the new one, so a CDN can serve the old tree while the new one uploads.

use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::roles::{MetaFile, Root, Snapshot, Timestamp, SPEC_VERSION};
use ota_metadata::{sign_document, DateTime, Envelope, MetadataLimits, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One snapshot-listed document (targets, a delegated role, `regulators`, `review`).
pub struct RoleDoc<'k> {
    pub name: String,
    /// The `signed` object without `version` and `expires`, which the writer fills in.
    pub body: Value,
    pub keys: Vec<&'k SigningKey>,
    pub lifetime: i64,
}

pub struct Signer<'k> {
    pub keys: Vec<&'k SigningKey>,
    pub lifetime: i64,
}

pub struct PublishPlan<'k> {
    pub roles: Vec<RoleDoc<'k>>,
    pub snapshot: Signer<'k>,
    pub timestamp: Signer<'k>,
    /// Re-sign everything, changed or not (after a key rotation).
    pub force: bool,
}

/// What a publish did, for the CLI to report.
#[derive(Debug, Default)]
pub struct Report {
    pub signed: Vec<(String, u64)>,
    pub kept: Vec<(String, u64)>,
}

/// Read the trees' currently published timestamp and snapshot, if any (unverified: this is the
/// publisher's own output, and only versions and unchanged bodies are taken from it).
struct Current {
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
}

fn read_signed(path: &Path) -> Result<Option<Envelope>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = fsutil::read_bounded(path, MetadataLimits::default().targets * 64)?;
    Ok(Some(
        Envelope::parse(&path.display().to_string(), &bytes, u64::MAX)
            .map_err(Error::meta(path))?,
    ))
}

fn current(repo: &Path) -> Result<Current> {
    let ts_path = repo.join("timestamp.json");
    let Some(ts) = read_signed(&ts_path)? else {
        return Ok(Current {
            timestamp: None,
            snapshot: None,
        });
    };
    let timestamp: Timestamp = ts
        .decode("timestamp", Timestamp::TYPE)
        .map_err(Error::meta(&ts_path))?;
    let snap_path = repo.join(format!(
        "{}.snapshot.json",
        timestamp
            .snapshot_meta()
            .map_err(Error::meta(&ts_path))?
            .version
    ));
    let snapshot = match read_signed(&snap_path)? {
        Some(e) => Some(
            e.decode("snapshot", Snapshot::TYPE)
                .map_err(Error::meta(&snap_path))?,
        ),
        None => None,
    };
    Ok(Current {
        timestamp: Some(timestamp),
        snapshot,
    })
}

fn meta_for(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(BTreeMap::from([(
            "sha256".to_string(),
            hex::encode(Sha256::digest(bytes)),
        )])),
    }
}

/// The `signed` object of `doc` without `version` and `expires`, which the writer fills in:
/// what a [`RoleDoc`] carries.
pub fn body_of<T: serde::Serialize>(doc: &T) -> Result<Value> {
    let mut v = serde_json::to_value(doc).map_err(|e| Error::refused(format!("internal: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("version");
        o.remove("expires");
    }
    Ok(v)
}

/// Co-signers during a key rotation, per role (the outgoing keys).
pub type CoSigners = BTreeMap<String, Vec<SigningKey>>;

/// The keys that sign top-level `role`: those `root` lists for it (checked against the role
/// settings `rc`), plus its co-signers.
pub fn role_signers(
    root: &Root,
    role: &str,
    rc: &crate::workdir::RoleConfig,
    also_sign: &CoSigners,
) -> Result<Vec<SigningKey>> {
    Ok(cosigned(
        role,
        crate::root_build::signing_keys(root, role, rc)?,
        also_sign,
    ))
}

/// `keys` plus the co-signers of `role`.
pub fn cosigned(role: &str, mut keys: Vec<SigningKey>, also_sign: &CoSigners) -> Vec<SigningKey> {
    keys.extend(also_sign.get(role).into_iter().flatten().cloned());
    keys
}

/// Fill in version and expires, and sign.
fn finish(body: &Value, version: u64, expires: DateTime, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let mut signed = body.clone();
    let obj = signed
        .as_object_mut()
        .ok_or_else(|| Error::refused("internal: role body is not an object"))?;
    obj.insert("version".into(), json!(version));
    obj.insert("expires".into(), json!(expires.to_string()));
    Ok(sign_document(&signed, keys)?)
}

/// Whether a document signed with `expires` should be renewed now: less than half its
/// lifetime left.
fn due(expires: DateTime, now: DateTime, lifetime: i64) -> bool {
    expires.0 - now.0 < lifetime / 2
}

/// Publish `plan` into `repo`.
pub fn publish(repo: &Path, now: DateTime, plan: &PublishPlan<'_>) -> Result<Report> {
    let cur = current(repo)?;
    let mut report = Report::default();
    let mut meta: BTreeMap<String, MetaFile> = BTreeMap::new();
    let mut pending: Vec<(PathBuf, Vec<u8>)> = Vec::new();

    for role in &plan.roles {
        let file = format!("{}.json", role.name);
        let old = cur.snapshot.as_ref().and_then(|s| s.meta.get(&file));
        // Keep the published document when its body is unchanged and not due to expire.
        if let (Some(old), false) = (old, plan.force) {
            let path = repo.join(format!("{}.{}", old.version, file));
            if let Some(env) = read_signed(&path)? {
                let mut body = env.signed_value().clone();
                let expires = body
                    .get("expires")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse(s).ok());
                if let Some(o) = body.as_object_mut() {
                    o.remove("version");
                    o.remove("expires");
                }
                if body == role.body && expires.is_some_and(|e| !due(e, now, role.lifetime)) {
                    meta.insert(file, meta_for(old.version, env.raw()));
                    report.kept.push((role.name.clone(), old.version));
                    continue;
                }
            }
        }
        let version = old.map_or(1, |o| o.version + 1);
        let bytes = finish(
            &role.body,
            version,
            now.plus_seconds(role.lifetime),
            &role.keys,
        )?;
        meta.insert(file.clone(), meta_for(version, &bytes));
        pending.push((repo.join(format!("{version}.{file}")), bytes));
        report.signed.push((role.name.clone(), version));
    }

    // Snapshot: new when any listed document changed, or when it is due.
    let snapshot_version = match &cur.snapshot {
        Some(s)
            if !plan.force && s.meta == meta && !due(s.expires, now, plan.snapshot.lifetime) =>
        {
            report.kept.push(("snapshot".into(), s.version));
            None
        }
        Some(s) => Some(s.version + 1),
        None => Some(1),
    };
    let snapshot_meta = if let Some(version) = snapshot_version {
        let body = json!({
            "_type": Snapshot::TYPE,
            "spec_version": SPEC_VERSION,
            "meta": meta,
        });
        let bytes = finish(
            &body,
            version,
            now.plus_seconds(plan.snapshot.lifetime),
            &plan.snapshot.keys,
        )?;
        let m = meta_for(version, &bytes);
        pending.push((repo.join(format!("{version}.snapshot.json")), bytes));
        report.signed.push(("snapshot".into(), version));
        m
    } else {
        // Unchanged snapshot: reuse the timestamp's entry for it.
        cur.timestamp
            .as_ref()
            .and_then(|t| t.meta.get("snapshot.json").cloned())
            .ok_or_else(|| Error::refused("published timestamp lists no snapshot"))?
    };

    // Timestamp: every publish renews it; it is the file clients poll.
    let ts_version = cur.timestamp.as_ref().map_or(1, |t| t.version + 1);
    let body = json!({
        "_type": Timestamp::TYPE,
        "spec_version": SPEC_VERSION,
        "meta": { "snapshot.json": snapshot_meta },
    });
    let ts_bytes = finish(
        &body,
        ts_version,
        now.plus_seconds(plan.timestamp.lifetime),
        &plan.timestamp.keys,
    )?;

    for (path, bytes) in &pending {
        fsutil::write_atomic(path, bytes)?;
    }
    fsutil::write_atomic(&repo.join("timestamp.json"), &ts_bytes)?;
    report.signed.push(("timestamp".into(), ts_version));
    Ok(report)
}

/// Write a signed root as `N.root.json` and as `root.json` (the newest, for bootstrapping).
pub fn write_root(repo: &Path, root: &Root, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let bytes = sign_document(root, keys)?;
    fsutil::write_atomic(&repo.join(format!("{}.root.json", root.version)), &bytes)?;
    fsutil::write_atomic(&repo.join("root.json"), &bytes)?;
    Ok(bytes)
}

/// The newest root of a published tree (`root.json`), parsed but not verified.
pub fn read_root(repo: &Path) -> Result<Root> {
    let path = repo.join("root.json");
    let env = read_signed(&path)?
        .ok_or_else(|| Error::refused(format!("{} is missing", path.display())))?;
    let root: Root = env.decode("root", Root::TYPE).map_err(Error::meta(&path))?;
    Ok(root)
}
