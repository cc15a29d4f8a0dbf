//! This vehicle's assignments, trusted through the fleet index by hash
//! (`ota_metadata::documents::vehicles`): the index (the OEM's online `vehicles` role, listed in
//! the snapshot, short expiry) names the root node of a tree keyed by locator; each node on
//! the way down names the next by length and SHA-256, and the leaf holds, at this vehicle's
//! locator (derived from its secret), its sealed entry, which it opens with a key derived from
//! the same secret. Every node is bounded, checked against its link before it is parsed, and
//! must be the node for the prefix it is reached at; nodes are kept locally, so an unchanged
//! one (same hash) is not fetched again.
//!
//! Rollback: the version of the last accepted assignments is kept with the `vehicles` keys and
//! threshold it was accepted under; a lower version is refused while those keys are the ones
//! trusted now.

use super::error::{fail, Check, Result};
use crate::tuf::{Fetch, MetadataStore, Updater};
use ota_crypt::fleet::VehicleSecret;
use ota_metadata::documents::vehicles::{
    self, check_node, NodeLink, VehicleEntry, VehicleIndex, MAX_DEPTH, MAX_NODE_BYTES,
};
use ota_metadata::documents::Assignments;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the last accepted assignments are recorded in the store (a name of its own for the
/// sealed format: versions of the earlier, clear tree are not comparable).
const ACCEPTED: &str = "vehicle-entry-accepted";

/// Who this vehicle is: its VIN and the secret it was provisioned with.
pub struct Vehicle<'a> {
    pub vin: &'a str,
    pub secret: &'a VehicleSecret,
}

/// The local copy of the node at `depth` on this vehicle's path.
fn node_cache(depth: usize) -> String {
    format!("vehicle-node-{depth}")
}

/// Why the walk down the tree stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// The node at `depth` (for `prefix`) could not be fetched, or did not match its link.
    Fetch {
        depth: usize,
        prefix: String,
        reason: String,
    },
    /// The node matched its link but is not a valid node for `prefix` (another prefix, say).
    Node {
        depth: usize,
        prefix: String,
        reason: String,
    },
    /// More nodes on the path than a vehicle walks.
    TooDeep,
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::Fetch {
                depth,
                prefix,
                reason,
            } => write!(f, "node {prefix:?} (depth {depth}): {reason}"),
            TreeError::Node {
                depth,
                prefix,
                reason,
            } => write!(f, "node {prefix:?} (depth {depth}) refused: {reason}"),
            TreeError::TooDeep => write!(f, "more than {MAX_DEPTH} nodes on the path"),
        }
    }
}

impl std::error::Error for TreeError {}

/// Walk from `root` down to the leaf holding `locator`; `get(depth, prefix, link)` returns
/// the node's bytes checked against `link`. Returns the sealed entry there (`None`: the tree
/// lists no vehicle at that locator).
pub fn find_in_tree(
    root: Option<&NodeLink>,
    locator: &str,
    mut get: impl FnMut(usize, &str, &NodeLink) -> std::result::Result<Vec<u8>, String>,
) -> std::result::Result<Option<String>, TreeError> {
    let key = locator;
    let Some(mut link) = root.cloned() else {
        return Ok(None);
    };
    for depth in 0..MAX_DEPTH {
        let prefix = &key[..depth];
        let bytes = get(depth, prefix, &link).map_err(|reason| TreeError::Fetch {
            depth,
            prefix: prefix.into(),
            reason,
        })?;
        let node = check_node(&bytes, prefix).map_err(|e| TreeError::Node {
            depth,
            prefix: prefix.into(),
            reason: e.to_string(),
        })?;
        if node.is_leaf() {
            return Ok(node.entries.get(locator).cloned());
        }
        match node.children.get(&key[depth..depth + 1]) {
            Some(next) => link = next.clone(),
            None => return Ok(None),
        }
    }
    Err(TreeError::TooDeep)
}

/// The last accepted assignments, and the `vehicles` keys that made them trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Accepted {
    vin: String,
    version: u64,
    keyids: Vec<String>,
    threshold: u32,
}

/// The assignments of `vehicle` (`None`: the OEM assigns it nothing, or the tree has no entry
/// at its locator), verified, opened, and checked against the last accepted ones in `store`,
/// which they then replace.
pub fn read_assignments<F: Fetch>(
    master: &Updater<F>,
    url: &str,
    vehicle: &Vehicle<'_>,
    store: &MetadataStore,
) -> Result<Option<Assignments>> {
    let vin = vehicle.vin;
    let index = master
        .load_extra_role::<VehicleIndex>(
            "vehicles",
            VehicleIndex::TYPE,
            |r| r.expires,
            |r| r.version,
        )
        .map_err(|e| fail(Check::VehicleIndex, url, e))?
        .signed;
    index
        .check()
        .map_err(|e| fail(Check::VehicleIndex, url, e))?;

    let locator = vehicle.secret.locator();
    let sealed = find_in_tree(index.tree.as_ref(), &locator, |depth, prefix, link| {
        master
            .fetch_metadata_file_cached(
                &vehicles::node_path(prefix, &link.sha256),
                &node_cache(depth),
                &link.meta(),
                MAX_NODE_BYTES,
            )
            .map_err(|e| e.to_string())
    })
    .map_err(|e| fail(Check::VehicleTree, url, e))?;
    let Some(sealed) = sealed else {
        // The OEM never takes a vehicle out of the tree (a withdrawn vehicle keeps an entry
        // with no ECUs at a higher version): an entry this vehicle accepted under the keys
        // trusted now cannot vanish but by a forged tree.
        if let Some(p) = accepted_under_current_keys(master, url, vin, store)? {
            return Err(fail(
                Check::Assignments,
                url,
                format!(
                    "the tree has no entry at this vehicle's locator {locator}, though it accepted version {} of its assignments: the OEM never removes one (a withdrawn vehicle keeps an entry with no ECUs)",
                    p.version
                ),
            ));
        }
        return Ok(None);
    };
    // The node was trusted by hash from the signed index; the entry must also open under this
    // vehicle's key and name this VIN (a wrong secret provisioned, or another vehicle's
    // entry moved here, is refused, never read as no assignments).
    let entry = VehicleEntry::open(&sealed, vin, vehicle.secret).map_err(|e| {
        fail(
            Check::Assignments,
            url,
            format!("the entry at this vehicle's locator {locator}: {e}"),
        )
    })?;
    check_rollback(master, url, vin, &entry, store)?;
    Ok(Some(entry.to_assignments(vin)))
}

/// The `vehicles` role's key ids (sorted, deduplicated) and threshold trusted now.
fn current_keys<F: Fetch>(master: &Updater<F>, url: &str) -> Result<(Vec<String>, u32)> {
    let role = master
        .trusted()
        .root()
        .signed
        .role("vehicles")
        .map_err(|e| fail(Check::VehicleIndex, url, e))?;
    let mut keyids: Vec<String> = role.keyids.iter().map(|k| k.0.clone()).collect();
    keyids.sort();
    keyids.dedup();
    Ok((keyids, role.threshold))
}

/// The last accepted assignments of `vin`, if they were accepted under the keys trusted now.
fn accepted_under_current_keys<F: Fetch>(
    master: &Updater<F>,
    url: &str,
    vin: &str,
    store: &MetadataStore,
) -> Result<Option<Accepted>> {
    let (keyids, threshold) = current_keys(master, url)?;
    Ok(read_accepted(store)
        .filter(|p| p.vin == vin && p.keyids == keyids && p.threshold == threshold))
}

fn read_accepted(store: &MetadataStore) -> Option<Accepted> {
    store
        .read(ACCEPTED, 64 * 1024)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Never accept older assignments than the last accepted ones, as long as those were trusted
/// through the `vehicles` keys trusted now. After the OEM rotates that role (a stolen key), a
/// version the attacker pushed up with the old key is forgotten, as TUF forgets timestamp and
/// snapshot versions on their keys' rotation; else the vehicle would refuse every legitimate
/// assignment below it forever. Records the new reference.
fn check_rollback<F: Fetch>(
    master: &Updater<F>,
    url: &str,
    vin: &str,
    entry: &VehicleEntry,
    store: &MetadataStore,
) -> Result<()> {
    let (keyids, threshold) = current_keys(master, url)?;
    if let Some(p) = read_accepted(store).filter(|p| p.vin == vin) {
        let same_keys = p.keyids == keyids && p.threshold == threshold;
        if same_keys && entry.version < p.version {
            return Err(fail(
                Check::AssignmentsRollback,
                url,
                format!(
                    "version {} of the assignments of {vin} is older than the accepted {} (rollback)",
                    entry.version, p.version
                ),
            ));
        }
    }
    let record = Accepted {
        vin: vin.into(),
        version: entry.version,
        keyids,
        threshold,
    };
    let bytes = serde_json::to_vec(&record)
        .map_err(|e| fail(Check::Assignments, url, format!("internal: {e}")))?;
    store
        .write(ACCEPTED, &bytes)
        .map_err(|e| fail(Check::Assignments, url, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_metadata::documents::vehicles::{
        build, finish, node_path, Leaf, NodeSink, VehicleNode, MAX_NODE_BYTES,
    };
    use std::collections::{BTreeMap, HashMap};

    #[derive(Default)]
    struct Mem(HashMap<String, Vec<u8>>);
    impl NodeSink for Mem {
        type Error = ota_metadata::Error;
        fn put(&mut self, prefix: &str, l: &NodeLink, bytes: Vec<u8>) -> ota_metadata::Result<()> {
            self.0.insert(node_path(prefix, &l.sha256), bytes);
            Ok(())
        }
    }

    fn entry(v: u64) -> VehicleEntry {
        VehicleEntry {
            version: v,
            ecus: BTreeMap::new(),
        }
    }

    fn secret(vin: &str) -> VehicleSecret {
        ota_crypt::fleet::FleetSecret(ota_crypt::Key([5; 32])).vehicle(vin)
    }

    fn key(vin: &str) -> String {
        secret(vin).locator()
    }

    fn sealed(vin: &str, e: &VehicleEntry) -> String {
        e.seal(vin, &secret(vin)).unwrap()
    }

    /// 300 vehicles at 8 per leaf: three or four levels.
    fn tree() -> (Mem, NodeLink) {
        let mut m = Mem::default();
        let mut leaves: Vec<Leaf> = (0..300)
            .map(|i| {
                let vin = format!("VIN{i}");
                Leaf::seal(&vin, &entry(i), &secret(&vin)).unwrap()
            })
            .collect();
        leaves.sort_by(|a, b| a.key.cmp(&b.key));
        let t = build(&mut m, "", leaves, 8).unwrap();
        let root = finish(&mut m, t).unwrap().unwrap();
        (m, root)
    }

    /// Fetch from `m`, checking length and hash as the updater does; counts requests.
    fn getter<'a>(
        m: &'a Mem,
        fetched: &'a mut Vec<String>,
    ) -> impl FnMut(usize, &str, &NodeLink) -> std::result::Result<Vec<u8>, String> + 'a {
        move |_, prefix, link| {
            let p = node_path(prefix, &link.sha256);
            fetched.push(p.clone());
            let b = m.0.get(&p).cloned().ok_or("not found")?;
            ota_metadata::trusted_set::check_meta(&p, &link.meta(), &b)
                .map_err(|e| e.to_string())?;
            Ok(b)
        }
    }

    #[test]
    fn finds_every_vehicle_and_only_those() {
        let (m, root) = tree();
        for i in [0u64, 17, 299] {
            let mut f = Vec::new();
            let vin = format!("VIN{i}");
            let got = find_in_tree(Some(&root), &key(&vin), getter(&m, &mut f)).unwrap();
            assert_eq!(got, Some(sealed(&vin, &entry(i))));
            let opened = VehicleEntry::open(&got.unwrap(), &vin, &secret(&vin)).unwrap();
            assert_eq!(opened, entry(i));
            assert!(f.len() >= 2 && f.len() <= 4, "{f:?}");
        }
        let mut f = Vec::new();
        assert_eq!(
            find_in_tree(Some(&root), &key("VIN-X"), getter(&m, &mut f)).unwrap(),
            None
        );
        assert_eq!(
            find_in_tree(None, &key("VIN1"), getter(&m, &mut f)).unwrap(),
            None
        );
    }

    #[test]
    fn a_tampered_node_is_refused_at_its_depth() {
        let (mut m, root) = tree();
        let key = key("VIN5");
        // The node at depth 1 on VIN5's path, one byte changed.
        let root_node = check_node(&m.0[&node_path("", &root.sha256)], "").unwrap();
        let l1 = &root_node.children[&key[..1]];
        let p1 = node_path(&key[..1], &l1.sha256);
        let mut b = m.0[&p1].clone();
        let i = b.len() / 2;
        b[i] ^= 1;
        m.0.insert(p1, b);
        let mut f = Vec::new();
        let e = find_in_tree(Some(&root), &key, getter(&m, &mut f)).unwrap_err();
        assert!(
            matches!(&e, TreeError::Fetch { depth: 1, reason, .. } if reason.contains("sha256")),
            "{e}"
        );
    }

    /// Scenario: Uptane VIN | the tree leads a vehicle to another prefix's (another vehicle's) leaf | refused
    #[test]
    fn a_node_for_another_prefix_is_refused() {
        let (mut m, root) = tree();
        let key = key("VIN5");
        // The root names, for VIN5's first digit, a valid node of another prefix (a real node,
        // so its link is right): the vehicle must refuse it, not read another vehicle's bin.
        let mut root_node = check_node(&m.0[&node_path("", &root.sha256)], "").unwrap();
        let (other_digit, other) = root_node
            .children
            .iter()
            .find(|(d, _)| **d != key[..1])
            .map(|(d, l)| (d.clone(), l.clone()))
            .unwrap();
        let bytes = m.0[&node_path(&other_digit, &other.sha256)].clone();
        m.0.insert(node_path(&key[..1], &other.sha256), bytes);
        root_node.children.insert(key[..1].to_string(), other);
        let root_bytes = ota_metadata::canonical::to_canonical(&root_node).unwrap();
        let forged = NodeLink::of(&root_bytes);
        m.0.insert(node_path("", &forged.sha256), root_bytes);
        let mut f = Vec::new();
        let e = find_in_tree(Some(&forged), &key, getter(&m, &mut f)).unwrap_err();
        assert!(
            matches!(&e, TreeError::Node { depth: 1, reason, .. } if reason.contains("prefix")),
            "{e}"
        );
    }

    /// Scenario: Endless data | an endless chain of tree nodes | cut off at the maximum depth
    #[test]
    fn an_endless_chain_of_nodes_is_cut_off() {
        // A chain of inner nodes, each naming the next, deeper than a vehicle walks.
        let key = key("VIN1");
        let mut m = Mem::default();
        let mut below: Option<NodeLink> = None;
        for depth in (0..=MAX_DEPTH + 2).rev() {
            let node = match &below {
                None => VehicleNode {
                    type_: VehicleNode::TYPE.into(),
                    prefix: key[..depth].into(),
                    children: BTreeMap::new(),
                    entries: BTreeMap::from([(key.clone(), sealed("VIN1", &entry(1)))]),
                },
                Some(l) => VehicleNode {
                    type_: VehicleNode::TYPE.into(),
                    prefix: key[..depth].into(),
                    children: BTreeMap::from([(key[depth..depth + 1].to_string(), l.clone())]),
                    entries: BTreeMap::new(),
                },
            };
            let b = ota_metadata::canonical::to_canonical(&node).unwrap();
            assert!(b.len() as u64 <= MAX_NODE_BYTES);
            let l = NodeLink::of(&b);
            m.0.insert(node_path(&key[..depth], &l.sha256), b);
            below = Some(l);
        }
        let mut f = Vec::new();
        let e = find_in_tree(below.as_ref(), &key, getter(&m, &mut f)).unwrap_err();
        assert_eq!(e, TreeError::TooDeep);
        assert_eq!(f.len(), MAX_DEPTH);
    }
}
