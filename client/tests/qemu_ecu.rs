//! The ECU as firmware on an emulated Cortex-M4 (issue 25): `ecu/qemu` built for
//! `thumbv7em-none-eabihf` runs under `qemu-system-arm -M mps2-an386`; its CAN line is SLCAN
//! on the machine's UART, joined to the UDP bus by `ota_ecu::bridge` (what `ota-slcan-bridge`
//! runs); the real `ota-gateway` updates it. The flash lives in the machine's memory and in the
//! file QEMU's semihosting writes it through to, so killing QEMU is a power cut.
//!
//! The firmware must be built first (`.ci/run` and `scripts/test.sh` do):
//! `cargo build -p ota-ecu-qemu --profile firmware --target thumbv7em-none-eabihf`.

mod world;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use world::World;

const VIN: &str = "VINQ";
const SERIAL: &str = "BRK-Q1";

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The image the supplier publishes of one of the two applications (`ecu/qemu-app`), from
/// its ELF, or a failure naming how to build it.
fn application(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/thumbv7em-none-eabihf/firmware")
        .join(name);
    let elf = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build it with `cargo build -p ota-ecu-app --profile firmware --target thumbv7em-none-eabihf` (scripts/test.sh does)",
            path.display()
        )
    });
    let (base, image) = ota_ecu::elf::image(&elf).unwrap();
    assert_eq!(base, 0x0008_0000, "linked for the run region");
    image
}

/// The firmware ELF, or a failure naming how to build it.
fn firmware() -> PathBuf {
    let path = std::env::var_os("OTA_ECU_QEMU_ELF").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/thumbv7em-none-eabihf/firmware/ota-ecu-qemu")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p ota-ecu-qemu --profile firmware --target thumbv7em-none-eabihf` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// One emulated ECU: QEMU, and the bridge joining its UART to the bus. Killed when dropped.
struct Ecu {
    qemu: Child,
    dir: PathBuf,
    /// The bridge: it ends when QEMU's serial side closes, its bus port free again.
    bridge: Option<std::thread::JoinHandle<()>>,
}

impl Ecu {
    /// Start QEMU in `dir` (its flash file there) and the bridge at `bind`, peering `gw`.
    fn start(dir: &Path, bind: SocketAddr, gw: SocketAddr) -> Ecu {
        Self::start_cut(dir, bind, gw, None)
    }

    /// [`Ecu::start`], the bridge carrying at most `cut` frames onto the line.
    fn start_cut(dir: &Path, bind: SocketAddr, gw: SocketAddr, cut: Option<u64>) -> Ecu {
        Self::start_until(dir, bind, gw, cut, "listening on the CAN line")
    }

    /// [`Ecu::start_cut`], waiting until the console says `ready` (the bootloader listening,
    /// or the application it started running).
    fn start_until(
        dir: &Path,
        bind: SocketAddr,
        gw: SocketAddr,
        cut: Option<u64>,
        ready: &str,
    ) -> Ecu {
        let qemu = ota_testkit::require_program("qemu-system-arm", "qemu-system-arm")
            .expect("qemu-system-arm");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(qemu)
            .current_dir(dir)
            .args(["-M", "mps2-an386", "-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            .arg(format!("tcp:127.0.0.1:{port},server=on,wait=on"))
            .args(["-serial", "file:console.log", "-kernel"])
            .arg(firmware())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .expect("starting qemu-system-arm");
        let args = ota_ecu::bridge::Args {
            serial: format!("tcp:127.0.0.1:{port}"),
            bind,
            peers: vec![gw],
            connect_timeout: Duration::from_secs(60),
            cut_after_frames: cut,
        };
        let bridge = std::thread::spawn(move || {
            if let Err(e) = ota_ecu::bridge::run(args) {
                eprintln!("bridge: {e}");
            }
        });
        let ecu = Ecu {
            qemu: child,
            dir: dir.to_path_buf(),
            bridge: Some(bridge),
        };
        ecu.wait_console(ready);
        ecu
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Wait until the console shows `text` (the firmware's own event; a minute at most).
    fn wait_console(&self, text: &str) {
        self.wait_until(&format!("{text:?}"), |c| c.contains(text));
    }

    /// Wait until the console passes `test` (`what` it waits for; a minute at most).
    fn wait_until(&self, what: &str, test: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !test(&self.console()) {
            assert!(
                Instant::now() < deadline,
                "the emulated ECU never showed {what}; console:\n{}\nQEMU's own output:\n{}",
                self.console(),
                std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A power cut: QEMU killed; the flash file keeps what was written.
    fn kill(self) {
        drop(self)
    }
}

/// The RAM the update path used, as the firmware measured it before its reset (painted stack,
/// the heap's high-water mark): within what the linker gave, and the heap used at all (RSA's
/// big integers live there). Printed for the README's ECU figures.
fn assert_ram_within_budget(console: &str) {
    let line = console
        .lines()
        .find(|l| l.contains("RAM used:"))
        .unwrap_or_else(|| panic!("no RAM figures on the console:\n{console}"));
    // "... stack peak S B of T B, heap peak H B of C B"
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [.., stack, stack_size, heap, heap_size] = numbers[..] else {
        panic!("{line}")
    };
    assert!(
        stack < stack_size,
        "the stack overflowed its region: {line}"
    );
    assert!(heap > 0 && heap <= heap_size, "{line}");
    eprintln!("emulated ECU, first update: {line}");
}

impl Drop for Ecu {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        if let Some(b) = self.bridge.take() {
            let _ = b.join();
        }
    }
}

/// The factory's flash file for the ECU in `dir`, trusting the supplier key `pem`.
fn factory(dir: &Path, pem: &str) {
    factory_with(dir, pem, None);
}

/// [`factory`], with the ECU's first trust document (`trust`) as the production line gives it
/// (`ota_ecu::factory::TRUST_AT`, as `ota-ecu-factory --trust` writes it).
fn factory_with(dir: &Path, pem: &str, trust: Option<&Path>) {
    std::fs::create_dir_all(dir).unwrap();
    let key_file = dir.join("supplier.pub.pem");
    std::fs::write(&key_file, pem).unwrap();
    let k = ota_ecu::sim::provision(&key_file).unwrap();
    let mut record = ota_ecu::factory::build(SERIAL, "BRAKE-A", &[(k.keyid, k.key)], 1).unwrap();
    record.resize(4096, 0xFF);
    if let Some(t) = trust {
        record.resize(ota_ecu::factory::TRUST_AT, 0xFF);
        record.extend(ota_ecu::factory::trust_area(&std::fs::read(t).unwrap()).unwrap());
    }
    std::fs::write(dir.join("ota-ecu-flash.bin"), record).unwrap();
}

/// The OEM's trust document for BRAKE-A: acme's key, full verification (tuv's approval
/// required on the ECU itself) and the OEM's instruction key (format 3).
fn full_trust(w: &World) -> PathBuf {
    let pem = |private: &str| public_pem(private);
    std::fs::write(w.p("acme.pub.pem"), pem(world::key_pem())).unwrap();
    std::fs::write(w.p("tuv.pub.pem"), pem(&world::regulator_key_pem("tuv"))).unwrap();
    let signer = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(w.p("ecu-trust.pem"), signer.to_pkcs8_pem().unwrap()).unwrap();
    let (_, doc) = ota_repo::oem::ecu_trust(
        &w.p("oem"),
        &ota_repo::oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: ota_repo::oem::ecu_trust::SupplierKeys::Files(vec![w.p("acme.pub.pem")]),
            supplier_threshold: None,
            regulator_keys: vec![w.p("tuv.pub.pem")],
            regulator_threshold: 1,
            full: true,
            signer_keys: vec![w.p("ecu-trust.pem")],
            signer_threshold: Some(1),
            confirmed_keys: Vec::new(),
            previous_signer_keys: vec![],
            min_release_counter: None,
            legacy: false,
        },
    )
    .unwrap();
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    doc
}

/// Assign brake-fw `version` (released) to the emulated ECU and update: the ECU's bootloader
/// reverts it (`why`), the gateway says so and fails, and 4.0 (release counter 10) runs again.
fn reverted_by_the_ecu(w: &World, cfg: &Path, ecu: &Ecu, version: &str, why: &str) {
    w.assign_to(VIN, SERIAL, version);
    let out = gateway(cfg, &["update"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "ECU {SERIAL}: REVERTED brake-fw {version}: activated, then {why}"
        )),
        "{}\nconsole:\n{}",
        text(&out),
        ecu.console()
    );
    ecu.wait_console(&format!("REVERTED brake-fw {version}: {why}"));
    let status = gateway(cfg, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("brake-fw 4.0 (release counter 10)"),
        "{}",
        text(&status)
    );
}

/// A thief with the supplier's signing key and the CAN bus (at the gateway's address `gw`):
/// a build signed by acme alone, never reviewed, approved or instructed, sent straight to the
/// emulated ECU. What the ECU answers.
fn stolen_key_install(gw: SocketAddr, bus: SocketAddr) -> Result<(), ota_ecu::flasher::FlashError> {
    use ota_metadata::documents::compact::sign_compact;
    use sha2::Digest;
    let mut evil = application("ecu-app-confirms");
    evil.extend_from_slice(b"EVIL");
    let m = ota_metadata::documents::ImageManifest::new(
        "acme",
        "brake-fw",
        "66.6",
        99,
        vec!["BRAKE-A".into()],
        evil.len() as u64,
        sha2::Sha256::digest(&evil).into(),
    )
    .unwrap();
    let thief = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
    let compact = sign_compact(&m.compact_body().unwrap(), &[&thief]).unwrap();
    let ids = (
        ota_ecu::isotp::standard_id(0x7E0).unwrap(),
        ota_ecu::isotp::standard_id(0x7E8).unwrap(),
    );
    let bus = ota_ecu::bus::udp::UdpBus::bind(gw, vec![bus]).unwrap();
    let mut ep =
        ota_ecu::transport::Endpoint::new(bus, ota_ecu::isotp::Config::new(ids.0, ids.1)).unwrap();
    ota_ecu::flasher::enter_programming(&mut ep).unwrap();
    let r = ota_ecu::flasher::flash_image(
        &mut ep,
        &compact,
        &mut evil.as_slice(),
        evil.len() as u64,
        |_| {},
    );
    ota_ecu::flasher::leave_programming(&mut ep);
    r
}

fn public_pem(private: &str) -> String {
    let k = ota_metadata::SigningKey::from_pem(private).unwrap();
    ota_metadata::signing::public_pem(&k.rsa_public()).unwrap()
}

fn gateway(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ota-gateway"))
        .arg("-c")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A gateway configuration for the vehicle whose one ECU is the emulated one, on the UDP bus
/// (classic CAN, as the emulated ECU's link is).
fn config(w: &World, gw: SocketAddr, ecu: SocketAddr) -> PathBuf {
    let cfg = w.p("gw-qemu.toml");
    let t = format!(
        "vin = \"{VIN}\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/{VIN}.secret\"\n\
         state_dir = \"state-qemu\"\n[forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{ecu}\"]\nfd = false\n\
         [[ecus]]\nserial = \"{SERIAL}\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n",
        w.url("oem"),
    );
    std::fs::write(&cfg, t).unwrap();
    cfg
}

/// Publish brake-fw `version` (release counter `counter`) of `len` bytes, reviewed, and assign
/// it to the emulated ECU; the image's bytes: the application that confirms itself, then
/// filler no two 4 KiB blocks of which are alike (where a block landed in the flash says how
/// far a transfer got).
fn release(w: &World, version: &str, counter: u64, len: usize) -> Vec<u8> {
    let mut bytes = application("ecu-app-confirms");
    let app = bytes.len() as u64;
    assert!(app < len as u64);
    bytes
        .extend((app..len as u64).map(|i| ((i + counter).wrapping_mul(2_654_435_761) >> 13) as u8));
    w.release(version, counter, &bytes);
    w.assign_to(VIN, SERIAL, version);
    bytes
}

/// Scenario: Power loss | the emulated Cortex-M4 ECU updated by the real gateway, QEMU killed mid-download and restarted on the same flash file | an ECU provisioned with another supplier key refuses the manifest itself; after the cut the old application still runs and the next update completes; the next point release arrives as a delta the emulated ECU applies
#[test]
fn the_gateway_updates_the_emulated_cortex_m4_ecu_through_refusal_and_power_cut() {
    let w = World::new();
    w.vehicle(
        VIN,
        &[(
            SERIAL.into(),
            "BRAKE-A".into(),
            "brake-fw".into(),
            "1.0".into(),
        )],
    );
    release(&w, "1.1", 2, 12 * 1024);
    let (gw, bus) = (free_port(), free_port());
    let cfg = config(&w, gw, bus);
    assert!(gateway(&cfg, &["init"]).status.success());

    // An ECU provisioned with a key that is not the supplier's: it refuses the manifest.
    let stranger = w.p("qemu-stranger");
    factory(&stranger, &public_pem(world::offline_pem()));
    let ecu = Ecu::start(&stranger, bus, gw);
    let out = gateway(&cfg, &["update"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("manifest signature not valid for the provisioned supplier keys"),
        "{}\nconsole:\n{}",
        text(&out),
        ecu.console()
    );
    drop(ecu);

    // The supplier's key: 1.1 goes in, is activated, and runs after the ECU's own reset.
    let dir = w.p("qemu-ecu");
    factory(&dir, &public_pem(world::key_pem()));
    let ecu = Ecu::start(&dir, bus, gw);
    let out = gateway(&cfg, &["update"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("ECU {SERIAL}: updated to brake-fw 1.1")),
        "{}",
        text(&out)
    );
    ecu.wait_console("running brake-fw 1.1 (release counter 2, on trial)");
    ecu.wait_console(
        "confirmed after the application's start-up checks: release counter 2 is final",
    );
    assert_ram_within_budget(&ecu.console());

    // 3.0 (40 KiB, about 5,900 classic frames): the line goes dead after 2,500 frames, in
    // the middle of the image, and QEMU is killed there: a power cut mid-download.
    let new = release(&w, "3.0", 5, 40 * 1024);
    drop(ecu);
    let ecu = Ecu::start_cut(&dir, bus, gw, Some(2_500));
    let out = gateway(&cfg, &["update"]);
    assert!(!out.status.success(), "{}", text(&out));
    let f = std::fs::read(dir.join("ota-ecu-flash.bin")).unwrap();
    let has = |part: &[u8]| f.chunks(4096).any(|c| c == part);
    // The third block (the first is the application's code, alike in 1.1 and 3.0).
    assert!(
        has(&new[8192..12288]),
        "the download never started: {}\nconsole:\n{}",
        text(&out),
        ecu.console()
    );
    assert!(!has(&new[new.len() - 4096..]), "the whole image arrived");
    ecu.kill();
    // Power back: the same flash file; 1.1 still runs.
    let _ = std::fs::remove_file(dir.join("console.log"));
    let ecu = Ecu::start_until(&dir, bus, gw, None, "starting the application brake-fw 1.1");
    assert!(
        ecu.console()
            .contains("running brake-fw 1.1 (release counter 2)"),
        "{}",
        ecu.console()
    );
    let out = gateway(&cfg, &["update"]);
    assert!(out.status.success(), "{}", text(&out));
    ecu.wait_console(
        "confirmed after the application's start-up checks: release counter 5 is final",
    );
    let status = gateway(&cfg, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("brake-fw 3.0 (release counter 5)"),
        "{}",
        text(&status)
    );

    // 3.1, a point release published with a delta from 3.0: the emulated ECU rebuilds it from
    // its active slot into the other one through its flash driver, checks the hash, and the
    // new application confirms itself.
    let mut v31 = new.clone();
    for i in (9000..v31.len()).step_by(5000) {
        v31[i] ^= 0x5A;
    }
    w.release_with_deltas("3.1", 6, &v31, &["3.0"]);
    w.assign_to(VIN, SERIAL, "3.1");
    let out = gateway(&cfg, &["update"]);
    assert!(
        out.status.success(),
        "{}\nconsole:\n{}",
        text(&out),
        ecu.console()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ECU {SERIAL}: updated to brake-fw 3.1"))
            && stdout.contains("by delta from 3.0"),
        "{}",
        text(&out)
    );
    ecu.wait_console(
        "confirmed after the application's start-up checks: release counter 6 is final",
    );
}

/// Scenario: ECU trial boot | signed, approved applications that fault, hang, or are not applications for the board, on the emulated Cortex-M4 provisioned with the OEM's full-verification trust document; and a thief with the supplier's key on the bus | the bootloader returns to the confirmed application by itself (the hanging one after the watchdog it armed resets the core, the non-application before starting anything); the gateway reports each revert; the ECU refuses those bytes again and refuses the thief's build (no regulator approval); the good application confirmed itself, and a power cycle starts it
#[test]
fn the_emulated_ecu_confirms_a_good_application_and_reverts_a_faulting_one() {
    let w = World::new();
    w.vehicle(
        VIN,
        &[(
            SERIAL.into(),
            "BRAKE-A".into(),
            "brake-fw".into(),
            "1.0".into(),
        )],
    );
    let good = application("ecu-app-confirms");
    let faulty = application("ecu-app-faults");
    w.release("4.0", 10, &good);
    w.assign_to(VIN, SERIAL, "4.0");
    let (gw, bus) = (free_port(), free_port());
    let cfg = config(&w, gw, bus);
    assert!(gateway(&cfg, &["init"]).status.success());
    // Provisioned at the factory with the OEM's trust document: full verification and the
    // OEM's instructions, checked by the emulated ECU itself.
    let trust = full_trust(&w);
    let dir = w.p("qemu-apps");
    factory_with(&dir, &public_pem(world::key_pem()), Some(&trust));
    let ecu = Ecu::start(&dir, bus, gw);
    ecu.wait_console("provisioned the factory's trust document version 1");

    // The good application: started on trial, its checks pass, it asks the bootloader to
    // confirm; then it runs, and the gateway reaches the bootloader through it.
    let out = gateway(&cfg, &["update"]);
    assert!(
        out.status.success(),
        "{}\nconsole:\n{}",
        text(&out),
        ecu.console()
    );
    for line in [
        "starting the application brake-fw 4.0 on trial",
        "the programming session ended (the tester is done)",
        "APP brake-fw 4.0: started (Trial)",
        "confirmed after the application's start-up checks: release counter 10 is final",
        "APP brake-fw 4.0: started (Confirmed)",
        "APP brake-fw 4.0: running",
    ] {
        ecu.wait_console(line);
    }
    // Full verification (the regulator's approval, the OEM's instruction) within the RAM.
    assert_ram_within_budget(&ecu.console());

    // A stolen supplier key and the bus are not enough: the ECU itself wants the regulator's
    // approval (NRC 0xFC) before anything is written, and 4.0 keeps running.
    match stolen_key_install(gw, bus) {
        Err(ota_ecu::flasher::FlashError::Refused {
            nrc: Some(ota_ecu::uds::Nrc::NotApproved),
            ..
        }) => {}
        other => panic!("a build signed by the supplier alone: {other:?}"),
    }
    ecu.wait_until("4.0 running after the thief", |c| {
        c.rsplit("the programming session ended")
            .next()
            .is_some_and(|after| after.contains("APP brake-fw 4.0: running"))
    });

    // 4.1 faults at start-up: signed, approved, installed, activated, then reverted by the
    // bootloader on its own; the gateway reads the revert from the ECU.
    w.release("4.1", 11, &faulty);
    reverted_by_the_ecu(&w, &cfg, &ecu, "4.1", "faulted before confirming itself");
    // The revert waits in the gateway's state for the next version report to the OEM.
    let state = ota_client::state::GatewayState::load(&w.p("state-qemu")).unwrap();
    assert!(
        state.events.iter().any(|e| e.serial == SERIAL
            && e.outcome == ota_metadata::documents::Outcome::Reverted
            && e.version == "4.1"
            && e.code.contains("faulted")),
        "{:?}",
        state.events
    );
    for line in [
        "APP brake-fw 4.1: started (Trial)",
        "APP: HARD FAULT at pc",
        "the last start faulted",
    ] {
        ecu.wait_console(line);
    }

    // 4.2 hangs in its start-up checks and never confirms: the watchdog the bootloader armed
    // for its trial resets it, and the bootloader reverts it.
    w.release("4.2", 12, &application("ecu-app-hangs"));
    reverted_by_the_ecu(
        &w,
        &cfg,
        &ecu,
        "4.2",
        "reset by the watchdog before confirming itself",
    );
    ecu.wait_console("APP brake-fw 4.2: start-up checks: waiting for the wheel sensors");

    // 4.3 is signed and approved but not an application for this board (data): its trial
    // fails at once, before anything is started, and 4.0 runs again; the counter stays.
    w.release("4.3", 13, &[0x5A; 4096]);
    reverted_by_the_ecu(
        &w,
        &cfg,
        &ecu,
        "4.3",
        "not an application this ECU can start",
    );

    // 4.3 again: refused by the ECU itself (it failed its trial here).
    let again = gateway(&cfg, &["update"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("this ECU reverted from that image"),
        "{}\nconsole:\n{}",
        text(&again),
        ecu.console()
    );

    // The refusal left the ECU in its bootloader: after five seconds without a request (UDS's
    // S3 timer) the bootloader returns to the application. (After reading the identification,
    // the gateway had ended the session itself: "the tester is done".)
    let running = |c: &str| c.matches("APP brake-fw 4.0: running").count();
    let before = running(&ecu.console());
    ecu.wait_console("the programming session ended (5 s without a request)");
    ecu.wait_until("4.0 running again", |c| running(c) > before);

    // A power cycle: the bootloader starts the confirmed 4.0 straight away.
    eprintln!(
        "the emulated ECU's console before the power cycle:\n{}",
        ecu.console()
    );
    ecu.kill();
    let _ = std::fs::remove_file(dir.join("console.log"));
    let ecu = Ecu::start_until(&dir, bus, gw, None, "APP brake-fw 4.0: running");
    assert!(
        ecu.console()
            .contains("APP brake-fw 4.0: started (Confirmed)"),
        "{}",
        ecu.console()
    );
}
