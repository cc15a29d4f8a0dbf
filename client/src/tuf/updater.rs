//! The TUF 1.0 client workflow over one repository (specification section 5, python-tuf's
//! ngclient `Updater`):
//!
//! 1. **root**: fetch `N+1.root.json` until the server has none (404/403), each signed by the
//!    previous root and by itself, at most `max_root_rotations` per refresh;
//! 2. if that changed the timestamp or snapshot keys, forget the local timestamp and snapshot
//!    (recovery from a fast-forward attack, spec 5.3.11);
//! 3. **timestamp**: the local copy (even expired) is the rollback reference for the one
//!    fetched; the same version keeps the local one;
//! 4. **snapshot**: the local copy if it is the one the timestamp names, else
//!    `V.snapshot.json`, checked against the timestamp's length and hash;
//! 5. **targets**: likewise `V.targets.json` against the snapshot.
//!
//! Delegated targets roles are loaded only when a lookup needs them, in a pre-order
//! depth-first search that honours path patterns and terminating delegations and visits at
//! most `max_delegations` roles. Downloads are bounded by the signed length and hashed while
//! streaming.
//!
//! Every document is accepted by [`TrustedSet`], which holds the rules; this file holds the
//! order, the names, the bounds and persistence. Choices beyond the specification:
//!
//! - A refresh works on a fresh [`TrustedSet`] (starting from the root trusted now) and
//!   replaces the updater's only when it completes: a failed refresh leaves the trusted state
//!   in memory as it was, and lookups are refused until a refresh succeeds, so nothing is ever
//!   looked up in a half-updated or stale view. What a failed refresh already verified and
//!   stored (a newer root, a newer timestamp) stays stored: it passed every check.
//! - Past `max_root_rotations` the refresh carries on with the newest root reached, as
//!   python-tuf does; past `max_delegations` a lookup is an error rather than "not found".
//! - 403 ends the root walk like 404 (object stores answer 403 for missing objects).
//! - Names are percent-encoded into file names and URLs ([`super::encode`]); targets are
//!   saved under one flat file name in the destination directory.

use super::download;
use super::encode;
use super::error::{Error, Result};
use super::fetch::Fetch;
use super::limits::Limits;
use super::store::MetadataStore;
use ota_metadata::roles::{MetaFile, Root, TargetFile, Targets};
use ota_metadata::trusted_set::RoleSigner;
use ota_metadata::{DateTime, TrustedSet, Update, Verified};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Install `root_bytes` as the trusted root of an empty metadata directory (the factory
/// provisioning step; tuf-conformance's `init`). It must be signed by a threshold of its own
/// root keys; its expiry is not checked, since an old root is a normal starting point.
pub fn init_trusted_root(metadata_dir: &Path, root_bytes: &[u8], limits: &Limits) -> Result<()> {
    let store = MetadataStore::new(metadata_dir);
    let path = store.path("root");
    TrustedSet::new(root_bytes, DateTime::now(), limits.metadata)
        .map_err(Error::metadata(&path.display().to_string()))?;
    store.write("root", root_bytes).map_err(Error::store(path))
}

/// A target found by [`Updater::get_targetinfo`].
#[derive(Clone, Debug)]
pub struct Found {
    /// Its length, hashes and custom data, as the listing role signed them.
    pub info: TargetFile,
    /// The targets role that lists it.
    pub role: String,
    /// Who signs for that role on the path the search took (keys, threshold, hardware ids):
    /// documents that come with the target (image manifests, attestations) are checked
    /// against it.
    pub signer: RoleSigner,
}

pub struct Updater<F: Fetch> {
    store: MetadataStore,
    /// Both end in `/`.
    metadata_base: String,
    targets_base: String,
    fetcher: F,
    limits: Limits,
    now: DateTime,
    trusted: TrustedSet,
    refreshed: bool,
}

/// What fetching and persisting need, borrowed apart from the trusted set they feed.
struct Remote<'a, F> {
    store: &'a MetadataStore,
    base: &'a str,
    fetcher: &'a F,
    limits: &'a Limits,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("{what} was accepted but is not loaded"))
}

impl<F: Fetch> Updater<F> {
    /// An updater over the repository at `metadata_base_url` (targets under
    /// `targets_base_url`), trusting the `root.json` in `metadata_dir`. `now` is the time
    /// expiry is checked against (injectable for tests and for vehicles whose clock comes from
    /// elsewhere).
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata_base_url: &str,
        targets_base_url: &str,
        fetcher: F,
        limits: Limits,
        now: DateTime,
    ) -> Result<Self> {
        let store = MetadataStore::new(metadata_dir);
        let path = store.path("root");
        let bytes = store
            .read("root", limits.metadata.root)
            .map_err(|e| Error::NoTrustedRoot {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| Error::NoTrustedRoot {
                path: path.clone(),
                reason: "the file does not exist (install the factory root first)".into(),
            })?;
        let trusted = TrustedSet::new(&bytes, now, limits.metadata)
            .map_err(Error::metadata(&path.display().to_string()))?;
        Ok(Updater {
            store,
            metadata_base: with_slash(metadata_base_url),
            targets_base: with_slash(targets_base_url),
            fetcher,
            limits,
            now,
            trusted,
            refreshed: false,
        })
    }

    /// The metadata trusted now: after a successful refresh, all of it; otherwise what the
    /// last successful refresh (or the local root) established.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metadata_dir(&self) -> &Path {
        self.store.dir()
    }

    /// A file under the metadata base URL (`N.review.json`, `vehicles/bins/…`), at most `max`
    /// bytes, checked against `meta`'s length and hashes when given. Refused before a
    /// successful refresh: nothing is trusted to check it against yet.
    /// Like [`Updater::fetch_metadata_file`], but first tries the local copy kept as
    /// `cache_as`: when it matches `meta`'s length and hashes exactly, no request is made.
    /// A fetched file replaces the local copy.
    pub fn fetch_metadata_file_cached(
        &self,
        path: &str,
        cache_as: &str,
        meta: &MetaFile,
        max: u64,
    ) -> Result<Vec<u8>> {
        let has_hash = meta
            .hashes
            .as_ref()
            .is_some_and(|h| h.contains_key("sha256"));
        if has_hash {
            let bound = self.limits.metadata.bound(max, meta.length);
            if let Ok(Some(local)) = self.store.read(cache_as, bound) {
                if ota_metadata::trusted_set::check_meta(cache_as, meta, &local).is_ok() {
                    return Ok(local);
                }
            }
        }
        let bytes = self.fetch_metadata_file(path, Some(meta), max)?;
        self.store
            .write(cache_as, &bytes)
            .map_err(Error::store(self.store.path(cache_as)))?;
        Ok(bytes)
    }

    pub fn fetch_metadata_file(
        &self,
        path: &str,
        meta: Option<&MetaFile>,
        max: u64,
    ) -> Result<Vec<u8>> {
        if !self.refreshed {
            return Err(Error::NotRefreshed {
                repository: self.metadata_base.clone(),
            });
        }
        let remote = Remote {
            store: &self.store,
            base: &self.metadata_base,
            fetcher: &self.fetcher,
            limits: &self.limits,
        };
        let url = remote.url(path);
        let max = self.limits.metadata.bound(max, meta.and_then(|m| m.length));
        let bytes = remote.fetch(&url, max)?;
        if let Some(m) = meta {
            ota_metadata::trusted_set::check_meta(&url, m, &bytes)
                .map_err(Error::metadata(&url))?;
        }
        Ok(bytes)
    }

    /// One of the snapshot-listed roles that are not targets roles (the OEM's `regulators`,
    /// `review`, `vehicles`): fetched as `V.<role>.json`, checked against the snapshot entry,
    /// signed by the root's keys for `role`, not expired.
    pub fn load_extra_role<T: serde::de::DeserializeOwned>(
        &self,
        role: &str,
        type_: &str,
        expires: impl Fn(&T) -> DateTime,
        version: impl Fn(&T) -> u64,
    ) -> Result<Verified<T>> {
        let file = format!("{role}.json");
        let meta = self
            .trusted
            .snapshot()
            .and_then(|s| s.signed.meta.get(&file))
            .cloned()
            .ok_or_else(|| Error::Metadata {
                url: self.metadata_base.clone(),
                source: ota_metadata::Error::Missing {
                    what: file,
                    detail: "not listed in the snapshot".into(),
                },
            })?;
        let name = format!("{}.{}.json", meta.version, encode::url_segment(role));
        // Kept locally like the TUF roles: unchanged (same hash in the snapshot), not fetched.
        let bytes =
            self.fetch_metadata_file_cached(&name, role, &meta, self.limits.metadata.targets)?;
        let url = format!("{}{name}", self.metadata_base);
        self.trusted
            .verify_extra_role(&bytes, role, type_, expires, version)
            .map_err(Error::metadata(&url))
    }

    /// The time the next refresh checks expiry against.
    pub fn set_now(&mut self, now: DateTime) {
        self.now = now;
    }

    fn parts(&mut self) -> (Remote<'_, F>, &mut TrustedSet) {
        (
            Remote {
                store: &self.store,
                base: &self.metadata_base,
                fetcher: &self.fetcher,
                limits: &self.limits,
            },
            &mut self.trusted,
        )
    }

    /// Bring root, timestamp, snapshot and top-level targets up to date (steps 1-5 above).
    /// May be called again later; each call starts from the root trusted now.
    pub fn refresh(&mut self) -> Result<()> {
        self.refreshed = false;
        let remote = Remote {
            store: &self.store,
            base: &self.metadata_base,
            fetcher: &self.fetcher,
            limits: &self.limits,
        };
        let mut set = TrustedSet::new(self.trusted.root().raw(), self.now, self.limits.metadata)
            .map_err(Error::metadata(
                &self.store.path("root").display().to_string(),
            ))?;
        let before = set.root().signed.clone();
        remote.update_root(&mut set)?;
        remote.forget_on_key_change(&before, &set.root().signed)?;
        remote.update_timestamp(&mut set)?;
        remote.update_snapshot(&mut set)?;
        remote.load_targets(&mut set, "targets", "root")?;
        self.trusted = set;
        self.refreshed = true;
        Ok(())
    }

    /// Find `target`, the role that lists it and that role's signer: pre-order depth-first
    /// over the delegation graph, loading delegated roles (local copy first, else
    /// `V.<role>.json`) only as the search reaches them. A role loaded by an earlier lookup is
    /// checked again against the delegation it is reached through now. `Ok(None)` when no
    /// role that may list it does.
    pub fn get_targetinfo(&mut self, target: &str) -> Result<Option<Found>> {
        if !self.refreshed {
            return Err(Error::NotRefreshed {
                repository: self.metadata_base.clone(),
            });
        }
        let max = self.limits.max_delegations;
        let (remote, set) = self.parts();
        // (role, the role that delegates it, the hardware ids every delegation on the way
        // allows: each tier narrows, none widens); popped from the end.
        let mut stack: Vec<(String, String, Option<Vec<String>>)> =
            vec![("targets".to_string(), "root".to_string(), None)];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        let mut delegated_visits: usize = 0;
        while let Some((role, parent, allowed)) = stack.pop() {
            if visited.contains(&role) {
                continue;
            }
            if role != "targets" {
                if delegated_visits >= max {
                    return Err(Error::TooManyDelegations {
                        repository: remote.base.into(),
                        target: target.into(),
                        limit: max,
                    });
                }
                delegated_visits += 1;
            }
            remote.load_targets(set, &role, &parent)?;
            let doc = &set.targets(&role).ok_or_else(|| internal(&role))?.signed;
            if let Some(info) = doc.targets.get(target) {
                // The signer comes from the parent on this path, not any parent of the role;
                // its images must fit what the whole path allows.
                let mut signer = set
                    .signer_of(&role, &parent)
                    .map_err(Error::metadata(remote.base))?;
                signer.hardware_ids = allowed;
                return Ok(Some(Found {
                    info: info.clone(),
                    role,
                    signer,
                }));
            }
            let mut children = Vec::new();
            for d in doc.delegations.iter().flat_map(|d| d.delegated_for(target)) {
                let narrowed = match (&allowed, doc.hardware_ids_for(&d.name)) {
                    (None, h) => h.map(<[String]>::to_vec),
                    (Some(a), None) => Some(a.clone()),
                    (Some(a), Some(h)) => {
                        Some(a.iter().filter(|x| h.contains(x)).cloned().collect())
                    }
                };
                children.push((d.name.clone(), role.clone(), narrowed));
                if d.terminating {
                    // A terminating delegation owns the name: nothing else is consulted.
                    stack.clear();
                    break;
                }
            }
            // Reversed, so the first listed delegation is searched first.
            stack.extend(children.into_iter().rev());
            visited.insert(role);
        }
        Ok(None)
    }

    /// Every role that may sign images for `hardware_id`, with its signer: the top-level
    /// targets role, and each delegated role (loaded and verified on the way, depth first)
    /// whose hardware ids, narrowed along its delegation path, include it. What an ECU's trust
    /// document names for that hardware id.
    pub fn signers_for_hardware_id(&mut self, hardware_id: &str) -> Result<Vec<RoleSigner>> {
        if !self.refreshed {
            return Err(Error::NotRefreshed {
                repository: self.metadata_base.clone(),
            });
        }
        let max = self.limits.max_delegations;
        let (remote, set) = self.parts();
        let mut stack: Vec<(String, String, Option<Vec<String>>)> =
            vec![("targets".to_string(), "root".to_string(), None)];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        while let Some((role, parent, allowed)) = stack.pop() {
            if !visited.insert(role.clone()) {
                continue;
            }
            if visited.len() > max + 1 {
                return Err(Error::TooManyDelegations {
                    repository: remote.base.into(),
                    target: format!("(hardware id {hardware_id})"),
                    limit: max,
                });
            }
            remote.load_targets(set, &role, &parent)?;
            let mut signer = set
                .signer_of(&role, &parent)
                .map_err(Error::metadata(remote.base))?;
            signer.hardware_ids = allowed.clone();
            if allowed
                .as_ref()
                .is_none_or(|a| a.iter().any(|h| h == hardware_id))
            {
                out.push(signer);
            }
            let doc = &set.targets(&role).ok_or_else(|| internal(&role))?.signed;
            let mut children = Vec::new();
            for d in doc.delegations.iter().flat_map(|d| d.roles.iter()) {
                let narrowed = narrow(allowed.as_deref(), doc, &d.name);
                // A branch that cannot reach the hardware id is not loaded.
                if narrowed
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|h| h == hardware_id))
                {
                    children.push((d.name.clone(), role.clone(), narrowed));
                }
            }
            stack.extend(children.into_iter().rev());
        }
        Ok(out)
    }

    /// Where [`Updater::download_target`] stores `target` in `dest_dir`: one flat,
    /// percent-encoded file name, so a target path cannot leave the directory.
    pub fn target_path(&self, target: &str, dest_dir: &Path) -> PathBuf {
        dest_dir.join(encode::file_name(target))
    }

    fn check_target(&self, target: &str, info: &TargetFile) -> Result<download::TargetDigest> {
        let bad = |reason: String| Error::BadTarget {
            repository: self.targets_base.clone(),
            target: target.into(),
            reason,
        };
        // Before anything is fetched: a name must not lead the request (a local file for the
        // directory fetcher) outside the targets base.
        encode::check_target_path(target).map_err(|r| bad(r.into()))?;
        if info.length > self.limits.max_target_size {
            return Err(bad(format!(
                "signed length {} is over this client's max_target_size of {}",
                info.length, self.limits.max_target_size
            )));
        }
        download::TargetDigest::from_hashes(&info.hashes).map_err(bad)
    }

    /// The path of `target` in `dest_dir` if a verified copy is already there.
    pub fn find_cached_target(
        &self,
        target: &str,
        info: &TargetFile,
        dest_dir: &Path,
    ) -> Result<Option<PathBuf>> {
        let sha = self.check_target(target, info)?;
        let path = self.target_path(target, dest_dir);
        Ok(download::is_cached(&path, info.length, &sha)?.then_some(path))
    }

    /// Download `target` (described by `info`, from [`Updater::get_targetinfo`]) into
    /// `dest_dir`, returning the file written. Fetched as `SHA256.NAME` under the targets base
    /// URL when the root uses consistent snapshots; refused unless exactly `info.length` bytes
    /// with the signed SHA-256, and nothing is left in `dest_dir` when refused. A transfer
    /// that breaks off is resumed (`Range`) up to `max_resume_attempts` times.
    pub fn download_target(
        &self,
        target: &str,
        info: &TargetFile,
        dest_dir: &Path,
    ) -> Result<PathBuf> {
        self.download_target_tapped(target, info, dest_dir, None)
    }

    /// [`Updater::download_target`], showing the bytes to `tap` as they are staged (see
    /// [`download::StreamTap`]: what it makes of them is trusted only if this succeeds). A tap
    /// that [keeps](download::StreamTap::keeps) the bytes is their only copy: then nothing is
    /// written at the returned path.
    pub fn download_target_tapped(
        &self,
        target: &str,
        info: &TargetFile,
        dest_dir: &Path,
        tap: Option<&mut dyn download::StreamTap>,
    ) -> Result<PathBuf> {
        let sha = self.check_target(target, info)?;
        let consistent = self.trusted.root().signed.consistent_snapshot;
        let url = format!(
            "{}{}",
            self.targets_base,
            download::remote_path(target, &sha.hex(), consistent)
        );
        let dest = self.target_path(target, dest_dir);
        download::fetch_verified(
            &self.fetcher,
            &url,
            target,
            info.length,
            &sha,
            &dest,
            self.limits.max_resume_attempts,
            tap,
        )?;
        Ok(dest)
    }
}

/// What [`Updater::fetch_targets`] did for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A verified copy was already in the destination directory (hashed again to be sure).
    Cached(PathBuf),
    /// Downloaded and verified.
    Downloaded(PathBuf),
}

impl Fetched {
    /// The verified file, either way.
    pub fn path(&self) -> &Path {
        match self {
            Fetched::Cached(p) | Fetched::Downloaded(p) => p,
        }
    }
}

impl<F: Fetch + Sync> Updater<F> {
    /// Every target of `targets` (names with their descriptions from
    /// [`Updater::get_targetinfo`]) verified in `dest_dir`: reused when a verified copy is
    /// there ([`Updater::find_cached_target`]), else downloaded ([`Updater::download_target`]).
    /// Up to `limits.download_concurrency` at once, on as many threads (started once for the
    /// whole batch, each taking the next target when it is done, each keeping its connection
    /// for the next target), so hashing one target overlaps receiving another. Results come
    /// in the order of `targets`.
    ///
    /// Fails with the error of the first target (in that order) that failed; once one fails,
    /// no further download is started, and those in flight finish (a failed one leaves
    /// nothing in `dest_dir`, as always).
    pub fn fetch_targets(
        &self,
        targets: &[(&str, &TargetFile)],
        dest_dir: &Path,
    ) -> Result<Vec<Fetched>> {
        let one = |target: &str, info: &TargetFile| -> Result<Fetched> {
            if let Some(path) = self.find_cached_target(target, info, dest_dir)? {
                return Ok(Fetched::Cached(path));
            }
            self.download_target(target, info, dest_dir)
                .map(Fetched::Downloaded)
        };
        let first = first_occurrences(targets);
        let unique: Vec<usize> = (0..targets.len()).filter(|&i| first[i] == i).collect();
        let workers = self
            .limits
            .download_concurrency
            .clamp(1, unique.len().max(1));
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((i, (target, info))) =
                    unique.get(k).and_then(|&i| targets.get(i).map(|t| (i, t)))
                else {
                    break;
                };
                let result = one(target, info);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                done.push((i, result));
            }
            done
        };
        let mut slots: Vec<Option<Result<Fetched>>> = Vec::new();
        slots.resize_with(targets.len(), || None);
        let mut record = |done: Vec<(usize, Result<Fetched>)>| {
            for (i, r) in done {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(r);
                }
            }
        };
        if workers == 1 {
            // One at a time: on this thread, no thread started.
            record(work());
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
                for h in handles {
                    // A worker only panics on a bug; carry the panic on rather than hide it.
                    record(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                }
            });
        }
        in_order(slots, &first)
    }
}

/// A target named twice is fetched once (two downloads of one name would share its partial
/// file): `first[i]` is the index of the first occurrence of `targets[i]`.
fn first_occurrences(targets: &[(&str, &TargetFile)]) -> Vec<usize> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    targets
        .iter()
        .enumerate()
        .map(|(i, (t, _))| *seen.entry(t).or_insert(i))
        .collect()
}

/// The batch's result in the order of the targets (`slots[i]`: what fetching `targets[i]`
/// gave, if it was fetched; a repeated name takes its first occurrence's result): the error
/// of the first target in that order that failed, if any.
fn in_order(slots: Vec<Option<Result<Fetched>>>, first: &[usize]) -> Result<Vec<Fetched>> {
    let mut out: Vec<Fetched> = Vec::with_capacity(slots.len());
    for (i, slot) in slots.into_iter().enumerate() {
        let again = first.get(i).filter(|&&f| f != i).and_then(|&f| out.get(f));
        if let Some(f) = again {
            out.push(f.clone());
            continue;
        }
        match slot {
            Some(Ok(f)) => out.push(f),
            Some(Err(e)) => return Err(e),
            // Targets are taken in order, so one never started (after a failure) comes
            // after the failed one, whose error is returned above.
            None => {
                return Err(Error::Internal(
                    "a target was neither downloaded nor refused".into(),
                ))
            }
        }
    }
    Ok(out)
}

impl<F: Fetch> Remote<'_, F> {
    fn url(&self, file: &str) -> String {
        format!("{}{file}", self.base)
    }

    /// Fetch at most `max` bytes, and check the bound again rather than trust the fetcher.
    fn fetch(&self, url: &str, max: u64) -> Result<Vec<u8>> {
        let bytes = self.fetcher.fetch(url, max)?;
        if bytes.len() as u64 > max {
            return Err(super::FetchError::TooLarge {
                url: url.into(),
                limit: max,
            }
            .into());
        }
        Ok(bytes)
    }

    fn persist(&self, role: &str, bytes: &[u8]) -> Result<()> {
        self.store
            .write(role, bytes)
            .map_err(Error::store(self.store.path(role)))
    }

    /// A local copy of `role`, if one is readable within the size bound. Anything wrong with
    /// it just means there is no usable local copy.
    fn local(&self, role: &str, max: u64) -> Option<Vec<u8>> {
        self.store.read(role, max).ok().flatten()
    }

    /// Step 1: walk the root chain.
    fn update_root(&self, set: &mut TrustedSet) -> Result<()> {
        for _ in 0..self.limits.max_root_rotations {
            let next = set
                .root()
                .signed
                .version
                .checked_add(1)
                .ok_or_else(|| Error::Internal("root version overflow".into()))?;
            let url = self.url(&format!("{next}.root.json"));
            let bytes = match self.fetch(&url, self.limits.metadata.root) {
                Ok(b) => b,
                Err(Error::Fetch(e)) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            };
            set.update_root(&bytes).map_err(Error::metadata(&url))?;
            self.persist("root", &bytes)?;
        }
        // The bound is reached: carry on with the newest root so far (python-tuf does the
        // same); the next refresh continues the walk from there.
        Ok(())
    }

    /// Step 2: after a rotation of the timestamp or snapshot keys, the local timestamp and
    /// snapshot may carry versions an attacker pushed up with the old keys; forget them, so
    /// they cannot block the legitimate (lower) versions as rollbacks.
    fn forget_on_key_change(&self, before: &Root, after: &Root) -> Result<()> {
        if before.version == after.version {
            return Ok(());
        }
        let changed = |role: &str| {
            let keys = |r: &Root| {
                r.roles.get(role).map(|k| {
                    (
                        k.keyids.iter().cloned().collect::<BTreeSet<_>>(),
                        k.threshold,
                    )
                })
            };
            keys(before) != keys(after)
        };
        if changed("timestamp") || changed("snapshot") {
            for role in ["timestamp", "snapshot"] {
                self.store
                    .remove(role)
                    .map_err(Error::store(self.store.path(role)))?;
            }
        }
        Ok(())
    }

    /// Step 3.
    fn update_timestamp(&self, set: &mut TrustedSet) -> Result<()> {
        let max = self.limits.metadata.timestamp;
        if let Some(bytes) = self.local("timestamp", max) {
            // Kept by the trusted set even when expired: it is the rollback reference.
            let _ = set.update_timestamp(&bytes);
        }
        let url = self.url("timestamp.json");
        let bytes = self.fetch(&url, max)?;
        match set
            .update_timestamp(&bytes)
            .map_err(Error::metadata(&url))?
        {
            Update::Unchanged => Ok(()),
            Update::Replaced => self.persist("timestamp", &bytes),
        }
    }

    /// Step 4.
    fn update_snapshot(&self, set: &mut TrustedSet) -> Result<()> {
        let max = self.limits.metadata.snapshot;
        // The local copy is bounded by the hard ceiling: it may be one whose signed length
        // was above the default bound.
        if let Some(bytes) = self.local("snapshot", self.limits.metadata.signed_ceiling) {
            // Accepted only if it is the very version the new timestamp names; otherwise it
            // stays as the reference the remote one must not roll back from.
            if set.update_snapshot(&bytes, true).is_ok() {
                return Ok(());
            }
        }
        let ts_url = self.url("timestamp.json");
        let meta = set
            .timestamp()
            .ok_or_else(|| internal("timestamp"))?
            .signed
            .snapshot_meta()
            .map_err(Error::metadata(&ts_url))?
            .clone();
        let name = if set.root().signed.consistent_snapshot {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".into()
        };
        let url = self.url(&name);
        let bytes = self.fetch(&url, self.limits.metadata.bound(max, meta.length))?;
        set.update_snapshot(&bytes, false)
            .map_err(Error::metadata(&url))?;
        self.persist("snapshot", &bytes)
    }

    /// Step 5, and every delegated role: make `role` (delegated by `parent`) trusted, from the
    /// local copy if it is the version the snapshot names, else from the repository.
    fn load_targets(&self, set: &mut TrustedSet, role: &str, parent: &str) -> Result<()> {
        if set.targets(role).is_some() {
            if role == "targets" && parent == "root" {
                // The top-level targets role was verified against the trusted root when it
                // was loaded, and that root cannot change since (the trusted set refuses a
                // root update once a timestamp is loaded): checking its signatures again on
                // every lookup was an RSA verification per target.
                return Ok(());
            }
            // Loaded earlier, perhaps through another parent: it must verify against this one.
            let url = self.url(&encode::role_file_name(role));
            return set
                .verify_delegated_targets(role, parent)
                .map_err(Error::metadata(&url));
        }
        let max = self.limits.metadata.targets;
        if let Some(bytes) = self.local(role, self.limits.metadata.signed_ceiling) {
            if set.update_delegated_targets(&bytes, role, parent).is_ok() {
                return Ok(());
            }
        }
        let file = format!("{role}.json");
        let meta = set
            .snapshot()
            .ok_or_else(|| internal("snapshot"))?
            .signed
            .meta
            .get(&file)
            .cloned()
            .ok_or_else(|| Error::Metadata {
                url: self.base.into(),
                source: ota_metadata::Error::Missing {
                    what: file,
                    detail: format!("delegated by {parent} but not listed in the snapshot"),
                },
            })?;
        let role_file = encode::url_segment(role);
        let name = if set.root().signed.consistent_snapshot {
            format!("{}.{role_file}.json", meta.version)
        } else {
            format!("{role_file}.json")
        };
        let url = self.url(&name);
        let bytes = self.fetch(&url, self.limits.metadata.bound(max, meta.length))?;
        set.update_delegated_targets(&bytes, role, parent)
            .map_err(Error::metadata(&url))?;
        self.persist(role, &bytes)
    }
}

/// The hardware ids a role delegated as `child` by `doc` may sign for, given what the path to
/// `doc` allows (`None`: unrestricted): each delegation narrows, none widens.
fn narrow(allowed: Option<&[String]>, doc: &Targets, child: &str) -> Option<Vec<String>> {
    match (allowed, doc.hardware_ids_for(child)) {
        (None, h) => h.map(<[String]>::to_vec),
        (Some(a), None) => Some(a.to_vec()),
        (Some(a), Some(h)) => Some(a.iter().filter(|x| h.contains(x)).cloned().collect()),
    }
}
