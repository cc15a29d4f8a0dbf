//! The gateway's cross-repository walk against real trees made by `ota-repo` (supplier, OEM,
//! regulators), read from disk: what installs, and every check that must stop an update.

use ota_client::config::Config;
use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuOutcome, Gateway};
use ota_metadata::{DateTime, SigningKey};
use ota_repo::supplier::RoleOptions;
use ota_repo::{oem, regulator, supplier};
use std::path::PathBuf;
use std::sync::OnceLock;

fn key_pem() -> &'static str {
    static K: OnceLock<String> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap())
}

struct World {
    tmp: tempfile::TempDir,
    now: DateTime,
}

impl World {
    fn p(&self, s: &str) -> PathBuf {
        self.tmp.path().join(s)
    }

    /// Supplier acme with brake-fw 1.0 (counter 1), 2.0 (counter 2) and 0.9 (counter 1);
    /// OEM pinning it for BRAKE-*; regulator tuv reviewing everything; vehicle VIN1 with ECUs
    /// S1 and S2 (BRAKE-A).
    fn new() -> Self {
        let w = World {
            tmp: tempfile::tempdir().unwrap(),
            now: DateTime::now(),
        };
        std::fs::write(w.p("k.pem"), key_pem()).unwrap();
        let roles = RoleOptions {
            default_keys: vec![w.p("k.pem")],
            ..Default::default()
        };
        supplier::init(
            &w.p("acme"),
            supplier::Init {
                name: "acme".into(),
                roles: roles.clone(),
                max_image_size: 1 << 30,
            },
            w.now,
        )
        .unwrap();
        for (v, c, byte) in [("1.0", 1, 1u8), ("2.0", 2, 2), ("0.9", 1, 9)] {
            let f = w.p(&format!("fw-{v}.bin"));
            std::fs::write(&f, vec![byte; 5000]).unwrap();
            supplier::add_image(
                &w.p("acme"),
                supplier::AddImage {
                    file: f,
                    uid: "brake-fw".into(),
                    version: v.into(),
                    release_counter: c,
                    hardware_ids: vec!["BRAKE-A".into()],
                    role: "targets".into(),
                    allow_rollback: true,
                },
                w.now,
            )
            .unwrap();
        }
        supplier::publish(&w.p("acme"), w.now, false).unwrap();
        oem::init(&w.p("oem"), &roles, None, w.now).unwrap();
        oem::supplier_add(
            &w.p("oem"),
            "acme",
            &w.p("acme/repository/1.root.json"),
            &w.s("acme/repository"),
            &["BRAKE-*".into()],
        )
        .unwrap();
        w.add_regulator("tuv");
        for v in ["1.0", "2.0", "0.9"] {
            oem::review_submit(
                &w.p("oem"),
                oem::Submit {
                    supplier: "acme",
                    uid: "brake-fw",
                    version: v,
                    from: None,
                    ca: None,
                },
                w.now,
            )
            .unwrap();
        }
        oem::publish(&w.p("oem"), w.now, false).unwrap();
        w.review("tuv");
        oem::vehicle_add(
            &w.p("oem"),
            "VIN1",
            &["S1:BRAKE-A".into(), "S2:BRAKE-A".into()],
            &[],
        )
        .unwrap();
        w
    }

    fn s(&self, p: &str) -> String {
        self.p(p).display().to_string()
    }

    fn add_regulator(&self, name: &str) {
        let roles = RoleOptions {
            default_keys: vec![self.p("k.pem")],
            ..Default::default()
        };
        regulator::init(&self.p(name), name, &roles, self.now).unwrap();
        oem::regulator_add(
            &self.p("oem"),
            name,
            &self.p(&format!("{name}/repository/1.root.json")),
            &self.s(&format!("{name}/repository")),
        )
        .unwrap();
    }

    fn review(&self, name: &str) {
        oem::publish(&self.p("oem"), self.now, false).unwrap();
        let opts = regulator::ReviewOpts {
            master: &self.s("oem/repository"),
            master_root: &self.p("oem/repository/1.root.json"),
            scanner: None,
            ca: None,
            supplier_from: Default::default(),
        };
        for o in regulator::review(&self.p(name), opts, self.now).unwrap() {
            assert!(o.result.is_ok(), "{:?}", o.result);
        }
        regulator::publish(&self.p(name), self.now, false).unwrap();
    }

    fn assign(&self, serial: &str, version: &str) {
        oem::assign(
            &self.p("oem"),
            oem::Assign {
                target: oem::AssignTarget::Vehicle {
                    vin: "VIN1".into(),
                    serial: Some(serial.into()),
                },
                supplier: "acme".into(),
                uid: "brake-fw".into(),
                version: version.into(),
            },
        )
        .unwrap();
        oem::publish(&self.p("oem"), self.now, false).unwrap();
    }

    fn config(&self, s2_hardware: &str) -> Config {
        let path = self.p("gateway.toml");
        std::fs::write(
            &path,
            format!(
                "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nstate_dir = \"state\"\n\
                 [forward]\nkind = \"dir\"\npath = \"ecus\"\n\
                 [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\n[[ecus]]\nserial = \"S2\"\nhardware_id = \"{s2_hardware}\"\n",
                self.s("oem/repository")
            ),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    fn gateway_at(&self, now: DateTime) -> Gateway {
        let gw = Gateway::new(self.config("BRAKE-A"), now).unwrap();
        if !self.p("state/repos/oem/root.json").exists() {
            gw.init(false).unwrap();
        }
        gw
    }

    fn update(&self) -> Vec<(String, EcuOutcome)> {
        let gw = self.gateway_at(self.now);
        let mut fw = DirForwarder::new(self.p("ecus"));
        gw.run(Some(&mut fw)).unwrap()
    }
}

fn outcome<'a>(out: &'a [(String, EcuOutcome)], serial: &str) -> &'a EcuOutcome {
    &out.iter().find(|(s, _)| s == serial).unwrap().1
}

fn failed_with(o: &EcuOutcome, needles: &[&str]) {
    let EcuOutcome::Failed(e) = o else {
        panic!("expected a failure, got {}", summary(o))
    };
    for n in needles {
        assert!(e.contains(n), "{e:?} should mention {n:?}");
    }
}

fn installed(w: &World, serial: &str) -> Option<Vec<u8>> {
    std::fs::read(w.p(&format!("ecus/{serial}/image.bin"))).ok()
}

#[test]
fn installs_what_is_assigned_and_attested_then_is_up_to_date() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = w.gateway_at(w.now);
    let check = gw.run(None).unwrap();
    assert!(matches!(
        outcome(&check, "S1"),
        EcuOutcome::WouldUpdate { .. }
    ));
    assert!(
        installed(&w, "S1").is_none(),
        "check must not download or forward"
    );
    let out = w.update();
    assert!(
        matches!(outcome(&out, "S1"), EcuOutcome::Updated { version, .. } if version == "1.0"),
        "{}",
        summary(outcome(&out, "S1"))
    );
    assert!(matches!(outcome(&out, "S2"), EcuOutcome::Unassigned));
    assert_eq!(installed(&w, "S1").unwrap(), vec![1u8; 5000]);
    let compact = std::fs::read(w.p("ecus/S1/manifest.bin")).unwrap();
    let c = ota_metadata::documents::compact::parse_compact(&compact).unwrap();
    assert_eq!(
        (
            c.body.uid.as_str(),
            c.body.version.as_str(),
            c.body.release_counter
        ),
        ("brake-fw", "1.0", 1)
    );
    let again = w.update();
    assert!(matches!(outcome(&again, "S1"), EcuOutcome::UpToDate { .. }));
    let status = gw.status().unwrap();
    assert!(
        status.contains("S1 [BRAKE-A]: brake-fw 1.0 (release counter 1)"),
        "{status}"
    );
    // An upgrade with a higher release counter goes through.
    w.assign("S1", "2.0");
    assert!(
        matches!(outcome(&w.update(), "S1"), EcuOutcome::Updated { version, .. } if version == "2.0")
    );
    assert_eq!(installed(&w, "S1").unwrap(), vec![2u8; 5000]);
}

#[test]
fn release_counter_rollback_is_refused() {
    let w = World::new();
    w.assign("S1", "2.0");
    w.update();
    w.assign("S1", "0.9");
    failed_with(
        outcome(&w.update(), "S1"),
        &["release counter", "below the installed 2"],
    );
    assert_eq!(
        installed(&w, "S1").unwrap(),
        vec![2u8; 5000],
        "the installed image stays"
    );
}

#[test]
fn a_revocation_stops_the_update() {
    let w = World::new();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![1u8; 5000]));
    regulator::revoke(&w.p("tuv"), &sha, "backdoor found after release", w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    w.assign("S1", "1.0");
    failed_with(
        outcome(&w.update(), "S1"),
        &["regulator attestations", "tuv revoked", "backdoor found"],
    );
    assert!(installed(&w, "S1").is_none());
}

#[test]
fn regulator_threshold_counts_distinct_approvals() {
    let w = World::new();
    w.add_regulator("dekra");
    oem::regulator_threshold(&w.p("oem"), 2).unwrap();
    w.assign("S1", "1.0");
    failed_with(
        outcome(&w.update(), "S1"),
        &["1 of 2 required regulator approvals", "dekra"],
    );
    w.review("dekra");
    assert!(
        matches!(outcome(&w.update(), "S1"), EcuOutcome::Updated { regulators, .. } if regulators.len() == 2)
    );
}

#[test]
fn hardware_id_mismatch_with_the_ecu_is_refused() {
    let w = World::new();
    w.assign("S2", "1.0");
    let gw = Gateway::new(w.config("BRAKE-Z"), w.now).unwrap();
    gw.init(false).unwrap();
    let mut fw = DirForwarder::new(w.p("ecus"));
    let out = gw.run(Some(&mut fw)).unwrap();
    failed_with(outcome(&out, "S2"), &["BRAKE-Z"]);
    assert!(installed(&w, "S2").is_none());
}

#[test]
fn a_tampered_image_is_refused_and_nothing_is_forwarded() {
    let w = World::new();
    w.assign("S1", "1.0");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![1u8; 5000]));
    let stored = w.p(&format!("acme/repository/targets/{sha}.brake-fw-1.0.bin"));
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    failed_with(outcome(&w.update(), "S1"), &["image manifest", "sha256"]);
    assert!(installed(&w, "S1").is_none());
    assert_eq!(
        std::fs::read_dir(w.p("state/staging"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "staging left behind"
    );
}

#[test]
fn expired_master_metadata_stops_everything() {
    let w = World::new();
    w.assign("S1", "1.0");
    let gw = w.gateway_at(w.now.plus_seconds(30 * 86_400));
    let mut fw = DirForwarder::new(w.p("ecus"));
    let err = gw.run(Some(&mut fw)).unwrap_err().to_string();
    assert!(
        err.contains("OEM metadata") && err.contains("expired"),
        "{err}"
    );
    assert!(installed(&w, "S1").is_none());
}

#[test]
fn withdrawn_supplier_means_nothing_assigned() {
    let w = World::new();
    w.assign("S1", "1.0");
    oem::supplier_remove(&w.p("oem"), "acme").unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    assert!(matches!(outcome(&w.update(), "S1"), EcuOutcome::Unassigned));
}
