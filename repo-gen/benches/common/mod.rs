//! What the publisher benchmarks share: a supplier working directory signed by one key, and
//! images added through the same library calls the CLI makes.

use ota_metadata::{DateTime, SigningKey};
use std::path::{Path, PathBuf};

/// Supplier `acme` in `dir/acme`, every role signed by `key` (written as a private file, as
/// `ota-repo key generate` makes keys: else the tool warns).
pub fn supplier(dir: &Path, key: &SigningKey, now: DateTime) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key_path = dir.join("k.pem");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .unwrap();
    f.write_all(key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let work = dir.join("acme");
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
    work
}

/// Add image `fw{i}` 1.0.0 of `size` bytes (distinct per `i`), staged through `src`.
pub fn add_image(work: &Path, src: &Path, i: u32, size: usize, now: DateTime) {
    let mut img = vec![0u8; size.max(4)];
    img[..4].copy_from_slice(&i.to_be_bytes());
    std::fs::write(src, &img).unwrap();
    ota_repo::supplier::add_image(
        work,
        ota_repo::supplier::AddImage {
            file: src.to_path_buf(),
            uid: format!("fw{i}"),
            version: "1.0.0".into(),
            release_counter: 1,
            hardware_ids: vec!["HW-A".into()],
            role: "targets".into(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        },
        now,
    )
    .unwrap();
}
