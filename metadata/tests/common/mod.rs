#![allow(dead_code)]
use ota_metadata::SigningKey;
use std::sync::OnceLock;

/// A few 2048-bit keys, generated once per test binary.
pub fn keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4)
            .map(|_| SigningKey::generate(2048).unwrap())
            .collect()
    })
}
