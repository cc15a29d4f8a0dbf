//! `ota-repo upload DIR --to URL`: send a published tree to object storage or a directory in
//! the order that keeps what clients see whole ([`plan`]), with the cache rules that keep it
//! fresh behind a CDN, sending only what the store lacks; `--prune` then drops metadata no
//! client can still need ([`prune`]).
//!
//! The three publishers' trees are uploaded alike. The working directory's lock is held (also
//! when the tree is named by its `repository/` path), so a publish cannot change the tree
//! mid-upload; and the timestamp sent is the one read before the store was listed
//! ([`guard::LocalView`]). Before anything is sent the store is checked ([`guard`]): another
//! tree, a fork of this one (a working directory restored from a backup) or a newer state is
//! refused; before the timestamp is sent, everything it leads to must be in the store.

pub mod destination;
pub mod guard;
pub mod plan;
pub mod prune;

use crate::error::{Error, Result};
use crate::fsutil;
use futures::stream::{self, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use plan::Plan;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Files larger than this go up in parts (memory stays bounded by the part size × jobs).
const SINGLE_PUT_MAX: u64 = 32 << 20;
const PART: usize = 8 << 20;
/// Bound on `timestamp.json` and `root.json` read back from the store.
const MAX_MUTABLE: u64 = 16 << 20;

pub struct UploadOpts {
    /// `s3://bucket/prefix`, `file:///path` or a directory.
    pub to: String,
    pub prune: bool,
    /// Transfers in flight at once.
    pub jobs: usize,
    /// `max-age` of `timestamp.json` and `root.json`, in seconds.
    pub short_max_age: u64,
    /// Say what would be sent, send nothing.
    pub dry_run: bool,
    /// S3 settings over the environment's, by their environment names (`AWS_ENDPOINT_URL`…).
    pub s3_config: Vec<(String, String)>,
}

/// What an upload did.
#[derive(Debug, Default)]
pub struct UploadReport {
    pub destination: String,
    /// Objects sent, and their bytes.
    pub sent: usize,
    pub bytes: u64,
    /// Objects the store already held.
    pub already: usize,
    /// Objects dropped by `--prune`.
    pub pruned: usize,
}

/// The tree of `dir`: a working directory's `repository/`, or `dir` itself if it is a tree.
pub fn tree_of(dir: &Path) -> Result<PathBuf> {
    let repo = crate::workdir::repository_path(dir);
    if crate::workdir::settings_path(dir).exists() && repo.join("timestamp.json").exists() {
        return Ok(repo);
    }
    if dir.join("timestamp.json").exists() {
        return Ok(dir.to_path_buf());
    }
    Err(Error::refused(format!(
        "{} holds no published tree (no timestamp.json): publish first",
        dir.display()
    )))
}

/// The working directory whose lock guards the tree of `dir`: `dir` itself, or the working
/// directory whose `repository/` it is (a tree named by its path is still a publisher's).
pub fn working_dir_of(dir: &Path) -> PathBuf {
    if crate::workdir::settings_path(dir).exists() {
        return dir.to_path_buf();
    }
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if let Some(parent) = canon(dir).and_then(|d| d.parent().map(Path::to_path_buf)) {
        if crate::workdir::settings_path(&parent).exists()
            && canon(&crate::workdir::repository_path(&parent)) == canon(dir)
        {
            return parent;
        }
    }
    dir.to_path_buf()
}

/// Every file of the tree: `/`-separated name -> size. Temporary files (`.tmp-*`) are left out.
fn local_files(repo: &Path) -> Result<BTreeMap<String, u64>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) -> Result<()> {
        for e in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let e = e.map_err(Error::io(dir))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let t = e.file_type().map_err(Error::io(&path))?;
            if t.is_dir() {
                walk(base, &path, out)?;
            } else {
                // Regular files only: `tree_check` refused links before.
                let rel = path
                    .strip_prefix(base)
                    .map_err(|_| Error::refused("internal: path outside the tree"))?;
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let len = e.metadata().map_err(Error::io(&path))?.len();
                out.insert(rel.join("/"), len);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(repo, repo, &mut out)?;
    Ok(out)
}

fn store_err(what: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
    move |e| Error::Store {
        what: what.to_string(),
        source: Box::new(e),
    }
}

fn location(prefix: &StorePath, name: &str) -> StorePath {
    name.split('/')
        .fold(prefix.clone(), |p, part| p.child(part))
}

/// The `version` of a signed timestamp's bytes (`None`: not one).
fn timestamp_version(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.pointer("/signed/version")?.as_u64()
}

/// Upload the tree of `dir` as `o` says.
pub fn upload(dir: &Path, o: &UploadOpts) -> Result<UploadReport> {
    let repo = tree_of(dir)?;
    crate::tree_check::check_tree(&repo)?;
    let dest = destination::open(&o.to, &o.s3_config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::io(&repo))?;
    rt.block_on(run(&repo, dest, o))
}

async fn run(repo: &Path, dest: destination::Destination, o: &UploadOpts) -> Result<UploadReport> {
    // Read before the listing: publish writes the timestamp last, so what it names is listed.
    let view = guard::LocalView::read(repo)?;
    let mut local = local_files(repo)?;
    let what = format!("the store at {}", dest.display);
    let remote = list(&dest, &what).await?;
    guard::check_store(&dest, repo, &view, &local, &remote).await?;
    // With --prune, what would be dropped is not sent in the first place.
    let keep = if o.prune {
        Some(store_keep(&dest, repo, &remote).await?)
    } else {
        None
    };
    if let Some(keep) = &keep {
        local.retain(|name, _| !prune::droppable(name, keep));
    }

    let same = same_mutable(&dest, &view, &remote).await?;
    let p: Plan = plan::plan(&local, &remote, |n| same.contains(&n));
    let mut report = UploadReport {
        destination: dest.display.clone(),
        already: p.already,
        ..Default::default()
    };
    if o.dry_run {
        report.sent = p.files();
        report.bytes = p.bytes();
        return Ok(report);
    }

    send(&dest, repo, &view, &remote, &p, o).await?;
    report.sent = p.files();
    report.bytes = p.bytes();

    if let Some(keep) = &keep {
        for name in remote.keys().filter(|n| prune::droppable(n, keep)) {
            dest.store
                .delete(&location(&dest.prefix, name))
                .await
                .map_err(store_err(&what))?;
            report.pruned += 1;
        }
    }
    Ok(report)
}

/// The mutable files the store holds with the local bytes (name and size cannot tell).
async fn same_mutable(
    dest: &destination::Destination,
    view: &guard::LocalView,
    remote: &BTreeMap<String, u64>,
) -> Result<Vec<&'static str>> {
    let mut same = Vec::new();
    for (name, ours) in [
        ("root.json", &view.root),
        ("timestamp.json", &view.timestamp),
    ] {
        if remote.get(name).is_some_and(|&size| size <= MAX_MUTABLE)
            && guard::fetch(dest, name).await?[..] == ours[..]
        {
            same.push(name);
        }
    }
    Ok(same)
}

/// Send the plan phase by phase, each phase's files concurrently (`--jobs`). Before the phase
/// that sends the timestamp, every file it leads to must be in the store or sent: else the
/// timestamp is not sent (clients would fail on it).
async fn send(
    dest: &destination::Destination,
    repo: &Path,
    view: &guard::LocalView,
    remote: &BTreeMap<String, u64>,
    p: &Plan,
    o: &UploadOpts,
) -> Result<()> {
    let progress = Progress::new(p.files(), p.bytes());
    let mut sent = std::collections::BTreeSet::new();
    for phase in &p.phases {
        if phase.iter().any(|s| s.kind == plan::Kind::Timestamp) {
            if let Some(name) = guard::missing_before_timestamp(repo, view, remote, &sent)? {
                return Err(Error::StoreIncomplete {
                    store: dest.display.clone(),
                    name,
                });
            }
        }
        stream::iter(phase.iter().map(Ok::<_, Error>))
            .try_for_each_concurrent(o.jobs.max(1), |s| {
                let progress = &progress;
                async move {
                    let bytes = match s.kind {
                        plan::Kind::Timestamp => Some(view.timestamp.as_slice()),
                        plan::Kind::Root => Some(view.root.as_slice()),
                        _ => None,
                    };
                    put(dest, repo, s, o.short_max_age, bytes).await?;
                    ota_client::fault::point(|| format!("sent {}", s.name));
                    progress.done(s.size);
                    Ok(())
                }
            })
            .await?;
        sent.extend(phase.iter().map(|s| s.name.clone()));
    }
    progress.finish();
    Ok(())
}

/// Every object under the destination's prefix: `/`-separated name -> size.
async fn list(dest: &destination::Destination, what: &str) -> Result<BTreeMap<String, u64>> {
    dest.store
        .list(Some(&dest.prefix))
        .map_ok(|m| {
            let name = m
                .location
                .prefix_match(&dest.prefix)
                .map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_default();
            (name, m.size)
        })
        .try_collect()
        .await
        .map_err(store_err(what))
}

/// What `--prune` keeps: the local tree's current and previous snapshots and what they name,
/// and the same for the store's as the upload found it (its clients are mid-walk in it).
async fn store_keep(
    dest: &destination::Destination,
    repo: &Path,
    remote: &BTreeMap<String, u64>,
) -> Result<prune::Keep> {
    let mut keep = prune::keep(repo)?;
    if !remote.contains_key("timestamp.json") {
        return Ok(keep);
    }
    let ts = guard::fetch(dest, "timestamp.json").await?;
    let current = serde_json::from_slice::<serde_json::Value>(&ts)
        .ok()
        .and_then(|v| v.pointer("/signed/meta/snapshot.json/version")?.as_u64());
    let Some(current) = current else {
        return Ok(keep);
    };
    for n in current.saturating_sub(1).max(1)..=current {
        let name = format!("{n}.snapshot.json");
        if !remote.contains_key(&name) {
            continue;
        }
        let snap: serde_json::Value = serde_json::from_slice(&guard::fetch(dest, &name).await?)
            .map_err(|e| Error::refused(format!("{name} in {}: {e}", dest.display)))?;
        prune::keep_snapshot(&mut keep, n, &snap, Path::new(&name))?;
    }
    Ok(keep)
}

/// Send one file with its cache rules.
/// Send one file with its cache rules: `bytes` when given (the view read before the listing),
/// else the file's.
async fn put(
    dest: &destination::Destination,
    repo: &Path,
    s: &plan::Send,
    short_max_age: u64,
    bytes: Option<&[u8]>,
) -> Result<()> {
    let path = repo.join(&s.name);
    let at = location(&dest.prefix, &s.name);
    let what = format!("sending {} to {}", s.name, dest.display);
    let mut attributes = Attributes::new();
    if dest.attributes {
        attributes.insert(
            Attribute::CacheControl,
            AttributeValue::from(plan::cache_control(s.kind, short_max_age)),
        );
        attributes.insert(
            Attribute::ContentType,
            AttributeValue::from(plan::content_type(&s.name)),
        );
    }
    if let Some(bytes) = bytes {
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        dest.store
            .put_opts(&at, PutPayload::from(bytes.to_vec()), opts)
            .await
            .map_err(store_err(&what))?;
        return Ok(());
    }
    if s.size <= SINGLE_PUT_MAX {
        let bytes = fsutil::read_bounded(&path, SINGLE_PUT_MAX)?;
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        dest.store
            .put_opts(&at, PutPayload::from(bytes), opts)
            .await
            .map_err(store_err(&what))?;
        return Ok(());
    }
    let upload = dest
        .store
        .put_multipart_opts(
            &at,
            PutMultipartOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .map_err(store_err(&what))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut f = std::fs::File::open(&path).map_err(Error::io(&path))?;
    let mut buf = vec![0u8; PART];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(&path))?;
        if n == 0 {
            break;
        }
        w.wait_for_capacity(2).await.map_err(store_err(&what))?;
        w.write(&buf[..n]);
    }
    w.finish().await.map_err(store_err(&what))?;
    Ok(())
}

/// Progress on a terminal: files and bytes sent so far (nothing when stderr is not one).
struct Progress {
    files: usize,
    bytes: u64,
    done_files: AtomicUsize,
    done_bytes: AtomicU64,
    tty: bool,
}

impl Progress {
    fn new(files: usize, bytes: u64) -> Self {
        Progress {
            files,
            bytes,
            done_files: AtomicUsize::new(0),
            done_bytes: AtomicU64::new(0),
            tty: std::io::stderr().is_terminal(),
        }
    }
    fn done(&self, size: u64) {
        let f = self.done_files.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.done_bytes.fetch_add(size, Ordering::Relaxed) + size;
        if self.tty {
            let pct = (b.saturating_mul(100))
                .checked_div(self.bytes)
                .unwrap_or(100);
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\ruploading: {f}/{} files, {pct}% of {} bytes",
                self.files, self.bytes
            );
            let _ = e.flush();
        }
    }
    fn finish(&self) {
        if self.tty && self.files > 0 {
            eprintln!();
        }
    }
}
