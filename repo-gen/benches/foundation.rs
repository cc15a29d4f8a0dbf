//! Foundation benchmark: prints RSA-3072 sign/verify rates, SHA-256 throughput over a 64 MiB
//! buffer, and the time to add 1,000 images of 64 KiB to a supplier repository and publish.
//! Where the machine has them, the same work by OpenSSL (`openssl speed`, `openssl dgst`) is
//! measured in the same run and printed as the reference.
//!
//! Run: `cargo bench -p ota-repo --bench foundation`

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

fn openssl_sha256(buf: &[u8]) -> Option<f64> {
    let path = std::env::temp_dir().join("ota-bench-sha.bin");
    std::fs::write(&path, buf).ok()?;
    // Warm the page cache, then time the hashing.
    Command::new("openssl")
        .args(["dgst", "-sha256"])
        .arg(&path)
        .output()
        .ok()?;
    let t = Instant::now();
    let ok = Command::new("openssl")
        .args(["dgst", "-sha256"])
        .arg(&path)
        .output()
        .ok()?
        .status
        .success();
    let d = t.elapsed();
    let _ = std::fs::remove_file(&path);
    ok.then(|| buf.len() as f64 / d.as_secs_f64() / 1e6)
}

fn main() {
    println!("== ota-repo foundation benchmark ==");
    let key = SigningKey::generate(3072).expect("keygen");
    let msg = vec![0x5au8; 1024];

    let n = 200;
    let t = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..n {
        sig = key.sign(&msg).unwrap();
    }
    let sign_rate = rate(n, t.elapsed());
    let public = key.public().to_public(key.key_id()).unwrap();
    let n = 2000;
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
    }

    let buf: Vec<u8> = (0..64usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let t = Instant::now();
    let digest = Sha256::digest(&buf);
    let mbps = buf.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
    println!(
        "SHA-256 over 64 MiB:        {mbps:>10.0} MB/s  ({})",
        &hex::encode(digest)[..16]
    );
    if let Some(r) = openssl_sha256(&buf) {
        println!(
            "  reference openssl dgst -sha256 (incl. file read): {r:.0} MB/s -> ours = {:.2}x",
            mbps / r
        );
    }

    // 1,000 images of 64 KiB, through the same library calls the CLI makes.
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap()).unwrap();
    let work = dir.path().join("acme");
    let now = ota_metadata::DateTime::now();
    ota_repo::supplier::init(
        &work,
        ota_repo::supplier::Init {
            name: "acme".into(),
            roles: ota_repo::supplier::RoleOptions {
                default_keys: vec![key_path],
                ..Default::default()
            },
            max_image_size: 1 << 30,
        },
        now,
    )
    .unwrap();
    let images = 1000;
    let mut img = vec![0u8; 64 << 10];
    let src = dir.path().join("img.bin");
    let t = Instant::now();
    for i in 0..images {
        img[..4].copy_from_slice(&(i as u32).to_be_bytes());
        std::fs::write(&src, &img).unwrap();
        ota_repo::supplier::add_image(
            &work,
            ota_repo::supplier::AddImage {
                file: src.clone(),
                uid: format!("fw{i}"),
                version: "1.0.0".into(),
                release_counter: 1,
                hardware_ids: vec!["HW-A".into()],
                role: "targets".into(),
                allow_rollback: false,
            },
            now,
        )
        .unwrap();
    }
    let add = t.elapsed();
    let t = Instant::now();
    ota_repo::supplier::publish(&work, now, false).unwrap();
    let publish = t.elapsed();
    println!(
        "add 1,000 images of 64 KiB: {:>8.2} s ({:.1} ms/image: 2 RSA-3072 signatures each)",
        add.as_secs_f64(),
        add.as_secs_f64() * 1000.0 / f64::from(images)
    );
    println!(
        "publish 3,000 targets:      {:>8.3} s",
        publish.as_secs_f64()
    );
    let t = Instant::now();
    let s = ota_repo::verify::verify(&work, None, now).unwrap();
    println!(
        "verify the whole tree:      {:>8.3} s ({} targets)",
        t.elapsed().as_secs_f64(),
        s.targets
    );
}
