//! The regulators the OEM authorizes and how many distinct ones must approve an image.
//!
//! They travel in the OEM's top-level `targets` role, as its `regulators` field beside the
//! supplier pins: who is trusted is decided by the offline targets keys, never by the online
//! keys that sign assignments, reviews, snapshots and timestamps.
//!
//! Regulators are counted by key material, not by name: the same regulator listed twice, or
//! two entries sharing any key of any role (a root key, the targets key that signs
//! attestations), are one regulator, so a threshold of k needs k regulators whose keys are
//! pairwise disjoint ([`count_parties`]).

use super::pin::RepositoryPin;
use crate::error::{Error, Result};
use crate::roles::Targets;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The OEM's `regulators` field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegulatorPolicy {
    /// Distinct authorized regulators whose approval an image needs.
    pub threshold: u32,
    /// Each regulator's attestation repository, by the OEM's name for it.
    pub regulators: BTreeMap<String, RepositoryPin>,
    /// The longest a regulator's timestamp may run, in seconds (its lifetime): a vehicle
    /// refuses a regulator whose trusted timestamp expires later than this from now. It
    /// bounds the freeze window: a network attacker replaying a regulator's tree from before
    /// a revocation is refused at most this long after that tree was signed. `None`: only the
    /// timestamp's own expiry bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timestamp_lifetime: Option<u64>,
}

/// The field of the OEM's targets role that holds the [`RegulatorPolicy`].
pub const REGULATORS_FIELD: &str = "regulators";

/// The regulator policy of an OEM targets document (no regulators, threshold 1, if absent).
pub fn regulators_of(t: &Targets) -> Result<RegulatorPolicy> {
    match t.extra.get(REGULATORS_FIELD) {
        None => Ok(RegulatorPolicy {
            threshold: 1,
            regulators: BTreeMap::new(),
            max_timestamp_lifetime: None,
        }),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::malformed("OEM targets: regulators", e.to_string())),
    }
}

impl RegulatorPolicy {
    /// The key material of `name`'s pinned root keys (the regulator's identity).
    pub fn identity(&self, name: &str) -> BTreeSet<Vec<u8>> {
        self.regulators
            .get(name)
            .map(RepositoryPin::key_material)
            .unwrap_or_default()
    }

    /// The authorized regulator, other than `except`, that holds any of `keys`.
    pub fn sharing_keys(&self, keys: &BTreeSet<Vec<u8>>, except: &str) -> Option<&str> {
        self.regulators
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .find(|(_, pin)| !pin.all_key_material().is_disjoint(keys))
            .map(|(n, _)| n.as_str())
    }
}

/// How many distinct parties the key sets `identities` stand for: two sets that share any key
/// material are one party, and so is a chain of them (a set sharing a key with each of two
/// others joins all three). The number of connected components, so it never over-counts.
pub fn count_parties(identities: &[BTreeSet<Vec<u8>>]) -> usize {
    // Union-find over the sets' indices, joined through each key's first owner.
    let mut parent: Vec<usize> = (0..identities.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (i, set) in identities.iter().enumerate() {
        for key in set {
            match owner.get(key.as_slice()) {
                None => {
                    owner.insert(key, i);
                }
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
            }
        }
    }
    (0..identities.len())
        .filter(|&i| !identities[i].is_empty() && find(&mut parent, i) == i)
        .count()
}

#[cfg(test)]
mod tests {
    use super::count_parties;
    use std::collections::BTreeSet;

    fn set(keys: &[u8]) -> BTreeSet<Vec<u8>> {
        keys.iter().map(|k| vec![*k]).collect()
    }

    #[test]
    fn parties_sharing_any_key_count_once() {
        assert_eq!(count_parties(&[]), 0);
        assert_eq!(count_parties(&[set(&[1]), set(&[2])]), 2);
        assert_eq!(count_parties(&[set(&[1]), set(&[1])]), 1);
        // A bridge: 3 shares a key with 1 and with 2, so all three are one party.
        assert_eq!(count_parties(&[set(&[1]), set(&[2]), set(&[1, 2])]), 1);
        assert_eq!(
            count_parties(&[set(&[1, 5]), set(&[2]), set(&[3, 5]), set(&[4])]),
            3
        );
        // A party with no usable key is none.
        assert_eq!(count_parties(&[set(&[]), set(&[1])]), 1);
    }
}
