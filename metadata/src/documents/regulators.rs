//! The regulators the OEM authorizes and how many distinct ones must approve an image.
//!
//! They travel in the OEM's top-level `targets` role, as its `regulators` field beside the
//! supplier pins: who is trusted is decided by the offline targets keys, never by the online
//! keys that sign assignments, reviews, snapshots and timestamps.
//!
//! Regulators are counted by key material, not by name: the same regulator listed twice (or
//! two entries sharing a root key) is one regulator, so a threshold of k needs k regulators
//! whose root keys are pairwise disjoint.

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
}

/// The field of the OEM's targets role that holds the [`RegulatorPolicy`].
pub const REGULATORS_FIELD: &str = "regulators";

/// The regulator policy of an OEM targets document (no regulators, threshold 1, if absent).
pub fn regulators_of(t: &Targets) -> Result<RegulatorPolicy> {
    match t.extra.get(REGULATORS_FIELD) {
        None => Ok(RegulatorPolicy {
            threshold: 1,
            regulators: BTreeMap::new(),
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

    /// How many distinct regulators `names` are: a regulator whose root keys overlap one
    /// already counted is not counted again. (Greedy, so it never over-counts.)
    pub fn distinct(&self, names: &[String]) -> usize {
        let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut n = 0;
        for name in names {
            let id = self.identity(name);
            if id.is_empty() || id.iter().any(|k| seen.contains(k)) {
                continue;
            }
            seen.extend(id);
            n += 1;
        }
        n
    }

    /// The authorized regulator, other than `except`, that holds any of `keys`.
    pub fn sharing_keys(&self, keys: &BTreeSet<Vec<u8>>, except: &str) -> Option<&str> {
        self.regulators
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .find(|(_, pin)| !pin.key_material().is_disjoint(keys))
            .map(|(n, _)| n.as_str())
    }
}
