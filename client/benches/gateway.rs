//! Gateway benchmark, against trees served by a real nginx over HTTPS on loopback:
//! - requests made by a check with nothing new (one timestamp per repository is the target);
//! - peak resident memory of `ota-gateway update` fetching, verifying and forwarding a 256 MiB
//!   image (target: under 16 MiB), and its wall time;
//! - hashing while downloading against `sha2` alone on the same 64 KiB buffers (target: 90%),
//!   both measured the same way (five runs, medians and spread; the marginal cost per pair of
//!   alternating downloads, not a difference of two minima);
//! - decrypting while downloading (issue 11): the same image encrypted by `supplier add-image
//!   --encrypt`; the decryptor's own time inside the download against the cipher alone on
//!   the same chunks (goal >= 0.9), and the download through the gateway's decrypting tap
//!   against the download without it (`OTA_BENCH_ONLY=decrypt` runs only this part);
//! - a cold update of 100 images of 1 MiB: wall time and peak memory;
//! - the size of the `ota-gateway` binary (target: stripped, at most 4 MiB).
//!
//! First, the client against python-tuf (target: a cold fetch in at most 0.25 of python-tuf's
//! wall time, a warm check in at most 0.05, a cold peak RSS of at most 16 MiB): a repository
//! made by python-tuf (`python_tuf_peer.py make`: RSA-3072, consistent snapshots, 100 targets
//! of 1 MiB) served by nginx over plain HTTP on loopback, fetched cold (trust the root,
//! refresh, download every target) by our client and by python-tuf's ngclient, five runs
//! each, alternating; then a warm check (refresh, nothing new) against the metadata each one
//! kept. Wall and CPU come from the peer's `measure` (wait4 rusage), peak RSS from GNU time.
//! Our client is this executable re-run with `--tuf-client`: the calls `ota-tuf-conformance
//! init` and `download` make, in one process as python-tuf's client runs. python-tuf is a
//! peer, installed with pip when missing, never a dependency.
//!
//! Peak memory is the `ota-gateway` process's own maximum RSS, from GNU time (`/usr/bin/time`).
//! Run: `cargo bench -p ota-client --bench gateway` (needs nginx and openssl; python3 for the
//! comparison). `OTA_BENCH_QUICK=1` runs the same steps on a 16 MiB image, 10 images of 1 MiB
//! and, against python-tuf, 10 targets of 256 KiB once (what `.ci/run` does, so the benchmark
//! never rots; its figures are not the ones to quote). `OTA_BENCH_ONLY=python-tuf` stops after
//! the comparison.

#[path = "../tests/world/mod.rs"]
mod world;

use ota_client::tuf::{targets_url, AnyFetcher, CaRoots, Fetch, HttpFetcher, Limits, Updater};
use ota_testkit::nginx::Nginx;
use ota_testkit::tls::TestCa;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use world::World;

const MIB: usize = 1 << 20;

/// CPU time this thread has run, in seconds (Linux: /proc/thread-self/schedstat, ns precision),
/// so a figure is not moved by time spent waiting for nginx on the other core.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Run `ota-gateway` under GNU time; returns (peak RSS in KiB, wall seconds, stdout).
fn gateway(config: &Path, cmd: &str) -> (u64, f64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "@@%M %e"])
        .arg(env!("CARGO_BIN_EXE_ota-gateway"))
        .arg("--config")
        .arg(config)
        .arg(cmd)
        .output()
        .expect("running /usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ota-gateway {cmd} failed: {stdout}{err}"
    );
    let line = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@"))
        .expect("GNU time output");
    let mut it = line.split_whitespace();
    let rss = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (rss, secs, stdout)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--tuf-client") {
        if let Err(e) = tuf_client(&args[at + 1..]) {
            eprintln!("tuf client: {e}");
            std::process::exit(1);
        }
        return;
    }
    for (prog, path) in [("nginx", None), ("/usr/bin/time", Some("/usr/bin/time"))] {
        let found = path.map_or_else(
            || ota_testkit::require_program(prog, prog).is_some(),
            |p| Path::new(p).exists(),
        );
        if !found {
            println!("skipping the gateway benchmark: {prog} is not installed");
            SKIPPED.add(format!("all (install {prog})"));
            println!("{}", SKIPPED.last_line());
            return;
        }
    }
    let nginx_bin = ota_testkit::require_program("nginx", "nginx").unwrap();
    let quick = std::env::var_os("OTA_BENCH_QUICK").is_some();
    let only = std::env::var("OTA_BENCH_ONLY").unwrap_or_default();
    if only != "decrypt" {
        vs_python_tuf(&nginx_bin, quick);
    }
    if only == "python-tuf" {
        println!("{}", SKIPPED.last_line());
        return;
    }
    println!("== ota-gateway benchmark (nginx over HTTPS on 127.0.0.1) ==");
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let trees: Vec<(&str, PathBuf)> = ["acme", "oem", "tuv"]
        .iter()
        .map(|n| (*n, tmp.path().join(n).join("repository")))
        .collect();
    for (_, p) in &trees {
        std::fs::create_dir_all(p).unwrap();
    }
    let refs: Vec<(&str, &Path)> = trees.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let nginx = Nginx::start_tls(&nginx_bin, &refs, &ca);
    let base = nginx.url("x").trim_end_matches("x/").to_string();
    let w = World::build(
        tmp,
        Some(Box::new(move |n| format!("{base}{n}/"))),
        Some(ca.ca_pem()),
    );

    // The images: one of 256 MiB, a hundred of 1 MiB (quick: 16 MiB and ten).
    let (big_mib, many_n) = if quick { (16, 10) } else { (256, 100) };
    let t = Instant::now();
    let big = w.p("big.bin");
    let big_bytes: Vec<u8> = (0..big_mib * MIB).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&big, &big_bytes).unwrap();
    let mut images = vec![(
        "big".to_string(),
        "1.0".to_string(),
        "BRAKE-BIG".to_string(),
        big.clone(),
    )];
    for i in 0..many_n {
        let f = w.p(&format!("m{i}.bin"));
        let bytes: Vec<u8> = (0..MIB).map(|j| (j * 13 + i) as u8).collect();
        std::fs::write(&f, bytes).unwrap();
        images.push((format!("m{i:03}"), "1.0".into(), "BRAKE-M".into(), f));
    }
    w.publish_images(&images);
    // The big image again, encrypted (64 KiB chunks), for the decrypt-while-downloading figure.
    let enc = ota_repo::supplier::add_image(
        &w.p("acme"),
        ota_repo::supplier::AddImage {
            file: big.clone(),
            uid: "bigenc".into(),
            version: "1.0".into(),
            release_counter: 1,
            hardware_ids: vec!["BRAKE-BIG".into()],
            role: "targets".into(),
            allow_rollback: false,
            encrypt: Some(ota_crypt::stream::DEFAULT_CHUNK),
            delta_from: Vec::new(),
        },
        w.now,
    )
    .unwrap();
    ota_repo::supplier::publish(&w.p("acme"), w.now, false).unwrap();
    let content_key = ota_crypt::content_key::ContentKey::parse(
        &std::fs::read(enc.content_key.unwrap()).unwrap(),
    )
    .unwrap()
    .key;
    let big_ecu = vec![(
        "BIG1".to_string(),
        "BRAKE-BIG".to_string(),
        "big".to_string(),
        "1.0".to_string(),
    )];
    w.vehicle("VIN2", &big_ecu);
    let many: Vec<(String, String, String, String)> = (0..many_n)
        .map(|i| {
            (
                format!("E{i:03}"),
                "BRAKE-M".to_string(),
                format!("m{i:03}"),
                "1.0".to_string(),
            )
        })
        .collect();
    w.vehicle("VIN3", &many);
    println!("(setup: {:.1} s)", t.elapsed().as_secs_f64());
    if only == "decrypt" {
        let fetcher = AnyFetcher::new(
            HttpFetcher::new(
                &Limits::default(),
                CaRoots::from_pem_file(&ca.ca_pem()).unwrap(),
            )
            .unwrap(),
        );
        decrypt_while_downloading(&w, &fetcher, &content_key);
        println!("{}", SKIPPED.last_line());
        return;
    }

    // 256 MiB: peak memory and wall time of the real binary.
    let cfg2 = w.config_for("vin2.toml", "VIN2", &[("BIG1".into(), "BRAKE-BIG".into())]);
    gateway(&cfg2, "init");
    let (rss, secs, out) = gateway(&cfg2, "update");
    assert!(out.contains("updated to big 1.0"), "{out}");
    println!(
        "update with a {big_mib} MiB image:  {secs:>6.2} s, peak RSS {:.1} MiB (target < 16 MiB: {})",
        rss as f64 / 1024.0,
        if rss < 16 * 1024 { "met" } else { "NOT met" }
    );

    // A check with nothing new: requests per repository.
    let before = nginx.access_log().lines().count();
    let (_, secs, out) = gateway(&cfg2, "check");
    assert!(out.contains("up to date"), "{out}");
    let log = nginx.access_log();
    let reqs: Vec<&str> = log.lines().skip(before).collect();
    for repo in ["oem", "tuv", "acme"] {
        let ts = reqs
            .iter()
            .filter(|l| l.contains(&format!("/{repo}/timestamp.json")))
            .count();
        let all = reqs
            .iter()
            .filter(|l| l.contains(&format!("/{repo}/")))
            .count();
        println!(
            "check, nothing new, {repo:>4}:     {ts} timestamp request(s), {all} request(s) in all"
        );
    }
    println!("check, nothing new, wall:     {secs:>6.2} s");

    // Hashing while downloading vs sha2 alone, on the same 64 KiB buffers. Both sides are
    // measured the same way: five runs each, medians, and the spread (min-max) printed.
    const RUNS: usize = 5;
    let mut alone = Vec::with_capacity(RUNS);
    let mut alone_cpu = Vec::with_capacity(RUNS);
    let mut want = [0u8; 32];
    for _ in 0..RUNS {
        let (t, c) = (Instant::now(), thread_cpu());
        let mut h = Sha256::new();
        for c in big_bytes.chunks(64 * 1024) {
            h.update(c);
        }
        want = h.finalize().into();
        alone.push(big_bytes.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
        alone_cpu.push(big_bytes.len() as f64 / (thread_cpu() - c).max(1e-9) / 1e6);
    }
    let (sha_alone, sha_lo, sha_hi) = median_spread(alone);
    let (sha_alone_cpu, shac_lo, shac_hi) = median_spread(alone_cpu);
    drop(big_bytes);
    let limits = Limits::default();
    let fetcher = AnyFetcher::new(
        HttpFetcher::new(&limits, CaRoots::from_pem_file(&ca.ca_pem()).unwrap()).unwrap(),
    );
    let md = w.p("bench-md");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::copy(w.p("acme/repository/1.root.json"), md.join("root.json")).unwrap();
    let url = w.url("acme");
    let mut up = Updater::new(&md, &url, &targets_url(&url), &fetcher, limits, w.now).unwrap();
    up.refresh().unwrap();
    let info = up.get_targetinfo("big-1.0.bin").unwrap().unwrap().info;
    let dest = w.p("bench-dl");
    std::fs::create_dir_all(&dest).unwrap();
    let sha_hex = hex::encode(want);
    let raw_url = format!("{}{sha_hex}.big-1.0.bin", targets_url(&url));
    // The same bytes over the same connection type into a file, without hashing, then with;
    // in pairs, alternating, so caches and the other core's load (nginx shares the two cores
    // with the client) affect both alike. Each pair gives one marginal figure (the time the
    // hashing added); the median of those, with their spread, is reported.
    let bytes = info.length as f64;
    let (mut plain, mut hashed) = (Vec::new(), Vec::new());
    let (mut marginal, mut marginal_cpu) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        // A new file each time, as download_target writes: rewriting a truncated file makes
        // ext4 start its write-out on close (auto_da_alloc), a cost the other side does not pay.
        let _ = std::fs::remove_file(w.p("plain.bin"));
        let (t, c) = (Instant::now(), thread_cpu());
        let mut f = std::fs::File::create(w.p("plain.bin")).unwrap();
        // No fsync: download_target does not fsync a target either (see tuf/download.rs).
        fetcher.fetch_into(&raw_url, info.length, &mut f).unwrap();
        let (p, pc) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
        let _ = std::fs::remove_file(up.target_path("big-1.0.bin", &dest));
        let (t, c) = (Instant::now(), thread_cpu());
        let path = up.download_target("big-1.0.bin", &info, &dest).unwrap();
        let (h, hc) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), info.length);
        plain.push(bytes / p / 1e6);
        hashed.push(bytes / h / 1e6);
        marginal.push((bytes / (h - p).max(1e-9) / 1e6).min(99_999.0) / sha_alone);
        marginal_cpu.push((bytes / (hc - pc).max(1e-9) / 1e6).min(99_999.0) / sha_alone_cpu);
    }
    let (plain, plo, phi) = median_spread(plain);
    let (hashed, hlo, hhi) = median_spread(hashed);
    let (ratio, rlo, rhi) = median_spread(marginal);
    let (ratio_cpu, rclo, rchi) = median_spread(marginal_cpu);
    println!("(medians of {RUNS} runs, min-max in parentheses)");
    println!("sha2 alone, 64 KiB buffers:   {sha_alone:>8.0} MB/s ({sha_lo:.0}-{sha_hi:.0})");
    println!("download without hashing:     {plain:>8.0} MB/s ({plo:.0}-{phi:.0})");
    println!("download with hashing:        {hashed:>8.0} MB/s ({hlo:.0}-{hhi:.0})");
    println!(
        "hashing while downloading:    marginal wall time = {ratio:.2} of sha2 alone ({rlo:.2}-{rhi:.2}; noisy: nginx shares the cores)"
    );
    // The robust figure: CPU time of the downloading thread, with and without hashing.
    println!("sha2 alone, thread CPU time:  {sha_alone_cpu:>8.0} MB/s ({shac_lo:.0}-{shac_hi:.0})");
    println!(
        "hashing while downloading:    marginal CPU time = {ratio_cpu:.2} of sha2 alone ({rclo:.2}-{rchi:.2}; target >= 0.90)"
    );

    decrypt_while_downloading(&w, &fetcher, &content_key);

    // Cold update: 100 ECUs, 100 images of 1 MiB.
    let ecus: Vec<(String, String)> = (0..many_n)
        .map(|i| (format!("E{i:03}"), "BRAKE-M".to_string()))
        .collect();
    let cfg3 = w.config_for("vin3.toml", "VIN3", &ecus);
    gateway(&cfg3, "init");
    let (rss, secs, out) = gateway(&cfg3, "update");
    assert_eq!(out.matches("updated to").count(), many_n, "{out}");
    println!(
        "cold update, {many_n} x 1 MiB:     {secs:>6.2} s, peak RSS {:.1} MiB",
        rss as f64 / 1024.0
    );

    // The binary measured above, built by the bench profile (which inherits release's:
    // LTO, one codegen unit, stripped).
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_ota-gateway")).map_or(0, |m| m.len());
    println!(
        "ota-gateway binary:           {size} bytes ({:.2} MiB, target <= 4 MiB: {})",
        size as f64 / MIB as f64,
        if size <= 4 << 20 { "met" } else { "NOT met" }
    );
    println!("{}", SKIPPED.last_line());
}

/// Sections that could not run, for the benchmark's last line.
static SKIPPED: ota_testkit::bench::Skipped = ota_testkit::bench::Skipped::new();

/// The gateway's decrypting tap ([`ota_client::decrypt::DecryptingTap`]: a
/// [`ota_crypt::stream::Decryptor`] whose plaintext is hashed and written to a file) with a
/// stopwatch on the decryptor: the time inside `Decryptor::update` less the time its output
/// callback spends hashing and writing. The calls are short (one 16 KiB TLS record, one 64 KiB
/// chunk), so wall time there is the thread's time; `Instant` costs tens of nanoseconds.
struct TimedDecrypt {
    key: ota_crypt::Key,
    path: PathBuf,
    state: Option<(
        ota_crypt::stream::Decryptor,
        Sha256,
        std::io::BufWriter<std::fs::File>,
    )>,
    decrypting: std::time::Duration,
}

impl ota_client::tuf::StreamTap for TimedDecrypt {
    fn restart(&mut self) -> std::io::Result<()> {
        let f = std::fs::File::create(&self.path)?;
        self.state = Some((
            ota_crypt::stream::Decryptor::new(&self.key),
            Sha256::new(),
            std::io::BufWriter::with_capacity(1 << 16, f),
        ));
        self.decrypting = std::time::Duration::ZERO;
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let (d, h, w) = self
            .state
            .as_mut()
            .ok_or_else(|| std::io::Error::other("not started"))?;
        let mut output = std::time::Duration::ZERO;
        let t = Instant::now();
        d.update(bytes, &mut |p| {
            let t = Instant::now();
            h.update(p);
            std::io::Write::write_all(w, p)?;
            output += t.elapsed();
            Ok(())
        })
        .map_err(std::io::Error::other)?;
        self.decrypting += t.elapsed().saturating_sub(output);
        Ok(())
    }
}

/// Decrypting while downloading. The encrypted image is downloaded in alternating triples:
/// - plain: no tap (the ciphertext staged and hashed, as any target is);
/// - timed: [`TimedDecrypt`], the time the decryptor takes inside the download (the pieces
///   TLS delivers, its own buffering, caches shared with TLS, hashing and writing): compared
///   with the cipher alone opening the same chunks from memory, the goal's ratio;
/// - gateway: the gateway's own [`ota_client::decrypt::DecryptingTap`]: its wall throughput
///   against the plain download's, and the thread CPU time it adds to the download against
///   the cipher and the plaintext's SHA-256 from memory.
fn decrypt_while_downloading(w: &World, fetcher: &AnyFetcher, key: &ota_crypt::Key) {
    const RUNS: usize = 7;
    let limits = Limits::default();
    let md = w.p("bench-md-enc");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::copy(w.p("acme/repository/1.root.json"), md.join("root.json")).unwrap();
    let url = w.url("acme");
    let mut up = Updater::new(&md, &url, &targets_url(&url), fetcher, limits, w.now).unwrap();
    up.refresh().unwrap();
    let staging = w.p("bench-enc");
    let info = ota_client::image::find_image(&mut up, &url, "bigenc", "1.0", &staging).unwrap();
    let bytes = info.target.length as f64;
    let ciphertext = std::fs::read(
        up.download_target(&info.name, &info.target, &staging)
            .unwrap(),
    )
    .unwrap();
    let header = ota_crypt::stream::Header::parse(&ciphertext).unwrap();
    let aad = header.encode();

    // The cipher alone, from memory: open each sealed chunk in place (after a copy into a
    // work buffer, as the decryptor must), and the same with the plaintext's SHA-256.
    let sealed = header.chunk_size as usize + ota_crypt::stream::TAG_LEN;
    let mut work = vec![0u8; sealed];
    let mut alone = |hash: bool| {
        let (t, c) = (Instant::now(), thread_cpu());
        let cipher = header.sealer(key);
        let mut h = Sha256::new();
        let chunks = ciphertext[ota_crypt::stream::HEADER_LEN..].chunks(sealed);
        for (i, chunk) in chunks.enumerate() {
            work[..chunk.len()].copy_from_slice(chunk);
            let tail = header.nonce_tail(i as u32);
            let p = cipher.open(&tail, &aad, &mut work[..chunk.len()]).unwrap();
            if hash {
                h.update(&*p);
            }
            std::hint::black_box(p);
        }
        std::hint::black_box(h.finalize());
        (
            bytes / t.elapsed().as_secs_f64() / 1e6,
            bytes / (thread_cpu() - c).max(1e-9) / 1e6,
        )
    };
    let (cipher_wall, cipher): (Vec<f64>, Vec<f64>) = (0..RUNS).map(|_| alone(false)).unzip();
    let (_, cipher_hashed): (Vec<f64>, Vec<f64>) = (0..RUNS).map(|_| alone(true)).unzip();
    drop(ciphertext);
    let (cipher_wall, cwlo, cwhi) = median_spread(cipher_wall);
    let (cipher, clo, chi) = median_spread(cipher);
    let (cipher_h, chlo, chhi) = median_spread(cipher_hashed);

    // The downloads stage and write to memory (tmpfs) when the machine has it, so the disk's
    // write-back does not land on one run and not another.
    let shm = tempfile::Builder::new()
        .prefix("ota-bench-")
        .tempdir_in("/dev/shm")
        .ok();
    let staging = shm.as_ref().map_or(staging, |d| d.path().to_path_buf());
    let out = staging.join("plain.out");
    let run = |tap: Option<&mut dyn ota_client::tuf::StreamTap>| {
        let _ = std::fs::remove_file(up.target_path(&info.name, &staging));
        let (t, c) = (Instant::now(), thread_cpu());
        up.download_target_tapped(&info.name, &info.target, &staging, tap)
            .unwrap();
        (t.elapsed().as_secs_f64(), thread_cpu() - c)
    };
    let (mut plain_wall, mut gateway_wall) = (Vec::new(), Vec::new());
    let (mut in_place, mut added) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (pw, pc) = run(None);
        let mut timed = TimedDecrypt {
            key: key.clone(),
            path: out.clone(),
            state: None,
            decrypting: std::time::Duration::ZERO,
        };
        run(Some(&mut timed));
        let (_, h, _) = timed.state.take().unwrap();
        assert_eq!(
            <[u8; 32]>::from(h.finalize()),
            info.manifest.plaintext().unwrap().1
        );
        in_place.push(bytes / timed.decrypting.as_secs_f64().max(1e-9) / 1e6);
        let (dw, dc) = {
            let mut tap =
                ota_client::decrypt::DecryptingTap::new(key, &out, &info.manifest).unwrap();
            let r = run(Some(&mut tap));
            tap.finish().unwrap();
            r
        };
        plain_wall.push(bytes / pw / 1e6);
        gateway_wall.push(bytes / dw / 1e6);
        added.push(bytes / (dc - pc).max(1e-9) / 1e6 / cipher_h);
    }
    let (pw, pwlo, pwhi) = median_spread(plain_wall);
    let (dw, dwlo, dwhi) = median_spread(gateway_wall);
    let (ip, iplo, iphi) = median_spread(in_place);
    let (ratio_a, ralo, rahi) = median_spread(added);
    println!("cipher alone (XChaCha20-Poly1305, 64 KiB chunks from memory): {cipher_wall:.0} MB/s wall ({cwlo:.0}-{cwhi:.0}), {cipher:.0} MB/s of thread CPU ({clo:.0}-{chi:.0})");
    println!("  ... and SHA-256 of the plaintext:  {cipher_h:>6.0} MB/s of thread CPU ({chlo:.0}-{chhi:.0})");
    println!("decryptor inside the download:       {ip:>6.0} MB/s ({iplo:.0}-{iphi:.0})");
    println!(
        "decrypting while downloading: {:.2} of the cipher's own speed (wall, {:.2}-{:.2}; goal >= 0.90)",
        ip / cipher_wall,
        iplo / cipher_wall,
        iphi / cipher_wall
    );
    println!("encrypted image, plain download:     {pw:>6.0} MB/s wall ({pwlo:.0}-{pwhi:.0})");
    println!("  ... through the gateway's decrypting tap: {dw:.0} MB/s wall ({dwlo:.0}-{dwhi:.0}), {:.2} of the plain download", dw / pw);
    println!(
        "the decrypting tap's added CPU time: {ratio_a:.2} of the cipher and SHA-256 from memory ({ralo:.2}-{rahi:.2}; writing the plaintext included)"
    );
}

/// Median, minimum and maximum of `runs`.
fn median_spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

// ---------------------------------------------------------------------------------------
// Cold and warm fetch against python-tuf.

/// The python-tuf peer: makes the repository, runs python-tuf's client, and times a child.
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_tuf_peer.py");

/// The variable that sets `Limits::download_concurrency` of our client (the same as
/// `ota-tuf-conformance`'s).
const CONCURRENCY_VAR: &str = "OTA_TUF_DOWNLOAD_CONCURRENCY";

use ota_testkit::python3 as python;

/// python-tuf's version if it (and pyca/cryptography) can be imported, after installing it
/// with pip when it cannot: a peer of this benchmark, never a dependency of the project.
fn python_tuf() -> Result<String, String> {
    let check = || {
        python()
            .arg(PEER)
            .arg("--check")
            .output()
            .map_err(|e| format!("python3: {e}"))
    };
    let out = check()?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    println!("(python-tuf is not importable: python3 -m pip install -q tuf cryptography)");
    let _ = python()
        .args(["-m", "pip", "install", "-q", "tuf", "cryptography"])
        .status();
    let out = check()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Wall and CPU seconds (user + system) of one run of `cmd`, from the peer's `measure`
/// (perf_counter around spawn and wait4, rusage in microseconds), so both clients are timed
/// by the same code.
fn timed(cmd: &[String], env: &[(&str, String)]) -> (f64, f64) {
    let out = python()
        .arg(PEER)
        .args(["measure", "--"])
        .args(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("running the python-tuf peer");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0))
}

/// Peak RSS in KiB of one run of `cmd`, from GNU time (a small C parent: a forked Python or
/// benchmark process would count its own memory as the child's peak).
fn peak_rss(cmd: &[String], env: &[(&str, String)]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "@@%M"])
        .args(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("http_proxy")
        .output()
        .expect("running /usr/bin/time");
    assert!(out.status.success(), "{cmd:?} failed");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Our client in a child process: this benchmark's own executable run with `--tuf-client`,
/// doing what `ota-tuf-conformance init` then `download` do, in one process as python-tuf's
/// client does (trust the root, refresh, look every target up, fetch them all with
/// [`Updater::fetch_targets`]); `warm` only refreshes, against metadata already held.
/// Arguments: `cold|warm METADATA_DIR TARGET_DIR ROOT BASE_URL TARGET...`.
fn tuf_client(args: &[String]) -> Result<(), String> {
    // `start`: the process's start-up alone, what every run pays before its work.
    if args.first().is_some_and(|m| m == "start") {
        return Ok(());
    }
    let [mode, md, td, root, base, names @ ..] = args else {
        return Err("usage: --tuf-client cold|warm MD TD ROOT URL TARGET...".into());
    };
    let mut limits = Limits::default();
    if let Some(n) = std::env::var(CONCURRENCY_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        limits.download_concurrency = n;
    }
    let e = |e: ota_client::tuf::Error| e.to_string();
    if mode == "cold" {
        let bytes = std::fs::read(root).map_err(|e| e.to_string())?;
        ota_client::tuf::init_trusted_root(Path::new(md), &bytes, &limits).map_err(e)?;
    }
    let fetcher = HttpFetcher::new(&limits, CaRoots::None).map_err(|x| x.to_string())?;
    let now = ota_metadata::DateTime::now();
    let mut up = Updater::new(md, base, &targets_url(base), fetcher, limits, now).map_err(e)?;
    up.refresh().map_err(e)?;
    if mode == "warm" {
        return Ok(());
    }
    let mut found = Vec::with_capacity(names.len());
    for n in names {
        let f = up
            .get_targetinfo(n)
            .map_err(e)?
            .ok_or(format!("{n}: not found"))?;
        found.push((n.as_str(), f.info));
    }
    let wanted: Vec<(&str, &ota_metadata::roles::TargetFile)> =
        found.iter().map(|(n, i)| (*n, i)).collect();
    let done = up.fetch_targets(&wanted, Path::new(td)).map_err(e)?;
    if done.len() == names.len() {
        Ok(())
    } else {
        Err("not every target was fetched".into())
    }
}

/// The headline: a cold fetch of many targets from a repository python-tuf made (RSA-3072,
/// consistent snapshots), served by nginx over HTTP on loopback, by our client and by
/// python-tuf's ngclient, median of five runs each (alternating, so the load of the two
/// cores weighs on both alike), and a warm check (nothing new), in the same run.
fn vs_python_tuf(nginx_bin: &Path, quick: bool) {
    let (count, size, runs) = if quick {
        (10, 256 * 1024, 1)
    } else {
        (100, MIB, 5)
    };
    println!(
        "== cold fetch of {count} targets x {} KiB: ours vs python-tuf (nginx, HTTP, 127.0.0.1) ==",
        size / 1024
    );
    let version = match python_tuf() {
        Ok(v) => v,
        Err(why) => {
            println!("skipping the comparison: python-tuf is not available ({why})");
            SKIPPED.add(format!("the python-tuf comparison ({why})"));
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let made = python()
        .arg(PEER)
        .args(["make"])
        .arg(&repo)
        .args([count.to_string(), size.to_string()])
        .output()
        .expect("python-tuf making the repository");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&made.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), count);
    let nginx = Nginx::start(nginx_bin, &[("py", repo.as_path())]);
    let url = nginx.url("py");
    let root = repo.join("1.root.json").display().to_string();
    let me = std::env::current_exe().unwrap().display().to_string();
    let s = |p: &Path| p.display().to_string();
    let ours = |mode: &str, md: &Path, td: &Path| -> Vec<String> {
        let mut c = vec![me.clone(), "--tuf-client".into(), mode.into(), s(md), s(td)];
        c.extend([root.clone(), url.clone()]);
        c.extend(names.iter().cloned());
        c
    };
    let theirs = |md: &Path, td: &Path, warm: bool| -> Vec<String> {
        let mut c = vec!["python3".into(), PEER.into(), "client".into(), s(md), s(td)];
        c.extend([root.clone(), url.clone()]);
        if warm {
            c.push("--refresh-only".into());
        }
        c
    };
    let fresh = |what: &str, i: usize| {
        let d = tmp.path().join(format!("{what}-{i}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("t")).unwrap();
        (d.join("m"), d.join("t"))
    };
    let no_env: Vec<(&str, String)> = Vec::new();
    let (mut o_wall, mut o_cpu, mut p_wall, mut p_cpu) = (vec![], vec![], vec![], vec![]);
    let (mut o_warm, mut p_warm) = (vec![], vec![]);
    for i in 0..runs {
        let (md, td) = fresh("ours", i);
        let (w, c) = timed(&ours("cold", &md, &td), &no_env);
        o_wall.push(w);
        o_cpu.push(c);
        assert_eq!(std::fs::read_dir(&td).unwrap().count(), count);
        o_warm.push(timed(&ours("warm", &md, &td), &no_env).0);
        let (md, td) = fresh("python", i);
        let (w, c) = timed(&theirs(&md, &td, false), &no_env);
        p_wall.push(w);
        p_cpu.push(c);
        assert_eq!(std::fs::read_dir(&td).unwrap().count(), count);
        p_warm.push(timed(&theirs(&md, &td, true), &no_env).0);
    }
    // Process start-up: ours (this executable doing nothing) and python-tuf's (the
    // interpreter importing the client), so the warm figure can be read without it.
    let (mut o_start, mut p_start) = (vec![], vec![]);
    for _ in 0..runs {
        o_start.push(
            timed(
                &[me.clone(), "--tuf-client".into(), "start".into()],
                &no_env,
            )
            .0,
        );
        let import = "import tuf.ngclient, cryptography".to_string();
        p_start.push(timed(&["python3".into(), "-c".into(), import], &no_env).0);
    }
    let (md, td) = fresh("ours-rss", 0);
    let o_rss = peak_rss(&ours("cold", &md, &td), &no_env);
    let (md, td) = fresh("python-rss", 0);
    let p_rss = peak_rss(&theirs(&md, &td, false), &no_env);
    let med = |v: Vec<f64>| median_spread(v).0;
    let (ow, oc, pw, pc) = (med(o_wall), med(o_cpu), med(p_wall), med(p_cpu));
    let (ow2, pw2) = (med(o_warm), med(p_warm));
    let verdict = |ratio: f64, goal: f64| if ratio <= goal { "met" } else { "NOT met" };
    println!("{version}; each figure the median of {runs} run(s); ratio = ours / python-tuf");
    println!("                                 ours   python-tuf   ratio   goal");
    println!(
        "cold (refresh + {count:>3}) wall  {ow:>7.3} s  {pw:>7.3} s   {:>6.3}   <= 0.25 ({})",
        ow / pw,
        verdict(ow / pw, 0.25)
    );
    println!(
        "cold CPU (user + sys)      {oc:>7.3} s  {pc:>7.3} s   {:>6.3}",
        oc / pc
    );
    println!(
        "warm (nothing new) wall    {ow2:>7.3} s  {pw2:>7.3} s   {:>6.3}   <= 0.05 ({})",
        ow2 / pw2,
        verdict(ow2 / pw2, 0.05)
    );
    let (os, ps) = (med(o_start), med(p_start));
    println!(
        "process start-up          {os:>7.3} s  {ps:>7.3} s   {:>6.3}",
        os / ps
    );
    println!(
        "warm, start-up taken out   {:>7.3} s  {:>7.3} s   {:>6.3}   (medians' difference)",
        ow2 - os,
        pw2 - ps,
        (ow2 - os) / (pw2 - ps)
    );
    println!(
        "cold peak RSS              {:>5.1} MiB  {:>5.1} MiB            ours <= 16 MiB ({})",
        o_rss as f64 / 1024.0,
        p_rss as f64 / 1024.0,
        if o_rss <= 16 * 1024 { "met" } else { "NOT met" }
    );
    // How the default concurrency was chosen: cold wall by concurrency.
    let mut line = String::from("cold wall by download concurrency (median of runs):");
    for conc in [1usize, 2, 4, 8] {
        let env = vec![(CONCURRENCY_VAR, conc.to_string())];
        let walls: Vec<f64> = (0..runs.min(3))
            .map(|i| {
                let (md, td) = fresh(&format!("conc{conc}"), i);
                timed(&ours("cold", &md, &td), &env).0
            })
            .collect();
        line += &format!("  {conc}: {:.3} s", med(walls));
    }
    println!("{line}");
    println!(
        "(default {}; nginx and both clients share the machine's cores)",
        Limits::default().download_concurrency
    );
}
