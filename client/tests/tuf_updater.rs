//! The TUF client workflow against real supplier trees written by `ota_repo`, served from disk
//! (`DirFetcher`) and over HTTP (`HttpFetcher` against a tiny server in the test), including
//! the attacks the TUF specification names: rollback, freeze, mix-and-match, endless data,
//! arbitrary software (wrong target bytes), fast-forward.

mod common;

use common::http::{Reply, Server};
use common::{files, image_bytes, image_name, Endless, Recorder, Tree};
use ota_client::tuf::{CaRoots, DirFetcher, Error, Fetch, FetchError, Found, HttpFetcher, Limits};
use ota_metadata::{sign_document, Envelope};

const BRAKE: &str = "brake-fw-1.0.0.bin";

fn top_level() -> Vec<String> {
    [
        "root.json",
        "snapshot.json",
        "targets.json",
        "timestamp.json",
    ]
    .map(String::from)
    .to_vec()
}

fn version_error(e: &Error, role: &str) -> bool {
    matches!(e, Error::Metadata { source: ota_metadata::Error::Version { role: r, .. }, .. } if r == role)
}

#[test]
fn fresh_refresh_then_lookup_and_download_byte_for_byte() {
    let tree = Tree::new();
    let mut up = tree.updater("meta");
    up.refresh().expect("refresh");
    let t = up.trusted();
    assert_eq!(t.root().signed.version, 1);
    assert_eq!(
        t.timestamp().unwrap().signed.version,
        tree.version("timestamp")
    );
    assert_eq!(
        t.snapshot().unwrap().signed.version,
        tree.version("snapshot")
    );

    let Found { info, role, .. } = up.get_targetinfo(BRAKE).unwrap().expect("listed");
    assert_eq!(role, "targets");
    assert_eq!(info.length, 5000);
    assert!(up.get_targetinfo("no-such-1.0.bin").unwrap().is_none());

    let dest = tree.path("dest");
    assert!(up
        .find_cached_target(BRAKE, &info, &dest)
        .unwrap()
        .is_none());
    let path = up.download_target(BRAKE, &info, &dest).expect("download");
    assert_eq!(path, dest.join(BRAKE));
    assert_eq!(std::fs::read(&path).unwrap(), image_bytes("brake-fw", 5000));
    assert_eq!(files(&dest), [BRAKE], "nothing but the target");
    assert_eq!(
        up.find_cached_target(BRAKE, &info, &dest).unwrap(),
        Some(path.clone())
    );
    std::fs::write(&path, b"changed").unwrap();
    assert!(up
        .find_cached_target(BRAKE, &info, &dest)
        .unwrap()
        .is_none());
}

#[test]
fn metadata_is_saved_as_the_exact_bytes_served() {
    let tree = Tree::new();
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    let meta = tree.path("meta");
    assert_eq!(
        files(&meta),
        top_level(),
        "unversioned names, no temporary files"
    );
    assert_eq!(
        std::fs::read(meta.join("root.json")).unwrap(),
        tree.read("1.root.json")
    );
    for role in ["timestamp", "snapshot", "targets"] {
        assert_eq!(
            std::fs::read(meta.join(format!("{role}.json"))).unwrap(),
            tree.role_file(role),
            "{role}"
        );
    }
}

#[test]
fn lookups_and_downloads_need_a_refresh_and_a_trusted_root() {
    let tree = Tree::new();
    let mut up = tree.updater("meta");
    assert!(matches!(
        up.get_targetinfo(BRAKE),
        Err(Error::NotRefreshed { .. })
    ));
    let err = ota_client::tuf::Updater::new(
        tree.path("empty"),
        &tree.metadata_url(),
        &tree.targets_url(),
        DirFetcher::new(),
        Limits::default(),
        tree.now,
    )
    .err()
    .expect("no root");
    assert!(matches!(err, Error::NoTrustedRoot { .. }), "{err}");
}

#[test]
fn delegated_targets_are_loaded_only_when_a_lookup_needs_them() {
    let tree = Tree::new();
    tree.delegate("tier2", 4, &["abs-*"], &["ABS-1"], false);
    let abs = tree.add_image("abs-fw", "2.0", 3000, "tier2", "ABS-1");
    tree.publish();

    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    let meta = tree.path("meta");
    assert_eq!(files(&meta), top_level(), "tier2 not fetched by refresh");

    // Found in the top-level role: the delegation is never consulted.
    assert_eq!(up.get_targetinfo(BRAKE).unwrap().unwrap().role, "targets");
    // Not matching the delegation's paths: still not consulted.
    assert!(up.get_targetinfo("other-1.bin").unwrap().is_none());
    assert!(!meta.join("tier2.json").exists());

    let Found { info, role, .. } = up.get_targetinfo(&abs).unwrap().expect("delegated target");
    assert_eq!(role, "tier2");
    assert_eq!(
        std::fs::read(meta.join("tier2.json")).unwrap(),
        tree.role_file("tier2")
    );
    let path = up.download_target(&abs, &info, &tree.path("dest")).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), image_bytes("abs-fw", 3000));
    assert!(up.get_targetinfo("abs-missing.bin").unwrap().is_none());

    // A second client with no delegations allowed cannot reach it.
    let limits = Limits {
        max_delegations: 0,
        ..Limits::default()
    };
    let mut strict = tree.updater_with("meta2", DirFetcher::new(), limits, tree.now);
    strict.refresh().unwrap();
    assert_eq!(
        strict.get_targetinfo(BRAKE).unwrap().unwrap().role,
        "targets"
    );
    let err = strict.get_targetinfo(&abs).unwrap_err();
    assert!(
        matches!(err, Error::TooManyDelegations { limit: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_terminating_delegation_ends_the_search() {
    let tree = Tree::new();
    // tierA owns abs-* and is terminating; tierB (any name) is listed after it.
    tree.delegate("tierA", 4, &["abs-*"], &["ABS-1"], true);
    tree.delegate("tierB", 5, &["*"], &["ABS-1", "GW-1"], false);
    let hidden = tree.add_image("abs-fw", "1.0", 100, "tierB", "ABS-1");
    let gw = tree.add_image("gw-fw", "1.0", 100, "tierB", "GW-1");
    tree.publish();

    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    assert!(
        up.get_targetinfo(&hidden).unwrap().is_none(),
        "tierB must not be consulted for a name tierA terminates"
    );
    let meta = tree.path("meta");
    assert!(meta.join("tierA.json").exists());
    assert!(!meta.join("tierB.json").exists());
    assert_eq!(up.get_targetinfo(&gw).unwrap().unwrap().role, "tierB");
}

#[test]
fn a_refresh_with_nothing_new_fetches_only_the_timestamp() {
    let tree = Tree::new();
    let rec = Recorder::new(DirFetcher::new());
    let mut up = tree.updater_with("meta", &rec, Limits::default(), tree.now);
    up.refresh().unwrap();
    let first: Vec<String> = rec.take().into_iter().map(|(n, _)| n).collect();
    let (s, t) = (tree.version("snapshot"), tree.version("targets"));
    assert_eq!(
        first,
        [
            "2.root.json".to_string(),
            "timestamp.json".into(),
            format!("{s}.snapshot.json"),
            format!("{t}.targets.json"),
        ]
    );
    up.refresh().unwrap();
    // The next root is probed (and absent); the timestamp is the one file fetched.
    assert_eq!(
        rec.take(),
        [
            ("2.root.json".to_string(), false),
            ("timestamp.json".into(), true)
        ]
    );
    // A fresh updater over the same directory behaves the same.
    let mut again = tree.updater_with("meta", &rec, Limits::default(), tree.now);
    again.refresh().unwrap();
    assert_eq!(rec.take().iter().filter(|(_, ok)| *ok).count(), 1);
}

/// Scenario: Root rotation | a client that starts from the first root after several rotations | walks the chain, each step verified
#[test]
fn root_rotation_walks_the_chain_from_the_first_root() {
    let tree = Tree::new();
    let rec = Recorder::new(DirFetcher::new());
    let mut up = tree.updater_with("meta", &rec, Limits::default(), tree.now);
    up.refresh().unwrap();

    tree.rotate("targets", &[5]); // root v2
    tree.rotate("timestamp", &[6]); // root v3
    tree.rotate("root", &[7]); // root v4
    rec.take();
    up.refresh().expect("refresh across three rotations");
    let fetched: Vec<_> = rec
        .take()
        .into_iter()
        .filter(|(n, _)| n.ends_with("root.json"))
        .collect();
    assert_eq!(
        fetched,
        [
            ("2.root.json".to_string(), true),
            ("3.root.json".into(), true),
            ("4.root.json".into(), true),
            ("5.root.json".into(), false)
        ]
    );
    assert_eq!(up.trusted().root().signed.version, 4);
    assert_eq!(
        std::fs::read(tree.path("meta/root.json")).unwrap(),
        tree.read("4.root.json")
    );
    let info = up.get_targetinfo(BRAKE).unwrap().unwrap().info;
    up.download_target(BRAKE, &info, &tree.path("dest"))
        .unwrap();

    // A client provisioned with 1.root.json long ago gets there in one refresh too.
    let mut late = tree.updater("late");
    late.refresh().unwrap();
    assert_eq!(late.trusted().root().signed.version, 4);
}

/// Scenario: Root rotation | an endless chain of roots | stopped at the bound
#[test]
fn root_rotations_per_refresh_are_bounded() {
    let tree = Tree::new();
    for k in [5, 6, 7, 8] {
        tree.rotate("root", &[k]);
    }
    assert!(tree.repo.join("5.root.json").exists());
    let limits = Limits {
        max_root_rotations: 2,
        ..Limits::default()
    };
    let rec = Recorder::new(DirFetcher::new());
    let mut up = tree.updater_with("meta", &rec, limits, tree.now);
    up.refresh()
        .expect("refresh carries on with the newest root reached");
    assert_eq!(up.trusted().root().signed.version, 3);
    let roots: Vec<_> = rec
        .take()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with("root.json"))
        .collect();
    assert_eq!(
        roots,
        ["2.root.json", "3.root.json"],
        "never asked for a third"
    );
    up.refresh().unwrap();
    assert_eq!(up.trusted().root().signed.version, 5);
}

/// Scenario: Rollback | older timestamp and snapshot served after newer ones | refused; the trusted metadata is kept
#[test]
fn rollback_attack_is_refused_and_trusted_state_kept() {
    let tree = Tree::new();
    let old = tree.read("timestamp.json");
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    tree.publish(); // a newer timestamp
    up.refresh().unwrap();
    let newer = tree.read("timestamp.json");
    let trusted_version = tree.version("timestamp");
    assert_eq!(
        up.trusted().timestamp().unwrap().signed.version,
        trusted_version
    );

    tree.write("timestamp.json", &old); // the attacker replays the older one
    let err = up.refresh().unwrap_err();
    assert!(version_error(&err, "timestamp"), "{err}");
    assert!(
        err.to_string().contains("timestamp.json"),
        "names the URL: {err}"
    );
    assert_eq!(
        up.trusted().timestamp().unwrap().signed.version,
        trusted_version
    );
    assert_eq!(
        std::fs::read(tree.path("meta/timestamp.json")).unwrap(),
        newer
    );
    assert!(matches!(
        up.get_targetinfo(BRAKE),
        Err(Error::NotRefreshed { .. })
    ));

    // Also from a fresh process that only has the stored state.
    let mut again = tree.updater("meta");
    assert!(version_error(&again.refresh().unwrap_err(), "timestamp"));
}

/// Scenario: Freeze | an expired timestamp served forever | refused (expired)
#[test]
fn freeze_attack_expired_timestamp_is_refused() {
    let tree = Tree::new();
    // The tree's timestamp lives one day; two days later it is stale.
    let later = tree.now.plus_seconds(2 * 86_400);
    let mut up = tree.updater_with("meta", DirFetcher::new(), Limits::default(), later);
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Metadata { source: ota_metadata::Error::Expired { role, .. }, .. } if role == "timestamp"),
        "{err}"
    );
    assert!(!tree.path("meta/timestamp.json").exists(), "not persisted");

    // A client that trusted it while fresh refuses it once stale too.
    let mut up = tree.updater("meta2");
    up.refresh().unwrap();
    up.set_now(later);
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Metadata {
                source: ota_metadata::Error::Expired { .. },
                ..
            }
        ),
        "{err}"
    );
}

/// Scenario: Mix-and-match | a snapshot whose hash differs from the timestamp's | refused
#[test]
fn mix_and_match_snapshot_is_refused() {
    let tree = Tree::new();
    let name = format!("{}.snapshot.json", tree.version("snapshot"));
    // Still validly signed (whitespace is outside the canonical form), same length, other bytes.
    let text = String::from_utf8(tree.read(&name)).unwrap();
    let moved = text.replacen("\n  ", "  \n", 1);
    assert_ne!(moved, text);
    assert_eq!(moved.len(), text.len());
    tree.write(&name, moved.as_bytes());

    let mut up = tree.updater("meta");
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Metadata { source: ota_metadata::Error::Hash { .. }, url } if url.ends_with(&name)),
        "{err}"
    );
    assert!(!tree.path("meta/snapshot.json").exists());
}

/// Scenario: Mix-and-match | a stolen snapshot key signs a snapshot pairing the current timestamp with the old targets (hiding a newer image); a stolen timestamp key points a newer timestamp at the old snapshot | refused: the timestamp's hash of the snapshot does not match the forged one, and a client that saw the newer snapshot refuses the older one as a rollback, keeping the newer image in view
#[test]
fn a_stolen_snapshot_or_timestamp_key_alone_cannot_mix_and_match() {
    let tree = Tree::new();
    let old_targets = tree.version("targets");
    let old_timestamp = tree.read("timestamp.json");
    let newer = tree.add_image("brake-fw", "2.0.0", 5000, "targets", "BRAKE-A");
    tree.publish();
    assert!(tree.version("targets") > old_targets);
    let resign = |file: &str, bytes: &[u8], key: usize, edit: &dyn Fn(&mut serde_json::Value)| {
        let role = file.trim_end_matches(".json").rsplit('.').next().unwrap();
        let mut signed = Envelope::parse(role, bytes, 1 << 20)
            .unwrap()
            .signed_value()
            .clone();
        edit(&mut signed);
        sign_document(&signed, &[&tree.signing_key(key)]).unwrap()
    };

    // The snapshot key (2): the current snapshot's version, listing the old targets.
    let name = format!("{}.snapshot.json", tree.version("snapshot"));
    let real = tree.read(&name);
    let forged = resign(&name, &real, 2, &|s| {
        s["meta"]["targets.json"] = serde_json::json!({ "version": old_targets });
    });
    tree.write(&name, &forged);
    let err = tree.updater("fresh").refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Metadata { source: ota_metadata::Error::Length { .. } | ota_metadata::Error::Hash { .. }, url } if url.ends_with(&name)),
        "{err}"
    );
    tree.write(&name, &real);

    // A vehicle sees the newer image; then the timestamp key (3) signs a newer timestamp
    // pointing at the old snapshot, whose targets do not list it.
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    assert!(up.get_targetinfo(&newer).unwrap().is_some());
    let real_timestamp = tree.read("timestamp.json");
    let version = tree.version("timestamp") + 1;
    let forged = resign("timestamp.json", &old_timestamp, 3, &|s| {
        s["version"] = version.into();
    });
    tree.write("timestamp.json", &forged);
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Metadata {
                source: ota_metadata::Error::Version { .. },
                ..
            }
        ) && err.to_string().contains("snapshot.json: version"),
        "{err}"
    );
    // The trusted state is kept: with the real timestamp served again the image is there.
    tree.write("timestamp.json", &real_timestamp);
    up.refresh().unwrap();
    assert!(up.get_targetinfo(&newer).unwrap().is_some());
}

/// Scenario: Endless data | metadata larger than its bound | refused at the bound
#[test]
fn endless_data_is_refused() {
    let tree = Tree::new();
    let mut up = tree.updater_with(
        "meta",
        Endless {
            victim: "timestamp.json",
        },
        Limits::default(),
        tree.now,
    );
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Fetch(FetchError::TooLarge { limit: 16_384, url }) if url.ends_with("timestamp.json")),
        "{err}"
    );
    // The snapshot's length is signed in the timestamp: it wins over the default bound (a
    // large snapshot of many hash bins is fine) ...
    let limits = Limits {
        metadata: ota_metadata::MetadataLimits {
            snapshot: 100,
            ..Default::default()
        },
        ..Limits::default()
    };
    let mut up = tree.updater_with("meta2", DirFetcher::new(), limits.clone(), tree.now);
    up.refresh().unwrap();
    // ... up to the hard ceiling.
    let limits = Limits {
        metadata: ota_metadata::MetadataLimits {
            snapshot: 100,
            signed_ceiling: 100,
            ..Default::default()
        },
        ..limits
    };
    let mut up = tree.updater_with("meta3", DirFetcher::new(), limits, tree.now);
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Fetch(FetchError::TooLarge { limit: 100, .. })),
        "{err}"
    );
}

/// Scenario: Arbitrary software | target bytes that do not match the signed hash | refused; nothing left on disk
#[test]
fn wrong_target_bytes_are_refused_and_nothing_is_left() {
    let tree = Tree::new();
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    let info = up.get_targetinfo(BRAKE).unwrap().unwrap().info;
    let stored = tree.target_file(BRAKE);
    let good = std::fs::read(&stored).unwrap();
    let dest = tree.path("dest");

    let mut flipped = good.clone();
    flipped[100] ^= 1;
    std::fs::write(&stored, &flipped).unwrap();
    let err = up.download_target(BRAKE, &info, &dest).unwrap_err();
    assert!(
        matches!(&err, Error::TargetHash { target, .. } if target == BRAKE),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(BRAKE) && msg.contains(&tree.targets_url()),
        "{msg}"
    );
    assert_eq!(files(&dest), Vec::<String>::new());

    std::fs::write(&stored, &good[..4000]).unwrap();
    let err = up.download_target(BRAKE, &info, &dest).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TargetLength {
                found: 4000,
                expected: 5000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(files(&dest), Vec::<String>::new());

    let mut longer = good.clone();
    longer.extend_from_slice(b"extra");
    std::fs::write(&stored, &longer).unwrap();
    let err = up.download_target(BRAKE, &info, &dest).unwrap_err();
    assert!(
        matches!(err, Error::Fetch(FetchError::TooLarge { limit: 5000, .. })),
        "{err}"
    );
    assert_eq!(files(&dest), Vec::<String>::new());

    // A signed length over the client's bound is refused before any request.
    let small = Limits {
        max_target_size: 4999,
        ..Limits::default()
    };
    let mut up = tree.updater_with("meta", DirFetcher::new(), small, tree.now);
    up.refresh().unwrap();
    assert!(matches!(
        up.download_target(BRAKE, &info, &dest),
        Err(Error::BadTarget { .. })
    ));
}

/// The attacker, holding the timestamp key, pushes the client's timestamp version far ahead;
/// the repository then serves its real (lower) versions, which the client must refuse as a
/// rollback until the timestamp key is rotated.
fn fast_forward(tree: &Tree) -> (Vec<u8>, ota_client::tuf::Updater<DirFetcher>) {
    let legit = tree.read("timestamp.json");
    let env = Envelope::parse("timestamp", &legit, 1 << 20).unwrap();
    let mut signed = env.signed_value().clone();
    signed["version"] = 1000.into();
    let forged = sign_document(&signed, &[&tree.signing_key(3)]).unwrap();
    tree.write("timestamp.json", &forged);
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    assert_eq!(up.trusted().timestamp().unwrap().signed.version, 1000);
    tree.write("timestamp.json", &legit);
    assert!(version_error(&up.refresh().unwrap_err(), "timestamp"));
    (legit, up)
}

/// Scenario: Stolen keys | a stolen timestamp key pushes versions up (fast-forward) | recovered by rotating the timestamp key in root
#[test]
fn fast_forward_attack_is_recovered_by_rotating_the_timestamp_key() {
    let tree = Tree::new();
    let (_, mut up) = fast_forward(&tree);
    tree.rotate("timestamp", &[6]);
    up.refresh().expect("recovered");
    assert_eq!(up.trusted().root().signed.version, 2);
    assert!(up.trusted().timestamp().unwrap().signed.version < 1000);
    assert_eq!(
        std::fs::read(tree.path("meta/timestamp.json")).unwrap(),
        tree.read("timestamp.json")
    );
}

#[test]
fn fast_forward_recovery_forgets_the_local_timestamp_even_if_it_still_verifies() {
    // The new timestamp keys include the old one, so the forged timestamp would still verify:
    // only forgetting it on the key change lets the client recover.
    let tree = Tree::new();
    let (_, mut up) = fast_forward(&tree);
    tree.rotate("timestamp", &[3, 6]);
    up.refresh().expect("recovered");
    assert!(up.trusted().timestamp().unwrap().signed.version < 1000);
}

#[test]
fn http_fetcher_full_refresh_and_download() {
    let tree = Tree::new();
    tree.delegate("tier2", 4, &["abs-*"], &["ABS-1"], false);
    let abs = tree.add_image("abs-fw", "2.0+rc.1", 200_000, "tier2", "ABS-1");
    tree.publish();
    let server = Server::start(tree.repo.clone(), |_| None);
    let http = HttpFetcher::new(&Limits::default(), CaRoots::None).unwrap();
    let rec = Recorder::new(http);
    let meta = tree.client_dir("meta", 1);
    let mut up = ota_client::tuf::Updater::new(
        meta,
        &server.url(),
        &format!("{}/targets/", server.url()),
        &rec,
        Limits::default(),
        tree.now,
    )
    .unwrap();
    up.refresh().expect("refresh over HTTP");
    let dest = tree.path("dest");
    for (name, bytes) in [
        (BRAKE.to_string(), image_bytes("brake-fw", 5000)),
        (abs.clone(), image_bytes("abs-fw", 200_000)),
    ] {
        let info = up.get_targetinfo(&name).unwrap().expect("listed").info;
        let path = up
            .download_target(&name, &info, &dest)
            .expect("download over HTTP");
        assert_eq!(std::fs::read(path).unwrap(), bytes, "{name}");
    }
    assert_eq!(abs, image_name("abs-fw", "2.0+rc.1"));
    assert_eq!(
        std::fs::read(tree.path("meta/tier2.json")).unwrap(),
        tree.role_file("tier2")
    );
    rec.take();
    up.refresh().unwrap();
    assert_eq!(
        rec.take(),
        [
            ("2.root.json".to_string(), false),
            ("timestamp.json".into(), true)
        ]
    );
}

#[test]
fn http_fetcher_refuses_more_bytes_than_allowed() {
    let tree = Tree::new();
    let server = Server::start(tree.repo.clone(), |path| match path {
        "/endless" | "/timestamp.json" => Some(Reply::Endless),
        "/lying" => Some(Reply::Announce(10_000_000)),
        // Silence far longer than any timeout here (the server caps a reply at 20 s).
        "/stall" => Some(Reply::Stall(std::time::Duration::from_secs(20))),
        _ => None,
    });
    let http = HttpFetcher::new(&Limits::default(), CaRoots::None).unwrap();
    let url = server.url();
    for path in ["endless", "lying"] {
        let err = http.fetch(&format!("{url}/{path}"), 1000).unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: 1000, .. }),
            "{path}: {err}"
        );
    }
    let mut sink = Vec::new();
    let err = http
        .fetch_into(&format!("{url}/endless"), 100_000, &mut sink)
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    assert!(sink.len() <= 100_000);
    let err = http
        .fetch(&format!("{url}/missing.json"), 1000)
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        http.fetch(&format!("{url}/1.root.json"), 1 << 20).unwrap(),
        tree.read("1.root.json")
    );

    // A server that stops sending is given up on after the read timeout, not waited for.
    let impatient = Limits {
        read_timeout: std::time::Duration::from_millis(300),
        ..Limits::default()
    };
    let quick = HttpFetcher::new(&impatient, CaRoots::None).unwrap();
    let started = std::time::Instant::now();
    let err = quick.fetch(&format!("{url}/stall"), 1000).unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    // The timeout, not the end of the stall: long before the 20 s silence ends, on any machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // Through the updater: the endless timestamp is cut at the timestamp limit.
    let meta = tree.client_dir("meta", 1);
    let mut up =
        ota_client::tuf::Updater::new(meta, &url, &url, http, Limits::default(), tree.now).unwrap();
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Fetch(FetchError::TooLarge { limit: 16_384, .. })
        ),
        "{err}"
    );
}

/// Which delegated role files a lookup fetched, in order.
fn role_fetches(rec: &Recorder<DirFetcher>) -> Vec<String> {
    rec.take()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| {
            ![
                "root.json",
                "timestamp.json",
                "snapshot.json",
                "targets.json",
            ]
            .iter()
            .any(|s| n.ends_with(s))
        })
        .collect()
}

/// Scenario: Delegations | a target offered by a later delegation after a terminating one | not searched
#[test]
fn delegations_are_searched_pre_order_and_terminating_stops_backtracking() {
    let tree = common::nested_tree();
    let rec = Recorder::new(DirFetcher::new());
    let mut up = tree.updater_with("meta", &rec, Limits::default(), tree.now);
    up.refresh().unwrap();
    rec.take();

    // y1: targets, A, (B does not match), C, then back up to D, which lists it.
    let role = up.get_targetinfo("y1").unwrap().expect("in D").role;
    assert_eq!(role, "D");
    assert_eq!(role_fetches(&rec), ["1.A.json", "1.C.json", "1.D.json"]);
    // c1: A and C are loaded already; nothing fetched.
    assert_eq!(up.get_targetinfo("c1").unwrap().unwrap().role, "C");
    assert!(role_fetches(&rec).is_empty());

    // x1 is listed by C and D, but B (terminating, "x*") owns it and lists nothing: the
    // search ends there, neither C (B's sibling after it) nor D (backtracking) is consulted.
    let mut fresh = tree.updater_with("meta2", &rec, Limits::default(), tree.now);
    fresh.refresh().unwrap();
    rec.take();
    assert!(fresh.get_targetinfo("x1").unwrap().is_none());
    assert_eq!(role_fetches(&rec), ["1.A.json", "1.B.json"]);

    // The visit bound counts delegated roles: y1 needs three.
    let two = Limits {
        max_delegations: 2,
        ..Limits::default()
    };
    let mut bounded = tree.updater_with("meta3", DirFetcher::new(), two, tree.now);
    bounded.refresh().unwrap();
    let err = bounded.get_targetinfo("y1").unwrap_err();
    assert!(
        matches!(err, Error::TooManyDelegations { limit: 2, .. }),
        "{err}"
    );
    assert_eq!(bounded.get_targetinfo("c1").unwrap().unwrap().role, "C");
}

#[test]
fn https_with_a_pinned_ca_and_no_downgrade_on_redirect() {
    let tmp = tempfile::tempdir().unwrap();
    let docroot = tmp.path().join("www");
    std::fs::create_dir(&docroot).unwrap();
    let plain = Server::start(tmp.path().to_path_buf(), |_| None);
    std::fs::write(
        docroot.join("hello.txt"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    std::fs::write(
        docroot.join("down"),
        format!(
            "HTTP/1.0 302 Found\r\nLocation: {}/hello.txt\r\nContent-Length: 0\r\n\r\n",
            plain.url()
        ),
    )
    .unwrap();
    let tls = common::http::TlsServer::start(&docroot, &tmp.path().join("certs"));
    let base = format!("https://127.0.0.1:{}", tls.port);

    let pinned = HttpFetcher::new(&Limits::default(), CaRoots::Pem(tls.ca_pem.clone())).unwrap();
    assert_eq!(
        pinned.fetch(&format!("{base}/hello.txt"), 100).unwrap(),
        b"hello"
    );
    let err = pinned.fetch(&format!("{base}/down"), 100).unwrap_err();
    assert!(matches!(err, FetchError::InsecureRedirect { .. }), "{err}");

    // Not trusting that CA (no roots, or the public ones) means no connection.
    for roots in [CaRoots::None, CaRoots::WebPki] {
        let f = HttpFetcher::new(&Limits::default(), roots).unwrap();
        let err = f.fetch(&format!("{base}/hello.txt"), 100).unwrap_err();
        assert!(matches!(err, FetchError::Transport { .. }), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }
    assert!(matches!(
        HttpFetcher::new(&Limits::default(), CaRoots::Pem(b"not pem".to_vec())),
        Err(FetchError::Config { .. })
    ));
}

/// Pool key ids, as delegations list them.
fn key_ids(tree: &common::Tree, keys: &[usize]) -> Vec<ota_metadata::KeyId> {
    keys.iter()
        .map(|&i| tree.signing_key(i).key_id().clone())
        .collect()
}

/// ```text
/// targets -> A ("a*", key 4) -> D ("*", key 6, hardware HW-A)
///         -> B ("b*", key 5) -> D ("*", key 7, hardware HW-B)
/// ```
/// D lists a1 and b1 and is signed by `d_signers`.
fn two_delegators(d_signers: Vec<usize>) -> common::Tree {
    use common::{delegations_of, target_entry, RoleSpec};
    use serde_json::json;
    let role = |name, targets, delegations, signers, hardware_ids| RoleSpec {
        name,
        targets,
        delegations,
        signers,
        hardware_ids,
    };
    common::custom_tree(
        "two-delegators",
        vec![
            role(
                "targets",
                json!({}),
                Some(delegations_of(&[
                    ("A", 4, &["a*"], false),
                    ("B", 5, &["b*"], false),
                ])),
                vec![1],
                None,
            ),
            role(
                "A",
                json!({}),
                Some(delegations_of(&[("D", 6, &["*"], false)])),
                vec![4],
                Some(json!({"D": ["HW-A"]})),
            ),
            role(
                "B",
                json!({}),
                Some(delegations_of(&[("D", 7, &["*"], false)])),
                vec![5],
                Some(json!({"D": ["HW-B"]})),
            ),
            role(
                "D",
                json!({"a1": target_entry(b"a1"), "b1": target_entry(b"b1")}),
                None,
                d_signers,
                None,
            ),
        ],
    )
}

/// Scenario: Delegations | a role reached through a second delegator with other keys | verified again against each delegation
#[test]
fn a_role_loaded_through_one_delegator_is_verified_again_through_another() {
    // D is signed by A's key for it only. Reached through A it is trusted; reached through B,
    // whose delegation names another key, it is not, even once loaded by an earlier lookup.
    let tree = two_delegators(vec![6]);
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    let found = up.get_targetinfo("a1").unwrap().expect("a1 through A");
    assert_eq!(found.role, "D");
    assert_eq!(found.signer.keyids, key_ids(&tree, &[6]));
    let err = up.get_targetinfo("b1").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Metadata {
                source: ota_metadata::Error::Threshold { valid: 0, role, .. },
                ..
            } if role.contains("D") && role.contains("B")
        ),
        "{err}"
    );
    // Whatever the order of the lookups.
    let mut fresh = tree.updater("meta2");
    fresh.refresh().unwrap();
    assert!(matches!(
        fresh.get_targetinfo("b1"),
        Err(Error::Metadata {
            source: ota_metadata::Error::Threshold { .. },
            ..
        })
    ));
    // And the way back: D loaded through A still answers for A's path.
    assert_eq!(fresh.get_targetinfo("a1").unwrap().unwrap().role, "D");
}

/// Scenario: Delegations | a role signed by a delegator not on the search path | refused
#[test]
fn the_signer_is_the_delegator_on_the_path_taken() {
    // D is signed by both delegations' keys, so valid on both paths, but each path has its
    // own signer (keys and hardware ids) for what D lists.
    let tree = two_delegators(vec![6, 7]);
    let mut up = tree.updater("meta");
    up.refresh().unwrap();
    let a1 = up.get_targetinfo("a1").unwrap().expect("a1 through A");
    let b1 = up.get_targetinfo("b1").unwrap().expect("b1 through B");
    assert_eq!((a1.role.as_str(), b1.role.as_str()), ("D", "D"));
    assert_eq!(a1.signer.keyids, key_ids(&tree, &[6]));
    assert_eq!(a1.signer.hardware_ids, Some(vec!["HW-A".to_string()]));
    assert_eq!(b1.signer.keyids, key_ids(&tree, &[7]));
    assert_eq!(b1.signer.hardware_ids, Some(vec!["HW-B".to_string()]));
    // The trusted set answers per parent too, and only for real delegations.
    let set = up.trusted();
    assert_eq!(
        set.signer_of("D", "B").unwrap().keyids,
        key_ids(&tree, &[7])
    );
    assert_eq!(
        set.signer_of("targets", "root").unwrap().keyids,
        key_ids(&tree, &[1])
    );
    assert!(set.signer_of("D", "targets").is_err());
    set.verify_delegated_targets("D", "A").unwrap();
    set.verify_delegated_targets("D", "B").unwrap();
}

/// Scenario: Target names | a target named ../../etc/passwd | refused
#[test]
fn target_names_never_lead_outside_the_targets_directory() {
    use common::{target_entry, RoleSpec};
    let secret = b"bytes outside the targets directory".to_vec();
    let names = [
        "../secret.bin",
        "sub/../../secret.bin",
        "%2E%2E/secret.bin",
        "/secret.bin",
        "..\\secret.bin",
    ];
    let mut listed = serde_json::Map::new();
    for n in names {
        listed.insert(n.into(), target_entry(&secret));
    }
    let tree = common::custom_tree(
        "escape",
        vec![RoleSpec {
            name: "targets",
            targets: listed.into(),
            delegations: None,
            signers: vec![1],
            hardware_ids: None,
        }],
    );
    // Where `../secret.bin` leads from the targets base (consistent snapshots: SHA.NAME).
    std::fs::create_dir_all(tree.repo.join("targets").join("sub")).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&secret));
    let outside = tree.repo.join(format!("{sha}.secret.bin"));
    std::fs::write(&outside, &secret).unwrap();
    let rec = common::Recorder::new(DirFetcher::new());
    assert_eq!(
        rec.inner.fetch(outside.to_str().unwrap(), 1000).unwrap(),
        secret,
        "the file is there to be read"
    );

    let mut up = tree.updater_with("meta", &rec, Limits::default(), tree.now);
    up.refresh().unwrap();
    rec.take();
    let dest = tree.path("dest");
    for name in names {
        let info = up.get_targetinfo(name).unwrap().expect("listed").info;
        let err = up.download_target(name, &info, &dest).unwrap_err();
        assert!(
            matches!(&err, Error::BadTarget { target, .. } if target == name),
            "{name}: {err}"
        );
        assert!(up.find_cached_target(name, &info, &dest).is_err(), "{name}");
    }
    assert!(rec.take().is_empty(), "nothing was fetched");
    assert!(files(&dest).is_empty());
}
