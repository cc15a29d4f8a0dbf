//! Randomized worlds against a reference rule (issue 22; `docs/THREAT_MODEL.md`).
//!
//! Each world is built with the real publishers from a seeded generator: regulators (some
//! sharing the first one's attestation key under another name and root, authorized past the
//! OEM's checks as a careless OEM could), an approval threshold, releases (fresh bytes, bytes
//! carrying a regulator's scan marker, or the bytes of an earlier release under a new version
//! and counter), reviews at random moments, revocations by image or by release, and an ECU in
//! full or partial mode with a trust document (regulator keys, threshold, floor). Then:
//!
//! - the real gateway updates that ECU (an in-process bootloader behind the forwarder) with a
//!   random assignment, and what the ECU runs afterwards must be what [`Model::gateway_installs`]
//!   says;
//! - a compromised gateway offers a fresh ECU with the same trust document each release with
//!   every approval ever published for it (kept from before any revocation), and the ECU's
//!   answer must be what [`Model::ecu_accepts`] says.
//!
//! The model is written from the world's own record of what happened, apart from the code that
//! decides: it never reads the trees. `OTA_SCENARIO_SEED` and `OTA_SCENARIO_WORLDS` choose the
//! seed and the number of worlds (CI: the fixed defaults); a failure names the seed and world
//! to replay.

mod world;

use ota_client::config::EcuConfig;
use ota_client::forward::{ForwardError, Forwarder};
use ota_ecu::bootloader::{Bootloader, Identity, MAX_BLOCK};
use ota_ecu::compact_manifest::Field;
use ota_ecu::flash::mem::MemFlash;
use ota_metadata::SigningKey;
use ota_repo::{oem, regulator, supplier};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use world::World;

/// splitmix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Approved,
    Rejected,
    Revoked,
}

/// One regulator as the world made it.
struct Reg {
    name: String,
    /// The party it stands for: the name of the regulator whose keys it holds.
    party: String,
    /// A byte string its scanner rejects.
    marker: Option<Vec<u8>>,
    /// Its word on each release it judged, by release index.
    verdicts: BTreeMap<usize, Verdict>,
    /// Releases it approved at some point (their approvals stay on disk after a revocation).
    ever_approved: BTreeSet<usize>,
}

struct Release {
    version: String,
    counter: u64,
    bytes: Vec<u8>,
}

/// The world's own record: what every party did, in order.
struct Model {
    regs: Vec<Reg>,
    releases: Vec<Release>,
    /// Releases submitted for review, in queue order.
    submitted: Vec<usize>,
    threshold: usize,
}

/// The ECU's trust document, as issued.
struct EcuTrust {
    full: bool,
    /// The parties whose (targets) keys the document lists.
    regulator_parties: BTreeSet<String>,
    regulator_threshold: usize,
    floor: u64,
}

impl Model {
    fn sha(&self, r: usize) -> [u8; 32] {
        Sha256::digest(&self.releases[r].bytes).into()
    }

    /// What `reg` says when it judges release `r` now: rejected if its scanner finds its
    /// marker or if it vetoed (rejected or revoked) these bytes before, else approved.
    fn judge(&self, reg: &Reg, r: usize) -> Verdict {
        let bytes = &self.releases[r].bytes;
        let marked = reg
            .marker
            .as_ref()
            .is_some_and(|m| bytes.windows(m.len()).any(|w| w == m.as_slice()));
        let vetoed_before = reg
            .verdicts
            .iter()
            .any(|(x, v)| *v != Verdict::Approved && self.releases[*x].bytes == *bytes);
        if marked || vetoed_before {
            Verdict::Rejected
        } else {
            Verdict::Approved
        }
    }

    /// Some authorized regulator rejected or revoked a release with the bytes of `r`.
    fn vetoed(&self, r: usize) -> bool {
        self.regs.iter().any(|reg| {
            reg.verdicts.iter().any(|(x, v)| {
                *v != Verdict::Approved && self.releases[*x].bytes == self.releases[r].bytes
            })
        })
    }

    /// The parties whose regulators approve `r` now.
    fn approving_parties(&self, r: usize) -> BTreeSet<String> {
        self.regs
            .iter()
            .filter(|reg| reg.verdicts.get(&r) == Some(&Verdict::Approved))
            .map(|reg| reg.party.clone())
            .collect()
    }

    /// The ECU's rule: the floor, and in full mode a threshold of the document's regulator
    /// keys among `approvers` (the supplier's signature and hardware id always hold here).
    fn ecu_accepts(&self, r: usize, ecu: &EcuTrust, approvers: &BTreeSet<String>) -> bool {
        self.releases[r].counter >= ecu.floor
            && (!ecu.full
                || ecu.regulator_parties.intersection(approvers).count() >= ecu.regulator_threshold)
    }

    /// The gateway's rule for a blank ECU: no veto on the bytes, a threshold of distinct
    /// parties approving, and the ECU taking it with the approvals of today.
    fn gateway_installs(&self, r: usize, ecu: &EcuTrust) -> bool {
        let approvers = self.approving_parties(r);
        !self.vetoed(r) && approvers.len() >= self.threshold && self.ecu_accepts(r, ecu, &approvers)
    }
}

/// ECUs behind the forwarder: bootloaders in this process.
struct InProcess {
    ecus: BTreeMap<String, Bootloader<'static, MemFlash>>,
}

fn refused(serial: &str, r: ota_ecu::bootloader::Refusal) -> ForwardError {
    ForwardError::Ecu {
        serial: serial.into(),
        reason: format!("refused: {r:?}"),
    }
}

impl InProcess {
    fn get(&mut self, ecu: &EcuConfig) -> Result<&mut Bootloader<'static, MemFlash>, ForwardError> {
        self.ecus.get_mut(&ecu.serial).ok_or(ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: "no such ECU".into(),
        })
    }
}

/// Download `image` with `manifest` and `bundle` into `b`, as the UDS server would.
fn download(
    b: &mut Bootloader<'static, MemFlash>,
    manifest: &[u8],
    bundle: &[u8],
    image: &[u8],
) -> Result<(), ota_ecu::bootloader::Refusal> {
    b.request_download_attested(manifest, (!bundle.is_empty()).then_some(bundle))?;
    for (i, chunk) in image.chunks(MAX_BLOCK).enumerate() {
        b.transfer_data(((i + 1) % 256) as u8, chunk)?;
    }
    b.transfer_exit().map(|_| ())
}

impl Forwarder for InProcess {
    fn stage(&mut self, ecu: &EcuConfig, m: &[u8], image: &Path) -> Result<(), ForwardError> {
        self.stage_attested(ecu, m, &[], image)
    }
    fn stage_attested(
        &mut self,
        ecu: &EcuConfig,
        m: &[u8],
        bundle: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        let data = std::fs::read(image).map_err(|source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        })?;
        download(self.get(ecu)?, m, bundle, &data).map_err(|r| refused(&ecu.serial, r))
    }
    fn activate(&mut self, ecu: &EcuConfig, sha256: &[u8; 32]) -> Result<(), ForwardError> {
        self.get(ecu)?
            .activate(sha256)
            .map(|_| ())
            .map_err(|r| refused(&ecu.serial, r))
    }
    fn discard(&mut self, ecu: &EcuConfig) -> Result<(), ForwardError> {
        self.get(ecu)?
            .discard()
            .map_err(|r| refused(&ecu.serial, r))
    }
    fn trust_version(&mut self, ecu: &EcuConfig) -> Result<Option<u32>, ForwardError> {
        Ok(Some(self.get(ecu)?.trust_version().0))
    }
    fn send_trust(&mut self, ecu: &EcuConfig, doc: &[u8]) -> Result<u32, ForwardError> {
        self.get(ecu)?
            .update_trust(doc)
            .map_err(|r| refused(&ecu.serial, r))
    }
}

/// A blank ECU for BRAKE-A provisioned with trust document `doc`.
fn bootloader(doc: &[u8]) -> Bootloader<'static, MemFlash> {
    let mut b = Bootloader::new(
        MemFlash::new(1 << 16),
        Identity {
            hardware_id: Field::new("BRAKE-A").unwrap(),
            keys: &[],
            threshold: 1,
        },
    )
    .unwrap();
    b.provision_trust(doc).unwrap();
    b
}

/// Two offline trust signers, made once per test process.
fn signer_pems() -> &'static [String; 2] {
    static K: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    K.get_or_init(|| [0, 1].map(|_| SigningKey::generate(2048).unwrap().to_pkcs8_pem().unwrap()))
}

fn public_pem_file(w: &World, name: &str, private_pem: &str) -> std::path::PathBuf {
    let k = SigningKey::from_pem(private_pem).unwrap();
    let p = w.p(name);
    std::fs::write(
        &p,
        ota_metadata::signing::public_pem(&k.rsa_public()).unwrap(),
    )
    .unwrap();
    p
}

const EXTRA: [&str; 2] = ["dekra", "kiwa"];

/// Build world `index` of `seed`: returns the world, its model and the ECU's trust.
fn build(rng: &mut Rng) -> (World, Model, EcuTrust, Vec<u8>) {
    let w = World::new();
    // World::new: brake-fw 1.0 (bytes 1, counter 1), 2.0 (2, 2), 0.9 (9, 1), tuv approving all.
    let mut m = Model {
        regs: vec![Reg {
            name: "tuv".into(),
            party: "tuv".into(),
            marker: None,
            verdicts: (0..3).map(|r| (r, Verdict::Approved)).collect(),
            ever_approved: (0..3).collect(),
        }],
        releases: [("1.0", 1, 1u8), ("2.0", 2, 2), ("0.9", 1, 9)]
            .into_iter()
            .map(|(v, c, b)| Release {
                version: v.into(),
                counter: c,
                bytes: vec![b; 5000],
            })
            .collect(),
        submitted: vec![0, 1, 2],
        threshold: 1,
    };
    for name in EXTRA {
        if !rng.chance(80) {
            continue;
        }
        let twin = rng.chance(35);
        if twin {
            w.twin_regulator(name, "tuv");
            w.pin_by_hand(name);
        } else {
            w.add_regulator(name);
        }
        m.regs.push(Reg {
            name: name.into(),
            party: if twin { "tuv".into() } else { name.into() },
            marker: None,
            verdicts: BTreeMap::new(),
            ever_approved: BTreeSet::new(),
        });
    }
    for reg in &mut m.regs {
        if rng.chance(40) {
            let marker = format!("MARK-{}", reg.name).into_bytes();
            std::fs::write(
                w.p(&format!("{}/rules.json", reg.name)),
                serde_json::to_vec(&serde_json::json!({"patterns": [
                    {"name": "marker", "text": String::from_utf8(marker.clone()).unwrap()}
                ]}))
                .unwrap(),
            )
            .unwrap();
            reg.marker = Some(marker);
        }
    }
    // New regulators judge what is queued already.
    for i in 1..m.regs.len() {
        review(&w, &mut m, i);
    }
    // Mostly 1: the case where one regulator's veto must win against another's approval.
    m.threshold = if rng.chance(50) {
        1
    } else {
        1 + rng.below(m.regs.len())
    };
    oem::regulator_threshold(&w.p("oem"), m.threshold as u32).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();

    let steps = 3 + rng.below(5);
    for step in 0..steps {
        match rng.below(3) {
            0 => new_release(&w, &mut m, rng, step),
            1 => {
                let i = rng.below(m.regs.len());
                review(&w, &mut m, i);
            }
            _ => revoke(&w, &mut m, rng),
        }
    }

    // Most regulators catch up with the queue before the vehicle checks.
    for i in 0..m.regs.len() {
        if rng.chance(70) {
            review(&w, &mut m, i);
        }
    }

    // The ECU's trust document: full or partial, some regulators' keys, a floor.
    let full = rng.chance(50);
    let mut parties: Vec<String> = m
        .regs
        .iter()
        .map(|r| r.party.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    while parties.len() > 1 && rng.chance(40) {
        parties.remove(rng.below(parties.len()));
    }
    let regulator_threshold = if full {
        1 + rng.below(parties.len())
    } else {
        0
    };
    let floor = rng.below(4) as u64;
    let ecu = EcuTrust {
        full,
        regulator_parties: parties.iter().cloned().collect(),
        regulator_threshold,
        floor,
    };
    for (i, pem) in signer_pems().iter().enumerate() {
        std::fs::write(w.p(&format!("trust-{i}.pem")), pem).unwrap();
    }
    let acme = public_pem_file(&w, "acme.pub.pem", world::key_pem());
    let regulator_keys = if full {
        parties
            .iter()
            .map(|p| public_pem_file(&w, &format!("{p}.pub.pem"), &world::regulator_key_pem(p)))
            .collect()
    } else {
        vec![]
    };
    let (_, path) = oem::ecu_trust(
        &w.p("oem"),
        &oem::EcuTrust {
            hardware_id: "BRAKE-A".into(),
            suppliers: oem::ecu_trust::SupplierKeys::Files(vec![acme]),
            supplier_threshold: None,
            regulator_keys,
            regulator_threshold: regulator_threshold as u8,
            full,
            signer_keys: vec![w.p("trust-0.pem"), w.p("trust-1.pem")],
            signer_threshold: None,
            confirmed_keys: vec![],
            previous_signer_keys: vec![],
            min_release_counter: Some(floor),
            // The reference rule models the supplier, regulator and floor checks; the OEM's
            // instruction is tested on its own (`ecu_trust.rs`).
            legacy: true,
        },
    )
    .unwrap();
    let doc = std::fs::read(path).unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    (w, m, ecu, doc)
}

/// Release new bytes (fresh, marked, or an earlier release's) as a new version.
fn new_release(w: &World, m: &mut Model, rng: &mut Rng, step: usize) {
    let bytes = match rng.below(3) {
        0 => m.releases[rng.below(m.releases.len())].bytes.clone(),
        1 => {
            let markers: Vec<Vec<u8>> = m.regs.iter().filter_map(|r| r.marker.clone()).collect();
            let mut b = vec![(30 + step) as u8; 3000];
            if !markers.is_empty() {
                b.extend_from_slice(&markers[rng.below(markers.len())]);
            }
            b
        }
        _ => vec![(60 + step) as u8; 4000],
    };
    let version = format!("3.{step}");
    let counter = 1 + rng.below(5) as u64;
    let file = w.p(&format!("fw-{version}.bin"));
    std::fs::write(&file, &bytes).unwrap();
    supplier::add_image(
        &w.p("acme"),
        supplier::AddImage {
            file,
            uid: "brake-fw".into(),
            version: version.clone(),
            release_counter: counter,
            hardware_ids: vec!["BRAKE-A".into()],
            role: "targets".into(),
            allow_rollback: true,
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
            version: &version,
            from: None,
            ca: None,
            content_key: None,
        },
        w.now,
    )
    .unwrap();
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    m.releases.push(Release {
        version,
        counter,
        bytes,
    });
    m.submitted.push(m.releases.len() - 1);
}

/// Regulator `i` judges, in queue order, every submitted release it has not judged.
fn review(w: &World, m: &mut Model, i: usize) {
    let name = m.regs[i].name.clone();
    let opts = regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: None,
        ca: None,
        supplier_from: Default::default(),
        decryption_keys: None,
    };
    let outcomes = regulator::review(&w.p(&name), opts, w.now).unwrap();
    regulator::publish(&w.p(&name), w.now, false).unwrap();
    for r in m.submitted.clone() {
        if m.regs[i].verdicts.contains_key(&r) {
            continue;
        }
        let v = m.judge(&m.regs[i], r);
        let got = outcomes
            .iter()
            .find(|o| o.request.image.version == m.releases[r].version)
            .map(|o| o.result.clone());
        let expected = match v {
            Verdict::Approved => ota_metadata::documents::Verdict::Approved,
            _ => ota_metadata::documents::Verdict::Rejected,
        };
        assert_eq!(
            got,
            Some(Ok(expected)),
            "{name} judging {}",
            m.releases[r].version
        );
        if v == Verdict::Approved {
            m.regs[i].ever_approved.insert(r);
        }
        m.regs[i].verdicts.insert(r, v);
    }
}

/// A regulator revokes the bytes of a release it judged (every release of them it judged),
/// or that one release.
fn revoke(w: &World, m: &mut Model, rng: &mut Rng) {
    let i = rng.below(m.regs.len());
    let judged: Vec<usize> = m.regs[i].verdicts.keys().copied().collect();
    if judged.is_empty() {
        return;
    }
    let r = judged[rng.below(judged.len())];
    let name = m.regs[i].name.clone();
    let by_image = rng.chance(50);
    let sha = if by_image {
        hex::encode(m.sha(r))
    } else {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(w.p(&format!("{name}/ota-repo.json"))).unwrap())
                .unwrap();
        s["attestations"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, a)| a["release"]["version"] == m.releases[r].version.as_str())
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    let targets: Vec<usize> = if by_image {
        judged
            .into_iter()
            .filter(|x| m.releases[*x].bytes == m.releases[r].bytes)
            .collect()
    } else {
        vec![r]
    };
    let pending = targets
        .iter()
        .any(|x| m.regs[i].verdicts[x] != Verdict::Revoked);
    let done = regulator::revoke(&w.p(&name), &sha, "scenario", w.now);
    assert_eq!(done.is_ok(), pending, "{name} revoking {sha}: {done:?}");
    regulator::publish(&w.p(&name), w.now, false).unwrap();
    for x in targets {
        m.regs[i].verdicts.insert(x, Verdict::Revoked);
    }
}

/// Every compact approval ever published for release `r` (revoked ones included: a
/// compromised gateway keeps them), as a bundle of at most four, and their parties.
fn every_approval(w: &World, m: &Model, r: usize) -> (Vec<u8>, BTreeSet<String>) {
    let mut sigs: Vec<([u8; 32], Vec<u8>)> = Vec::new();
    let mut parties = BTreeSet::new();
    for reg in m.regs.iter().filter(|g| g.ever_approved.contains(&r)) {
        parties.insert(reg.party.clone());
        for e in std::fs::read_dir(w.p(&format!("{}/repository/targets", reg.name))).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let signed = &v["signed"];
            if signed["verdict"] != "approved"
                || signed["release"]["version"] != m.releases[r].version.as_str()
            {
                continue;
            }
            for a in signed["compact_approval"].as_array().unwrap() {
                let kid: [u8; 32] = hex::decode(a["keyid"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                if sigs.len() < 4 && !sigs.iter().any(|(k, _)| *k == kid) {
                    sigs.push((kid, hex::decode(a["sig"].as_str().unwrap()).unwrap()));
                }
            }
        }
    }
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(k, s)| (*k, s.as_slice())).collect();
    let bundle = if refs.is_empty() {
        Vec::new()
    } else {
        ota_ecu::attestation::assemble(&refs)
    };
    (bundle, parties)
}

/// The compact manifest of release `r` as the supplier published it.
fn compact_manifest(w: &World, m: &Model, r: usize) -> Vec<u8> {
    let suffix = format!("brake-fw-{}.manifest.bin", m.releases[r].version);
    let path = std::fs::read_dir(w.p("acme/repository/targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap();
    std::fs::read(path).unwrap()
}

/// How many decisions of each kind the worlds made, so a run shows it tested both ways.
#[derive(Default, Debug)]
struct Tally {
    ecu_took: usize,
    ecu_refused: usize,
    gateway_installed: usize,
    gateway_refused: usize,
    vetoed: usize,
    twins: usize,
}

fn check_world(seed: u64, index: usize, tally: &mut Tally) {
    let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let (w, m, ecu, doc) = build(&mut rng);
    let what = |x: &str| {
        format!(
            "seed {seed} world {index}: {x}; threshold {}, regulators {:?}, ECU full {} parties {:?} threshold {} floor {}",
            m.threshold,
            m.regs
                .iter()
                .map(|r| (r.name.as_str(), r.party.as_str(), r.marker.is_some(), r.verdicts.clone()))
                .collect::<Vec<_>>(),
            ecu.full,
            ecu.regulator_parties,
            ecu.regulator_threshold,
            ecu.floor
        )
    };

    // The compromised gateway: every release, with every approval ever given for it.
    for r in 0..m.releases.len() {
        let (bundle, ever) = every_approval(&w, &m, r);
        let mut b = bootloader(&doc);
        let took = download(
            &mut b,
            &compact_manifest(&w, &m, r),
            &bundle,
            &m.releases[r].bytes,
        );
        if took.is_ok() {
            tally.ecu_took += 1;
        } else {
            tally.ecu_refused += 1;
        }
        tally.vetoed += usize::from(m.vetoed(r));
        assert_eq!(
            took.is_ok(),
            m.ecu_accepts(r, &ecu, &ever),
            "{}",
            what(&format!(
                "ECU offered {} directly: {took:?}",
                m.releases[r].version
            ))
        );
    }

    // The honest gateway: each release assigned in turn, to a blank ECU behind a gateway with
    // a state of its own.
    for r in 0..m.releases.len() {
        w.assign("S1", &m.releases[r].version);
        let cfg = w.p(&format!("scenario-{r}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "vin = \"VIN1\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/VIN1.secret\"\n\
                 state_dir = \"state-{r}\"\n[forward]\nkind = \"dir\"\npath = \"unused\"\n\
                 [[ecus]]\nserial = \"S1\"\nhardware_id = \"BRAKE-A\"\n",
                w.url("oem")
            ),
        )
        .unwrap();
        let gw = ota_client::gateway::Gateway::new(
            ota_client::config::Config::load(&cfg).unwrap(),
            w.now,
        )
        .unwrap();
        gw.init(false).unwrap();
        let mut fw = InProcess {
            ecus: BTreeMap::from([("S1".to_string(), bootloader(&doc))]),
        };
        let out = gw.run(Some(&mut fw)).unwrap();
        let runs = fw.ecus["S1"].state().image.map(|i| i.sha256);
        let installed = runs == Some(m.sha(r));
        assert_eq!(
            installed,
            m.gateway_installs(r, &ecu),
            "{}",
            what(&format!(
                "assigned {}: the gateway said {}",
                m.releases[r].version,
                ota_client::gateway::summary(&out[0].1)
            ))
        );
        if installed {
            tally.gateway_installed += 1;
        } else {
            tally.gateway_refused += 1;
        }
        // Nothing else ever runs.
        assert!(
            runs.is_none() || installed,
            "{}",
            what("another image runs")
        );
    }
    tally.twins += m.regs.iter().filter(|g| g.party != g.name).count();
}

/// Scenario: Regulators | random worlds of regulators (some sharing keys under two names), thresholds, releases and re-releases of the same bytes, rejections, revocations, floors, full and partial ECUs, and a compromised gateway replaying every approval ever given | every install decision of gateway and ECU matches the reference rule
#[test]
fn random_worlds_agree_with_the_reference_rule() {
    let seed = std::env::var("OTA_SCENARIO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0DA7_2026_u64);
    let worlds = std::env::var("OTA_SCENARIO_WORLDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12usize);
    let mut tally = Tally::default();
    for index in 0..worlds {
        check_world(seed, index, &mut tally);
    }
    println!("seed {seed}, {worlds} worlds: {tally:?}");
    // The fixed seed's worlds exercise every kind of decision.
    if worlds >= 12 {
        assert!(
            tally.ecu_took > 0
                && tally.ecu_refused > 0
                && tally.gateway_installed > 0
                && tally.gateway_refused > 0
                && tally.vetoed > 0
                && tally.twins > 0,
            "{tally:?}"
        );
    }
}
