//! Broadcast encryption of content keys (issues 11 and 30), the OEM's half: the OEM decides
//! who may decrypt an encrypted image.
//!
//! **Who is entitled.** Receivers are leaves of complete-subtree trees (`ota_crypt::subtree`),
//! one tree per *group* (`ota_crypt::receiver`): the group `hw:ID` holds the vehicles with an
//! ECU of hardware id ID, the group `regulators` the authorized regulators. An image is
//! wrapped for the groups of its hardware ids and for the regulators, so a vehicle with no ECU
//! of the image's hardware ids holds no key that opens it.
//!
//! **When.** The wraps are made again at every `oem publish`, from the state of that moment:
//! the leaves issued (rounded up to a block of [`ISSUE_BLOCK`] leaves, so the wraps do not
//! change with every vehicle built) minus the excluded ones. A vehicle revoked, removed or
//! replaced after an image was submitted opens nothing the next publish wraps. Wraps are
//! deterministic (`ota_crypt::wrap`), so an unchanged state gives the same shards.
//!
//! ```text
//! DIR/keys/broadcast.secret  the trees' secret (64 hex digits, mode 0600): every node key
//!                            derives from it. Back it up with the root keys: losing it means
//!                            issuing every vehicle new keys.
//! DIR/keys/content/SHA.json  the content key of each encrypted image submitted for review
//!                            (SHA: its ciphertext's SHA-256), kept to wrap it again
//! DIR/broadcast.json         per group: next free leaf, excluded leaves; regulators' leaves
//! ```
//! A vehicle's leaves are kept in its inventory record.

use super::{read_state, write_state, Inventory, Settings};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::content_key::ContentKey;
use ota_crypt::receiver::{vehicle_group, ReceiverKeys, REGULATORS_GROUP};
use ota_crypt::subtree::{Secret, Tree};
use ota_crypt::wrap_set::{WrapSet, DEFAULT_SHARD_DEPTH};
use ota_metadata::documents::key_wraps::WRAPS_DIR;
use ota_metadata::documents::{KeyWraps, ReviewRequest, ShardFile};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const STATE: &str = "broadcast.json";
pub const SECRET: &str = "keys/broadcast.secret";
/// Where the OEM keeps the content keys of the encrypted images submitted for review.
pub const CONTENT_KEYS: &str = "keys/content";
/// 2^20 receivers per group (about a million vehicles): each holds 21 node keys per group.
pub const DEFAULT_DEPTH: u8 = 20;
/// The state's format.
pub const FORMAT: u32 = 2;
/// Wraps cover the issued leaves rounded up to a multiple of this: leaves not issued yet are
/// covered only up to the end of the current block, so a vehicle that joins a group later
/// opens the images wrapped before only if its leaf fell in that block, and the wraps (and
/// every entry naming them) change once per block of vehicles built, not with each one.
pub const ISSUE_BLOCK: u64 = 1024;

/// One receiver group's leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The next leaf to issue (leaves are never reused).
    pub next_leaf: u64,
    /// Leaves excluded from every image wrapped from now on.
    pub excluded: BTreeSet<u64>,
}

/// `DIR/broadcast.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub format: u32,
    pub depth: u8,
    pub shard_depth: u8,
    /// Receiver groups by name (`hw:ID`, `regulators`).
    pub groups: BTreeMap<String, Group>,
    /// Authorized regulators' leaves in the `regulators` group.
    pub regulators: BTreeMap<String, u64>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            format: FORMAT,
            depth: DEFAULT_DEPTH,
            shard_depth: DEFAULT_SHARD_DEPTH,
            groups: BTreeMap::new(),
            regulators: BTreeMap::new(),
        }
    }
}

impl Broadcast {
    /// The state, with what the last publish recorded taken back in (see [`ledger`]): a state
    /// file restored from a backup never undoes an exclusion or issues a leaf twice.
    pub fn load(dir: &Path) -> Result<Broadcast> {
        let mut b = Self::load_file(dir)?;
        if let Some(published) = ledger::published(dir)? {
            let taken = b.merge(&published);
            if taken > 0 {
                crate::warn::warn(format!(
                    "{} was behind the record sealed into the last publish ({taken} exclusion(s) or issued leaves it lacked; restored from an older backup?): they are taken back",
                    dir.join(STATE).display()
                ));
                b.save(dir)?;
            }
        }
        Ok(b)
    }

    /// Take in what `other` (an earlier record of this state) knows: every leaf issued there
    /// stays issued, every exclusion stays. Returns how many things changed.
    pub fn merge(&mut self, other: &Broadcast) -> usize {
        let mut n = 0;
        for (name, g) in &other.groups {
            let mine = self.groups.entry(name.clone()).or_default();
            if g.next_leaf > mine.next_leaf {
                mine.next_leaf = g.next_leaf;
                n += 1;
            }
            for leaf in &g.excluded {
                if mine.excluded.insert(*leaf) {
                    n += 1;
                }
            }
        }
        for (name, leaf) in &other.regulators {
            let excluded = self.is_excluded(REGULATORS_GROUP, *leaf);
            if !excluded && !self.regulators.contains_key(name) {
                self.regulators.insert(name.clone(), *leaf);
                n += 1;
            }
        }
        n
    }

    fn load_file(dir: &Path) -> Result<Broadcast> {
        let path = dir.join(STATE);
        let earlier = || {
            Error::Config {
            path: path.clone(),
            reason: "broadcast state of an earlier ota-repo (one tree for the whole fleet, every vehicle entitled to every image): issue every vehicle and regulator new keys; move the file aside, then `oem vehicle decryption-keys --replace` and `oem regulator decryption-keys`".into(),
        }
        };
        // Keys issued (the secret exists) but no state: starting afresh would issue leaves that
        // vehicles hold already, and forget every exclusion.
        if !path.exists() && dir.join(SECRET).exists() {
            return Err(Error::Config {
                path: path.clone(),
                reason: format!(
                    "missing, while {SECRET} shows decryption keys were issued: starting afresh would give vehicles each other's keys and forget every revocation; restore it from your backup"
                ),
            });
        }
        let value: serde_json::Value = read_state(dir, STATE).unwrap_or(serde_json::Value::Null);
        if value.get("next_leaf").is_some() {
            return Err(earlier());
        }
        let b: Broadcast = read_state(dir, STATE)?;
        if b.format != FORMAT {
            return Err(earlier());
        }
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

    /// A fresh leaf of `group` (recorded by the caller's `save`).
    pub fn allocate(&mut self, group: &str) -> Result<u64> {
        let leaves = self.tree()?.leaves();
        let g = self.groups.entry(group.into()).or_default();
        let leaf = g.next_leaf;
        if leaf >= leaves {
            return Err(Error::refused(format!(
                "all {leaves} receiver leaves of group {group} are issued"
            )));
        }
        g.next_leaf += 1;
        Ok(leaf)
    }

    /// Exclude `leaf` of `group` from everything wrapped from now on.
    pub fn exclude(&mut self, group: &str, leaf: u64) {
        self.groups
            .entry(group.into())
            .or_default()
            .excluded
            .insert(leaf);
    }

    pub fn is_excluded(&self, group: &str, leaf: u64) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.excluded.contains(&leaf))
    }

    /// The nodes an image's key is wrapped under for `group` now.
    pub fn cover(&self, group: &str) -> Result<Vec<u64>> {
        let tree = self.tree()?;
        let Some(g) = self.groups.get(group) else {
            return Ok(Vec::new());
        };
        let limit = g
            .next_leaf
            .div_ceil(ISSUE_BLOCK)
            .saturating_mul(ISSUE_BLOCK);
        tree.cover_below(limit, &g.excluded)
            .map_err(|e| Error::refused(format!("group {group}: {e}")))
    }
}

/// The trees' secret, created (mode 0600) the first time it is needed: only while `b` shows
/// no key issued. Once keys are out, a lost secret is never replaced by a new one (every
/// vehicle's keys would silently stop opening anything).
pub fn secret(dir: &Path, b: &Broadcast) -> Result<Secret> {
    let path = dir.join(SECRET);
    let issued = b.groups.values().any(|g| g.next_leaf > 0);
    if issued && !path.exists() {
        return Err(Error::Config {
            path,
            reason: format!(
                "missing, while {STATE} shows decryption keys were issued: every key derives from it; restore it from your backup (a new secret would re-key the whole fleet)"
            ),
        });
    }
    // The state is written before a new secret: a secret without a state reads as "keys were
    // issued and the state lost", which would stop every publish (a content key wrapped before
    // any vehicle held keys made exactly that).
    if !path.exists() && !dir.join(STATE).exists() {
        b.save(dir)?;
    }
    Ok(Secret(ota_crypt::Key(fsutil::secret_file(&path, true)?)))
}

/// Write the keys of `leaves` (group -> leaf) to `out` (mode 0600, never overwriting).
fn issue(secret: &Secret, b: &Broadcast, leaves: &BTreeMap<String, u64>, out: &Path) -> Result<()> {
    let tree = b.tree()?;
    let list: Vec<(&str, Tree, u64)> = leaves
        .iter()
        .map(|(g, &leaf)| (g.as_str(), tree, leaf))
        .collect();
    let keys = ReceiverKeys::issue(secret, &list).map_err(|e| Error::refused(e.to_string()))?;
    fsutil::write_new_private(out, &keys.to_json())
}

/// Every leaf each vehicle was ever issued, by group (`DIR/leaves/`, sharded like the
/// inventory): kept apart from the inventory, so that an inventory restored from an older
/// backup cannot hide a leaf (a replaced gateway's new one) from a later revocation.
pub const HISTORY_DIR: &str = "leaves";
type History = BTreeMap<String, BTreeSet<u64>>;

/// Add `leaves` to what vehicle `vin` was ever issued (before its key file is written).
fn record_issued(dir: &Path, vin: &str, leaves: &BTreeMap<String, u64>) -> Result<()> {
    let (mut all, scope) = super::store::load::<History>(dir, HISTORY_DIR, Some(&[vin]))?;
    let h = all.entry(vin.to_string()).or_default();
    for (g, &leaf) in leaves {
        h.entry(g.clone()).or_default().insert(leaf);
    }
    super::store::save(dir, HISTORY_DIR, &all, &scope).map(|_| ())
}

/// Every leaf vehicle `vin` holds or was ever issued: `current` (the inventory's) and its
/// history.
fn ever_issued(
    dir: &Path,
    vin: &str,
    current: &BTreeMap<String, u64>,
) -> Result<Vec<(String, u64)>> {
    let (all, _) = super::store::load::<History>(dir, HISTORY_DIR, Some(&[vin]))?;
    let mut out: BTreeSet<(String, u64)> = current.iter().map(|(g, &l)| (g.clone(), l)).collect();
    for (g, leaves) in all.get(vin).into_iter().flatten() {
        out.extend(leaves.iter().map(|&l| (g.clone(), l)));
    }
    Ok(out.into_iter().collect())
}

/// Exclude every leaf vehicle `vin` holds or was ever issued (`current`: the inventory's).
/// Returns them.
pub fn exclude_vehicle(
    dir: &Path,
    vin: &str,
    current: &BTreeMap<String, u64>,
) -> Result<Vec<(String, u64)>> {
    let all = ever_issued(dir, vin, current)?;
    if all.is_empty() {
        return Ok(all);
    }
    let mut b = Broadcast::load(dir)?;
    for (g, leaf) in &all {
        b.exclude(g, *leaf);
    }
    b.save(dir)?;
    Ok(all)
}

/// How `vehicle decryption-keys` treats a vehicle that already holds keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reissue {
    /// Refuse: the vehicle's keys were issued before (say which of the others is meant).
    No,
    /// The same unit: write its keys again (with a leaf in any group it joined since).
    Again,
    /// A replaced gateway: fresh leaves in every group; the old unit's are excluded.
    Replace,
}

/// The groups vehicle record `v` is entitled to: one per hardware id of its ECUs that receive
/// updates.
fn entitled(v: &super::Vehicle) -> BTreeSet<String> {
    v.ecus
        .values()
        .filter(|e| !e.aftermarket)
        .map(|e| vehicle_group(&e.hardware_id))
        .collect()
}

/// Issue vehicle `vin` its decryption keys into `out`: a leaf in the group of each hardware id
/// it has an ECU of. Returns its leaves (group -> leaf).
pub fn vehicle_keys(
    dir: &Path,
    vin: &str,
    out: &Path,
    reissue: Reissue,
) -> Result<BTreeMap<String, u64>> {
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let v = inv.vehicle(vin)?.clone();
    let mut b = Broadcast::load(dir)?;
    // Made (or found) before any leaf is taken.
    let secret = secret(dir, &b)?;
    let groups = entitled(&v);
    if groups.is_empty() {
        return Err(Error::refused(format!(
            "vehicle {vin} has no ECU that receives updates: there is nothing it could decrypt"
        )));
    }
    let held = &v.decryption_leaves;
    let revoked = held.iter().any(|(g, &leaf)| b.is_excluded(g, leaf));
    // A new gateway: every leaf the vehicle was ever issued is excluded, also any its
    // inventory record no longer names.
    if reissue == Reissue::Replace {
        for (g, leaf) in ever_issued(dir, vin, held)? {
            b.exclude(&g, leaf);
        }
    }
    match reissue {
        Reissue::No if !held.is_empty() => {
            return Err(Error::refused(format!(
                "vehicle {vin} already holds decryption keys: for a replaced gateway pass --replace (the old unit's keys open nothing published from then on); to write the same unit's keys again pass --again"
            )))
        }
        Reissue::Again if revoked => {
            return Err(Error::refused(format!(
                "vehicle {vin}'s keys are revoked: they are not issued again (a new gateway gets fresh keys with --replace)"
            )))
        }
        _ => {}
    }
    let mut leaves = BTreeMap::new();
    for (g, &leaf) in held {
        // A replaced unit's leaves, and those of hardware the vehicle no longer has, open
        // nothing wrapped from now on.
        if reissue == Reissue::Replace || !groups.contains(g) {
            b.exclude(g, leaf);
        } else {
            leaves.insert(g.clone(), leaf);
        }
    }
    for g in &groups {
        if !leaves.contains_key(g) {
            leaves.insert(g.clone(), b.allocate(g)?);
        }
    }
    // The leaves are taken (and the old ones excluded) before they are given: a crash in
    // between wastes leaves, never gives one to two receivers.
    b.save(dir)?;
    record_issued(dir, vin, &leaves)?;
    if let Some(v) = inv.vehicles.get_mut(vin) {
        v.decryption_leaves = leaves.clone();
    }
    inv.save(dir)?;
    issue(&secret, &b, &leaves, out)?;
    Ok(leaves)
}

/// Exclude vehicle `vin` from every image wrapped from the next publish on. Returns its
/// leaves.
pub fn vehicle_revoke_keys(dir: &Path, vin: &str) -> Result<Vec<(String, u64)>> {
    let inv = Inventory::load_for(dir, &[vin])?;
    let leaves = exclude_vehicle(dir, vin, &inv.vehicle(vin)?.decryption_leaves)?;
    if leaves.is_empty() {
        return Err(Error::refused(format!(
            "vehicle {vin} was never issued decryption keys"
        )));
    }
    Ok(leaves)
}

/// Exclude `leaves` (group -> leaf) from everything wrapped from now on.
pub fn exclude_all(dir: &Path, leaves: &BTreeMap<String, u64>) -> Result<()> {
    if leaves.is_empty() {
        return Ok(());
    }
    let mut b = Broadcast::load(dir)?;
    for (g, &leaf) in leaves {
        b.exclude(g, leaf);
    }
    b.save(dir)
}

/// Vehicle `vin`'s record `v` after its ECUs changed (before it is saved): its leaves of
/// groups it is no longer entitled to (no ECU of that hardware id left), the ones it ever held
/// included, are excluded; the record forgets them.
pub fn drop_unentitled(dir: &Path, vin: &str, v: &mut super::Vehicle) -> Result<()> {
    let groups = entitled(v);
    let gone: Vec<(String, u64)> = ever_issued(dir, vin, &v.decryption_leaves)?
        .into_iter()
        .filter(|(g, _)| !groups.contains(g))
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let mut b = Broadcast::load(dir)?;
    for (g, leaf) in &gone {
        b.exclude(g, *leaf);
    }
    b.save(dir)?;
    v.decryption_leaves.retain(|g, _| groups.contains(g));
    Ok(())
}

/// Issue authorized regulator `name` its decryption keys into `out`. Returns its leaf.
pub fn regulator_keys(dir: &Path, name: &str, out: &Path) -> Result<u64> {
    let s = Settings::load(dir)?;
    if !s.regulators.contains_key(name) {
        return Err(Error::refused(format!(
            "unknown regulator {name:?}: authorize it first with `oem regulator add`"
        )));
    }
    let mut b = Broadcast::load(dir)?;
    let secret = secret(dir, &b)?;
    let leaf = match b.regulators.get(name) {
        Some(&leaf) => leaf,
        None => {
            let leaf = b.allocate(REGULATORS_GROUP)?;
            b.regulators.insert(name.into(), leaf);
            b.save(dir)?;
            leaf
        }
    };
    issue(
        &secret,
        &b,
        &BTreeMap::from([(REGULATORS_GROUP.to_string(), leaf)]),
        out,
    )?;
    Ok(leaf)
}

/// Exclude a removed regulator from every image wrapped from now on (nothing if it never
/// had keys).
pub fn regulator_revoke_keys(dir: &Path, name: &str) -> Result<()> {
    let mut b = Broadcast::load(dir)?;
    if let Some(leaf) = b.regulators.remove(name) {
        b.exclude(REGULATORS_GROUP, leaf);
        b.save(dir)?;
    }
    Ok(())
}

/// Where the content key of the image whose ciphertext has SHA-256 `target_sha256` is kept.
fn content_key_path(dir: &Path, target_sha256: &str) -> PathBuf {
    dir.join(CONTENT_KEYS).join(format!("{target_sha256}.json"))
}

/// Keep `key` (checked by the caller against the image's manifest) to wrap it at every
/// publish. Mode 0600 in a 0700 directory; a key kept before for the same ciphertext must be
/// the same.
pub fn keep_content_key(dir: &Path, target_sha256: &str, key: &ContentKey) -> Result<()> {
    let path = content_key_path(dir, target_sha256);
    fsutil::private_dir(&dir.join(CONTENT_KEYS))?;
    if path.exists() {
        let held = load_content_key(dir, target_sha256)?;
        if held.key != key.key || held.image_sha256 != key.image_sha256 {
            return Err(Error::refused(format!(
                "{} holds another content key for this ciphertext",
                path.display()
            )));
        }
        return Ok(());
    }
    fsutil::write_new_private(&path, &key.to_json())
}

fn load_content_key(dir: &Path, target_sha256: &str) -> Result<ContentKey> {
    let path = content_key_path(dir, target_sha256);
    if !path.exists() {
        return Err(Error::refused(format!(
            "the content key of the encrypted image with ciphertext sha256 {target_sha256} is missing ({}): restore DIR/{CONTENT_KEYS} from your backup",
            path.display()
        )));
    }
    let bytes = fsutil::read_bounded(&path, ota_crypt::content_key::MAX_FILE as u64)?;
    ContentKey::parse(&bytes).map_err(|e| Error::Config {
        path,
        reason: e.to_string(),
    })
}

/// The wraps of one encrypted image, as the publish made them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageWraps {
    /// For the regulators (the review request carries it).
    pub regulators: KeyWraps,
    /// For the vehicles, by hardware id.
    pub vehicles: BTreeMap<String, KeyWraps>,
}

/// Every encrypted image's wraps of one publish, by (supplier, target name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WrapPlan {
    pub images: BTreeMap<(String, String), ImageWraps>,
    /// The receivers' tree shape, to find a leaf's shard.
    pub depth: u8,
    pub shard_depth: u8,
    /// The broadcast state sealed for the review role ([`ledger`]); `None` before any key
    /// was issued.
    #[serde(skip)]
    pub ledger: Option<String>,
}

impl WrapPlan {
    /// A digest of the whole plan: a publish whose plan differs from the last one's rewrites
    /// every vehicle's entry that names wraps.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.images.iter().collect::<Vec<_>>()).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// What vehicle ECU `hardware_id`'s assignment of `(supplier, target)` names: the wraps of
    /// the vehicle's group, reduced to its leaf's shard (the top shard only when it holds no
    /// leaf there: its gateway then says it is not entitled). `None`: not encrypted.
    pub fn for_vehicle(
        &self,
        supplier: &str,
        target: &str,
        hardware_id: &str,
        leaves: &BTreeMap<String, u64>,
    ) -> Option<KeyWraps> {
        let w = self
            .images
            .get(&(supplier.to_string(), target.to_string()))?;
        let Some(g) = w.vehicles.get(hardware_id) else {
            // Not built for this hardware id (the assignment is withdrawn elsewhere); name
            // the regulators' group, which no vehicle opens.
            return Some(w.regulators.only(0));
        };
        let shard = match (
            Tree::new(self.depth),
            leaves.get(&vehicle_group(hardware_id)),
        ) {
            (Ok(tree), Some(&leaf)) => WrapSet::shard_of_leaf(tree, leaf, self.shard_depth),
            _ => 0,
        };
        Some(g.only(shard))
    }
}

/// Wrap every encrypted image under review for the receivers entitled now, writing the shards
/// to `repo/wraps/` (content-addressed; unchanged wraps give the same files). Sets each
/// encrypted review request's wraps (the regulators') in `reviews`.
pub fn plan(dir: &Path, repo: &Path, reviews: &mut [ReviewRequest]) -> Result<WrapPlan> {
    let encrypted: Vec<usize> = (0..reviews.len())
        .filter(|&i| reviews[i].key_wraps.is_some())
        .collect();
    let b = Broadcast::load(dir)?;
    let issued = b.groups.values().any(|g| g.next_leaf > 0);
    let mut plan = WrapPlan {
        images: BTreeMap::new(),
        depth: b.depth,
        shard_depth: b.shard_depth.min(b.depth),
        ledger: None,
    };
    if encrypted.is_empty() && !issued {
        return Ok(plan);
    }
    let secret = secret(dir, &b)?;
    if issued {
        plan.ledger = Some(ledger::seal(&secret, &b)?);
    }
    for i in encrypted {
        let w = wrap_image(dir, &b, &secret, repo, &reviews[i])?;
        let r = &reviews[i];
        plan.images.insert(
            (r.image.supplier.clone(), r.image.target.clone()),
            w.clone(),
        );
        reviews[i].key_wraps = Some(w.regulators);
    }
    Ok(plan)
}

/// Wrap the image of `review` (encrypted, its content key kept) for the regulators now: what
/// `oem review submit` lists until the next publish wraps it again.
pub fn wrap_review(dir: &Path, repo: &Path, review: &mut ReviewRequest) -> Result<()> {
    let b = Broadcast::load(dir)?;
    let w = wrap_image(dir, &b, &secret(dir, &b)?, repo, review)?;
    review.key_wraps = Some(w.regulators);
    Ok(())
}

fn wrap_image(
    dir: &Path,
    b: &Broadcast,
    secret: &Secret,
    repo: &Path,
    r: &ReviewRequest,
) -> Result<ImageWraps> {
    let target_sha = r.image.hashes.get("sha256").cloned().unwrap_or_default();
    let ck = load_content_key(dir, &target_sha)?;
    let wrap = |group: &str| wrap_for(b, secret, repo, group, &ck);
    let mut vehicles = BTreeMap::new();
    for hw in &r.hardware_ids {
        vehicles.insert(hw.clone(), wrap(&vehicle_group(hw))?);
    }
    Ok(ImageWraps {
        regulators: wrap(REGULATORS_GROUP)?,
        vehicles,
    })
}

/// The wraps of `ck` for `group` as it stands, written as shards under `repo`.
fn wrap_for(
    b: &Broadcast,
    secret: &Secret,
    repo: &Path,
    group: &str,
    ck: &ContentKey,
) -> Result<KeyWraps> {
    let tree = b.tree()?;
    let set = WrapSet::for_cover(
        &secret.group(group),
        tree,
        &b.cover(group)?,
        &ck.key,
        &ck.image_sha256,
        b.shard_depth,
    )
    .map_err(|e| Error::refused(format!("wrapping the content key for {group}: {e}")))?;
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
        group: group.into(),
        depth: set.tree.depth(),
        shard_depth: set.shard_depth,
        shards,
    })
}

/// The broadcast state, sealed into every published review role (`broadcast_ledger`), so the
/// next publish, and every command that issues or excludes keys, can tell a state file that
/// went back in time (restored from an older backup, or edited) and take back what it lost.
/// Sealed under a key derived from the broadcast secret and padded to a power of two (at
/// least 1 KiB): the CDN learns neither the fleet's size per hardware id nor its revocations.
pub mod ledger {
    use super::{Broadcast, Secret, STATE};
    use crate::error::{Error, Result};
    use crate::fsutil;
    use base64::Engine as _;
    use ota_metadata::roles::{Snapshot, Timestamp};
    use ota_metadata::{Envelope, MetadataLimits};
    use std::path::Path;

    /// The review role's field that carries it.
    pub const FIELD: &str = "broadcast_ledger";
    const LABEL: &[u8] = b"ota broadcast ledger v1";

    fn key(secret: &Secret) -> ota_crypt::Key {
        secret.derived(LABEL)
    }

    /// `b` sealed, base64.
    pub fn seal(secret: &Secret, b: &Broadcast) -> Result<String> {
        let json = serde_json::to_vec(b).map_err(|e| Error::refused(e.to_string()))?;
        let size = (json.len() + 1).next_power_of_two().max(1024);
        let sealed = ota_crypt::sealed::seal(&key(secret), LABEL, LABEL, &json, size)
            .map_err(|e| Error::refused(format!("sealing the broadcast ledger: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// The state the last publish recorded (the review role the local tree's timestamp
    /// names), if any.
    pub fn published(dir: &Path) -> Result<Option<Broadcast>> {
        let repo = crate::workdir::repository_path(dir);
        let limits = MetadataLimits::default();
        let signed = |name: &str, limit: u64| -> Option<Envelope> {
            let bytes = fsutil::read_bounded(&repo.join(name), limit).ok()?;
            Envelope::parse(name, &bytes, limit).ok()
        };
        let field = signed("timestamp.json", limits.timestamp)
            .and_then(|e| e.decode::<Timestamp>("timestamp", Timestamp::TYPE).ok())
            .and_then(|ts| ts.snapshot_meta().ok().map(|m| m.version))
            .and_then(|v| {
                signed(&format!("{v}.snapshot.json"), limits.snapshot)?
                    .decode::<Snapshot>("snapshot", Snapshot::TYPE)
                    .ok()
            })
            .and_then(|snap| snap.meta.get("review.json").map(|m| m.version))
            .and_then(|v| signed(&format!("{v}.review.json"), limits.targets))
            .and_then(|e| {
                e.signed_value()
                    .get(FIELD)
                    .and_then(|f| f.as_str())
                    .map(String::from)
            });
        let Some(text) = field else {
            return Ok(None);
        };
        let bad = |why: String| Error::Config {
            path: dir.join(STATE),
            reason: format!("the broadcast record in the last published review role {why}"),
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| bad(format!("is not base64: {e}")))?;
        // The record exists, so keys were issued: the secret must be there.
        let path = dir.join(super::SECRET);
        if !path.exists() {
            return Err(Error::Config {
                path,
                reason: "missing, while the last publish recorded issued decryption keys: every key derives from it; restore it from your backup".into(),
            });
        }
        let secret = Secret(ota_crypt::Key(fsutil::secret_file(&path, false)?));
        let json = ota_crypt::sealed::open(&key(&secret), LABEL, &sealed)
            .map_err(|e| bad(format!("does not open with this broadcast secret ({e}): was DIR/keys/broadcast.secret replaced?")))?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| bad(format!("is malformed: {e}")))
    }
}
