//! Taking in a delegate's hand-over ([`super::tier`]): the delegator checks every role it
//! carries against the delegation that reaches it, before any byte is kept.
//!
//! For each role, starting with this directory's own delegations to suppliers that sign for
//! themselves and going down the delegations each role makes:
//! - signed by a threshold of the distinct keys the delegating role names, of type targets,
//!   not expired, at a version not below the one taken in before (and the same bytes when
//!   equal);
//! - every target it lists matches the delegation's name patterns, fits its hardware ids, and
//!   is in the hand-over with the signed length and SHA-256; every image manifest is signed by
//!   the role's keys and describes the listed image (the checks a vehicle makes);
//! - every delegation it makes narrows: name patterns within the delegation's, hardware ids a
//!   subset, and the delegated role's signed file is in the hand-over (checked the same way).
//!
//! A role in the hand-over that nothing here delegates is refused. Only when all of it checks
//! out are the files copied in (targets first, then the roles), so a refused hand-over
//! changes nothing.

use super::delegate::pattern_within;
use super::tier::{Index, FORMAT, INDEX};
use super::{Ingested, Settings, DELEGATED_DIR};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::documents::image_manifest::{verify_image_manifest, MAX_MANIFEST_LEN};
use ota_metadata::documents::{ImageKind, ImageTargetCustom, ImageTargets};
use ota_metadata::roles::{glob_match, TargetFile, Targets};
use ota_metadata::trusted_set::RoleSigner;
use ota_metadata::{DateTime, Envelope, Key, KeyId, MetadataLimits};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One role to check: who signs it and what it may list.
struct Job {
    name: String,
    parent: String,
    keys: BTreeMap<KeyId, Key>,
    keyids: Vec<KeyId>,
    threshold: u32,
    hardware_ids: Vec<String>,
    paths: Vec<String>,
    /// The latest expiry the delegation from this directory allows (its lifetime from now):
    /// roles below inherit it.
    max_expires: DateTime,
}

/// A role that checked out.
struct Accepted {
    name: String,
    parent: String,
    version: u64,
    bytes: Vec<u8>,
    /// (file name in `targets/`, length)
    files: Vec<(String, u64)>,
}

/// What an ingest took in.
#[derive(Debug)]
pub struct Report {
    /// (role, version, whether it is new or changed)
    pub roles: Vec<(String, u64, bool)>,
    pub targets: usize,
}

fn refused(from: &Path, why: String) -> Error {
    Error::refused(format!("hand-over {}: {why}", from.display()))
}

/// The hand-over's index: of this format, naming each role once, each a role name.
fn read_index(from: &Path) -> Result<Index> {
    let index: Index = serde_json::from_slice(&fsutil::read_untrusted(&from.join(INDEX), 1 << 20)?)
        .map_err(|e| refused(from, format!("{INDEX}: {e}")))?;
    if index.format != FORMAT {
        return Err(refused(from, format!("unknown format {:?}", index.format)));
    }
    let carried: BTreeSet<&String> = index.roles.iter().collect();
    if carried.len() != index.roles.len() {
        return Err(refused(from, "a role is listed twice".into()));
    }
    for r in &index.roles {
        ota_metadata::names::check_role_name(r).map_err(|e| refused(from, e.to_string()))?;
    }
    Ok(index)
}

/// Check hand-over `from` against this directory's delegations and take it in. The
/// procedure: a hand-over directory with a well-formed index → the roles this directory
/// delegates to suppliers that sign for themselves, each checked (its owner, its signatures
/// and what it may list), then the roles they delegate to in turn, each carried → every role
/// carried reached → taken in.
pub fn ingest(dir: &Path, from: &Path, now: DateTime) -> Result<Report> {
    let mut s = Settings::load(dir)?;
    for d in [
        from.to_path_buf(),
        from.join("metadata"),
        from.join("targets"),
    ] {
        fsutil::real_dir(&d)?;
    }
    let index = read_index(from)?;
    let carried: BTreeSet<&String> = index.roles.iter().collect();
    let own = s.default_role().to_string();
    let mut queue: Vec<Job> = Vec::new();
    for d in s
        .delegations
        .iter()
        .filter(|d| d.external() && carried.contains(&d.name))
    {
        queue.push(Job {
            name: d.name.clone(),
            parent: own.clone(),
            keys: d.public_keys.clone(),
            keyids: d.public_keys.keys().cloned().collect(),
            threshold: d.role.threshold,
            hardware_ids: d.hardware_ids.clone(),
            paths: d.paths.clone(),
            max_expires: now.plus_seconds(d.role.lifetime()?),
        });
    }
    if queue.is_empty() {
        return Err(refused(
            from,
            format!(
                "it carries {:?}, and this directory delegates none of them to a supplier that signs for itself (`supplier delegate --public-key`)",
                index.roles
            ),
        ));
    }
    let mut accepted: Vec<Accepted> = Vec::new();
    while let Some(job) = queue.pop() {
        if accepted.iter().any(|a| a.name == job.name) {
            return Err(refused(
                from,
                format!("role {} is delegated twice", job.name),
            ));
        }
        check_owner(&s, from, &job)?;
        let (a, children) = check_role(&s, from, &job, now)?;
        for c in &children {
            if !carried.contains(&c.name) {
                return Err(refused(
                    from,
                    format!(
                        "role {} delegates to {}, whose signed role it does not carry",
                        job.name, c.name
                    ),
                ));
            }
        }
        queue.extend(children);
        accepted.push(a);
    }
    if let Some(stray) = index
        .roles
        .iter()
        .find(|r| !accepted.iter().any(|a| &a.name == *r))
    {
        return Err(refused(
            from,
            format!("it carries role {stray}, which nothing it delegates"),
        ));
    }
    commit(dir, from, &mut s, accepted)
}

/// A role is reached through one delegation only: a name this directory delegates itself,
/// retired, or took in before under another delegator cannot be claimed by another tier.
fn check_owner(s: &Settings, from: &Path, job: &Job) -> Result<()> {
    let name = &job.name;
    let own = s.default_role();
    let taken = |by: &str| {
        Err(refused(
            from,
            format!(
                "role {name} is delegated by {by} already, not by {}: a role is reached through one delegation only",
                job.parent
            ),
        ))
    };
    if job.parent != own && s.delegation(name).is_some() {
        return taken(own);
    }
    if name == own || s.retired.contains(name) || s.roles.contains_key(name) {
        return Err(refused(
            from,
            format!("role {name} is this directory's own or a retired one"),
        ));
    }
    match s.ingested.get(name) {
        Some(prev) if prev.parent != job.parent => taken(&prev.parent),
        _ => Ok(()),
    }
}

/// Check one role; returns it and the roles it delegates to.
fn check_role(s: &Settings, from: &Path, job: &Job, now: DateTime) -> Result<(Accepted, Vec<Job>)> {
    let name = &job.name;
    let bad = |why: String| refused(from, format!("role {name}: {why}"));
    let limit = MetadataLimits::default().targets;
    let path = from.join("metadata").join(format!("{name}.json"));
    let bytes = fsutil::read_untrusted(&path, limit)?;
    let env = Envelope::parse(name, &bytes, limit).map_err(|e| bad(e.to_string()))?;
    env.verify(name, &job.keyids, job.threshold, &job.keys)
        .map_err(|e| bad(e.to_string()))?;
    let doc: Targets = env
        .decode(name, Targets::TYPE)
        .map_err(|e| bad(e.to_string()))?;
    doc.validate(name).map_err(|e| bad(e.to_string()))?;
    if doc.expires <= now {
        return Err(bad(format!("expired at {}", doc.expires)));
    }
    if doc.expires > job.max_expires {
        return Err(bad(format!(
            "expires {}, later than the delegation allows ({}): the delegate signs it with a shorter lifetime",
            doc.expires, job.max_expires
        )));
    }
    if let Some(prev) = s.ingested.get(name) {
        let sha = hex::encode(Sha256::digest(&bytes));
        if doc.version < prev.version {
            return Err(bad(format!(
                "version {} is below {} taken in before (a rollback)",
                doc.version, prev.version
            )));
        }
        if doc.version == prev.version && sha != prev.sha256 {
            return Err(bad(format!(
                "version {} was taken in before with other content",
                doc.version
            )));
        }
    }
    let mut files = Vec::new();
    for (target, info) in &doc.targets {
        files.push(check_target(s, from, job, &doc, target, info).map_err(&bad)?);
    }
    check_manifests(from, job, &doc).map_err(&bad)?;
    let children = delegated(job, &doc).map_err(bad)?;
    Ok((
        Accepted {
            name: name.clone(),
            parent: job.parent.clone(),
            version: doc.version,
            bytes,
            files,
        },
        children,
    ))
}

/// A target of `doc`: within the delegation, present with its signed length and SHA-256.
fn check_target(
    s: &Settings,
    from: &Path,
    job: &Job,
    doc: &Targets,
    target: &str,
    info: &TargetFile,
) -> std::result::Result<(String, u64), String> {
    if !job.paths.iter().any(|p| glob_match(p, target)) {
        return Err(format!(
            "lists {target}, outside its name patterns {:?}",
            job.paths
        ));
    }
    let custom: ImageTargetCustom = info
        .custom
        .clone()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| format!("{target}: no image description (custom)"))?;
    if let Some(h) = custom
        .hardware_ids
        .iter()
        .find(|h| !job.hardware_ids.contains(h))
    {
        return Err(format!(
            "{target} is for hardware id {h}, outside {:?}",
            job.hardware_ids
        ));
    }
    let _ = doc;
    if info.length > s.max_image_size {
        return Err(format!(
            "{target} is {} bytes, over this directory's maximum of {}",
            info.length, s.max_image_size
        ));
    }
    let sha = info
        .hashes
        .get("sha256")
        .filter(|h| h.len() == 64 && hex::decode(h).is_ok())
        .ok_or_else(|| format!("{target} lists no sha256"))?;
    let file = format!("{sha}.{target}");
    if file.contains('/') {
        return Err(format!("{target}: target names with '/' are not taken in"));
    }
    let path = from.join("targets").join(&file);
    let (len, got) = hash_file(&path, info.length).map_err(|e| format!("{target}: {e}"))?;
    // Neither length nor hash of what was read is told: a file that is not the signed one
    // is refused, and that is all.
    if len != info.length || &got != sha {
        return Err(format!(
            "{target}: the file in the hand-over is not the one signed"
        ));
    }
    Ok((file, len))
}

/// SHA-256 and length of `path` (a regular file, not a link), reading at most `max + 1`
/// bytes.
fn hash_file(path: &Path, max: u64) -> Result<(u64, String)> {
    let (f, _) = fsutil::open_untrusted(path)?;
    let mut r = f.take(max.saturating_add(1));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(Error::io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Every image `doc` lists comes with its manifests, signed by the role's keys.
fn check_manifests(from: &Path, job: &Job, doc: &Targets) -> std::result::Result<(), String> {
    let signer = RoleSigner {
        role: job.name.clone(),
        keys: job.keys.clone(),
        keyids: job.keyids.clone(),
        threshold: job.threshold,
        hardware_ids: Some(job.hardware_ids.clone()),
    };
    let read = |target: &str| -> std::result::Result<Vec<u8>, String> {
        let info = doc
            .targets
            .get(target)
            .ok_or_else(|| format!("{target} is not listed beside its image"))?;
        if info.length > MAX_MANIFEST_LEN {
            return Err(format!("{target}: {} bytes", info.length));
        }
        let sha = info.hashes.get("sha256").cloned().unwrap_or_default();
        let bytes = fsutil::read_untrusted(
            &from.join("targets").join(format!("{sha}.{target}")),
            MAX_MANIFEST_LEN,
        )
        .map_err(|e| format!("{target}: {e}"))?;
        if hex::encode(Sha256::digest(&bytes)) != sha {
            return Err(format!("{target} changed while it was checked"));
        }
        Ok(bytes)
    };
    for (target, info) in &doc.targets {
        let custom: Option<ImageTargetCustom> = info
            .custom
            .clone()
            .and_then(|c| serde_json::from_value(c).ok());
        let Some(c) = custom.filter(|c| c.kind == ImageKind::Image) else {
            continue;
        };
        let names = ImageTargets::new(&c.uid, &c.version);
        if &names.image != target {
            return Err(format!("{target} is described as {}", names.image));
        }
        let manifest = read(&names.manifest)?;
        let compact = read(&names.compact)?;
        verify_image_manifest(&manifest, &signer, target, info, Some(&compact))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The roles `doc` delegates to, each narrower than `job`.
fn delegated(job: &Job, doc: &Targets) -> std::result::Result<Vec<Job>, String> {
    let Some(d) = &doc.delegations else {
        return Ok(Vec::new());
    };
    if d.succinct_roles.is_some() {
        return Err("delegates by hash bins, which a tier may not".into());
    }
    let mut out = Vec::new();
    for r in &d.roles {
        let paths = r
            .paths
            .clone()
            .ok_or_else(|| format!("delegates to {} by hash prefixes, not names", r.name))?;
        if let Some(p) = paths
            .iter()
            .find(|p| !job.paths.iter().any(|q| pattern_within(p, q)))
        {
            return Err(format!(
                "delegates {p:?} to {}, not within its own patterns {:?}",
                r.name, job.paths
            ));
        }
        let hardware_ids = doc
            .hardware_ids_for(&r.name)
            .ok_or_else(|| format!("delegates to {} without naming its hardware ids", r.name))?
            .to_vec();
        if let Some(h) = hardware_ids.iter().find(|h| !job.hardware_ids.contains(h)) {
            return Err(format!(
                "delegates hardware id {h} to {}, outside its own {:?}",
                r.name, job.hardware_ids
            ));
        }
        out.push(Job {
            name: r.name.clone(),
            parent: job.name.clone(),
            keys: d.keys.clone(),
            keyids: r.keyids.clone(),
            threshold: r.threshold,
            hardware_ids,
            paths,
            max_expires: job.max_expires,
        });
    }
    Ok(out)
}

/// Copy the checked files in: targets first, then each role, then the record.
fn commit(dir: &Path, from: &Path, s: &mut Settings, accepted: Vec<Accepted>) -> Result<Report> {
    let store = crate::workdir::repository_path(dir).join("targets");
    let mut targets = 0;
    for a in &accepted {
        for (file, _) in &a.files {
            let to = store.join(file);
            if !to.exists() {
                copy_in(&from.join("targets").join(file), &to)?;
                targets += 1;
            }
        }
    }
    let kept = dir.join(DELEGATED_DIR);
    std::fs::create_dir_all(&kept).map_err(Error::io(&kept))?;
    let mut roles = Vec::new();
    for a in accepted {
        let sha = hex::encode(Sha256::digest(&a.bytes));
        let changed = s.ingested.get(&a.name).is_none_or(|p| p.sha256 != sha);
        fsutil::write_atomic(&kept.join(format!("{}.json", a.name)), &a.bytes)?;
        s.ingested.insert(
            a.name.clone(),
            Ingested {
                version: a.version,
                sha256: sha,
                parent: a.parent,
            },
        );
        roles.push((a.name, a.version, changed));
    }
    s.save(dir)?;
    Ok(Report { roles, targets })
}

/// Copy a checked file into the store (durably, under a temporary name first), hashing it
/// again as it is copied: its name starts with the SHA-256 it must have.
fn copy_in(from: &Path, to: &Path) -> Result<PathBuf> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    let (mut src, _) = fsutil::open_untrusted(from)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src.read(&mut buf).map_err(Error::io(from))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        std::io::Write::write_all(&mut tmp, &buf[..n]).map_err(Error::io(to))?;
    }
    let want = to
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.get(..64))
        .unwrap_or_default();
    if hex::encode(h.finalize()) != want {
        return Err(Error::refused(format!(
            "{} changed while it was taken in",
            from.display()
        )));
    }
    tmp.as_file().sync_all().map_err(Error::io(to))?;
    fsutil::make_public(tmp.path(), 0o644)?;
    tmp.persist_noclobber(to).map_err(|e| Error::Io {
        path: to.to_path_buf(),
        source: e.error,
    })?;
    Ok(to.to_path_buf())
}
