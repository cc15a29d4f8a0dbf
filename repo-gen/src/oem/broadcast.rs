//! Broadcast encryption of content keys (issue 11), the OEM's half: the OEM decides who may
//! decrypt an encrypted image. Each receiver (a vehicle's gateway, or an authorized regulator)
//! is a leaf of a complete-subtree tree (`ota_crypt::subtree`) and is issued the node keys of
//! its path once, as a key file installed at the factory; the content key of each image
//! submitted for review is wrapped for every leaf not excluded, and the wraps are published
//! as content-addressed shards under `repository/wraps/`.
//!
//! ```text
//! DIR/keys/broadcast.secret  the tree's secret (64 hex digits, mode 0600): every node key
//!                            derives from it. Back it up with the root keys: losing it means
//!                            issuing every vehicle new keys.
//! DIR/broadcast.json         depth, next free leaf, excluded leaves, regulators' leaves
//! ```
//! A vehicle's leaf is kept in its inventory record. Excluding a receiver (`vehicle
//! revoke-keys`) leaves everyone else's keys as they are: wraps of images submitted from then
//! on cover every leaf but the excluded ones.

use super::{read_state, write_state, Inventory};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::receiver::ReceiverKeys;
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::wrap_set::{WrapSet, DEFAULT_SHARD_DEPTH};
use ota_crypt::Key;
use ota_metadata::documents::key_wraps::WRAPS_DIR;
use ota_metadata::documents::{KeyWraps, ShardFile};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const STATE: &str = "broadcast.json";
pub const SECRET: &str = "keys/broadcast.secret";
/// 2^20 receivers (about a million vehicles): each holds 21 node keys.
pub const DEFAULT_DEPTH: u8 = 20;

/// `DIR/broadcast.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub depth: u8,
    pub shard_depth: u8,
    /// The next leaf to issue (leaves are never reused).
    pub next_leaf: u64,
    /// Leaves excluded from every image wrapped from now on.
    pub excluded: BTreeSet<u64>,
    /// Authorized regulators' leaves.
    pub regulators: BTreeMap<String, u64>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            depth: DEFAULT_DEPTH,
            shard_depth: DEFAULT_SHARD_DEPTH,
            next_leaf: 0,
            excluded: BTreeSet::new(),
            regulators: BTreeMap::new(),
        }
    }
}

impl Broadcast {
    pub fn load(dir: &Path) -> Result<Broadcast> {
        let b: Broadcast = read_state(dir, STATE)?;
        Tree::new(b.depth).map_err(|e| Error::Config {
            path: dir.join(STATE),
            reason: e.to_string(),
        })?;
        Ok(b)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_state(dir, STATE, self)
    }

    pub fn tree(&self) -> Result<Tree> {
        Tree::new(self.depth).map_err(|e| Error::refused(e.to_string()))
    }

    /// A fresh leaf (recorded by the caller's `save`).
    pub fn allocate(&mut self) -> Result<u64> {
        let leaf = self.next_leaf;
        if leaf >= self.tree()?.leaves() {
            return Err(Error::refused(format!(
                "all {} receiver leaves of the broadcast tree are issued",
                self.tree()?.leaves()
            )));
        }
        self.next_leaf += 1;
        Ok(leaf)
    }
}

/// The tree's secret, created (mode 0600) the first time it is needed.
pub fn secret(dir: &Path) -> Result<Secret> {
    Ok(Secret(Key(fsutil::secret_file(&dir.join(SECRET), true)?)))
}

/// Write receiver `leaf`'s key file to `out` (mode 0600, never overwriting).
pub fn issue(dir: &Path, b: &Broadcast, leaf: u64, out: &Path) -> Result<()> {
    if b.excluded.contains(&leaf) {
        return Err(Error::refused(format!(
            "leaf {leaf}'s keys are revoked: they are not issued again"
        )));
    }
    let keys = ReceiverKeys::issue(&secret(dir)?, b.tree()?, leaf)
        .map_err(|e| Error::refused(e.to_string()))?;
    fsutil::write_new_private(out, &keys.to_json())
}

/// Wrap `content` (the key of the image of plaintext SHA-256 `image_sha256`) for every leaf
/// not excluded; the shards are written to `repo/wraps/SHA256.bin` (content-addressed, never
/// rewritten). Returns their references.
pub fn wrap(dir: &Path, repo: &Path, content: &Key, image_sha256: &[u8; 32]) -> Result<KeyWraps> {
    let b = Broadcast::load(dir)?;
    let set = WrapSet::build(
        &secret(dir)?,
        b.tree()?,
        &b.excluded,
        content,
        image_sha256,
        b.shard_depth,
    )
    .map_err(|e| Error::refused(format!("wrapping the content key: {e}")))?;
    let wraps_dir = repo.join(WRAPS_DIR);
    std::fs::create_dir_all(&wraps_dir).map_err(Error::io(&wraps_dir))?;
    let mut shards = BTreeMap::new();
    for (n, shard) in &set.shards {
        let bytes = shard.encode();
        let f = ShardFile {
            length: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        fsutil::write_once(&repo.join(f.path()), &bytes)?;
        shards.insert(n.to_string(), f);
    }
    Ok(KeyWraps {
        scheme: ota_crypt::receiver::SCHEME.into(),
        depth: set.tree.depth(),
        shard_depth: set.shard_depth,
        shards,
    })
}

/// The shard a receiver at `leaf` needs besides the top one.
pub fn shard_of(b: &Broadcast, leaf: u64) -> Result<u64> {
    Ok(WrapSet::shard_of_leaf(b.tree()?, leaf, b.shard_depth))
}

/// Issue vehicle `vin` its decryption keys into `out` (a leaf is given to it the first time;
/// later calls write the same keys again, for a replaced gateway). Returns its leaf.
pub fn vehicle_keys(dir: &Path, vin: &str, out: &Path) -> Result<u64> {
    let mut inv = Inventory::load_for(dir, &[vin])?;
    inv.vehicle(vin)?;
    let mut b = Broadcast::load(dir)?;
    let leaf = match inv.vehicles.get(vin).and_then(|v| v.decryption_leaf) {
        Some(leaf) => leaf,
        None => {
            let leaf = b.allocate()?;
            // The leaf is taken before it is given: a crash in between wastes one leaf,
            // never gives one to two receivers.
            b.save(dir)?;
            if let Some(v) = inv.vehicles.get_mut(vin) {
                v.decryption_leaf = Some(leaf);
            }
            inv.save(dir)?;
            leaf
        }
    };
    issue(dir, &b, leaf, out)?;
    Ok(leaf)
}

/// Exclude vehicle `vin` from every image wrapped from now on. Returns its leaf.
pub fn vehicle_revoke_keys(dir: &Path, vin: &str) -> Result<u64> {
    let inv = Inventory::load_for(dir, &[vin])?;
    let leaf = inv
        .vehicle(vin)?
        .decryption_leaf
        .ok_or_else(|| Error::refused(format!("vehicle {vin} was never issued decryption keys")))?;
    let mut b = Broadcast::load(dir)?;
    b.excluded.insert(leaf);
    b.save(dir)?;
    Ok(leaf)
}

/// Issue authorized regulator `name` its decryption keys into `out`. Returns its leaf.
pub fn regulator_keys(dir: &Path, name: &str, out: &Path) -> Result<u64> {
    let s = super::Settings::load(dir)?;
    if !s.regulators.contains_key(name) {
        return Err(Error::refused(format!(
            "unknown regulator {name:?}: authorize it first with `oem regulator add`"
        )));
    }
    let mut b = Broadcast::load(dir)?;
    let leaf = match b.regulators.get(name) {
        Some(&leaf) => leaf,
        None => {
            let leaf = b.allocate()?;
            b.regulators.insert(name.into(), leaf);
            b.save(dir)?;
            leaf
        }
    };
    issue(dir, &b, leaf, out)?;
    Ok(leaf)
}

/// Exclude a removed regulator from every image wrapped from now on (nothing if it never
/// had keys).
pub fn regulator_revoke_keys(dir: &Path, name: &str) -> Result<()> {
    let mut b = Broadcast::load(dir)?;
    if let Some(leaf) = b.regulators.remove(name) {
        b.excluded.insert(leaf);
        b.save(dir)?;
    }
    Ok(())
}
