//! An image manifest of an encrypted image: `length`/`hashes` are the published ciphertext's
//! (what TUF and the regulators see), `encryption` the plaintext's (what the compact manifest
//! carries and the ECU verifies), and the two must agree with the encryption format.

use ota_metadata::documents::image_manifest::Encryption;
use ota_metadata::documents::ImageManifest;
use ota_metadata::roles::TargetFile;
use std::collections::BTreeMap;

const PLAIN_LEN: u64 = 100_000;
const CHUNK: u32 = 65_536;

fn encrypted() -> ImageManifest {
    let ct_len = ota_crypt::stream::ciphertext_len(CHUNK, PLAIN_LEN).unwrap();
    let mut m = ImageManifest::new(
        "acme",
        "brake-fw",
        "2.0",
        7,
        vec!["BRAKE-A".into()],
        ct_len,
        [0xc1; 32],
    )
    .unwrap();
    m.encryption = Some(Encryption {
        scheme: ota_crypt::stream::SCHEME.into(),
        chunk_size: CHUNK,
        length: PLAIN_LEN,
        hashes: BTreeMap::from([("sha256".into(), hex::encode([0x9a; 32]))]),
    });
    m
}

#[test]
fn the_target_is_the_ciphertext_and_the_compact_manifest_the_plaintext() {
    let m = encrypted();
    m.validate().unwrap();
    // 100,000 bytes in two chunks: header 40 + data + two tags.
    assert_eq!(m.length, 40 + PLAIN_LEN + 2 * 16);
    assert_eq!(m.plaintext().unwrap(), (PLAIN_LEN, [0x9a; 32]));
    let body = m.compact_body().unwrap();
    assert_eq!((body.length, body.sha256), (PLAIN_LEN, [0x9a; 32]));
    let target: TargetFile = serde_json::from_value(serde_json::json!({
        "length": m.length,
        "hashes": {"sha256": hex::encode([0xc1; 32])},
    }))
    .unwrap();
    m.check_target("brake-fw-2.0.bin", &target).unwrap();
    // The JSON round trip keeps it; a manifest without encryption has no such key.
    let json = serde_json::to_value(&m).unwrap();
    let back: ImageManifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
    let mut plain = m.clone();
    plain.encryption = None;
    assert!(serde_json::to_value(&plain)
        .unwrap()
        .get("encryption")
        .is_none());
}

#[test]
fn inconsistent_or_unknown_encryption_is_refused() {
    // A ciphertext length that is not the encryption of the plaintext's.
    let mut m = encrypted();
    m.length += 1;
    assert!(m.validate().is_err());
    // An unknown scheme, an out-of-range chunk size, no plaintext SHA-256.
    let mut m = encrypted();
    m.encryption.as_mut().unwrap().scheme = "rot13".into();
    assert!(m.validate().is_err());
    let mut m = encrypted();
    m.encryption.as_mut().unwrap().chunk_size = 3;
    assert!(m.validate().is_err());
    let mut m = encrypted();
    m.encryption.as_mut().unwrap().hashes.clear();
    assert!(m.validate().is_err());
    // Unknown fields inside `encryption` are refused, not ignored.
    let mut json = serde_json::to_value(encrypted()).unwrap();
    json["encryption"]["key"] = "secret".into();
    assert!(serde_json::from_value::<ImageManifest>(json).is_err());
}
