//! The trusted metadata of one TUF repository, and every rule about what may replace what.
//!
//! This is the I/O-free core of the TUF client workflow (python-tuf's `TrustedMetadataSet`):
//! it is handed bytes and a clock, and decides. Fetching, caching and the order of requests
//! belong to the client (`ota-client`); `ota-repo verify` drives the same checks over a
//! directory, so a published tree is verified exactly as a vehicle would verify it.

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::limits::MetadataLimits;
use crate::roles::{MetaFile, Root, Snapshot, Targets, Timestamp};
use crate::time::DateTime;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A document whose signatures have been checked, with the exact bytes it came from.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    pub signed: T,
    pub envelope: Envelope,
}

impl<T> Verified<T> {
    pub fn raw(&self) -> &[u8] {
        self.envelope.raw()
    }
}

/// Whether an update replaced the trusted document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    Replaced,
    /// Same version as the trusted one: the trusted one is kept.
    Unchanged,
}

#[derive(Clone, Debug)]
pub struct TrustedSet {
    now: DateTime,
    limits: MetadataLimits,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    /// "targets" and every delegated role loaded so far.
    targets: BTreeMap<String, Verified<Targets>>,
}

fn parse<T: DeserializeOwned>(
    role: &str,
    type_: &str,
    bytes: &[u8],
    limit: u64,
) -> Result<(T, Envelope)> {
    let envelope = Envelope::parse(role, bytes, limit)?;
    let signed = envelope.decode(role, type_)?;
    Ok((signed, envelope))
}

fn check_expiry(role: &str, expires: DateTime, now: DateTime) -> Result<()> {
    if expires <= now {
        return Err(Error::Expired {
            role: role.into(),
            expires: expires.to_string(),
            now: now.to_string(),
        });
    }
    Ok(())
}

/// Check `bytes` against the length and hashes a meta entry lists, where it lists them.
pub fn check_meta(what: &str, meta: &MetaFile, bytes: &[u8]) -> Result<()> {
    if let Some(len) = meta.length {
        if bytes.len() as u64 != len {
            return Err(Error::Length {
                what: what.into(),
                found: bytes.len() as u64,
                expected: len,
            });
        }
    }
    if let Some(hashes) = &meta.hashes {
        let mut checked = false;
        for (alg, expected) in hashes {
            // Every supported algorithm listed is checked (a right SHA-256 beside a wrong
            // SHA-512 is refused, as python-tuf does); others are ignored, and a list with
            // none supported is refused rather than passed unchecked.
            let found = match alg.as_str() {
                "sha256" => hex::encode(Sha256::digest(bytes)),
                "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
                _ => continue,
            };
            if !found.eq_ignore_ascii_case(expected) {
                return Err(Error::Hash {
                    what: what.into(),
                    found,
                    expected: expected.clone(),
                });
            }
            checked = true;
        }
        if !checked {
            return Err(Error::malformed(
                what,
                "hashes listed, but none is sha256 or sha512",
            ));
        }
    }
    Ok(())
}

impl TrustedSet {
    /// Start from a root the caller already trusts (factory-installed, or stored locally).
    /// It must be signed by a threshold of its own root keys; its expiry is not checked here,
    /// since an expired trusted root is the normal starting point of a rotation.
    pub fn new(root_bytes: &[u8], now: DateTime, limits: MetadataLimits) -> Result<Self> {
        let (root, envelope): (Root, _) = parse("root", Root::TYPE, root_bytes, limits.root)?;
        root.validate()?;
        let r = root.role("root")?;
        envelope.verify("root", &r.keyids, r.threshold, &root.keys)?;
        Ok(TrustedSet {
            now,
            limits,
            root: Verified {
                signed: root,
                envelope,
            },
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    pub fn now(&self) -> DateTime {
        self.now
    }
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref()
    }
    pub fn targets(&self, role: &str) -> Option<&Verified<Targets>> {
        self.targets.get(role)
    }

    /// Replace the root with the next version: signed by a threshold of the current root's
    /// root keys *and* of its own, with version exactly one more.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<()> {
        if self.timestamp.is_some() {
            return Err(Error::policy("root", "cannot update root after timestamp"));
        }
        let (new, envelope): (Root, _) = parse("root", Root::TYPE, bytes, self.limits.root)?;
        new.validate()?;
        let old = &self.root.signed;
        let r = old.role("root")?;
        envelope.verify(
            "root (by the trusted root's keys)",
            &r.keyids,
            r.threshold,
            &old.keys,
        )?;
        let expected = old
            .version
            .checked_add(1)
            .ok_or_else(|| Error::policy("root", "version overflow"))?;
        if new.version != expected {
            return Err(Error::Version {
                role: "root".into(),
                found: new.version,
                expected: expected.to_string(),
            });
        }
        let r = new.role("root")?;
        envelope.verify("root (by its own keys)", &r.keyids, r.threshold, &new.keys)?;
        self.root = Verified {
            signed: new,
            envelope,
        };
        Ok(())
    }

    /// Load a new timestamp. An older version is a rollback; the same version keeps the
    /// trusted one. An expired timestamp is kept (for rollback checks) but reported.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<Update> {
        if self.snapshot.is_some() {
            return Err(Error::policy(
                "timestamp",
                "cannot update timestamp after snapshot",
            ));
        }
        check_expiry("root", self.root.signed.expires, self.now)?;
        let (new, envelope): (Timestamp, _) =
            parse("timestamp", Timestamp::TYPE, bytes, self.limits.timestamp)?;
        let r = self.root.signed.role("timestamp")?;
        envelope.verify("timestamp", &r.keyids, r.threshold, &self.root.signed.keys)?;
        new.validate()?;
        if let Some(cur) = &self.timestamp {
            let cur = &cur.signed;
            if new.version < cur.version {
                return Err(Error::Version {
                    role: "timestamp".into(),
                    found: new.version,
                    expected: format!(">= {}", cur.version),
                });
            }
            if new.version == cur.version {
                return Ok(Update::Unchanged);
            }
            let (nv, cv) = (new.snapshot_meta()?.version, cur.snapshot_meta()?.version);
            if nv < cv {
                return Err(Error::Version {
                    role: "timestamp's snapshot.json".into(),
                    found: nv,
                    expected: format!(">= {cv}"),
                });
            }
        }
        let expires = new.expires;
        self.timestamp = Some(Verified {
            signed: new,
            envelope,
        });
        check_expiry("timestamp", expires, self.now)?;
        Ok(Update::Replaced)
    }

    fn final_timestamp(&self) -> Result<&Timestamp> {
        let t = &self
            .timestamp
            .as_ref()
            .ok_or_else(|| Error::policy("snapshot", "timestamp not loaded"))?
            .signed;
        check_expiry("timestamp", t.expires, self.now)?;
        Ok(t)
    }

    /// Load a snapshot. `trusted` skips the length/hash check, for a snapshot read back from
    /// local storage (the timestamp's hashes describe the newest remote one).
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted: bool) -> Result<()> {
        if !self.targets.is_empty() {
            return Err(Error::policy(
                "snapshot",
                "cannot update snapshot after targets",
            ));
        }
        let meta = self.final_timestamp()?.snapshot_meta()?.clone();
        if !trusted {
            check_meta("snapshot", &meta, bytes)?;
        }
        // The local copy (`trusted`) is the rollback reference whatever the new timestamp says
        // about the next snapshot's length: bounded by the ceiling, never by that length (a
        // forged timestamp naming a shorter snapshot must not make the reference unreadable).
        let limit = if trusted {
            self.limits.signed_ceiling.max(self.limits.snapshot)
        } else {
            self.limits.bound(self.limits.snapshot, meta.length)
        };
        let (new, envelope): (Snapshot, _) = parse("snapshot", Snapshot::TYPE, bytes, limit)?;
        let r = self.root.signed.role("snapshot")?;
        envelope.verify("snapshot", &r.keyids, r.threshold, &self.root.signed.keys)?;
        new.validate()?;
        if let Some(cur) = &self.snapshot {
            for (name, old) in &cur.signed.meta {
                match new.meta.get(name) {
                    None => {
                        return Err(Error::policy(
                            "snapshot",
                            format!("{name} was removed from the snapshot"),
                        ))
                    }
                    Some(m) if m.version < old.version => {
                        return Err(Error::Version {
                            role: format!("snapshot's {name}"),
                            found: m.version,
                            expected: format!(">= {}", old.version),
                        })
                    }
                    Some(_) => {}
                }
            }
        }
        self.snapshot = Some(Verified {
            signed: new,
            envelope,
        });
        self.final_snapshot().map(|_| ())
    }

    fn final_snapshot(&self) -> Result<&Snapshot> {
        let s = &self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::policy("targets", "snapshot not loaded"))?
            .signed;
        check_expiry("snapshot", s.expires, self.now)?;
        let want = self.final_timestamp()?.snapshot_meta()?.version;
        if s.version != want {
            return Err(Error::Version {
                role: "snapshot".into(),
                found: s.version,
                expected: format!("{want} (as the timestamp lists)"),
            });
        }
        Ok(s)
    }

    /// Load the top-level targets.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<()> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Load targets role `role`, delegated by `parent` ("root" for the top-level targets).
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        parent: &str,
    ) -> Result<()> {
        let meta = self
            .final_snapshot()?
            .meta
            .get(&format!("{role}.json"))
            .cloned()
            .ok_or_else(|| Error::Missing {
                what: format!("{role}.json"),
                detail: "not listed in the snapshot".into(),
            })?;
        check_meta(role, &meta, bytes)?;
        let limit = self.limits.bound(self.limits.targets, meta.length);
        let (new, envelope): (Targets, _) = parse(role, Targets::TYPE, bytes, limit)?;
        let signer = self.signer_of(role, parent)?;
        envelope.verify(role, &signer.keyids, signer.threshold, &signer.keys)?;
        new.validate(role)?;
        if new.version != meta.version {
            return Err(Error::Version {
                role: role.into(),
                found: new.version,
                expected: format!("{} (as the snapshot lists)", meta.version),
            });
        }
        check_expiry(role, new.expires, self.now)?;
        self.targets.insert(
            role.into(),
            Verified {
                signed: new,
                envelope,
            },
        );
        Ok(())
    }

    /// Check targets role `role`, already loaded (through whichever parent reached it first),
    /// against the delegation of `parent`, through which a search reaches it now. A role
    /// delegated by several roles is trusted on a path only if it is signed by a threshold of
    /// *that* path's delegation: reusing it by name would let one delegator's keys speak for
    /// another's.
    pub fn verify_delegated_targets(&self, role: &str, parent: &str) -> Result<()> {
        let loaded = self.targets.get(role).ok_or_else(|| Error::Missing {
            what: role.into(),
            detail: "not loaded, so there is nothing to check".into(),
        })?;
        let signer = self.signer_of(role, parent)?;
        loaded.envelope.verify(
            &format!("{role} (delegated by {parent})"),
            &signer.keyids,
            signer.threshold,
            &signer.keys,
        )?;
        Ok(())
    }

    /// Load one of the project's extra snapshot-listed roles (`regulators`, `review`): checked
    /// against the snapshot entry, signed by the threshold of `role` in root, not expired.
    pub fn verify_extra_role<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        role: &str,
        type_: &str,
        expires: impl Fn(&T) -> DateTime,
        version: impl Fn(&T) -> u64,
    ) -> Result<Verified<T>> {
        let meta = self
            .final_snapshot()?
            .meta
            .get(&format!("{role}.json"))
            .cloned()
            .ok_or_else(|| Error::Missing {
                what: format!("{role}.json"),
                detail: "not listed in the snapshot".into(),
            })?;
        check_meta(role, &meta, bytes)?;
        let limit = self.limits.bound(self.limits.targets, meta.length);
        let (new, envelope): (T, _) = parse(role, type_, bytes, limit)?;
        let r = self.root.signed.role(role)?;
        envelope.verify(role, &r.keyids, r.threshold, &self.root.signed.keys)?;
        if version(&new) != meta.version {
            return Err(Error::Version {
                role: role.into(),
                found: version(&new),
                expected: format!("{} (as the snapshot lists)", meta.version),
            });
        }
        check_expiry(role, expires(&new), self.now)?;
        Ok(Verified {
            signed: new,
            envelope,
        })
    }
}

/// Who signs a targets role's documents: its keys, threshold, and (for a tier-2 delegation)
/// the hardware ids its images are restricted to. Image manifests are checked against it.
#[derive(Clone, Debug)]
pub struct RoleSigner {
    pub role: String,
    pub keys: BTreeMap<crate::KeyId, crate::Key>,
    pub keyids: Vec<crate::KeyId>,
    pub threshold: u32,
    pub hardware_ids: Option<Vec<String>>,
}

impl TrustedSet {
    /// The signer of targets role `role` as delegated by `parent`: the root's keys for the
    /// top-level "targets" (`parent` "root"), otherwise `parent`'s delegation of `role`, which
    /// must be loaded. Always the parent on the path a search took: a role delegated by two
    /// roles has two signers, and the one that counts is the one the target was reached through.
    pub fn signer_of(&self, role: &str, parent: &str) -> Result<RoleSigner> {
        if parent == "root" {
            let root = &self.root.signed;
            let r = root.role(role)?;
            return Ok(RoleSigner {
                role: role.into(),
                keys: root.keys.clone(),
                keyids: r.keyids.clone(),
                threshold: r.threshold,
                hardware_ids: None,
            });
        }
        let p = self.targets.get(parent).ok_or_else(|| Error::Missing {
            what: parent.into(),
            detail: format!("the delegating role of {role} is not loaded"),
        })?;
        let d = p.signed.delegations.as_ref().ok_or_else(|| {
            Error::policy(
                parent,
                format!("has no delegations, so cannot delegate {role}"),
            )
        })?;
        let dr = d
            .role(role)
            .ok_or_else(|| Error::policy(parent, format!("does not delegate {role}")))?;
        Ok(RoleSigner {
            role: role.into(),
            keys: d.keys.clone(),
            keyids: dr.keyids,
            threshold: dr.threshold,
            hardware_ids: p.signed.hardware_ids_for(role).map(<[String]>::to_vec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_meta;
    use crate::roles::MetaFile;
    use sha2::{Digest, Sha256, Sha512};
    use std::collections::BTreeMap;

    fn meta(hashes: &[(&str, String)]) -> MetaFile {
        MetaFile {
            version: 1,
            length: Some(3),
            hashes: Some(
                hashes
                    .iter()
                    .map(|(a, h)| (a.to_string(), h.clone()))
                    .collect::<BTreeMap<_, _>>(),
            ),
        }
    }

    #[test]
    fn every_listed_hash_the_client_supports_is_checked() {
        let s256 = hex::encode(Sha256::digest(b"abc"));
        let s512 = hex::encode(Sha512::digest(b"abc"));
        let wrong512 = hex::encode([0u8; 64]);
        assert!(check_meta("m", &meta(&[("sha256", s256.clone())]), b"abc").is_ok());
        assert!(check_meta("m", &meta(&[("sha512", s512.clone())]), b"abc").is_ok());
        assert!(check_meta(
            "m",
            &meta(&[("sha256", s256.clone()), ("sha512", s512.clone())]),
            b"abc"
        )
        .is_ok());
        // A right SHA-256 does not excuse a wrong SHA-512.
        assert!(check_meta(
            "m",
            &meta(&[("sha256", s256.clone()), ("sha512", wrong512)]),
            b"abc"
        )
        .is_err());
        // Unknown algorithms beside a supported one are ignored; alone, refused.
        assert!(check_meta(
            "m",
            &meta(&[("sha256", s256), ("blake2b", "00".into())]),
            b"abc"
        )
        .is_ok());
        assert!(check_meta("m", &meta(&[("blake2b", "00".into())]), b"abc").is_err());
    }
}
