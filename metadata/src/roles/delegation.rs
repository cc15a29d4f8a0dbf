use crate::error::{Error, Result};
use crate::keys::{Key, KeyId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<KeyId, Key>,
    pub roles: Vec<DelegatedRole>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
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
        Ok(())
    }

    pub fn role(&self, name: &str) -> Option<&DelegatedRole> {
        self.roles.iter().find(|r| r.name == name)
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
