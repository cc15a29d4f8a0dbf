//! The complete-subtree scheme (Naor, Naor, Lotspiech, "Revocation and Tracing Schemes for
//! Stateless Receivers", CRYPTO 2001).
//!
//! Receivers are the leaves of a complete binary tree of depth `D` (2^D leaves), numbered in
//! heap order: the root is node 1, node `v`'s children are `2v` and `2v + 1`, leaf `i` is node
//! `2^D + i`. Every node has a key; a receiver holds the keys of the `D + 1` nodes on the path
//! from its leaf to the root. To reach every receiver except an excluded set R, the sender
//! wraps the content key under the key of each node of the *cover*: the maximal subtrees that
//! contain no excluded leaf (the nodes hanging off the Steiner tree of R). Every non-excluded
//! receiver has exactly one cover node on its path; an excluded one has none, and no
//! coalition of excluded receivers holds a cover key (each of their keys is on a path to an
//! excluded leaf, so it is in the Steiner tree). The cover has at most r·log2(N/r) nodes.
//!
//! Node keys are derived from one OEM secret (HMAC-SHA256 over the depth and node number), so
//! the OEM stores 32 bytes whatever the fleet size.

use crate::Key;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeSet;

/// Deepest tree supported: 2^32 receivers.
pub const MAX_DEPTH: u8 = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("tree depth {0} (1 to 32)")]
    BadDepth(u8),
    #[error("leaf {leaf} is outside a tree of depth {depth} ({} leaves)", 1u64 << depth)]
    BadLeaf { leaf: u64, depth: u8 },
    #[error("node {node} is not in a tree of depth {depth}")]
    BadNode { node: u64, depth: u8 },
}

/// The shape of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tree {
    depth: u8,
}

impl Tree {
    pub fn new(depth: u8) -> Result<Tree, Error> {
        if depth == 0 || depth > MAX_DEPTH {
            return Err(Error::BadDepth(depth));
        }
        Ok(Tree { depth })
    }

    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Number of leaves (receivers the tree can hold).
    pub fn leaves(&self) -> u64 {
        1u64 << self.depth
    }

    /// The node of leaf `leaf`.
    pub fn leaf_node(&self, leaf: u64) -> Result<u64, Error> {
        if leaf >= self.leaves() {
            return Err(Error::BadLeaf {
                leaf,
                depth: self.depth,
            });
        }
        Ok(self.leaves() + leaf)
    }

    /// Whether `node` is a node of this tree.
    pub fn contains(&self, node: u64) -> bool {
        node >= 1 && node < (self.leaves() << 1)
    }

    /// The nodes on the path from leaf `leaf` up to the root, leaf first (`depth + 1` nodes).
    pub fn path(&self, leaf: u64) -> Result<Vec<u64>, Error> {
        let mut v = self.leaf_node(leaf)?;
        let mut out = Vec::with_capacity(usize::from(self.depth) + 1);
        while v >= 1 {
            out.push(v);
            v >>= 1;
        }
        Ok(out)
    }

    /// The cover of every leaf not in `excluded`: sorted node numbers. Empty when every leaf
    /// is excluded. Cost: O(r·D) for r excluded leaves.
    pub fn cover(&self, excluded: &BTreeSet<u64>) -> Result<Vec<u64>, Error> {
        if excluded.is_empty() {
            return Ok(vec![1]);
        }
        // The Steiner tree: every node on a path from an excluded leaf to the root.
        let mut steiner = BTreeSet::new();
        for &leaf in excluded {
            let mut v = self.leaf_node(leaf)?;
            while v >= 1 && steiner.insert(v) {
                v >>= 1;
            }
        }
        let first_leaf = self.leaves();
        let mut cover = Vec::new();
        for &v in &steiner {
            if v >= first_leaf {
                continue;
            }
            for child in [2 * v, 2 * v + 1] {
                if !steiner.contains(&child) {
                    cover.push(child);
                }
            }
        }
        cover.sort_unstable();
        Ok(cover)
    }

    /// The cover of the leaves below `limit` not in `excluded`: sorted node numbers, the
    /// maximal subtrees whose leaves are all below `limit` and none excluded. Leaves at or
    /// above `limit` (not issued yet) are covered by nothing. Cost: O((r + 1)·D).
    pub fn cover_below(&self, limit: u64, excluded: &BTreeSet<u64>) -> Result<Vec<u64>, Error> {
        if let Some(&leaf) = excluded.iter().next_back() {
            self.leaf_node(leaf)?;
        }
        let limit = limit.min(self.leaves());
        let mut cover = Vec::new();
        // (node, first leaf, leaves under it), depth first.
        let mut stack = vec![(1u64, 0u64, self.leaves())];
        while let Some((v, lo, n)) = stack.pop() {
            let hi = lo + n;
            if lo >= limit {
                continue;
            }
            let clean = excluded.range(lo..hi).next().is_none();
            if hi <= limit && clean {
                cover.push(v);
            } else if n > 1 {
                let half = n / 2;
                stack.push((2 * v + 1, lo + half, half));
                stack.push((2 * v, lo, half));
            }
        }
        cover.sort_unstable();
        Ok(cover)
    }

    /// The one node of a sorted `cover` on leaf `leaf`'s path, if any: what a receiver looks
    /// for.
    pub fn covering(&self, cover: &[u64], leaf: u64) -> Result<Option<u64>, Error> {
        Ok(self
            .path(leaf)?
            .into_iter()
            .find(|v| cover.binary_search(v).is_ok()))
    }
}

/// The OEM's secret from which every node key is derived.
pub struct Secret(pub Key);

impl Secret {
    pub fn generate() -> Secret {
        Secret(Key::generate())
    }

    /// The secret of receiver group `name` (see [`crate::receiver`]): every group is a tree
    /// of its own, so no key of one group opens a wrap of another.
    pub fn group(&self, name: &str) -> Secret {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0 .0)
            .expect("HMAC takes keys of any length");
        mac.update(b"ota-crypt receiver group v1\0");
        mac.update(name.as_bytes());
        Secret(Key(mac.finalize().into_bytes().into()))
    }

    /// A key for one of the OEM's own records (never a node key: the label is a domain of its
    /// own): HMAC-SHA256 over `label`.
    pub fn derived(&self, label: &[u8]) -> Key {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0 .0)
            .expect("HMAC takes keys of any length");
        mac.update(b"ota-crypt derived v1\0");
        mac.update(label);
        Key(mac.finalize().into_bytes().into())
    }

    /// The key of `node` in `tree`.
    pub fn node_key(&self, tree: Tree, node: u64) -> Result<Key, Error> {
        if !tree.contains(node) {
            return Err(Error::BadNode {
                node,
                depth: tree.depth,
            });
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0 .0)
            .expect("HMAC takes keys of any length");
        mac.update(b"ota-crypt complete-subtree node key v1");
        mac.update(&[tree.depth]);
        mac.update(&node.to_be_bytes());
        Ok(Key(mac.finalize().into_bytes().into()))
    }

    /// What receiver `leaf` is issued: its path's (node, key) pairs, leaf first.
    pub fn receiver_keys(&self, tree: Tree, leaf: u64) -> Result<Vec<(u64, Key)>, Error> {
        tree.path(leaf)?
            .into_iter()
            .map(|v| Ok((v, self.node_key(tree, v)?)))
            .collect()
    }
}
