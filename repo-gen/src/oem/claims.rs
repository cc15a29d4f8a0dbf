//! What identifies one part of the fleet, claimed by exactly one: an ECU serial belongs to one
//! vehicle, and a report-signing public key to one vehicle or one ECU.
//!
//! Why it matters: the ECU's own instruction names the ECU by its serial (and the vehicle's
//! trust is the OEM's, the same for every vehicle), so an instruction for one vehicle's ECU
//! would install in any other vehicle's ECU registered with the same serial; and a key shared
//! by two vehicles or ECUs lets one stolen key speak for both. The inventory is sharded by
//! vehicle, so a duplicate is invisible to a command about one vehicle: this index answers
//! "who holds it" without reading the fleet.
//!
//! ```text
//! DIR/claims/KK.json    claim -> owner, KK = the first hex digits of SHA-256(claim)
//!                       claim: "serial:BRK-1" or "key:<SHA-256 of the key's PEM, hex>"
//! ```
//! The inventory stays the truth: a claim is written before the inventory record that holds
//! it, and a claim found held by another owner is checked against that owner's inventory
//! record before anything is refused. A claim left behind (a crash, a removal) therefore
//! never blocks anyone, and no crash can leave two records holding one claim. A working
//! directory made before the index existed gets it built from its inventory once.

use super::inventory::{Inventory, Vehicle};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::keys::Key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const CLAIMS_DIR: &str = "claims";
/// Hex digits of a claim's shard: 256 shards, so an import of a million vehicles (three
/// million claims) writes and syncs 256 files of about 1 MiB, and a command about one vehicle
/// reads and rewrites one or two of them.
const DIGITS: usize = 2;
/// Bound on one claims shard file.
const MAX_SHARD: u64 = 256 << 20;

/// Who holds a claim: a vehicle, or one of its ECUs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner {
    pub vin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecu: Option<String>,
}

impl Owner {
    pub fn vehicle(vin: &str) -> Self {
        Owner {
            vin: vin.into(),
            ecu: None,
        }
    }
    pub fn ecu(vin: &str, serial: &str) -> Self {
        Owner {
            vin: vin.into(),
            ecu: Some(serial.into()),
        }
    }
    fn describe(&self) -> String {
        match &self.ecu {
            None => format!("vehicle {}", self.vin),
            Some(s) => format!("ECU {s} of vehicle {}", self.vin),
        }
    }
}

/// One thing only one part may hold: an ECU serial (held by the vehicle the ECU is in), or a
/// report-signing key by the SHA-256 of its PEM (the inventory keeps keys in one canonical PEM
/// form, so one key always has one fingerprint). Held as its index name, `serial:S` or
/// `key:HEX`, made once (an import makes millions).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    name: String,
}

const SERIAL: &str = "serial:";
const KEY: &str = "key:";

impl Claim {
    pub fn serial(serial: &str) -> Self {
        Claim {
            name: format!("{SERIAL}{serial}"),
        }
    }
    /// A key, by its RSA modulus: the private key is what must not be shared, and one
    /// modulus with another public exponent is the same private key's (p and q) under another
    /// name. (A key that is not RSA, which the inventory does not hold, by its PEM.)
    pub fn key(key: &Key) -> Self {
        let pem = &key.keyval.public;
        let digest = match rsa_modulus(pem) {
            Some(n) => Sha256::digest(n),
            None => Sha256::digest(pem.as_bytes()),
        };
        let mut name = String::with_capacity(KEY.len() + 64);
        name.push_str(KEY);
        push_hex(&mut name, &digest);
        Claim { name }
    }
    /// The serial, if this is one.
    fn as_serial(&self) -> Option<&str> {
        self.name.strip_prefix(SERIAL)
    }
    fn shard(&self) -> String {
        let h = Sha256::digest(self.name.as_bytes());
        let mut s = String::with_capacity(4);
        push_hex(&mut s, &h[..DIGITS.div_ceil(2)]);
        s.truncate(DIGITS);
        s
    }
    /// Whether `v`, the inventory record of `owner`'s vehicle, holds this claim for `owner`.
    fn held_by(&self, owner: &Owner, v: &Vehicle) -> bool {
        let holds_key = |k: Option<&Key>| k.is_some_and(|k| Claim::key(k) == *self);
        match (self.as_serial(), &owner.ecu) {
            (Some(s), None) => v.ecus.contains_key(s),
            (Some(_), Some(_)) => false,
            (None, None) => holds_key(v.key.as_ref()),
            (None, Some(serial)) => holds_key(v.ecus.get(serial).and_then(|e| e.key.as_ref())),
        }
    }
    /// What the claim is, in a few words.
    fn what_short(&self) -> String {
        match self.as_serial() {
            Some(s) => format!("ECU serial {s}"),
            None => "a key".to_string(),
        }
    }
    /// What the claim is, for a message.
    fn what(&self) -> String {
        match self.as_serial() {
            Some(s) => format!("ECU serial {s} (a serial names one ECU in the fleet)"),
            None => "one key (every vehicle and ECU signs with a key of its own)".to_string(),
        }
    }
    fn oem_key(&self, wanted: &Owner) -> Error {
        Error::refused(format!(
            "this key is one of the OEM's own signing keys (in its root), so it cannot be {}'s: a vehicle or ECU signs with a key of its own",
            wanted.describe()
        ))
    }
    fn refusal(&self, wanted: &Owner, holder: &Owner) -> Error {
        match self.as_serial() {
            Some(s) => Error::refused(format!(
                "ECU serial {s} is already registered in vehicle {}: a serial names one ECU in the fleet (the ECU's instructions are bound to it); take it out there first with `oem ecu remove` or `oem ecu replace`",
                holder.vin
            )),
            None => Error::refused(format!(
                "this key is already registered for {}, so it cannot also be {}'s: every vehicle and ECU signs with a key of its own, so that one stolen key speaks for one of them only",
                holder.describe(),
                wanted.describe()
            )),
        }
    }
}

/// The modulus of an RSA public key's PEM (SubjectPublicKeyInfo), without leading zeros;
/// read in place, as an import reads millions (the base64 through the `base64` crate, much
/// faster than the constant-time decoder of the PEM parser, which key material read once
/// needs but a public key being fingerprinted does not).
fn rsa_modulus(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use rsa::pkcs8::der::Decode;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let spki = rsa::pkcs8::SubjectPublicKeyInfoRef::from_der(&der).ok()?;
    let key = rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()).ok()?;
    Some(key.modulus.as_bytes().to_vec())
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGIT: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGIT[usize::from(b >> 4)]));
        out.push(char::from(DIGIT[usize::from(b & 15)]));
    }
}

/// The claims a vehicle's inventory record holds, with their owners.
pub fn of_vehicle(vin: &str, v: &Vehicle) -> Vec<(Claim, Owner)> {
    let mut out = Vec::new();
    if let Some(k) = &v.key {
        out.push((Claim::key(k), Owner::vehicle(vin)));
    }
    for (serial, e) in &v.ecus {
        out.push((Claim::serial(serial), Owner::vehicle(vin)));
        if let Some(k) = &e.key {
            out.push((Claim::key(k), Owner::ecu(vin, serial)));
        }
    }
    out
}

type ShardMap = BTreeMap<String, Owner>;

/// The claim shards loaded, and which of them changed since.
#[derive(Default)]
pub struct Claims {
    shards: BTreeMap<String, ShardMap>,
    changed: BTreeSet<String>,
}

fn shard_path(dir: &Path, shard: &str) -> PathBuf {
    dir.join(CLAIMS_DIR).join(format!("{shard}.json"))
}

/// A shard as written: compact JSON, sorted by claim (a `BTreeMap`), so the same claims give
/// the same bytes.
fn to_json(map: &ShardMap) -> Result<Vec<u8>> {
    serde_json::to_vec(map).map_err(|e| Error::refused(format!("internal: a claims shard: {e}")))
}

fn read_shard(dir: &Path, shard: &str) -> Result<ShardMap> {
    let path = shard_path(dir, shard);
    if !path.exists() {
        return Ok(ShardMap::new());
    }
    let bytes = fsutil::read_bounded(&path, MAX_SHARD)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path,
        reason: e.to_string(),
    })
}

impl Claims {
    /// The shards holding `claims` (the index built first if this directory has none).
    pub fn load_for<'a>(dir: &Path, claims: impl IntoIterator<Item = &'a Claim>) -> Result<Self> {
        ensure_current(dir)?;
        let mut c = Claims::default();
        for shard in claims
            .into_iter()
            .map(Claim::shard)
            .collect::<BTreeSet<_>>()
        {
            c.load_shard(dir, shard)?;
        }
        Ok(c)
    }

    fn load_shard(&mut self, dir: &Path, shard: String) -> Result<()> {
        let map = read_shard(dir, &shard)?;
        self.shards.insert(shard, map);
        Ok(())
    }

    /// Set (`Some`) or remove (`None`) `claim`'s entry; a shard is rewritten only if it
    /// changed (a rewrite is a new file, which the stamps would see).
    fn set(&mut self, claim: &Claim, owner: Option<&Owner>) -> Result<()> {
        let shard = claim.shard();
        let slot = self
            .shards
            .get_mut(&shard)
            .ok_or_else(|| Error::refused("internal: a claim's shard was not loaded"))?;
        if slot.get(&claim.name) == owner {
            return Ok(());
        }
        match owner {
            Some(o) => slot.insert(claim.name.clone(), o.clone()),
            None => slot.remove(&claim.name),
        };
        self.changed.insert(shard);
        Ok(())
    }

    /// Who holds `claim` according to the index (possibly a stale entry).
    fn holder(&self, claim: &Claim) -> Option<&Owner> {
        self.shards.get(&claim.shard())?.get(&claim.name)
    }

    /// Record that `owner` holds `claim`, refusing when another owner's inventory record
    /// holds it.
    pub fn claim(&mut self, dir: &Path, claim: &Claim, owner: &Owner) -> Result<()> {
        if claim.as_serial().is_none() && oem_keys(dir)?.contains(claim) {
            return Err(claim.oem_key(owner));
        }
        self.check_free(dir, claim, owner)?;
        self.set(claim, Some(owner))
    }

    /// Refuse if another owner's inventory record holds `claim` (an index entry no record
    /// holds any more is not a holder).
    fn check_free(&self, dir: &Path, claim: &Claim, owner: &Owner) -> Result<()> {
        let Some(holder) = self.holder(claim).filter(|h| *h != owner) else {
            return Ok(());
        };
        let inv = Inventory::load_for(dir, &[&holder.vin])?;
        if inv
            .vehicles
            .get(&holder.vin)
            .is_some_and(|v| claim.held_by(holder, v))
        {
            return Err(claim.refusal(owner, holder));
        }
        Ok(())
    }

    /// Forget that `owner` holds `claim` (nothing if someone else's). A claim the inventory
    /// was found holding twice (`duplicates.json`) goes to its other holder that still holds
    /// it, so resolving a duplicate never leaves the claim free while a record holds it.
    pub fn release(&mut self, dir: &Path, claim: &Claim, owner: &Owner) -> Result<()> {
        if self.holder(claim) != Some(owner) {
            return Ok(());
        }
        let next = other_holder(dir, claim, owner)?;
        self.set(claim, next.as_ref())
    }

    /// Write the shards that changed, and stamp them.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.write(dir)?;
        record(dir, Written::Claims(&self.changed))
    }

    /// Write the shards that changed.
    fn write(&self, dir: &Path) -> Result<()> {
        for shard in &self.changed {
            let Some(map) = self.shards.get(shard) else {
                continue;
            };
            let path = shard_path(dir, shard);
            if map.is_empty() {
                if path.exists() {
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                }
            } else {
                fsutil::write_atomic(&path, &to_json(map)?)?;
            }
        }
        Ok(())
    }
}

/// The claims `file`'s record of `vin` makes that `held` (the inventory's record, if any)
/// does not hold already.
pub fn new_claims(vin: &str, held: Option<&Vehicle>, file: &Vehicle) -> Vec<(Claim, Owner)> {
    let already: BTreeSet<(Claim, Owner)> = held
        .map(|h| of_vehicle(vin, h).into_iter().collect())
        .unwrap_or_default();
    of_vehicle(vin, file)
        .into_iter()
        .filter(|c| !already.contains(c))
        .collect()
}

/// The OEM's own signing keys (those its newest root lists), which no vehicle or ECU may
/// sign reports with.
fn oem_keys(dir: &Path) -> Result<BTreeSet<Claim>> {
    let root = crate::publish::read_root(&dir.join("repository"))?;
    Ok(root.keys.values().map(Claim::key).collect())
}

/// Refuse to make any of `key_files` one of the OEM's signing keys (`oem rotate-key`) while a
/// vehicle or ECU has it registered as its report key: one key would then speak for both.
pub fn refuse_registered(dir: &Path, key_files: &[std::path::PathBuf]) -> Result<()> {
    for file in key_files {
        let claim = Claim::key(&super::report::public_key_file(file)?);
        let c = Claims::load_for(dir, [&claim])?;
        if let Some(holder) = c.holder(&claim) {
            let inv = Inventory::load_for(dir, &[&holder.vin])?;
            if inv
                .vehicles
                .get(&holder.vin)
                .is_some_and(|v| claim.held_by(holder, v))
            {
                return Err(Error::refused(format!(
                    "{}: this key is registered as the report key of {}: an OEM signing key must be a key of its own",
                    file.display(),
                    holder.describe()
                )));
            }
        }
    }
    Ok(())
}

/// Threads reading and writing claim shards (fsyncs dominate; they overlap on the disk).
const WORKERS: usize = 8;

/// Make `wanted` claims at once, for `oem vehicle import`: checked against each other, then
/// against the index shard by shard, and only when every one is free written shard by shard
/// (two passes, so a fleet's index is never all in memory), all before any inventory record.
pub fn claim_all(dir: &Path, wanted: Vec<(Claim, Owner)>) -> Result<()> {
    ensure_current(dir)?;
    let mut shards = into_shards(wanted);
    check_each_other(&mut shards)?;
    let own = oem_keys(dir)?;
    if let Some((claim, owner)) = shards
        .iter()
        .flat_map(|(_, m)| m.iter())
        .find(|(c, _)| own.contains(c))
    {
        return Err(claim.oem_key(owner));
    }
    fsutil::try_each_parallel(&shards, WORKERS, |(shard, claims)| {
        let mut c = Claims::default();
        c.load_shard(dir, shard.clone())?;
        claims
            .iter()
            .try_for_each(|(claim, owner)| c.check_free(dir, claim, owner))
    })?;
    fsutil::try_each_parallel(&shards, WORKERS, |(shard, claims)| {
        // Each shard read and written once; the claims are known to be of this shard.
        let mut map = read_shard(dir, shard)?;
        let mut changed = false;
        for (claim, owner) in claims {
            if map.get(&claim.name) != Some(owner) {
                map.insert(claim.name.clone(), owner.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        fsutil::write_atomic(&shard_path(dir, shard), &to_json(&map)?)
    })?;
    let written: BTreeSet<String> = shards.into_iter().map(|(s, _)| s).collect();
    record(dir, Written::Claims(&written))
}

/// The claims by shard, sorted by shard (the shard of each claim hashed on every core).
fn into_shards(wanted: Vec<(Claim, Owner)>) -> Vec<(String, Vec<(Claim, Owner)>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = wanted.len().div_ceil(cores).max(1);
    let sharded: Vec<Vec<(String, Claim, Owner)>> = std::thread::scope(|s| {
        let mut rest = wanted;
        let mut parts = Vec::new();
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().saturating_sub(chunk));
            parts.push(tail);
        }
        let workers: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.into_iter()
                        .map(|(c, o)| (c.shard(), c, o))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut buckets: BTreeMap<String, Vec<(Claim, Owner)>> = BTreeMap::new();
    for (shard, claim, owner) in sharded.into_iter().flatten() {
        buckets.entry(shard).or_default().push((claim, owner));
    }
    buckets.into_iter().collect()
}

/// The claims against each other within each shard (on every core), each shard's sorted and
/// the same claim by the same owner kept once: two lines claiming one serial or key are
/// refused.
fn check_each_other(shards: &mut [(String, Vec<(Claim, Owner)>)]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conflict: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let per_core = shards.len().div_ceil(cores).max(1);
    std::thread::scope(|s| {
        for part in shards.chunks_mut(per_core) {
            let conflict = &conflict;
            s.spawn(move || {
                for (_, claims) in part.iter_mut() {
                    claims.sort_by(|a, b| a.0.cmp(&b.0));
                    claims.dedup_by(|a, b| a == b);
                    if let Some(w) = claims.windows(2).find(|w| w[0].0 == w[1].0) {
                        let (claim, owner) = &w[1];
                        let e = Error::refused(format!(
                            "{} and {} both claim {}: nothing imported",
                            w[0].1.describe(),
                            owner.describe(),
                            claim.what()
                        ));
                        if let Ok(mut c) = conflict.lock() {
                            c.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match conflict.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---- Keeping the index true to the inventory ------------------------------------------------
//
// Commands keep the index current as they go; what they cannot see is a change made around
// them: a shard of either restored from a backup, deleted, or edited. So the index records the
// stamp (inode, size, change time) of every inventory and claims shard as this program last
// left it (`seen.json`, as git's index does for a work tree), and before any claim is looked
// up the shards are stamped again: any difference, or no record, and the index is rebuilt from
// the inventory. A file put back from a backup or edited always gets a new change time (no
// program can set it), so no such change goes unseen; the cost when nothing changed is a stat
// per shard (4,352 at most).

const SEEN: &str = "seen.json";
/// Records the inventory holds twice (found by a rebuild): see [`check_fleet`].
const DUPLICATES: &str = "duplicates.json";
const DUPLICATES_STEM: &str = "duplicates";
/// Bound on `seen.json` and `duplicates.json`.
const MAX_RECORD: u64 = 64 << 20;

/// A file's stamp: inode, size, change time (seconds, nanoseconds).
type Stamp = (u64, u64, i64, i64);

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Seen {
    inventory: BTreeMap<String, Stamp>,
    claims: BTreeMap<String, Stamp>,
}

/// Serializes the updates of `seen.json` among an import's writer threads (commands are
/// serialized by the working directory's lock).
static SEEN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn stamp(path: &Path) -> Result<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    // Followed through a symbolic link, as the shard is read: a link's own stamp would not
    // change when what it points to does.
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.size(), m.ctime(), m.ctime_nsec()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// The stamps of every shard file (`*.json` named by hex digits) in `d`, and of the
/// duplicates list when `with_duplicates` (the claims directory: the list is part of the index,
/// so removing or editing it is a change like any other).
fn stamps(d: &Path, with_duplicates: bool) -> Result<BTreeMap<String, Stamp>> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(Error::Io {
                path: d.to_path_buf(),
                source: e,
            })
        }
    };
    for e in rd {
        let e = e.map_err(Error::io(d))?;
        let name = e.file_name();
        let Some(shard) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| {
                (!n.is_empty() && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    || (with_duplicates && *n == DUPLICATES_STEM)
            })
        else {
            continue;
        };
        if let Some(st) = stamp(&e.path())? {
            out.insert(shard.to_string(), st);
        }
    }
    Ok(out)
}

/// The recorded stamps; `None` when missing or unreadable (not a regular file, too large,
/// not JSON): then the index is rebuilt, which writes it anew.
fn read_seen(dir: &Path) -> Option<Seen> {
    let bytes = fsutil::read_bounded(&dir.join(CLAIMS_DIR).join(SEEN), MAX_RECORD).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_seen(dir: &Path, seen: &Seen) -> Result<()> {
    let bytes = serde_json::to_vec(seen)
        .map_err(|e| Error::refused(format!("internal: the claims stamps: {e}")))?;
    fsutil::write_atomic(&dir.join(CLAIMS_DIR).join(SEEN), &bytes)
}

/// Which shards [`record`] stamps.
pub enum Written<'a> {
    /// These inventory shards (after a command saved them).
    Inventory(&'a BTreeSet<String>),
    /// Every inventory shard (after an import's writers).
    AllInventory,
    /// These claims shards.
    Claims(&'a BTreeSet<String>),
}

/// Stamp shards this program just wrote, so the next look does not take them for a change
/// made around it. Nothing to do while the index is missing (it will be built).
pub fn record(dir: &Path, written: Written<'_>) -> Result<()> {
    let _serial = SEEN_LOCK.lock();
    let Some(mut seen) = read_seen(dir) else {
        return Ok(());
    };
    let before = serde_json::to_vec(&seen).unwrap_or_default();
    let (map, d, shards) = match written {
        Written::Inventory(s) => (&mut seen.inventory, super::store::INVENTORY_DIR, Some(s)),
        Written::AllInventory => (&mut seen.inventory, super::store::INVENTORY_DIR, None),
        Written::Claims(s) => (&mut seen.claims, CLAIMS_DIR, Some(s)),
    };
    match shards {
        None => *map = stamps(&dir.join(d), false)?,
        Some(shards) => {
            for shard in shards {
                match stamp(&dir.join(d).join(format!("{shard}.json")))? {
                    Some(st) => map.insert(shard.clone(), st),
                    None => map.remove(shard),
                };
            }
        }
    }
    if serde_json::to_vec(&seen).unwrap_or_default() == before {
        return Ok(());
    }
    write_seen(dir, &seen)
}

/// The index, current: rebuilt from the inventory when missing, or when a shard of either
/// differs from what this program left (restored, deleted, edited).
fn ensure_current(dir: &Path) -> Result<()> {
    let why = match read_seen(dir) {
        None if !dir.join(CLAIMS_DIR).is_dir() => None,
        None => Some("its record of the shards is missing"),
        Some(seen) => {
            let now = Seen {
                inventory: stamps(&dir.join(super::store::INVENTORY_DIR), false)?,
                claims: stamps(&dir.join(CLAIMS_DIR), true)?,
            };
            if now == seen {
                return Ok(());
            }
            Some(if now.inventory != seen.inventory {
                "inventory shards changed since this program wrote them (restored or edited)"
            } else {
                "claims shards changed since this program wrote them (restored, deleted or edited)"
            })
        }
    };
    if let Some(why) = why {
        eprintln!("note: the serial and key index (claims/) is rebuilt from the inventory: {why}");
    }
    rebuild(dir)
}

/// Build the index from the whole inventory, aside, and swap it in: an interrupted build is
/// started again. Records two vehicles or parties hold (a restored inventory shard can bring
/// back a serial or key since given to another) are kept in `duplicates.json`.
fn rebuild(dir: &Path) -> Result<()> {
    let target = dir.join(CLAIMS_DIR);
    let aside = dir.join(format!("{CLAIMS_DIR}.building"));
    let old = dir.join(format!("{CLAIMS_DIR}.old"));
    for leftover in [&aside, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(Error::io(leftover))?;
        }
    }
    std::fs::create_dir_all(&aside).map_err(Error::io(&aside))?;
    let mut shards: BTreeMap<String, ShardMap> = BTreeMap::new();
    let mut duplicates: Vec<Duplicate> = Vec::new();
    if dir.join(super::store::INVENTORY_DIR).is_dir() {
        let inv = Inventory::load(dir)?;
        for (vin, v) in &inv.vehicles {
            for (claim, owner) in of_vehicle(vin, v) {
                let slot = shards.entry(claim.shard()).or_default();
                match slot.get(&claim.name) {
                    Some(first) if *first != owner => duplicates.push(Duplicate {
                        what: claim.what_short(),
                        holders: vec![first.clone(), owner],
                        claim: claim.name,
                    }),
                    Some(_) => {}
                    None => {
                        slot.insert(claim.name, owner);
                    }
                }
            }
        }
    }
    let shards: Vec<(String, ShardMap)> = shards.into_iter().collect();
    fsutil::try_each_parallel(&shards, WORKERS, |(shard, map)| {
        let path = aside.join(format!("{shard}.json"));
        fsutil::write_atomic(&path, &to_json(map)?)
    })?;
    if !duplicates.is_empty() {
        let bytes = serde_json::to_vec_pretty(&duplicates)
            .map_err(|e| Error::refused(format!("internal: duplicates: {e}")))?;
        fsutil::write_atomic(&aside.join(DUPLICATES), &bytes)?;
    }
    fsutil::sync_dir(&aside);
    if target.exists() {
        std::fs::rename(&target, &old).map_err(Error::io(&target))?;
    }
    std::fs::rename(&aside, &target).map_err(Error::io(&target))?;
    fsutil::sync_dir(dir);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
    }
    let seen = Seen {
        inventory: stamps(&dir.join(super::store::INVENTORY_DIR), false)?,
        claims: stamps(&target, true)?,
    };
    write_seen(dir, &seen)
}

/// A holder of `claim` other than `owner` whose record still holds it, among those the
/// duplicates list names.
fn other_holder(dir: &Path, claim: &Claim, owner: &Owner) -> Result<Option<Owner>> {
    for d in read_duplicates(dir)?
        .into_iter()
        .filter(|d| d.claim == claim.name)
    {
        for h in d.holders.into_iter().filter(|h| h != owner) {
            let inv = Inventory::load_for(dir, &[&h.vin])?;
            if inv
                .vehicles
                .get(&h.vin)
                .is_some_and(|v| claim.held_by(&h, v))
            {
                return Ok(Some(h));
            }
        }
    }
    Ok(None)
}

/// The duplicates list (none when there is no file). It is stamped with the index, so one
/// changed by anything but this program has been rebuilt before it is read here.
fn read_duplicates(dir: &Path) -> Result<Vec<Duplicate>> {
    let path = dir.join(CLAIMS_DIR).join(DUPLICATES);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = fsutil::read_bounded(&path, MAX_RECORD)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path,
        reason: format!("{e} (remove the claims/ directory: it is rebuilt from the inventory)"),
    })
}

/// One serial or key two inventory records hold.
#[derive(Debug, Serialize, Deserialize)]
struct Duplicate {
    /// The index name of the claim.
    claim: String,
    /// For people: "ECU serial S1", "a key".
    what: String,
    holders: Vec<Owner>,
}

/// Refuse a fleet whose inventory holds one serial or key twice (found when the index was
/// rebuilt, e.g. after an inventory shard was restored from a backup): `oem publish` would
/// otherwise publish instructions for one ECU serial to two vehicles. Duplicates resolved since
/// (an ECU or vehicle removed, a key changed) are dropped. `rebuild_first` (`oem publish
/// --force`) rebuilds the index from the whole inventory whatever the stamps say: the check
/// for what the stamps cannot see (an edit of the same size within the same second on a file
/// system that keeps change times in whole seconds).
pub fn check_fleet(dir: &Path, rebuild_first: bool) -> Result<()> {
    if rebuild_first {
        rebuild(dir)?;
    } else {
        ensure_current(dir)?;
    }
    let path = dir.join(CLAIMS_DIR).join(DUPLICATES);
    let listed = read_duplicates(dir)?;
    if listed.is_empty() {
        return Ok(());
    }
    let mut still = Vec::new();
    for d in listed {
        let claim = Claim {
            name: d.claim.clone(),
        };
        let vins: Vec<&str> = d.holders.iter().map(|h| h.vin.as_str()).collect();
        let inv = Inventory::load_for(dir, &vins)?;
        let holding = d
            .holders
            .iter()
            .filter(|h| {
                inv.vehicles
                    .get(&h.vin)
                    .is_some_and(|v| claim.held_by(h, v))
            })
            .count();
        if holding > 1 {
            still.push(d);
        }
    }
    if still.is_empty() {
        fsutil::remove_durably(&path)?;
        return record(
            dir,
            Written::Claims(&BTreeSet::from([DUPLICATES_STEM.to_string()])),
        );
    }
    let list: Vec<String> = still
        .iter()
        .map(|d| {
            let who: Vec<String> = d.holders.iter().map(Owner::describe).collect();
            format!("{} is held by {}", d.what, who.join(" and "))
        })
        .collect();
    Err(Error::refused(format!(
        "the inventory holds what only one may hold (was a shard restored from a backup?): {}; take it out of the one that no longer has it (`oem ecu remove`, `oem vehicle key`, `oem vehicle remove`), then publish",
        list.join("; ")
    )))
}
