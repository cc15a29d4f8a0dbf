//! How per-vehicle assignments are published so that cost grows with what changed, not with
//! the fleet (DESIGN.md, "Per-vehicle metadata"), and so that the CDN learns nothing about the
//! vehicles (issue 23): one signature keeps the whole fleet fresh, and the served files name
//! no VIN, no ECU serial and no assignment.
//!
//! ```text
//! N.vehicles.json                           signed by the online `vehicles` role, listed in the
//!                                           snapshot, short expiry: the fan-out, the entry
//!                                           format, and the length and SHA-256 of the root node
//! vehicles/tree/PREFIX.SHA.json             unsigned, content-addressed nodes of a radix tree
//!   (root.SHA.json for the root)            keyed by each vehicle's *locator* (32 hex digits
//!                                           derived from the vehicle's secret, one hex digit
//!                                           per level, fan-out 16). An inner node lists the
//!                                           length and SHA-256 of each child; a leaf lists,
//!                                           per locator, the vehicle's sealed entry: its VIN,
//!                                           version and assignments, padded and encrypted
//!                                           under a key only the vehicle and the OEM derive
//!                                           (`ota_crypt::fleet`)
//! ```
//!
//! A vehicle trusts its entry through the hash chain from the signed index (integrity and
//! rollback as for any TUF file), and reads it under its own key (confidentiality). An observer
//! of the CDN learns the number of vehicles, the padded size class of each entry, and which
//! entries changed at each publish; nothing links a locator to a VIN without the vehicle's
//! secret. No signature and no expiry per vehicle, so renewing freshness re-signs the index,
//! snapshot and timestamp only, at any fleet size. Changing one vehicle writes the nodes on its
//! path (about log16 of the fleet) and the three signed files. A vehicle downloads the index and
//! the nodes on its path, and fetches again only the nodes whose hash changed: after a change
//! elsewhere in a fleet of a million, the root node (about 1.5 KB).
//!
//! Why the entries sit in the leaves rather than in a file per vehicle: a first publish
//! must write every file, and creating a million small files is what bounded it (about 8,000
//! files a second on the 2-core test machine, two minutes for a million vehicles; the fleet
//! benchmark). A vehicle downloads its neighbours' sealed entries too, which it cannot open.
//!
//! The shape is canonical: a node is a leaf exactly when the vehicles under its prefix fit in
//! one ([`fits`]: at most `leaf_max` of them and [`LEAF_BYTES`] of entries, or a single
//! vehicle), so a bulk build and a sequence of single changes give the same tree (the
//! publisher's setting; clients only bound node sizes); sealing is deterministic, so the same
//! entries give the same bytes. Vehicles are never removed from the tree: one whose
//! assignments are all withdrawn keeps an entry with no ECUs and a new version.

use crate::error::{Error, Result};
use crate::names;
use crate::roles::MetaFile;
use crate::time::DateTime;
use base64::Engine as _;
use ota_crypt::fleet::{is_locator, VehicleSecret, SEALED_OVERHEAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::assignments::{Assignments, EcuAssignment};

/// Children per node: one hex digit of SHA-256(VIN) per level. The only fan-out this format
/// has (the index names it, so a later format can change it and old clients refuse it).
pub const FANOUT: u32 = 16;
/// Most vehicles in a leaf by default (the publisher's choice; see the fleet benchmark).
pub const DEFAULT_LEAF_MAX: usize = 64;
/// Most nodes on a path, root and leaf included. A leaf at this depth may hold more than
/// `leaf_max` vehicles (it would take over `leaf_max` VINs sharing 60 bits of hash).
pub const MAX_DEPTH: usize = 16;
/// Bound on one node file, as clients enforce it. A leaf is kept within [`LEAF_BYTES`] of
/// entries unless one vehicle alone is larger (a vehicle of several hundred ECUs).
pub const MAX_NODE_BYTES: u64 = 256 * 1024;
/// Most bytes of vehicle entries in a leaf of more than one vehicle (the publisher's choice:
/// what a vehicle downloads after a change in its own leaf). 32 KiB holds 42 one-ECU sealed
/// entries: at 16 KiB (21) most leaves of a large fleet held one or two vehicles and a million
/// made 120,000 files; a first check stays under 40 KiB (the fleet benchmark).
pub const LEAF_BYTES: usize = 32 * 1024;
/// Hex digits of the locator of the publisher's state shards (and of the bulk build's units).
pub const DIR_DIGITS: usize = 3;
/// The entries' format, as the index names it: a client refuses an index of another.
pub const ENTRY_FORMAT: &str = "ota-fleet-v1";

/// Where the vehicle holding `secret` sits in the tree (32 lower-case hex digits).
pub fn locator(secret: &VehicleSecret) -> String {
    secret.locator()
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Path (under the metadata base) of the node for `prefix` with content hash `sha256`.
pub fn node_path(prefix: &str, sha256: &str) -> String {
    let name = if prefix.is_empty() { "root" } else { prefix };
    format!("vehicles/tree/{name}.{sha256}.json")
}

/// Length and SHA-256 of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLink {
    pub length: u64,
    pub sha256: String,
}

impl NodeLink {
    pub fn of(bytes: &[u8]) -> Self {
        NodeLink {
            length: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
    /// As a TUF `MetaFile` (version unused), for the length-and-hash checks TUF files get.
    pub fn meta(&self) -> MetaFile {
        meta_file(1, self.length, &self.sha256)
    }
}

/// A vehicle's entry before it is sealed (and after it is opened): its assignments (the
/// paper's Mv).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleEntry {
    /// Raised with every change; a vehicle never accepts a lower one (rollback).
    pub version: u64,
    /// Keyed by ECU serial; empty once every assignment is withdrawn.
    pub ecus: BTreeMap<String, EcuAssignment>,
}

/// What is sealed: the entry with the VIN it belongs to (so an entry given to another vehicle
/// by mistake, with the same secret, is refused by name).
#[derive(Serialize, Deserialize)]
struct SealedPlain {
    vin: String,
    version: u64,
    ecus: BTreeMap<String, EcuAssignment>,
}

impl VehicleEntry {
    /// Seal this entry of `vin` under `secret` (base64 of `ota_crypt::fleet`'s sealed bytes).
    pub fn seal(&self, vin: &str, secret: &VehicleSecret) -> Result<String> {
        self.seal_padded(vin, secret, 0)
    }

    /// [`Self::seal`] padded to at least `min` bytes ([`padded_for`]).
    pub fn seal_padded(&self, vin: &str, secret: &VehicleSecret, min: usize) -> Result<String> {
        let plain = crate::canonical::to_canonical(&SealedPlain {
            vin: vin.into(),
            version: self.version,
            ecus: self.ecus.clone(),
        })?;
        let sealed = secret
            .seal_padded(&plain, min)
            .map_err(|e| Error::malformed(format!("the vehicle entry of {vin}"), e.to_string()))?;
        Ok(B64.encode(sealed))
    }

    /// Open `sealed` (as [`Self::seal`] made it) with `secret`, and check it is `vin`'s.
    pub fn open(sealed: &str, vin: &str, secret: &VehicleSecret) -> Result<VehicleEntry> {
        let what = format!("the vehicle entry of {vin}");
        let bytes = B64
            .decode(sealed)
            .map_err(|e| Error::malformed(&what, format!("not base64: {e}")))?;
        let plain = secret
            .open(&bytes)
            .map_err(|e| Error::malformed(&what, e.to_string()))?;
        let p: SealedPlain = serde_json::from_slice(&plain).map_err(|e| Error::Json {
            what: what.clone(),
            source: e,
        })?;
        if p.vin != vin {
            return Err(Error::Mismatch {
                what,
                field: "vin",
                found: p.vin,
                expected: vin.into(),
            });
        }
        for serial in p.ecus.keys() {
            names::check_ecu_serial(serial)?;
        }
        Ok(VehicleEntry {
            version: p.version,
            ecus: p.ecus,
        })
    }

    /// As the assignments document of `vin`.
    pub fn to_assignments(&self, vin: &str) -> Assignments {
        Assignments {
            type_: Assignments::TYPE.into(),
            spec_version: crate::roles::SPEC_VERSION.into(),
            vin: vin.into(),
            version: self.version,
            ecus: self.ecus.clone(),
            extra: BTreeMap::new(),
        }
    }
}

fn meta_file(version: u64, length: u64, sha256: &str) -> MetaFile {
    MetaFile {
        version,
        length: Some(length),
        hashes: Some(BTreeMap::from([("sha256".to_string(), sha256.to_string())])),
    }
}

/// The signed fleet index (the `vehicles` role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleIndex {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    /// Children per node ([`FANOUT`]).
    pub fanout: u32,
    /// How the leaves' entries are sealed ([`ENTRY_FORMAT`]).
    pub entries: String,
    /// The root node; absent while no vehicle has assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<NodeLink>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl VehicleIndex {
    pub const TYPE: &'static str = "vehicles";

    /// Refuse an index this code cannot walk.
    pub fn check(&self) -> Result<()> {
        if self.fanout != FANOUT {
            return Err(Error::Mismatch {
                what: "vehicle index".into(),
                field: "fanout",
                found: self.fanout.to_string(),
                expected: FANOUT.to_string(),
            });
        }
        if self.entries != ENTRY_FORMAT {
            return Err(Error::Mismatch {
                what: "vehicle index".into(),
                field: "entries",
                found: self.entries.clone(),
                expected: ENTRY_FORMAT.into(),
            });
        }
        if let Some(l) = &self.tree {
            check_link(
                "vehicle index: root node",
                l.length,
                &l.sha256,
                MAX_NODE_BYTES,
            )?;
        }
        Ok(())
    }
}

/// A node of the tree: inner (`children`, keyed by the next hex digit) or leaf (`entries`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleNode {
    #[serde(rename = "_type")]
    pub type_: String,
    /// The hex digits every locator under this node starts with.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, NodeLink>,
    /// Locator -> sealed entry (base64).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, String>,
}

impl VehicleNode {
    pub const TYPE: &'static str = "vehicle-node";

    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A link's hash must be exactly 64 lower-case hex digits (it becomes part of a file name)
/// and its length within `max`.
fn check_link(what: &str, length: u64, sha256: &str, max: u64) -> Result<()> {
    if !is_sha256_hex(sha256) {
        return Err(Error::malformed(
            what,
            format!("sha256 {sha256:?} is not 64 lower-case hex digits"),
        ));
    }
    if length == 0 || length > max {
        return Err(Error::malformed(
            what,
            format!("length {length} is outside 1..={max}"),
        ));
    }
    Ok(())
}

/// Parse node bytes (already checked against their link) and check them: the node for
/// `prefix`, well formed, and every vehicle of a leaf under that prefix.
pub fn check_node(bytes: &[u8], prefix: &str) -> Result<VehicleNode> {
    let what = format!("vehicle tree node {:?}", prefix);
    let node: VehicleNode = serde_json::from_slice(bytes).map_err(|e| Error::Json {
        what: what.clone(),
        source: e,
    })?;
    if node.type_ != VehicleNode::TYPE {
        return Err(Error::WrongType {
            role: what,
            expected: VehicleNode::TYPE.into(),
            found: node.type_,
        });
    }
    if node.prefix != prefix {
        return Err(Error::Mismatch {
            what,
            field: "prefix",
            found: format!("{:?}", node.prefix),
            expected: format!("{prefix:?}"),
        });
    }
    if node.children.is_empty() == node.entries.is_empty() {
        return Err(Error::malformed(
            &what,
            "a node lists either children or entries, and not nothing",
        ));
    }
    for (digit, l) in &node.children {
        if !matches!(digit.as_bytes(), [b'0'..=b'9' | b'a'..=b'f']) {
            return Err(Error::malformed(
                &what,
                format!("child key {digit:?} is not one lower-case hex digit"),
            ));
        }
        check_link(
            &format!("{what}: child {digit}"),
            l.length,
            &l.sha256,
            MAX_NODE_BYTES,
        )?;
    }
    for (locator, sealed) in &node.entries {
        if !is_locator(locator) {
            return Err(Error::malformed(
                &what,
                format!("{locator:?} is not a locator (32 lower-case hex digits)"),
            ));
        }
        if !locator.starts_with(prefix) {
            return Err(Error::malformed(
                &what,
                format!("locator {locator} does not belong under prefix {prefix:?}"),
            ));
        }
        // The length tells the size class; the bytes are checked by the one vehicle that
        // opens them.
        if !ota_crypt::fleet::PADDED_SIZES
            .iter()
            .any(|p| base64_len(p + SEALED_OVERHEAD) == sealed.len())
        {
            return Err(Error::malformed(
                &what,
                format!("the entry of locator {locator} is not a sealed entry's length"),
            ));
        }
    }
    Ok(node)
}

// ---- Building the tree (the publisher's side, shared with the verifier and the benchmark) ----

/// One vehicle as the tree holds it: its locator and sealed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The vehicle's locator.
    pub key: String,
    /// Its sealed entry, base64.
    pub sealed: String,
    /// About the bytes the vehicle takes in a leaf: what [`fits`] sums. A function of the
    /// entry alone, so the shape stays canonical.
    pub size: usize,
}

impl Leaf {
    pub fn new(locator: String, sealed: String) -> Self {
        let size = sealed.len().saturating_add(locator.len() + 6);
        Leaf {
            key: locator,
            sealed,
            size,
        }
    }

    /// `entry` of `vin`, sealed under `secret`, at its locator.
    pub fn seal(vin: &str, entry: &VehicleEntry, secret: &VehicleSecret) -> Result<Self> {
        Self::seal_padded(vin, entry, secret, 0)
    }

    /// [`Self::seal`] padded to at least `min` bytes ([`padded_for`]).
    pub fn seal_padded(
        vin: &str,
        entry: &VehicleEntry,
        secret: &VehicleSecret,
        min: usize,
    ) -> Result<Self> {
        Ok(Leaf::new(
            secret.locator(),
            entry.seal_padded(vin, secret, min)?,
        ))
    }
}

/// Bytes an entry is padded to at least, for a vehicle of `ecus` ECUs (aftermarket ones
/// excluded): room for each ECU's assignment with its instruction, so whether and how many
/// of them are assigned does not show in the size class (an encrypted image's key wraps may
/// still take an entry past it).
pub fn padded_for(ecus: usize) -> usize {
    /// The VIN, version and JSON around the ECUs.
    const BASE: usize = 48;
    /// One ECU's assignment with its instruction, with room for long names.
    const PER_ECU: usize = 480;
    BASE.saturating_add(PER_ECU.saturating_mul(ecus))
}

/// Length of `n` bytes in padded base64.
const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Whether `leaves` (all under one prefix) make a leaf rather than an inner node: a single
/// vehicle always does; more must be at most `leaf_max` and [`LEAF_BYTES`] in all.
pub fn fits<'a>(leaves: impl IntoIterator<Item = &'a Leaf>, leaf_max: usize) -> bool {
    let (mut n, mut bytes) = (0usize, 0usize);
    for l in leaves {
        n += 1;
        bytes = bytes.saturating_add(l.size);
        if n > 1 && (n > leaf_max || bytes > LEAF_BYTES) {
            return false;
        }
    }
    true
}

/// A subtree being built: still small enough to be part of a leaf (not written yet), or
/// written as a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Subtree {
    Small(Vec<Leaf>),
    Node(NodeLink),
}

/// Where built nodes go: `(prefix, link, canonical bytes)`.
pub trait NodeSink {
    type Error: From<Error>;
    fn put(
        &mut self,
        prefix: &str,
        link: &NodeLink,
        bytes: Vec<u8>,
    ) -> std::result::Result<(), Self::Error>;
}

/// Where nodes already published come from (the incremental update reads the path).
pub trait NodeSource {
    type Error: From<Error>;
    fn get(
        &mut self,
        prefix: &str,
        link: &NodeLink,
    ) -> std::result::Result<VehicleNode, Self::Error>;
}

fn write_node<S: NodeSink>(
    sink: &mut S,
    node: &VehicleNode,
) -> std::result::Result<NodeLink, S::Error> {
    let bytes = crate::canonical::to_canonical(node)?;
    if bytes.len() as u64 > MAX_NODE_BYTES {
        return Err(Error::TooLarge {
            what: format!("vehicle tree node {:?}", node.prefix),
            len: bytes.len() as u64,
            limit: MAX_NODE_BYTES,
        }
        .into());
    }
    let link = NodeLink::of(&bytes);
    sink.put(&node.prefix, &link, bytes)?;
    Ok(link)
}

/// Write `leaves` as the leaf for `prefix`.
pub fn write_leaf<S: NodeSink>(
    sink: &mut S,
    prefix: &str,
    leaves: Vec<Leaf>,
) -> std::result::Result<NodeLink, S::Error> {
    write_node(
        sink,
        &VehicleNode {
            type_: VehicleNode::TYPE.into(),
            prefix: prefix.into(),
            children: BTreeMap::new(),
            entries: leaves.into_iter().map(|l| (l.key, l.sealed)).collect(),
        },
    )
}

/// The canonical subtree for `prefix` holding exactly `leaves` (all under `prefix`): left
/// `Small` when it fits in one leaf, else written (leaves and inner nodes) into `sink`.
pub fn build<S: NodeSink>(
    sink: &mut S,
    prefix: &str,
    leaves: Vec<Leaf>,
    leaf_max: usize,
) -> std::result::Result<Subtree, S::Error> {
    if fits(&leaves, leaf_max) || prefix.len() + 1 >= MAX_DEPTH {
        return Ok(Subtree::Small(leaves));
    }
    let mut groups: BTreeMap<u8, Vec<Leaf>> = BTreeMap::new();
    for l in leaves {
        groups
            .entry(l.key.as_bytes()[prefix.len()])
            .or_default()
            .push(l);
    }
    let mut children = Vec::with_capacity(groups.len());
    for (d, g) in groups {
        let p = format!("{prefix}{}", d as char);
        children.push((d as char, build(sink, &p, g, leaf_max)?));
    }
    combine(sink, prefix, children, leaf_max)
}

/// The canonical subtree for `prefix` from its children's subtrees (keyed by hex digit).
pub fn combine<S: NodeSink>(
    sink: &mut S,
    prefix: &str,
    children: Vec<(char, Subtree)>,
    leaf_max: usize,
) -> std::result::Result<Subtree, S::Error> {
    let written = children.iter().any(|(_, c)| matches!(c, Subtree::Node(_)));
    let small = children.iter().flat_map(|(_, c)| match c {
        Subtree::Small(v) => v.as_slice(),
        Subtree::Node(_) => &[],
    });
    if !written && fits(small, leaf_max) {
        let total = children
            .iter()
            .map(|(_, c)| match c {
                Subtree::Small(v) => v.len(),
                Subtree::Node(_) => 0,
            })
            .sum();
        let mut all = Vec::with_capacity(total);
        for (_, c) in children {
            if let Subtree::Small(v) = c {
                all.extend(v);
            }
        }
        return Ok(Subtree::Small(all));
    }
    let mut links = BTreeMap::new();
    for (d, c) in children {
        let link = match c {
            Subtree::Node(l) => l,
            Subtree::Small(v) if v.is_empty() => continue,
            Subtree::Small(v) => write_leaf(sink, &format!("{prefix}{d}"), v)?,
        };
        links.insert(d.to_string(), link);
    }
    Ok(Subtree::Node(write_node(
        sink,
        &VehicleNode {
            type_: VehicleNode::TYPE.into(),
            prefix: prefix.into(),
            children: links,
            entries: BTreeMap::new(),
        },
    )?))
}

/// The root link of a finished tree (`None` for no vehicles).
pub fn finish<S: NodeSink>(
    sink: &mut S,
    root: Subtree,
) -> std::result::Result<Option<NodeLink>, S::Error> {
    match root {
        Subtree::Node(l) => Ok(Some(l)),
        Subtree::Small(v) if v.is_empty() => Ok(None),
        Subtree::Small(v) => Ok(Some(write_leaf(sink, "", v)?)),
    }
}

/// Apply `changes` (vehicles added or replaced, all under `prefix`) to the subtree at `link`:
/// only the nodes on the changed paths are read and written. The result keeps the canonical
/// shape (a leaf that outgrows `leaf_max` splits).
pub fn update<E, R, W>(
    source: &mut R,
    sink: &mut W,
    prefix: &str,
    link: Option<&NodeLink>,
    changes: Vec<Leaf>,
    leaf_max: usize,
) -> std::result::Result<Subtree, E>
where
    E: From<Error>,
    R: NodeSource<Error = E>,
    W: NodeSink<Error = E>,
{
    let Some(link) = link else {
        return build(sink, prefix, changes, leaf_max);
    };
    if changes.is_empty() {
        return Ok(Subtree::Node(link.clone()));
    }
    let node = source.get(prefix, link)?;
    if node.is_leaf() {
        let mut all: BTreeMap<String, Leaf> = node
            .entries
            .into_iter()
            .map(|(locator, sealed)| (locator.clone(), Leaf::new(locator, sealed)))
            .collect();
        for c in changes {
            all.insert(c.key.clone(), c);
        }
        return match build(sink, prefix, all.into_values().collect(), leaf_max)? {
            // Still one leaf; the root's is written by `finish`, an inner one here.
            Subtree::Small(v) if !prefix.is_empty() => {
                Ok(Subtree::Node(write_leaf(sink, prefix, v)?))
            }
            other => Ok(other),
        };
    }
    let mut groups: BTreeMap<u8, Vec<Leaf>> = BTreeMap::new();
    for c in changes {
        groups
            .entry(c.key.as_bytes()[prefix.len()])
            .or_default()
            .push(c);
    }
    let mut children = node.children;
    for (d, g) in groups {
        let digit = (d as char).to_string();
        let p = format!("{prefix}{digit}");
        let link = match update(source, sink, &p, children.get(&digit), g, leaf_max)? {
            Subtree::Node(l) => l,
            Subtree::Small(v) => write_leaf(sink, &p, v)?,
        };
        children.insert(digit, link);
    }
    Ok(Subtree::Node(write_node(
        sink,
        &VehicleNode {
            type_: VehicleNode::TYPE.into(),
            prefix: prefix.into(),
            children,
            entries: BTreeMap::new(),
        },
    )?))
}

/// Every vehicle of the tree at `root` whose key starts with `prefix` (reading only the nodes
/// on the way there and below it).
pub fn entries_under<R: NodeSource>(
    source: &mut R,
    root: Option<&NodeLink>,
    prefix: &str,
) -> std::result::Result<Vec<Leaf>, R::Error> {
    let mut out = Vec::new();
    let Some(root) = root else {
        return Ok(out);
    };
    // Down the path to `prefix`.
    let mut at = String::new();
    let mut link = root.clone();
    loop {
        let node = source.get(&at, &link)?;
        if node.is_leaf() {
            for (locator, sealed) in node.entries {
                if locator.starts_with(prefix) {
                    out.push(Leaf::new(locator, sealed));
                }
            }
            return Ok(out);
        }
        if at.len() == prefix.len() {
            // The whole subtree.
            let mut stack: Vec<(String, NodeLink)> = node
                .children
                .into_iter()
                .rev()
                .map(|(d, l)| (format!("{at}{d}"), l))
                .collect();
            while let Some((p, l)) = stack.pop() {
                let n = source.get(&p, &l)?;
                if n.is_leaf() {
                    out.extend(n.entries.into_iter().map(|(k, s)| Leaf::new(k, s)));
                } else {
                    stack.extend(
                        n.children
                            .into_iter()
                            .rev()
                            .map(|(d, l)| (format!("{p}{d}"), l)),
                    );
                }
            }
            return Ok(out);
        }
        let digit = &prefix[at.len()..at.len() + 1];
        let Some(next) = node.children.get(digit) else {
            return Ok(out);
        };
        link = next.clone();
        at.push_str(digit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory tree store.
    #[derive(Default)]
    struct Mem(HashMap<String, Vec<u8>>);
    impl NodeSink for Mem {
        type Error = Error;
        fn put(&mut self, prefix: &str, l: &NodeLink, bytes: Vec<u8>) -> Result<()> {
            self.0.insert(node_path(prefix, &l.sha256), bytes);
            Ok(())
        }
    }
    impl NodeSource for Mem {
        type Error = Error;
        fn get(&mut self, prefix: &str, l: &NodeLink) -> Result<VehicleNode> {
            let b = &self.0[&node_path(prefix, &l.sha256)];
            crate::trusted_set::check_meta("node", &l.meta(), b)?;
            check_node(b, prefix)
        }
    }

    fn ecus(n: usize) -> BTreeMap<String, EcuAssignment> {
        (0..n)
            .map(|k| {
                let a = EcuAssignment {
                    hardware_id: "BRAKE-A".into(),
                    supplier: "acme".into(),
                    uid: "brake-fw".into(),
                    version: "1.0".into(),
                    release_counter: 1,
                    target: "brake-fw-1.0.bin".into(),
                    length: 1000,
                    hashes: BTreeMap::from([("sha256".to_string(), "ab".repeat(32))]),
                    key_wraps: None,
                    compact_sha256: None,
                    instruction: None,
                    set: None,
                    requires: Vec::new(),
                    conflicts: Vec::new(),
                };
                (format!("ECU-{k:04}"), a)
            })
            .collect()
    }

    fn entry(i: u64) -> VehicleEntry {
        VehicleEntry {
            version: i,
            ecus: ecus(1),
        }
    }

    fn fleet() -> ota_crypt::fleet::FleetSecret {
        ota_crypt::fleet::FleetSecret(ota_crypt::Key([9; 32]))
    }

    /// `entry` of `vin` sealed under its secret in the test fleet.
    fn leaf(vin: &str, entry: VehicleEntry) -> Leaf {
        Leaf::seal(vin, &entry, &fleet().vehicle(vin)).unwrap()
    }

    fn key(vin: &str) -> String {
        fleet().vehicle(vin).locator()
    }

    fn full(n: usize, leaf_max: usize, m: &mut Mem) -> Option<NodeLink> {
        let mut leaves: Vec<Leaf> = (0..n)
            .map(|i| leaf(&format!("VIN{i:06}"), entry(1)))
            .collect();
        leaves.sort_by(|a, b| a.key.cmp(&b.key));
        let t = build(m, "", leaves, leaf_max).unwrap();
        finish(m, t).unwrap()
    }

    #[test]
    fn incremental_changes_give_the_same_tree_as_a_bulk_build() {
        let mut bulk = Mem::default();
        let want = full(700, 8, &mut bulk);
        let mut inc = Mem::default();
        let mut root: Option<NodeLink> = None;
        // Added in batches of various sizes.
        let mut i = 0;
        for batch in [1usize, 1, 5, 30, 100, 563] {
            let mut changes: Vec<Leaf> = (i..i + batch)
                .map(|i| leaf(&format!("VIN{i:06}"), entry(1)))
                .collect();
            changes.sort_by(|a, b| a.key.cmp(&b.key));
            let mut src = Mem(inc.0.clone());
            let t = update(&mut src, &mut inc, "", root.as_ref(), changes, 8).unwrap();
            root = finish(&mut inc, t).unwrap();
            i += batch;
        }
        assert_eq!(root, want);
        let all = entries_under(&mut inc, root.as_ref(), "").unwrap();
        assert_eq!(all.len(), 700);
        let under: Vec<_> = entries_under(&mut inc, root.as_ref(), "3a").unwrap();
        assert!(under.iter().all(|l| l.key.starts_with("3a")));
        let expect = (0..700)
            .filter(|i| key(&format!("VIN{i:06}")).starts_with("3a"))
            .count();
        assert_eq!(under.len(), expect);
    }

    #[test]
    fn leaves_are_bounded_in_bytes_and_the_shape_stays_canonical() {
        // Vehicles of 20 ECUs (8 KiB sealed, 11 KB in base64): at most two share a leaf,
        // though leaf_max is 64.
        let big = |v| VehicleEntry {
            version: v,
            ecus: ecus(20),
        };
        let vins: Vec<String> = (0..200).map(|i| format!("VIN{i:06}")).collect();
        let mut leaves: Vec<Leaf> = vins.iter().map(|v| leaf(v, big(1))).collect();
        leaves.sort_by(|a, b| a.key.cmp(&b.key));
        let mut bulk = Mem::default();
        let t = build(&mut bulk, "", leaves, 64).unwrap();
        let want = finish(&mut bulk, t).unwrap();
        for (_, b) in bulk.0.iter() {
            let n: VehicleNode = serde_json::from_slice(b).unwrap();
            if n.entries.len() > 1 {
                assert!(b.len() <= LEAF_BYTES + 200, "a leaf of {} bytes", b.len());
            }
        }
        // The same set added one by one gives the same tree.
        let mut inc = Mem::default();
        let mut root = None;
        for v in &vins {
            let mut src = Mem(inc.0.clone());
            let t = update(
                &mut src,
                &mut inc,
                "",
                root.as_ref(),
                vec![leaf(v, big(1))],
                64,
            )
            .unwrap();
            root = finish(&mut inc, t).unwrap();
        }
        assert_eq!(root, want);
        // One vehicle larger than LEAF_BYTES alone is still a leaf (not a chain to MAX_DEPTH).
        let huge = leaf("VIN-HUGE", big_one());
        assert!(huge.size > LEAF_BYTES);
        assert!(fits([&huge], 64));
        let mut m = Mem::default();
        let t = build(&mut m, "", vec![huge], 64).unwrap();
        assert!(matches!(t, Subtree::Small(ref v) if v.len() == 1));
    }

    fn big_one() -> VehicleEntry {
        VehicleEntry {
            version: 1,
            ecus: ecus(100),
        }
    }

    #[test]
    fn a_change_rewrites_only_its_path() {
        let mut m = Mem::default();
        let root = full(5000, 16, &mut m).unwrap();
        let before = m.0.len();
        let mut src = Mem(m.0.clone());
        let changed = leaf("VIN000042", entry(2));
        let t = update(&mut src, &mut m, "", Some(&root), vec![changed.clone()], 16).unwrap();
        let new_root = finish(&mut m, t).unwrap().unwrap();
        assert_ne!(new_root, root);
        // Exactly the nodes on its path are new: walk it.
        let (mut at, mut link, mut depth) = (String::new(), new_root.clone(), 0);
        loop {
            depth += 1;
            let n = m.get(&at, &link).unwrap();
            if n.is_leaf() {
                assert!(n.entries.contains_key(&key("VIN000042")));
                break;
            }
            let d = &changed.key[at.len()..at.len() + 1];
            link = n.children[d].clone();
            at.push_str(d);
        }
        assert!(depth >= 3, "{depth}");
        assert_eq!(m.0.len() - before, depth);
        let got = entries_under(&mut m, Some(&new_root), &changed.key).unwrap();
        assert_eq!(got, vec![changed]);
    }

    #[test]
    fn nodes_are_checked() {
        let mut m = Mem::default();
        let root = full(100, 8, &mut m).unwrap();
        let bytes = m.0[&node_path("", &root.sha256)].clone();
        let node = check_node(&bytes, "").unwrap();
        assert!(!node.is_leaf());
        // A node for another prefix is refused.
        let (d, l) = node.children.iter().next().unwrap();
        let child = m.0[&node_path(d, &l.sha256)].clone();
        assert!(check_node(&child, d).is_ok());
        let e = check_node(&child, "f0").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Mismatch {
                    field: "prefix",
                    ..
                }
            ),
            "{e}"
        );
        // Hashes that are not plain lower-case hex never make it into a path.
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["children"][d]["sha256"] = "../../etc/passwd".into();
        let e = check_node(&serde_json::to_vec(&v).unwrap(), "").unwrap_err();
        assert!(e.to_string().contains("not 64 lower-case hex"), "{e}");
        // A locator in a leaf it does not belong to.
        let l = leaf("VIN1", entry(1));
        let bad = VehicleNode {
            type_: VehicleNode::TYPE.into(),
            prefix: "0".into(),
            children: BTreeMap::new(),
            entries: BTreeMap::from([(l.key.clone(), l.sealed.clone())]),
        };
        let p = &l.key[..1];
        let ok = VehicleNode {
            prefix: p.into(),
            ..bad.clone()
        };
        assert!(check_node(&serde_json::to_vec(&ok).unwrap(), p).is_ok());
        if p != "0" {
            assert!(check_node(&serde_json::to_vec(&bad).unwrap(), "0").is_err());
        }
        // A VIN where a locator belongs, and an entry of no sealed length, are refused.
        for (k, v) in [
            ("VIN1".to_string(), l.sealed.clone()),
            (l.key.clone(), format!("{}AAAA", l.sealed)),
            (l.key.clone(), "{\"version\":1}".to_string()),
        ] {
            let n = VehicleNode {
                entries: BTreeMap::from([(k, v)]),
                ..ok.clone()
            };
            assert!(check_node(&serde_json::to_vec(&n).unwrap(), p).is_err());
        }
    }

    #[test]
    fn an_entry_opens_for_its_own_vehicle_only() {
        let e = entry(3);
        let s = e.seal("VIN1", &fleet().vehicle("VIN1")).unwrap();
        assert_eq!(
            VehicleEntry::open(&s, "VIN1", &fleet().vehicle("VIN1")).unwrap(),
            e
        );
        // Another vehicle's secret does not open it.
        assert!(VehicleEntry::open(&s, "VIN2", &fleet().vehicle("VIN2")).is_err());
        // The right secret given under another VIN (a provisioning mistake) is refused by name.
        let err = VehicleEntry::open(&s, "VIN2", &fleet().vehicle("VIN1")).unwrap_err();
        assert!(matches!(err, Error::Mismatch { field: "vin", .. }), "{err}");
        // Nothing of the entry is in clear.
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&s)
            .unwrap();
        for needle in [&b"VIN1"[..], b"ECU-0000", b"brake-fw", b"BRAKE-A"] {
            assert!(!raw.windows(needle.len()).any(|w| w == needle));
        }
    }
}
