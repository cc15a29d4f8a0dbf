//! ECU trust documents end to end: the OEM issues them (`oem ecu-trust`), publishes them as
//! targets, the real `ota-gateway` fetches them through TUF and forwards the versions an ECU
//! lacks; the ECU (a simulator process on the UDP-carried CAN bus, provisioned with version 1
//! only) checks each against the one it holds.

mod ecu_process;
mod world;

use ota_ecu::bus::udp::UdpBus;
use ota_ecu::flash::file::FileFlash;
use ota_ecu::flasher::{self, FlashError};
use ota_ecu::isotp::{standard_id, Config, Mode};
use ota_ecu::state::EcuState;
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::Nrc;
use ota_metadata::SigningKey;
use ota_repo::oem::ecu_trust::SupplierKeys;
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

/// An ECU process provisioned with a trust document only (no `--supplier-key`).
fn start_ecu(addr: SocketAddr, peer: SocketAddr, trust: &Path, flash: &Path) -> ecu_process::Sim {
    let args: Vec<String> = [
        "--bind",
        &addr.to_string(),
        "--peer",
        &peer.to_string(),
        "--serial",
        "S1",
        "--hardware-id",
        "BRAKE-A",
        "--trust",
        &trust.display().to_string(),
        "--flash-dir",
        &flash.display().to_string(),
        "--rx-id",
        "0x7E0",
        "--tx-id",
        "0x7E8",
        "--fd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ecu_process::spawn(&args)
}

fn state(flash: &Path) -> EcuState {
    EcuState::load(&mut FileFlash::open(flash, 16 << 20).unwrap()).unwrap()
}

fn write_private(w: &World, name: &str) -> SigningKey {
    let k = SigningKey::generate(2048).unwrap();
    std::fs::write(w.p(name), k.to_pkcs8_pem().unwrap()).unwrap();
    k
}

fn write_public(w: &World, name: &str, k: &SigningKey) {
    std::fs::write(
        w.p(name),
        ota_metadata::signing::public_pem(&k.rsa_public()).unwrap(),
    )
    .unwrap();
}

fn issue(w: &World, supplier: &str, signer: &str, previous: &[&str]) -> (u32, std::path::PathBuf) {
    issue_mode(w, supplier, None, signer, previous)
}

/// With `regulator` (a key file): full verification, that regulator's approval required.
fn issue_mode(
    w: &World,
    supplier: &str,
    regulator: Option<&str>,
    signer: &str,
    previous: &[&str],
) -> (u32, std::path::PathBuf) {
    ota_repo::oem::ecu_trust(
        &w.p("oem"),
        &ota_repo::oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: SupplierKeys::Files(vec![w.p(supplier)]),
            supplier_threshold: None,
            regulator_keys: regulator.map(|r| w.p(r)).into_iter().collect(),
            regulator_threshold: u8::from(regulator.is_some()),
            full: regulator.is_some(),
            signer_keys: vec![w.p(signer)],
            signer_threshold: Some(1),
            confirmed_keys: Vec::new(),
            previous_signer_keys: previous.iter().map(|p| w.p(p)).collect(),
            min_release_counter: None,
            legacy: true,
        },
    )
    .unwrap()
}

/// A tester on the bus, once the ECU answers.
fn tester(bind: SocketAddr, ecu: SocketAddr) -> Endpoint<UdpBus> {
    let mut cfg = Config::new(standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    cfg.mode = Mode::FD64;
    let mut ep = Endpoint::new(UdpBus::bind(bind, vec![ecu]).unwrap(), cfg).unwrap();
    for _ in 0..50 {
        if flasher::trust_version(&mut ep).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ep
}

fn refused(r: Result<u32, FlashError>) -> Option<Nrc> {
    match r {
        Err(FlashError::Refused { nrc, .. }) => nrc,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Version 3 for BRAKE-A trusting `key` as supplier and signer, signed by `by`.
fn forge(key: &SigningKey, by: &[&SigningKey]) -> Vec<u8> {
    use ota_ecu::compact_manifest::Field;
    use ota_ecu::trust::{assemble, KeySpec, Mode, TrustBody};
    use ota_metadata::documents::compact::keyid_bytes;
    use rsa::traits::PublicKeyParts;
    let n = key.rsa_public().n().to_bytes_be();
    let spec = [KeySpec {
        keyid: keyid_bytes(key.key_id()).unwrap(),
        exponent: 65537,
        modulus: &n,
    }];
    let body = TrustBody {
        version: 3,
        hardware_id: Field::new("BRAKE-A").unwrap(),
        mode: Mode::Partial,
        min_release_counter: 0,
        suppliers: (&spec, 1),
        regulators: (&[], 0),
        signers: (&spec, 1),
        instruction_keys: &[],
    }
    .encode();
    let sigs: Vec<([u8; 32], Vec<u8>)> = by
        .iter()
        .map(|k| (keyid_bytes(k.key_id()).unwrap(), k.sign(&body).unwrap()))
        .collect();
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    assemble(&body, &refs)
}

#[test]
fn a_rotated_supplier_key_reaches_the_ecu_and_stale_or_forged_documents_are_refused() {
    let w = World::new();
    w.assign("S1", "1.0");
    // acme's images are signed by its current targets key (k.pem); the ECU was provisioned
    // trusting acme's previous (say stolen) key only.
    let current = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme-current.pub.pem", &current);
    let stolen = write_private(&w, "acme-stolen.pem");
    write_public(&w, "acme-stolen.pub.pem", &stolen);
    write_private(&w, "ecu-trust-1.pem");
    write_private(&w, "ecu-trust-2.pem");
    let (v1, v1_path) = issue(&w, "acme-stolen.pub.pem", "ecu-trust-1.pem", &[]);
    assert_eq!(v1, 1);
    // The OEM's answer to the theft: version 2 trusts the current key only, and (compromise
    // recovery of its own signer too) hands signing to ecu-trust-2, co-signed by the old one.
    let (v2, _) = issue(
        &w,
        "acme-current.pub.pem",
        "ecu-trust-2.pem",
        &["ecu-trust-1.pem"],
    );
    assert_eq!(v2, 2);
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();

    let (gw, a1) = (free_port(), free_port());
    let ecu = start_ecu(a1, gw, &v1_path, &w.p("flash-s1"));
    let cfg = w.p("gw-can.toml");
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state-can\"\n\
             [forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{a1}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n",
            w.url("oem")
        ),
    )
    .unwrap();
    let gw_bin = env!("CARGO_BIN_EXE_ota-gateway");
    let run = |cmd: &str| {
        let out = Command::new(gw_bin)
            .arg("-c")
            .arg(&cfg)
            .arg(cmd)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    assert!(run("init").0);
    let (ok, text) = run("update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 1.0"), "{text}");
    let st = state(&w.p("flash-s1"));
    assert_eq!(st.trust.map(|t| t.version), Some(2), "{st:?}");
    assert_eq!(
        st.image.map(|i| i.version.as_str().to_string()),
        Some("1.0".into())
    );

    // Straight over the bus, as a compromised gateway would: the stale version 1 (which still
    // trusts the stolen key) is a downgrade; a version 3 the thief signed with the stolen
    // supplier key as its own signer is not signed by version 2's signers.
    let mut ep = tester(gw, a1);
    assert_eq!(flasher::trust_version(&mut ep).unwrap(), (2, 0));
    let v1_bytes = std::fs::read(&v1_path).unwrap();
    assert_eq!(
        refused(flasher::send_trust(&mut ep, &v1_bytes)),
        Some(Nrc::TrustDowngrade)
    );
    // The OEM's command refuses to issue it: the stolen supplier key may not sign trust
    // documents; nor may a key of the thief's own, co-signed only by the retired signer,
    // follow version 2 (the rotation rule, checked as the ECU will)...
    std::fs::copy(w.p("acme-stolen.pem"), w.p("thief.pem")).unwrap();
    write_private(&w, "thief-own.pem");
    let try_issue = |signer: &str| {
        ota_repo::oem::ecu_trust(
            &w.p("oem"),
            &ota_repo::oem::EcuTrust {
                hardware_id: "BRAKE-A".into(),
                suppliers: SupplierKeys::Files(vec![w.p("acme-stolen.pub.pem")]),
                supplier_threshold: None,
                regulator_keys: vec![],
                regulator_threshold: 0,
                full: false,
                signer_keys: vec![w.p(signer)],
                signer_threshold: Some(1),
                confirmed_keys: Vec::new(),
                previous_signer_keys: vec![w.p("ecu-trust-1.pem")],
                min_release_counter: None,
                legacy: true,
            },
        )
        .unwrap_err()
        .to_string()
    };
    let err = try_issue("thief.pem");
    assert!(
        err.contains("is also a supplier or regulator key of the document"),
        "{err}"
    );
    let err = try_issue("thief-own.pem");
    assert!(
        err.contains("version 3 must also be signed by a threshold of version 2's signer keys"),
        "{err}"
    );
    // ...so the thief builds it by hand, signed by itself and by the retired signer key.
    let forged = forge(
        &stolen,
        &[
            &stolen,
            &SigningKey::from_pem(&std::fs::read_to_string(w.p("ecu-trust-1.pem")).unwrap())
                .unwrap(),
        ],
    );
    assert_eq!(
        refused(flasher::send_trust(&mut ep, &forged)),
        Some(Nrc::TrustSignature)
    );
    // The ECU still holds version 2.
    assert_eq!(flasher::trust_version(&mut ep).unwrap(), (2, 0));
    drop(ecu);
}

fn gateway_config(w: &World, gw: SocketAddr, ecu: SocketAddr) -> std::path::PathBuf {
    let cfg = w.p("gw-can.toml");
    std::fs::write(
        &cfg,
        format!(
            "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state-can\"\n\
             [forward]\nkind = \"udp\"\nbind = \"{gw}\"\npeers = [\"{ecu}\"]\nfd = true\n\
             [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\naddress = 0x7E0\n",
            w.url("oem")
        ),
    )
    .unwrap();
    cfg
}

fn gateway(cfg: &Path, cmd: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-gateway"))
        .arg("-c")
        .arg(cfg)
        .arg(cmd)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_full_verification_ecu_requires_the_regulators_approval_a_partial_one_does_not() {
    let w = World::new();
    w.assign("S1", "1.0");
    let supplier = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme.pub.pem", &supplier);
    let tuv = SigningKey::from_pem(&world::regulator_key_pem("tuv")).unwrap();
    write_public(&w, "tuv.pub.pem", &tuv);
    write_private(&w, "ecu-trust.pem");
    // Version 1 (full, tuv's approval required) provisions the ECU.
    let (_, v1) = issue_mode(
        &w,
        "acme.pub.pem",
        Some("tuv.pub.pem"),
        "ecu-trust.pem",
        &[],
    );
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();

    let (gw, a1) = (free_port(), free_port());
    let ecu = start_ecu(a1, gw, &v1, &w.p("flash-s1"));
    // A compromised gateway skips the regulators: the manifest alone is refused before any
    // data, whatever the supplier signed.
    let img = std::fs::read(w.p("fw-1.0.bin")).unwrap();
    let compact = std::fs::read_dir(w.p("acme/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("brake-fw-1.0.manifest.bin"))
        .unwrap();
    let compact = std::fs::read(compact).unwrap();
    {
        let mut ep = tester(gw, a1);
        let r = flasher::flash_image(
            &mut ep,
            &compact,
            &mut img.as_slice(),
            img.len() as u64,
            |_| {},
        );
        match r {
            Err(FlashError::Refused { nrc, .. }) => assert_eq!(nrc, Some(Nrc::NotApproved)),
            other => panic!("expected NotApproved, got {other:?}"),
        }
        // A bundle signed by someone else than tuv: refused too.
        let other = SigningKey::generate(2048).unwrap();
        let m = ota_ecu::compact_manifest::CompactManifest::parse(&compact).unwrap();
        let msg = ota_ecu::attestation::message(&m.body_bytes);
        let kid = ota_metadata::documents::compact::keyid_bytes(other.key_id()).unwrap();
        let forged = ota_ecu::attestation::assemble(&[(kid, other.sign(&msg).unwrap().as_slice())]);
        let r = flasher::flash_image_attested(
            &mut ep,
            &compact,
            Some(&forged),
            &mut img.as_slice(),
            img.len() as u64,
            |_| {},
        );
        match r {
            Err(FlashError::Refused { nrc, .. }) => assert_eq!(nrc, Some(Nrc::NotApproved)),
            other => panic!("expected NotApproved, got {other:?}"),
        }
    }
    assert!(state(&w.p("flash-s1")).pending.is_none());

    // The honest gateway forwards tuv's compact approval from its attestation: accepted.
    let cfg = gateway_config(&w, gw, a1);
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 1.0"), "{text}");
    drop(ecu);

    // A partial-mode ECU (the smallest parts) takes the supplier-signed manifest alone.
    let w2 = World::new();
    write_public(&w2, "acme.pub.pem", &supplier);
    write_private(&w2, "ecu-trust.pem");
    let (_, p1) = issue(&w2, "acme.pub.pem", "ecu-trust.pem", &[]);
    let (gw, a2) = (free_port(), free_port());
    let _ecu = start_ecu(a2, gw, &p1, &w2.p("flash-p"));
    let mut ep = tester(gw, a2);
    flasher::flash_image(
        &mut ep,
        &compact,
        &mut img.as_slice(),
        img.len() as u64,
        |_| {},
    )
    .unwrap();
    assert!(state(&w2.p("flash-p")).pending.is_some());
}

#[test]
fn a_supplier_replacement_reaches_the_ecu_with_no_reprovisioning() {
    let w = World::new();
    let acme = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme.pub.pem", &acme);
    let brakeco = write_private(&w, "brakeco.pem");
    write_public(&w, "brakeco.pub.pem", &brakeco);
    write_private(&w, "ecu-trust.pem");
    // The ECU is provisioned trusting acme.
    let (_, v1) = issue(&w, "acme.pub.pem", "ecu-trust.pem", &[]);

    // The OEM replaces acme by brakeco (`oem supplier replace`), and issues version 2.
    // brakeco's own builds (other bytes: regulators judge each image once, by its hash).
    for v in ["1.0", "2.0", "0.9"] {
        std::fs::write(w.p(&format!("fw-{v}.bin")), vec![0xB0; 6000]).unwrap();
    }
    w.supplier("brakeco", &w.p("brakeco.pem"));
    let oem = w.p("oem");
    ota_repo::oem::supplier_add(
        &oem,
        "brakeco",
        &w.p("brakeco/repository/1.root.json"),
        &w.url("brakeco"),
        &["BRAKE-*".into()],
    )
    .unwrap();
    ota_repo::oem::supplier_replace(&oem, "acme", "brakeco").unwrap();
    ota_repo::oem::review_submit(
        &oem,
        ota_repo::oem::Submit {
            supplier: "brakeco",
            uid: "brake-fw",
            version: "1.0",
            from: None,
            ca: None,
            content_key: None,
        },
        w.now,
    )
    .unwrap();
    w.review("tuv");
    ota_repo::oem::assign(
        &oem,
        ota_repo::oem::Assign {
            target: ota_repo::oem::AssignTarget::Vehicle {
                vin: "VIN1".into(),
                serial: Some("S1".into()),
            },
            supplier: "brakeco".into(),
            uid: "brake-fw".into(),
            version: "1.0".into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
    let (v2, _) = issue(&w, "brakeco.pub.pem", "ecu-trust.pem", &[]);
    assert_eq!(v2, 2);
    ota_repo::oem::publish(&oem, w.now, false).unwrap();

    let (gw, a1) = (free_port(), free_port());
    let _ecu = start_ecu(a1, gw, &v1, &w.p("flash-s1"));
    let cfg = gateway_config(&w, gw, a1);
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 1.0"), "{text}");
    let st = state(&w.p("flash-s1"));
    assert_eq!(st.trust.map(|t| t.version), Some(2));

    // The replaced supplier's manifests are refused by the ECU itself now.
    let acme_compact = std::fs::read_dir(w.p("acme/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("brake-fw-2.0.manifest.bin"))
        .unwrap();
    let acme_compact = std::fs::read(acme_compact).unwrap();
    let img = std::fs::read(w.p("fw-2.0.bin")).unwrap();
    let mut ep = tester(gw, a1);
    match flasher::flash_image(
        &mut ep,
        &acme_compact,
        &mut img.as_slice(),
        img.len() as u64,
        |_| {},
    ) {
        Err(FlashError::Refused { nrc, .. }) => assert_eq!(nrc, Some(Nrc::BadSignature)),
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

/// The compact manifest of brake-fw `version` in supplier tree `dir` that `key` signed (with
/// `only`: that `key` alone signed; a rotation co-signs with the old and the new key).
fn compact_signed_by(w: &World, dir: &str, version: &str, key: &SigningKey, only: bool) -> Vec<u8> {
    let suffix = format!("brake-fw-{version}.manifest.bin");
    let keyid = ota_metadata::documents::compact::keyid_bytes(key.key_id()).unwrap();
    std::fs::read_dir(w.p(&format!("{dir}/repository/targets")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(&suffix))
        .map(|p| std::fs::read(p).unwrap())
        .find(|b| {
            let m = ota_ecu::compact_manifest::CompactManifest::parse(b).unwrap();
            let mut by = m.signatures.iter().map(|s| s.keyid == keyid);
            if only {
                by.all(|x| x)
            } else {
                by.any(|x| x)
            }
        })
        .expect("a compact manifest signed by the key")
}

/// Scenario: Suppliers | a supplier rotates its targets key; the OEM follows it from the pinned supplier root | the ECU, with no update planned, receives the new trust document at the next check and accepts the new key
/// Scenario: Regulators | a compromised gateway installs a revoked release (replaying its manifest) | refused: the OEM's raised release-counter floor reached the ECU at the previous check
#[test]
fn a_supplier_rotation_followed_from_the_pin_and_a_raised_floor_reach_an_ecu_with_no_update() {
    let w = World::new();
    w.assign("S1", "1.0");
    let old = SigningKey::from_pem(world::key_pem()).unwrap();
    write_private(&w, "ecu-trust.pem");
    let pinned = |floor: Option<u64>, confirmed_keys: Vec<String>| {
        ota_repo::oem::ecu_trust(
            &w.p("oem"),
            &ota_repo::oem::EcuTrust {
                hardware_id: "BRAKE-A".into(),
                suppliers: SupplierKeys::Pinned {
                    name: "acme".into(),
                    from: None,
                    ca: None,
                    now: w.now,
                },
                supplier_threshold: None,
                regulator_keys: vec![],
                regulator_threshold: 0,
                full: false,
                signer_keys: vec![w.p("ecu-trust.pem")],
                signer_threshold: Some(1),
                confirmed_keys,
                previous_signer_keys: vec![],
                min_release_counter: floor,
                legacy: true,
            },
        )
    };
    // Version 1 trusts acme's targets key as its pinned root names it (k.pem).
    let (_, v1) = pinned(None, vec![]).unwrap();
    let held =
        ota_ecu::trust::TrustDocument::provision(&std::fs::read(&v1).unwrap(), "BRAKE-A").unwrap();
    let old_id = ota_metadata::documents::compact::keyid_bytes(old.key_id()).unwrap();
    assert!(held.suppliers.keys.iter().any(|k| k.keyid == old_id));

    let (gw, a1) = (free_port(), free_port());
    let _ecu = start_ecu(a1, gw, &v1, &w.p("flash-s1"));
    let cfg = gateway_config(&w, gw, a1);
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(
        ok && text.contains("ECU S1: updated to brake-fw 1.0"),
        "{text}"
    );

    // acme rotates its targets key (its manifests are re-signed with the new key).
    let new = write_private(&w, "acme-targets-2.pem");
    ota_repo::rotation::rotate::<ota_repo::supplier::Settings>(
        &w.p("acme"),
        "targets",
        vec![w.p("acme-targets-2.pem")],
        None,
        w.now,
    )
    .unwrap();
    // The OEM follows it from the pin (no PEM changes hands), once it confirmed the new key
    // with acme: the command names it and refuses it unconfirmed.
    let err = pinned(None, vec![]).unwrap_err().to_string();
    assert!(err.contains(&new.key_id().0), "{err}");
    let (v2, _) = pinned(None, vec![new.key_id().0.clone()]).unwrap();
    assert_eq!(v2, 2);
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    // S1 stays assigned 1.0, which it runs: nothing to install, yet the document goes out.
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: up to date"), "{text}");
    assert_eq!(state(&w.p("flash-s1")).trust.map(|t| t.version), Some(2));

    let img = std::fs::read(w.p("fw-0.9.bin")).unwrap();
    let flash = |compact: &[u8]| {
        let mut ep = tester(gw, a1);
        let r = flasher::flash_image(
            &mut ep,
            compact,
            &mut img.as_slice(),
            img.len() as u64,
            |_| {},
        );
        let _ = flasher::discard(&mut ep);
        r
    };
    // The old key no longer opens the ECU; the new one does (0.9 has counter 1, as 1.0).
    match flash(&compact_signed_by(&w, "acme", "0.9", &old, true)) {
        Err(FlashError::Refused { nrc, .. }) => assert_eq!(nrc, Some(Nrc::BadSignature)),
        other => panic!("expected BadSignature, got {other:?}"),
    }
    let current = compact_signed_by(&w, "acme", "0.9", &new, false);
    flash(&current).unwrap();

    // Release counter 1 is revoked: the OEM raises the floor to 2; the next check (still no
    // update planned) forwards it, and from then on no gateway can install a counter-1 image.
    let (v3, _) = pinned(Some(2), vec![]).unwrap();
    assert_eq!(v3, 3);
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert_eq!(state(&w.p("flash-s1")).trust.map(|t| t.version), Some(3));
    match flash(&current) {
        Err(FlashError::Refused { nrc, .. }) => assert_eq!(nrc, Some(Nrc::ReleaseCounterRollback)),
        other => panic!("expected Rollback, got {other:?}"),
    }
    // The floor is kept by later documents unless the OEM lowers it on purpose.
    let (_, v4) = pinned(None, vec![]).unwrap();
    let v4 = std::fs::read(v4).unwrap();
    let v4 = ota_ecu::trust::Signed::parse(&v4).unwrap();
    assert_eq!(v4.doc.min_release_counter, 2);
}

/// Scenario: Confidentiality | an encrypted image for a full-verification ECU | the regulators' compact approval covers the plaintext the ECU receives, so the ECU installs it over the bus (and still refuses it without the approval)
#[test]
fn an_encrypted_image_reaches_a_full_verification_ecu() {
    let w = World::new();
    let oem_dir = w.p("oem");
    ota_repo::oem::broadcast::vehicle_keys(
        &oem_dir,
        "VIN1",
        &w.p("vin1.keys"),
        ota_repo::oem::broadcast::Reissue::No,
    )
    .unwrap();
    ota_repo::oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    let plain: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let key = w.add_encrypted("brake-fw", "3.0", 3, &plain, 4096);
    ota_repo::supplier::publish(&w.p("acme"), w.now, false).unwrap();
    ota_repo::oem::review_submit(
        &oem_dir,
        ota_repo::oem::Submit {
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
    ota_repo::oem::publish(&oem_dir, w.now, false).unwrap();
    let opts = ota_repo::regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: None,
        ca: None,
        supplier_from: Default::default(),
        decryption_keys: Some(&w.p("tuv.keys")),
    };
    ota_repo::regulator::review(&w.p("tuv"), opts, w.now).unwrap();
    ota_repo::regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    w.assign("S1", "3.0");

    let supplier = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme.pub.pem", &supplier);
    let tuv = SigningKey::from_pem(&world::regulator_key_pem("tuv")).unwrap();
    write_public(&w, "tuv.pub.pem", &tuv);
    write_private(&w, "ecu-trust.pem");
    let (_, v1) = issue_mode(
        &w,
        "acme.pub.pem",
        Some("tuv.pub.pem"),
        "ecu-trust.pem",
        &[],
    );
    ota_repo::oem::publish(&oem_dir, w.now, false).unwrap();

    let (gw, a1) = (free_port(), free_port());
    let _ecu = start_ecu(a1, gw, &v1, &w.p("flash-s1"));
    let cfg = gateway_config(&w, gw, a1);
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[forward]",
        &format!(
            "decryption_keys = \"{}\"\n[forward]",
            w.p("vin1.keys").display()
        ),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 3.0"), "{text}");
    let s = state(&w.p("flash-s1"));
    assert_eq!(s.release_counter, 3, "{s:?}");
}

/// Scenario: Stolen keys | the gateway's state directory records a raised trust document version for an ECU (a tampered disk) | the gateway still forwards the OEM's newer document: a stored number never suppresses a floor
#[test]
fn a_raised_trust_version_on_the_gateways_disk_does_not_suppress_a_floor() {
    let w = World::new();
    w.assign("S1", "1.0");
    let supplier = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme.pub.pem", &supplier);
    write_private(&w, "ecu-trust.pem");
    let (_, v1) = issue(&w, "acme.pub.pem", "ecu-trust.pem", &[]);
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    let (gw, a1) = (free_port(), free_port());
    let _ecu = start_ecu(a1, gw, &v1, &w.p("flash-s1"));
    let cfg = gateway_config(&w, gw, a1);
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");

    // The OEM raises the floor in version 2.
    ota_repo::oem::ecu_trust(
        &w.p("oem"),
        &ota_repo::oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: SupplierKeys::Files(vec![w.p("acme.pub.pem")]),
            supplier_threshold: None,
            regulator_keys: vec![],
            regulator_threshold: 0,
            full: false,
            signer_keys: vec![w.p("ecu-trust.pem")],
            signer_threshold: None,
            confirmed_keys: vec![],
            previous_signer_keys: vec![],
            min_release_counter: Some(2),
            legacy: true,
        },
    )
    .unwrap();
    ota_repo::oem::publish(&w.p("oem"), w.now, false).unwrap();
    // Someone with the gateway's disk records that S1 already holds version 2, the newest.
    let state_file = w.p("state-can/gateway-state.json");
    let mut s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    s["trust_versions"]["S1"] = 2.into();
    std::fs::write(&state_file, serde_json::to_vec(&s).unwrap()).unwrap();
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    let held = state(&w.p("flash-s1"));
    assert_eq!(held.trust.map(|t| t.version), Some(2), "{text}");
    let status = gateway(&cfg, "status").1;
    assert!(status.contains("trust document version 2"), "{status}");
}

// ---- The OEM's per-ECU instruction over the bus (issue 23) -------------------------------------

/// The published compact manifest of acme's brake-fw `version`.
fn published_compact(w: &World, version: &str) -> Vec<u8> {
    let suffix = format!(".brake-fw-{version}.manifest.bin");
    let dir = w.p("acme/repository/targets");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap();
    std::fs::read(path).unwrap()
}

/// What a gateway would send `serial` for its published assignment, if it is for `compact`.
fn published_instruction(w: &World, serial: &str, compact: &[u8]) -> Vec<u8> {
    let (entry, _) = ota_repo::oem::fleet::published_assignments(&w.p("oem"), "VIN1")
        .unwrap()
        .unwrap();
    let m = ota_ecu::compact_manifest::CompactManifest::parse(compact).unwrap();
    entry.ecus[serial]
        .instruction
        .as_ref()
        .expect("the OEM published an instruction")
        .assemble(serial, &m.body_bytes, m.body.release_counter)
        .unwrap()
        .to_vec()
}

/// Scenario: Uptane ECU serial | a compromised gateway sends a partial-mode ECU over the UDP bus an image its supplier signed and the regulator approved, but assigned to another ECU of the same hardware id, or assigned to it earlier and since replaced | refused by the ECU (NRC 0xFE, none given: 0xFD); the honest gateway forwards the OEM's instruction and the ECU installs
#[test]
fn a_partial_ecu_installs_only_what_the_oem_instructed_it_to_over_the_bus() {
    let w = World::new();
    // S1 gets 1.0; S2, of the same hardware id, 2.0.
    w.assign("S1", "1.0");
    w.assign("S2", "2.0");
    let supplier = SigningKey::from_pem(world::key_pem()).unwrap();
    write_public(&w, "acme.pub.pem", &supplier);
    write_private(&w, "ecu-trust.pem");
    let (_, doc) = ota_repo::oem::ecu_trust(
        &w.p("oem"),
        &ota_repo::oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: SupplierKeys::Files(vec![w.p("acme.pub.pem")]),
            supplier_threshold: None,
            regulator_keys: vec![],
            regulator_threshold: 0,
            full: false,
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
    let (gw, a1) = (free_port(), free_port());
    let _ecu = start_ecu(a1, gw, &doc, &w.p("flash-s1"));

    // The honest gateway forwards S1's instruction with its image: installed.
    let cfg = gateway_config(&w, gw, a1);
    assert!(gateway(&cfg, "init").0);
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 1.0"), "{text}");
    let one = published_compact(&w, "1.0");
    let s1_for_one = published_instruction(&w, "S1", &one);

    // A compromised gateway on the bus (the ECU answers the gateway's address).
    let two = published_compact(&w, "2.0");
    let img = std::fs::read(w.p("fw-2.0.bin")).unwrap();
    let mut ep = tester(gw, a1);
    let refused_with = |r: Result<(), FlashError>| match r {
        Err(FlashError::Refused { nrc, .. }) => nrc,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // 2.0 with no instruction, and with S2's instruction for it: refused.
    let flash_two = |ep: &mut Endpoint<UdpBus>| {
        flasher::flash_image(ep, &two, &mut img.as_slice(), img.len() as u64, |_| {})
    };
    assert_eq!(
        refused_with(flash_two(&mut ep)),
        Some(Nrc::InstructionMissing)
    );
    let s2 = published_instruction(&w, "S2", &two);
    assert_eq!(
        refused_with(flasher::send_instruction(&mut ep, &s2)),
        Some(Nrc::InstructionRejected)
    );
    assert_eq!(
        refused_with(flash_two(&mut ep)),
        Some(Nrc::InstructionMissing)
    );
    // S1's own instruction (for 1.0) with 2.0's manifest: refused.
    flasher::send_instruction(&mut ep, &s1_for_one).unwrap();
    assert_eq!(
        refused_with(flash_two(&mut ep)),
        Some(Nrc::InstructionRejected)
    );
    assert!(state(&w.p("flash-s1")).pending.is_none());
    drop(ep);

    // The OEM replaces S1's assignment with 2.0; the honest gateway installs it. The earlier
    // instruction (1.0, a lower sequence) is refused from then on.
    w.assign("S1", "2.0");
    let (ok, text) = gateway(&cfg, "update");
    assert!(ok, "{text}");
    assert!(text.contains("ECU S1: updated to brake-fw 2.0"), "{text}");
    let mut ep = tester(gw, a1);
    assert_eq!(
        refused_with(flasher::send_instruction(&mut ep, &s1_for_one)),
        Some(Nrc::InstructionRejected)
    );
}

/// Scenario: Uptane ECU serial | an ECU moved from a vehicle with many assignment changes to a vehicle with few | its new instructions carry a higher sequence than any it saw before, so the new vehicle's honest gateway is not locked out (found by the attack pass)
#[test]
fn an_ecu_moved_to_another_vehicle_gets_a_higher_sequence() {
    use ota_repo::oem;
    let w = World::new();
    let seq = |vin: &str, serial: &str| {
        oem::fleet::published_assignments(&w.p("oem"), vin)
            .unwrap()
            .unwrap()
            .0
            .ecus[serial]
            .instruction
            .as_ref()
            .unwrap()
            .sequence
    };
    let version = |vin: &str| {
        oem::fleet::published_assignments(&w.p("oem"), vin)
            .unwrap()
            .unwrap()
            .0
            .version
    };
    w.assign("S1", "1.0");
    for v in ["2.0", "1.0", "2.0", "1.0"] {
        w.assign("S2", v);
    }
    let before = seq("VIN1", "S1");
    oem::vehicle_add(&w.p("oem"), "VIN3", &["T1:BRAKE-A".into()], &[]).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    // S1 moves from VIN1 (entry version 5) to VIN3 (entry version 1), and is assigned there.
    assert!(oem::ecu_remove(&w.p("oem"), "VIN1", "S1").unwrap());
    oem::ecu_add(&w.p("oem"), "VIN3", "S1:BRAKE-A", false).unwrap();
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: "VIN3".into(),
                serial: Some("S1".into()),
            },
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: "2.0".into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    assert!(
        version("VIN3") < version("VIN1"),
        "the case that used to lock it out"
    );
    let after = seq("VIN3", "S1");
    assert!(
        after > before && u64::from(after) > version("VIN1"),
        "sequence {after} after {before} (VIN1 at version {})",
        version("VIN1")
    );
}
