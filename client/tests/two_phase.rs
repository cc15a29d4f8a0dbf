//! The all-or-nothing update (issue 10, part 3): the real `ota-gateway` process and three ECU
//! simulator processes (`ota-ecu-sim`, their flash in files on disk) on the UDP-carried CAN bus.
//!
//! - `a_kill_at_every_step_leaves_all_old_or_all_new`: the gateway aborted (as by a power
//!   cut) at each of its steps in turn, the ECU processes killed and restarted after it; the
//!   next run always ends with every ECU on the new image, and in between no ECU runs its new
//!   image unless the update was committed.
//! - `a_kill_during_recovery_also_converges`: the same, for the run that recovers.
//! - `one_ecu_refuses_and_no_ecu_switches`: an ECU whose flash fails refuses its image; the
//!   others discard theirs, none switches, the gateway names the ECU.
//! - `an_ecu_power_cut_rolls_back_or_forward`: an ECU process losing power while it writes
//!   its image, its pending state, or its activation.
//! - `over_the_disk_budget_nothing_is_downloaded` and
//!   `an_ecu_that_lost_its_pending_image_after_the_commit_gets_it_again`: the staging budget,
//!   and the roll forward re-sending a staged image (in process, directory forwarder).
//!
//! Each ECU process is this test binary started again as the simulator (`ecu_process`).

mod ecu_process;
mod world;

use ota_client::config::Config;
use ota_client::forward::{DirForwarder, Forwarder};
use ota_client::gateway::{summary, EcuOutcome, Gateway, GatewayError};
use ota_client::staging::StagingError;
use ota_ecu::flash::file::FileFlash;
use ota_ecu::state::EcuState;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use world::World;

const SERIALS: [&str; 3] = ["E1", "E2", "E3"];
const VIN: &str = "VIN2";
const FAULT: &str = "OTA_GATEWAY_FAULT_AT";
const SIGABRT: i32 = 6;
/// Not a test of its own: the ECU processes' entry point (see `ecu_process`).
#[test]
fn ecu_simulator_process() {
    ecu_process::entry()
}

/// Every step of an update of the three ECUs, in order, as the gateway names them when it
/// aborts there.
const STEPS: [&str; 16] = [
    "image for ECU E1 staged",
    "image for ECU E2 staged",
    "image for ECU E3 staged",
    "journal: distributing",
    "half of the image sent to ECU E1",
    "ECU E1 holds its image verified and pending",
    "half of the image sent to ECU E2",
    "ECU E2 holds its image verified and pending",
    "half of the image sent to ECU E3",
    "ECU E3 holds its image verified and pending",
    "journal: commit",
    "activation of ECU E1 sent",
    "activation of ECU E2 sent",
    "activation of ECU E3 sent",
    "gateway state saved",
    "journal cleared",
];

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One ECU simulator process; killed (SIGKILL) when dropped.
use ecu_process::Sim;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A vehicle of three BRAKE-A ECUs (E1, E2, E3) behind a gateway on the UDP bus.
struct Vehicle {
    w: World,
    gw: SocketAddr,
    ports: [SocketAddr; 3],
    cfg: PathBuf,
    sims: [Option<Sim>; 3],
}

impl Vehicle {
    /// The vehicle, every ECU updated to brake-fw 1.0 through the gateway; ECUs stopped.
    fn new() -> Self {
        let w = World::new();
        let ecus: Vec<(String, String, String, String)> = SERIALS
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    "BRAKE-A".into(),
                    "brake-fw".into(),
                    "1.0".into(),
                )
            })
            .collect();
        w.vehicle(VIN, &ecus);
        let signer = ota_metadata::SigningKey::from_pem(world::key_pem()).unwrap();
        std::fs::write(
            w.p("supplier.pub.pem"),
            ota_metadata::signing::public_pem(&signer.rsa_public()).unwrap(),
        )
        .unwrap();
        let gw = free_port();
        let ports = [free_port(), free_port(), free_port()];
        let cfg = w.p("gw-2p.toml");
        // Images as they are (`compress = false`): the power cuts below are counted in the
        // ECU's flash writes, one per data block; a packed image is written in pieces as they
        // come out of the decoder (its power cuts: ecu/tests/bootloader.rs).
        let mut t = format!(
            "vin = \"{VIN}\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/{VIN}.secret\"\n\
             state_dir = \"state-2p\"\n[forward]\nkind = \"udp\"\nbind = \"{gw}\"\n\
             peers = [\"{}\", \"{}\", \"{}\"]\nfd = true\ncompress = false\n",
            w.url("oem"),
            ports[0],
            ports[1],
            ports[2]
        );
        for (i, s) in SERIALS.iter().enumerate() {
            t += &format!(
                "[[ecus]]\nserial = \"{s}\"\nhardware_id = \"BRAKE-A\"\naddress = 0x{:03X}\n",
                0x7E0 + i
            );
        }
        std::fs::write(&cfg, t).unwrap();
        let mut v = Vehicle {
            w,
            gw,
            ports,
            cfg,
            sims: [None, None, None],
        };
        assert!(v.gateway(&["init"], None).status.success());
        v.start_all();
        let out = v.gateway(&["update"], None);
        assert!(out.status.success(), "{}", text(&out));
        v.stop_all();
        v.assert_all("1.0");
        v
    }

    fn flash(&self, i: usize) -> PathBuf {
        self.w.p(&format!("flash-{}", SERIALS[i]))
    }

    /// Start ECU `i` (with `extra` simulator flags) and wait until it listens.
    fn start(&mut self, i: usize, extra: &[&str]) {
        let mut args: Vec<String> = vec![
            "--bind".into(),
            self.ports[i].to_string(),
            "--peer".into(),
            self.gw.to_string(),
            "--serial".into(),
            SERIALS[i].into(),
            "--hardware-id".into(),
            "BRAKE-A".into(),
            "--supplier-key".into(),
            self.w.s("supplier.pub.pem"),
            "--flash-dir".into(),
            self.flash(i).display().to_string(),
            "--rx-id".into(),
            format!("0x{:03X}", 0x7E0 + i),
            "--tx-id".into(),
            format!("0x{:03X}", 0x7E8 + i),
            "--fd".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.sims[i] = Some(ecu_process::spawn(&args));
    }

    fn start_all(&mut self) {
        for i in 0..3 {
            self.start(i, &[]);
        }
    }

    /// SIGKILL every ECU process (their flash files stay, as flash does).
    fn stop_all(&mut self) {
        for s in &mut self.sims {
            s.take();
        }
    }

    /// Run the gateway, optionally aborting at step `fault`.
    fn gateway(&self, args: &[&str], fault: Option<u64>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ota-gateway"));
        c.arg("-c").arg(&self.cfg).args(args).env_remove(FAULT);
        if let Some(n) = fault {
            c.env(FAULT, n.to_string());
        }
        c.output().unwrap()
    }

    fn states(&self) -> Vec<EcuState> {
        (0..3)
            .map(|i| {
                let mut f = FileFlash::open(&self.flash(i), 16 << 20).unwrap();
                EcuState::load(&mut f).unwrap()
            })
            .collect()
    }

    /// The version each ECU runs, as its own flash says.
    fn versions(&self) -> Vec<String> {
        self.states()
            .iter()
            .map(|s| s.image.map_or("none".into(), |i| i.version.as_str().into()))
            .collect()
    }

    /// The journal's phase, if an update is in flight.
    fn journal(&self) -> Option<String> {
        let bytes = std::fs::read(self.w.p("state-2p/update-journal.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        Some(v["phase"].as_str().unwrap().to_string())
    }

    /// Every ECU runs `version` and holds nothing pending, the gateway records it, and no
    /// update is in flight.
    fn assert_all(&self, version: &str) {
        let states = self.states();
        for (s, st) in SERIALS.iter().zip(&states) {
            let running = st.image.map(|i| i.version.as_str().to_string());
            assert_eq!(running.as_deref(), Some(version), "ECU {s}: {st:?}");
            assert!(
                st.pending.is_none(),
                "ECU {s} holds a pending image: {st:?}"
            );
        }
        assert_eq!(self.journal(), None, "an update is still in flight");
        let status = self.gateway(&["status"], None);
        let status = String::from_utf8_lossy(&status.stdout);
        for s in SERIALS {
            assert!(
                status.contains(&format!("ECU {s} [BRAKE-A]: brake-fw {version}")),
                "{status}"
            );
        }
    }

    /// After a cut: every ECU runs the old image or every ECU the new one, unless the update
    /// was committed (then the next run activates the rest).
    fn assert_consistent(&self, old: &str, new: &str, what: &str) {
        let versions = self.versions();
        let journal = self.journal();
        assert!(
            versions.iter().all(|v| v == old || v == new),
            "{what}: {versions:?}"
        );
        let all = |x: &str| versions.iter().all(|v| v == x);
        assert!(
            all(old) || all(new) || journal.as_deref() == Some("commit"),
            "{what}: ECUs run {versions:?} and the journal is {journal:?}"
        );
        if journal.as_deref() != Some("commit") && !all(new) {
            // Undecided: nothing was activated.
            assert!(all(old), "{what}: {versions:?}");
        }
    }

    fn assign_all(&self, version: &str) {
        for s in SERIALS {
            ota_repo::oem::assign(
                &self.w.p("oem"),
                ota_repo::oem::Assign {
                    target: ota_repo::oem::AssignTarget::Vehicle {
                        vin: VIN.into(),
                        serial: Some(s.into()),
                    },
                    supplier: "acme".into(),
                    uid: "brake-fw".into(),
                    version: version.into(),
                    approval: ota_repo::oem::Approval::NotAsked,
                    rules: Default::default(),
                },
            )
            .unwrap();
        }
        ota_repo::oem::publish(&self.w.p("oem"), self.w.now, false).unwrap();
    }

    /// Copy the ECUs' flash and the gateway's state to `to` (ECUs stopped).
    fn snapshot(&self, to: &Path) {
        let _ = std::fs::remove_dir_all(to);
        for (i, serial) in SERIALS.iter().enumerate() {
            copy_dir(&self.flash(i), &to.join(serial));
        }
        copy_dir(&self.w.p("state-2p"), &to.join("gateway"));
    }

    /// Put back what [`Vehicle::snapshot`] copied (ECUs stopped).
    fn restore(&self, from: &Path) {
        for (i, serial) in SERIALS.iter().enumerate() {
            let _ = std::fs::remove_dir_all(self.flash(i));
            copy_dir(&from.join(serial), &self.flash(i));
        }
        let _ = std::fs::remove_dir_all(self.w.p("state-2p"));
        copy_dir(&from.join("gateway"), &self.w.p("state-2p"));
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The step a run aborted at (`None`: it ran to its end).
fn aborted_at(out: &Output) -> Option<String> {
    if out.status.signal() != Some(SIGABRT) {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("fault injection: abort at step"))
        .unwrap_or_else(|| panic!("aborted without naming the step: {}", text(out)));
    let (_, step) = line.split_once("abort at step ").unwrap();
    Some(step.split_once(": ").unwrap().1.to_string())
}

/// Run the gateway normally (ECUs started) and check that every ECU ends on `version`.
fn finish(v: &mut Vehicle, version: &str, what: &str) {
    v.start_all();
    let out = v.gateway(&["update"], None);
    assert!(out.status.success(), "{what}: the next run: {}", text(&out));
    v.stop_all();
    v.assert_all(version);
}

/// Scenario: Partial updates | the gateway killed at every step of an update | all ECUs old or all new after the next run
#[test]
fn a_kill_at_every_step_leaves_all_old_or_all_new() {
    let mut v = Vehicle::new();
    v.assign_all("2.0");
    let base = v.w.p("snapshot-base");
    v.snapshot(&base);
    let mut steps = Vec::new();
    for n in 1u64.. {
        assert!(n <= 40, "the steps never end: {steps:#?}");
        v.restore(&base);
        v.start_all();
        let out = v.gateway(&["update"], Some(n));
        let Some(what) = aborted_at(&out) else {
            // A run with fewer steps than n: the update went through untouched.
            assert!(out.status.success(), "{}", text(&out));
            v.stop_all();
            v.assert_all("2.0");
            break;
        };
        let what = format!("killed at step {n} ({what})");
        steps.push(what.clone());
        // The ECUs lose power too: their pending images must survive it.
        v.stop_all();
        v.assert_consistent("1.0", "2.0", &what);
        finish(&mut v, "2.0", &what);
    }
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s.split_once(" (").unwrap().1.trim_end_matches(')'))
        .collect();
    assert_eq!(names, STEPS, "the gateway's steps");
}

#[test]
fn a_kill_during_recovery_also_converges() {
    let mut v = Vehicle::new();
    v.assign_all("2.0");
    let base = v.w.p("snapshot-base");
    v.snapshot(&base);
    // Killed once undecided (E1 and E2 hold their image pending) and once decided; then the
    // run that recovers killed at each of its own steps.
    for (first, recovery) in [
        (
            "ECU E2 holds its image verified and pending",
            &[
                "pending image of ECU E1 discarded",
                "pending image of ECU E2 discarded",
                "pending image of ECU E3 discarded",
                "journal cleared",
                "image for ECU E1 staged",
            ][..],
        ),
        (
            "journal: commit",
            &[
                "activation of ECU E1 sent",
                "activation of ECU E2 sent",
                "activation of ECU E3 sent",
                "gateway state saved",
                "journal cleared",
            ][..],
        ),
    ] {
        let n = STEPS.iter().position(|s| *s == first).unwrap() as u64 + 1;
        v.restore(&base);
        v.start_all();
        let out = v.gateway(&["update"], Some(n));
        assert_eq!(aborted_at(&out).as_deref(), Some(first), "{}", text(&out));
        v.stop_all();
        let cut = v.w.p("snapshot-cut");
        v.snapshot(&cut);
        for (m, step) in recovery.iter().enumerate() {
            let what = format!("killed at {first:?}, then its recovery at {step:?}");
            v.restore(&cut);
            v.start_all();
            let out = v.gateway(&["update"], Some(m as u64 + 1));
            assert_eq!(
                aborted_at(&out).as_deref(),
                Some(*step),
                "{what}: {}",
                text(&out)
            );
            v.stop_all();
            v.assert_consistent("1.0", "2.0", &what);
            finish(&mut v, "2.0", &what);
        }
    }
}

/// Scenario: Partial updates | one ECU of three refuses its image | no ECU switches
#[test]
fn one_ecu_refuses_and_no_ecu_switches() {
    let mut v = Vehicle::new();
    v.assign_all("2.0");
    // E2's flash has failed: it refuses every download; E1 and E3 would take theirs.
    v.start(0, &[]);
    v.start(1, &["--flash-fault"]);
    v.start(2, &[]);
    let out = v.gateway(&["update"], None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains("ECU E2: FAILED: ECU E2: ECU refused a data block: programming failure"),
        "{}",
        text(&out)
    );
    for s in ["E1", "E3"] {
        assert!(
            stderr.contains(&format!(
                "ECU {s}: NOT switched to brake-fw 2.0: the update is all or nothing and ECU E2 failed"
            )),
            "{}",
            text(&out)
        );
    }
    assert!(
        stderr.contains("update not applied: ECU E2 failed, so no ECU switched"),
        "{stderr}"
    );
    assert!(!stdout.contains("updated to"), "{stdout}");
    v.stop_all();
    // None switched; E1, which held 2.0 pending, discarded it.
    v.assert_all("1.0");
    // E2 repaired: the same update goes through on all three.
    finish(&mut v, "2.0", "after the repair");
}

#[test]
fn an_ecu_power_cut_rolls_back_or_forward() {
    let mut v = Vehicle::new();
    v.assign_all("2.0");
    let base = v.w.p("snapshot-base");
    v.snapshot(&base);
    // E2's flash writes for 2.0: erase, two blocks, the pending state, the activation. Power
    // goes before the first block, before the pending state, and before the activation.
    for (writes, committed) in [(1, false), (3, false), (4, true)] {
        let what = format!("E2 loses power after {writes} flash writes");
        v.restore(&base);
        v.start(0, &[]);
        v.start(1, &["--power-cut-after-writes", &writes.to_string()]);
        v.start(2, &[]);
        let out = v.gateway(&["update"], None);
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ECU E2: FAILED"), "{what}: {}", text(&out));
        v.stop_all();
        v.assert_consistent("1.0", "2.0", &what);
        if committed {
            // Decided: E1 and E3 switched, E2 holds 2.0 pending and activates next run.
            assert_eq!(v.journal().as_deref(), Some("commit"), "{what}");
            assert_eq!(v.versions(), ["2.0", "1.0", "2.0"], "{what}");
            assert!(v.states()[1].pending.is_some(), "{what}");
            let status = v.gateway(&["status"], None);
            let status = String::from_utf8_lossy(&status.stdout);
            assert!(
                status.contains("interrupted update (committed) of ECUs E1, E2, E3"),
                "{status}"
            );
        } else {
            assert_eq!(v.journal(), None, "{what}");
            assert_eq!(v.versions(), ["1.0", "1.0", "1.0"], "{what}");
        }
        finish(&mut v, "2.0", &what);
    }
}

/// A gateway configuration for VIN1 (S1, S2) with the directory forwarder and `extra` lines.
fn dir_config(w: &World, extra: &str) -> Config {
    let path = w.p("gw-dir.toml");
    std::fs::write(
        &path,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\n\
             state_dir = \"state\"\n[forward]\nkind = \"dir\"\npath = \"ecus\"\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\n\
             [[ecus]]\nserial = \"S2\"\nhardware_id = \"BRAKE-A\"\n{extra}",
            w.url("oem")
        ),
    )
    .unwrap();
    Config::load(&path).unwrap()
}

fn gateway(w: &World, extra: &str) -> Gateway {
    let gw = Gateway::new(dir_config(w, extra), w.now).unwrap();
    if !w.p("state/repos/oem/root.json").exists() {
        gw.init(false).unwrap();
    }
    gw
}

#[test]
fn over_the_disk_budget_nothing_is_downloaded() {
    let w = World::new();
    w.assign("S1", "1.0");
    w.assign("S2", "2.0");
    // Two images of 5000 bytes each.
    let gw = gateway(&w, "[limits]\nstaging_budget = 9999\n");
    let mut fw = DirForwarder::new(w.p("ecus"));
    match gw.run(Some(&mut fw)) {
        Err(GatewayError::Staging(StagingError::OverBudget {
            needed: 10_000,
            budget: 9999,
            images: 2,
        })) => {}
        Err(e) => panic!("{e}"),
        Ok(out) => panic!(
            "{:?}",
            out.iter().map(|(_, o)| summary(o)).collect::<Vec<_>>()
        ),
    }
    let staged = std::fs::read_dir(w.p("state/staging"))
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "nothing downloaded");
    assert!(!w.p("ecus").exists(), "no ECU touched");
    // Within the budget, both go.
    let gw = gateway(&w, "[limits]\nstaging_budget = 10000\n");
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        out.iter()
            .all(|(_, o)| matches!(o, EcuOutcome::Updated { .. })),
        "{:?}",
        out.iter().map(|(_, o)| summary(o)).collect::<Vec<_>>()
    );
}

#[test]
fn an_ecu_that_lost_its_pending_image_after_the_commit_gets_it_again() {
    let w = World::new();
    w.assign("S1", "1.0");
    w.assign("S2", "1.0");
    let gw = gateway(&w, "");
    let mut failing = world::FailingActivation::new(w.p("ecus"), "S2");
    let out = gw.run(Some(&mut failing)).unwrap();
    assert!(matches!(out[0].1, EcuOutcome::Updated { .. }));
    let EcuOutcome::Failed(e) = &out[1].1 else {
        panic!("{}", summary(&out[1].1))
    };
    assert!(
        e.to_string()
            .contains("update committed, activation failed"),
        "{e}"
    );
    // Decided: S1 runs 1.0 and is recorded; S2 is not, and the journal says to go on.
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        [1u8; 5000]
    );
    assert!(!w.p("ecus/S2/image.bin").exists());
    assert!(gw
        .status()
        .unwrap()
        .contains("interrupted update (committed)"));
    // S2 loses what it held pending (say it was replaced): the next run sends it again from
    // staging, then activates.
    let mut fw = DirForwarder::new(w.p("ecus"));
    fw.discard(&dir_config(&w, "").ecus[1]).unwrap();
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        out.iter()
            .all(|(_, o)| matches!(o, EcuOutcome::UpToDate { .. })),
        "{:?}",
        out.iter().map(|(_, o)| summary(o)).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(w.p("ecus/S2/image.bin")).unwrap(),
        [1u8; 5000]
    );
    assert!(!gw.status().unwrap().contains("interrupted update"));
    // The staged image is gone once every ECU runs it.
    let staged = std::fs::read_dir(w.p("state/staging"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .count();
    assert_eq!(staged, 0);
}

/// Scenario: ECU trial boot | a signed, approved image that faults at start-up on the vehicle's ECUs | each ECU's bootloader returns to its previous image by itself; the gateway says REVERTED, records a reverted event for the OEM and never sends those bytes again
#[test]
fn an_image_that_faults_at_start_up_is_reverted_and_reported() {
    let mut v = Vehicle::new();
    publish_faulting_3_0(&v);
    v.assign_all("3.0");
    v.start_all();
    let out = v.gateway(&["update"], None);
    assert!(!out.status.success(), "{}", text(&out));
    assert_reverted(&out, &SERIALS);
    v.stop_all();
    // Every ECU runs 1.0 again (the gateway records it too), with the counter of 1.0, and
    // remembers what it left and why.
    v.assert_all("1.0");
    for (s, st) in SERIALS.iter().zip(v.states()) {
        let r = st.reverted.unwrap_or_else(|| panic!("ECU {s}: {st:?}"));
        assert_eq!(
            (r.version.as_str(), r.reason),
            ("3.0", ota_ecu::state::RevertReason::Fault)
        );
        assert!(st.release_counter < 9, "ECU {s}: {st:?}");
        assert!(st.trial.is_none());
    }
    // The events the next version report carries to the OEM.
    assert_reverted_events(&v);
    // The next check sends nothing it could run: each ECU refuses the reverted bytes.
    v.start_all();
    let out = v.gateway(&["update"], None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reverted from that image"),
        "{}",
        text(&out)
    );
    v.stop_all();
    v.assert_all("1.0");
}

/// brake-fw 3.0 (counter 9): signed by the supplier, approved by the regulator, and it faults
/// at start-up (the simulator's marker). Not assigned yet.
fn publish_faulting_3_0(v: &Vehicle) {
    let mut bytes = ota_ecu::sim::FAULT_MARKER.to_vec();
    bytes.resize(5000, 0x33);
    v.w.release("3.0", 9, &bytes);
}

/// Scenario: ECU trial boot | the gateway dies right after sending ACTIVATE (or the ECU loses power during its activation) and the image then fails its trial | the next run finds the revert on the ECU and reports it as REVERTED with a reverted event, never as updated or up to date
#[test]
fn a_revert_after_an_interrupted_activation_is_found_and_reported() {
    // The gateway aborted just after E1's activation went out: E1 reverted while no gateway
    // was listening; E2 and E3 still hold 3.0 pending.
    let mut v = Vehicle::new();
    publish_faulting_3_0(&v);
    v.assign_all("3.0");
    v.start_all();
    let out = v.gateway(&["update"], Some(12));
    assert_eq!(
        aborted_at(&out).as_deref(),
        Some("activation of ECU E1 sent"),
        "{}",
        text(&out)
    );
    let out = v.gateway(&["update"], None);
    assert_reverted(&out, &SERIALS);
    assert!(!out.status.success(), "{}", text(&out));
    v.stop_all();
    v.assert_all("1.0");
    assert_reverted_events(&v);

    // E1 loses power at its activation's state write (after erase, two blocks and the
    // pending state: the fifth write); the gateway's run fails there. Power back, the next
    // run activates it again as decided: it reverts, and is reported so.
    let mut v = Vehicle::new();
    publish_faulting_3_0(&v);
    v.assign_all("3.0");
    v.start(0, &["--power-cut-after-writes", "4"]);
    v.start(1, &[]);
    v.start(2, &[]);
    let out = v.gateway(&["update"], None);
    assert!(!out.status.success(), "{}", text(&out));
    v.stop_all();
    assert_eq!(v.journal().as_deref(), Some("commit"), "{}", text(&out));
    v.start_all();
    let out = v.gateway(&["update"], None);
    assert_reverted(&out, &["E1"]);
    assert!(!out.status.success(), "{}", text(&out));
    let check = v.gateway(&["update"], None);
    assert!(
        !String::from_utf8_lossy(&check.stdout).contains("up to date (brake-fw 3.0)"),
        "{}",
        text(&check)
    );
    v.stop_all();
    v.assert_all("1.0");
}

/// Scenario: ECU trial boot | an ECU answers ACTIVATE, then loses power before the gateway can ask what it runs, and its image fails its trial at the next power-on | never reported as updated, in that run or later: the run fails saying the outcome is unknown, the journal keeps the ECU, and the next run reports REVERTED
#[test]
fn an_ecu_silent_after_its_activation_is_never_reported_updated() {
    let mut v = Vehicle::new();
    publish_faulting_3_0(&v);
    v.assign_all("3.0");
    // E1's sixth flash write is the trial boot's count, after it answered ACTIVATE (erase,
    // two blocks, the pending state, the activation): it dies there, answering nothing more.
    v.start(0, &["--power-cut-after-writes", "5"]);
    v.start(1, &[]);
    v.start(2, &[]);
    let out = v.gateway(&["update"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !stdout.contains("ECU E1: updated to brake-fw 3.0"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not known"),
        "{}",
        text(&out)
    );
    v.stop_all();
    assert_eq!(v.journal().as_deref(), Some("commit"), "{}", text(&out));
    let status = v.gateway(&["status"], None);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("ECU E1 [BRAKE-A]: brake-fw 3.0"),
        "{}",
        text(&status)
    );
    // Power back: E1's bootloader runs the trial, which faults, and returns to 1.0 by itself.
    // The next run finds that and says so.
    v.start_all();
    let out = v.gateway(&["update"], None);
    assert_reverted(&out, &["E1"]);
    let again = v.gateway(&["update"], None);
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("up to date (brake-fw 3.0)"),
        "{}",
        text(&again)
    );
    v.stop_all();
    v.assert_all("1.0");
}

/// The run's output says each of `serials` reverted brake-fw 3.0 after a fault.
fn assert_reverted(out: &Output, serials: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for s in serials {
        assert!(
            stderr.contains(&format!(
                "ECU {s}: REVERTED brake-fw 3.0: activated, then faulted before confirming itself"
            )),
            "{}",
            text(out)
        );
    }
}

/// The gateway holds a `reverted` event of brake-fw 3.0 (a fault) for every ECU, for the next
/// version report.
fn assert_reverted_events(v: &Vehicle) {
    let state = ota_client::state::GatewayState::load(&v.w.p("state-2p")).unwrap();
    for s in SERIALS {
        assert!(
            state.events.iter().any(|e| e.serial == s
                && e.outcome == ota_metadata::documents::Outcome::Reverted
                && e.version == "3.0"
                && e.code.contains("faulted")),
            "{s}: {:?}",
            state.events
        );
    }
}

/// A forwarder whose ECUs take images (into their directories) and refuse every delta at
/// `step` with `nrc`, as an ECU does when a delta rebuilds other bytes than the image
/// (`the transfer exit`: hash mismatch), or when the manifest itself is refused (`the
/// download request`).
struct RefusingDeltas {
    inner: DirForwarder,
    step: &'static str,
    nrc: ota_ecu::uds::Nrc,
    deltas_offered: usize,
}

impl Forwarder for RefusingDeltas {
    fn stage(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
        m: &[u8],
        image: &Path,
    ) -> Result<(), ota_client::forward::ForwardError> {
        self.inner.stage(ecu, m, image)
    }
    fn carries_deltas(&self) -> bool {
        true
    }
    fn stage_payload(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
        m: &[u8],
        bundle: &[u8],
        payload: ota_client::forward::Payload<'_>,
    ) -> Result<Option<ota_client::forward::Sent>, ota_client::forward::ForwardError> {
        match payload {
            ota_client::forward::Payload::Delta(_) => {
                self.deltas_offered += 1;
                Err(ota_client::forward::ForwardError::Flash {
                    serial: ecu.serial.clone(),
                    source: ota_ecu::flasher::FlashError::Refused {
                        step: self.step,
                        nrc: Some(self.nrc),
                        code: self.nrc as u8,
                    },
                })
            }
            image => self.inner.stage_payload(ecu, m, bundle, image),
        }
    }
    fn activate(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
        sha256: &[u8; 32],
    ) -> Result<(), ota_client::forward::ForwardError> {
        self.inner.activate(ecu, sha256)
    }
    fn discard(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
    ) -> Result<(), ota_client::forward::ForwardError> {
        self.inner.discard(ecu)
    }
}

/// Scenario: Deltas | a supplier-signed delta that decodes cleanly but rebuilds other bytes than the image (a stolen supplier key, or an encoder bug): the ECU refuses what it rebuilt | the gateway sends the whole image in the same run, so the vehicle is not held back run after run; a refusal of the manifest itself stands
#[test]
fn a_delta_the_ecu_refuses_after_its_request_costs_one_download_not_the_update() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = gateway(&w, "");
    let out = gw.run(Some(&mut DirForwarder::new(w.p("ecus")))).unwrap();
    assert!(
        matches!(out[0].1, EcuOutcome::Updated { .. }),
        "{}",
        summary(&out[0].1)
    );
    let v11: Vec<u8> = (0..5000u32)
        .map(|i| if i % 97 == 0 { 7 } else { 1 })
        .collect();
    w.release_with_deltas("1.1", 2, &v11, &["1.0"]);
    w.assign("S1", "1.1");
    let mut refusing = RefusingDeltas {
        inner: DirForwarder::new(w.p("ecus")),
        step: "the transfer exit",
        nrc: ota_ecu::uds::Nrc::HashMismatch,
        deltas_offered: 0,
    };
    let out = gw.run(Some(&mut refusing)).unwrap();
    assert_eq!(refusing.deltas_offered, 1, "the delta was offered first");
    let EcuOutcome::Updated { carried, .. } = &out[0].1 else {
        panic!("{}", summary(&out[0].1))
    };
    let carried = carried.as_ref().expect("sent in this run");
    assert_eq!(
        carried.delta_from, None,
        "the whole image went: {carried:?}"
    );
    assert_eq!(std::fs::read(w.p("ecus/S1/image.bin")).unwrap(), v11);

    // A refusal of the request itself (here: the manifest's signature) is the release's, not
    // the delta's: it stands, and nothing is sent instead.
    let v12: Vec<u8> = (0..5000u32)
        .map(|i| if i % 89 == 0 { 9 } else { 1 })
        .collect();
    w.release_with_deltas("1.2", 3, &v12, &["1.1"]);
    w.assign("S1", "1.2");
    let mut refusing = RefusingDeltas {
        inner: DirForwarder::new(w.p("ecus")),
        step: ota_ecu::flasher::REQUEST_STEP,
        nrc: ota_ecu::uds::Nrc::BadSignature,
        deltas_offered: 0,
    };
    let out = gw.run(Some(&mut refusing)).unwrap();
    assert_eq!(refusing.deltas_offered, 1);
    assert!(
        matches!(&out[0].1, EcuOutcome::Failed(e) if e.to_string().contains("signature")),
        "{}",
        summary(&out[0].1)
    );
    assert_eq!(std::fs::read(w.p("ecus/S1/image.bin")).unwrap(), v11);
}
