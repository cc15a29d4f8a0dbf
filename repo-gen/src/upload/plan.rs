//! What an upload sends, in which order, with which cache rules: pure functions of the local
//! tree and the remote listing, so the order that keeps a CDN safe is tested without a store.
//!
//! The order is the one that keeps every published state whole:
//! 1. content-addressed files (`targets/HASH.name`, `wraps/HASH.bin`, vehicle-tree nodes
//!    `PREFIX.HASH.json`) and versioned metadata (`N.role.json`, the root chain included):
//!    new names that nothing served refers to yet;
//! 2. `root.json` (the newest root, for first-time readers; its versioned copy is already up);
//! 3. `timestamp.json`, alone and last: once it lands, everything it leads to is in place.
//!
//! A failure or a kill at any point leaves `timestamp.json` naming the previous snapshot, whose
//! files were never touched; the next run sends what is missing and then the timestamp.

use std::collections::BTreeMap;

/// Immutable files: cached for a year.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Files not covered by a rule (none in trees `ota-repo` writes).
pub const OTHER: &str = "public, max-age=300";
/// Default `max-age` of `timestamp.json` and `root.json`: far under a timestamp's lifetime
/// (1 day by default), so a cache cannot hide a release for long nor outlast the expiry.
pub const DEFAULT_SHORT_MAX_AGE: u64 = 60;

/// What kind of file a published name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Content-addressed (the name holds the content's hash): written once, never changed.
    Immutable,
    /// Versioned metadata (`N.role.json`, the root chain included): written once; a store
    /// that holds the name keeps its bytes, never replaced by other ones (the content check
    /// before planning refuses a tree that would need it).
    Versioned,
    /// `root.json`: replaced by each root rotation.
    Root,
    /// `timestamp.json`: replaced by each publish; goes last.
    Timestamp,
    /// Anything else: uploaded with the immutable files, cached briefly.
    Other,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The kind of the file at `name` (a `/`-separated path relative to the tree).
pub fn kind(name: &str) -> Kind {
    let base = name.rsplit('/').next().unwrap_or(name);
    if name == "timestamp.json" {
        return Kind::Timestamp;
    }
    if name == "root.json" {
        return Kind::Root;
    }
    // N.role.json
    if let Some((n, rest)) = base.split_once('.') {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && rest.ends_with(".json") {
            return Kind::Versioned;
        }
    }
    // targets/HASH.name, wraps/HASH.bin
    if (name.starts_with("targets/") || name.starts_with("wraps/"))
        && base.split_once('.').is_some_and(|(h, _)| is_hex64(h))
    {
        return Kind::Immutable;
    }
    // vehicle-tree nodes: PREFIX.HASH.json
    if let Some(stem) = base.strip_suffix(".json") {
        if stem.rsplit_once('.').is_some_and(|(_, h)| is_hex64(h)) {
            return Kind::Immutable;
        }
    }
    Kind::Other
}

/// The `Cache-Control` of a file of kind `k`.
pub fn cache_control(k: Kind, short_max_age: u64) -> String {
    match k {
        Kind::Immutable | Kind::Versioned => IMMUTABLE.into(),
        Kind::Root | Kind::Timestamp => format!("public, max-age={short_max_age}"),
        Kind::Other => OTHER.into(),
    }
}

/// The `Content-Type` of `name`.
pub fn content_type(name: &str) -> &'static str {
    if name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// One file to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub name: String,
    pub size: u64,
    pub kind: Kind,
}

/// The files to send, in phases (each phase complete before the next starts), and how many
/// were already in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub phases: Vec<Vec<Send>>,
    pub already: usize,
}

impl Plan {
    pub fn files(&self) -> usize {
        self.phases.iter().map(Vec::len).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.phases.iter().flatten().map(|s| s.size).sum()
    }
}

/// Plan an upload of `local` (name -> size) to a store holding `remote` (name -> size).
/// `same_mutable(name)` says whether a mutable file (`root.json`, `timestamp.json`) the store
/// holds has the local bytes (its name and size cannot tell).
pub fn plan(
    local: &BTreeMap<String, u64>,
    remote: &BTreeMap<String, u64>,
    same_mutable: impl Fn(&str) -> bool,
) -> Plan {
    let mut p = Plan {
        phases: vec![Vec::new(), Vec::new(), Vec::new()],
        already: 0,
    };
    for (name, &size) in local {
        let k = kind(name);
        let present = match k {
            // Named by its hash: the same name and size is the same file (another size is a
            // damaged copy, sent again).
            Kind::Immutable => remote.get(name) == Some(&size),
            // A published version is never replaced: what the local tree reaches was checked
            // to be the same bytes; an older local version that differs is the store's now.
            Kind::Versioned => remote.contains_key(name),
            Kind::Root | Kind::Timestamp | Kind::Other => {
                remote.get(name) == Some(&size) && same_mutable(name)
            }
        };
        if present {
            p.already += 1;
            continue;
        }
        let phase = match k {
            Kind::Immutable | Kind::Versioned | Kind::Other => 0,
            Kind::Root => 1,
            Kind::Timestamp => 2,
        };
        p.phases[phase].push(Send {
            name: name.clone(),
            size,
            kind: k,
        });
    }
    p.phases.retain(|ph| !ph.is_empty());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_as_the_nginx_rules_do() {
        let h = "ab".repeat(32);
        assert_eq!(kind("timestamp.json"), Kind::Timestamp);
        assert_eq!(kind("root.json"), Kind::Root);
        assert_eq!(kind("12.snapshot.json"), Kind::Versioned);
        assert_eq!(kind("1.root.json"), Kind::Versioned);
        assert_eq!(kind("3.brakes-tier2.json"), Kind::Versioned);
        assert_eq!(
            kind(&format!("targets/{h}.brake-fw-1.0.bin")),
            Kind::Immutable
        );
        assert_eq!(kind(&format!("wraps/{h}.bin")), Kind::Immutable);
        assert_eq!(kind(&format!("vehicles/tree/0a.{h}.json")), Kind::Immutable);
        assert_eq!(
            kind(&format!("vehicles/tree/root.{h}.json")),
            Kind::Immutable
        );
        assert_eq!(kind("targets/brake-fw-1.0.bin"), Kind::Other);
        assert_eq!(kind("snapshot.json"), Kind::Other);
        assert_eq!(kind("x/timestamp.json"), Kind::Other);
        assert_eq!(cache_control(Kind::Timestamp, 30), "public, max-age=30");
        assert_eq!(cache_control(Kind::Immutable, 30), IMMUTABLE);
        assert_eq!(content_type("1.root.json"), "application/json");
        assert_eq!(content_type("targets/x.bin"), "application/octet-stream");
    }

    #[test]
    fn timestamp_goes_alone_and_last_and_only_what_is_missing_is_sent() {
        let h = "cd".repeat(32);
        let local: BTreeMap<String, u64> = [
            ("timestamp.json", 10),
            ("root.json", 20),
            ("1.root.json", 20),
            ("2.snapshot.json", 30),
            ("1.snapshot.json", 31),
            (&*format!("targets/{h}.fw.bin"), 40),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        // Nothing remote: three phases, the timestamp alone in the last.
        let p = plan(&local, &BTreeMap::new(), |_| false);
        assert_eq!(p.phases.len(), 3);
        assert_eq!(p.phases[2].len(), 1);
        assert_eq!(p.phases[2][0].name, "timestamp.json");
        assert_eq!(p.phases[1][0].name, "root.json");
        assert_eq!(p.files(), 6);
        // The previous state uploaded: only the new snapshot and the timestamp.
        let mut remote = local.clone();
        remote.remove("2.snapshot.json");
        remote.insert("timestamp.json".into(), 10);
        let p = plan(&local, &remote, |n| n == "root.json");
        let names: Vec<&str> = p.phases.iter().flatten().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["2.snapshot.json", "timestamp.json"]);
        assert_eq!(p.already, 4);
        // A content-addressed file of another size remote (a damaged copy) is sent again; a
        // published version of another size is never replaced.
        remote.insert("1.snapshot.json".into(), 5);
        remote.insert(format!("targets/{h}.fw.bin"), 4);
        let p = plan(&local, &remote, |_| true);
        let names: Vec<&str> = p.phases.iter().flatten().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["2.snapshot.json", &*format!("targets/{h}.fw.bin")]);
    }
}
