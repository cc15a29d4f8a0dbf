//! A receiver's node keys (a vehicle's, installed in its gateway at the factory, or an
//! authorized regulator's): the keys of the nodes on its leaf's path, as a JSON file.
//!
//! ```json
//! {"scheme": "complete-subtree-v1", "depth": 20, "leaf": 4711,
//!  "node_keys": {"1": "<64 hex>", "2": "…", …, "1053287": "…"}}
//! ```
//!
//! Parsing checks that the keys are exactly those of the leaf's path, so a file cannot claim
//! keys of other nodes.

use crate::subtree::{Secret, Tree};
use crate::wrap_set::WrapSet;
use crate::{wrap, Key};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEME: &str = "complete-subtree-v1";
/// Largest key file accepted: 33 keys of 64 hex digits and their node numbers, with room.
pub const MAX_FILE: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the key file is {0} bytes ({MAX_FILE} at most)")]
    TooLarge(usize),
    #[error("the key file is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown key scheme {0:?} (expected {SCHEME})")]
    Scheme(String),
    #[error(transparent)]
    Tree(#[from] crate::subtree::Error),
    #[error("the key file does not hold exactly the keys of leaf {leaf}'s path (node {node})")]
    NotThePath { leaf: u64, node: String },
    #[error("node key {node}: not 64 hex digits")]
    BadKey { node: String },
    /// The image's wraps exclude this receiver (or never included it).
    #[error("this receiver is excluded from the image (no wrap for any of its {0} node keys)")]
    Excluded(usize),
    #[error(transparent)]
    Wrap(#[from] wrap::Error),
    #[error("the wraps are for a tree of depth {wraps}, the keys for depth {keys}")]
    DepthMismatch { wraps: u8, keys: u8 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scheme: String,
    depth: u8,
    leaf: u64,
    node_keys: BTreeMap<String, String>,
}

/// The keys one receiver holds.
pub struct ReceiverKeys {
    pub tree: Tree,
    pub leaf: u64,
    /// Leaf first, root last.
    pub keys: Vec<(u64, Key)>,
}

impl ReceiverKeys {
    /// Issue receiver `leaf`'s keys from the OEM's `secret`.
    pub fn issue(secret: &Secret, tree: Tree, leaf: u64) -> Result<ReceiverKeys, Error> {
        Ok(ReceiverKeys {
            tree,
            leaf,
            keys: secret.receiver_keys(tree, leaf)?,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        let f = File {
            scheme: SCHEME.into(),
            depth: self.tree.depth(),
            leaf: self.leaf,
            node_keys: self
                .keys
                .iter()
                .map(|(v, k)| (v.to_string(), hex::encode(k.0)))
                .collect(),
        };
        // A map of strings: serialisation cannot fail.
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
        Ok(ReceiverKeys {
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
