//! A pinned repository: where another party's TUF repository is, and the root keys that must
//! sign it. The OEM pins its suppliers and regulators this way; a client starts that
//! repository's root chain from the pinned version and checks it against the pinned keys.

use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use crate::roles::{RoleKeys, Root};
use crate::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepositoryPin {
    /// Base URL of the repository's metadata (the directory holding `timestamp.json`).
    pub url: String,
    /// Version of the root the keys were pinned from.
    pub root_version: u64,
    pub keys: BTreeMap<KeyId, Key>,
    pub root: RoleKeys,
    /// The keys of the pinned root's other roles (targets, snapshot, timestamp), as the
    /// party's identity beside its root keys: two parties sharing any key of any role are one
    /// party. Not trust anchors: the client walks the root chain for those.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_keys: BTreeMap<KeyId, Key>,
}

/// The key material of `keys` (a key that does not parse is left out: it could never sign).
pub fn material_of<'a>(keys: impl IntoIterator<Item = (&'a KeyId, &'a Key)>) -> BTreeSet<Vec<u8>> {
    keys.into_iter()
        .filter_map(|(id, k)| k.to_public(id).ok())
        .map(|k| k.identity())
        .collect()
}

/// The key material of every key of every role of `root`.
pub fn root_material(root: &Root) -> BTreeSet<Vec<u8>> {
    material_of(
        root.roles
            .values()
            .flat_map(|r| r.keyids.iter())
            .filter_map(|id| root.keys.get(id).map(|k| (id, k))),
    )
}

impl RepositoryPin {
    /// Pin a root document the caller has verified.
    pub fn pin(root: &Root, url: &str) -> Result<Self> {
        let r = root.role("root")?;
        let keys = r
            .keyids
            .iter()
            .filter_map(|id| root.keys.get(id).map(|k| (id.clone(), k.clone())))
            .collect();
        let role_keys = root
            .roles
            .iter()
            .filter(|(name, _)| name.as_str() != "root")
            .flat_map(|(_, role)| role.keyids.iter())
            .filter(|id| !r.keyids.contains(id))
            .filter_map(|id| root.keys.get(id).map(|k| (id.clone(), k.clone())))
            .collect();
        Ok(RepositoryPin {
            url: url.into(),
            root_version: root.version,
            keys,
            root: r.clone(),
            role_keys,
        })
    }

    /// The key material of the pinned root keys (a key that does not parse is left out: it
    /// could never sign). Two pins that share any of it stand for the same party.
    pub fn key_material(&self) -> BTreeSet<Vec<u8>> {
        self.root
            .keyids
            .iter()
            .filter_map(|id| self.keys.get(id)?.to_public(id).ok())
            .map(|k| k.identity())
            .collect()
    }

    /// The key material of every key the pinned root names, in any role: the party's whole
    /// identity. Two pins that share any of it stand for the same party.
    pub fn all_key_material(&self) -> BTreeSet<Vec<u8>> {
        let mut m = self.key_material();
        m.extend(material_of(&self.role_keys));
        m
    }

    /// Whether `other` pins the same trust (root version, keys and threshold), wherever it
    /// says the repository is: a new URL alone is a mirror, not a new trust anchor.
    pub fn same_trust(&self, other: &RepositoryPin) -> bool {
        self.root_version == other.root_version
            && self.root.threshold == other.root.threshold
            && self.key_material() == other.key_material()
    }

    /// Check that `root_bytes` is the pinned root: signed by a threshold of the pinned keys and
    /// of the pinned version. (Its self-signature is checked by the `TrustedSet` that loads it.)
    pub fn check_root(&self, what: &str, root_bytes: &[u8], limit: u64) -> Result<()> {
        let env = Envelope::parse(&format!("{what} root"), root_bytes, limit)?;
        env.verify(
            &format!("{what} root (by the pinned keys)"),
            &self.root.keyids,
            self.root.threshold,
            &self.keys,
        )?;
        let root: Root = env.decode(&format!("{what} root"), Root::TYPE)?;
        if root.version != self.root_version {
            return Err(Error::Version {
                role: format!("{what} root"),
                found: root.version,
                expected: format!("{} (the pinned version)", self.root_version),
            });
        }
        Ok(())
    }
}

/// Parse and verify a root file someone hands over for pinning: it must be signed by a
/// threshold of its own root keys.
pub fn verified_root(what: &str, bytes: &[u8], limit: u64) -> Result<Root> {
    let env = Envelope::parse(what, bytes, limit)?;
    let root: Root = env.decode(what, Root::TYPE)?;
    root.validate()?;
    let r = root.role("root")?;
    env.verify(what, &r.keyids, r.threshold, &root.keys)?;
    Ok(root)
}
