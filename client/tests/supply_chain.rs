//! The supply chain as it is (issue 24): a tier-2 supplier (bosch) and the tier-3 it delegates
//! to (conti) keep their keys in their own directories and sign for themselves; each hands
//! its signed role over to its delegator, who checks it against the delegation and publishes
//! it verbatim. A vehicle installs a tier-3 release end to end; no private key ever leaves its
//! owner's directory; a tier narrows what it delegates; a tier-2 rotates its key alone; a
//! revoked tier-2 releases nothing more.

mod world;

use ota_client::gateway::summary;
use ota_repo::oem;
use ota_repo::supplier::{self, tier, DelegateKeys};
use std::path::{Path, PathBuf};
use world::{installed, outcome, World};

/// A party's own directory: its keys and its working directory live here and nowhere else.
fn party(w: &World, name: &str) -> PathBuf {
    let d = w.p(&format!("parties/{name}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A new key for `party`, in its directory; returns (private, public).
fn party_key(w: &World, name: &str, file: &str) -> (PathBuf, PathBuf) {
    let d = party(w, name);
    let private = d.join(format!("{file}.pem"));
    ota_repo::keystore::generate(2048, &private).unwrap();
    let public = d.join(format!("{file}.pub.pem"));
    ota_repo::keystore::export_public(&private, &public).unwrap();
    (private, public)
}

fn delegate(
    dir: &Path,
    name: &str,
    public: &Path,
    hw: &str,
    path: &str,
) -> ota_repo::error::Result<()> {
    supplier::delegate(
        dir,
        supplier::Delegate {
            name: name.into(),
            keys: DelegateKeys::Public(vec![public.to_path_buf()]),
            threshold: 1,
            hardware_ids: vec![hw.into()],
            paths: vec![path.into()],
            terminating: false,
            expires: None,
            replace: false,
        },
    )
}

fn init_tier(w: &World, party_name: &str, role: &str, key: &Path, path: &str) -> PathBuf {
    let dir = party(w, party_name).join("tier");
    tier::init_tier(
        &dir,
        tier::TierInit {
            name: party_name.into(),
            role: role.into(),
            keys: vec![key.to_path_buf()],
            threshold: 1,
            hardware_ids: vec!["BRAKE-A".into()],
            paths: vec![path.into()],
            expires: None,
            max_image_size: 1 << 20,
        },
    )
    .unwrap();
    dir
}

fn add(w: &World, dir: &Path, uid: &str, version: &str, counter: u64, byte: u8) -> Vec<u8> {
    let bytes = vec![byte; 3000];
    let file = w.p(&format!("{uid}-{version}.input"));
    std::fs::write(&file, &bytes).unwrap();
    supplier::add_image(
        dir,
        supplier::AddImage {
            file,
            uid: uid.into(),
            version: version.into(),
            release_counter: counter,
            hardware_ids: vec!["BRAKE-A".into()],
            role: String::new(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        },
        w.now,
    )
    .unwrap();
    bytes
}

/// `from`'s hand-over, into a new directory beside it (numbered).
fn hand_over(w: &World, from: &Path, n: u32) -> PathBuf {
    let out = from.parent().unwrap().join(format!("handover-{n}"));
    tier::handover(from, &out, false, w.now).unwrap();
    out
}

fn submit(w: &World, uid: &str, version: &str) -> ota_repo::error::Result<()> {
    oem::review_submit(
        &w.p("oem"),
        oem::Submit {
            supplier: "acme",
            uid,
            version,
            from: None,
            ca: None,
            content_key: None,
        },
        w.now,
    )
    .map(|_| ())
}

fn assign(w: &World, vin: &str, serial: &str, uid: &str, version: &str) {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: vin.into(),
                serial: Some(serial.into()),
            },
            supplier: "acme".into(),
            uid: uid.into(),
            version: version.into(),
            approval: ota_repo::oem::Approval::NotAsked,
            rules: Default::default(),
        },
    )
    .unwrap();
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(holding(&p, needle));
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            out.push(p);
        }
    }
    out
}

/// The base64 body of a PEM file, a line long enough to be unique to the key.
fn key_material(pem: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem).unwrap();
    text.lines().nth(3).unwrap().as_bytes().to_vec()
}

struct Chain {
    w: World,
    bosch_tier: PathBuf,
    conti_tier: PathBuf,
    keys: Vec<(String, PathBuf)>,
}

/// acme delegates brake calibration and libraries to bosch (public key only); bosch delegates
/// the libraries to conti; conti releases brake-lib 1.0, bosch brake-cal 1.0; each hands over
/// to its delegator; acme publishes; the OEM submits both, tuv approves, and both are assigned
/// to VIN1 (brake-lib on S1, brake-cal on S2).
fn chain() -> Chain {
    let w = World::new();
    let (bosch_key, bosch_pub) = party_key(&w, "bosch", "bosch");
    let (conti_key, conti_pub) = party_key(&w, "conti", "conti");
    delegate(&w.p("acme"), "brake-cal", &bosch_pub, "BRAKE-A", "brake-*").unwrap();
    let bosch_tier = init_tier(&w, "bosch", "brake-cal", &bosch_key, "brake-*");
    delegate(
        &bosch_tier,
        "brake-lib",
        &conti_pub,
        "BRAKE-A",
        "brake-lib-*",
    )
    .unwrap();
    let conti_tier = init_tier(&w, "conti", "brake-lib", &conti_key, "brake-lib-*");

    add(&w, &conti_tier, "brake-lib", "1.0", 1, 0x31);
    let from_conti = hand_over(&w, &conti_tier, 1);
    supplier::ingest::ingest(&bosch_tier, &from_conti, w.now).unwrap();
    add(&w, &bosch_tier, "brake-cal", "1.0", 1, 0x21);
    let from_bosch = hand_over(&w, &bosch_tier, 1);
    supplier::ingest::ingest(&w.p("acme"), &from_bosch, w.now).unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();

    submit(&w, "brake-lib", "1.0").unwrap();
    submit(&w, "brake-cal", "1.0").unwrap();
    w.review("tuv");
    assign(&w, "VIN1", "S1", "brake-lib", "1.0");
    assign(&w, "VIN1", "S2", "brake-cal", "1.0");
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    Chain {
        w,
        bosch_tier,
        conti_tier,
        keys: vec![("bosch".into(), bosch_key), ("conti".into(), conti_key)],
    }
}

/// Scenario: Supply chain | a tier-3 (conti) signs a library release in its own directory, hands it to its tier-2 (bosch), which hands its own role and conti's to the tier-1 (acme) | acme checks both against its delegation and publishes them verbatim; the regulator reviews, the vehicle installs the tier-3 release and the tier-2's; no private key ever left its owner's directory
#[test]
fn a_tier_3_release_reaches_the_vehicle_and_no_private_key_leaves_its_owner() {
    let c = chain();
    let w = &c.w;
    let out = w.update();
    assert!(
        outcome(&out, "S1").starts_with("updated to brake-lib 1.0"),
        "{}",
        outcome(&out, "S1")
    );
    assert!(
        outcome(&out, "S2").starts_with("updated to brake-cal 1.0"),
        "{}",
        outcome(&out, "S2")
    );
    assert_eq!(installed(w, "S1").unwrap(), vec![0x31; 3000]);
    assert_eq!(installed(w, "S2").unwrap(), vec![0x21; 3000]);
    // The published tree names the roles as their owners signed them.
    let acme = w.p("acme/repository");
    assert!(std::fs::read_dir(&acme).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".brake-lib.json")));
    // Each party's private key is in its own directory and nowhere else.
    for (owner, key) in &c.keys {
        let found = holding(w.tmp.path(), &key_material(key));
        let own = w.p(&format!("parties/{owner}"));
        assert!(
            found.iter().all(|p| p.starts_with(&own)),
            "{owner}'s private key found outside its directory: {found:?}"
        );
        assert!(!found.is_empty());
    }
}

/// Scenario: Supply chain | a tier-2 delegates to a tier-3 more than it was given (another hardware id, or wider names), or hands over a tier-3 role whose delegation it widened by hand | refused: by the tier-2's own command, and by the tier-1's ingest before anything is kept
#[test]
fn a_tier_delegates_only_within_what_it_was_given() {
    let c = chain();
    let w = &c.w;
    let (_, other_pub) = party_key(w, "other", "other");
    let err = delegate(
        &c.bosch_tier,
        "engine",
        &other_pub,
        "ENGINE-X",
        "brake-lib-*",
    )
    .unwrap_err();
    assert!(err.to_string().contains("only narrows"), "{err}");
    let err = delegate(&c.bosch_tier, "wide", &other_pub, "BRAKE-A", "*").unwrap_err();
    assert!(err.to_string().contains("only narrows"), "{err}");

    // A forged hand-over: bosch's settings edited to delegate ENGINE-X to conti.
    let settings = c.bosch_tier.join("ota-repo.json");
    let mut s = world::read_json(&settings);
    s["delegations"][0]["hardware_ids"] = serde_json::json!(["BRAKE-A", "ENGINE-X"]);
    world::write_json(&settings, &s);
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let forged = hand_over(w, &c.bosch_tier, 2);
    let before = std::fs::read(w.p("acme/ota-repo.json")).unwrap();
    let err = supplier::ingest::ingest(&w.p("acme"), &forged, w.now).unwrap_err();
    assert!(err.to_string().contains("ENGINE-X"), "{err}");
    assert_eq!(std::fs::read(w.p("acme/ota-repo.json")).unwrap(), before);
}

/// Scenario: Supply chain | a tier-2 rotates its key: it signs its manifests and role again with the new key in its own directory, and the tier-1 only names the new public key | its next release installs; a hand-over signed with the old (stolen) key is refused by the tier-1
#[test]
fn a_tier_2_rotates_its_key_alone() {
    let c = chain();
    let w = &c.w;
    let (old_key, _) = (c.keys[0].1.clone(), ());
    let (new_key, new_pub) = party_key(w, "bosch", "bosch-2");
    tier::rotate_tier_key(&c.bosch_tier, vec![new_key], 1).unwrap();
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let from_bosch = hand_over(w, &c.bosch_tier, 2);
    // The tier-1 names the new public key, then takes the hand-over in.
    supplier::delegate(
        &w.p("acme"),
        supplier::Delegate {
            name: "brake-cal".into(),
            keys: DelegateKeys::Public(vec![new_pub]),
            threshold: 1,
            hardware_ids: vec!["BRAKE-A".into()],
            paths: vec!["brake-*".into()],
            terminating: false,
            expires: None,
            replace: true,
        },
    )
    .unwrap();
    // Until it does, publishing is refused rather than serving a role clients would reject.
    let err = supplier::publish(&w.p("acme"), w.now, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("not signed by the keys delegated now"),
        "{err}"
    );
    supplier::ingest::ingest(&w.p("acme"), &from_bosch, w.now).unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    submit(w, "brake-cal", "1.1").unwrap();
    w.review("tuv");
    assign(w, "VIN1", "S2", "brake-cal", "1.1");
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    let out = w.update();
    assert!(
        outcome(&out, "S2").starts_with("updated to brake-cal 1.1"),
        "{}",
        outcome(&out, "S2")
    );

    // Someone who kept the old key signs a release of their own: refused at the tier-1.
    let thief = party(w, "thief").join("tier");
    tier::init_tier(
        &thief,
        tier::TierInit {
            name: "thief".into(),
            role: "brake-cal".into(),
            keys: vec![old_key],
            threshold: 1,
            hardware_ids: vec!["BRAKE-A".into()],
            paths: vec!["brake-*".into()],
            expires: None,
            max_image_size: 1 << 20,
        },
    )
    .unwrap();
    add(w, &thief, "brake-cal", "6.6", 9, 0x66);
    let forged = hand_over(w, &thief, 1);
    let err = supplier::ingest::ingest(&w.p("acme"), &forged, w.now).unwrap_err();
    assert!(err.to_string().contains("0 valid signature(s)"), "{err}");
}

/// Scenario: Supply chain | the tier-1 revokes a tier-2 (undelegate), which then hands over a new release | the hand-over is refused, the tier-2's releases (and its tier-3's) leave the published tree, a vehicle assigned one before installs nothing, a vehicle that runs one keeps it as up to date (a recall only if a regulator revokes it), and the tree keeps working
#[test]
fn a_revoked_tier_2_releases_nothing_more() {
    let c = chain();
    let w = &c.w;
    oem::vehicle_add(&w.p("oem"), "VIN2", &["S9:BRAKE-A".into()], &[]).unwrap();
    w.provision("VIN2");
    assign(w, "VIN2", "S9", "brake-cal", "1.0");
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    // VIN1 installs brake-cal 1.0 on S2 before the revocation.
    let out = w.update();
    assert!(
        outcome(&out, "S2").starts_with("updated to brake-cal 1.0"),
        "{}",
        outcome(&out, "S2")
    );

    supplier::undelegate(&w.p("acme"), "brake-cal", true).unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let late = hand_over(w, &c.bosch_tier, 2);
    let err = supplier::ingest::ingest(&w.p("acme"), &late, w.now).unwrap_err();
    assert!(err.to_string().contains("delegates none"), "{err}");
    let err = submit(w, "brake-cal", "1.1").unwrap_err();
    assert!(
        err.to_string()
            .contains("no role of the repository lists it"),
        "{err}"
    );

    let config = w.config_for("vin2.toml", "VIN2", &[("S9".into(), "BRAKE-A".into())]);
    let gw = ota_client::gateway::Gateway::new(
        ota_client::config::Config::load(&config).unwrap(),
        w.now,
    )
    .unwrap();
    gw.init(false).unwrap();
    let mut fw = ota_client::forward::DirForwarder::new(w.p("ecus-VIN2"));
    let out = gw.run(Some(&mut fw)).unwrap();
    let s9 = &out.iter().find(|(s, _)| s == "S9").unwrap().1;
    assert!(
        summary(s9).contains("brake-cal-1.0.bin: no role of the repository lists it"),
        "{}",
        summary(s9)
    );
    assert!(!w.p("ecus-VIN2/S9/image.bin").exists());
    // What VIN1 already runs stays, and is not a recall: no regulator revoked it.
    let out = w.update();
    assert_eq!(outcome(&out, "S2"), "up to date (brake-cal 1.0)");
    assert_eq!(installed(w, "S2").unwrap(), vec![0x21; 3000]);
    // The tier-1's own images and the tree itself still verify.
    ota_repo::verify::verify(&w.p("acme"), None, w.now).unwrap();
    let _ = &c.conti_tier;
}

/// Scenario: Supply chain | the OEM issues an ECU trust document for a hardware id that tiers sign images for | the document follows the delegations: it names the tier-1's targets keys and the keys of every tier allowed that hardware id, and each tier key must first be confirmed by the OEM (none enters the ECU unseen); a hardware id no tier serves gets the tier-1's keys alone
#[test]
fn ecu_trust_follows_the_delegations_to_the_tiers_keys() {
    let c = chain();
    let w = &c.w;
    let signers = vec![
        world::new_key(w, "trust-a.pem"),
        world::new_key(w, "trust-b.pem"),
    ];
    let trust = |hw: &str, confirmed: Vec<String>| {
        oem::ecu_trust(
            &w.p("oem"),
            &oem::EcuTrust {
                hardware_id: hw.into(),
                suppliers: ota_repo::oem::ecu_trust::SupplierKeys::Pinned {
                    name: "acme".into(),
                    from: None,
                    ca: None,
                    now: w.now,
                },
                supplier_threshold: None,
                regulator_keys: vec![],
                regulator_threshold: 0,
                full: false,
                signer_keys: signers.clone(),
                signer_threshold: Some(2),
                confirmed_keys: confirmed,
                previous_signer_keys: vec![],
                min_release_counter: None,
                legacy: false,
            },
        )
    };
    let id = |owner: &str, file: &str| {
        ota_repo::keystore::public_key(&w.p(&format!("parties/{owner}/{file}.pub.pem")))
            .unwrap()
            .key_id()
            .unwrap()
            .0
    };
    let (bosch, conti) = (id("bosch", "bosch"), id("conti", "conti"));
    let err = trust("BRAKE-A", vec![]).unwrap_err().to_string();
    assert!(err.contains(&bosch) && err.contains(&conti), "{err}");
    let (_, path) = trust("BRAKE-A", vec![bosch.clone(), conti.clone()]).unwrap();
    let doc =
        ota_ecu::trust::TrustDocument::provision(&std::fs::read(path).unwrap(), "BRAKE-A").unwrap();
    assert_eq!(
        doc.suppliers.keys.len(),
        3,
        "acme's targets key, bosch's and conti's"
    );
    assert_eq!(doc.suppliers.threshold, 1);
    // No tier serves BRAKE-B: acme's key alone, nothing to confirm.
    let (_, path) = trust("BRAKE-B", vec![]).unwrap();
    let doc =
        ota_ecu::trust::TrustDocument::provision(&std::fs::read(path).unwrap(), "BRAKE-B").unwrap();
    assert_eq!(doc.suppliers.keys.len(), 1);
}

/// Scenario: Supply chain | a tier-2 (bosch, allowed BRAKE-A) delegates BRAKE-B to its tier-3, and the role reaches the published tree without the tier-1's check (an older tier-1, or one whose check failed) | vehicles, the regulator and the OEM refuse the tier-3's BRAKE-B image: the hardware ids a role may sign are narrowed along its whole delegation path, not taken from its direct parent alone
#[test]
fn readers_narrow_hardware_ids_along_the_whole_delegation_path() {
    let c = chain();
    let w = &c.w;
    // bosch widens its delegation to conti, conti its own view, by editing their settings.
    let edit = |dir: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let p = dir.join("ota-repo.json");
        let mut s = world::read_json(&p);
        f(&mut s);
        world::write_json(&p, &s);
    };
    let both = serde_json::json!(["BRAKE-A", "BRAKE-B"]);
    edit(&c.bosch_tier, &|s| {
        s["delegations"][0]["hardware_ids"] = both.clone()
    });
    edit(&c.conti_tier, &|s| s["tier"]["hardware_ids"] = both.clone());
    let file = w.p("lib-2.0.input");
    std::fs::write(&file, vec![0x32; 3000]).unwrap();
    supplier::add_image(
        &c.conti_tier,
        supplier::AddImage {
            file,
            uid: "brake-lib".into(),
            version: "2.0".into(),
            release_counter: 2,
            hardware_ids: vec!["BRAKE-B".into()],
            role: String::new(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        },
        w.now,
    )
    .unwrap();
    let from_conti = hand_over(w, &c.conti_tier, 2);
    supplier::ingest::ingest(&c.bosch_tier, &from_conti, w.now).unwrap();
    let from_bosch = hand_over(w, &c.bosch_tier, 2);
    // acme's ingest refuses it...
    let err = supplier::ingest::ingest(&w.p("acme"), &from_bosch, w.now).unwrap_err();
    assert!(err.to_string().contains("BRAKE-B"), "{err}");
    // ...so it is put in by hand, as a tier-1 without that check would have.
    let acme = w.p("acme");
    let mut s = world::read_json(&acme.join("ota-repo.json"));
    for (role, parent) in [("brake-cal", "targets"), ("brake-lib", "brake-cal")] {
        let bytes = std::fs::read(from_bosch.join(format!("metadata/{role}.json"))).unwrap();
        std::fs::write(acme.join(format!("delegated/{role}.json")), &bytes).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        s["ingested"][role] = serde_json::json!({
            "version": doc["signed"]["version"],
            "sha256": world::sha_hex(&bytes),
            "parent": parent,
        });
    }
    world::write_json(&acme.join("ota-repo.json"), &s);
    for e in std::fs::read_dir(from_bosch.join("targets")).unwrap() {
        let e = e.unwrap();
        let to = acme.join("repository/targets").join(e.file_name());
        if !to.exists() {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
    supplier::publish(&acme, w.now, false).unwrap();
    // bosch's signed role names BRAKE-B for conti; the path from acme allows BRAKE-A only.
    let err = submit(w, "brake-lib", "2.0").unwrap_err().to_string();
    assert!(err.contains("BRAKE-B"), "{err}");
}

/// Re-sign `role`'s file in hand-over `dir` with `key`, after `edit` changed its `signed`: what
/// a tier holding only its own key can do to its own hand-over.
fn resign(dir: &Path, role: &str, key: &Path, edit: &dyn Fn(&mut serde_json::Value)) {
    let p = dir.join(format!("metadata/{role}.json"));
    let env = world::read_json(&p);
    let mut signed = env["signed"].clone();
    edit(&mut signed);
    let k = ota_repo::keystore::load(key).unwrap();
    std::fs::write(&p, ota_metadata::sign_document(&signed, &[&k]).unwrap()).unwrap();
}

/// Scenario: Supply chain | a sibling tier-2 (absco, with only its own key) delegates a role named like another tier's sub-role (conti's brake-lib under bosch) to itself and signs it at a higher version | refused: a role is reached through one delegation only, and the refused hand-over changes nothing, so bosch's next hand-over still goes through
#[test]
fn a_sibling_tier_cannot_take_over_another_tiers_role() {
    let c = chain();
    let w = &c.w;
    let (absco_key, absco_pub) = party_key(w, "absco", "absco");
    delegate(&w.p("acme"), "abs-t2", &absco_pub, "BRAKE-A", "abs-*").unwrap();
    let absco = init_tier(w, "absco", "abs-t2", &absco_key, "abs-*");
    delegate(&absco, "brake-lib", &absco_pub, "BRAKE-A", "abs-lib-*").unwrap();
    // absco's own "brake-lib", version 5.
    let fake = party(w, "absco").join("fake-lib");
    tier::init_tier(
        &fake,
        tier::TierInit {
            name: "absco".into(),
            role: "brake-lib".into(),
            keys: vec![absco_key.clone()],
            threshold: 1,
            hardware_ids: vec!["BRAKE-A".into()],
            paths: vec!["abs-lib-*".into()],
            expires: None,
            max_image_size: 1 << 20,
        },
    )
    .unwrap();
    let mut last = PathBuf::new();
    for n in 1..=5 {
        last = fake.parent().unwrap().join(format!("fake-{n}"));
        tier::handover(&fake, &last, true, w.now).unwrap();
    }
    supplier::ingest::ingest(&absco, &last, w.now).unwrap();
    let from_absco = hand_over(w, &absco, 1);
    let before = std::fs::read(w.p("acme/ota-repo.json")).unwrap();
    let err = supplier::ingest::ingest(&w.p("acme"), &from_absco, w.now).unwrap_err();
    assert!(err.to_string().contains("brake-lib"), "{err}");
    assert_eq!(std::fs::read(w.p("acme/ota-repo.json")).unwrap(), before);
    // The rightful owners carry on.
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let from_bosch = hand_over(w, &c.bosch_tier, 2);
    supplier::ingest::ingest(&w.p("acme"), &from_bosch, w.now).unwrap();
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
}

/// Scenario: Supply chain | a hand-over's target file is a FIFO, a symlink to one of the tier-1's files (its private key), or its targets directory a symlink | refused at once, naming the file: ingest never blocks holding the working directory's lock, never reads outside the hand-over, and its errors never tell the hash of what it read
#[test]
fn a_hand_over_of_fifos_or_symlinks_is_refused_without_reading_them() {
    let c = chain();
    let w = &c.w;
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let from_bosch = hand_over(w, &c.bosch_tier, 2);
    let target = std::fs::read_dir(from_bosch.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("brake-cal-1.1.bin"))
        .unwrap();
    let saved = std::fs::read(&target).unwrap();
    let ingest_within = |secs: u64| {
        let (dir, from, now) = (w.p("acme"), from_bosch.clone(), w.now);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(supplier::ingest::ingest(&dir, &from, now).map(|_| ()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs))
            .expect("ingest hung on the hand-over")
    };
    // A FIFO.
    std::fs::remove_file(&target).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&target)
        .status()
        .unwrap()
        .success());
    let err = ingest_within(20).unwrap_err().to_string();
    assert!(
        err.contains("FIFO") || err.contains("not a regular file"),
        "{err}"
    );
    // A symlink to the tier-1's key file (its length and hash must not come back).
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(w.p("k.pem"), &target).unwrap();
    let err = ingest_within(20).unwrap_err().to_string();
    let key_sha = world::sha_hex(&std::fs::read(w.p("k.pem")).unwrap());
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!err.contains(&key_sha[..16]), "{err}");
    // Its targets directory a symlink.
    std::fs::remove_file(&target).unwrap();
    std::fs::write(&target, &saved).unwrap();
    let real = from_bosch.join("targets-real");
    std::fs::rename(from_bosch.join("targets"), &real).unwrap();
    std::os::unix::fs::symlink(&real, from_bosch.join("targets")).unwrap();
    let err = ingest_within(20).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    // Put right, it goes through.
    std::fs::remove_file(from_bosch.join("targets")).unwrap();
    std::fs::rename(&real, from_bosch.join("targets")).unwrap();
    ingest_within(60).unwrap();
}

/// Scenario: Supply chain | a tier-2 signs its role to expire in the year 9999, beyond the lifetime its delegation allows | refused at ingest: the delegator's bound on a delegated role's lifetime holds for roles it does not sign
#[test]
fn a_tier_role_living_longer_than_its_delegation_allows_is_refused() {
    let c = chain();
    let w = &c.w;
    add(w, &c.bosch_tier, "brake-cal", "1.1", 2, 0x22);
    let from_bosch = hand_over(w, &c.bosch_tier, 2);
    resign(&from_bosch, "brake-cal", &c.keys[0].1, &|s| {
        s["expires"] = "9999-12-31T00:00:00Z".into();
    });
    let err = supplier::ingest::ingest(&w.p("acme"), &from_bosch, w.now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expires") && err.contains("9999"), "{err}");
}

/// Scenario: Supply chain | a tier-2's signed role is close to expiry and its delegate has not handed over a renewed one | the tier-1's publish warns, naming the role and the command that renews it, before vehicles would refuse it
#[test]
fn a_tier_role_close_to_expiry_is_warned_about_at_publish() {
    let c = chain();
    let w = &c.w;
    let settings = c.bosch_tier.join("ota-repo.json");
    let mut s = world::read_json(&settings);
    s["roles"]["brake-cal"]["expires"] = "20d".into();
    world::write_json(&settings, &s);
    let out = c.bosch_tier.parent().unwrap().join("handover-renewed");
    tier::handover(&c.bosch_tier, &out, true, w.now).unwrap();
    supplier::ingest::ingest(&w.p("acme"), &out, w.now).unwrap();
    let r = supplier::publish(&w.p("acme"), w.now, false).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|x| x.contains("role brake-cal") && x.contains("--renew")),
        "{:?}",
        r.warnings
    );
}
