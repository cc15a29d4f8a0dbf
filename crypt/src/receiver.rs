//! A receiver's node keys (a vehicle's, installed in its gateway at the factory, or an
//! authorized regulator's), as a JSON file.
//!
//! Receivers are entitled by **group**: each group is a complete-subtree tree of its own, with
//! node keys derived from the OEM's secret and the group's name ([`Secret::group`]), so a
//! wrap for one group's node opens nothing in another. A vehicle is a leaf of the group of
//! each hardware id it has an ECU of (`hw:BRAKE-A`, …: [`vehicle_group`]), and an image is
//! wrapped for the groups of its hardware ids only: a vehicle with no ECU of those holds no
//! key that opens it. Regulators are leaves of their own group ([`REGULATORS_GROUP`]),
//! outside every vehicle's tree.
//!
//! ```json
//! {"scheme": "complete-subtree-v2",
//!  "groups": {"hw:BRAKE-A": {"depth": 20, "leaf": 4711,
//!                            "node_keys": {"1": "<64 hex>", …, "1053287": "…"}}}}
//! ```
//!
//! Parsing checks that each group's keys are exactly those of its leaf's path, so a file
//! cannot claim keys of other nodes.

use crate::subtree::{Secret, Tree};
use crate::wrap_set::WrapSet;
use crate::{wrap, Key};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEME: &str = "complete-subtree-v2";
/// Groups one key file holds, at most (a vehicle is in one group per hardware id it has).
pub const MAX_GROUPS: usize = 48;
/// Longest group name.
pub const MAX_GROUP_NAME: usize = 128;
/// Largest key file accepted: [`MAX_GROUPS`] paths of 33 keys, with room.
pub const MAX_FILE: usize = 192 * 1024;
/// The regulators' group.
pub const REGULATORS_GROUP: &str = "regulators";

/// The group of the vehicles holding an ECU of hardware id `hardware_id`.
pub fn vehicle_group(hardware_id: &str) -> String {
    format!("hw:{hardware_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the key file is {0} bytes ({MAX_FILE} at most)")]
    TooLarge(usize),
    #[error("the key file is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown key scheme {0:?} (expected {SCHEME}; a file of an earlier scheme must be issued again)")]
    Scheme(String),
    #[error("the key file holds {0} groups ({MAX_GROUPS} at most)")]
    TooManyGroups(usize),
    #[error("group name {0:?}: 1 to {MAX_GROUP_NAME} printable ASCII characters")]
    BadGroup(String),
    #[error(transparent)]
    Tree(#[from] crate::subtree::Error),
    #[error("the key file does not hold exactly the keys of leaf {leaf}'s path (node {node})")]
    NotThePath { leaf: u64, node: String },
    #[error("node key {node}: not 64 hex digits")]
    BadKey { node: String },
    /// The image is wrapped for a group this receiver is not in: it is not entitled.
    #[error("this receiver holds no keys of group {0:?}: it is not entitled to the image (a vehicle needs an ECU of the image's hardware id, and keys issued since it has one)")]
    NotInGroup(String),
    /// The image's wraps exclude this receiver (or never included it).
    #[error("this receiver is excluded from the image (no wrap for any of its {0} node keys)")]
    Excluded(usize),
    #[error(transparent)]
    Wrap(#[from] wrap::Error),
    #[error("the wraps are for a tree of depth {wraps}, the keys for depth {keys}")]
    DepthMismatch { wraps: u8, keys: u8 },
}

/// Whether `name` is a well-formed group name.
pub fn valid_group(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_GROUP_NAME && name.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    depth: u8,
    leaf: u64,
    node_keys: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scheme: String,
    groups: BTreeMap<String, PathFile>,
}

/// The keys of one leaf's path in one group's tree.
pub struct PathKeys {
    pub tree: Tree,
    pub leaf: u64,
    /// Leaf first, root last.
    pub keys: Vec<(u64, Key)>,
}

impl PathKeys {
    /// Issue leaf `leaf`'s keys from `secret` (a group's: [`Secret::group`]).
    pub fn issue(secret: &Secret, tree: Tree, leaf: u64) -> Result<PathKeys, Error> {
        Ok(PathKeys {
            tree,
            leaf,
            keys: secret.receiver_keys(tree, leaf)?,
        })
    }

    fn to_file(&self) -> PathFile {
        PathFile {
            depth: self.tree.depth(),
            leaf: self.leaf,
            node_keys: self
                .keys
                .iter()
                .map(|(v, k)| (v.to_string(), hex::encode(k.0)))
                .collect(),
        }
    }

    fn from_file(f: &PathFile) -> Result<PathKeys, Error> {
        let tree = Tree::new(f.depth)?;
        let path = tree.path(f.leaf)?;
        let not_path = |node: String| Error::NotThePath { leaf: f.leaf, node };
        if f.node_keys.len() != path.len() {
            return Err(not_path(format!("{} keys", f.node_keys.len())));
        }
        let mut keys = Vec::with_capacity(path.len());
        for v in path {
            let hex_key = f
                .node_keys
                .get(&v.to_string())
                .ok_or_else(|| not_path(v.to_string()))?;
            let mut k = [0u8; 32];
            hex::decode_to_slice(hex_key, &mut k).map_err(|_| Error::BadKey {
                node: v.to_string(),
            })?;
            keys.push((v, Key(k)));
        }
        Ok(PathKeys {
            tree,
            leaf: f.leaf,
            keys,
        })
    }

    /// The shard of an image's wraps this receiver needs (see [`WrapSet::shard_of_leaf`]).
    pub fn shard(&self, shard_depth: u8) -> u64 {
        WrapSet::shard_of_leaf(self.tree, self.leaf, shard_depth)
    }

    /// The content key of the image of SHA-256 `image_sha256`, from the wraps of its shard
    /// (and the top shard): the one wrap for a node on this receiver's path.
    pub fn open(&self, depth: u8, wraps: &[&[u8]], image_sha256: &[u8; 32]) -> Result<Key, Error> {
        if depth != self.tree.depth() {
            return Err(Error::DepthMismatch {
                wraps: depth,
                keys: self.tree.depth(),
            });
        }
        for w in wraps {
            let node = wrap::node_of(w)?;
            if let Some((_, k)) = self.keys.iter().find(|(v, _)| *v == node) {
                return Ok(wrap::open(w, k, image_sha256)?);
            }
        }
        Err(Error::Excluded(self.keys.len()))
    }
}

/// Every key one receiver holds: a path per group it is in.
pub struct ReceiverKeys {
    pub groups: BTreeMap<String, PathKeys>,
}

impl ReceiverKeys {
    /// Issue the keys of `leaves` (group name, its tree, the receiver's leaf there) from the
    /// OEM's `secret`.
    pub fn issue(secret: &Secret, leaves: &[(&str, Tree, u64)]) -> Result<ReceiverKeys, Error> {
        if leaves.len() > MAX_GROUPS {
            return Err(Error::TooManyGroups(leaves.len()));
        }
        let mut groups = BTreeMap::new();
        for (name, tree, leaf) in leaves {
            if !valid_group(name) {
                return Err(Error::BadGroup((*name).into()));
            }
            groups.insert(
                (*name).to_string(),
                PathKeys::issue(&secret.group(name), *tree, *leaf)?,
            );
        }
        Ok(ReceiverKeys { groups })
    }

    pub fn to_json(&self) -> Vec<u8> {
        let f = File {
            scheme: SCHEME.into(),
            groups: self
                .groups
                .iter()
                .map(|(g, p)| (g.clone(), p.to_file()))
                .collect(),
        };
        // Maps of strings: serialisation cannot fail.
        serde_json::to_vec_pretty(&f).unwrap_or_default()
    }

    /// Parse an untrusted key file. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<ReceiverKeys, Error> {
        if bytes.len() > MAX_FILE {
            return Err(Error::TooLarge(bytes.len()));
        }
        let f: File = serde_json::from_slice(bytes)?;
        if f.scheme != SCHEME {
            return Err(Error::Scheme(f.scheme));
        }
        if f.groups.len() > MAX_GROUPS {
            return Err(Error::TooManyGroups(f.groups.len()));
        }
        let mut groups = BTreeMap::new();
        for (name, p) in &f.groups {
            if !valid_group(name) {
                return Err(Error::BadGroup(name.clone()));
            }
            groups.insert(name.clone(), PathKeys::from_file(p)?);
        }
        Ok(ReceiverKeys { groups })
    }

    /// The keys of group `name`: [`Error::NotInGroup`] when this receiver is not in it.
    pub fn group(&self, name: &str) -> Result<&PathKeys, Error> {
        self.groups
            .get(name)
            .ok_or_else(|| Error::NotInGroup(name.into()))
    }
}
