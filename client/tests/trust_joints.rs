//! The joints between parts where the trust chain broke (issue 22): each test mounts an attack
//! that succeeded on the released binaries and checks it is refused, across parts (the
//! publishers' commands, the served trees, the gateway).
//!
//! Invariants:
//! - no vehicle installs bytes that any authorized regulator rejected or revoked, under any
//!   label (release, version, counter) of those bytes;
//! - regulators count by key material in every role, never by the name they are listed under.

mod world;

use ota_client::gateway::{summary, EcuError, EcuOutcome};
use ota_client::walk::{Check, WalkError};
use ota_metadata::SigningKey;
use ota_repo::supplier::RoleOptions;
use ota_repo::{oem, regulator, supplier};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use world::{installed, new_key, outcome, read_json, sha_hex, write_json, World};

fn failed_at(out: &[(String, EcuOutcome)], serial: &str, check: Check) -> String {
    let o = &out.iter().find(|(s, _)| s == serial).unwrap().1;
    let EcuOutcome::Failed(EcuError::Walk(WalkError { check: c, .. })) = o else {
        panic!("expected a failed {check:?} check, got {}", summary(o))
    };
    assert_eq!(*c, check, "{}", summary(o));
    summary(o)
}

/// The newest `N.role.json` in `repo`.
fn latest(repo: &Path, role: &str) -> Value {
    let n = std::fs::read_dir(repo)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(&format!(".{role}.json"))?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    read_json(&repo.join(format!("{n}.{role}.json")))
}

/// Supplier acme releases the bytes of `file` as brake-fw `version` (counter `counter`),
/// publishes, and the OEM submits the release for review and publishes.
fn release(w: &World, file: &Path, version: &str, counter: u64) {
    supplier::add_image(
        &w.p("acme"),
        supplier::AddImage {
            file: file.to_path_buf(),
            uid: "brake-fw".into(),
            version: version.into(),
            release_counter: counter,
            hardware_ids: vec!["BRAKE-A".into()],
            role: "targets".into(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        },
        w.now,
    )
    .unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    oem::review_submit(
        &w.p("oem"),
        oem::Submit {
            supplier: "acme",
            uid: "brake-fw",
            version,
            from: None,
            ca: None,
            content_key: None,
        },
        w.now,
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
}

/// Regulator `name` reviews what the OEM queued, with every outcome accepted (approved or
/// rejected), and publishes.
fn review(w: &World, name: &str) -> Vec<regulator::Outcome> {
    let opts = regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: None,
        ca: None,
        supplier_from: Default::default(),
        decryption_keys: None,
    };
    let out = regulator::review(&w.p(name), opts, w.now).unwrap();
    regulator::publish(&w.p(name), w.now, false).unwrap();
    out
}

// ---- 1. A veto is a veto ------------------------------------------------------------------

/// Scenario: Regulators | a revoked release re-released as a new version, one regulator of a threshold of 1 approving it | refused by the bytes' veto, reviewed or not
#[test]
fn a_revoked_release_released_again_under_a_new_version_stays_vetoed() {
    let w = World::new();
    w.add_regulator("dekra");
    w.review("dekra");
    // Threshold 1 of {tuv, dekra}. tuv revokes brake-fw 1.0.
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(
        &w.p("tuv"),
        &sha_hex(&bytes),
        "backdoor in the CAN stack",
        w.now,
    )
    .unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();

    // The supplier releases the same bytes again as 3.0 with a higher counter; dekra, which
    // never revoked them, approves; tuv has not reviewed the new release yet.
    release(&w, &w.p("fw-1.0.bin"), "3.0", 3);
    let judged = review(&w, "dekra");
    assert!(judged.iter().any(|o| o.request.image.version == "3.0"
        && o.result == Ok(ota_metadata::documents::Verdict::Approved)));
    w.assign("S1", "3.0");
    let why = failed_at(&w.update(), "S1", Check::Revoked);
    assert!(why.contains("regulator tuv revoked"), "{why}");
    assert!(why.contains("backdoor in the CAN stack"), "{why}");
    assert!(installed(&w, "S1").is_none());

    // tuv reviews it: rejected (the bytes are revoked); still refused, as a revocation.
    let judged = review(&w, "tuv");
    let v3 = judged
        .iter()
        .find(|o| o.request.image.version == "3.0")
        .unwrap();
    assert_eq!(v3.result, Ok(ota_metadata::documents::Verdict::Rejected));
    failed_at(&w.update(), "S1", Check::Revoked);
    assert!(installed(&w, "S1").is_none());

    // The served tree lists the veto under the bytes, and `ota-repo verify` accepts it.
    let t = latest(&w.p("tuv/repository"), "targets");
    let veto = format!("{}.veto.json", sha_hex(&bytes));
    assert_eq!(
        t["signed"]["targets"][&veto]["custom"]["verdict"],
        "revoked"
    );
    ota_repo::verify::verify(&w.p("tuv/repository"), None, w.now).unwrap();
}

/// Scenario: Regulators | one regulator rejects a release another approves, threshold 1 | the rejection vetoes it, and a release of the same bytes under another version too
#[test]
fn one_regulators_rejection_vetoes_whatever_the_approvals() {
    let w = World::new();
    w.add_regulator("dekra");
    w.review("dekra");
    // tuv scans for a marker dekra does not know.
    std::fs::write(
        w.p("tuv/rules.json"),
        serde_json::to_vec(
            &json!({"patterns": [{"name": "hidden-uds-service", "text": "UDS-BACKDOOR"}]}),
        )
        .unwrap(),
    )
    .unwrap();
    let mut image = vec![7u8; 4000];
    image.extend_from_slice(b"UDS-BACKDOOR");
    std::fs::write(w.p("fw-4.0.bin"), &image).unwrap();
    release(&w, &w.p("fw-4.0.bin"), "4.0", 4);
    review(&w, "tuv");
    review(&w, "dekra");
    w.assign("S1", "4.0");
    let why = failed_at(&w.update(), "S1", Check::Rejected);
    assert!(why.contains("regulator tuv rejected"), "{why}");
    assert!(why.contains("hidden-uds-service"), "{why}");
    assert!(installed(&w, "S1").is_none());

    // The same bytes as 5.0, approved by dekra and not yet reviewed by tuv: vetoed by bytes.
    release(&w, &w.p("fw-4.0.bin"), "5.0", 5);
    review(&w, "dekra");
    w.assign("S1", "5.0");
    let why = failed_at(&w.update(), "S1", Check::Rejected);
    assert!(
        why.contains("brake-fw 4.0 of acme (the same bytes)"),
        "{why}"
    );
    assert!(installed(&w, "S1").is_none());
}

/// Scenario: Regulators | the bytes of an installed image are revoked under another release | the installed image is reported as a recall
#[test]
fn a_veto_on_the_bytes_recalls_the_installed_release() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    // The same bytes come back as 1.1; tuv approves them, then revokes only that release.
    release(&w, &w.p("fw-1.0.bin"), "1.1", 2);
    review(&w, "tuv");
    let t = read_json(&w.p("tuv/ota-repo.json"));
    let manifest_sha = t["attestations"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["release"]["version"] == "1.1")
        .map(|(k, _)| k.clone())
        .unwrap();
    regulator::revoke(&w.p("tuv"), &manifest_sha, "CVE-2026-0001", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("RECALLED: installed brake-fw 1.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(outcome(&out, "S1").contains("CVE-2026-0001"));
}

// ---- 2. One regulator counted twice -------------------------------------------------------

/// Scenario: Regulators | a second regulator with its own root key but the first one's attestation key, threshold 2 | refused by `oem regulator add`; counted once by the gateway whatever the OEM published
#[test]
fn a_regulator_sharing_an_attestation_key_counts_once() {
    let w = World::new();
    w.twin_regulator("tuv2", "tuv");
    let root = w.p("tuv2/repository/1.root.json");
    let err = oem::regulator_add(&w.p("oem"), "tuv2", &root, &w.url("tuv2")).unwrap_err();
    assert!(
        err.to_string().contains("shares keys with regulator tuv"),
        "{err}"
    );
    // Nor by re-pinning an existing regulator to it.
    w.add_regulator("dekra");
    let err = oem::regulator_repin(&w.p("oem"), "dekra", &root, None).unwrap_err();
    assert!(
        err.to_string().contains("shares keys with regulator tuv"),
        "{err}"
    );

    // An OEM that published it anyway (hand-edited settings, a pin without the role keys as
    // an older tool wrote it) with threshold 2: the gateway counts tuv once.
    w.pin_by_hand("tuv2");
    let settings = w.p("oem/ota-repo.json");
    let mut s = read_json(&settings);
    s["regulators"].as_object_mut().unwrap().remove("dekra");
    s["regulator_threshold"] = json!(2);
    write_json(&settings, &s);
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    review(&w, "tuv2");
    w.assign("S1", "1.0");
    let why = failed_at(&w.update(), "S1", Check::NotApproved);
    assert!(why.contains("count as 1"), "{why}");
    assert!(installed(&w, "S1").is_none());
}

/// Scenario: Regulators | a regulator whose key is a pinned supplier's | refused by `oem regulator add`
#[test]
fn a_regulator_holding_a_suppliers_key_is_refused() {
    let w = World::new();
    // acme signs with k.pem in every role; a "regulator" whose targets key is k.pem.
    let root_key = new_key(&w, "rogue-root.pem");
    let roles = RoleOptions {
        default_keys: vec![w.p("k.pem")],
        role_keys: [("root".to_string(), vec![root_key])].into(),
        ..Default::default()
    };
    regulator::init(&w.p("rogue"), "rogue", &roles, w.now).unwrap();
    let err = oem::regulator_add(
        &w.p("oem"),
        "rogue",
        &w.p("rogue/repository/1.root.json"),
        &w.url("rogue"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("shares keys with supplier acme"),
        "{err}"
    );
}

// ---- 3. Nothing enters the ECU's trust unseen ----------------------------------------------

fn ecu_trust(
    w: &World,
    suppliers: ota_repo::oem::ecu_trust::SupplierKeys,
    signers: &[&str],
    signer_threshold: Option<u8>,
    confirmed_keys: Vec<String>,
) -> ota_repo::error::Result<(u32, PathBuf)> {
    oem::ecu_trust(
        &w.p("oem"),
        &oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers,
            supplier_threshold: None,
            regulator_keys: vec![],
            regulator_threshold: 0,
            full: false,
            signer_keys: signers.iter().map(|s| w.p(s)).collect(),
            signer_threshold,
            confirmed_keys,
            previous_signer_keys: vec![],
            min_release_counter: None,
            legacy: false,
        },
    )
}

fn pinned_acme(w: &World) -> ota_repo::oem::ecu_trust::SupplierKeys {
    ota_repo::oem::ecu_trust::SupplierKeys::Pinned {
        name: "acme".into(),
        from: None,
        ca: None,
        now: w.now,
    }
}

/// Scenario: Stolen keys | a supplier's root key stolen, its chain rotated to the attacker's targets key | `oem ecu-trust --supplier` names the unseen key and refuses it until the OEM confirms it or re-pins the supplier
#[test]
fn a_stolen_supplier_root_cannot_carry_its_key_into_ecu_trust() {
    let w = World::new();
    new_key(&w, "trust-a.pem");
    new_key(&w, "trust-b.pem");
    // Version 1 from acme's pin: its targets key is in the pinned root, nothing to confirm.
    let (v, _) = ecu_trust(
        &w,
        pinned_acme(&w),
        &["trust-a.pem", "trust-b.pem"],
        None,
        vec![],
    )
    .unwrap();
    assert_eq!(v, 1);

    // The attacker, holding acme's root key, rotates acme's targets key to its own.
    let attacker = new_key(&w, "attacker.pem");
    let attacker_id = SigningKey::from_pem(&std::fs::read_to_string(&attacker).unwrap())
        .unwrap()
        .key_id()
        .0
        .clone();
    ota_repo::rotation::rotate::<ota_repo::supplier::Settings>(
        &w.p("acme"),
        "targets",
        vec![attacker],
        None,
        w.now,
    )
    .unwrap();
    // The OEM's routine command: refused, naming the key.
    let err = ecu_trust(
        &w,
        pinned_acme(&w),
        &["trust-a.pem", "trust-b.pem"],
        None,
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&attacker_id), "{err}");
    assert!(err.contains("--confirm-key"), "{err}");
    assert_eq!(
        ota_repo::oem::ecu_trust::versions(&w.p("oem"), "BRAKE-A").unwrap(),
        vec![1],
        "nothing written"
    );
    // Confirming another key does not help.
    let err = ecu_trust(
        &w,
        pinned_acme(&w),
        &["trust-a.pem", "trust-b.pem"],
        None,
        vec!["00".repeat(32)],
    )
    .unwrap_err();
    assert!(err.to_string().contains(&attacker_id), "{err}");

    // A legitimate rotation goes through the same way once confirmed (here: by re-pinning
    // acme to its current root, which names the key).
    let newest = (1..)
        .map(|n| w.p(&format!("acme/repository/{n}.root.json")))
        .take_while(|p| p.exists())
        .last()
        .unwrap();
    oem::supplier_repin(&w.p("oem"), "acme", &newest, None).unwrap();
    let (v, _) = ecu_trust(
        &w,
        pinned_acme(&w),
        &["trust-a.pem", "trust-b.pem"],
        None,
        vec![],
    )
    .unwrap();
    assert_eq!(v, 2);
}

// ---- 4. The ECU trust signer ----------------------------------------------------------------

/// Scenario: Stolen keys | an online OEM key (timestamp, vehicles) used as the ECU trust signer | refused; a new document needs two offline signers unless asked for one
#[test]
fn ecu_trust_documents_are_signed_by_offline_keys_only() {
    let w = World::new();
    let acme_pub = w.p("acme.pub.pem");
    std::fs::write(
        &acme_pub,
        ota_metadata::signing::public_pem(
            &SigningKey::from_pem(world::key_pem()).unwrap().rsa_public(),
        )
        .unwrap(),
    )
    .unwrap();
    let files = || ota_repo::oem::ecu_trust::SupplierKeys::Files(vec![acme_pub.clone()]);
    // k.pem signs the OEM's timestamp, snapshot, review and vehicles roles.
    let err = ecu_trust(&w, files(), &["k.pem"], Some(1), vec![]).unwrap_err();
    assert!(err.to_string().contains("online"), "{err}");
    // A key the document trusts as a regulator key cannot sign it either.
    new_key(&w, "trust-a.pem");
    let err = oem::ecu_trust(
        &w.p("oem"),
        &oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: files(),
            supplier_threshold: None,
            regulator_keys: vec![w.p("tuv.pem")],
            regulator_threshold: 1,
            full: true,
            signer_keys: vec![w.p("trust-a.pem"), w.p("tuv.pem")],
            signer_threshold: None,
            confirmed_keys: vec![],
            previous_signer_keys: vec![],
            min_release_counter: None,
            legacy: false,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("also a supplier or regulator key"),
        "{err}"
    );
    // One offline signer: refused by default (a new document needs two) ...
    let err = ecu_trust(&w, files(), &["trust-a.pem"], None, vec![]).unwrap_err();
    assert!(err.to_string().contains("needs two by default"), "{err}");
    // ... and the same key twice is one signer.
    let err = ecu_trust(&w, files(), &["trust-a.pem", "trust-a.pem"], None, vec![]).unwrap_err();
    assert!(err.to_string().contains("1 distinct signer key"), "{err}");
    // Two offline keys: issued, with threshold 2.
    new_key(&w, "trust-b.pem");
    let (_, path) = ecu_trust(&w, files(), &["trust-a.pem", "trust-b.pem"], None, vec![]).unwrap();
    let doc =
        ota_ecu::trust::TrustDocument::provision(&std::fs::read(path).unwrap(), "BRAKE-A").unwrap();
    assert_eq!(doc.signers.threshold, 2);
}

// ---- 7. A recall hidden by a failing update --------------------------------------------------

/// Scenario: Regulators | the installed release is revoked while a newer assignment fails its checks | both are reported (update output, status, version report)
#[test]
fn a_failing_update_does_not_hide_a_recall() {
    let w = World::new();
    w.assign("S1", "1.0");
    assert!(outcome(&w.update(), "S1").starts_with("updated to brake-fw 1.0"));
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(&w.p("tuv"), &sha_hex(&bytes), "CVE-2026-0002", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    // A newer release nobody reviewed: its update fails.
    std::fs::write(w.p("fw-3.0.bin"), vec![3u8; 5000]).unwrap();
    release(&w, &w.p("fw-3.0.bin"), "3.0", 3);
    w.assign("S1", "3.0");
    let out = w.update();
    let o = &out.iter().find(|(s, _)| s == "S1").unwrap().1;
    let EcuOutcome::FailedRecalled {
        error,
        recall,
        version,
        ..
    } = o
    else {
        panic!("expected a failure and a recall, got {}", summary(o))
    };
    assert_eq!(error.check(), Some(Check::NotApproved), "{error}");
    assert_eq!(version, "1.0");
    assert_eq!(recall.regulator, "tuv");
    assert!(recall.reason.contains("CVE-2026-0002"), "{}", recall.reason);
    assert!(summary(o).contains("RECALLED"), "{}", summary(o));
    let status = w.gateway_at(w.now).status().unwrap();
    assert!(status.contains("RECALLED by regulator tuv"), "{status}");
    assert_eq!(installed(&w, "S1").unwrap(), bytes);
}

// ---- TUF details: a closed stdout ------------------------------------------------------------

/// `ota-gateway update` and `status` with stdout closed (as `| head -1` leaves it once head
/// exits): the output stops, the update does not, and nothing panics.
#[test]
fn a_closed_stdout_ends_the_output_not_the_gateway() {
    let w = World::new();
    w.assign("S1", "1.0");
    let cfg = w.config_for(
        "closed.toml",
        "VIN1",
        &[
            ("S1".into(), "BRAKE-A".into()),
            ("S2".into(), "BRAKE-A".into()),
        ],
    );
    let run = |cmd: &str| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "\"$0\" --config \"$1\" {cmd} >&-; echo \"exit $?\" >&2"
            ))
            .arg(env!("CARGO_BIN_EXE_ota-gateway"))
            .arg(&cfg)
            .current_dir(w.tmp.path())
            .output()
            .unwrap()
    };
    for cmd in ["init", "update", "status"] {
        let out = run(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim_end().ends_with("exit 0"), "{cmd}: {err}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
    assert_eq!(
        std::fs::read(w.p("ecus-VIN1/S1/image.bin")).unwrap(),
        std::fs::read(w.p("fw-1.0.bin")).unwrap()
    );
}

// ---- 5 and 9. Recovery always ends, and the state directory is untrusted ---------------------

/// A gateway over the directory forwarder for VIN1 with `ecus`.
fn dir_gateway(w: &World, ecus: &[&str]) -> ota_client::gateway::Gateway {
    let list: Vec<(String, String)> = ecus
        .iter()
        .map(|s| (s.to_string(), "BRAKE-A".to_string()))
        .collect();
    let cfg = w.config_for("dir.toml", "VIN1", &list);
    let gw =
        ota_client::gateway::Gateway::new(ota_client::config::Config::load(&cfg).unwrap(), w.now)
            .unwrap();
    if !w.p("state-VIN1/repos/oem/root.json").exists() {
        gw.init(false).unwrap();
    }
    gw
}

fn journal(w: &World) -> Option<Value> {
    std::fs::read(w.p("state-VIN1/update-journal.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

/// S1 and S2 assigned 1.0; the update is committed, S1 activated, S2 unreachable at its
/// activation: the journal says to go on with S2.
fn committed_with_s2_waiting(w: &World) {
    w.assign("S1", "1.0");
    w.assign("S2", "1.0");
    let gw = dir_gateway(w, &["S1", "S2"]);
    let mut failing = world::FailingActivation::new(w.p("ecus-VIN1"), "S2");
    let out = gw.run(Some(&mut failing)).unwrap();
    assert!(
        outcome(&out, "S1").starts_with("updated"),
        "{}",
        outcome(&out, "S1")
    );
    assert_eq!(journal(w).unwrap()["phase"], "commit");
    assert!(w.p("ecus-VIN1/S2/pending-image.bin").exists());
    assert!(!w.p("ecus-VIN1/S2/image.bin").exists());
}

/// Scenario: Partial updates | an ECU of a committed update leaves the configuration (replaced) before it is activated | the next run ends the recovery (the rest finished, the replaced ECU dropped with a reason in status) and walks as usual
#[test]
fn a_committed_update_whose_ecu_was_replaced_does_not_lock_the_vehicle() {
    let w = World::new();
    committed_with_s2_waiting(&w);
    // S2 is replaced by S3 in the gateway's configuration (a workshop job); the OEM assigns
    // S3 2.0.
    oem::ecu_replace(&w.p("oem"), "VIN1", "S2", "S3:BRAKE-A").unwrap();
    w.assign("S3", "2.0");
    let gw = dir_gateway(&w, &["S1", "S3"]);
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        outcome(&out, "S1").starts_with("up to date"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(
        outcome(&out, "S3").starts_with("updated to brake-fw 2.0"),
        "{}",
        outcome(&out, "S3")
    );
    assert_eq!(journal(&w), None, "recovery ended");
    let status = gw.status().unwrap();
    assert!(
        !status.contains("interrupted update (committed)"),
        "{status}"
    );
    // The next run has nothing left to recover.
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        outcome(&out, "S3").starts_with("up to date"),
        "{}",
        outcome(&out, "S3")
    );
}

/// Scenario: Regulators | the release of a committed update is revoked before the roll-forward reaches an ECU | the roll-forward checks it again and discards it instead of activating it
#[test]
fn a_roll_forward_checks_the_release_again_and_discards_a_revoked_one() {
    let w = World::new();
    committed_with_s2_waiting(&w);
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(&w.p("tuv"), &sha_hex(&bytes), "CVE-2026-0003", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    let gw = dir_gateway(&w, &["S1", "S2"]);
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        !w.p("ecus-VIN1/S2/image.bin").exists(),
        "the revoked image was activated"
    );
    assert_eq!(journal(&w), None, "recovery ended");
    // S2 is still assigned the revoked release: the walk refuses it, naming the revocation.
    failed_at(&out, "S2", Check::Revoked);
    let status = gw.status().unwrap();
    assert!(
        status.contains("interrupted update dropped at recovery") && status.contains("revoked"),
        "{status}"
    );
}

/// Scenario: Partial updates | the gateway's update journal is corrupted on disk | the next run discards it (every ECU drops what it holds pending), says so in status, and updates as usual
#[test]
fn an_unreadable_journal_is_discarded_not_a_lock() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = dir_gateway(&w, &["S1"]);
    std::fs::create_dir_all(w.p("state-VIN1")).unwrap();
    std::fs::write(w.p("state-VIN1/update-journal.json"), b"{\"phase\": \"comm").unwrap();
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-fw 1.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert_eq!(journal(&w), None);
}

/// Scenario: Arbitrary software | a forged `commit` journal on the gateway's disk names a rejected image, staged beside it, for a partial-mode ECU | the honest gateway checks the entry against the verified metadata and drops it; the ECU never receives the image
#[test]
fn a_forged_commit_journal_cannot_install_a_rejected_image() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = dir_gateway(&w, &["S1"]);
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    assert!(outcome(&gw.run(Some(&mut fw)).unwrap(), "S1").starts_with("updated"));
    // A release tuv rejects (a backdoor marker), signed by the supplier.
    std::fs::write(
        w.p("tuv/rules.json"),
        serde_json::to_vec(&json!({"patterns": [{"name": "backdoor", "text": "UDS-BACKDOOR"}]}))
            .unwrap(),
    )
    .unwrap();
    let mut image = vec![4u8; 4000];
    image.extend_from_slice(b"UDS-BACKDOOR");
    std::fs::write(w.p("fw-4.0.bin"), &image).unwrap();
    release(&w, &w.p("fw-4.0.bin"), "4.0", 4);
    review(&w, "tuv");
    // The attacker, with the gateway's disk: the image staged, a journal naming it.
    let sha = sha_hex(&image);
    let staging = ota_client::staging::Staging::new(&w.p("state-VIN1"), 1 << 30);
    std::fs::write(w.p("evil.bin"), &image).unwrap();
    staging.keep(&w.p("evil.bin"), &sha).unwrap();
    let compact = std::fs::read_dir(w.p("acme/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("brake-fw-4.0.manifest.bin"))
        .unwrap();
    let forged = json!({
        "phase": "commit",
        "ecus": [{
            "serial": "S1",
            "installed": {"uid": "brake-fw", "version": "4.0", "release_counter": 4, "sha256": sha},
            "length": image.len(),
            "compact_manifest": hex::encode(std::fs::read(compact).unwrap()),
        }]
    });
    write_json(&w.p("state-VIN1/update-journal.json"), &forged);
    let out = gw.run(Some(&mut fw)).unwrap();
    assert_ne!(
        std::fs::read(w.p("ecus-VIN1/S1/image.bin")).unwrap(),
        image,
        "the rejected image was installed"
    );
    assert!(
        outcome(&out, "S1").starts_with("up to date (brake-fw 1.0)"),
        "{}",
        outcome(&out, "S1")
    );
    assert_eq!(journal(&w), None);
    let status = gw.status().unwrap();
    assert!(
        status.contains("interrupted update dropped at recovery"),
        "{status}"
    );
    assert!(status.contains("brake-fw 1.0"), "{status}");
}

// ---- 8. The freeze window ---------------------------------------------------------------------

use ota_testkit::copy_tree;

/// Scenario: Freeze | a network attacker serves a regulator's tree from before a revocation | the revoked release installs only while that old timestamp runs (6 h by default, at most the OEM's maximum), and is refused after
#[test]
fn a_frozen_regulator_tree_is_accepted_only_within_the_timestamp_lifetime() {
    let w = World::new();
    let frozen = w.p("tuv-before-revocation");
    copy_tree(&w.p("tuv/repository"), &frozen);
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(&w.p("tuv"), &sha_hex(&bytes), "CVE-2026-0004", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    w.assign("S1", "1.0");
    // The attacker answers for tuv with the old tree.
    std::fs::rename(w.p("tuv/repository"), w.p("tuv/current")).unwrap();
    copy_tree(&frozen, &w.p("tuv/repository"));
    let gw = dir_gateway(&w, &["S1"]);
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    // A second after the old timestamp's 6 h: refused, naming tuv.
    let at = |secs: i64| {
        let now = ota_metadata::DateTime(w.now.0 + secs);
        ota_client::gateway::Gateway::new(gw.config.clone(), now).unwrap()
    };
    let out = at(6 * 3600 + 1).run(Some(&mut fw)).unwrap();
    let why = failed_at(&out, "S1", Check::RegulatorUnreachable);
    assert!(why.contains("regulator tuv"), "{why}");
    assert!(!w.p("ecus-VIN1/S1/image.bin").exists());
    // A second before, it is accepted: the window is the timestamp's lifetime, which the
    // README states. (The gateway must not have seen tuv's newer state: a fresh vehicle.)
    let out = at(6 * 3600 - 1).run(Some(&mut fw)).unwrap();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-fw 1.0"),
        "{}",
        outcome(&out, "S1")
    );
}

/// Scenario: Freeze | a regulator signs timestamps that run longer than the OEM allows (so a replayed copy would be accepted that long) | vehicles refuse that regulator until it signs shorter ones or the OEM lifts the bound
#[test]
fn a_regulator_timestamp_longer_than_the_oem_allows_is_refused() {
    let w = World::new();
    // tuv's timestamp now runs 2 days; the OEM allows 12 hours (its default).
    let settings = w.p("tuv/ota-repo.json");
    let mut s = read_json(&settings);
    s["roles"]["timestamp"]["expires"] = json!("2d");
    write_json(&settings, &s);
    regulator::publish(&w.p("tuv"), w.now, true).unwrap();
    w.assign("S1", "1.0");
    let gw = dir_gateway(&w, &["S1"]);
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN1"));
    let out = gw.run(Some(&mut fw)).unwrap();
    let why = failed_at(&out, "S1", Check::RegulatorUnreachable);
    assert!(
        why.contains("longer than the 43200 s the OEM allows"),
        "{why}"
    );
    // The OEM lifts the bound (or tuv signs shorter timestamps): accepted.
    oem::regulator_max_age(&w.p("oem"), None).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    let out = gw.run(Some(&mut fw)).unwrap();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-fw 1.0"),
        "{}",
        outcome(&out, "S1")
    );
    // And the bound is refused below a minute, naming the minimum; a minute is taken.
    let err = oem::regulator_max_age(&w.p("oem"), Some("59s"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 1 minute"), "{err}");
    oem::regulator_max_age(&w.p("oem"), Some("60s")).unwrap();
}

/// Scenario: Confidentiality | revoked plaintext bytes released again encrypted (new key, new ciphertext) under a new version, approved by a regulator that decrypts it | vetoed by the plaintext's hash
#[test]
fn revoked_bytes_released_again_encrypted_stay_vetoed() {
    let w = World::new();
    w.add_regulator("dekra");
    w.review("dekra");
    let oem_dir = w.p("oem");
    oem::broadcast::vehicle_keys(
        &oem_dir,
        "VIN1",
        &w.p("vin1.keys"),
        ota_repo::oem::broadcast::Reissue::No,
    )
    .unwrap();
    oem::broadcast::regulator_keys(&oem_dir, "dekra", &w.p("dekra.keys")).unwrap();
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(&w.p("tuv"), &sha_hex(&bytes), "CVE-2026-0005", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    // The same plaintext, encrypted, as 3.0; dekra decrypts, scans and approves it.
    let key = w.add_encrypted("brake-fw", "3.0", 3, &bytes, 1024);
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    oem::review_submit(
        &oem_dir,
        oem::Submit {
            supplier: "acme",
            uid: "brake-fw",
            version: "3.0",
            from: None,
            ca: None,
            content_key: Some(&key),
        },
        w.now,
    )
    .unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();
    let opts = regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: None,
        ca: None,
        supplier_from: Default::default(),
        decryption_keys: Some(&w.p("dekra.keys")),
    };
    let judged = regulator::review(&w.p("dekra"), opts, w.now).unwrap();
    regulator::publish(&w.p("dekra"), w.now, false).unwrap();
    assert!(judged.iter().any(|o| o.request.image.version == "3.0"
        && o.result == Ok(ota_metadata::documents::Verdict::Approved)));
    w.assign("S1", "3.0");
    let mut cfg = w.config("BRAKE-A");
    cfg.decryption_keys = Some(w.p("vin1.keys"));
    let gw = ota_client::gateway::Gateway::new(cfg, w.now).unwrap();
    gw.init(false).unwrap();
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus"));
    let out = gw.run(Some(&mut fw)).unwrap();
    let why = failed_at(&out, "S1", Check::Revoked);
    assert!(why.contains("regulator tuv revoked"), "{why}");
    assert!(installed(&w, "S1").is_none());
}

/// Scenario: Regulators | the installed image of one ECU is revoked while its update is held back by another ECU's failing one, or not yet installed (check) | the recall is reported for that ECU too (update output, status, check)
#[test]
fn a_held_back_update_does_not_hide_a_recall() {
    let w = World::new();
    w.assign("S1", "1.0");
    w.assign("S2", "1.0");
    let out = w.update();
    assert!(outcome(&out, "S1").starts_with("updated"));
    let bytes = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    regulator::revoke(&w.p("tuv"), &sha_hex(&bytes), "CVE-2026-0006", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    // S1 gets the fix; S2 a release nobody reviewed, which fails and holds S1 back.
    std::fs::write(w.p("fw-3.0.bin"), vec![3u8; 5000]).unwrap();
    release(&w, &w.p("fw-3.0.bin"), "3.0", 3);
    w.assign("S1", "2.0");
    w.assign("S2", "3.0");
    // check: S1 would update, and runs a recalled image meanwhile.
    let checked = w.gateway_at(w.now).run(None).unwrap();
    let s1 = outcome(&checked, "S1");
    assert!(
        s1.starts_with("would update to brake-fw 2.0") && s1.contains("RECALLED"),
        "{s1}"
    );
    let out = w.update();
    let s1 = outcome(&out, "S1");
    assert!(
        s1.starts_with("NOT switched") && s1.contains("CVE-2026-0006"),
        "{s1}"
    );
    let status = w.gateway_at(w.now).status().unwrap();
    let s1_block = status.split("ECU S2").next().unwrap();
    assert!(s1_block.contains("RECALLED by regulator tuv"), "{status}");
}

/// A gateway configuration whose timeouts would overflow the clock is refused, naming the
/// field (it panicked on the first request).
#[test]
fn a_timeout_past_the_clock_is_refused_in_the_configuration() {
    let w = World::new();
    for field in ["connect_timeout_secs", "read_timeout_secs"] {
        let cfg = w.config_for("t.toml", "VIN1", &[("S1".into(), "BRAKE-A".into())]);
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            format!("{text}[limits]\n{field} = 18446744073709551615\n"),
        )
        .unwrap();
        let err = ota_client::config::Config::load(&cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains(field) && err.contains("at most"), "{err}");
    }
}
