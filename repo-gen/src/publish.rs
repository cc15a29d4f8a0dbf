//! The one consistent-snapshot writer every publisher shares.
//!
//! Given the documents a repository should now contain, it re-signs only what changed (or is
//! due to expire), writes `N.<role>.json` and `N.snapshot.json` under new names, and writes
//! `timestamp.json` last, atomically: until that rename a client sees the previous tree whole,
//! and after it the new one, so a CDN can serve the old tree while the new one uploads.
//!
//! Published files are immutable: `N.<role>.json` and `N.snapshot.json` are written once and
//! never replaced ([`fsutil::write_once`]); only `timestamp.json` and `root.json` change in
//! place. Versions continue from the highest found, in the current snapshot or on disk, so a
//! deleted `timestamp.json` or snapshot never restarts them at 1 (clients that saw the higher
//! versions would refuse the lower ones forever). The timestamp's own version is not in any
//! file name, so a copy of the last published timestamp is kept outside the tree, beside
//! `ota-repo.json` ([`LAST_TIMESTAMP`]).

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

/// A role signed by someone else (a tier-2 supplier's, ingested), published as it is at the
/// version its signer gave it.
pub struct Verbatim {
    pub name: String,
    pub version: u64,
    pub bytes: Vec<u8>,
}

pub struct PublishPlan<'k> {
    pub roles: Vec<RoleDoc<'k>>,
    /// Roles published verbatim; a version below the one listed before is refused, and so is
    /// other content under the same version.
    pub verbatim: Vec<Verbatim>,
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
    /// For the operator (stderr): an expiry coming up.
    pub warnings: Vec<String>,
}

/// A copy of the last `timestamp.json` published, kept in the working directory (beside
/// `repository/`, never served): the timestamp's version survives the loss of the tree's copy.
pub const LAST_TIMESTAMP: &str = "last-timestamp.json";

/// Where the copy of the last timestamp of the tree `repo` is kept.
pub fn last_timestamp_path(repo: &Path) -> PathBuf {
    repo.parent().unwrap_or(Path::new(".")).join(LAST_TIMESTAMP)
}

/// The tree's currently published timestamp and snapshot, if any (unverified: this is the
/// publisher's own output, and only versions and unchanged bodies are taken from it), and the
/// highest version of every `N.NAME.json` on disk.
struct Current {
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    on_disk: BTreeMap<String, u64>,
}

impl Current {
    /// The version after every version of `file` seen: listed in the snapshot or on disk.
    fn next_version(&self, file: &str, listed: Option<u64>) -> u64 {
        listed
            .max(self.on_disk.get(file).copied())
            .map_or(1, |v| v + 1)
    }
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

fn read_timestamp(path: &Path) -> Result<Option<Timestamp>> {
    read_signed(path)?
        .map(|e| {
            e.decode("timestamp", Timestamp::TYPE)
                .map_err(Error::meta(path))
        })
        .transpose()
}

/// The highest version of each `N.NAME.json` directly in `repo`, by `NAME.json`.
fn versions_on_disk(repo: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(repo) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(repo)(e)),
    };
    for entry in entries {
        let name = entry.map_err(Error::io(repo))?.file_name();
        let Some((n, file)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if !file.ends_with(".json") || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = n.parse::<u64>() {
            let v = out.entry(file.to_string()).or_insert(n);
            *v = (*v).max(n);
        }
    }
    Ok(out)
}

fn current(repo: &Path, force: bool) -> Result<Current> {
    let on_disk = versions_on_disk(repo)?;
    let ts_path = repo.join("timestamp.json");
    let kept_path = last_timestamp_path(repo);
    // The tree's timestamp, or the copy kept beside the settings: the newer of the two. A
    // damaged tree copy is replaced by this publish, as long as the kept copy says where the
    // versions stand.
    let kept = read_timestamp(&kept_path)?;
    let tree = match read_timestamp(&ts_path) {
        Ok(t) => t,
        Err(_) if kept.is_some() => None,
        Err(e) => return Err(e),
    };
    let timestamp = match (tree, kept) {
        (Some(t), Some(k)) => Some(if k.version > t.version { k } else { t }),
        (t, k) => t.or(k),
    };
    let Some(timestamp) = timestamp else {
        if let Some(v) = on_disk.get("snapshot.json") {
            return Err(Error::refused(format!(
                "{} is missing, but snapshot versions up to {v} are published in {}: a new \
                 timestamp must continue from the last one published (vehicles refuse a lower \
                 version), and no copy of it was found ({}). Restore timestamp.json from the copy \
                 your web server serves (e.g. `curl -o {} URL/timestamp.json`) and publish again",
                ts_path.display(),
                repo.display(),
                kept_path.display(),
                ts_path.display()
            )));
        }
        return Ok(Current {
            timestamp: None,
            snapshot: None,
            on_disk,
        });
    };
    let snap_path = repo.join(format!(
        "{}.snapshot.json",
        timestamp
            .snapshot_meta()
            .map_err(Error::meta(&ts_path))?
            .version
    ));
    let snapshot = read_signed(&snap_path).and_then(|e| {
        e.map(|e| {
            e.decode("snapshot", Snapshot::TYPE)
                .map_err(Error::meta(&snap_path))
        })
        .transpose()
    });
    let snapshot = match snapshot {
        Ok(s) => s,
        // Damaged: --force signs everything anew, above every version on disk.
        Err(_) if force => None,
        Err(e) => return Err(damaged(repo, e)),
    };
    Ok(Current {
        timestamp: Some(timestamp),
        snapshot,
        on_disk,
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
    // Four-digit years only: TUF readers parse nothing else.
    if expires > DateTime::parse("9999-12-31T23:59:59Z")? {
        return Err(Error::refused(format!(
            "an expiry after the year 9999 cannot be written (now + lifetime = {} seconds)",
            expires.0
        )));
    }
    obj.insert("version".into(), json!(version));
    obj.insert("expires".into(), json!(expires.to_string()));
    Ok(sign_document(&signed, keys)?)
}

/// Whether a document signed with `expires` should be renewed now: less than half its
/// lifetime left.
fn due(expires: DateTime, now: DateTime, lifetime: i64) -> bool {
    expires.0 - now.0 < lifetime / 2
}

/// Warn this long before root or a delegated role expires.
pub const EXPIRY_WARNING: i64 = 30 * 86_400;

/// The command that runs `sub` in the working directory of tree `repo` (for repair hints),
/// e.g. `ota-repo supplier publish acme`.
fn command(repo: &Path, sub: &str) -> String {
    let dir = repo.parent().unwrap_or(Path::new("."));
    let kind = crate::workdir::kind_of(dir).unwrap_or_else(|| "supplier|oem|regulator".into());
    format!("ota-repo {kind} {sub} {}", dir.display())
}

/// A published file that cannot be read back: what is wrong and how to repair it.
fn damaged(repo: &Path, e: Error) -> Error {
    Error::refused(format!(
        "{e}. Nothing was published. Restore the file from the copy your web server serves, or \
         run `{} --force` to sign new versions over it",
        command(repo, "publish")
    ))
}

/// Refuse to publish under a root that has expired or expires before the new timestamp, and
/// warn a month ahead: only a root rotation (offline keys) renews it.
fn check_root(repo: &Path, now: DateTime, timestamp_expires: DateTime) -> Result<Vec<String>> {
    let root = read_root(repo)?;
    let renew = format!(
        "renew it with `{} --role root --new-key ROOT_KEY` (the current root key renews it with \
         a fresh lifetime)",
        command(repo, "rotate-key")
    );
    if root.expires <= now {
        return Err(Error::refused(format!(
            "root v{} ({}) expired at {}: vehicles refuse the whole tree. Nothing was published; \
             {renew}, then publish again",
            root.version,
            repo.join("root.json").display(),
            root.expires
        )));
    }
    if root.expires < timestamp_expires {
        return Err(Error::refused(format!(
            "root v{} ({}) expires at {}, before the timestamp this publish would sign \
             ({timestamp_expires}): vehicles would refuse the tree from then on. Nothing was \
             published; {renew}, then publish again",
            root.version,
            repo.join("root.json").display(),
            root.expires
        )));
    }
    let mut warnings = Vec::new();
    if root.expires.0 - now.0 < EXPIRY_WARNING {
        warnings.push(format!(
            "root v{} expires at {} (in {} day(s)); {renew}",
            root.version,
            root.expires,
            (root.expires.0 - now.0) / 86_400
        ));
    }
    Ok(warnings)
}

/// Publish `plan` into `repo`.
///
/// Nothing is written unless the resulting tree verifies ([`crate::verify::verify_pending`]):
/// a damaged or missing published file, or a root that has expired, stops the publish with
/// what is wrong and how to repair it, and the served tree stays as it was.
pub fn publish(repo: &Path, now: DateTime, plan: &PublishPlan<'_>) -> Result<Report> {
    publish_checked(repo, now, plan, true)
}

/// [`publish`] without checking the result: only for tests that need a tree `verify` must
/// reject (a rogue supplier, a forged delegation). No command offers it.
#[doc(hidden)]
pub fn publish_unverified(repo: &Path, now: DateTime, plan: &PublishPlan<'_>) -> Result<Report> {
    publish_checked(repo, now, plan, false)
}

/// The procedure: every lifetime within bounds → the served tree is whole → each role kept or
/// signed anew, each verbatim role checked → the snapshot, then the timestamp → the whole new
/// tree verified (when `check`) → written, the timestamp last.
fn publish_checked(
    repo: &Path,
    now: DateTime,
    plan: &PublishPlan<'_>,
    check: bool,
) -> Result<Report> {
    check_lifetimes(plan)?;
    crate::tree_check::check_tree(repo)?;
    let cur = current(repo, plan.force)?;
    let mut draft = Draft::default();
    for role in &plan.roles {
        draft.role(repo, now, plan.force, &cur, role)?;
    }
    for v in &plan.verbatim {
        draft.verbatim(repo, now, &cur, v)?;
    }
    let snapshot_meta = draft.snapshot(now, plan, &cur)?;

    // Timestamp: every publish renews it; it is the file clients poll.
    let ts_version = cur.timestamp.as_ref().map_or(1, |t| t.version + 1);
    let ts_expires = now.plus_seconds(plan.timestamp.lifetime);
    let body = json!({
        "_type": Timestamp::TYPE,
        "spec_version": SPEC_VERSION,
        "meta": { "snapshot.json": snapshot_meta },
    });
    let ts_bytes = finish(&body, ts_version, ts_expires, &plan.timestamp.keys)?;

    // The whole tree must verify before anything is written.
    draft.pending.insert("timestamp.json".into(), ts_bytes);
    if check {
        draft
            .report
            .warnings
            .extend(check_root(repo, now, ts_expires)?);
        verify_before_writing(repo, &draft.pending, now)?;
    }
    draft
        .report
        .warnings
        .extend(expiring_delegations(plan, &draft.expiry, now));
    write_tree(repo, draft.pending)?;
    draft.report.signed.push(("timestamp".into(), ts_version));
    Ok(draft.report)
}

/// Every role's lifetime within the bounds a lifetime may have, refused naming the role.
fn check_lifetimes(plan: &PublishPlan<'_>) -> Result<()> {
    let lifetimes = plan
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.lifetime))
        .chain([
            ("snapshot", plan.snapshot.lifetime),
            ("timestamp", plan.timestamp.lifetime),
        ]);
    for (role, lifetime) in lifetimes {
        crate::workdir::check_lifetime(lifetime)
            .map_err(|e| Error::refused(format!("role {role}: {e}")))?;
    }
    Ok(())
}

/// The new tree being drafted, nothing written yet.
#[derive(Default)]
struct Draft<'p> {
    /// The snapshot's entries, by file name.
    meta: BTreeMap<String, MetaFile>,
    /// New files, by name in `repo`, written only once the whole tree checks out.
    pending: BTreeMap<String, Vec<u8>>,
    /// When each role expires, by name.
    expiry: BTreeMap<&'p str, DateTime>,
    report: Report,
}

impl<'p> Draft<'p> {
    /// A snapshot-listed role: the published document kept when its body is unchanged and it
    /// is not due to expire (unless `force`), else signed anew at the next version.
    fn role(
        &mut self,
        repo: &Path,
        now: DateTime,
        force: bool,
        cur: &Current,
        role: &'p RoleDoc<'_>,
    ) -> Result<()> {
        let file = format!("{}.json", role.name);
        let old = cur.snapshot.as_ref().and_then(|s| s.meta.get(&file));
        if let (Some(old), false) = (old, force) {
            if let Some((expires, m)) = unchanged(repo, now, role, &file, old.version)? {
                self.meta.insert(file, m);
                self.report.kept.push((role.name.clone(), old.version));
                self.expiry.insert(&role.name, expires);
                return Ok(());
            }
        }
        let version = cur.next_version(&file, old.map(|o| o.version));
        let expires = now.plus_seconds(role.lifetime);
        let bytes = finish(&role.body, version, expires, &role.keys)?;
        self.meta.insert(file.clone(), meta_for(version, &bytes));
        self.pending.insert(format!("{version}.{file}"), bytes);
        self.report.signed.push((role.name.clone(), version));
        self.expiry.insert(&role.name, expires);
        Ok(())
    }

    /// A role signed by its delegate, published at its own version: never below the one
    /// published (a rollback), never other bytes under a version already published; a warning
    /// when it expires soon (only the delegate can renew it).
    fn verbatim(&mut self, repo: &Path, now: DateTime, cur: &Current, v: &Verbatim) -> Result<()> {
        let file = format!("{}.json", v.name);
        let path_name = format!("{}.{file}", v.version);
        if let Some(old) = cur.snapshot.as_ref().and_then(|s| s.meta.get(&file)) {
            if v.version < old.version {
                return Err(Error::refused(format!(
                    "role {}: version {} is below the published {} (a rollback)",
                    v.name, v.version, old.version
                )));
            }
        }
        let on_disk = repo.join(&path_name);
        if on_disk.exists() {
            let held = fsutil::read_bounded(&on_disk, v.bytes.len() as u64 + 1)?;
            if held != v.bytes {
                return Err(Error::refused(format!(
                    "role {}: version {} is published with other content",
                    v.name, v.version
                )));
            }
        } else {
            self.pending.insert(path_name, v.bytes.clone());
        }
        self.meta.insert(file, meta_for(v.version, &v.bytes));
        self.report.kept.push((v.name.clone(), v.version));
        let expires = serde_json::from_slice::<Value>(&v.bytes)
            .ok()
            .and_then(|e| e["signed"]["expires"].as_str().map(String::from))
            .and_then(|e| DateTime::parse(&e).ok());
        if let Some(e) = expires.filter(|e| e.0 - now.0 < EXPIRY_WARNING) {
            self.report.warnings.push(format!(
                "role {} (signed by its delegate) expires at {e}: ask the delegate for a new hand-over before then (`supplier handover --renew`), then ingest it",
                v.name
            ));
        }
        Ok(())
    }

    /// The snapshot, new when any listed document changed or when it is due (or `force`), at
    /// a version above every one seen; else the published one, kept. Its entry for the
    /// timestamp.
    fn snapshot(
        &mut self,
        now: DateTime,
        plan: &PublishPlan<'_>,
        cur: &Current,
    ) -> Result<MetaFile> {
        let version = match &cur.snapshot {
            Some(s)
                if !plan.force
                    && s.meta == self.meta
                    && !due(s.expires, now, plan.snapshot.lifetime) =>
            {
                self.report.kept.push(("snapshot".into(), s.version));
                None
            }
            s => Some(
                cur.next_version(
                    "snapshot.json",
                    s.as_ref().map(|s| s.version).max(
                        cur.timestamp
                            .as_ref()
                            .and_then(|t| t.meta.get("snapshot.json"))
                            .map(|m| m.version),
                    ),
                ),
            ),
        };
        let Some(version) = version else {
            // Unchanged snapshot: reuse the timestamp's entry for it.
            return cur
                .timestamp
                .as_ref()
                .and_then(|t| t.meta.get("snapshot.json").cloned())
                .ok_or_else(|| Error::refused("published timestamp lists no snapshot"));
        };
        let body = json!({
            "_type": Snapshot::TYPE,
            "spec_version": SPEC_VERSION,
            "meta": self.meta,
        });
        let bytes = finish(
            &body,
            version,
            now.plus_seconds(plan.snapshot.lifetime),
            &plan.snapshot.keys,
        )?;
        let m = meta_for(version, &bytes);
        self.pending
            .insert(format!("{version}.snapshot.json"), bytes);
        self.report.signed.push(("snapshot".into(), version));
        Ok(m)
    }
}

/// The published version `old_version` of `role` (its `file`), when its body is the one to
/// publish and it is not due to expire: when it expires, and its snapshot entry. `None`: sign
/// it anew.
fn unchanged(
    repo: &Path,
    now: DateTime,
    role: &RoleDoc<'_>,
    file: &str,
    old_version: u64,
) -> Result<Option<(DateTime, MetaFile)>> {
    let path = repo.join(format!("{old_version}.{file}"));
    let Some(env) = read_signed(&path).map_err(|e| damaged(repo, e))? else {
        return Ok(None);
    };
    let mut body = env.signed_value().clone();
    let expires = body
        .get("expires")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse(s).ok());
    if let Some(o) = body.as_object_mut() {
        o.remove("version");
        o.remove("expires");
    }
    Ok(expires
        .filter(|e| body == role.body && !due(*e, now, role.lifetime))
        .map(|e| (e, meta_for(old_version, env.raw()))))
}

/// Write the checked tree: every new file once, then the timestamp, in place.
fn write_tree(repo: &Path, mut pending: BTreeMap<String, Vec<u8>>) -> Result<()> {
    let ts_bytes = pending.remove("timestamp.json").unwrap_or_default();
    // Trees published by older versions were 0600: a web server answered 403.
    for d in [repo.to_path_buf(), repo.join("targets")] {
        fsutil::make_files_public(&d)?;
    }
    for (name, bytes) in &pending {
        fsutil::write_once(&repo.join(name), bytes)?;
    }
    // The kept copy first: after a crash between the two, the next version is still higher.
    fsutil::write_atomic(&last_timestamp_path(repo), &ts_bytes)?;
    fsutil::write_atomic(&repo.join("timestamp.json"), &ts_bytes)
}

/// Verify the tree as it will be with `pending` written; refuse with the repair otherwise.
fn verify_before_writing(
    repo: &Path,
    pending: &BTreeMap<String, Vec<u8>>,
    now: DateTime,
) -> Result<()> {
    crate::verify::verify_pending(repo, pending, now).map_err(|e| {
        Error::refused(format!(
            "the tree would not verify, so nothing was published and the served tree is \
             unchanged: {e}. Restore the file named above from the copy your web server serves \
             (published files are never rewritten); over a damaged N.<role>.json or \
             N.snapshot.json, `{} --force` signs new versions",
            command(repo, "publish")
        ))
    })?;
    Ok(())
}

/// Warnings for the roles the top-level targets role delegates to that expire within
/// [`EXPIRY_WARNING`] (their lifetime is that short, or publishing has stopped renewing them).
fn expiring_delegations(
    plan: &PublishPlan<'_>,
    expiry: &BTreeMap<&str, DateTime>,
    now: DateTime,
) -> Vec<String> {
    let Some(targets) = plan.roles.iter().find(|r| r.name == "targets") else {
        return Vec::new();
    };
    let delegated = targets.body["delegations"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str());
    delegated
        .filter_map(|name| {
            let e = *expiry.get(name)?;
            (e.0 - now.0 < EXPIRY_WARNING).then(|| {
                format!(
                    "delegated role {name} expires at {e} (in {} day(s)): publish again before \
                     then, and give it a lifetime over 30 days (--expires)",
                    (e.0 - now.0) / 86_400
                )
            })
        })
        .collect()
}

/// Write a signed root as `N.root.json` and as `root.json` (the newest, for bootstrapping).
pub fn write_root(repo: &Path, root: &Root, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let bytes = sign_document(root, keys)?;
    fsutil::write_once(&repo.join(format!("{}.root.json", root.version)), &bytes)?;
    fsutil::write_atomic(&repo.join("root.json"), &bytes)?;
    Ok(bytes)
}

/// The newest root of a published tree (`root.json`), parsed but not verified.
pub fn read_root(repo: &Path) -> Result<Root> {
    let path = repo.join("root.json");
    let root = read_signed(&path).and_then(|env| {
        env.map(|env| env.decode("root", Root::TYPE).map_err(Error::meta(&path)))
            .transpose()
    });
    let problem = match root {
        Ok(Some(root)) => return Ok(root),
        Ok(None) => format!("{} is missing", path.display()),
        Err(e) => e.to_string(),
    };
    let newest = versions_on_disk(repo)?.get("root.json").copied();
    Err(Error::refused(match newest {
        Some(n) => format!(
            "{problem}; root.json is a copy of the newest root, {n}.root.json: restore it with \
             `cp {} {}` and run the command again",
            repo.join(format!("{n}.root.json")).display(),
            path.display()
        ),
        None => format!(
            "{problem}, and no N.root.json is in {}: restore the root files from the copy your \
             web server serves",
            repo.display()
        ),
    }))
}
