//! Gateway benchmark, against trees served by a real nginx over HTTPS on loopback:
//! - requests made by a check with nothing new (one timestamp per repository is the target);
//! - peak resident memory of `ota-gateway update` fetching, verifying and forwarding a 256 MiB
//!   image (target: under 16 MiB), and its wall time;
//! - hashing while downloading against `sha2` alone on the same 64 KiB buffers (target: 90%),
//!   both measured the same way (five runs, medians and spread; the marginal cost per pair of
//!   alternating downloads, not a difference of two minima);
//! - a cold update of 100 images of 1 MiB: wall time and peak memory.
//!
//! Peak memory is the `ota-gateway` process's own maximum RSS, from GNU time (`/usr/bin/time`).
//! Run: `cargo bench -p ota-client --bench gateway` (needs nginx and openssl).
//! `OTA_BENCH_QUICK=1` runs the same steps on a 16 MiB image and 10 images of 1 MiB (what
//! `.ci/run` does, so the benchmark never rots; its figures are not the ones to quote).

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
    for (prog, path) in [("nginx", None), ("/usr/bin/time", Some("/usr/bin/time"))] {
        let found = path.map_or_else(
            || ota_testkit::require_program(prog, prog).is_some(),
            |p| Path::new(p).exists(),
        );
        if !found {
            println!("skipping the gateway benchmark: {prog} is not installed");
            return;
        }
    }
    let nginx_bin = ota_testkit::require_program("nginx", "nginx").unwrap();
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
    let quick = std::env::var_os("OTA_BENCH_QUICK").is_some();
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
        let (t, c) = (Instant::now(), thread_cpu());
        let mut f = std::fs::File::create(w.p("plain.bin")).unwrap();
        fetcher.fetch_into(&raw_url, info.length, &mut f).unwrap();
        f.sync_all().unwrap();
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
}

/// Median, minimum and maximum of `runs`.
fn median_spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}
