//! A simulated vehicle: the real `ota-gateway` process updating ECUs that run the ECU crate's
//! simulator (bootloader + UDS over ISO-TP) on the UDP-carried CAN bus. The ECUs verify the
//! supplier's signature, hardware id, release counter and hash again before holding an image
//! pending; the gateway activates them all or none (more in `two_phase.rs`).

mod ecu_process;
mod world;

use ota_ecu::flash::file::FileFlash;
use ota_ecu::state::EcuState;
use ota_testkit::images::point_release_pair;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use world::World;

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Not a test of its own: the ECU processes' entry point (see `ecu_process`).
#[test]
fn ecu_simulator_process() {
    ecu_process::entry()
}

type Ecu = ecu_process::Sim;

fn start_ecu(
    serial: &str,
    hw: &str,
    addr: SocketAddr,
    gw: SocketAddr,
    key: &Path,
    flash: &Path,
    can_id: u16,
) -> Ecu {
    start_ecu_with(serial, hw, addr, gw, key, flash, can_id, None)
}

#[allow(clippy::too_many_arguments)]
fn start_ecu_with(
    serial: &str,
    hw: &str,
    addr: SocketAddr,
    gw: SocketAddr,
    key: &Path,
    flash: &Path,
    can_id: u16,
    ecu_key: Option<&Path>,
) -> Ecu {
    let mut args: Vec<String> = [
        "--bind",
        &addr.to_string(),
        "--peer",
        &gw.to_string(),
        "--serial",
        serial,
        "--hardware-id",
        hw,
        "--supplier-key",
        &key.display().to_string(),
        "--flash-dir",
        &flash.display().to_string(),
        "--rx-id",
        &format!("0x{can_id:03X}"),
        "--tx-id",
        &format!("0x{:03X}", can_id + 8),
        "--fd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(k) = ecu_key {
        args.extend(["--ecu-key".to_string(), k.display().to_string()]);
    }
    ecu_process::spawn(&args)
}

fn installed(flash: &Path) -> EcuState {
    let mut f = FileFlash::open(flash, 16 << 20).unwrap();
    EcuState::load(&mut f).unwrap()
}

#[test]
fn the_gateway_updates_ecus_over_can_and_the_ecus_check_again() {
    let w = World::new();
    w.assign("S1", "1.0");
    w.assign("S2", "2.0");
    let signer = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
    std::fs::write(
        w.p("supplier.pub.pem"),
        ota_metadata::signing::public_pem(&signer.rsa_public()).unwrap(),
    )
    .unwrap();
    // S2 was provisioned with another supplier key: it must refuse what the gateway accepted.
    let other = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(
        w.p("other.pub.pem"),
        ota_metadata::signing::public_pem(&other.rsa_public()).unwrap(),
    )
    .unwrap();
    let (gw, a1, a2) = (free_port(), free_port(), free_port());
    let _e1 = start_ecu(
        "S1",
        "BRAKE-A",
        a1,
        gw,
        &w.p("supplier.pub.pem"),
        &w.p("flash-s1"),
        0x7E0,
    );
    let _e2 = start_ecu(
        "S2",
        "BRAKE-A",
        a2,
        gw,
        &w.p("other.pub.pem"),
        &w.p("flash-s2"),
        0x7E1,
    );
    let cfg = w.p("gw-can.toml");
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state-can\"\n\
             [forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{a1}\", \"{a2}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n\
             [[ecus]]\nserial = \"S2\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E1\n",
            w.url("oem")
        ),
    )
    .unwrap();
    let gw_bin = env!("CARGO_BIN_EXE_ota-gateway");
    assert!(Command::new(gw_bin)
        .arg("-c")
        .arg(&cfg)
        .arg("init")
        .status()
        .unwrap()
        .success());
    let out = Command::new(gw_bin)
        .arg("-c")
        .arg(&cfg)
        .arg("update")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "S2 must fail: {stdout}{stderr}");
    assert!(
        stderr.contains("ECU S2: FAILED") && stderr.contains("signature"),
        "{stdout}{stderr}"
    );
    // All or nothing: S1 verified its image, but S2 refused, so S1 does not switch either.
    assert!(
        stderr.contains("ECU S1: NOT switched to brake-fw 1.0") && stderr.contains("ECU S2 failed"),
        "{stdout}{stderr}"
    );
    for flash in ["flash-s1", "flash-s2"] {
        let st = installed(&w.p(flash));
        assert!(
            st.image.is_none() && st.pending.is_none(),
            "{flash} must keep no image and hold nothing pending: {st:?}"
        );
    }
    // The gateway records only what the ECUs run.
    let status = Command::new(gw_bin)
        .arg("-c")
        .arg(&cfg)
        .arg("status")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("ECU S1 [BRAKE-A]: unknown")
            && status.contains("ECU S2 [BRAKE-A]: unknown"),
        "{status}"
    );

    // Nothing assigned to S2 any more: S1 alone updates.
    ota_repo::oem::ecu_remove(&w.p("oem"), "VIN1", "S2").unwrap();
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    let out = Command::new(gw_bin)
        .arg("-c")
        .arg(&cfg)
        .arg("update")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ECU S1: updated to brake-fw 1.0"),
        "{stdout}{stderr}"
    );
    let s1 = installed(&w.p("flash-s1"));
    assert_eq!(
        s1.image.map(|i| i.version.as_str().to_string()),
        Some("1.0".into())
    );
    assert_eq!((s1.release_counter, s1.pending), (1, None));
}

fn write_key(path: &Path) {
    let k = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(path, k.to_pkcs8_pem().unwrap()).unwrap();
}

/// Scenario: Uptane ECU serial | an ECU replaced or unknown in the vehicle's signed report | flagged by the OEM
#[test]
fn version_reports_flag_replaced_and_unknown_ecus() {
    let w = World::new();
    w.assign("S1", "1.0");
    let signer = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
    std::fs::write(
        w.p("supplier.pub.pem"),
        ota_metadata::signing::public_pem(&signer.rsa_public()).unwrap(),
    )
    .unwrap();
    for k in ["vehicle.pem", "s1.pem", "s2.pem", "s2-new.pem"] {
        write_key(&w.p(k));
    }
    let oem = w.p("oem");
    ota_repo::oem::vehicle_key(&oem, "VIN1", &w.p("vehicle.pem")).unwrap();
    ota_repo::oem::ecu_key(&oem, "VIN1", "S1", &w.p("s1.pem")).unwrap();
    ota_repo::oem::ecu_key(&oem, "VIN1", "S2", &w.p("s2.pem")).unwrap();
    let (gw, a1, a2) = (free_port(), free_port(), free_port());
    let cfg = w.p("gw-report.toml");
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state-rep\"\n\
             vehicle_key = \"vehicle.pem\"\n[forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{a1}\", \"{a2}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n\
             [[ecus]]\nserial = \"S2\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E1\n",
            w.url("oem")
        ),
    )
    .unwrap();
    let gw_bin = env!("CARGO_BIN_EXE_ota-gateway");
    let run = |args: &[&str]| {
        Command::new(gw_bin)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let key = w.p("supplier.pub.pem");
    let report = |name: &str| {
        let out = run(&["report", "--out", &w.p(name).display().to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.p(name)
    };
    {
        let _e1 = start_ecu_with(
            "S1",
            "BRAKE-A",
            a1,
            gw,
            &key,
            &w.p("f1"),
            0x7E0,
            Some(&w.p("s1.pem")),
        );
        let _e2 = start_ecu_with(
            "S2",
            "BRAKE-A",
            a2,
            gw,
            &key,
            &w.p("f2"),
            0x7E1,
            Some(&w.p("s2.pem")),
        );
        assert!(run(&["update"]).status.success());
        let r = report("r1.json");
        let got = ota_repo::oem::ingest(&oem, &r).unwrap();
        let ota_fleet::Applied::Ingested {
            accepted, flagged, ..
        } = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(accepted, 2);
        assert!(flagged.is_empty(), "{flagged:?}");
        let mut db = ota_repo::oem::reports::open(&oem).unwrap();
        let s1 = db
            .transaction(|tx| ota_fleet::store::reported(tx, "VIN1", "S1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s1.uid.as_str(), s1.version.as_str(), s1.release_counter),
            ("brake-fw", "1.0", 1)
        );
        // The same report again (an upload whose answer was lost) is already seen, not an
        // error, and changes nothing.
        let again = ota_repo::oem::ingest(&oem, &r).unwrap();
        assert_eq!(again, ota_fleet::Applied::AlreadySeen);
    }
    {
        // S2 swapped for a part with another key; S1's address now answers with serial S9.
        let _e1 = start_ecu_with(
            "S9",
            "BRAKE-A",
            a1,
            gw,
            &key,
            &w.p("f9"),
            0x7E0,
            Some(&w.p("s1.pem")),
        );
        let _e2 = start_ecu_with(
            "S2",
            "BRAKE-A",
            a2,
            gw,
            &key,
            &w.p("f2"),
            0x7E1,
            Some(&w.p("s2-new.pem")),
        );
        // Reports are timestamped in seconds and must be newer than the last one ingested:
        // this one is made half an hour on (the gateway's clock, not a sleep; the reports
        // below are an hour on).
        let half_hour_on = w.now.plus_seconds(1800).to_string();
        let out = run(&[
            "--now",
            &half_hour_on,
            "report",
            "--out",
            &w.p("r2.json").display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = w.p("r2.json");
        let got = ota_repo::oem::ingest(&oem, &r).unwrap();
        let ota_fleet::Applied::Ingested {
            accepted, flagged, ..
        } = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(accepted, 0);
        let reasons: Vec<String> = flagged
            .iter()
            .map(|f| format!("{}: {}", f.serial, f.reason))
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("S9: unknown ECU serial")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("S2: the report does not verify")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("S1: did not report")),
            "{reasons:?}"
        );
        let stored: Vec<String> = ota_repo::oem::flags(&oem)
            .unwrap()
            .into_iter()
            .map(|f| f.serial)
            .collect();
        assert!(
            stored.contains(&"S9".into()) && stored.contains(&"S2".into()),
            "{stored:?}"
        );
    }
    // A report signed by another vehicle key is refused outright.
    let forged = w.p("forged.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.p("r2.json")).unwrap()).unwrap();
    let other = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(
        &forged,
        ota_metadata::sign_document(&doc["signed"], &[&other]).unwrap(),
    )
    .unwrap();
    let err = ota_repo::oem::ingest(&oem, &forged)
        .unwrap_err()
        .to_string();
    assert!(err.contains("threshold"), "{err}");

    // After review, the flags are cleared: one ECU's, then the rest of the vehicle's.
    let serials = |f: Vec<ota_fleet::store::StoredFlag>| {
        let mut v: Vec<String> = f.into_iter().map(|f| f.serial).collect();
        v.sort();
        v
    };
    assert_eq!(
        serials(ota_repo::oem::flags(&oem).unwrap()),
        ["S1", "S2", "S9"]
    );
    let cleared = ota_repo::oem::clear_flags(&oem, "VIN1", Some("S9")).unwrap();
    assert_eq!(serials(cleared), ["S9"]);
    assert_eq!(serials(ota_repo::oem::flags(&oem).unwrap()), ["S1", "S2"]);
    assert_eq!(
        serials(ota_repo::oem::clear_flags(&oem, "VIN1", None).unwrap()),
        ["S1", "S2"]
    );
    assert!(ota_repo::oem::flags(&oem).unwrap().is_empty());
    let err = ota_repo::oem::clear_flags(&oem, "VIN1", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no flag for VIN1"), "{err}");

    // Two reports generated in the same second: the gateway's signed report counter orders
    // them, so the second is news, and the first, sent after it, is the replay.
    let _e1 = start_ecu_with(
        "S1",
        "BRAKE-A",
        a1,
        gw,
        &key,
        &w.p("f1"),
        0x7E0,
        Some(&w.p("s1.pem")),
    );
    let _e2 = start_ecu_with(
        "S2",
        "BRAKE-A",
        a2,
        gw,
        &key,
        &w.p("f2"),
        0x7E1,
        Some(&w.p("s2.pem")),
    );
    // One second, after every report made above, whatever today's date (no fixed date: it
    // would turn this test into a time bomb the day it passed).
    let later = w.now.plus_seconds(3600).to_string();
    let same_second = |name: &str| {
        let out = run(&[
            "--now",
            &later,
            "report",
            "--out",
            &w.p(name).display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.p(name)
    };
    let (r3, r4) = (same_second("r3.json"), same_second("r4.json"));
    for r in [&r3, &r4] {
        let got = ota_repo::oem::ingest(&oem, r).unwrap();
        assert!(
            matches!(got, ota_fleet::Applied::Ingested { accepted: 2, .. }),
            "{got:?}"
        );
    }
    let err = ota_repo::oem::ingest(&oem, &r3).unwrap_err().to_string();
    assert!(err.contains("replay") && err.contains("counter"), "{err}");
    assert_eq!(
        ota_repo::oem::ingest(&oem, &r4).unwrap(),
        ota_fleet::Applied::AlreadySeen
    );
}

/// An ECU with no key of its own answers the signed-report request "request out of range":
/// the report lists it as silent and says why, not only the code.
#[test]
fn an_ecu_without_a_key_is_reported_silent_with_the_reason() {
    let w = World::new();
    let signer = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
    std::fs::write(
        w.p("supplier.pub.pem"),
        ota_metadata::signing::public_pem(&signer.rsa_public()).unwrap(),
    )
    .unwrap();
    write_key(&w.p("vehicle.pem"));
    ota_repo::oem::vehicle_key(&w.p("oem"), "VIN1", &w.p("vehicle.pem")).unwrap();
    let (gw, a1) = (free_port(), free_port());
    let cfg = w.p("gw-nokey.toml");
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state-nokey\"\n\
             vehicle_key = \"vehicle.pem\"\n[forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{a1}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n",
            w.url("oem")
        ),
    )
    .unwrap();
    let _e1 = start_ecu_with(
        "S1",
        "BRAKE-A",
        a1,
        gw,
        &w.p("supplier.pub.pem"),
        &w.p("f-nokey"),
        0x7E0,
        None,
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ota-gateway"))
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let out = run(&["report", "--out", &w.p("r.json").display().to_string()]);
    let report = std::fs::read_to_string(w.p("r.json")).unwrap_or_default();
    assert!(
        report.contains("signs no version reports: it has no key of its own"),
        "{}\n{}\n{report}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A gateway configuration for VIN1's S1 and S2 on the UDP CAN bus, with its own state.
fn can_config(
    w: &World,
    file: &str,
    state: &str,
    gw: SocketAddr,
    peers: [SocketAddr; 2],
) -> std::path::PathBuf {
    let cfg = w.p(file);
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"{state}\"\n\
             [forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{}\", \"{}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n\
             [[ecus]]\nserial = \"S2\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E1\n",
            w.url("oem"),
            peers[0],
            peers[1]
        ),
    )
    .unwrap();
    assert!(Command::new(env!("CARGO_BIN_EXE_ota-gateway"))
        .arg("-c")
        .arg(&cfg)
        .arg("init")
        .status()
        .unwrap()
        .success());
    cfg
}

/// `ota-gateway update` with `cfg`: its success, stdout and stderr.
fn update(cfg: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-gateway"))
        .arg("-c")
        .arg(cfg)
        .arg("update")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn running(flash: &Path) -> String {
    let st = installed(flash);
    assert!(st.pending.is_none(), "{st:?}");
    st.image
        .map(|i| i.version.as_str().to_string())
        .unwrap_or_default()
}

/// Scenario: Deltas | an ECU that runs a release the new image has a delta from; one that runs another image than the gateway recorded; no delta that fits; a delta corrupted on the CDN | the delta over the air and the bus, the whole image (compressed) otherwise; each ECU checks the image it rebuilt
#[test]
fn a_vehicle_updates_by_delta_and_falls_back_to_the_whole_image() {
    let w = World::new();
    let signer = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
    std::fs::write(
        w.p("supplier.pub.pem"),
        ota_metadata::signing::public_pem(&signer.rsa_public()).unwrap(),
    )
    .unwrap();
    let (gw, a1, a2) = (free_port(), free_port(), free_port());
    let key = w.p("supplier.pub.pem");
    let _e1 = start_ecu("S1", "BRAKE-A", a1, gw, &key, &w.p("flash-s1"), 0x7E0);
    let _e2 = start_ecu("S2", "BRAKE-A", a2, gw, &key, &w.p("flash-s2"), 0x7E1);
    let cfg = can_config(&w, "gw.toml", "state", gw, [a1, a2]);

    // A first install: no delta (nothing runs), the image compressed on the bus.
    let (v30, v31) = point_release_pair(60_000, 1);
    w.release("3.0", 3, &v30);
    w.assign("S1", "3.0");
    w.assign("S2", "3.0");
    let (ok, stdout, stderr) = update(&cfg);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("ECU S1: updated to brake-fw 3.0")
            && stdout.contains("compressed on the bus"),
        "{stdout}{stderr}"
    );
    assert_eq!(
        (running(&w.p("flash-s1")), running(&w.p("flash-s2"))),
        ("3.0".into(), "3.0".into())
    );

    // S2 is flashed behind this gateway's back (another tester): it runs 3.0b, not 3.0.
    let (v30b, _) = point_release_pair(60_000, 2);
    w.release("3.0b", 3, &v30b);
    w.assign("S2", "3.0b");
    let side = can_config(&w, "side.toml", "state-side", gw, [a1, a2]);
    let (ok, stdout, stderr) = update(&side);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(running(&w.p("flash-s2")), "3.0b");

    // 3.1 is published with a delta from 3.0.
    w.release_with_deltas("3.1", 4, &v31, &["3.0"]);
    w.assign("S1", "3.1");
    w.assign("S2", "3.1");
    let (ok, stdout, stderr) = update(&cfg);
    assert!(ok, "{stdout}{stderr}");
    // S1 runs 3.0: the delta, a small fraction of the image, over the air and the bus.
    let s1 = stdout
        .lines()
        .find(|l| l.contains("ECU S1: updated to brake-fw 3.1"))
        .unwrap_or_else(|| panic!("{stdout}{stderr}"));
    assert!(s1.contains("by delta from 3.0"), "{s1}");
    let sent: u64 = s1
        .split("by delta from 3.0: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s1}"));
    assert!(sent * 10 < v31.len() as u64, "{s1}");
    // S2 runs 3.0b, not what this gateway recorded: it refuses the delta, and the gateway
    // sends the whole image instead.
    assert!(
        stderr.contains("ECU S2 refused the delta from 3.0")
            && stdout.contains("ECU S2: updated to brake-fw 3.1"),
        "{stdout}{stderr}"
    );
    for flash in ["flash-s1", "flash-s2"] {
        assert_eq!(running(&w.p(flash)), "3.1", "{flash}");
        let mut f = FileFlash::open(&w.p(flash), 16 << 20).unwrap();
        let st = EcuState::load(&mut f).unwrap();
        let mut image = vec![0u8; v31.len()];
        let n = ota_ecu::flash::Flash::read_slot(&mut f, st.active, 0, &mut image).unwrap();
        assert!(n == v31.len() && image == v31, "{flash} runs exactly 3.1");
    }

    // 3.2 has a delta from 3.0 only: nobody runs 3.0 any more, so the whole image goes.
    let (_, mut v32) = point_release_pair(60_000, 1);
    v32[100] ^= 0xFF;
    w.release_with_deltas("3.2", 5, &v32, &["3.0"]);
    w.assign("S1", "3.2");
    let (ok, stdout, stderr) = update(&cfg);
    assert!(ok, "{stdout}{stderr}");
    let s1 = stdout
        .lines()
        .find(|l| l.contains("ECU S1: updated to brake-fw 3.2"))
        .unwrap_or_else(|| panic!("{stdout}{stderr}"));
    assert!(
        !s1.contains("delta") && s1.contains("compressed on the bus"),
        "{s1}"
    );

    // 3.3 has a delta from 3.2, but the CDN serves it corrupted: TUF refuses it (its hash is
    // signed), and the whole image goes instead.
    let mut v33 = v32.clone();
    v33[200] ^= 0xFF;
    w.release_with_deltas("3.3", 6, &v33, &["3.2"]);
    let targets = w.p("acme/repository/targets");
    let delta = std::fs::read_dir(&targets)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with("brake-fw-3.3.from-3.2.delta")
        })
        .expect("the published delta")
        .path();
    let mut bytes = std::fs::read(&delta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&delta, bytes).unwrap();
    w.assign("S1", "3.3");
    let (ok, stdout, stderr) = update(&cfg);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("ECU S1: the delta from 3.2 could not be had")
            && stdout.contains("ECU S1: updated to brake-fw 3.3")
            && !stdout.contains("by delta"),
        "{stdout}{stderr}"
    );
    assert_eq!(running(&w.p("flash-s1")), "3.3");
}
