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
//! DIR/claims/KKK.json   claim -> owner, KKK = the first hex digits of SHA-256(claim)
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
/// Hex digits of a claim's shard (4,096 shards, as the inventory).
const DIGITS: usize = 3;
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

/// One thing only one part may hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claim {
    /// An ECU serial (held by the vehicle the ECU is in).
    Serial(String),
    /// A report-signing key, by the SHA-256 of its PEM (the inventory keeps keys in one
    /// canonical PEM form, so one key always has one fingerprint).
    Key(String),
}

impl Claim {
    pub fn key(key: &Key) -> Self {
        Claim::Key(hex(&Sha256::digest(key.keyval.public.as_bytes())))
    }
    fn name(&self) -> String {
        match self {
            Claim::Serial(s) => format!("serial:{s}"),
            Claim::Key(f) => format!("key:{f}"),
        }
    }
    fn shard(&self) -> String {
        let mut h = hex(&Sha256::digest(self.name().as_bytes()));
        h.truncate(DIGITS);
        h
    }
    /// Whether `v`, the inventory record of `owner`'s vehicle, holds this claim for `owner`.
    fn held_by(&self, owner: &Owner, v: &Vehicle) -> bool {
        match (self, &owner.ecu) {
            (Claim::Serial(s), None) => v.ecus.contains_key(s),
            (Claim::Key(_), None) => v.key.as_ref().is_some_and(|k| Claim::key(k) == *self),
            (Claim::Key(_), Some(serial)) => v
                .ecus
                .get(serial)
                .and_then(|e| e.key.as_ref())
                .is_some_and(|k| Claim::key(k) == *self),
            (Claim::Serial(_), Some(_)) => false,
        }
    }
    /// What the claim is, for a message.
    fn what(&self) -> String {
        match self {
            Claim::Serial(s) => format!("ECU serial {s} (a serial names one ECU in the fleet)"),
            Claim::Key(_) => {
                "one key (every vehicle and ECU signs with a key of its own)".to_string()
            }
        }
    }
    fn refusal(&self, wanted: &Owner, holder: &Owner) -> Error {
        match self {
            Claim::Serial(s) => Error::refused(format!(
                "ECU serial {s} is already registered in vehicle {}: a serial names one ECU in the fleet (the ECU's instructions are bound to it); take it out there first with `oem ecu remove` or `oem ecu replace`",
                holder.vin
            )),
            Claim::Key(_) => Error::refused(format!(
                "this key is already registered for {}, so it cannot also be {}'s: every vehicle and ECU signs with a key of its own, so that one stolen key speaks for one of them only",
                holder.describe(),
                wanted.describe()
            )),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The claims a vehicle's inventory record holds, with their owners.
pub fn of_vehicle(vin: &str, v: &Vehicle) -> Vec<(Claim, Owner)> {
    let mut out = Vec::new();
    if let Some(k) = &v.key {
        out.push((Claim::key(k), Owner::vehicle(vin)));
    }
    for (serial, e) in &v.ecus {
        out.push((Claim::Serial(serial.clone()), Owner::vehicle(vin)));
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
        ensure_built(dir)?;
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

    /// The shard of `claim`, to change.
    fn slot(&mut self, claim: &Claim) -> Result<&mut ShardMap> {
        let shard = claim.shard();
        let slot = self
            .shards
            .get_mut(&shard)
            .ok_or_else(|| Error::refused("internal: a claim's shard was not loaded"))?;
        self.changed.insert(shard);
        Ok(slot)
    }

    /// Who holds `claim` according to the index (possibly a stale entry).
    fn holder(&self, claim: &Claim) -> Option<&Owner> {
        self.shards.get(&claim.shard())?.get(&claim.name())
    }

    /// Record that `owner` holds `claim`, refusing when another owner's inventory record
    /// holds it.
    pub fn claim(&mut self, dir: &Path, claim: &Claim, owner: &Owner) -> Result<()> {
        self.check_free(dir, claim, owner)?;
        self.slot(claim)?.insert(claim.name(), owner.clone());
        Ok(())
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

    /// Forget that `owner` holds `claim` (nothing if someone else's).
    pub fn release(&mut self, claim: &Claim, owner: &Owner) -> Result<()> {
        let name = claim.name();
        let slot = self.slot(claim)?;
        if slot.get(&name) == Some(owner) {
            slot.remove(&name);
        }
        Ok(())
    }

    /// Write the shards that changed.
    pub fn save(&self, dir: &Path) -> Result<()> {
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
                fsutil::write_atomic(&path, &ota_metadata::canonical::to_canonical(map)?)?;
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

/// Make `wanted` claims at once, for `oem vehicle import`: checked against each other, then
/// against the index shard by shard, and only when every one is free written shard by shard
/// (two passes, so a fleet's index is never all in memory), all before any inventory record.
pub fn claim_all(dir: &Path, wanted: Vec<(Claim, Owner)>) -> Result<()> {
    ensure_built(dir)?;
    // Against each other first: two lines claiming one serial or key.
    let mut by_shard: BTreeMap<String, BTreeMap<String, (Claim, Owner)>> = BTreeMap::new();
    for (claim, owner) in wanted {
        let slot = by_shard.entry(claim.shard()).or_default();
        match slot.get(&claim.name()) {
            Some((_, other)) if *other != owner => {
                return Err(Error::refused(format!(
                    "{} and {} both claim {}: nothing imported",
                    other.describe(),
                    owner.describe(),
                    claim.what()
                )))
            }
            _ => {
                slot.insert(claim.name(), (claim, owner));
            }
        }
    }
    for (shard, claims) in &by_shard {
        let mut c = Claims::default();
        c.load_shard(dir, shard.clone())?;
        for (claim, owner) in claims.values() {
            c.check_free(dir, claim, owner)?;
        }
    }
    for (shard, claims) in by_shard {
        let mut c = Claims::default();
        c.load_shard(dir, shard)?;
        for (claim, owner) in claims.into_values() {
            c.slot(&claim)?.insert(claim.name(), owner);
        }
        c.save(dir)?;
    }
    Ok(())
}

/// Build the index from the inventory if this directory has none (made before it existed).
/// Built aside and renamed into place, so an interrupted build is started again.
fn ensure_built(dir: &Path) -> Result<()> {
    let target = dir.join(CLAIMS_DIR);
    if target.is_dir() {
        return Ok(());
    }
    let aside = dir.join(format!("{CLAIMS_DIR}.building"));
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(Error::io(&aside))?;
    }
    std::fs::create_dir_all(&aside).map_err(Error::io(&aside))?;
    let mut shards: BTreeMap<String, ShardMap> = BTreeMap::new();
    if dir.join(super::store::INVENTORY_DIR).is_dir() {
        let inv = Inventory::load(dir)?;
        for (vin, v) in &inv.vehicles {
            for (claim, owner) in of_vehicle(vin, v) {
                // A fleet registered before the index may hold a duplicate: the first holder
                // keeps the entry, and the other is refused only when it claims it again.
                shards
                    .entry(claim.shard())
                    .or_default()
                    .entry(claim.name())
                    .or_insert(owner);
            }
        }
    }
    for (shard, map) in &shards {
        let path = aside.join(format!("{shard}.json"));
        fsutil::write_atomic(&path, &ota_metadata::canonical::to_canonical(map)?)?;
    }
    fsutil::sync_dir(&aside);
    std::fs::rename(&aside, &target).map_err(Error::io(&target))?;
    fsutil::sync_dir(dir);
    Ok(())
}
