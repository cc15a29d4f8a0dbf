//! Where a receiver finds the content key of an encrypted image (issue 11): the OEM's wrap
//! shards (`ota_crypt::wrap_set`), each a file `wraps/SHA256.bin` of the OEM's repository,
//! named here by length and SHA-256. A review request lists every shard of its image (the
//! regulators pick theirs); a vehicle's assignment lists only the top shard and the vehicle's
//! own, so a vehicle fetches one or two small files whatever the fleet's size.
//!
//! The reference is trusted through the document that carries it (the signed `review` role,
//! or the assignments reached by hash from the signed fleet index); the shard through its hash.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Directory of the OEM repository holding the wrap shards.
pub const WRAPS_DIR: &str = "wraps";
/// Largest shard a reader accepts: a depth-32 tree's cover within one shard stays far below.
pub const MAX_SHARD_BYTES: u64 = 64 << 20;

/// One shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    pub length: u64,
    pub sha256: String,
}

impl ShardFile {
    /// Its path under the OEM repository's base URL.
    pub fn path(&self) -> String {
        format!("{WRAPS_DIR}/{}.bin", self.sha256)
    }
}

/// The wrapped content key of one image, as far as a reader needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWraps {
    /// `complete-subtree-v2` (`ota_crypt::receiver::SCHEME`).
    pub scheme: String,
    /// The receiver group the wraps are for (`hw:ID` for the vehicles with an ECU of hardware
    /// id ID, `regulators`): a receiver opens them with its keys of that group.
    pub group: String,
    /// Depth of the receivers' tree.
    pub depth: u8,
    /// Depth at which the wraps are sharded.
    pub shard_depth: u8,
    /// Shard number (decimal; 0 is the top shard) -> file.
    pub shards: BTreeMap<String, ShardFile>,
}

impl KeyWraps {
    /// Check the shape (a reader calls this before fetching anything).
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::malformed("key wraps", why));
        if self.scheme != ota_crypt::receiver::SCHEME {
            return bad(format!("unknown scheme {:?}", self.scheme));
        }
        if !ota_crypt::receiver::valid_group(&self.group) {
            return bad(format!("group {:?}", self.group));
        }
        if self.depth > ota_crypt::subtree::MAX_DEPTH || self.shard_depth > self.depth {
            return bad(format!(
                "depth {} / shard depth {} out of range",
                self.depth, self.shard_depth
            ));
        }
        if !self.shards.contains_key("0") {
            return bad("no top shard (0)".into());
        }
        for (n, f) in &self.shards {
            if n.parse::<u64>().map(|v| v.to_string()) != Ok(n.clone()) {
                return bad(format!("shard number {n:?} is not a decimal number"));
            }
            if f.length > MAX_SHARD_BYTES {
                return bad(format!("shard {n} is {} bytes", f.length));
            }
            if f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
                return bad(format!("shard {n}: sha256 is not 64 hex digits"));
            }
        }
        Ok(())
    }

    /// The shards a receiver at the given shard needs: the top one, and its own if published.
    pub fn for_shard(&self, shard: u64) -> Vec<(u64, &ShardFile)> {
        let mut out = Vec::new();
        for n in [0, shard] {
            if let Some(f) = self.shards.get(&n.to_string()) {
                if !out.iter().any(|(m, _)| *m == n) {
                    out.push((n, f));
                }
            }
        }
        out
    }

    /// These wraps reduced to what one receiver needs (what an assignment carries).
    pub fn only(&self, shard: u64) -> KeyWraps {
        KeyWraps {
            scheme: self.scheme.clone(),
            group: self.group.clone(),
            depth: self.depth,
            shard_depth: self.shard_depth,
            shards: self
                .for_shard(shard)
                .into_iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(b: u8) -> ShardFile {
        ShardFile {
            length: 52 + 80,
            sha256: hex::encode([b; 32]),
        }
    }

    fn wraps(shards: &[(&str, ShardFile)]) -> KeyWraps {
        KeyWraps {
            scheme: ota_crypt::receiver::SCHEME.into(),
            group: "hw:BRAKE-A".into(),
            depth: 20,
            shard_depth: 10,
            shards: shards
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_receiver_gets_the_top_shard_and_its_own_only() {
        let w = wraps(&[("0", file(0)), ("1024", file(1)), ("1500", file(2))]);
        w.validate().unwrap();
        let mine = w.only(1500);
        assert_eq!(
            mine.shards.keys().collect::<Vec<_>>(),
            vec!["0", "1500"],
            "the other vehicles' shard is not handed out"
        );
        // A shard with no wraps of its own (every wrap for it sits higher): the top one only.
        assert_eq!(w.only(1800).shards.len(), 1);
        assert_eq!(w.for_shard(0).len(), 1);
        assert_eq!(file(7).path(), format!("wraps/{}.bin", "07".repeat(32)));
    }

    #[test]
    fn malformed_references_are_refused_before_anything_is_fetched() {
        let ok = wraps(&[("0", file(0))]);
        let bad = |f: &dyn Fn(&mut KeyWraps)| {
            let mut w = ok.clone();
            f(&mut w);
            assert!(w.validate().is_err(), "{w:?}");
        };
        bad(&|w| w.scheme = "other".into());
        bad(&|w| w.group = String::new());
        bad(&|w| w.group = "hw:with space".into());
        bad(&|w| w.depth = 40);
        bad(&|w| w.shard_depth = 21);
        bad(&|w| {
            w.shards.remove("0");
        });
        bad(&|w| {
            w.shards.insert("01".into(), file(1));
        });
        bad(&|w| {
            w.shards.insert("x".into(), file(1));
        });
        bad(&|w| w.shards.get_mut("0").unwrap().sha256 = "zz".repeat(32));
        bad(&|w| w.shards.get_mut("0").unwrap().length = MAX_SHARD_BYTES + 1);
    }
}
