//! `upload --prune`: which versioned metadata the store may drop. A client may still be
//! walking the current snapshot or the one before it (it read the previous timestamp a moment
//! ago), so every role version either of those two snapshots names is kept, and everything
//! newer; older `N.role.json` files are dropped. "Current" is both the local tree's and the
//! store's as the upload found it: the store may have been serving an older state than the
//! local tree's previous one (several publishes between two uploads), and its clients are
//! mid-walk in it. The root chain (`N.root.json`) is never
//! dropped: a client that was offline for a year walks it from the root it holds. Targets and
//! other content-addressed files are kept (a vehicle may resume an old download).

use crate::error::{Error, Result};
use crate::fsutil;
use std::collections::BTreeMap;
use std::path::Path;

/// For each role (by its file name, `targets.json`), the oldest version to keep.
pub type Keep = BTreeMap<String, u64>;

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = fsutil::read_bounded(path, 1 << 30)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn version_of(v: &serde_json::Value, file: &str, path: &Path) -> Result<u64> {
    v.pointer("/signed/meta")
        .and_then(|m| m.get(file))
        .and_then(|m| m.get("version"))
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            reason: format!("no version for {file}"),
        })
}

/// The oldest version of each role to keep, from the local tree `repo`: what its current and
/// previous snapshots name.
pub fn keep(repo: &Path) -> Result<Keep> {
    let ts_path = repo.join("timestamp.json");
    let ts = read_json(&ts_path)?;
    let current = version_of(&ts, "snapshot.json", &ts_path)?;
    // The previous snapshot is kept when there is one.
    let oldest_snapshot =
        if current > 1 && repo.join(format!("{}.snapshot.json", current - 1)).exists() {
            current - 1
        } else {
            current
        };
    let mut snapshots = Vec::new();
    for n in oldest_snapshot..=current {
        let path = repo.join(format!("{n}.snapshot.json"));
        snapshots.push((n, read_json(&path)?, path));
    }
    let mut keep = Keep::new();
    for (n, snap, path) in &snapshots {
        keep_snapshot(&mut keep, *n, snap, path)?;
    }
    Ok(keep)
}

/// Keep snapshot version `n` (`snap`, read from `from`) and every role version it names, on
/// top of what `keep` keeps already (the store's snapshots are added to the local tree's this
/// way: what clients were served a moment ago stays, whatever the local tree holds).
pub fn keep_snapshot(keep: &mut Keep, n: u64, snap: &serde_json::Value, from: &Path) -> Result<()> {
    let lower = |keep: &mut Keep, file: &str, v: u64| {
        keep.entry(file.to_string())
            .and_modify(|k| *k = (*k).min(v))
            .or_insert(v);
    };
    lower(keep, "snapshot.json", n);
    let meta = snap
        .pointer("/signed/meta")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| Error::Config {
            path: from.to_path_buf(),
            reason: "no meta".into(),
        })?;
    for file in meta.keys() {
        let v = version_of(snap, file, from)?;
        lower(keep, file, v);
    }
    Ok(())
}

/// Whether `name` (a path in the store, relative to the tree) may be dropped under `keep`.
pub fn droppable(name: &str, keep: &Keep) -> bool {
    if name.contains('/') {
        return false;
    }
    let Some((n, file)) = name.split_once('.') else {
        return false;
    };
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    if file == "root.json" {
        return false;
    }
    keep.get(file).is_some_and(|&oldest| n < oldest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_chain_and_what_the_last_two_snapshots_name_are_kept() {
        let keep: Keep = [
            ("snapshot.json", 7),
            ("targets.json", 3),
            ("review.json", 5),
        ]
        .into_iter()
        .map(|(f, v)| (f.to_string(), v))
        .collect();
        assert!(droppable("6.snapshot.json", &keep));
        assert!(!droppable("7.snapshot.json", &keep));
        assert!(!droppable("8.snapshot.json", &keep));
        assert!(droppable("2.targets.json", &keep));
        assert!(!droppable("3.targets.json", &keep));
        assert!(!droppable("1.root.json", &keep));
        // A role neither snapshot names is kept (it is not ours to judge).
        assert!(!droppable("1.other.json", &keep));
        assert!(!droppable("timestamp.json", &keep));
        assert!(!droppable("root.json", &keep));
        assert!(!droppable(
            &format!("targets/{}.x.bin", "ab".repeat(32)),
            &keep
        ));
    }
}
