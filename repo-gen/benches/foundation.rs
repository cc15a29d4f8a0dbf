//! Foundation benchmark: prints RSA-3072 sign/verify rates, SHA-256 throughput in memory, and
//! the time to add 1,000 images of 64 KiB to a supplier repository and publish. Where the
//! machine has it, the same work by OpenSSL (`openssl speed`) is measured in the same run, the
//! same way (in memory, timed by the program itself, five runs with their spread for SHA-256),
//! and printed as the reference.
//!
//! Run: `cargo bench -p ota-repo --bench foundation`. `OTA_BENCH_QUICK=1` runs every step with
//! a tenth of the work and one SHA-256 run a side (what `.ci/run` does, so the benchmark never
//! rots; its figures are not the ones to quote).

#[path = "common/mod.rs"]
mod common;

use ota_metadata::SigningKey;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::time::{Duration, Instant};

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

fn openssl_rsa3072() -> Option<(f64, f64)> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa3072"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 3072 bits 0.001234s 0.000045s    810.0  22222.2"
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rsa 3072 bits"))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

/// Median, minimum and maximum of `runs` figures.
fn spread(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

/// SHA-256 in memory, MB/s: 1 MiB buffers hashed one after another for one second, as
/// `openssl speed -bytes 1048576 -evp sha256` does on its side.
fn ours_sha256_run(buf: &[u8]) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    let mut x = 0u8;
    while t.elapsed() < Duration::from_secs(1) {
        x ^= Sha256::digest(buf)[0];
        n += 1;
    }
    std::hint::black_box(x);
    (n * buf.len() as u64) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// OpenSSL's SHA-256 over 1 MiB buffers for one second, timed by OpenSSL itself (no process
/// start, no file read), MB/s.
fn openssl_sha256_run() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-seconds", "1", "-bytes", "1048576", "-evp", "sha256",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("sha256"))?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k * 1000.0 / 1e6)
}

fn main() {
    println!("== ota-repo foundation benchmark ==");
    let quick = std::env::var_os("OTA_BENCH_QUICK").is_some();
    let scale = |n: u32| if quick { (n / 10).max(1) } else { n };
    let key = SigningKey::generate(3072).expect("keygen");
    let msg = vec![0x5au8; 1024];

    let n = scale(200);
    let t = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..n {
        sig = key.sign(&msg).unwrap();
    }
    let sign_rate = rate(n, t.elapsed());
    let public = key.public().to_public(key.key_id()).unwrap();
    let n = scale(2000);
    let t = Instant::now();
    for _ in 0..n {
        assert!(public.verify(&msg, &sig));
    }
    let verify_rate = rate(n, t.elapsed());
    println!("RSA-3072 PSS-SHA256 sign:   {sign_rate:>10.0} ops/s");
    println!("RSA-3072 PSS-SHA256 verify: {verify_rate:>10.0} ops/s");
    if let Some((s, v)) = openssl_rsa3072() {
        println!(
            "  reference openssl speed rsa3072: sign {s:.0} ops/s, verify {v:.0} ops/s -> ours = {:.2}x sign, {:.2}x verify",
            sign_rate / s,
            verify_rate / v
        );
    } else {
        SKIPPED.add("the openssl RSA-3072 reference (install openssl)");
    }

    // SHA-256: both sides hash 1 MiB buffers in memory for one second, five times; medians
    // and the spread (min-max) of each.
    let buf: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let sha_runs = if quick { 1 } else { 5 };
    let (mbps, lo, hi) = spread((0..sha_runs).map(|_| ours_sha256_run(&buf)).collect());
    println!(
        "SHA-256 in memory:          {mbps:>10.0} MB/s  (median of {sha_runs} run(s) of 1 s; {lo:.0}-{hi:.0})"
    );
    let openssl: Option<Vec<f64>> = (0..sha_runs).map(|_| openssl_sha256_run()).collect();
    if let Some(runs) = openssl {
        let (r, lo, hi) = spread(runs);
        println!(
            "  reference openssl speed -evp sha256 (1 MiB blocks, same method): {r:.0} MB/s ({lo:.0}-{hi:.0}) -> ours = {:.2}x",
            mbps / r
        );
    } else {
        SKIPPED.add("the openssl SHA-256 reference (install openssl)");
    }

    // 1,000 images of 64 KiB, through the same library calls the CLI makes.
    let dir = tempfile::tempdir().unwrap();
    let now = ota_metadata::DateTime::now();
    let work = common::supplier(dir.path(), &key, now);
    let images = scale(1000);
    let src = dir.path().join("img.bin");
    let t = Instant::now();
    for i in 0..images {
        common::add_image(&work, &src, i, 64 << 10, now);
    }
    let add = t.elapsed();
    let t = Instant::now();
    ota_repo::supplier::publish(&work, now, false).unwrap();
    let publish = t.elapsed();
    println!(
        "add {images} images of 64 KiB: {:>8.2} s ({:.1} ms/image: 2 RSA-3072 signatures each)",
        add.as_secs_f64(),
        add.as_secs_f64() * 1000.0 / f64::from(images)
    );
    println!(
        "publish {} targets:      {:>8.3} s",
        images * 3,
        publish.as_secs_f64()
    );
    let t = Instant::now();
    let s = ota_repo::verify::verify(&work, None, now).unwrap();
    println!(
        "verify the whole tree:      {:>8.3} s ({} targets)",
        t.elapsed().as_secs_f64(),
        s.targets
    );
    println!("{}", SKIPPED.last_line());
}

/// The references that could not run, for the last line.
static SKIPPED: ota_testkit::bench::Skipped = ota_testkit::bench::Skipped::new();
