//! The fuzz targets of `ota-fuzz` (the stable-toolchain mutation fuzzer, `src/main.rs`) and of
//! `ota-fuzz-afl` (the same targets under AFL++'s coverage-guided engine, `src/bin/`): one
//! registry, so both fuzz exactly the same code with the same input bounds.

pub mod mutate;
pub mod targets;

use std::path::Path;

/// Every target, in the order runs take them.
pub const TARGETS: [&str; 10] = [
    "metadata",
    "compact-manifest",
    "isotp",
    "uds",
    "ecu-trust",
    "gateway-config",
    "image-crypt",
    "serial-line",
    "elf",
    "delta",
];

/// The target called `name` (`selftest`, hidden, panics on purpose); `sample` is the sample
/// trees its seeds come from.
pub fn target(name: &str, sample: &Path) -> Option<targets::Target> {
    Some(match name {
        "metadata" => targets::metadata(sample),
        "compact-manifest" => targets::compact_manifest(sample),
        "isotp" => targets::isotp(),
        "uds" => targets::uds(),
        "gateway-config" => targets::gateway_config(),
        "ecu-trust" => targets::ecu_trust(),
        "image-crypt" => targets::image_crypt(),
        "serial-line" => targets::serial_line(),
        "elf" => targets::elf(),
        "delta" => targets::delta(),
        "selftest" => targets::selftest(),
        _ => return None,
    })
}

/// FNV-1a: names an input file by its content.
pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}
