//! The TUF update rules of `TrustedSet`, on documents built in memory.

mod common;
use common::keys;
use ota_metadata::roles::{MetaFile, RoleKeys, Root, SPEC_VERSION};
use ota_metadata::{
    sign_document, DateTime, Error, MetadataLimits, SigningKey, TrustedSet, Update,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn now() -> DateTime {
    DateTime(NOW)
}

fn root(version: u64, root_key: &SigningKey, other: &SigningKey, expires: i64) -> Root {
    let mut keys = BTreeMap::new();
    for k in [root_key, other] {
        keys.insert(k.key_id().clone(), k.public().clone());
    }
    let role = |k: &SigningKey| RoleKeys {
        keyids: vec![k.key_id().clone()],
        threshold: 1,
    };
    Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: DateTime(expires),
        keys,
        roles: BTreeMap::from([
            ("root".into(), role(root_key)),
            ("timestamp".into(), role(other)),
            ("snapshot".into(), role(other)),
            ("targets".into(), role(other)),
        ]),
        extra_roles: BTreeMap::new(),
        extra: BTreeMap::new(),
    }
}

fn meta(version: u64, bytes: &[u8]) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": hex::encode(Sha256::digest(bytes))}})
}

fn targets(
    version: u64,
    expires: i64,
    k: &SigningKey,
    delegate_to: Option<&SigningKey>,
) -> Vec<u8> {
    let mut t = json!({"_type": "targets", "spec_version": SPEC_VERSION, "version": version,
        "expires": DateTime(expires).to_string(), "targets": {}});
    if let Some(d) = delegate_to {
        t["delegations"] = json!({
            "keys": {d.key_id().0.clone(): d.public()},
            "roles": [{"name": "tier2", "keyids": [d.key_id()], "threshold": 1, "terminating": false, "paths": ["*"]}]
        });
    }
    sign_document(&t, &[k]).unwrap()
}

fn snapshot(version: u64, expires: i64, k: &SigningKey, m: Value) -> Vec<u8> {
    sign_document(
        &json!({"_type": "snapshot", "spec_version": SPEC_VERSION, "version": version,
        "expires": DateTime(expires).to_string(), "meta": m}),
        &[k],
    )
    .unwrap()
}

fn timestamp(version: u64, expires: i64, k: &SigningKey, snap: Value) -> Vec<u8> {
    sign_document(
        &json!({"_type": "timestamp", "spec_version": SPEC_VERSION, "version": version,
        "expires": DateTime(expires).to_string(), "meta": {"snapshot.json": snap}}),
        &[k],
    )
    .unwrap()
}

fn set_with_root() -> (TrustedSet, &'static SigningKey, &'static SigningKey) {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW + 365 * DAY), &[rk]).unwrap();
    (
        TrustedSet::new(&r, now(), MetadataLimits::default()).unwrap(),
        rk,
        ok,
    )
}

#[test]
fn full_walk_top_level_and_delegated() {
    let (mut set, _, k) = set_with_root();
    let tier2 = &keys()[2];
    let t = targets(1, NOW + DAY, k, Some(tier2));
    let d = targets(1, NOW + DAY, tier2, None);
    let s = snapshot(
        1,
        NOW + DAY,
        k,
        json!({"targets.json": meta(1, &t), "tier2.json": meta(1, &d)}),
    );
    let ts = timestamp(1, NOW + DAY, k, meta(1, &s));
    assert_eq!(set.update_timestamp(&ts).unwrap(), Update::Replaced);
    set.update_snapshot(&s, false).unwrap();
    set.update_targets(&t).unwrap();
    set.update_delegated_targets(&d, "tier2", "targets")
        .unwrap();
    assert_eq!(set.targets("tier2").unwrap().raw(), d.as_slice());
    // The delegated role signed by the wrong key is refused.
    let (mut set2, _, _) = set_with_root();
    let bad = targets(1, NOW + DAY, k, None);
    let s2 = snapshot(
        1,
        NOW + DAY,
        k,
        json!({"targets.json": meta(1, &t), "tier2.json": meta(1, &bad)}),
    );
    set2.update_timestamp(&timestamp(1, NOW + DAY, k, meta(1, &s2)))
        .unwrap();
    set2.update_snapshot(&s2, false).unwrap();
    set2.update_targets(&t).unwrap();
    assert!(matches!(
        set2.update_delegated_targets(&bad, "tier2", "targets"),
        Err(Error::Threshold { .. })
    ));
}

/// Scenario: Root rotation | a new root signed by only the old or only the new keys, a skipped version, a replayed root | refused
#[test]
fn root_rotation_needs_old_and_new_signatures_and_next_version() {
    let (mut set, rk, ok) = set_with_root();
    let new_rk = &keys()[3];
    let r2 = root(2, new_rk, ok, NOW + 365 * DAY);
    // Signed only by the new key: the trusted root's threshold is not met.
    let only_new = sign_document(&r2, &[new_rk]).unwrap();
    assert!(matches!(
        set.update_root(&only_new),
        Err(Error::Threshold { .. })
    ));
    // Signed only by the old key: the new root's own threshold is not met.
    let only_old = sign_document(&r2, &[rk]).unwrap();
    assert!(matches!(
        set.update_root(&only_old),
        Err(Error::Threshold { .. })
    ));
    // Skipping a version.
    let r3 = sign_document(&root(3, new_rk, ok, NOW + DAY), &[rk, new_rk]).unwrap();
    assert!(matches!(
        set.update_root(&r3),
        Err(Error::Version { found: 3, .. })
    ));
    let both = sign_document(&r2, &[rk, new_rk]).unwrap();
    set.update_root(&both).unwrap();
    assert_eq!(set.root().signed.version, 2);
    // Replaying the old root: signed by the old key only, it fails the trusted root's
    // threshold first.
    let r1 = sign_document(&root(1, rk, ok, NOW + DAY), &[rk]).unwrap();
    assert!(matches!(set.update_root(&r1), Err(Error::Threshold { .. })));
    // A root of an old version that every threshold accepts (signed by the trusted key) must
    // still be refused, by the version rule itself: neither older nor the same version again.
    for v in [1, 2] {
        let replay = sign_document(&root(v, new_rk, ok, NOW + DAY), &[new_rk]).unwrap();
        assert!(
            matches!(set.update_root(&replay), Err(Error::Version { found, .. }) if found == v),
            "version {v}"
        );
    }
    assert_eq!(set.root().signed.version, 2);
}

#[test]
fn expired_root_is_refused_before_timestamp() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW - 1), &[rk]).unwrap();
    let mut set = TrustedSet::new(&r, now(), MetadataLimits::default()).unwrap();
    let ts = timestamp(1, NOW + DAY, ok, json!({"version": 1}));
    assert!(matches!(
        set.update_timestamp(&ts),
        Err(Error::Expired { .. })
    ));
}

/// Scenario: Rollback | a lower timestamp version, or a newer timestamp naming an older snapshot | refused (version error)
#[test]
fn timestamp_rollback_equal_and_expiry() {
    let (mut set, _, k) = set_with_root();
    set.update_timestamp(&timestamp(5, NOW + DAY, k, json!({"version": 5})))
        .unwrap();
    assert_eq!(
        set.update_timestamp(&timestamp(5, NOW + DAY, k, json!({"version": 5})))
            .unwrap(),
        Update::Unchanged
    );
    assert!(matches!(
        set.update_timestamp(&timestamp(4, NOW + DAY, k, json!({"version": 9}))),
        Err(Error::Version { found: 4, .. })
    ));
    // Newer timestamp but older snapshot version: rollback of the snapshot.
    assert!(matches!(
        set.update_timestamp(&timestamp(6, NOW + DAY, k, json!({"version": 4}))),
        Err(Error::Version { found: 4, .. })
    ));
    assert!(matches!(
        set.update_timestamp(&timestamp(7, NOW - 1, k, json!({"version": 7}))),
        Err(Error::Expired { .. })
    ));
}

/// The rollback checks refuse only what goes back: a newer timestamp naming the same
/// snapshot version, and a later snapshot listing the same versions (or newer), are taken
/// (mutation testing found "not below" held only as "above" by no test).
#[test]
fn a_newer_timestamp_or_snapshot_that_keeps_a_version_is_not_a_rollback() {
    let (mut set, _, k) = set_with_root();
    set.update_timestamp(&timestamp(5, NOW + DAY, k, json!({"version": 5})))
        .unwrap();
    assert_eq!(
        set.update_timestamp(&timestamp(6, NOW + DAY, k, json!({"version": 5})))
            .unwrap(),
        Update::Replaced
    );

    let mut set = set_with_root().0;
    set.update_timestamp(&timestamp(1, NOW + DAY, k, json!({"version": 3})))
        .unwrap();
    let held = snapshot(
        3,
        NOW + DAY,
        k,
        json!({"targets.json": {"version": 1}, "extra.json": {"version": 2}}),
    );
    set.update_snapshot(&held, true).unwrap();
    let same = snapshot(
        3,
        NOW + DAY,
        k,
        json!({"targets.json": {"version": 1}, "extra.json": {"version": 2}}),
    );
    set.update_snapshot(&same, true).unwrap();
    let newer = snapshot(
        3,
        NOW + DAY,
        k,
        json!({"targets.json": {"version": 2}, "extra.json": {"version": 2}}),
    );
    set.update_snapshot(&newer, true).unwrap();
    assert_eq!(
        set.snapshot().unwrap().signed.meta["targets.json"].version,
        2
    );
}

#[test]
fn snapshot_hash_version_and_removal_checks() {
    let (mut set, _, k) = set_with_root();
    let t = targets(1, NOW + DAY, k, None);
    let s = snapshot(
        3,
        NOW + DAY,
        k,
        json!({"targets.json": meta(1, &t), "extra.json": {"version": 2}}),
    );
    // Hash mismatch: the timestamp describes different bytes.
    let other = snapshot(3, NOW + DAY, k, json!({"targets.json": {"version": 1}}));
    let mut set_b = set_with_root().0;
    set_b
        .update_timestamp(&timestamp(1, NOW + DAY, k, meta(3, &other)))
        .unwrap();
    assert!(matches!(
        set_b.update_snapshot(&s, false),
        Err(Error::Length { .. } | Error::Hash { .. })
    ));
    // Version differs from what the timestamp lists.
    set.update_timestamp(&timestamp(1, NOW + DAY, k, json!({"version": 4})))
        .unwrap();
    assert!(matches!(
        set.update_snapshot(&s, false),
        Err(Error::Version { found: 3, .. })
    ));

    // A later snapshot may not drop or roll back an entry.
    let mut set = set_with_root().0;
    set.update_timestamp(&timestamp(1, NOW + DAY, k, json!({"version": 3})))
        .unwrap();
    set.update_snapshot(&s, true).unwrap();
    let dropped = snapshot(3, NOW + DAY, k, json!({"targets.json": {"version": 1}}));
    assert!(matches!(
        set.update_snapshot(&dropped, true),
        Err(Error::Policy { .. })
    ));
    let rolled = snapshot(
        3,
        NOW + DAY,
        k,
        json!({"targets.json": {"version": 1}, "extra.json": {"version": 1}}),
    );
    assert!(matches!(
        set.update_snapshot(&rolled, true),
        Err(Error::Version { found: 1, .. })
    ));
}

#[test]
fn targets_version_must_match_snapshot_and_not_be_expired() {
    let (mut set, _, k) = set_with_root();
    let t2 = targets(2, NOW + DAY, k, None);
    let s = snapshot(1, NOW + DAY, k, json!({"targets.json": {"version": 3}}));
    set.update_timestamp(&timestamp(1, NOW + DAY, k, meta(1, &s)))
        .unwrap();
    set.update_snapshot(&s, false).unwrap();
    assert!(matches!(
        set.update_targets(&t2),
        Err(Error::Version { found: 2, .. })
    ));
    let expired = targets(3, NOW - 10, k, None);
    assert!(matches!(
        set.update_targets(&expired),
        Err(Error::Expired { .. })
    ));
    let ok = targets(3, NOW + 10, k, None);
    set.update_targets(&ok).unwrap();
}

#[test]
fn an_injected_clock_decides_expiry() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW + 365 * DAY), &[rk]).unwrap();
    let ts = timestamp(1, NOW + DAY, ok, json!({"version": 1}));
    let mut early = TrustedSet::new(&r, DateTime(NOW), MetadataLimits::default()).unwrap();
    assert!(early.update_timestamp(&ts).is_ok());
    let mut late = TrustedSet::new(&r, DateTime(NOW + 2 * DAY), MetadataLimits::default()).unwrap();
    assert!(matches!(
        late.update_timestamp(&ts),
        Err(Error::Expired { .. })
    ));
}

/// Scenario: Endless data | oversized role files | refused per role limit
#[test]
fn size_limits_apply_per_role() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW + DAY), &[rk]).unwrap();
    let limits = MetadataLimits {
        root: r.len() as u64 - 1,
        ..MetadataLimits::default()
    };
    assert!(matches!(
        TrustedSet::new(&r, now(), limits),
        Err(Error::TooLarge { .. })
    ));
    let limits = MetadataLimits {
        timestamp: 10,
        ..MetadataLimits::default()
    };
    let mut set = TrustedSet::new(&r, now(), limits).unwrap();
    let ts = timestamp(1, NOW + DAY, ok, json!({"version": 1}));
    assert!(matches!(
        set.update_timestamp(&ts),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn meta_with_a_wrong_or_no_supported_hash_is_refused_not_skipped() {
    let m = |alg: &str| MetaFile {
        version: 1,
        length: None,
        hashes: Some(BTreeMap::from([(alg.into(), "00".into())])),
    };
    assert!(ota_metadata::trusted_set::check_meta("x", &m("sha512"), b"abc").is_err());
    assert!(ota_metadata::trusted_set::check_meta("x", &m("md5"), b"abc").is_err());
}

/// Scenario: Endless data | a snapshot larger than the default bound, its length signed in the timestamp | accepted up to the hard ceiling, refused above it
#[test]
fn a_signed_length_wins_over_the_default_bound_up_to_the_ceiling() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW + 365 * DAY), &[rk]).unwrap();
    let t = targets(1, NOW + DAY, ok, None);
    let snap = snapshot(1, NOW + DAY, ok, json!({"targets.json": meta(1, &t)}));
    let ts = timestamp(1, NOW + DAY, ok, meta(1, &snap));
    let len = snap.len() as u64;
    // The default snapshot bound is below the file, the signed length is its own.
    let limits = MetadataLimits {
        snapshot: len / 2,
        ..MetadataLimits::default()
    };
    let mut set = TrustedSet::new(&r, now(), limits).unwrap();
    set.update_timestamp(&ts).unwrap();
    set.update_snapshot(&snap, false).unwrap();
    // Above the hard ceiling the signed length does not help.
    let limits = MetadataLimits {
        snapshot: len / 2,
        signed_ceiling: len - 1,
        ..MetadataLimits::default()
    };
    let mut set = TrustedSet::new(&r, now(), limits).unwrap();
    set.update_timestamp(&ts).unwrap();
    assert!(matches!(
        set.update_snapshot(&snap, false),
        Err(Error::TooLarge { .. })
    ));
}

/// Scenario: Thresholds | a root listing a key of an unknown type with no `keyval.public` (in a role beside the known keys) | the unknown key is ignored, the known keys still meet the threshold
#[test]
fn a_key_of_an_unknown_type_without_public_is_ignored() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let mut v = serde_json::to_value(root(1, rk, ok, NOW + 365 * DAY)).unwrap();
    v["keys"]["ab".repeat(32)] = json!({"keytype": "sphincs-plus", "scheme": "sphincs-shake-256f", "keyval": {"pk": "00ff"}});
    v["roles"]["root"]["keyids"]
        .as_array_mut()
        .unwrap()
        .push(json!("ab".repeat(32)));
    let r = sign_document(&v, &[rk]).unwrap();
    let mut set = TrustedSet::new(&r, now(), MetadataLimits::default()).unwrap();
    // The unknown key neither signs nor breaks a rotation signed by the known one.
    let t = targets(1, NOW + DAY, ok, None);
    let snap = snapshot(1, NOW + DAY, ok, json!({"targets.json": meta(1, &t)}));
    set.update_timestamp(&timestamp(1, NOW + DAY, ok, meta(1, &snap)))
        .unwrap();
    set.update_snapshot(&snap, false).unwrap();
    set.update_targets(&t).unwrap();
    // It round-trips as listed (no empty `public` added).
    let k: ota_metadata::Key = serde_json::from_value(v["keys"]["ab".repeat(32)].clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&k).unwrap(),
        v["keys"]["ab".repeat(32)]
    );
}

/// Scenario: Rollback | with the online snapshot and timestamp keys, a snapshot shorter than the trusted one, naming an older (still valid) targets version | refused: the trusted snapshot stays the rollback reference whatever length the new timestamp gives
#[test]
fn a_shorter_forged_snapshot_cannot_hide_the_rollback_reference() {
    let (rk, ok) = (&keys()[0], &keys()[1]);
    let r = sign_document(&root(1, rk, ok, NOW + 365 * DAY), &[rk]).unwrap();
    let t3 = targets(3, NOW + DAY, ok, None);
    // The trusted snapshot: targets version 3, with its length and hash (longer).
    let s1 = snapshot(1, NOW + DAY, ok, json!({"targets.json": meta(3, &t3)}));
    let ts1 = timestamp(1, NOW + DAY, ok, meta(1, &s1));
    let mut set = TrustedSet::new(&r, now(), MetadataLimits::default()).unwrap();
    set.update_timestamp(&ts1).unwrap();
    set.update_snapshot(&s1, false).unwrap();
    // The forgery: snapshot 2, shorter (no length or hash), naming targets version 2.
    let s2 = snapshot(2, NOW + DAY, ok, json!({"targets.json": {"version": 2}}));
    assert!(s2.len() < s1.len());
    let ts2 = timestamp(2, NOW + DAY, ok, meta(2, &s2));
    // The next refresh, as the updater runs it: the stored timestamp and snapshot first.
    let mut set = TrustedSet::new(&r, now(), MetadataLimits::default()).unwrap();
    set.update_timestamp(&ts1).unwrap();
    set.update_timestamp(&ts2).unwrap();
    // The stored snapshot is read back as the reference (not the version the timestamp names).
    let _ = set.update_snapshot(&s1, true);
    assert!(matches!(
        set.update_snapshot(&s2, false),
        Err(Error::Version { found: 2, .. })
    ));
}

/// A targets document signed by `k` delegating each `(name, key)` (threshold 1, every path).
fn delegating(k: &SigningKey, delegations: &[(&str, &SigningKey)]) -> Vec<u8> {
    let keys: serde_json::Map<String, Value> = delegations
        .iter()
        .map(|(_, d)| {
            (
                d.key_id().0.clone(),
                serde_json::to_value(d.public()).unwrap(),
            )
        })
        .collect();
    let roles: Vec<Value> = delegations
        .iter()
        .map(|(name, d)| {
            json!({"name": name, "keyids": [d.key_id()], "threshold": 1,
                "terminating": false, "paths": ["*"]})
        })
        .collect();
    sign_document(
        &json!({"_type": "targets", "spec_version": SPEC_VERSION, "version": 1,
            "expires": DateTime(NOW + DAY).to_string(), "targets": {},
            "delegations": {"keys": keys, "roles": roles}}),
        &[k],
    )
    .unwrap()
}

/// A role two roles delegate is trusted on a path only if that path's delegation signed it:
/// `shared`, loaded through `x` (signed by x's delegate), does not verify through `y`, whose
/// delegation names another key; and an extra role's version must be the snapshot's
/// (mutation testing found both held only by the gateway's suites, not by the rules' own).
#[test]
fn a_role_is_checked_against_the_delegation_of_the_path_that_reached_it() {
    let (mut set, _, k) = set_with_root();
    let (kx, ky) = (&keys()[2], &keys()[3]);
    let t = delegating(k, &[("x", kx), ("y", ky)]);
    let x = delegating(kx, &[("shared", kx)]);
    let y = delegating(ky, &[("shared", ky)]);
    let shared = targets(1, NOW + DAY, kx, None);
    let s = snapshot(
        1,
        NOW + DAY,
        k,
        json!({"targets.json": meta(1, &t), "x.json": meta(1, &x), "y.json": meta(1, &y),
            "shared.json": meta(1, &shared)}),
    );
    set.update_timestamp(&timestamp(1, NOW + DAY, k, meta(1, &s)))
        .unwrap();
    set.update_snapshot(&s, false).unwrap();
    set.update_targets(&t).unwrap();
    set.update_delegated_targets(&x, "x", "targets").unwrap();
    set.update_delegated_targets(&y, "y", "targets").unwrap();
    set.update_delegated_targets(&shared, "shared", "x")
        .unwrap();
    set.verify_delegated_targets("shared", "x").unwrap();
    assert!(matches!(
        set.verify_delegated_targets("shared", "y"),
        Err(Error::Threshold { .. })
    ));

    // An extra snapshot-listed role: its version must be the one the snapshot lists.
    let expires = |v: &Value| DateTime::parse(v["expires"].as_str().unwrap()).unwrap();
    let version = |v: &Value| v["version"].as_u64().unwrap();
    set.verify_extra_role::<Value>(&t, "targets", "targets", expires, version)
        .unwrap();
    let (mut other, _, _) = set_with_root();
    let listed_as_2 = snapshot(1, NOW + DAY, k, json!({"targets.json": meta(2, &t)}));
    other
        .update_timestamp(&timestamp(1, NOW + DAY, k, meta(1, &listed_as_2)))
        .unwrap();
    other.update_snapshot(&listed_as_2, false).unwrap();
    assert!(matches!(
        other.verify_extra_role::<Value>(&t, "targets", "targets", expires, version),
        Err(Error::Version { found: 1, .. })
    ));
}
