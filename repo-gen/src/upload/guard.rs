//! What the store must be before anything is sent to it, and before its timestamp is replaced.
//!
//! Three copies of the truth meet here: the working directory's tree, what the store serves,
//! and what clients hold. The store's wins over a local tree that disagrees with it:
//! - **the same tree**: every root version both hold has the same bytes, and the store's
//!   `root.json` is one of this tree's roots; otherwise the store holds another party's tree
//!   (a wrong `--to`) and nothing is sent;
//! - **not a fork**: a versioned file the local timestamp leads to (`N.snapshot.json` and the
//!   role versions it names) that the store already holds must have the same bytes, and so
//!   must a timestamp of the same version; otherwise the local tree was restored from a backup
//!   or forked after the store's version was published, and sending its timestamp would name
//!   files the store serves with other bytes;
//! - **not behind**: a store timestamp of a higher version is refused (`Error::StoreAhead`);
//! - **complete before the timestamp**: every file the timestamp leads to (its snapshot, the
//!   role versions that names, the targets those list) is in the store before the timestamp
//!   goes up ([`missing_before_timestamp`]).
//!
//! The local timestamp and root are read once, before the store is listed ([`LocalView`]):
//! publish writes the timestamp last, so everything it names is on disk by then, and the bytes
//! sent are that view, whatever a publish running meanwhile writes.

use super::destination::Destination;
use super::{location, store_err, timestamp_version, MAX_MUTABLE};
use crate::error::{Error, Result};
use crate::fsutil;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bound on a versioned metadata file read back from the store or the tree.
const MAX_METADATA: u64 = 128 << 20;

/// The local tree's mutable files, read once.
pub struct LocalView {
    pub timestamp: Vec<u8>,
    pub root: Vec<u8>,
}

impl LocalView {
    pub fn read(repo: &Path) -> Result<Self> {
        Ok(LocalView {
            timestamp: fsutil::read_bounded(&repo.join("timestamp.json"), MAX_MUTABLE)?,
            root: fsutil::read_bounded(&repo.join("root.json"), MAX_MUTABLE)?,
        })
    }
}

/// The bytes of `name` in the store.
pub async fn fetch(dest: &Destination, name: &str) -> Result<Vec<u8>> {
    let what = format!("reading {name} from {}", dest.display);
    let bytes = dest
        .store
        .get(&location(&dest.prefix, name))
        .await
        .map_err(store_err(&what))?
        .bytes()
        .await
        .map_err(store_err(&what))?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(Error::refused(format!(
            "{what}: {} bytes, over {MAX_METADATA}",
            bytes.len()
        )));
    }
    Ok(bytes.to_vec())
}

fn json(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes).ok()
}

/// The version of a root document's bytes (`None`: not a root).
fn root_version(bytes: &[u8]) -> Option<u64> {
    let v = json(bytes)?;
    (v.pointer("/signed/_type")?.as_str()? == "root")
        .then(|| v.pointer("/signed/version")?.as_u64())
        .flatten()
}

/// `N` of a root chain file name `N.root.json`.
fn chain_version(name: &str) -> Option<u64> {
    name.strip_suffix(".root.json")?.parse().ok()
}

/// The versioned metadata `timestamp` leads to in the tree at `repo`: its snapshot and every
/// role version the snapshot names (consistent-snapshot names).
pub fn reached_metadata(repo: &Path, timestamp: &[u8]) -> Result<Vec<String>> {
    let bad = |reason: &str| Error::Config {
        path: repo.join("timestamp.json"),
        reason: reason.to_string(),
    };
    let ts = json(timestamp).ok_or_else(|| bad("not JSON"))?;
    let n = ts
        .pointer("/signed/meta/snapshot.json/version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("names no snapshot version"))?;
    let snapshot = format!("{n}.snapshot.json");
    let snap_path = repo.join(&snapshot);
    let snap =
        json(&fsutil::read_bounded(&snap_path, MAX_METADATA)?).ok_or_else(|| Error::Config {
            path: snap_path.clone(),
            reason: "not JSON".into(),
        })?;
    let mut out = vec![snapshot];
    if let Some(meta) = snap
        .pointer("/signed/meta")
        .and_then(serde_json::Value::as_object)
    {
        for (file, m) in meta {
            if let Some(v) = m.get("version").and_then(serde_json::Value::as_u64) {
                out.push(format!("{v}.{file}"));
            }
        }
    }
    Ok(out)
}

/// The target files the targets roles among `reached` list (`targets/SHA256.name`), as the
/// tree at `repo` holds them.
fn reached_targets(repo: &Path, reached: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in reached {
        let Some(v) = fsutil::read_bounded(&repo.join(name), MAX_METADATA)
            .ok()
            .and_then(|b| json(&b))
        else {
            continue;
        };
        if v.pointer("/signed/_type")
            .and_then(serde_json::Value::as_str)
            != Some("targets")
        {
            continue;
        }
        let Some(targets) = v
            .pointer("/signed/targets")
            .and_then(serde_json::Value::as_object)
        else {
            continue;
        };
        for (target, info) in targets {
            if let Some(sha) = info.pointer("/hashes/sha256").and_then(|h| h.as_str()) {
                out.insert(format!("targets/{sha}.{target}"));
            }
        }
    }
    out
}

/// Refuse a store that holds another tree, a fork of this one, or a newer state (see the
/// module documentation). `local` and `remote` list the files (name -> size).
pub async fn check_store(
    dest: &Destination,
    repo: &Path,
    view: &LocalView,
    local: &BTreeMap<String, u64>,
    remote: &BTreeMap<String, u64>,
) -> Result<()> {
    let other = |reason: String| Error::StoreOtherTree {
        store: dest.display.clone(),
        reason,
    };
    // The same tree: the root chains agree where they overlap, and go no further in the store.
    let newest_local = local.keys().filter_map(|n| chain_version(n)).max();
    for name in remote.keys().filter(|n| chain_version(n).is_some()) {
        if !local.contains_key(name) {
            return Err(other(format!(
                "it holds {name}, a root this tree does not have (newest here: {})",
                newest_local.map_or("none".into(), |v| format!("{v}.root.json"))
            )));
        }
        let ours = fsutil::read_bounded(&repo.join(name), MAX_MUTABLE)?;
        if fetch(dest, name).await? != ours {
            return Err(other(format!("its {name} is not this tree's")));
        }
    }
    if remote.contains_key("root.json") {
        let theirs = fetch(dest, "root.json").await?;
        let same = root_version(&theirs)
            .map(|v| format!("{v}.root.json"))
            .filter(|n| local.contains_key(n))
            .map(|n| fsutil::read_bounded(&repo.join(&n), MAX_MUTABLE))
            .transpose()?
            .is_some_and(|ours| ours == theirs);
        if !same {
            return Err(other("its root.json is none of this tree's roots".into()));
        }
    } else if remote.contains_key("timestamp.json") {
        return Err(other("it serves a timestamp.json but no root.json".into()));
    }
    // Not behind, not a fork.
    if remote.contains_key("timestamp.json") {
        let theirs = fetch(dest, "timestamp.json").await?;
        if let (Some(t), Some(l)) = (
            timestamp_version(&theirs),
            timestamp_version(&view.timestamp),
        ) {
            if t > l {
                return Err(Error::StoreAhead {
                    store: dest.display.clone(),
                    remote: t,
                    local: l,
                });
            }
            if t == l && theirs != view.timestamp {
                return Err(Error::StoreForked {
                    store: dest.display.clone(),
                    name: "timestamp.json".into(),
                });
            }
        }
        not_rolled_back(dest, repo, &theirs, &view.timestamp).await?;
    }
    for name in reached_metadata(repo, &view.timestamp)? {
        if !remote.contains_key(&name) {
            continue;
        }
        let ours = fsutil::read_bounded(&repo.join(&name), MAX_METADATA)?;
        if fetch(dest, &name).await? != ours {
            return Err(Error::StoreForked {
                store: dest.display.clone(),
                name,
            });
        }
    }
    Ok(())
}

/// The snapshot version a timestamp names, and the role versions that snapshot names (read
/// from `snapshot`, the snapshot's bytes).
fn named_versions(
    timestamp: &[u8],
    snapshot: impl FnOnce(u64) -> Option<Vec<u8>>,
) -> Option<(u64, BTreeMap<String, u64>)> {
    let s = json(timestamp)?
        .pointer("/signed/meta/snapshot.json/version")?
        .as_u64()?;
    let mut roles = BTreeMap::new();
    if let Some(meta) = snapshot(s)
        .and_then(|b| json(&b))
        .and_then(|v| v.pointer("/signed/meta").cloned())
        .and_then(|m| m.as_object().cloned())
    {
        for (name, m) in meta {
            if let Some(v) = m.get("version").and_then(serde_json::Value::as_u64) {
                roles.insert(name, v);
            }
        }
    }
    Some((s, roles))
}

/// Not rolled back: the local timestamp must not name a snapshot, nor the snapshot a role
/// version, below what the store's names. Clients hold the store's; a tree restored from a
/// backup and published again (a new timestamp over an old snapshot) would lock every one of
/// them out, and later uploads could not repair it.
async fn not_rolled_back(
    dest: &Destination,
    repo: &Path,
    theirs: &[u8],
    ours: &[u8],
) -> Result<()> {
    let Some(store_snapshot) =
        json(theirs).and_then(|v| v.pointer("/signed/meta/snapshot.json/version")?.as_u64())
    else {
        return Ok(());
    };
    let store_bytes = fetch(dest, &format!("{store_snapshot}.snapshot.json"))
        .await
        .ok();
    let Some((s_store, roles_store)) = named_versions(theirs, |_| store_bytes) else {
        return Ok(());
    };
    let Some((s_local, roles_local)) = named_versions(ours, |v| {
        fsutil::read_bounded(&repo.join(format!("{v}.snapshot.json")), MAX_METADATA).ok()
    }) else {
        return Ok(());
    };
    let behind = std::iter::once(("snapshot.json".to_string(), s_store, s_local)).chain(
        roles_store.iter().filter_map(|(name, v)| {
            roles_local
                .get(name)
                .filter(|l| *l < v)
                .map(|l| (name.clone(), *v, *l))
        }),
    );
    for (name, store, local) in behind {
        if local < store {
            return Err(Error::refused(format!(
                "{} serves version {store} of {name}, and this tree's timestamp names version {local}: the working directory was restored from an older backup (clients hold version {store} and would refuse the lower one). Restore a backup at least as new as what the store serves; nothing was sent",
                dest.display
            )));
        }
    }
    Ok(())
}

/// The first file the local timestamp leads to that is in neither `remote` nor `sent`, if any:
/// the timestamp must not go up before it.
pub fn missing_before_timestamp(
    repo: &Path,
    view: &LocalView,
    remote: &BTreeMap<String, u64>,
    sent: &BTreeSet<String>,
) -> Result<Option<String>> {
    let reached = reached_metadata(repo, &view.timestamp)?;
    let targets = reached_targets(repo, &reached);
    Ok(reached
        .into_iter()
        .chain(targets)
        .find(|n| !remote.contains_key(n) && !sent.contains(n)))
}
