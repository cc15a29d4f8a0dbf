//! Building a root document from the role settings, shared by every publisher.

use crate::error::{Error, Result};
use crate::workdir::RoleConfig;
use ota_metadata::roles::{RoleKeys, Root, SPEC_VERSION, TOP_LEVEL_ROLES};
use ota_metadata::{DateTime, Key, KeyId, SigningKey};
use std::collections::{BTreeMap, BTreeSet};

/// Default lifetimes: long for root, short for timestamp (it is what proves freshness).
pub fn default_expiry(role: &str) -> &'static str {
    match role {
        "root" => "365d",
        "timestamp" => "1d",
        "snapshot" => "7d",
        _ => "90d",
    }
}

/// Check that a role's threshold can be met by its keys.
pub fn check_threshold(role: &str, rc: &RoleConfig, keys: usize) -> Result<()> {
    if rc.threshold == 0 {
        return Err(Error::refused(format!(
            "role {role}: threshold must be at least 1"
        )));
    }
    if rc.threshold as usize > keys {
        return Err(Error::refused(format!(
            "role {role}: threshold {} but only {keys} distinct key(s)",
            rc.threshold
        )));
    }
    Ok(())
}

/// Root `version` listing the public keys of every role in `roles`.
pub fn build_root(
    roles: &BTreeMap<String, RoleConfig>,
    version: u64,
    now: DateTime,
) -> Result<Root> {
    let mut keys: BTreeMap<KeyId, Key> = BTreeMap::new();
    let mut role_keys = BTreeMap::new();
    let mut extra_roles = BTreeMap::new();
    for (name, rc) in roles {
        let mut ids = BTreeSet::new();
        for k in rc.load_keys(name)? {
            ids.insert(k.key_id().clone());
            keys.insert(k.key_id().clone(), k.public().clone());
        }
        check_threshold(name, rc, ids.len())?;
        let rk = RoleKeys {
            keyids: ids.into_iter().collect(),
            threshold: rc.threshold,
        };
        // TUF's four roles in `roles`, any other (the OEM's online roles) in the extension
        // standard readers accept.
        if TOP_LEVEL_ROLES.contains(&name.as_str()) {
            role_keys.insert(name.clone(), rk);
        } else {
            extra_roles.insert(name.clone(), rk);
        }
    }
    let lifetime = roles
        .get("root")
        .ok_or_else(|| Error::refused("no root role configured"))?
        .lifetime()?;
    let root = Root {
        type_: Root::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: now.plus_seconds(lifetime),
        keys,
        roles: role_keys,
        extra_roles,
        extra: BTreeMap::new(),
    };
    root.validate()?;
    Ok(root)
}

/// Load `role`'s keys and check each is one the root lists for it, so a wrong key file is
/// caught here rather than by every client.
pub fn signing_keys(root: &Root, role: &str, rc: &RoleConfig) -> Result<Vec<SigningKey>> {
    let listed = root.role(role)?;
    let keys = rc.load_keys(role)?;
    for k in &keys {
        if !listed.keyids.contains(k.key_id()) {
            return Err(Error::refused(format!(
                "key {} (file for role {role}) is not a {role} key of root version {}",
                k.key_id(),
                root.version
            )));
        }
    }
    Ok(keys)
}
