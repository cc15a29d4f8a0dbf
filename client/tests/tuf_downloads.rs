//! Target downloads over HTTP against a misbehaving server, end to end through
//! `Updater::download_target` on trees written by `ota_repo`: endless data, slow retrieval
//! (a trickle), truncated bodies, wrong bytes, and a dropped connection followed by a resumed
//! (`Range`) download, including servers that ignore or garble the range.

mod common;

use common::http::{Body, Reply, Request, Server};
use common::{files, image_bytes, Tree};
use ota_client::tuf::{
    AnyFetcher, CaRoots, Error, Fetch, FetchError, HttpFetcher, Limits, Updater,
};
use ota_metadata::roles::TargetFile;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Large enough to span many reads and TCP segments.
const LEN: usize = 200_000;
const HALF: u64 = (LEN / 2) as u64;

struct Setup<F: Fetch> {
    tree: Tree,
    server: Server,
    up: Updater<F>,
    name: String,
    info: TargetFile,
    good: Vec<u8>,
    dest: PathBuf,
}

impl<F: Fetch> Setup<F> {
    fn download(&self) -> Result<PathBuf, Error> {
        self.up.download_target(&self.name, &self.info, &self.dest)
    }

    /// The requests the server saw for the target, as the `Range` start each asked for.
    fn target_ranges(&self) -> Vec<Option<u64>> {
        self.server
            .requests_for(&self.name)
            .into_iter()
            .map(|r: Request| r.range_from)
            .collect()
    }

    /// The destination holds nothing (no staging file either).
    fn assert_nothing_left(&self) {
        assert_eq!(files(&self.dest), Vec::<String>::new());
    }
}

/// A tree with a `LEN`-byte image, served over HTTP; `reply(request, good bytes, n)` decides
/// what the `n`th request (from 0) for that image gets. Metadata is served from the tree.
fn setup_with<F: Fetch>(
    limits: Limits,
    make: impl FnOnce(HttpFetcher) -> F,
    reply: impl Fn(&Request, &[u8], usize) -> Reply + Send + Sync + 'static,
) -> Setup<F> {
    let tree = Tree::new();
    let name = tree.add_image("gw-fw", "1.0.0", LEN, "targets", "GW-1");
    tree.publish();
    let good = image_bytes("gw-fw", LEN);
    let served = Arc::new(good.clone());
    let count = AtomicUsize::new(0);
    let suffix = format!(".{name}");
    let server = Server::start_with(tree.repo.clone(), move |req| {
        if !req.path.ends_with(&suffix) {
            return None;
        }
        let n = count.fetch_add(1, Ordering::SeqCst);
        Some(reply(req, &served, n))
    });
    let http = HttpFetcher::new(&limits, CaRoots::None).unwrap();
    let mut up = Updater::new(
        tree.client_dir("meta", 1),
        &server.url(),
        &format!("{}/targets/", server.url()),
        make(http),
        limits,
        tree.now,
    )
    .unwrap();
    up.refresh().expect("refresh over HTTP");
    let info = up.get_targetinfo(&name).unwrap().expect("listed").info;
    assert_eq!(info.length, LEN as u64);
    let dest = tree.path("dest");
    Setup {
        tree,
        server,
        up,
        name,
        info,
        good,
        dest,
    }
}

fn setup(
    limits: Limits,
    reply: impl Fn(&Request, &[u8], usize) -> Reply + Send + Sync + 'static,
) -> Setup<HttpFetcher> {
    setup_with(limits, |h| h, reply)
}

fn body(bytes: &[u8], ranges: bool, cut_after: Option<usize>) -> Reply {
    Reply::Body(Body {
        bytes: bytes.to_vec(),
        ranges,
        cut_after,
        ..Body::default()
    })
}

#[test]
fn a_good_server_serves_the_target_in_one_request() {
    let s = setup(Limits::default(), |_, good, _| body(good, true, None));
    let path = s.download().expect("download");
    assert_eq!(std::fs::read(&path).unwrap(), s.good);
    assert_eq!(files(&s.dest), std::slice::from_ref(&s.name));
    assert_eq!(s.target_ranges(), [None]);
}

#[test]
fn a_dropped_connection_is_resumed_with_one_range_request() {
    // Through AnyFetcher, as the gateway does: it must pass ranged fetches on.
    let s = setup_with(Limits::default(), AnyFetcher::new, |_, good, n| {
        // The first answer stops after half the body and hangs up; later ones honour Range.
        body(good, true, (n == 0).then_some(LEN / 2))
    });
    let path = s.download().expect("resumed download");
    assert_eq!(std::fs::read(&path).unwrap(), s.good, "byte for byte");
    assert_eq!(files(&s.dest), std::slice::from_ref(&s.name));
    assert_eq!(
        s.target_ranges(),
        [None, Some(HALF)],
        "one plain request, then exactly one Range request from where it broke"
    );
    assert_eq!(
        s.server.requests_for(&s.name)[1].range.as_deref(),
        Some(format!("bytes={HALF}-").as_str())
    );
}

#[test]
fn a_read_timeout_mid_body_is_resumed_too() {
    let limits = Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = setup(limits, |_, good, n| {
        if n == 0 {
            // Half the body, then silence past the read timeout.
            Reply::Body(Body {
                bytes: good.to_vec(),
                ranges: true,
                cut_after: Some(LEN / 2),
                // Far longer than the 300 ms read timeout (the server caps it at 20 s).
                stall: Duration::from_secs(20),
                ..Body::default()
            })
        } else {
            body(good, true, None)
        }
    });
    let started = Instant::now();
    let path = s.download().expect("resumed after a timeout");
    // Resumed on the timeout, not after the silence ended, on any machine.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(std::fs::read(path).unwrap(), s.good);
    assert_eq!(s.target_ranges(), [None, Some(HALF)]);
}

#[test]
fn a_server_that_ignores_range_makes_the_download_start_again() {
    let s = setup(Limits::default(), |_, good, n| {
        body(good, false, (n == 0).then_some(LEN / 2))
    });
    let path = s.download().expect("restarted download");
    assert_eq!(std::fs::read(&path).unwrap(), s.good, "no duplicated half");
    assert_eq!(s.target_ranges(), [None, Some(HALF)]);
    // Broken again after the restart: the next range starts from what the restart brought.
    let s = setup(Limits::default(), |_, good, n| match n {
        0 => body(good, false, Some(LEN / 2)),
        1 => body(good, false, Some(1000)),
        _ => body(good, true, None),
    });
    let path = s.download().expect("restarted, then resumed");
    assert_eq!(std::fs::read(&path).unwrap(), s.good);
    assert_eq!(s.target_ranges(), [None, Some(HALF), Some(1000)]);
}

#[test]
fn a_partial_answer_that_is_not_the_range_asked_for_is_refused() {
    // 206 claiming to start at 0 when bytes from the middle were asked for.
    let s = setup(Limits::default(), |_, good, n| {
        Reply::Body(Body {
            bytes: good.to_vec(),
            ranges: true,
            cut_after: (n == 0).then_some(LEN / 2),
            lie_start: (n > 0).then_some(0),
            ..Body::default()
        })
    });
    let err = s.download().unwrap_err();
    assert!(
        matches!(&err, Error::Fetch(FetchError::BadRange { reason, .. }) if reason.contains("starts at 0")),
        "{err}"
    );
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None, Some(HALF)], "not retried");
}

#[test]
fn a_truncated_body_is_resumed_a_bounded_number_of_times_then_is_a_length_error() {
    // Content-Length says LEN, the connection closes after 1000 bytes, every time, and Range
    // is ignored: each attempt starts again and gets no further.
    let s = setup(Limits::default(), |_, good, _| {
        body(good, false, Some(1000))
    });
    let err = s.download().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::TargetLength { found: 1000, expected, .. } if *expected == LEN as u64
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&s.name), "{err}");
    s.assert_nothing_left();
    assert_eq!(
        s.target_ranges(),
        [None, Some(1000), Some(1000), Some(1000)],
        "max_resume_attempts = 3 by default"
    );

    // Honouring Range but cutting every answer: progress, until the attempts run out.
    let limits = Limits {
        max_resume_attempts: 2,
        ..Limits::default()
    };
    let s = setup(limits, |_, good, _| body(good, true, Some(1000)));
    let err = s.download().unwrap_err();
    assert!(
        matches!(err, Error::TargetLength { found: 3000, .. }),
        "{err}"
    );
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None, Some(1000), Some(2000)]);

    // No resuming at all when so configured.
    let limits = Limits {
        max_resume_attempts: 0,
        ..Limits::default()
    };
    let s = setup(limits, |_, good, n| {
        body(good, true, (n == 0).then_some(LEN / 2))
    });
    let err = s.download().unwrap_err();
    assert!(
        matches!(err, Error::TargetLength { found, .. } if found == HALF),
        "{err}"
    );
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None]);
}

#[test]
fn wrong_bytes_are_refused_and_nothing_is_left() {
    let s = setup(Limits::default(), |_, good, _| {
        let mut bad = good.to_vec();
        bad[LEN - 1] ^= 0x40;
        body(&bad, true, None)
    });
    let err = s.download().unwrap_err();
    assert!(
        matches!(&err, Error::TargetHash { target, .. } if *target == s.name),
        "{err}"
    );
    s.assert_nothing_left();

    // Wrong bytes in the resumed part are caught the same way: the hash covers every byte.
    let s = setup(Limits::default(), |_, good, n| {
        let mut bytes = good.to_vec();
        if n > 0 {
            bytes[LEN - 10] ^= 1;
        }
        body(&bytes, true, (n == 0).then_some(LEN / 2))
    });
    let err = s.download().unwrap_err();
    assert!(matches!(err, Error::TargetHash { .. }), "{err}");
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None, Some(HALF)]);
    assert!(!s.tree.path("dest").join(&s.name).exists());
}

/// Scenario: Endless data | an image that never ends | cut at the signed length
#[test]
fn endless_data_is_refused_at_the_signed_length() {
    let s = setup(Limits::default(), |_, _, _| Reply::Endless);
    let err = s.download().unwrap_err();
    assert!(
        matches!(err, Error::Fetch(FetchError::TooLarge { limit, .. }) if limit == LEN as u64),
        "{err}"
    );
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None], "too large is not resumed");

    // A resumed answer whose range runs past the signed length is refused as well.
    let s = setup(Limits::default(), |_, good, n| {
        let mut longer = good.to_vec();
        if n > 0 {
            longer.extend_from_slice(b"more");
        }
        body(&longer, true, (n == 0).then_some(LEN / 2))
    });
    let err = s.download().unwrap_err();
    assert!(
        matches!(err, Error::Fetch(FetchError::TooLarge { .. })),
        "{err}"
    );
    s.assert_nothing_left();
}

/// Scenario: Slow retrieval | a server that trickles an image | cut off below the minimum speed
#[test]
fn a_trickle_is_cut_off_as_too_slow() {
    // One byte a second is under any sensible minimum; with a one-second window it is caught
    // within about two seconds, well before the 30 s read timeout could.
    let limits = Limits {
        min_bytes_per_sec: 1024,
        min_speed_window: Duration::from_secs(1),
        ..Limits::default()
    };
    let s = setup(limits, |_, good, _| Reply::Trickle {
        bytes: good.to_vec(),
        every: Duration::from_secs(1),
    });
    let started = Instant::now();
    let err = s.download().unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, Error::Fetch(FetchError::TooSlow { bytes, min: 1024, .. }) if *bytes < 10),
        "{err}"
    );
    assert!(err.to_string().contains("too slow"), "{err}");
    assert!(
        // Not before the one-second window; long before the 30 s read timeout could.
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
    s.assert_nothing_left();
    assert_eq!(s.target_ranges(), [None], "too slow is not resumed");
}

/// Scenario: Slow retrieval | a server that trickles metadata | cut off below the minimum speed
#[test]
fn metadata_fetches_are_held_to_the_minimum_speed_too() {
    let tree = Tree::new();
    let timestamp = tree.read("timestamp.json");
    let server = Server::start(tree.repo.clone(), move |path| {
        (path == "/timestamp.json").then(|| Reply::Trickle {
            bytes: timestamp.clone(),
            every: Duration::from_millis(500),
        })
    });
    let limits = Limits {
        min_bytes_per_sec: 1024,
        min_speed_window: Duration::from_secs(1),
        ..Limits::default()
    };
    let http = HttpFetcher::new(&limits, CaRoots::None).unwrap();
    let mut up = Updater::new(
        tree.client_dir("meta", 1),
        &server.url(),
        &server.url(),
        http,
        limits,
        tree.now,
    )
    .unwrap();
    let started = Instant::now();
    let err = up.refresh().unwrap_err();
    assert!(
        matches!(&err, Error::Fetch(FetchError::TooSlow { url, .. }) if url.ends_with("/timestamp.json")),
        "{err}"
    );
    // Long before the 30 s read timeout could have ended it.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!tree.path("meta/timestamp.json").exists());
}

/// `Updater::fetch_targets`: several targets at once, in the order asked, a name given twice
/// fetched once, verified copies reused, and a refused target reported as the first failure
/// with nothing of it left behind.
#[test]
fn many_targets_at_once() {
    use ota_client::tuf::Fetched;
    let tree = Tree::new();
    let names: Vec<String> = (0..6)
        .map(|i| {
            tree.add_image(
                &format!("fw{i}"),
                "1.0.0",
                70_000 + i * 1000,
                "targets",
                "GW-1",
            )
        })
        .collect();
    tree.publish();
    let bad = format!(".{}", names[4]);
    // The fifth target is served with other bytes of the same length.
    let server = Server::start_with(tree.repo.clone(), move |req| {
        req.path
            .ends_with(&bad)
            .then(|| body(&vec![0u8; 74_000], false, None))
    });
    let limits = Limits {
        download_concurrency: 3,
        ..Limits::default()
    };
    let http = HttpFetcher::new(&limits, CaRoots::None).unwrap();
    let mut up = Updater::new(
        tree.client_dir("meta", 1),
        &server.url(),
        &format!("{}/targets/", server.url()),
        http,
        limits,
        tree.now,
    )
    .unwrap();
    up.refresh().unwrap();
    let infos: Vec<TargetFile> = names
        .iter()
        .map(|n| up.get_targetinfo(n).unwrap().expect("listed").info)
        .collect();
    let dest = tree.path("dest");
    let want = |idx: &[usize]| -> Vec<(&str, &TargetFile)> {
        idx.iter()
            .map(|&i| (names[i].as_str(), &infos[i]))
            .collect()
    };

    // 0..4 and 5, with 1 asked for twice.
    let got = up.fetch_targets(&want(&[0, 1, 2, 1, 3, 5]), &dest).unwrap();
    let order: Vec<PathBuf> = got.iter().map(|f| f.path().to_path_buf()).collect();
    let expected: Vec<PathBuf> = [0, 1, 2, 1, 3, 5]
        .iter()
        .map(|&i| up.target_path(&names[i], &dest))
        .collect();
    assert_eq!(order, expected);
    assert!(got.iter().all(|f| matches!(f, Fetched::Downloaded(_))));
    for i in [0, 1, 2, 3, 5] {
        let bytes = std::fs::read(up.target_path(&names[i], &dest)).unwrap();
        assert_eq!(bytes, image_bytes(&format!("fw{i}"), 70_000 + i * 1000));
    }
    assert_eq!(server.requests_for(&names[1]).len(), 1, "fetched once");

    // Again: every one verified in place, none fetched.
    let got = up.fetch_targets(&want(&[5, 0]), &dest).unwrap();
    assert!(got.iter().all(|f| matches!(f, Fetched::Cached(_))));
    assert_eq!(server.requests_for(&names[0]).len(), 1);

    // The wrong bytes of the fifth: its hash error, and nothing of it in the directory.
    let err = up.fetch_targets(&want(&[0, 4, 5]), &dest).unwrap_err();
    assert!(matches!(err, Error::TargetHash { .. }), "{err}");
    let mut left = files(&dest);
    left.sort();
    let mut kept: Vec<String> = [0, 1, 2, 3, 5].iter().map(|&i| names[i].clone()).collect();
    kept.sort();
    assert_eq!(left, kept);
}
