use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<KeyId, Key>,
    /// Explicit delegations (absent when `succinct_roles` is used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<DelegatedRole>,
    /// TAP 15 succinct hash-bin delegations, which some TUF tooling writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// TAP 15: `2^bit_length` bins named `NAME_PREFIX-HEX`, all signed by the same keys; a target
/// belongs to the bin given by the first `bit_length` bits of the SHA-256 of its path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
    pub bit_length: u32,
    pub name_prefix: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl SuccinctRoles {
    fn width(&self) -> usize {
        self.bit_length.div_ceil(4) as usize
    }

    /// The bin role responsible for `target`.
    pub fn role_for(&self, target: &str) -> String {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(target.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let bin = first.checked_shr(32 - self.bit_length).unwrap_or(0);
        format!("{}-{bin:0width$x}", self.name_prefix, width = self.width())
    }

    /// Whether `name` is one of the bins.
    pub fn is_role(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(&self.name_prefix)
            .and_then(|r| r.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.width()
            && u64::from_str_radix(suffix, 16).is_ok_and(|b| b < (1u64 << self.bit_length))
    }

    fn as_role(&self, name: String) -> DelegatedRole {
        DelegatedRole {
            name,
            keyids: self.keyids.clone(),
            threshold: self.threshold,
            // A target has exactly one bin: nothing else is searched for it.
            terminating: true,
            paths: Some(vec!["*".into()]),
            path_hash_prefixes: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A delegation to another targets role. No extension fields here: other TUF readers (tough)
/// re-serialise delegations to check signatures and would drop them. The project's hardware-id
/// restriction lives in the delegating targets role instead ([`super::Targets`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<KeyId>,
    pub threshold: u32,
    #[serde(default)]
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Delegations {
    pub fn validate(&self, parent: &str) -> Result<()> {
        let mut names = BTreeSet::new();
        for role in &self.roles {
            // Any non-empty name is valid TUF; clients encode names before using them as file
            // names (the stricter alphabet applies only to roles this project creates).
            if role.name.is_empty() || crate::roles::TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                return Err(Error::malformed(
                    parent,
                    format!("delegated role name {:?} is not allowed", role.name),
                ));
            }
            if !names.insert(role.name.as_str()) {
                return Err(Error::malformed(
                    parent,
                    format!("delegated role {:?} listed twice", role.name),
                ));
            }
            if role.threshold == 0 {
                return Err(Error::malformed(
                    parent,
                    format!("delegated role {:?} has threshold 0", role.name),
                ));
            }
            if role.paths.is_some() == role.path_hash_prefixes.is_some() {
                return Err(Error::malformed(
                    parent,
                    format!(
                        "delegated role {:?} must have exactly one of paths and path_hash_prefixes",
                        role.name
                    ),
                ));
            }
        }
        if let Some(sr) = &self.succinct_roles {
            if !self.roles.is_empty() {
                return Err(Error::malformed(
                    parent,
                    "delegations have both roles and succinct_roles",
                ));
            }
            if !(1..=32).contains(&sr.bit_length) || sr.threshold == 0 {
                return Err(Error::malformed(
                    parent,
                    "succinct_roles: bit_length must be 1..=32, threshold >= 1",
                ));
            }
        }
        Ok(())
    }

    /// The delegation to role `name` (a listed role, or a succinct bin).
    pub fn role(&self, name: &str) -> Option<DelegatedRole> {
        if let Some(r) = self.roles.iter().find(|r| r.name == name) {
            return Some(r.clone());
        }
        self.succinct_roles
            .as_ref()
            .filter(|s| s.is_role(name))
            .map(|s| s.as_role(name.to_string()))
    }

    /// The roles that may list `target`, in search order.
    pub fn delegated_for(&self, target: &str) -> Vec<DelegatedRole> {
        let mut out: Vec<DelegatedRole> = self
            .roles
            .iter()
            .filter(|r| r.matches(target))
            .cloned()
            .collect();
        if let Some(s) = &self.succinct_roles {
            out.push(s.as_role(s.role_for(target)));
        }
        out
    }
}

impl DelegatedRole {
    /// Whether this delegation covers `target` (TUF's path patterns or hash prefixes).
    pub fn matches(&self, target: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| glob_match(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            use sha2::{Digest, Sha256};
            let h = hex::encode(Sha256::digest(target.as_bytes()));
            return prefixes.iter().any(|p| h.starts_with(p.as_str()));
        }
        false
    }
}

/// TUF path pattern matching: `*` matches any run of characters except `/`, `?` one character
/// except `/`; everything else literally. Patterns and names must have the same number of path
/// segments. Iterative with backtracking, so no recursion depth to exhaust.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == n[ni] && p[pi] != '*' || p[pi] == '?' && n[ni] != '/') {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star swallow one more character, unless that is a separator.
            if n[sn] == '/' {
                return false;
            }
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn succinct_bins() {
        let s = super::SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 5,
            name_prefix: "bin".into(),
            extra: Default::default(),
        };
        let r = s.role_for("some/target.bin");
        assert!(
            r.starts_with("bin-") && r.len() == 6 && s.is_role(&r),
            "{r}"
        );
        assert!(!s.is_role("bin-20"), "5 bits: 0x00..=0x1f");
        assert!(!s.is_role("bin-1"), "width 2");
        assert!(!s.is_role("other-01"));
        let s1 = super::SuccinctRoles {
            bit_length: 32,
            ..s
        };
        assert_eq!(s1.role_for("x").len(), "bin-".len() + 8);
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_match("*", "a.bin"));
        assert!(!glob_match("*", "dir/a.bin"));
        assert!(glob_match("dir/*", "dir/a.bin"));
        assert!(glob_match("*/*.bin", "dir/a.bin"));
        assert!(!glob_match("dir/*", "dir/sub/a.bin"));
        assert!(glob_match("brake-*-1.?.bin", "brake-ctl-1.2.bin"));
        assert!(!glob_match("brake-*", "abs-1"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("", ""));
        assert!(!glob_match("?", ""));
    }
}
