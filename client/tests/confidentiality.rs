//! Image confidentiality (issue 11) end to end, through nginx over HTTPS: a supplier encrypts
//! an image, the OEM wraps its content key for every receiver but a revoked vehicle, the
//! regulator decrypts it to scan it, and the gateways that may decrypt it install the
//! plaintext while the excluded vehicle and an outsider fail at the content key, before any
//! download. The served trees never hold the plaintext.

mod world;

use ota_client::decrypt::{self, DecryptError};
use ota_client::forward::DirForwarder;
use ota_client::gateway::{summary, EcuOutcome, Gateway};
use ota_client::staging::Staging;
use ota_client::walk::Check;
use ota_crypt::receiver::ReceiverKeys;
use ota_crypt::subtree::{Secret, Tree};
use ota_metadata::documents::Verdict;
use ota_repo::oem::broadcast::Reissue;
use ota_repo::{oem, regulator, supplier};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use world::{served_world, World};

const MARKER: &[u8] = b"CONFIDENTIAL-BRAKE-CALIBRATION-7d3f";
const CHUNK: u32 = 4096;

/// 40 KB of image, the marker all through it (so any plaintext leak contains it).
fn secret_image() -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u32;
    while v.len() < 40_000 {
        v.extend_from_slice(MARKER);
        v.extend_from_slice(&i.to_be_bytes());
        i += 1;
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if contains(&std::fs::read(&p).unwrap(), needle) {
            out.push(p);
        }
    }
    out
}

fn review(w: &World, keys: Option<&Path>) -> Vec<regulator::Outcome> {
    oem::publish(&w.p("oem"), w.now, false).unwrap();
    let opts = regulator::ReviewOpts {
        master: &w.url("oem"),
        master_root: &w.p("oem/repository/1.root.json"),
        scanner: None,
        ca: w.ca.as_deref(),
        supplier_from: Default::default(),
        decryption_keys: keys,
    };
    let out = regulator::review(&w.p("tuv"), opts, w.now).unwrap();
    regulator::publish(&w.p("tuv"), w.now, false).unwrap();
    out
}

/// Encrypt brake-fw `version` (counter `counter`) and publish it; returns the content-key file.
fn add_encrypted(w: &World, version: &str, counter: u64) -> PathBuf {
    let key = w.add_encrypted("brake-fw", version, counter, &secret_image(), CHUNK);
    supplier::publish(&w.p("acme"), w.now, false).unwrap();
    key
}

fn submit(w: &World, version: &str, key: Option<&Path>) -> ota_repo::error::Result<()> {
    oem::review_submit(
        &w.p("oem"),
        oem::Submit {
            supplier: "acme",
            uid: "brake-fw",
            version,
            from: None,
            ca: w.ca.as_deref(),
            content_key: key,
        },
        w.now,
    )
    .map(|_| ())
}

/// The serial of `vin`'s brake ECU (the world's VIN1 has S1; a serial names one ECU in the
/// fleet).
fn brake(vin: &str) -> String {
    if vin == "VIN1" {
        "S1".into()
    } else {
        format!("B-{vin}")
    }
}

fn assign(w: &World, vin: &str, version: &str) {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target: oem::AssignTarget::Vehicle {
                vin: vin.into(),
                serial: Some(brake(vin)),
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

/// Run an update of `vin` (its brake ECU) with `keys` installed as its decryption keys.
fn update(w: &World, vin: &str, state: &str, keys: &Path) -> EcuOutcome {
    let mut t = format!(
        "vin = \"{vin}\"\nmaster_url = \"{}\"\nmaster_root = \"oem/repository/1.root.json\"\nvehicle_secret = \"secrets/{vin}.secret\"\nstate_dir = \"{state}\"\ndecryption_keys = \"{}\"\n",
        w.url("oem"),
        keys.display()
    );
    if let Some(c) = &w.ca {
        t += &format!("ca_bundle = \"{}\"\n", c.display());
    }
    t += &format!("[forward]\nkind = \"dir\"\npath = \"ecus-{state}\"\n[[ecus]]\nserial = \"{}\"\nhardware_id = \"BRAKE-A\"\n", brake(vin));
    let path = w.p(&format!("{state}.toml"));
    std::fs::write(&path, t).unwrap();
    let gw = Gateway::new(ota_client::config::Config::load(&path).unwrap(), w.now).unwrap();
    if !w.p(&format!("{state}/repos/oem/root.json")).exists() {
        gw.init(false).unwrap();
    }
    let mut fw = DirForwarder::new(w.p(&format!("ecus-{state}")));
    let out = gw.run(Some(&mut fw)).unwrap();
    out.into_iter().find(|(s, _)| *s == brake(vin)).unwrap().1
}

/// The gateway with state `state` updated its one ECU, which now holds the plaintext image.
fn assert_installed(w: &World, state: &str, got: &EcuOutcome) {
    let ecus: Vec<_> = std::fs::read_dir(w.p(&format!("ecus-{state}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(ecus.len(), 1, "{ecus:?}");
    assert!(
        matches!(got, EcuOutcome::Updated { .. }),
        "{}",
        summary(got)
    );
    assert_eq!(
        std::fs::read(ecus[0].join("image.bin")).unwrap(),
        secret_image()
    );
}

/// The published ciphertext of brake-fw `version`, and its manifest.
fn ciphertext(w: &World, version: &str) -> (PathBuf, ota_metadata::documents::ImageManifest) {
    let s = supplier::Settings::load(&w.p("acme")).unwrap();
    let r = s.images.iter().find(|i| i.version == version).unwrap();
    let path = w.p(&format!(
        "acme/repository/targets/{}.brake-fw-{version}.bin",
        r.image.sha256
    ));
    (path, supplier::manifest_of("acme", r).unwrap())
}

/// The gateway stopped at the content key: this receiver is excluded from the image.
fn assert_excluded(o: &EcuOutcome) {
    assert_eq!(failed_check(o), Some(Check::ContentKey), "{}", summary(o));
    assert!(summary(o).contains("excluded"), "{}", summary(o));
}

fn failed_check(o: &EcuOutcome) -> Option<Check> {
    match o {
        EcuOutcome::Failed(e) => e.check(),
        _ => None,
    }
}

/// Scenario: Confidentiality | the image is read off the CDN, by an excluded (revoked) vehicle, or with keys the OEM never issued | the served trees hold only ciphertext; the excluded vehicle and the outsider fail at the content key before any download; the entitled vehicle installs the plaintext and the regulator scans it
#[test]
fn an_encrypted_image_reaches_the_entitled_vehicle_and_the_regulator_only() {
    let Some((w, nginx, _ca)) = served_world() else {
        return;
    };
    let oem_dir = w.p("oem");
    // Receivers: VIN1 (the world's), VIN2 (revoked before the image), the regulator.
    oem::broadcast::vehicle_keys(
        &oem_dir,
        "VIN1",
        &w.p("vin1.keys"),
        ota_repo::oem::broadcast::Reissue::No,
    )
    .unwrap();
    oem::vehicle_add(&oem_dir, "VIN2", &["B-VIN2:BRAKE-A".into()], &[]).unwrap();
    w.provision("VIN2");
    oem::broadcast::vehicle_keys(
        &oem_dir,
        "VIN2",
        &w.p("vin2.keys"),
        ota_repo::oem::broadcast::Reissue::No,
    )
    .unwrap();
    oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    oem::broadcast::vehicle_revoke_keys(&oem_dir, "VIN2").unwrap();

    let key = add_encrypted(&w, "3.0", 3);
    // The OEM will not take the image without its key (nor with another image's:
    // `an_encrypted_image_is_submitted_with_its_own_content_key_only`).
    let err = submit(&w, "3.0", None).unwrap_err().to_string();
    assert!(
        err.contains("brake-fw 3.0 is encrypted: pass --content-key"),
        "{err}"
    );
    submit(&w, "3.0", Some(&key)).unwrap();

    // The regulator decrypts before it scans: approved, on the plaintext.
    let outcomes = review(&w, Some(&w.p("tuv.keys")));
    let o = outcomes
        .iter()
        .find(|o| o.request.image.version == "3.0")
        .unwrap();
    assert!(matches!(o.result, Ok(Verdict::Approved)), "{:?}", o.result);

    assign(&w, "VIN1", "3.0");
    assign(&w, "VIN2", "3.0");
    oem::publish(&oem_dir, w.now, false).unwrap();

    // The CDN never sees plaintext: no served file holds the marker.
    for tree in ["acme", "oem", "tuv"] {
        let leaks = files_containing(&w.p(&format!("{tree}/repository")), MARKER);
        assert!(leaks.is_empty(), "plaintext served in {leaks:?}");
    }

    // The entitled vehicle installs the plaintext.
    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_installed(&w, "vin1", &got);
    // Up to date on the next run (the assignment names the ciphertext, the ECU the plaintext).
    let again = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert!(
        matches!(again, EcuOutcome::UpToDate { .. }),
        "{}",
        summary(&again)
    );

    // The excluded vehicle: refused at the content key, and nothing downloaded.
    let before = nginx.access_log().matches("brake-fw-3.0.bin").count();
    let excluded = update(&w, "VIN2", "vin2", &w.p("vin2.keys"));
    assert_excluded(&excluded);
    assert!(!w.p("ecus-vin2/B-VIN2/image.bin").exists());

    // An outsider: keys for VIN1's place in the tree, from a secret the OEM never had.
    let vin1 = ReceiverKeys::parse(&std::fs::read(w.p("vin1.keys")).unwrap()).unwrap();
    let mine = vin1.group("hw:BRAKE-A").unwrap();
    let forged = ReceiverKeys::issue(
        &Secret::generate(),
        &[(
            "hw:BRAKE-A",
            Tree::new(mine.tree.depth()).unwrap(),
            mine.leaf,
        )],
    )
    .unwrap();
    std::fs::write(w.p("outsider.keys"), forged.to_json()).unwrap();
    let outsider = update(&w, "VIN1", "outsider", &w.p("outsider.keys"));
    assert_eq!(
        failed_check(&outsider),
        Some(Check::ContentKey),
        "{}",
        summary(&outsider)
    );
    assert!(!w.p("ecus-outsider/S1/image.bin").exists());
    assert_eq!(
        nginx.access_log().matches("brake-fw-3.0.bin").count(),
        before,
        "an excluded reader downloaded the image"
    );
}

/// Scenario: Confidentiality | the supplier hands the OEM a content key that does not open the image | the regulator rejects the image with an "undecryptable" finding, so no vehicle installs it
#[test]
fn an_image_the_regulator_cannot_decrypt_is_rejected_with_a_finding() {
    let w = World::new();
    let oem_dir = w.p("oem");
    oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    let key = add_encrypted(&w, "3.0", 3);
    // Same image named, another key.
    let mut ck = ota_crypt::content_key::ContentKey::parse(&std::fs::read(&key).unwrap()).unwrap();
    ck.key = ota_crypt::Key::generate();
    std::fs::write(w.p("wrong.key"), ck.to_json()).unwrap();
    submit(&w, "3.0", Some(&w.p("wrong.key"))).unwrap();
    let outcomes = review(&w, Some(&w.p("tuv.keys")));
    let o = outcomes
        .iter()
        .find(|o| o.request.image.version == "3.0")
        .unwrap();
    assert!(matches!(o.result, Ok(Verdict::Rejected)), "{:?}", o.result);
    assert_eq!(o.findings, 1);
    // The signed attestation says why; it is listed again as a veto on the ciphertext's bytes
    // only: the regulator never saw the plaintext, so the hash the supplier claims for it is
    // not vetoed (a supplier could otherwise veto another image by claiming its hash).
    let files = files_containing(&w.p("tuv/repository/targets"), b"\"undecryptable\"");
    let named = |suffix: &str| {
        files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .count()
    };
    assert_eq!(
        named(".attestation.json"),
        1,
        "no attestation with the finding"
    );
    let (cipher, m) = ciphertext(&w, "3.0");
    let cipher_sha = hex::encode(sha2::Sha256::digest(std::fs::read(cipher).unwrap()));
    let plain_sha = hex::encode(m.plaintext().unwrap().1);
    assert_eq!(named(&format!("{cipher_sha}.veto.json")), 1, "{files:?}");
    assert_eq!(named(&format!("{plain_sha}.veto.json")), 0, "{files:?}");
}

/// Scenario: Confidentiality | one chunk of an encrypted image is changed | decryption stops at that chunk and leaves no plaintext behind
#[test]
fn a_tampered_chunk_is_refused_at_that_chunk() {
    let w = World::new();
    let key_file = add_encrypted(&w, "3.0", 3);
    let ck = ota_crypt::content_key::ContentKey::parse(&std::fs::read(key_file).unwrap()).unwrap();
    let (cipher, m) = ciphertext(&w, "3.0");
    let mut bytes = std::fs::read(&cipher).unwrap();
    // The header, two whole chunks (data and tag), then a byte of chunk 2.
    let at = ota_crypt::stream::HEADER_LEN + 2 * (CHUNK as usize + ota_crypt::stream::TAG_LEN) + 10;
    bytes[at] ^= 1;
    std::fs::write(w.p("tampered.enc"), &bytes).unwrap();
    let out = w.p("tampered.plain");
    let err = decrypt::decrypt_file(&ck.key, &w.p("tampered.enc"), &out, &m).unwrap_err();
    assert!(
        matches!(
            err,
            DecryptError::Decrypt(ota_crypt::plain::Error::Stream(
                ota_crypt::stream::Error::Chunk { index: 2 }
            ))
        ),
        "{err:?}"
    );
    assert!(!out.exists(), "a partial plaintext was left behind");
    // The untouched ciphertext decrypts to the image.
    decrypt::decrypt_file(&ck.key, &cipher, &out, &m).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), secret_image());
}

/// What a gateway stopped (SIGTERM) in the middle of decrypting brake-fw `version` leaves in
/// `state`'s staging: the plaintext of the first `held` bytes, and the stream's header beside
/// it. No ciphertext: the gateway never stages it. Returns the ciphertext.
fn stopped_decryption(w: &World, version: &str, state: &str, held: usize) -> Vec<u8> {
    let cipher = std::fs::read(ciphertext(w, version).0).unwrap();
    let plain = partial_plaintext(w, state, &cipher);
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, &secret_image()[..held]).unwrap();
    let mut header = plain.clone().into_os_string();
    header.push(".header");
    std::fs::write(&header, &cipher[..ota_crypt::stream::HEADER_LEN]).unwrap();
    touch_now(plain.as_ref());
    touch_now(header.as_ref());
    cipher
}

/// Stamp `p` "just now" by the clock the gateway reads (the file system stamps the kernel's
/// time, which a test run at a faked date does not share).
fn touch_now(p: &Path) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
}

/// Where `state`'s gateway decrypts the target `cipher` while it downloads.
fn partial_plaintext(w: &World, state: &str, cipher: &[u8]) -> PathBuf {
    let target = ota_metadata::roles::TargetFile {
        length: cipher.len() as u64,
        hashes: [(
            "sha256".to_string(),
            hex::encode(sha2::Sha256::digest(cipher)),
        )]
        .into(),
        custom: None,
    };
    let plaintext_sha = hex::encode(sha2::Sha256::digest(secret_image()));
    Staging::new(&w.p(state), 0).partial_plaintext(&target, &plaintext_sha)
}

fn publish_for_vin1(w: &World, version: &str, counter: u64) {
    let oem_dir = w.p("oem");
    if !w.p("vin1.keys").exists() {
        oem::broadcast::vehicle_keys(
            &oem_dir,
            "VIN1",
            &w.p("vin1.keys"),
            ota_repo::oem::broadcast::Reissue::No,
        )
        .unwrap();
        oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    }
    let key = add_encrypted(w, version, counter);
    submit(w, version, Some(&key)).unwrap();
    review(w, Some(&w.p("tuv.keys")));
    assign(w, "VIN1", version);
    oem::publish(&oem_dir, w.now, false).unwrap();
}

/// Scenario: Confidentiality | the download of an encrypted image breaks off half-way | the next run resumes it with a Range request from the last whole chunk it decrypted, having kept only plaintext, and the decrypted image is the one the supplier signed
#[test]
fn a_broken_download_of_an_encrypted_image_resumes() {
    let Some((w, nginx, _ca)) = served_world() else {
        return;
    };
    publish_for_vin1(&w, "3.0", 3);
    // Two whole chunks and part of a third decrypted when the run stopped.
    let held = 2 * CHUNK as usize + 100;
    let cipher = stopped_decryption(&w, "3.0", "vin1", held);

    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_installed(&w, "vin1", &got);
    // Resumed after the header and the two whole chunks: the rest of the ciphertext, no more.
    let from = ota_crypt::stream::HEADER_LEN + 2 * (CHUNK as usize + ota_crypt::stream::TAG_LEN);
    let rest = format!(" 206 {} ", cipher.len() - from);
    let log = nginx.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("brake-fw-3.0.bin") && l.contains(&rest)),
        "no Range request for the rest of the image after two chunks ({rest:?}):\n{log}"
    );
    let incoming = Staging::new(&w.p("vin1"), 0).incoming();
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in staging: {left:?}");
}

/// Scenario: Confidentiality | the plaintext a stopped run left in staging is changed before the next run resumes | the ciphertext sealed again from it fails the target's hash; nothing is forwarded, the staged files are removed, and the run after downloads the image whole and installs it
#[test]
fn a_changed_partial_plaintext_fails_the_targets_hash() {
    let Some((w, _nginx, _ca)) = served_world() else {
        return;
    };
    publish_for_vin1(&w, "3.0", 3);
    let cipher = stopped_decryption(&w, "3.0", "vin1", 3 * CHUNK as usize);
    let plain = partial_plaintext(&w, "vin1", &cipher);
    let mut bytes = std::fs::read(&plain).unwrap();
    bytes[CHUNK as usize + 7] ^= 0x20;
    std::fs::write(&plain, bytes).unwrap();
    touch_now(&plain);

    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_eq!(failed_check(&got), Some(Check::Image), "{}", summary(&got));
    assert!(
        !w.p("ecus-vin1/S1/image.bin").exists(),
        "an image was forwarded"
    );
    assert!(!plain.exists(), "the changed plaintext was kept");

    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_installed(&w, "vin1", &got);
}

/// Scenario: Confidentiality | a stopped run left part of one encryption of an image, and the vehicle is then assigned another encryption of the same plaintext (a new content key) | the new one is downloaded whole and installed; the partial of the other is never resumed into it
#[test]
fn a_partial_of_another_encryption_is_not_resumed() {
    let Some((w, nginx, _ca)) = served_world() else {
        return;
    };
    publish_for_vin1(&w, "3.0", 3);
    stopped_decryption(&w, "3.0", "vin1", 3 * CHUNK as usize);
    publish_for_vin1(&w, "3.1", 4);
    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_installed(&w, "vin1", &got);
    let log = nginx.access_log();
    assert!(
        !log.lines()
            .any(|l| l.contains("brake-fw-3.1.bin") && l.contains(" 206 ")),
        "3.1 was resumed from a partial of 3.0:\n{log}"
    );
}

/// Every wrap shard the OEM has published for the image of plaintext SHA-256 `sha`.
fn published_shards(w: &World, sha: &[u8; 32]) -> Vec<ota_crypt::wrap_set::Shard> {
    std::fs::read_dir(w.p("oem/repository/wraps"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .map(|b| ota_crypt::wrap_set::Shard::parse(&b).unwrap())
        .filter(|s| &s.image_sha256 == sha)
        .collect()
}

/// Whether any key of the file at `keys` opens any of `shards`: what someone holding that
/// file and every shard ever served can decrypt.
fn opens_any(keys: &Path, shards: &[ota_crypt::wrap_set::Shard], sha: &[u8; 32]) -> bool {
    let keys = ReceiverKeys::parse(&std::fs::read(keys).unwrap()).unwrap();
    keys.groups.values().any(|path| {
        shards.iter().any(|s| {
            let wraps: Vec<&[u8]> = s.wraps.iter().map(|w| &w[..]).collect();
            path.open(s.depth, &wraps, sha).is_ok()
        })
    })
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Scenario: Confidentiality | a car with only a head unit has its key file extracted, and the attacker collects every wrap shard the OEM ever served for a brake-only image | nothing opens: the image is wrapped for the group of its hardware id (and the regulators), and the head unit's keys are of its own hardware's group
#[test]
fn a_vehicle_with_no_ecu_of_the_images_hardware_id_cannot_decrypt_it() {
    let w = World::new();
    let oem_dir = w.p("oem");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN1", &w.p("vin1.keys"), Reissue::No).unwrap();
    oem::vehicle_add(&oem_dir, "VIN3", &["H1:HU-A".into()], &[]).unwrap();
    w.provision("VIN3");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN3", &w.p("vin3.keys"), Reissue::No).unwrap();
    oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    let key = add_encrypted(&w, "3.0", 3);
    submit(&w, "3.0", Some(&key)).unwrap();
    assign(&w, "VIN1", "3.0");
    oem::publish(&oem_dir, w.now, false).unwrap();
    // A head unit added to the fleet after the image: no better off.
    oem::vehicle_add(&oem_dir, "VIN4", &["H2:HU-A".into()], &[]).unwrap();
    w.provision("VIN4");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN4", &w.p("vin4.keys"), Reissue::No).unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();

    let sha: [u8; 32] = sha2::Sha256::digest(secret_image()).into();
    let shards = published_shards(&w, &sha);
    assert!(
        shards.len() >= 2,
        "the brake group's and the regulators' shards"
    );
    assert!(
        !opens_any(&w.p("vin3.keys"), &shards, &sha),
        "a head unit opened a brake image"
    );
    assert!(
        !opens_any(&w.p("vin4.keys"), &shards, &sha),
        "a later head unit opened it"
    );
    // The brake-equipped vehicle and the regulator do.
    assert!(opens_any(&w.p("vin1.keys"), &shards, &sha));
    assert!(opens_any(&w.p("tuv.keys"), &shards, &sha));
    // The regulator's keys are not a vehicle's: they open the regulators' wraps only.
    let tuv = ReceiverKeys::parse(&std::fs::read(w.p("tuv.keys")).unwrap()).unwrap();
    assert_eq!(tuv.groups.keys().collect::<Vec<_>>(), ["regulators"]);
}

/// Scenario: Confidentiality | a vehicle is revoked after the image was submitted for review and assigned to it | from the next publish its gateway fails at the content key ("excluded") and downloads nothing, while the other vehicle installs: wraps are made at every publish
#[test]
fn a_vehicle_revoked_after_submit_cannot_decrypt_after_the_next_publish() {
    let w = World::new();
    let oem_dir = w.p("oem");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN1", &w.p("vin1.keys"), Reissue::No).unwrap();
    oem::vehicle_add(&oem_dir, "VIN2", &["B-VIN2:BRAKE-A".into()], &[]).unwrap();
    w.provision("VIN2");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN2", &w.p("vin2.keys"), Reissue::No).unwrap();
    oem::broadcast::regulator_keys(&oem_dir, "tuv", &w.p("tuv.keys")).unwrap();
    let key = add_encrypted(&w, "3.0", 3);
    submit(&w, "3.0", Some(&key)).unwrap();
    review(&w, Some(&w.p("tuv.keys")));
    // The regulator decrypted it to scan it, in a directory only its user enters.
    assert_eq!(mode(&w.p("tuv/cache/staging")), 0o700);
    assign(&w, "VIN1", "3.0");
    assign(&w, "VIN2", "3.0");
    oem::publish(&oem_dir, w.now, false).unwrap();
    let sha: [u8; 32] = sha2::Sha256::digest(secret_image()).into();
    let before = published_shards(&w, &sha);
    assert!(opens_any(&w.p("vin2.keys"), &before, &sha));
    // Wrapped again with nothing changed: the same shards, no entry rewritten.
    let again = oem::publish(&oem_dir, w.now, false).unwrap();
    assert_eq!(
        again.vehicles_written, 0,
        "unchanged receivers rewrote entries"
    );
    assert_eq!(published_shards(&w, &sha).len(), before.len());

    // Stolen: revoked, then the next publish rewrites the entries that name the wraps.
    oem::broadcast::vehicle_revoke_keys(&oem_dir, "VIN2").unwrap();
    let after = oem::publish(&oem_dir, w.now, false).unwrap();
    assert_eq!(after.vehicles_written, 2);
    let excluded = update(&w, "VIN2", "vin2", &w.p("vin2.keys"));
    assert_excluded(&excluded);
    assert!(!w.p("ecus-vin2/B-VIN2/image.bin").exists());
    // The other vehicle installs; the regulator still decrypts (its wraps are made again too).
    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert_installed(&w, "vin1", &got);
    // What the revoked keys keep: the shards of the publish before (a CDN copy someone kept)
    // still open to them. The shards served from now on do not.
    let now_served: Vec<_> = published_shards(&w, &sha)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert!(!now_served.is_empty());
    assert!(!opens_any(&w.p("vin2.keys"), &now_served, &sha));
}

/// Scenario: Confidentiality | a vehicle's gateway is replaced (the old unit lost or stolen) | the new unit gets fresh keys that install the image; the old unit's keys fail at the content key ("excluded") from the next publish
#[test]
fn a_replaced_gateways_new_keys_work_and_the_old_units_do_not() {
    let w = World::new();
    let oem_dir = w.p("oem");
    publish_for_vin1(&w, "3.0", 3);
    let new = w.p("new-unit.keys");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN1", &new, Reissue::Replace).unwrap();
    assert_ne!(
        std::fs::read(&new).unwrap(),
        std::fs::read(w.p("vin1.keys")).unwrap()
    );
    oem::publish(&oem_dir, w.now, false).unwrap();

    let old = update(&w, "VIN1", "old-unit", &w.p("vin1.keys"));
    assert_excluded(&old);
    assert!(!w.p("ecus-old-unit/S1/image.bin").exists());
    let got = update(&w, "VIN1", "new-unit", &new);
    assert_installed(&w, "new-unit", &got);
    // Its staging, which held the plaintext, is its user's alone.
    let staging = Staging::new(&w.p("new-unit"), 0);
    assert_eq!(mode(staging.dir()), 0o700);
    assert_eq!(mode(&staging.incoming()), 0o700);
}

/// Scenario: Confidentiality | a vehicle's brake ECUs are replaced by a part of another hardware id and removed, and its key file is kept | its brake keys open nothing wrapped from the next publish on
#[test]
fn keys_for_hardware_a_vehicle_no_longer_has_open_nothing_new() {
    let w = World::new();
    let oem_dir = w.p("oem");
    publish_for_vin1(&w, "3.0", 3);
    let sha: [u8; 32] = sha2::Sha256::digest(secret_image()).into();
    let before = published_shards(&w, &sha);
    assert!(opens_any(&w.p("vin1.keys"), &before, &sha));
    // VIN1 has two brake ECUs: one replaced by a head unit keeps it entitled...
    oem::ecu_replace(&oem_dir, "VIN1", "S1", "S9:HU-A").unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();
    assert_eq!(published_shards(&w, &sha).len(), before.len());
    // ...the other removed does not.
    oem::ecu_remove(&oem_dir, "VIN1", "S2").unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();
    let now_served: Vec<_> = published_shards(&w, &sha)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert!(!now_served.is_empty());
    assert!(!opens_any(&w.p("vin1.keys"), &now_served, &sha));
}

/// Scenario: Confidentiality | the CDN rewrites the encrypted stream's header to announce 16 MiB chunks | the gateway refuses the header against the signed manifest's chunk size before it buffers any chunk, and installs nothing
#[test]
fn a_served_header_with_another_chunk_size_is_refused() {
    let w = World::new();
    publish_for_vin1(&w, "3.0", 3);
    let (cipher, _) = ciphertext(&w, "3.0");
    let mut bytes = std::fs::read(&cipher).unwrap();
    bytes[8..12].copy_from_slice(&(16u32 << 20).to_be_bytes());
    std::fs::write(&cipher, &bytes).unwrap();
    let got = update(&w, "VIN1", "vin1", &w.p("vin1.keys"));
    assert!(
        summary(&got).contains("chunks of 16777216 bytes"),
        "{}",
        summary(&got)
    );
    assert!(!w.p("ecus-vin1/S1/image.bin").exists());
}

/// Scenario: Confidentiality | another user of the gateway's machine reads the plaintext being decrypted into staging | refused by the file system: the partial plaintext and its header are created mode 0600, whatever the umask
#[test]
fn partial_plaintexts_are_readable_by_their_owner_only() {
    use ota_client::tuf::StreamTap as _;
    let w = World::new();
    let key_file = add_encrypted(&w, "3.0", 3);
    let ck = ota_crypt::content_key::ContentKey::parse(&std::fs::read(key_file).unwrap()).unwrap();
    let (cipher, m) = ciphertext(&w, "3.0");
    let bytes = std::fs::read(&cipher).unwrap();
    let path = w.p("partial.plain");
    let mut tap = decrypt::DecryptingTap::new(&ck.key, &path, &m).unwrap();
    tap.restart().unwrap();
    // The header and two chunks decrypted: the file the plaintext goes to, and the header
    // kept beside it for a resume.
    let n = ota_crypt::stream::HEADER_LEN + 2 * (CHUNK as usize + ota_crypt::stream::TAG_LEN);
    tap.write(&bytes[..n]).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&w.p("partial.plain.header")), 0o600);
    drop(tap);

    // A partial left readable by others (an older version, or someone's chmod) is narrowed
    // when the next run resumes from it.
    std::fs::write(&path, &secret_image()[..2 * CHUNK as usize]).unwrap();
    std::fs::write(
        w.p("partial.plain.header"),
        &bytes[..ota_crypt::stream::HEADER_LEN],
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut tap = decrypt::DecryptingTap::new(&ck.key, &path, &m).unwrap();
    let held = tap.resume(&mut |_| {}).unwrap();
    assert!(held > 0, "nothing resumed");
    assert_eq!(mode(&path), 0o600);
}

/// Copy `from` (a file or a directory tree) to `to`, replacing what is there: an operator's
/// backup, or its restore.
fn copy_tree(from: &Path, to: &Path) {
    if to.is_dir() {
        std::fs::remove_dir_all(to).unwrap();
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// Scenario: Confidentiality | the OEM's broadcast state is restored from a backup taken before a vehicle's revocation was published | the revocation holds: the publish takes the exclusions and issued leaves back from the record it sealed into the last published review role, and the stolen car's gateway stays excluded
#[test]
fn a_restored_broadcast_state_cannot_undo_a_published_revocation() {
    let w = World::new();
    let oem_dir = w.p("oem");
    publish_for_vin1(&w, "3.0", 3);
    oem::vehicle_add(&oem_dir, "VIN2", &["B-VIN2:BRAKE-A".into()], &[]).unwrap();
    w.provision("VIN2");
    oem::broadcast::vehicle_keys(&oem_dir, "VIN2", &w.p("vin2.keys"), Reissue::No).unwrap();
    assign(&w, "VIN2", "3.0");
    oem::publish(&oem_dir, w.now, false).unwrap();
    copy_tree(&oem_dir.join("broadcast.json"), &w.p("backup.json"));
    oem::broadcast::vehicle_revoke_keys(&oem_dir, "VIN2").unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();

    copy_tree(&w.p("backup.json"), &oem_dir.join("broadcast.json"));
    oem::publish(&oem_dir, w.now, false).unwrap();
    let got = update(&w, "VIN2", "vin2", &w.p("vin2.keys"));
    assert_excluded(&got);
}

/// Scenario: Confidentiality | the OEM's broadcast state is restored from a backup taken before a vehicle was issued keys, and the next vehicle is issued keys | never the same leaf twice: the next vehicle gets a leaf after every one the last publish recorded, so a stolen car's keys open nothing of the new one's
#[test]
fn a_restored_broadcast_state_never_issues_a_leaf_twice() {
    let w = World::new();
    let oem_dir = w.p("oem");
    publish_for_vin1(&w, "3.0", 3);
    copy_tree(&oem_dir.join("broadcast.json"), &w.p("backup.json"));
    oem::vehicle_add(&oem_dir, "VIN4", &["B-VIN4:BRAKE-A".into()], &[]).unwrap();
    oem::broadcast::vehicle_keys(&oem_dir, "VIN4", &w.p("vin4.keys"), Reissue::No).unwrap();
    oem::broadcast::vehicle_revoke_keys(&oem_dir, "VIN4").unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();

    copy_tree(&w.p("backup.json"), &oem_dir.join("broadcast.json"));
    oem::vehicle_add(&oem_dir, "VIN5", &["B-VIN5:BRAKE-A".into()], &[]).unwrap();
    oem::broadcast::vehicle_keys(&oem_dir, "VIN5", &w.p("vin5.keys"), Reissue::No).unwrap();
    let leaf = |p: &str| {
        ReceiverKeys::parse(&std::fs::read(w.p(p)).unwrap())
            .unwrap()
            .groups["hw:BRAKE-A"]
            .leaf
    };
    assert_ne!(
        leaf("vin4.keys"),
        leaf("vin5.keys"),
        "a leaf was issued twice"
    );
}

/// Scenario: Confidentiality | the OEM's inventory is restored from a backup taken before a gateway was replaced (it names the old unit's leaf only), then the vehicle is stolen and revoked | the new unit is excluded too: revocation excludes every leaf the vehicle was ever issued, kept apart from the inventory
#[test]
fn a_restored_inventory_cannot_hide_a_replaced_gateways_leaf() {
    let w = World::new();
    let oem_dir = w.p("oem");
    publish_for_vin1(&w, "3.0", 3);
    copy_tree(&oem_dir.join("inventory"), &w.p("inventory-backup"));
    oem::broadcast::vehicle_keys(&oem_dir, "VIN1", &w.p("new-unit.keys"), Reissue::Replace)
        .unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();

    copy_tree(&w.p("inventory-backup"), &oem_dir.join("inventory"));
    oem::broadcast::vehicle_revoke_keys(&oem_dir, "VIN1").unwrap();
    oem::publish(&oem_dir, w.now, false).unwrap();
    let got = update(&w, "VIN1", "new-unit", &w.p("new-unit.keys"));
    assert_excluded(&got);
}

/// Scenario: Confidentiality | the OEM is handed no content key, or another image's, for an encrypted image | refused at submit, naming the image whose key it is; only the image's own key is kept
#[test]
fn an_encrypted_image_is_submitted_with_its_own_content_key_only() {
    let w = World::new();
    let key30 = add_encrypted(&w, "3.0", 3);
    let key31 = add_encrypted(&w, "3.1", 4);
    let err = submit(&w, "3.0", None).unwrap_err().to_string();
    assert!(err.contains("--content-key"), "{err}");
    let err = submit(&w, "3.0", Some(&key31)).unwrap_err().to_string();
    assert!(err.contains("not of brake-fw 3.0"), "{err}");
    assert!(
        !w.p("oem/keys/content").exists()
            || std::fs::read_dir(w.p("oem/keys/content")).unwrap().count() == 0
    );
    submit(&w, "3.0", Some(&key30)).unwrap();
    assert_eq!(
        std::fs::read_dir(w.p("oem/keys/content")).unwrap().count(),
        1
    );
}
