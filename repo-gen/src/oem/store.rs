//! The OEM's per-vehicle state (inventory and assignments), sharded so that a command about one
//! vehicle, and the publish that follows it, read and write a few small files whatever the
//! fleet size.
//!
//! ```text
//! DIR/inventory/KKK.json     the vehicles whose locator starts with hex KKK (4096 shards)
//! DIR/assignments/KKK.json   their assignments
//! DIR/removed/KKK.json       the vehicles `oem vehicle remove` took out (their tombstones)
//! DIR/pending/KKK            a shard changed since the last publish (written before the shard)
//! DIR/keys/fleet.secret      the fleet secret every vehicle's secret and locator derive from
//! ```
//! The shard of a VIN is the first `DIR_DIGITS` hex digits of its locator in the published
//! tree ([`super::privacy`]), so a shard is one subtree of the tree and the publisher builds
//! the tree shard by shard. Shards are pretty JSON, as the single
//! `inventory.json`/`assignments.json` of earlier versions were; those are migrated into shards
//! the first time the directory is used, and shards of the earlier SHA-256(VIN) layout are
//! moved to their locators' shards when the fleet secret is first made.

use super::privacy;
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::fleet::FleetSecret;
use ota_metadata::documents::vehicles::DIR_DIGITS;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const INVENTORY_DIR: &str = "inventory";
pub const ASSIGNMENTS_DIR: &str = "assignments";
pub const PENDING_DIR: &str = "pending";
/// Vehicles removed by `oem vehicle remove` (VIN -> when): a vehicle the published tree lists
/// but the inventory lacks is refused unless it is here (the state was lost or restored).
pub const REMOVED_DIR: &str = "removed";
/// Bound on one shard file (a shard holds about 1/4096 of the fleet).
const MAX_SHARD: u64 = 256 << 20;

/// The shard of `vin`: the first hex digits of its locator.
pub fn shard_of(fleet: &FleetSecret, vin: &str) -> String {
    let mut l = fleet.vehicle(vin).locator();
    l.truncate(DIR_DIGITS);
    l
}

fn is_shard_name(s: &str) -> bool {
    s.len() == DIR_DIGITS && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which shards a loaded map covers, and what each held when read (to write back only what
/// changed).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scope {
    /// `None`: the whole fleet (saving it replaces every shard).
    shards: Option<BTreeSet<String>>,
    digests: BTreeMap<String, [u8; 32]>,
}

/// The shard files present for `kind`.
pub(crate) fn shard_files(dir: &Path, kind: &str) -> Result<BTreeSet<String>> {
    let d = dir.join(kind);
    let mut out = BTreeSet::new();
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::Io { path: d, source: e }),
    };
    for e in rd {
        let e = e.map_err(Error::io(&d))?;
        if let Some(s) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| is_shard_name(n))
        {
            out.insert(s.to_string());
        }
    }
    Ok(out)
}

fn shard_path(dir: &Path, kind: &str, shard: &str) -> PathBuf {
    dir.join(kind).join(format!("{shard}.json"))
}

/// A shard's vehicles and the digest of the file they were read from (`None` if absent).
pub(crate) type Shard<V> = (BTreeMap<String, V>, Option<[u8; 32]>);

/// One shard: its vehicles and the digest of the file read.
pub(crate) fn read_shard<V: DeserializeOwned>(
    dir: &Path,
    kind: &str,
    shard: &str,
) -> Result<Shard<V>> {
    let fleet = privacy::fleet_secret(dir)?;
    let (map, digest) = read_shard_file::<V>(dir, kind, shard)?;
    if let Some(vin) = map.keys().find(|v| shard_of(&fleet, v) != shard) {
        return Err(Error::Config {
            path: shard_path(dir, kind, shard),
            reason: format!("{vin} belongs in shard {}, not here", shard_of(&fleet, vin)),
        });
    }
    Ok((map, digest))
}

/// A shard file as it is, without checking that its vehicles belong there: for a caller that
/// computes every vehicle's locator anyway and checks it ([`super::fleet`]'s publish, where
/// the check would double the cost of deriving a million locators).
pub(crate) fn read_shard_file<V: DeserializeOwned>(
    dir: &Path,
    kind: &str,
    shard: &str,
) -> Result<Shard<V>> {
    let path = shard_path(dir, kind, shard);
    if !path.exists() {
        return Ok((BTreeMap::new(), None));
    }
    let bytes = fsutil::read_bounded(&path, MAX_SHARD)?;
    let map: BTreeMap<String, V> = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok((map, Some(Sha256::digest(&bytes).into())))
}

/// Load the shards of `vins` (`None`: every shard).
pub(crate) fn load<V: DeserializeOwned>(
    dir: &Path,
    kind: &str,
    vins: Option<&[&str]>,
) -> Result<(BTreeMap<String, V>, Scope)> {
    migrate(dir)?;
    let fleet = privacy::fleet_secret(dir)?;
    let shards: BTreeSet<String> = match vins {
        Some(v) => v.iter().map(|v| shard_of(&fleet, v)).collect(),
        None => shard_files(dir, kind)?,
    };
    let mut all = BTreeMap::new();
    let mut digests = BTreeMap::new();
    for s in &shards {
        let (m, d) = read_shard::<V>(dir, kind, s)?;
        all.extend(m);
        if let Some(d) = d {
            digests.insert(s.clone(), d);
        }
    }
    Ok((
        all,
        Scope {
            shards: vins.map(|_| shards),
            digests,
        },
    ))
}

/// Write back the shards of `scope` that changed, marking each pending for the publisher
/// first. Returns the shards written.
pub(crate) fn save<V: Serialize>(
    dir: &Path,
    kind: &str,
    vehicles: &BTreeMap<String, V>,
    scope: &Scope,
) -> Result<BTreeSet<String>> {
    let fleet = privacy::fleet_secret(dir)?;
    let mut grouped: BTreeMap<String, BTreeMap<&str, &V>> = BTreeMap::new();
    for (vin, v) in vehicles {
        grouped
            .entry(shard_of(&fleet, vin))
            .or_default()
            .insert(vin, v);
    }
    let in_scope: BTreeSet<String> = match &scope.shards {
        Some(s) => {
            if let Some(g) = grouped.keys().find(|g| !s.contains(*g)) {
                return Err(Error::refused(format!(
                    "internal: shard {g} was changed without being loaded"
                )));
            }
            s.clone()
        }
        None => grouped
            .keys()
            .cloned()
            .chain(shard_files(dir, kind)?)
            .collect(),
    };
    let mut changes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for s in in_scope {
        match grouped.get(&s) {
            Some(g) => {
                let bytes = ota_metadata::canonical::to_pretty(g)?;
                let d: [u8; 32] = Sha256::digest(&bytes).into();
                if scope.digests.get(&s) != Some(&d) {
                    changes.push((s, Some(bytes)));
                }
            }
            None => {
                if shard_path(dir, kind, &s).exists() {
                    changes.push((s, None));
                }
            }
        }
    }
    mark_pending(dir, changes.iter().map(|(s, _)| s.as_str()))?;
    let mut written = BTreeSet::new();
    for (s, bytes) in changes {
        let path = shard_path(dir, kind, &s);
        match bytes {
            Some(b) => fsutil::write_atomic(&path, &b)?,
            None => std::fs::remove_file(&path).map_err(Error::io(&path))?,
        }
        written.insert(s);
    }
    Ok(written)
}

/// Record shards as changed since the last publish (durably, before they change).
pub(crate) fn mark_pending<'a>(dir: &Path, shards: impl Iterator<Item = &'a str>) -> Result<()> {
    let d = dir.join(PENDING_DIR);
    let mut any = false;
    for s in shards {
        if !any {
            std::fs::create_dir_all(&d).map_err(Error::io(&d))?;
            any = true;
        }
        let p = d.join(s);
        File::create(&p).map_err(Error::io(&p))?;
    }
    if any {
        if let Ok(f) = File::open(&d) {
            let _ = f.sync_all();
        }
    }
    Ok(())
}

/// The shards changed since the last publish.
pub(crate) fn pending(dir: &Path) -> Result<BTreeSet<String>> {
    let d = dir.join(PENDING_DIR);
    let mut out = BTreeSet::new();
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::Io { path: d, source: e }),
    };
    for e in rd {
        let e = e.map_err(Error::io(&d))?;
        if let Some(n) = e.file_name().to_str().filter(|n| is_shard_name(n)) {
            out.insert(n.to_string());
        }
    }
    Ok(out)
}

/// Forget the pending marks of `shards` (after a publish recorded them).
pub(crate) fn clear_pending(dir: &Path, shards: &BTreeSet<String>) -> Result<()> {
    let d = dir.join(PENDING_DIR);
    for s in shards {
        let p = d.join(s);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { path: p, source: e }),
        }
    }
    Ok(())
}

/// Move the state of earlier versions into the current layout, once: shards of the
/// SHA-256(VIN) layout to their locators' shards (when the fleet secret is first made), and
/// the single files (`inventory.json`, `assignments.json`) into shards, each kept as
/// `NAME.migrated`.
pub(crate) fn migrate(dir: &Path) -> Result<()> {
    if privacy::needs_fleet_secret(dir) {
        reshard(dir)?;
    }
    for (old, kind) in [
        ("inventory.json", INVENTORY_DIR),
        ("assignments.json", ASSIGNMENTS_DIR),
    ] {
        let path = dir.join(old);
        if !path.exists() {
            continue;
        }
        let bytes = fsutil::read_bounded(&path, 1 << 34)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // inventory.json was {"vehicles": {...}}; assignments.json the map itself.
        let map: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(if kind == INVENTORY_DIR {
                v.get("vehicles").cloned().unwrap_or_default()
            } else {
                v
            })
            .map_err(|e| Error::Config {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if !shard_files(dir, kind)?.is_empty() {
            return Err(Error::refused(format!(
                "{} and {}/ both exist: remove the one that is out of date",
                path.display(),
                dir.join(kind).display()
            )));
        }
        save(dir, kind, &map, &Scope::default())?;
        let to = dir.join(format!("{old}.migrated"));
        std::fs::rename(&path, &to).map_err(Error::io(&path))?;
    }
    // Report state moved from the inventory's shards into the report database: imported
    // before any command rewrites a shard without the fields.
    super::reports::import_legacy_once(dir)
}

/// Make the fleet secret and move every shard of the earlier layout to its vehicles' locator
/// shards. The secret is made under a temporary name and takes its own name last, so a crash
/// anywhere leaves a state the next run finishes: it reads every shard as it is (old layout,
/// new layout, or both, the same vehicles either way), groups them again under the same new
/// secret, and swaps each kind's directory in by renames it can tell apart.
fn reshard(dir: &Path) -> Result<()> {
    let kinds = [INVENTORY_DIR, ASSIGNMENTS_DIR, REMOVED_DIR];
    for kind in kinds {
        let (live, stale) = (dir.join(kind), dir.join(format!("{kind}.sha256-vin")));
        if stale.exists() {
            if live.exists() {
                // Cut after the new shards went in: the old ones are only a leftover.
                std::fs::remove_dir_all(&stale).map_err(Error::io(&stale))?;
            } else {
                // Cut between the two renames: the old shards are the state.
                std::fs::rename(&stale, &live).map_err(Error::io(&stale))?;
            }
        }
    }
    let fleet = privacy::fleet_secret_to_be(dir)?;
    for kind in kinds {
        let files = shard_files(dir, kind)?;
        if files.is_empty() {
            continue;
        }
        let mut all = BTreeMap::new();
        for f in &files {
            all.extend(read_shard_file::<serde_json::Value>(dir, kind, f)?.0);
        }
        let mut grouped: BTreeMap<String, BTreeMap<&str, &serde_json::Value>> = BTreeMap::new();
        for (vin, v) in &all {
            grouped
                .entry(shard_of(&fleet, vin))
                .or_default()
                .insert(vin, v);
        }
        let fresh = dir.join(format!("{kind}.resharded"));
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(Error::io(&fresh))?;
        }
        std::fs::create_dir_all(&fresh).map_err(Error::io(&fresh))?;
        for (s, g) in &grouped {
            let bytes = ota_metadata::canonical::to_pretty(g)?;
            fsutil::write_atomic(&fresh.join(format!("{s}.json")), &bytes)?;
        }
        mark_pending(dir, grouped.keys().map(String::as_str))?;
        let (live, stale) = (dir.join(kind), dir.join(format!("{kind}.sha256-vin")));
        std::fs::rename(&live, &stale).map_err(Error::io(&live))?;
        std::fs::rename(&fresh, &live).map_err(Error::io(&fresh))?;
        std::fs::remove_dir_all(&stale).map_err(Error::io(&stale))?;
    }
    privacy::commit_fleet_secret(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_round_trip_and_only_changed_ones_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        migrate(dir).unwrap();
        let f = privacy::fleet_secret(dir).unwrap();
        let shard_of = |v: &str| shard_of(&f, v);
        let mut m: BTreeMap<String, u32> = (0..50).map(|i| (format!("VIN{i}"), i)).collect();
        let written = save(dir, "k", &m, &Scope::default()).unwrap();
        assert_eq!(written.len(), shard_files(dir, "k").unwrap().len());
        assert_eq!(pending(dir).unwrap(), written);
        clear_pending(dir, &written).unwrap();

        // One vehicle, loaded through its shard alone.
        let (mut one, scope) = load::<u32>(dir, "k", Some(&["VIN7"])).unwrap();
        assert!(one.contains_key("VIN7") && one.len() < 50);
        *one.get_mut("VIN7").unwrap() = 700;
        let w = save(dir, "k", &one, &scope).unwrap();
        assert_eq!(w, BTreeSet::from([shard_of("VIN7")]));
        assert_eq!(pending(dir).unwrap(), w);
        // Saving again changes nothing.
        let (again, scope) = load::<u32>(dir, "k", Some(&["VIN7"])).unwrap();
        assert!(save(dir, "k", &again, &scope).unwrap().is_empty());
        // A vehicle of a shard not loaded is refused.
        let mut bad = again.clone();
        let other = (0..50)
            .map(|i| format!("VIN{i}"))
            .find(|v| shard_of(v) != shard_of("VIN7"))
            .unwrap();
        bad.insert(other, 1);
        assert!(save(dir, "k", &bad, &scope).is_err());

        let (all, _) = load::<u32>(dir, "k", None).unwrap();
        m.insert("VIN7".into(), 700);
        assert_eq!(all, m);
    }

    #[test]
    fn single_file_state_is_migrated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("assignments.json"), r#"{"VIN1": {}, "VIN2": {}}"#).unwrap();
        let (m, _) = load::<serde_json::Value>(dir, ASSIGNMENTS_DIR, None).unwrap();
        assert_eq!(m.len(), 2);
        assert!(dir.join("assignments.json.migrated").exists());
        assert!(!dir.join("assignments.json").exists());
    }

    #[test]
    fn shards_of_the_sha256_vin_layout_move_to_their_locators() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // The earlier layout: shards named by SHA-256(VIN), no fleet secret.
        let vins: Vec<String> = (0..40).map(|i| format!("VIN{i}")).collect();
        for (kind, n) in [(INVENTORY_DIR, 40), (ASSIGNMENTS_DIR, 30), (REMOVED_DIR, 0)] {
            let mut by: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
            for (i, v) in vins.iter().take(n).enumerate() {
                let k = hex::encode(Sha256::digest(v.as_bytes()))[..DIR_DIGITS].to_string();
                by.entry(k).or_default().insert(v.clone(), i as u32);
            }
            std::fs::create_dir_all(dir.join(kind)).unwrap();
            for (k, m) in by {
                std::fs::write(shard_path(dir, kind, &k), serde_json::to_vec(&m).unwrap()).unwrap();
            }
        }
        // A cut between the renames of an earlier attempt: the old shards were moved aside.
        std::fs::rename(
            dir.join(ASSIGNMENTS_DIR),
            dir.join("assignments.sha256-vin"),
        )
        .unwrap();
        let (inv, _) = load::<u32>(dir, INVENTORY_DIR, None).unwrap();
        assert_eq!(inv.len(), 40);
        let (asg, _) = load::<u32>(dir, ASSIGNMENTS_DIR, None).unwrap();
        assert_eq!(asg.len(), 30);
        // Every vehicle is found through its own (new) shard, and all were marked pending.
        let f = privacy::fleet_secret(dir).unwrap();
        let (one, _) = load::<u32>(dir, INVENTORY_DIR, Some(&["VIN7"])).unwrap();
        assert_eq!(one.get("VIN7"), Some(&7));
        assert!(pending(dir).unwrap().contains(&shard_of(&f, "VIN7")));
        assert!(!dir.join("assignments.sha256-vin").exists());
    }
}
