//! An image's wrapped content keys, split in shards so a receiver fetches only its own: the
//! wraps of cover nodes at depth `shard_depth` or deeper go in the shard of their ancestor at
//! that depth; the few above it go in the *top* shard (number 0). A receiver needs the top
//! shard and the shard of its leaf's ancestor at `shard_depth`: with 10,000 of 1M vehicles
//! excluded and shards at depth 10, that is about 60 wraps (5 KB) instead of 4.6 MB.
//!
//! Shard layout (all integers big-endian):
//!
//! | offset | size | field                                       |
//! |-------:|-----:|---------------------------------------------|
//! | 0      | 4    | magic `OTAW`                                |
//! | 4      | 1    | format version, 1                           |
//! | 5      | 1    | tree depth                                  |
//! | 6      | 1    | shard depth                                 |
//! | 7      | 1    | reserved, zero                              |
//! | 8      | 8    | shard number (0: top)                       |
//! | 16     | 32   | SHA-256 of the plaintext image              |
//! | 48     | 4    | number of wraps                             |
//! | 52     | …    | the wraps, [`WRAP_LEN`] bytes each          |
//!
//! Shards are published under signed metadata (their hashes), so their integrity is not this
//! format's concern; parsing only bounds and checks the layout.

use crate::subtree::{Secret, Tree};
use crate::wrap::{self, WRAP_LEN};
use crate::Key;
use std::collections::{BTreeMap, BTreeSet};

pub const MAGIC: [u8; 4] = *b"OTAW";
pub const HEADER_LEN: usize = 52;
/// Wraps in one shard, at most (a complete cover of a depth-32 tree has fewer per shard).
pub const MAX_WRAPS: u32 = 1 << 20;
/// The shard depth publishers use unless the tree is shallower.
pub const DEFAULT_SHARD_DEPTH: u8 = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("truncated wrap shard")]
    Truncated,
    #[error("not a wrap shard (bad magic)")]
    BadMagic,
    #[error("unsupported wrap shard format {0}")]
    UnsupportedFormat(u8),
    #[error("malformed wrap shard: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Tree(#[from] crate::subtree::Error),
}

/// Depth of node `v` (the root is at depth 0).
fn depth_of(v: u64) -> u8 {
    // v >= 1, so at most 63.
    (63 - v.leading_zeros()) as u8
}

/// One parsed shard.
#[derive(Debug, PartialEq, Eq)]
pub struct Shard {
    pub depth: u8,
    pub shard_depth: u8,
    pub number: u64,
    pub image_sha256: [u8; 32],
    pub wraps: Vec<[u8; WRAP_LEN]>,
}

impl Shard {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.wraps.len() * WRAP_LEN);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&[1, self.depth, self.shard_depth, 0]);
        b.extend_from_slice(&self.number.to_be_bytes());
        b.extend_from_slice(&self.image_sha256);
        b.extend_from_slice(
            &u32::try_from(self.wraps.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for w in &self.wraps {
            b.extend_from_slice(w);
        }
        b
    }

    /// Parse untrusted bytes. Never panics.
    pub fn parse(b: &[u8]) -> Result<Shard, Error> {
        let h = b.get(..HEADER_LEN).ok_or(Error::Truncated)?;
        if h[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if h[4] != 1 {
            return Err(Error::UnsupportedFormat(h[4]));
        }
        let (depth, shard_depth) = (h[5], h[6]);
        let tree = Tree::new(depth)?;
        if h[7] != 0 || shard_depth > depth {
            return Err(Error::Malformed("shard depth or reserved byte"));
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&h[8..16]);
        let number = u64::from_be_bytes(n);
        let valid_number = number == 0
            || (tree.contains(number) && depth_of(number) == shard_depth && shard_depth > 0);
        if !valid_number {
            return Err(Error::Malformed("shard number"));
        }
        let mut image_sha256 = [0u8; 32];
        image_sha256.copy_from_slice(&h[16..48]);
        let count = u32::from_be_bytes([h[48], h[49], h[50], h[51]]);
        if count > MAX_WRAPS {
            return Err(Error::Malformed("too many wraps"));
        }
        let body = &b[HEADER_LEN..];
        if body.len() != count as usize * WRAP_LEN {
            return Err(Error::Malformed("length does not match the wrap count"));
        }
        let wraps = body
            .chunks_exact(WRAP_LEN)
            .map(|c| {
                let mut w = [0u8; WRAP_LEN];
                w.copy_from_slice(c);
                w
            })
            .collect();
        Ok(Shard {
            depth,
            shard_depth,
            number,
            image_sha256,
            wraps,
        })
    }
}

/// Every shard of one image's wraps.
pub struct WrapSet {
    pub tree: Tree,
    pub shard_depth: u8,
    pub shards: BTreeMap<u64, Shard>,
}

impl WrapSet {
    /// The shard holding the wrap of cover node `v`.
    pub fn shard_of_node(v: u64, shard_depth: u8) -> u64 {
        let d = depth_of(v);
        if d < shard_depth || shard_depth == 0 {
            0
        } else {
            v >> (d - shard_depth)
        }
    }

    /// The shard a receiver at `leaf` needs besides the top one (0 when all is in the top).
    pub fn shard_of_leaf(tree: Tree, leaf: u64, shard_depth: u8) -> u64 {
        match tree.leaf_node(leaf) {
            Ok(v) => Self::shard_of_node(v, shard_depth.min(tree.depth())),
            Err(_) => 0,
        }
    }

    /// Wrap `content` (the key of the image of SHA-256 `image_sha256`) for every leaf of
    /// `tree` not in `excluded`.
    pub fn build(
        secret: &Secret,
        tree: Tree,
        excluded: &BTreeSet<u64>,
        content: &Key,
        image_sha256: &[u8; 32],
        shard_depth: u8,
    ) -> Result<WrapSet, Error> {
        Self::for_cover(
            secret,
            tree,
            &tree.cover(excluded)?,
            content,
            image_sha256,
            shard_depth,
        )
    }

    /// Wrap `content` for every node of `cover` (see [`Tree::cover`], [`Tree::cover_below`]).
    pub fn for_cover(
        secret: &Secret,
        tree: Tree,
        cover: &[u64],
        content: &Key,
        image_sha256: &[u8; 32],
        shard_depth: u8,
    ) -> Result<WrapSet, Error> {
        let shard_depth = shard_depth.min(tree.depth());
        let mut shards: BTreeMap<u64, Shard> = BTreeMap::new();
        for &v in cover {
            let key = secret.node_key(tree, v)?;
            let number = Self::shard_of_node(v, shard_depth);
            shards
                .entry(number)
                .or_insert_with(|| Shard {
                    depth: tree.depth(),
                    shard_depth,
                    number,
                    image_sha256: *image_sha256,
                    wraps: Vec::new(),
                })
                .wraps
                .push(wrap::seal(v, &key, content, image_sha256));
        }
        // The top shard always exists (possibly empty), so a receiver can tell "excluded"
        // from "not published".
        shards.entry(0).or_insert_with(|| Shard {
            depth: tree.depth(),
            shard_depth,
            number: 0,
            image_sha256: *image_sha256,
            wraps: Vec::new(),
        });
        Ok(WrapSet {
            tree,
            shard_depth,
            shards,
        })
    }

    /// Total wraps over every shard.
    pub fn len(&self) -> usize {
        self.shards.values().map(|s| s.wraps.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
