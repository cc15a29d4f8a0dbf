//! The per-vehicle half of the OEM publish: the tree of `ota_metadata::documents::vehicles`,
//! whose leaves hold each vehicle's assignments, written from the sharded state ([`super::store`]) in
//! time and memory that grow with what changed.
//!
//! - Nothing changed (no shard pending): nothing is read or written here; the caller re-signs
//!   the index, snapshot and timestamp when they are due.
//! - Some shards pending: for each, the vehicles' wanted assignments are compared with what the
//!   published tree lists under the shard's prefix; changed vehicles get a new entry (version
//!   raised), and the tree is updated along their paths only.
//! - No usable record of the published tree (first publish), or many shards pending, or the
//!   set of suppliers changed: every shard is processed, in parallel, and the tree is built
//!   bottom-up, shard by shard, so memory holds one shard per worker. Versions continue from
//!   the tree last published (the record's, else the served index's).
//!
//! Files are content-addressed and never rewritten with other bytes. Incremental writes are
//! fsynced one by one; a bulk build writes without fsync and syncs the file system once, before
//! the index that names the files is signed.

use super::broadcast::WrapPlan;
use super::inventory::Vehicle;
use super::{read_state, store, write_state, Settings, PUBLISHED};
use crate::error::{Error, Result};
use crate::fsutil;
use base64::Engine as _;
use ota_crypt::fleet::{FleetSecret, VehicleSecret};
use ota_metadata::documents::vehicles::{
    self, build, check_node, combine, entries_under, finish, node_path, update, Leaf, NodeLink,
    NodeSink, NodeSource, Subtree, VehicleEntry, VehicleIndex, VehicleNode, DIR_DIGITS, FANOUT,
    MAX_NODE_BYTES,
};
use ota_metadata::documents::{Assignments as AssignmentsDoc, EcuAssignment};
use ota_metadata::roles::{Snapshot, Timestamp};
use ota_metadata::Envelope;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Shards in all (16^DIR_DIGITS).
const SHARDS: usize = 1 << (4 * DIR_DIGITS);
/// More pending shards than this: rebuild in bulk rather than path by path.
const BULK_ABOVE: usize = SHARDS / 16;

/// What the publisher records about the tree it published (`DIR/published.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The root node published last (`None`: no vehicle has assignments).
    pub tree: Option<NodeLink>,
    /// The leaf size the tree was built with (a change rebuilds it).
    pub leaf_max: usize,
    /// The suppliers pinned then: assignments of a supplier no longer pinned are withdrawn, so
    /// a change of this set re-checks every vehicle.
    pub suppliers: Vec<String>,
    /// The entries' format ([`vehicles::ENTRY_FORMAT`]); a record of another is no record.
    #[serde(default)]
    pub format: String,
    /// The digest of the wraps the entries name ([`WrapPlan::digest`]): wraps made again for
    /// other receivers (a revocation, a replaced gateway, a new block of vehicles) rewrite
    /// every entry that names them.
    #[serde(default)]
    pub wraps: String,
}

impl Record {
    pub fn load(dir: &Path) -> Option<Record> {
        // An unreadable or earlier-format record (a map per VIN) is no record: rebuild.
        read_state::<Option<Record>>(dir, PUBLISHED)
            .ok()
            .flatten()
            .filter(|r| r.format == vehicles::ENTRY_FORMAT)
    }
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_state(dir, PUBLISHED, self)
    }
}

/// What the vehicle part of a publish did.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// Vehicles whose assignments were published anew (new or changed).
    pub vehicles_written: usize,
    /// Tree nodes written.
    pub nodes_written: usize,
    /// Shards processed (their state read and compared with the tree).
    pub shards: usize,
    /// Whether the tree was rebuilt in bulk.
    pub bulk: bool,
    /// `VIN/serial` of assignments not published: the ECU, its hardware id or its supplier is
    /// no longer valid.
    pub withdrawn: Vec<String>,
}

/// The outcome, to be committed by the caller once the index is about to be signed.
pub struct FleetUpdate {
    pub record: Record,
    pub report: FleetReport,
    /// Pending shards handled (to clear once the record is saved).
    pub handled: BTreeSet<String>,
}

/// A published file: skipped when present with the right length (names are content hashes),
/// or with `repair`, only when present with the right bytes (a damaged copy of the same length
/// is replaced); else written through a temporary file and renamed, world-readable, fsynced if
/// `durable`.
fn put_file(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    repair: bool,
    staging: &Path,
) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64)
        && (!repair || fsutil::read_bounded(path, MAX_NODE_BYTES).is_ok_and(|b| b == bytes))
    {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    // Made in the scratch directory (on the tree's file system), never among the served
    // names: a crash leaves nothing in the tree, and the next locked command sweeps it.
    let mut tmp = fsutil::temp_file_in(staging)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(fsutil::PUBLIC_FILE))
        .map_err(Error::io(tmp.path()))?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    if durable {
        tmp.as_file().sync_all().map_err(Error::io(path))?;
    }
    // A kill here leaves the temporary file, never a served name (the kill harness checks).
    ota_client::fault::point(|| format!("staged {}", path.display()));
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(dir))?;
    }
    Ok(true)
}

/// Nodes read from and written to the repository.
pub struct RepoTree {
    repo: PathBuf,
    /// Where temporary files are made ([`fsutil::staging_for`] of the tree's directory).
    staging: Option<PathBuf>,
    durable: bool,
    /// Compare nodes already present with what they must hold, and rewrite damaged ones
    /// (`publish --force`).
    repair: bool,
    pub written: usize,
    /// Parsed nodes of the top levels, which every shard's walk goes through.
    cache: HashMap<String, VehicleNode>,
}

impl RepoTree {
    pub fn new(repo: &Path, durable: bool) -> Self {
        RepoTree {
            repo: repo.to_path_buf(),
            staging: None,
            durable,
            repair: false,
            written: 0,
            cache: HashMap::new(),
        }
    }
}

impl NodeSink for RepoTree {
    type Error = Error;
    fn put(&mut self, prefix: &str, link: &NodeLink, bytes: Vec<u8>) -> Result<()> {
        let path = self.repo.join(node_path(prefix, &link.sha256));
        let staging = match &self.staging {
            Some(s) => s.clone(),
            None => {
                let dir = path.parent().unwrap_or(&self.repo);
                std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
                for d in dir
                    .ancestors()
                    .take_while(|d| d.starts_with(&self.repo) && *d != self.repo)
                {
                    fsutil::make_public(d, fsutil::PUBLIC_DIR)?;
                }
                let s = fsutil::staging_for(dir);
                self.staging = Some(s.clone());
                s
            }
        };
        if put_file(&path, &bytes, self.durable, self.repair, &staging)? {
            self.written += 1;
        }
        Ok(())
    }
}

impl NodeSource for RepoTree {
    type Error = Error;
    fn get(&mut self, prefix: &str, link: &NodeLink) -> Result<VehicleNode> {
        if let Some(n) = self.cache.get(&link.sha256) {
            return Ok(n.clone());
        }
        let path = self.repo.join(node_path(prefix, &link.sha256));
        let bytes = fsutil::read_bounded(&path, MAX_NODE_BYTES)?;
        // A node whose bytes do not hash to its name was damaged on disk. It cannot be rebuilt
        // from the state: the assignment versions vehicles hold are only in the published
        // tree. The copy the web server or store serves has the same name and the right bytes.
        if ota_metadata::trusted_set::check_meta(&path.display().to_string(), &link.meta(), &bytes)
            .is_err()
        {
            return Err(Error::refused(format!(
                "{} is damaged (its bytes do not hash to its name): bring it back from the tree your web server or store serves (the same name holds the right bytes) with `ota-repo oem repair DIR --from URL_OR_DIR`, then publish again",
                path.display()
            )));
        }
        let node = check_node(&bytes, prefix).map_err(Error::meta(&path))?;
        if prefix.len() < DIR_DIGITS {
            self.cache.insert(link.sha256.clone(), node.clone());
        }
        Ok(node)
    }
}

/// One shard processed: every vehicle it has in the tree now (sorted by key), and the changed.
struct Shard {
    all: Vec<Leaf>,
    changed: Vec<Leaf>,
    withdrawn: Vec<String>,
}

/// One shard processed. The procedure: the shard's state read → every VIN it knows located
/// (each in this shard, no two at one locator) → the published entries opened (each one the
/// state knows, none with assignments the inventory lost) → every vehicle's entry kept, or
/// sealed anew when its assignments changed.
fn process_shard(
    dir: &Path,
    shard: &str,
    ctx: &ShardContext,
    base: &mut RepoTree,
    base_root: Option<&NodeLink>,
) -> Result<Shard> {
    let state = ShardState::read(dir, shard)?;
    let known = state.locate(dir, shard, ctx)?;
    let published = open_published(shard, base, base_root, &known)?;
    state.check_not_lost(shard, &published)?;
    // Every vehicle of the inventory has an entry, assigned or not: an entry appearing would
    // otherwise tell the CDN that a vehicle just got its first assignment.
    let vins: BTreeSet<&String> = state
        .wanted
        .keys()
        .chain(published.keys())
        .chain(state.inv.keys())
        .collect();
    let mut out = Shard {
        all: Vec::with_capacity(vins.len()),
        changed: Vec::new(),
        withdrawn: Vec::new(),
    };
    for vin in vins {
        match state.entry(ctx, vin, published.get(vin), &mut out.withdrawn)? {
            Entry::None => {}
            Entry::Kept(leaf) => out.all.push(leaf),
            Entry::Changed(leaf) => {
                out.changed.push(leaf.clone());
                out.all.push(leaf);
            }
        }
    }
    out.all.sort_by(|a, b| a.key.cmp(&b.key));
    out.changed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A shard's state as it is: its vehicles, the removed ones and the wanted assignments.
struct ShardState {
    inv: BTreeMap<String, Vehicle>,
    removed: BTreeMap<String, String>,
    wanted: BTreeMap<String, BTreeMap<String, EcuAssignment>>,
}

/// A vehicle's published entry, opened, and its leaf.
type Published = BTreeMap<String, (VehicleEntry, Leaf)>;

/// What a vehicle's entry becomes in this publish.
enum Entry {
    /// No entry (neither published, assigned nor in the inventory).
    None,
    /// The published one, unchanged.
    Kept(Leaf),
    /// A new one.
    Changed(Leaf),
}

impl ShardState {
    /// Read as they are; every vehicle's locator is derived by [`ShardState::locate`] and must
    /// be in this shard.
    fn read(dir: &Path, shard: &str) -> Result<ShardState> {
        let (inv, _) = store::read_shard_file::<Vehicle>(dir, store::INVENTORY_DIR, shard)?;
        let (removed, _) = store::read_shard_file::<String>(dir, store::REMOVED_DIR, shard)?;
        let (wanted, _) = store::read_shard_file::<BTreeMap<String, EcuAssignment>>(
            dir,
            store::ASSIGNMENTS_DIR,
            shard,
        )?;
        Ok(ShardState {
            inv,
            removed,
            wanted,
        })
    }

    /// Every VIN the state knows under this shard, by locator: the tree names no VIN. A VIN
    /// whose locator is in another shard, or two VINs at one locator, are refused.
    fn locate(
        &self,
        dir: &Path,
        shard: &str,
        ctx: &ShardContext,
    ) -> Result<HashMap<String, (&String, VehicleSecret)>> {
        let mut known: HashMap<String, (&String, VehicleSecret)> = HashMap::new();
        let vins = self
            .inv
            .keys()
            .chain(self.removed.keys())
            .chain(self.wanted.keys());
        for vin in vins {
            let secret = ctx.fleet.vehicle(vin);
            let locator = secret.locator();
            if !locator.starts_with(shard) {
                return Err(Error::Config {
                    path: dir.join(store::INVENTORY_DIR).join(format!("{shard}.json")),
                    reason: format!(
                        "{vin} belongs in shard {}, not here",
                        &locator[..shard.len().min(locator.len())]
                    ),
                });
            }
            if let Some((other, _)) = known.get(&locator).filter(|(o, _)| *o != vin) {
                return Err(Error::refused(format!(
                    "vehicles {other} and {vin} have the same locator {locator}: give one of them another VIN"
                )));
            }
            known.insert(locator, (vin, secret));
        }
        Ok(known)
    }

    /// A vehicle published with assignments must still be in the inventory (or removed on
    /// purpose): else the state was lost, and publishing would withdraw its assignments.
    fn check_not_lost(&self, shard: &str, published: &Published) -> Result<()> {
        if let Some(vin) = published
            .iter()
            .find(|(vin, (e, _))| {
                !e.ecus.is_empty()
                    && !self.inv.contains_key(*vin)
                    && !self.removed.contains_key(*vin)
            })
            .map(|(vin, _)| vin)
        {
            return Err(Error::refused(format!(
                "vehicle {vin} is in the published tree with assignments but not in the inventory (DIR/{}/{shard}.json): the OEM's state was lost or restored from an older backup, and publishing it would withdraw the vehicle's assignments; restore the state from a newer backup, or take the vehicle out with `oem vehicle remove --vin {vin}`",
                store::INVENTORY_DIR
            )));
        }
        Ok(())
    }

    /// The entry of `vin` in this publish (`old`: its published one). Assignments that no
    /// longer match the inventory or the pinned suppliers are withdrawn, loudly (into
    /// `withdrawn`); an encrypted image's names this publish's wraps; an unchanged vehicle
    /// keeps its entry, a changed one is sealed anew at the next version.
    fn entry(
        &self,
        ctx: &ShardContext,
        vin: &String,
        old: Option<&(VehicleEntry, Leaf)>,
        withdrawn: &mut Vec<String>,
    ) -> Result<Entry> {
        let inv = &self.inv;
        let mut ecus = self.wanted.get(vin).cloned().unwrap_or_default();
        ecus.retain(|serial, a| {
            let ok = inv
                .get(vin)
                .and_then(|v| v.ecus.get(serial))
                .is_some_and(|e| !e.aftermarket && e.hardware_id == a.hardware_id)
                && ctx.suppliers.contains(&a.supplier);
            if !ok {
                withdrawn.push(format!("{vin}/{serial}"));
            }
            ok
        });
        // An encrypted image's assignment names the wraps of this publish: those of the
        // vehicle's group, for who is entitled now.
        let no_leaves = BTreeMap::new();
        let leaves = inv.get(vin).map_or(&no_leaves, |v| &v.decryption_leaves);
        for a in ecus.values_mut() {
            a.key_wraps = ctx
                .wraps
                .for_vehicle(&a.supplier, &a.target, &a.hardware_id, leaves);
        }
        if old.is_none() && ecus.is_empty() && !inv.contains_key(vin) {
            return Ok(Entry::None);
        }
        if let Some((_, leaf)) = old.filter(|(o, _)| same_assignments(&o.ecus, &ecus)) {
            return Ok(Entry::Kept(leaf.clone()));
        }
        let version = match old {
            None => 1,
            Some((o, _)) => o.version.checked_add(1).ok_or_else(|| {
                Error::refused(format!(
                    "the assignments version of {vin} is at its maximum"
                ))
            })?,
        };
        let ecus = instructed(ctx, vin, ecus, old.map(|(o, _)| &o.ecus))?;
        // Padded for every ECU the vehicle has, assigned or not: the size class tells how
        // many ECUs a vehicle has, not how many were assigned.
        let min = vehicles::padded_for(
            inv.get(vin)
                .map_or(0, |v| v.ecus.values().filter(|e| !e.aftermarket).count()),
        );
        let secret = ctx.fleet.vehicle(vin);
        let leaf = Leaf::seal_padded(vin, &VehicleEntry { version, ecus }, &secret, min)
            .map_err(|e| Error::refused(format!("the assignments of {vin}: {e}")))?;
        Ok(Entry::Changed(leaf))
    }
}

/// The published entries under this shard, each opened with its vehicle's secret. The
/// published tree is the truth about who is in the fleet: a locator the state cannot name was
/// lost (the state deleted, or restored from an older backup), and is refused.
fn open_published(
    shard: &str,
    base: &mut RepoTree,
    base_root: Option<&NodeLink>,
    known: &HashMap<String, (&String, VehicleSecret)>,
) -> Result<Published> {
    let mut published = Published::new();
    for leaf in entries_under(base, base_root, shard)? {
        let Some((vin, secret)) = known.get(&leaf.key) else {
            return Err(Error::refused(format!(
                "the published tree has a vehicle at locator {} that the OEM's state does not know (DIR/{}/{shard}.json): the state was lost or restored from an older backup, and publishing it would withdraw that vehicle's assignments; restore the state from a newer backup",
                leaf.key,
                store::INVENTORY_DIR
            )));
        };
        let entry = VehicleEntry::open(&leaf.sealed, vin, secret).map_err(|e| {
            Error::refused(format!(
                "the published entry of {vin} does not open with its secret ({e}): was DIR/{} replaced? Restore it from your backup",
                super::privacy::FLEET_SECRET
            ))
        })?;
        published.insert((*vin).clone(), (entry, leaf));
    }
    Ok(published)
}

/// What every shard of one publish is processed with.
struct ShardContext<'a> {
    fleet: FleetSecret,
    suppliers: BTreeSet<String>,
    /// The OEM's instruction key ([`super::privacy::instruction_key`]).
    instruction_key: ed25519_dalek::SigningKey,
    /// The sequence of the instructions made now: the version of the index being signed.
    sequence: u32,
    /// The wraps of every encrypted image, made for this publish.
    wraps: &'a WrapPlan,
}

/// Whether two vehicles' assignments say the same, whatever their instructions.
fn same_assignments(
    a: &BTreeMap<String, EcuAssignment>,
    b: &BTreeMap<String, EcuAssignment>,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((sa, x), (sb, y))| sa == sb && comparable(x) == comparable(y))
}

fn comparable(a: &EcuAssignment) -> EcuAssignment {
    EcuAssignment {
        instruction: None,
        compact_sha256: None,
        ..a.clone()
    }
}

/// What an ECU's instruction is about: the assignment without the gateway's wraps (new wraps
/// for the same image are news to the gateway, not to the ECU).
fn instructed_about(a: &EcuAssignment) -> EcuAssignment {
    EcuAssignment {
        key_wraps: None,
        ..comparable(a)
    }
}

/// `ecus` as published: an ECU whose assignment did not change keeps its instruction; a
/// changed one gets a new instruction at the publish's sequence, signed by the
/// OEM's instruction key, when the image's compact manifest hash is known (images reviewed
/// before instructions have none). The hash itself is not published: the gateway rebuilds
/// the signed body from the compact manifest it forwards.
fn instructed(
    ctx: &ShardContext,
    vin: &str,
    ecus: BTreeMap<String, EcuAssignment>,
    old: Option<&BTreeMap<String, EcuAssignment>>,
) -> Result<BTreeMap<String, EcuAssignment>> {
    use ed25519_dalek::Signer;
    let sequence = ctx.sequence;
    let mut out = BTreeMap::new();
    for (serial, a) in ecus {
        let kept = old
            .and_then(|o| o.get(&serial))
            .filter(|o| instructed_about(o) == instructed_about(&a) && o.instruction.is_some());
        let published = match (kept, &a.compact_sha256) {
            (Some(o), _) => EcuAssignment {
                instruction: o.instruction.clone(),
                ..comparable(&a)
            },
            (None, None) => comparable(&a),
            (None, Some(h)) => {
                let mut manifest_sha256 = [0u8; 32];
                hex::decode_to_slice(h, &mut manifest_sha256).map_err(|_| {
                    Error::refused(format!(
                        "the assignment of {vin}/{serial}: compact manifest hash {h:?} is not 64 hex digits"
                    ))
                })?;
                let i = ota_ecu::instruction::Instruction {
                    serial_sha256: sha2::Sha256::digest(serial.as_bytes()).into(),
                    manifest_sha256,
                    release_counter: a.release_counter,
                    sequence,
                };
                let sig = ctx.instruction_key.sign(&i.body()).to_bytes();
                EcuAssignment {
                    instruction: Some(ota_metadata::documents::EcuInstruction {
                        sequence,
                        signature: base64::engine::general_purpose::STANDARD.encode(sig),
                    }),
                    ..comparable(&a)
                }
            }
        };
        out.insert(serial, published);
    }
    Ok(out)
}

/// The version of the `vehicles` index the tree at `repo` serves (0: none yet).
fn index_version(repo: &Path) -> u64 {
    let limits = ota_metadata::MetadataLimits::default();
    let signed = |name: &str, limit: u64| -> Option<Envelope> {
        let bytes = fsutil::read_bounded(&repo.join(name), limit).ok()?;
        Envelope::parse(name, &bytes, limit).ok()
    };
    signed("timestamp.json", limits.timestamp)
        .and_then(|e| e.decode::<Timestamp>("timestamp", Timestamp::TYPE).ok())
        .and_then(|ts| ts.snapshot_meta().ok().map(|m| m.version))
        .and_then(|v| {
            signed(&format!("{v}.snapshot.json"), limits.snapshot)?
                .decode::<Snapshot>("snapshot", Snapshot::TYPE)
                .ok()
        })
        .and_then(|snap| snap.meta.get("vehicles.json").map(|m| m.version))
        .unwrap_or(0)
}

/// The tree the served index names, when the publisher has no record of its own.
/// Unverified (the publisher's own output; only the tree's position is taken from it, and
/// every node read is checked against its hash). A missing or unreadable index is no tree.
pub fn served_tree(repo: &Path) -> Result<Option<NodeLink>> {
    let limits = ota_metadata::MetadataLimits::default();
    let signed = |name: &str, limit: u64| -> Option<Envelope> {
        let bytes = fsutil::read_bounded(&repo.join(name), limit).ok()?;
        Envelope::parse(name, &bytes, limit).ok()
    };
    let Some(ts) = signed("timestamp.json", limits.timestamp)
        .and_then(|e| e.decode::<Timestamp>("timestamp", Timestamp::TYPE).ok())
    else {
        return Ok(None);
    };
    let Some(snap) = ts.snapshot_meta().ok().and_then(|m| {
        signed(&format!("{}.snapshot.json", m.version), limits.snapshot)?
            .decode::<Snapshot>("snapshot", Snapshot::TYPE)
            .ok()
    }) else {
        return Ok(None);
    };
    let Some(meta) = snap.meta.get("vehicles.json") else {
        return Ok(None);
    };
    // A vehicles index of an earlier format has no tree: nothing to continue from.
    Ok(
        signed(&format!("{}.vehicles.json", meta.version), limits.targets)
            .and_then(|e| {
                e.decode::<VehicleIndex>("vehicles", VehicleIndex::TYPE)
                    .ok()
            })
            .and_then(|i| i.tree),
    )
}

/// Bring the published vehicle tree in line with the wanted assignments; see the module doc.
/// `force` rebuilds the whole tree and rewrites any node whose file is damaged.
pub fn update_vehicles(
    dir: &Path,
    repo: &Path,
    s: &Settings,
    wraps: &WrapPlan,
    force: bool,
) -> Result<FleetUpdate> {
    store::migrate(dir)?;
    let leaf_max = vehicles::DEFAULT_LEAF_MAX;
    let suppliers: BTreeSet<String> = s.suppliers.keys().cloned().collect();
    // Instructions made now carry the version of the index this publish signs: it rises with
    // every publish across the whole fleet, so an ECU moved to another vehicle (whose entry
    // versions are lower) never sees a sequence below one it accepted there.
    let sequence = index_version(repo)
        .checked_add(1)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            Error::refused("the vehicles index version is above what ECU instructions carry")
        })?;
    let ctx = ShardContext {
        fleet: super::privacy::fleet_secret(dir)?,
        suppliers: suppliers.clone(),
        instruction_key: super::privacy::instruction_key(dir)?,
        sequence,
        wraps,
    };
    let pending = store::pending(dir)?;
    // The record must describe the tree that is published: one restored from an older backup
    // (or left by a cut publish) does not, and versions must continue from what vehicles hold.
    let served = served_tree(repo)?;
    let record = Record::load(dir)
        .filter(|r| r.leaf_max == leaf_max)
        .filter(|r| served.is_none() || r.tree == served);
    let base_root = match &record {
        Some(r) => r.tree.clone(),
        None => served,
    };
    let same_suppliers = record
        .as_ref()
        .is_some_and(|r| r.suppliers.iter().cloned().collect::<BTreeSet<_>>() == suppliers);
    let digest = wraps.digest();
    let same_wraps = record.as_ref().is_some_and(|r| r.wraps == digest);
    let mut report = FleetReport::default();
    let bulk =
        force || record.is_none() || !same_suppliers || !same_wraps || pending.len() > BULK_ABOVE;
    let tree = if !bulk {
        incremental(dir, repo, &pending, &ctx, base_root, leaf_max, &mut report)?
    } else {
        bulk_build(dir, repo, &ctx, base_root, leaf_max, force, &mut report)?
    };
    report.bulk = bulk;
    Ok(FleetUpdate {
        record: Record {
            tree,
            leaf_max,
            suppliers: suppliers.into_iter().collect(),
            format: vehicles::ENTRY_FORMAT.into(),
            wraps: digest,
        },
        report,
        handled: pending,
    })
}

fn incremental(
    dir: &Path,
    repo: &Path,
    pending: &BTreeSet<String>,
    ctx: &ShardContext,
    root: Option<NodeLink>,
    leaf_max: usize,
    report: &mut FleetReport,
) -> Result<Option<NodeLink>> {
    let mut tree = RepoTree::new(repo, true);
    let mut changes = Vec::new();
    for shard in pending {
        let sh = process_shard(dir, shard, ctx, &mut tree, root.as_ref())?;
        report.vehicles_written += sh.changed.len();
        report.withdrawn.extend(sh.withdrawn);
        changes.extend(sh.changed);
        report.shards += 1;
    }
    if changes.is_empty() {
        return Ok(root);
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    let mut source = RepoTree::new(repo, true);
    let t = update(&mut source, &mut tree, "", root.as_ref(), changes, leaf_max)?;
    let root = finish(&mut tree, t)?;
    report.nodes_written += tree.written;
    Ok(root)
}

/// Build the whole tree from every shard, bottom-up. The procedure: the groups of shards built
/// in parallel ([`build_groups`]) → the levels above them combined up to the root → the file
/// system synced once (the bulk path writes without fsync per file) → the report.
#[allow(clippy::too_many_arguments)]
fn bulk_build(
    dir: &Path,
    repo: &Path,
    ctx: &ShardContext,
    base_root: Option<NodeLink>,
    leaf_max: usize,
    repair: bool,
    report: &mut FleetReport,
) -> Result<Option<NodeLink>> {
    let built = build_groups(dir, repo, ctx, base_root.as_ref(), leaf_max, repair)?;
    let mut tree = RepoTree::new(repo, false);
    tree.repair = repair;
    let root = combine_levels(&mut tree, built.subtrees, leaf_max)?;
    let root = finish(&mut tree, root)?;
    if built.written + built.nodes + tree.written > 0 {
        sync_file_system(repo)?;
    }
    report.vehicles_written += built.written;
    report.nodes_written += built.nodes + tree.written;
    report.withdrawn.extend(built.withdrawn);
    report.shards += SHARDS;
    Ok(root)
}

/// What the workers of a bulk build made.
struct Groups {
    /// Each group's subtree, by group number (`None`: not built).
    subtrees: Vec<Option<Subtree>>,
    /// Vehicles written.
    written: usize,
    /// Nodes written.
    nodes: usize,
    withdrawn: Vec<String>,
}

/// Every group of 16 shards (one prefix a digit shorter), built by up to 4 workers taking the
/// next group in turn; the first failure stops them all and is returned. The unit of work is
/// a group: its shards' subtrees are combined at once, so what waits in `subtrees` is at most
/// one leaf's worth of vehicles per group (a subtree left `Small` fits in a leaf), whatever
/// the fleet size.
fn build_groups(
    dir: &Path,
    repo: &Path,
    ctx: &ShardContext,
    base_root: Option<&NodeLink>,
    leaf_max: usize,
    repair: bool,
) -> Result<Groups> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let groups = SHARDS / FANOUT as usize;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Subtree>>> = Mutex::new(vec![None; groups]);
    let totals = Mutex::new((0usize, 0usize, Vec::new()));
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut tree = RepoTree::new(repo, false);
                tree.repair = repair;
                let mut written = 0;
                let mut withdrawn = Vec::new();
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    if g >= groups || failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    match build_group(dir, ctx, &mut tree, g, base_root, leaf_max) {
                        Ok((sub, n, mut w)) => {
                            written += n;
                            withdrawn.append(&mut w);
                            if let Ok(mut r) = results.lock() {
                                r[g] = Some(sub);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
                if let Ok(mut t) = totals.lock() {
                    t.0 += written;
                    t.1 += tree.written;
                    t.2.extend(withdrawn);
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    let (written, nodes, withdrawn) = totals
        .into_inner()
        .map_err(|_| Error::refused("internal: a publishing thread panicked"))?;
    let subtrees = results
        .into_inner()
        .map_err(|_| Error::refused("internal: a publishing thread panicked"))?;
    Ok(Groups {
        subtrees,
        written,
        nodes,
        withdrawn,
    })
}

/// Group `g`: each of its 16 shards processed and built, then combined. Its subtree, the
/// vehicles written and the assignments withdrawn.
fn build_group(
    dir: &Path,
    ctx: &ShardContext,
    tree: &mut RepoTree,
    g: usize,
    base_root: Option<&NodeLink>,
    leaf_max: usize,
) -> Result<(Subtree, usize, Vec<String>)> {
    let (mut written, mut withdrawn) = (0, Vec::new());
    let group = format!("{g:0w$x}", w = DIR_DIGITS - 1);
    let mut children = Vec::with_capacity(FANOUT as usize);
    for d in 0..FANOUT {
        let digit = char::from_digit(d, 16).unwrap_or('0');
        let shard = format!("{group}{digit}");
        let mut sh = process_shard(dir, &shard, ctx, tree, base_root)?;
        written += sh.changed.len();
        withdrawn.append(&mut sh.withdrawn);
        children.push((digit, build(tree, &shard, sh.all, leaf_max)?));
    }
    Ok((
        combine(tree, &group, children, leaf_max)?,
        written,
        withdrawn,
    ))
}

/// Up the levels above the groups (256 -> 16 -> 1): the root's subtree.
fn combine_levels(
    tree: &mut RepoTree,
    subtrees: Vec<Option<Subtree>>,
    leaf_max: usize,
) -> Result<Subtree> {
    let mut level: Vec<(String, Subtree)> = subtrees
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            (
                format!("{i:0w$x}", w = DIR_DIGITS - 1),
                s.unwrap_or(Subtree::Small(Vec::new())),
            )
        })
        .collect();
    for depth in (0..DIR_DIGITS - 1).rev() {
        let mut groups: BTreeMap<String, Vec<(char, Subtree)>> = BTreeMap::new();
        for (p, s) in level {
            let d = p.as_bytes()[depth] as char;
            groups
                .entry(p[..depth].to_string())
                .or_default()
                .push((d, s));
        }
        level = Vec::with_capacity(groups.len());
        for (p, children) in groups {
            let s = combine(tree, &p, children, leaf_max)?;
            level.push((p, s));
        }
    }
    Ok(level
        .pop()
        .map(|(_, s)| s)
        .unwrap_or(Subtree::Small(Vec::new())))
}

/// Make everything written so far durable (the bulk path writes without fsync per file).
fn sync_file_system(repo: &Path) -> Result<()> {
    let f = std::fs::File::open(repo).map_err(Error::io(repo))?;
    rustix::fs::syncfs(&f).map_err(|e| Error::io(repo)(e.into()))
}

/// The vehicles the tree at `root` lists (for tests and tools: reads the whole tree).
pub fn published_entries(repo: &Path, root: Option<&NodeLink>) -> Result<Vec<Leaf>> {
    entries_under(&mut RepoTree::new(repo, false), root, "")
}

/// The assignments of `vin` as the served tree in `DIR/repository` lists them now (through
/// the index the timestamp and snapshot name), with their entry, opened with the vehicle's
/// secret; for tests and tools.
pub fn published_assignments(
    dir: &Path,
    vin: &str,
) -> Result<Option<(VehicleEntry, AssignmentsDoc)>> {
    let repo = dir.join("repository");
    let root = served_tree(&repo)?;
    let secret = super::privacy::fleet_secret(dir)?.vehicle(vin);
    let key = secret.locator();
    let Some(leaf) = entries_under(&mut RepoTree::new(&repo, false), root.as_ref(), &key)?
        .into_iter()
        .find(|l| l.key == key)
    else {
        return Ok(None);
    };
    let entry = VehicleEntry::open(&leaf.sealed, vin, &secret).map_err(Error::meta(&repo))?;
    let doc = entry.to_assignments(vin);
    Ok(Some((entry, doc)))
}

/// Bring back damaged or missing nodes of the published vehicle tree from another copy of the
/// tree (`from`: the URL or directory a web server or store serves it from; `ca` for HTTPS).
/// Every node the served index reaches is checked against its hash; one that does not match is
/// fetched from `from` under the same name, checked, and written. The nodes cannot be rebuilt
/// from the OEM's state: the assignment versions vehicles hold are only in the published tree.
/// Returns how many nodes were repaired.
pub fn repair_from(repo: &Path, from: &str, ca: Option<&Path>) -> Result<usize> {
    use ota_client::tuf::Fetch;
    let Some(root) = served_tree(repo)? else {
        return Ok(0);
    };
    let fetcher = crate::net::fetcher(ca, &ota_client::tuf::Limits::default())?;
    let mut base = crate::net::location(from);
    if !base.ends_with('/') {
        base.push('/');
    }
    let tree_dir = repo.join("vehicles").join("tree");
    let staging = fsutil::staging_for(&tree_dir);
    let mut repaired = 0;
    let mut stack = vec![(String::new(), root)];
    while let Some((prefix, link)) = stack.pop() {
        let rel = node_path(&prefix, &link.sha256);
        let path = repo.join(&rel);
        let good = |b: &[u8]| ota_metadata::trusted_set::check_meta(&rel, &link.meta(), b).is_ok();
        let bytes = match fsutil::read_bounded(&path, MAX_NODE_BYTES) {
            Ok(b) if good(&b) => b,
            _ => {
                let url = format!("{base}{rel}");
                let b = fetcher
                    .fetch(&url, MAX_NODE_BYTES)
                    .map_err(|e| Error::refused(format!("{url}: {e}")))?;
                if !good(&b) {
                    return Err(Error::refused(format!(
                        "{url} does not hold the right bytes either: no good copy of {rel} there"
                    )));
                }
                put_file(&path, &b, true, true, &staging)?;
                repaired += 1;
                b
            }
        };
        let node = check_node(&bytes, &prefix).map_err(Error::meta(&path))?;
        for (digit, child) in node.children {
            stack.push((format!("{prefix}{digit}"), child));
        }
    }
    Ok(repaired)
}
