//! The gateway on ARM (issue 25 §3): `ota-gateway` cross-built for `aarch64-unknown-linux-gnu`
//! (a Raspberry Pi 3 class board's Linux) runs an update under `qemu-aarch64`, over HTTPS from
//! nginx, with every check the x86-64 build makes.
//!
//! The binary must be built first (`scripts/test.sh` and `.ci/run` do):
//! `cargo build --release --target aarch64-unknown-linux-gnu -p ota-client --bin ota-gateway`
//! (the C and assembly of the crypto crates through Debian's `gcc-aarch64-linux-gnu`; the linker
//! and the runner are in `.cargo/config.toml`).

mod world;

use std::path::PathBuf;
use std::process::Command;
use world::served_world;

/// The aarch64 gateway, or a failure naming how to build it.
fn aarch64_gateway() -> PathBuf {
    let path = std::env::var_os("OTA_GATEWAY_AARCH64").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/aarch64-unknown-linux-gnu/release/ota-gateway")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --target aarch64-unknown-linux-gnu -p ota-client --bin ota-gateway` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// `qemu-aarch64`, with the aarch64 C library's root, or a failure naming the packages.
fn qemu() -> Command {
    let sysroot = PathBuf::from("/usr/aarch64-linux-gnu");
    assert!(
        sysroot.join("lib").exists(),
        "/usr/aarch64-linux-gnu is missing: install Debian's gcc-aarch64-linux-gnu"
    );
    let qemu = ota_testkit::require_program("qemu-aarch64", "qemu-user")
        .expect("qemu-aarch64 is missing: install Debian's qemu-user");
    let mut c = Command::new(qemu);
    c.arg("-L").arg(sysroot);
    c
}

/// Scenario: Arbitrary software | the gateway built for aarch64 (under qemu-aarch64) is given an ECU listed with another hardware id than its assigned image's | refused, nothing switches (all or nothing); with the right hardware id both ECUs install the released bytes over HTTPS
#[test]
fn the_aarch64_gateway_updates_over_https_under_qemu() {
    let gateway = aarch64_gateway();
    let (w, _nginx, _ca) = served_world().expect("nginx is needed (scripts/prerequisites.sh)");
    w.assign("S1", "1.0");
    w.assign("S2", "2.0");
    // S2 is listed with another hardware id than the image's: the gateway must refuse it.
    w.config("BRAKE-B");
    let run = |what: &str| {
        let out = qemu()
            .arg(&gateway)
            .arg("--config")
            .arg(w.p("gateway.toml"))
            .arg(what)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run("init");
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = run("update");
    // S2 refused for its hardware id, so nothing switches (the update is all or nothing).
    assert_ne!(code, Some(0), "{out}{err}");
    let both = format!("{out}{err}");
    assert!(
        both.contains("hardware id check failed") && both.contains("all or nothing"),
        "{both}"
    );
    assert!(!w.p("ecus/S1/image.bin").exists(), "{out}{err}");
    assert!(!w.p("ecus/S2/image.bin").exists(), "{out}{err}");
    // Listed with the right hardware id: both install, with the released bytes.
    w.config("BRAKE-A");
    let (code, out, err) = run("update");
    assert_eq!(code, Some(0), "{out}{err}");
    for (serial, byte) in [("S1", 1u8), ("S2", 2u8)] {
        assert_eq!(
            std::fs::read(w.p(&format!("ecus/{serial}/image.bin"))).unwrap(),
            vec![byte; 5000],
            "{out}{err}"
        );
    }
    // It is an aarch64 program: the ELF header's machine field is EM_AARCH64 (183).
    let elf = std::fs::read(&gateway).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183);
}
