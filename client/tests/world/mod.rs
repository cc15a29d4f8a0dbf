//! A world of real trees made by `ota-repo` (supplier, OEM, regulators) for the gateway's
//! tests, served from disk or, given a base URL per tree, by a web server.
#![allow(dead_code)]

use ota_client::config::Config;
use ota_client::forward::DirForwarder;
use ota_client::gateway::{EcuOutcome, Gateway};
use ota_metadata::{DateTime, SigningKey};
use ota_repo::supplier::RoleOptions;
use ota_repo::{oem, regulator, supplier};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn key_pem() -> &'static str {
    static K: OnceLock<String> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap())
}

/// The OEM's offline key (root and targets: supplier pins and regulators).
pub fn offline_pem() -> &'static str {
    static K: OnceLock<String> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap())
}

/// A key per regulator name, made once per test process.
pub fn regulator_key_pem(name: &str) -> String {
    static K: OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, String>>> =
        OnceLock::new();
    let mut keys = K.get_or_init(Default::default).lock().unwrap();
    keys.entry(name.to_string())
        .or_insert_with(|| SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap())
        .clone()
}

/// The OEM's role options: `offline.pem` for root and targets, `k.pem` for the online roles.
pub fn oem_roles(w: &World) -> RoleOptions {
    RoleOptions {
        default_keys: vec![w.p("k.pem")],
        role_keys: ["root", "targets"]
            .into_iter()
            .map(|r| (r.to_string(), vec![w.p("offline.pem")]))
            .collect(),
        ..Default::default()
    }
}

/// brake-fw releases of the standard world: version, release counter, byte the image repeats.
const IMAGES: [(&str, u64, u8); 3] = [("1.0", 1, 1), ("2.0", 2, 2), ("0.9", 1, 9)];

/// Maps a tree name to the URL it is served at.
pub type Served = Box<dyn Fn(&str) -> String>;

pub struct World {
    pub tmp: tempfile::TempDir,
    pub now: DateTime,
    /// Where each tree is served ("acme", "oem", regulators); `None`: read from disk.
    pub served: Option<Served>,
    pub ca: Option<PathBuf>,
    /// Called with a tree's name each time the world publishes it (to upload it somewhere).
    pub sync: Option<Sync>,
}

/// Called with a tree's name and directory after the world publishes it.
pub type Sync = Box<dyn Fn(&str, &Path)>;

impl World {
    pub fn p(&self, s: &str) -> PathBuf {
        self.tmp.path().join(s)
    }

    /// Supplier acme with brake-fw 1.0 (counter 1), 2.0 (counter 2) and 0.9 (counter 1);
    /// OEM pinning it for BRAKE-*; regulator tuv reviewing everything; vehicle VIN1 with ECUs
    /// S1 and S2 (BRAKE-A).
    pub fn new() -> Self {
        Self::build(tempfile::tempdir().unwrap(), None, None)
    }

    /// The world in `tmp`, its trees published at `served(name)` (trusting `ca` for HTTPS).
    pub fn build(tmp: tempfile::TempDir, served: Option<Served>, ca: Option<PathBuf>) -> Self {
        Self::build_synced(tmp, served, ca, None)
    }

    /// [`World::build`], calling `sync` after each publish of a tree.
    pub fn build_synced(
        tmp: tempfile::TempDir,
        served: Option<Served>,
        ca: Option<PathBuf>,
        sync: Option<Sync>,
    ) -> Self {
        let w = World {
            sync,
            tmp,
            now: DateTime::now(),
            served,
            ca,
        };
        std::fs::write(w.p("k.pem"), key_pem()).unwrap();
        std::fs::write(w.p("offline.pem"), offline_pem()).unwrap();
        for (v, _, byte) in IMAGES {
            std::fs::write(w.p(&format!("fw-{v}.bin")), vec![byte; 5000]).unwrap();
        }
        w.supplier("acme", &w.p("k.pem"));
        oem::init(&w.p("oem"), &oem_roles(&w), None, w.now).unwrap();
        oem::supplier_add(
            &w.p("oem"),
            "acme",
            &w.p("acme/repository/1.root.json"),
            &w.url("acme"),
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
                    ca: w.ca.as_deref(),
                    content_key: None,
                },
                w.now,
            )
            .unwrap();
        }
        oem::publish(&w.p("oem"), w.now, false).unwrap();
        w.published("oem");
        w.review("tuv");
        oem::vehicle_add(
            &w.p("oem"),
            "VIN1",
            &["S1:BRAKE-A".into(), "S2:BRAKE-A".into()],
            &[],
        )
        .unwrap();
        w.provision("VIN1");
        w
    }

    /// Write `vin`'s secret to `secrets/VIN.secret` (what `oem vehicle secret` issues), where
    /// the test configurations point `vehicle_secret`.
    pub fn provision(&self, vin: &str) {
        let s = oem::privacy::fleet_secret(&self.p("oem"))
            .unwrap()
            .vehicle(vin);
        std::fs::create_dir_all(self.p("secrets")).unwrap();
        std::fs::write(self.p(&format!("secrets/{vin}.secret")), s.to_file_text()).unwrap();
    }

    /// Where `vin`'s entry sits in the OEM's vehicle tree.
    pub fn locator(&self, vin: &str) -> String {
        oem::privacy::fleet_secret(&self.p("oem"))
            .unwrap()
            .vehicle(vin)
            .locator()
    }

    /// Supplier repository `dir` (named acme) signed by `key`, with brake-fw 1.0, 2.0 and 0.9
    /// (the files `fw-V.bin`), published.
    pub fn supplier(&self, dir: &str, key: &Path) {
        let roles = RoleOptions {
            default_keys: vec![key.to_path_buf()],
            ..Default::default()
        };
        supplier::init(
            &self.p(dir),
            supplier::Init {
                name: "acme".into(),
                roles,
                max_image_size: 1 << 30,
            },
            self.now,
        )
        .unwrap();
        for (v, c, _) in IMAGES {
            supplier::add_image(
                &self.p(dir),
                supplier::AddImage {
                    file: self.p(&format!("fw-{v}.bin")),
                    uid: "brake-fw".into(),
                    version: v.into(),
                    release_counter: c,
                    hardware_ids: vec!["BRAKE-A".into()],
                    role: "targets".into(),
                    allow_rollback: true,
                    encrypt: None,
                    delta_from: Vec::new(),
                },
                self.now,
            )
            .unwrap();
        }
        supplier::publish(&self.p(dir), self.now, false).unwrap();
        self.published(dir);
    }

    /// Add `image` to acme as `uid` `version` (release counter `counter`, for BRAKE-A),
    /// encrypted in chunks of `chunk` bytes (not published). Returns the content-key file.
    pub fn add_encrypted(
        &self,
        uid: &str,
        version: &str,
        counter: u64,
        image: &[u8],
        chunk: u32,
    ) -> PathBuf {
        let file = self.p(&format!("{uid}-{version}.plain.bin"));
        std::fs::write(&file, image).unwrap();
        let added = supplier::add_image(
            &self.p("acme"),
            supplier::AddImage {
                file,
                uid: uid.into(),
                version: version.into(),
                release_counter: counter,
                hardware_ids: vec!["BRAKE-A".into()],
                role: "targets".into(),
                allow_rollback: false,
                encrypt: Some(chunk),
                delta_from: Vec::new(),
            },
            self.now,
        )
        .unwrap();
        added.content_key.expect("a content-key file")
    }

    /// Tell the world's `sync` that tree `name` was published.
    pub fn published(&self, name: &str) {
        if let Some(sync) = &self.sync {
            sync(name, &self.p(name));
        }
    }

    pub fn s(&self, p: &str) -> String {
        self.p(p).display().to_string()
    }

    /// Where tree `name` (acme, oem, or a regulator) is read from.
    pub fn url(&self, name: &str) -> String {
        match &self.served {
            Some(f) => f(name),
            None => self.s(&format!("{name}/repository")),
        }
    }

    /// Regulator `name` with keys of its own (regulators count by key material), authorized
    /// by the OEM.
    pub fn add_regulator(&self, name: &str) {
        let key = self.p(&format!("{name}.pem"));
        std::fs::write(&key, regulator_key_pem(name)).unwrap();
        let roles = RoleOptions {
            default_keys: vec![key],
            ..Default::default()
        };
        regulator::init(&self.p(name), name, &roles, self.now).unwrap();
        self.published(name);
        oem::regulator_add(
            &self.p("oem"),
            name,
            &self.p(&format!("{name}/repository/1.root.json")),
            &self.url(name),
        )
        .unwrap();
    }

    /// Regulator `name` with a root key of its own but every other role (targets: the key
    /// that signs attestations) on `shared`'s key: one party under two names. Not authorized
    /// (the OEM refuses it: see [`World::pin_by_hand`]).
    pub fn twin_regulator(&self, name: &str, shared: &str) {
        let root_key = self.p(&format!("{name}-root.pem"));
        std::fs::write(
            &root_key,
            SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap(),
        )
        .unwrap();
        let roles = RoleOptions {
            default_keys: vec![self.p(&format!("{shared}.pem"))],
            role_keys: [("root".to_string(), vec![root_key])].into(),
            ..Default::default()
        };
        regulator::init(&self.p(name), name, &roles, self.now).unwrap();
        self.published(name);
    }

    /// Authorize regulator `name` by editing the OEM's settings, past `oem regulator add`'s
    /// checks, with a pin as an older tool wrote it (root keys only): what a careless or
    /// compromised OEM could publish.
    pub fn pin_by_hand(&self, name: &str) {
        let root = self.p(&format!("{name}/repository/1.root.json"));
        let env =
            ota_metadata::Envelope::parse("root", &std::fs::read(&root).unwrap(), 1 << 20).unwrap();
        let r: ota_metadata::roles::Root = env.decode("root", "root").unwrap();
        let mut pin = serde_json::to_value(
            ota_metadata::documents::RepositoryPin::pin(&r, &self.url(name)).unwrap(),
        )
        .unwrap();
        pin.as_object_mut().unwrap().remove("role_keys");
        let settings = self.p("oem/ota-repo.json");
        let mut s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
        s["regulators"][name] = pin;
        std::fs::write(&settings, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
    }

    pub fn review(&self, name: &str) {
        oem::publish(&self.p("oem"), self.now, false).unwrap();
        self.published("oem");
        let opts = regulator::ReviewOpts {
            master: &self.url("oem"),
            master_root: &self.p("oem/repository/1.root.json"),
            scanner: None,
            ca: self.ca.as_deref(),
            supplier_from: Default::default(),
            decryption_keys: None,
        };
        for o in regulator::review(&self.p(name), opts, self.now).unwrap() {
            assert!(o.result.is_ok(), "{:?}", o.result);
        }
        regulator::publish(&self.p(name), self.now, false).unwrap();
        self.published(name);
    }

    /// Add images to the supplier (uid, version, hardware id, file), publish, submit each for
    /// review, and have regulator tuv review them.
    pub fn publish_images(&self, images: &[(String, String, String, PathBuf)]) {
        for (uid, version, hw, file) in images {
            supplier::add_image(
                &self.p("acme"),
                supplier::AddImage {
                    file: file.clone(),
                    uid: uid.clone(),
                    version: version.clone(),
                    release_counter: 1,
                    hardware_ids: vec![hw.clone()],
                    role: "targets".into(),
                    allow_rollback: false,
                    encrypt: None,
                    delta_from: Vec::new(),
                },
                self.now,
            )
            .unwrap();
        }
        supplier::publish(&self.p("acme"), self.now, false).unwrap();
        self.published("acme");
        for (uid, version, _, _) in images {
            let submit = oem::Submit {
                supplier: "acme",
                uid,
                version,
                from: None,
                ca: self.ca.as_deref(),
                content_key: None,
            };
            oem::review_submit(&self.p("oem"), submit, self.now).unwrap();
        }
        self.review("tuv");
    }

    /// brake-fw `version` (release counter `counter`, for BRAKE-A) of `bytes`: added by the
    /// supplier, published, submitted for review and approved by the regulator (not assigned).
    pub fn release(&self, version: &str, counter: u64, bytes: &[u8]) {
        self.release_with_deltas(version, counter, bytes, &[])
    }

    /// [`World::release`], with deltas from the earlier versions `delta_from`.
    pub fn release_with_deltas(
        &self,
        version: &str,
        counter: u64,
        bytes: &[u8],
        delta_from: &[&str],
    ) {
        let file = self.p(&format!("fw-{version}.bin"));
        std::fs::write(&file, bytes).unwrap();
        supplier::add_image(
            &self.p("acme"),
            supplier::AddImage {
                file,
                uid: "brake-fw".into(),
                version: version.into(),
                release_counter: counter,
                hardware_ids: vec!["BRAKE-A".into()],
                role: "targets".into(),
                allow_rollback: false,
                encrypt: None,
                delta_from: delta_from.iter().map(|v| v.to_string()).collect(),
            },
            self.now,
        )
        .unwrap();
        supplier::publish(&self.p("acme"), self.now, false).unwrap();
        self.published("acme");
        let submit = oem::Submit {
            supplier: "acme",
            uid: "brake-fw",
            version,
            from: None,
            ca: self.ca.as_deref(),
            content_key: None,
        };
        oem::review_submit(&self.p("oem"), submit, self.now).unwrap();
        self.review("tuv");
    }

    /// A vehicle with `ecus` (serial, hardware id), each assigned `uid` `version`.
    pub fn vehicle(&self, vin: &str, ecus: &[(String, String, String, String)]) {
        let specs: Vec<String> = ecus.iter().map(|(s, h, _, _)| format!("{s}:{h}")).collect();
        oem::vehicle_add(&self.p("oem"), vin, &specs, &[]).unwrap();
        self.provision(vin);
        for (serial, _, uid, version) in ecus {
            let target = oem::AssignTarget::Vehicle {
                vin: vin.into(),
                serial: Some(serial.clone()),
            };
            let a = oem::Assign {
                target,
                supplier: "acme".into(),
                uid: uid.clone(),
                version: version.clone(),
                approval: ota_repo::oem::Approval::NotAsked,
                rules: Default::default(),
            };
            oem::assign(&self.p("oem"), a).unwrap();
        }
        oem::publish(&self.p("oem"), self.now, false).unwrap();
        self.published("oem");
    }

    /// A gateway configuration for `vin` and its ECUs (serial, hardware id), written to `file`.
    pub fn config_for(&self, file: &str, vin: &str, ecus: &[(String, String)]) -> PathBuf {
        let mut t = format!(
            "vin = \"{vin}\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/{vin}.secret\"\nstate_dir = \"state-{vin}\"\n",
            self.url("oem")
        );
        if let Some(c) = &self.ca {
            t += &format!("ca_bundle = \"{}\"\n", c.display());
        }
        t += &format!("[forward]\nkind = \"dir\"\npath = \"ecus-{vin}\"\n");
        for (s, h) in ecus {
            t += &format!("[[ecus]]\nserial = \"{s}\"\nhardware_id = \"{h}\"\n");
        }
        let path = self.p(file);
        std::fs::write(&path, t).unwrap();
        path
    }

    pub fn assign(&self, serial: &str, version: &str) {
        self.assign_to("VIN1", serial, version)
    }

    /// Assign brake-fw `version` to ECU `serial` of `vin` (unchecked) and publish.
    pub fn assign_to(&self, vin: &str, serial: &str, version: &str) {
        oem::assign(
            &self.p("oem"),
            oem::Assign {
                target: oem::AssignTarget::Vehicle {
                    vin: vin.into(),
                    serial: Some(serial.into()),
                },
                supplier: "acme".into(),
                uid: "brake-fw".into(),
                version: version.into(),
                approval: ota_repo::oem::Approval::NotAsked,
                rules: Default::default(),
            },
        )
        .unwrap();
        oem::publish(&self.p("oem"), self.now, false).unwrap();
        self.published("oem");
    }

    pub fn config(&self, s2_hardware: &str) -> Config {
        let path = self.p("gateway.toml");
        std::fs::write(
            &path,
            format!(
                "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\nstate_dir = \"state\"\n{}\
                 [forward]\nkind = \"dir\"\npath = \"ecus\"\n\
                 [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\n[[ecus]]\nserial = \"S2\"\nhardware_id = \"{s2_hardware}\"\n",
                self.url("oem"),
                self.ca.as_ref().map_or(String::new(), |c| format!("ca_bundle = \"{}\"\n", c.display())),
            ),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    pub fn gateway_at(&self, now: DateTime) -> Gateway {
        let gw = Gateway::new(self.config("BRAKE-A"), now).unwrap();
        if !self.p("state/repos/oem/root.json").exists() {
            gw.init(false).unwrap();
        }
        gw
    }

    pub fn update(&self) -> Vec<(String, EcuOutcome)> {
        let gw = self.gateway_at(self.now);
        let mut fw = DirForwarder::new(self.p("ecus"));
        gw.run(Some(&mut fw)).unwrap()
    }
}

/// A world whose trees nginx serves over HTTPS (nginx must outlive the world's use).
/// A world whose trees are uploaded with `ota-repo upload` to a public bucket of `s3` (moto's
/// server) at every publish, and read by gateways from the store alone.
pub fn s3_world(s3: &ota_testkit::s3::S3Server) -> World {
    use ota_repo::upload::{upload, UploadOpts};
    s3.public_bucket("ota");
    let config: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let sync: Sync = Box::new(move |name, dir| {
        let r = upload(
            dir,
            &UploadOpts {
                to: format!("s3://ota/{name}"),
                prune: false,
                jobs: 4,
                short_max_age: 60,
                dry_run: false,
                s3_config: config.clone(),
            },
        )
        .unwrap();
        assert!(r.sent > 0, "{name}: nothing sent");
    });
    let endpoint = s3.endpoint();
    World::build_synced(
        tempfile::tempdir().unwrap(),
        Some(Box::new(move |n| format!("{endpoint}/ota/{n}/"))),
        None,
        Some(sync),
    )
}

pub fn served_world() -> Option<(World, ota_testkit::nginx::Nginx, ota_testkit::tls::TestCa)> {
    let nginx_bin = ota_testkit::require_program("nginx", "nginx")?;
    let tmp = tempfile::tempdir().unwrap();
    let ca = ota_testkit::tls::TestCa::new();
    let trees: Vec<(&str, std::path::PathBuf)> = ["acme", "oem", "tuv"]
        .iter()
        .map(|n| (*n, tmp.path().join(n).join("repository")))
        .collect();
    for (_, p) in &trees {
        std::fs::create_dir_all(p).unwrap();
    }
    let refs: Vec<(&str, &std::path::Path)> =
        trees.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let nginx = ota_testkit::nginx::Nginx::start_tls(&nginx_bin, &refs, &ca);
    let base = nginx.url("x");
    let base = base.trim_end_matches("x/").to_string();
    // init() refuses non-empty directories only through its settings file: the empty
    // repository/ dirs nginx needed are fine.
    let world = World::build(
        tmp,
        Some(Box::new(move |name| format!("{base}{name}/"))),
        Some(ca.ca_pem()),
    );
    Some((world, nginx, ca))
}

/// The directory forwarder, with one ECU's activations failing as if it could not be reached
/// (no answer, so no negative response).
pub struct FailingActivation {
    pub inner: DirForwarder,
    pub serial: String,
}

impl FailingActivation {
    pub fn new(dir: PathBuf, serial: &str) -> Self {
        FailingActivation {
            inner: DirForwarder::new(dir),
            serial: serial.into(),
        }
    }
}

impl ota_client::forward::Forwarder for FailingActivation {
    fn stage(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
        m: &[u8],
        image: &Path,
    ) -> Result<(), ota_client::forward::ForwardError> {
        self.inner.stage(ecu, m, image)
    }
    fn activate(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
        sha256: &[u8; 32],
    ) -> Result<(), ota_client::forward::ForwardError> {
        if ecu.serial == self.serial {
            return Err(ota_client::forward::ForwardError::Ecu {
                serial: ecu.serial.clone(),
                reason: "unreachable".into(),
            });
        }
        self.inner.activate(ecu, sha256)
    }
    fn discard(
        &mut self,
        ecu: &ota_client::config::EcuConfig,
    ) -> Result<(), ota_client::forward::ForwardError> {
        self.inner.discard(ecu)
    }
}

/// One ECU's outcome, as a line.
pub fn outcome(out: &[(String, EcuOutcome)], serial: &str) -> String {
    ota_client::gateway::summary(&out.iter().find(|(s, _)| s == serial).unwrap().1)
}

/// The image the world's directory forwarder installed in ECU `serial`, if any.
pub fn installed(w: &World, serial: &str) -> Option<Vec<u8>> {
    std::fs::read(w.p(&format!("ecus/{serial}/image.bin"))).ok()
}

pub fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

pub fn write_json(p: &Path, v: &serde_json::Value) {
    std::fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// A new RSA-2048 private key file `name` in the world.
pub fn new_key(w: &World, name: &str) -> PathBuf {
    let p = w.p(name);
    std::fs::write(
        &p,
        SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    p
}
