//! Issue 3's "done when": the three publishers end to end, through the real `ota-repo` binary,
//! each reading the others over HTTP from a real nginx on 127.0.0.1, with a real virus scanner
//! (ClamAV's `clamscan` with a signature database written here, so no network is needed).
//!
//! The supplier publishes a clean image, a backdoored one and a tier-2 image; the OEM pins the
//! supplier by its URL, submits the images for review, authorizes the regulator and publishes;
//! the regulator reviews over HTTP with the scanner (the backdoored image is rejected) and
//! publishes; the OEM assigns the clean images to a vehicle and publishes; every tree verifies
//! from its pinned first root; removing the supplier withdraws its assignments. On the way,
//! the bad inputs each get a clear error naming the object and change nothing.
//!
//! Needs `nginx` and `clamscan` (Debian: nginx, clamav). Without them the test is skipped with
//! a notice, unless `CI` is set, where it fails (`.ci/run` installs them).

use ota_testkit as support;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use support::nginx::Nginx;

const VIN: &str = "WVWZZZ1JZXW000001";
/// The backdoor marker the ClamAV signature matches: a hard-coded service credential.
const BACKDOOR: &[u8] = b"\x00svc_maint:pw=0TA-b4ckd00r-7f3a9c\x00";
const SIGNATURE: &str = "OTA.Test.HardcodedCredential";

/// The `ota-repo` binary in a temporary working directory.
type World = ota_testkit::cli::CliEnv;

/// This test's steps over the shared environment.
trait Steps {
    fn refused(&self, args: &[&str], dir: &str, skip_cache: bool, words: &[&str]) -> String;
    fn key(&self, name: &str) -> String;
    fn pin(&self, tree: &str) -> String;
    fn tree_state(&self, dir: &str, skip_cache: bool) -> BTreeMap<PathBuf, String>;
    fn stored_target(&self, tree: &str, name: &str) -> PathBuf;
    fn attestation(&self, sha: &str) -> Option<serde_json::Value>;
    fn attestation_name(&self, sha: &str) -> Option<String>;
    fn newest_signed(&self, dir: &str, suffix: &str) -> (u64, serde_json::Value);
    fn newest_assignments(&self, vin: &str) -> (u64, serde_json::Value);
}

impl Steps for World {
    /// A command that must fail with an error mentioning each of `words`, changing nothing in
    /// `dir` (the `cache/` of fetched metadata excepted when `skip_cache`).
    fn refused(&self, args: &[&str], dir: &str, skip_cache: bool, words: &[&str]) -> String {
        let before = self.tree_state(dir, skip_cache);
        let err = self.fail(args);
        for w in words {
            assert!(
                err.to_lowercase().contains(&w.to_lowercase()),
                "{args:?}: the error does not mention {w:?}: {err}"
            );
        }
        assert_eq!(
            before,
            self.tree_state(dir, skip_cache),
            "{args:?} failed but changed {dir}"
        );
        err
    }
    fn key(&self, name: &str) -> String {
        self.ok(&["key", "generate", "--bits", "2048", "--out", name]);
        name.to_string()
    }
    /// Copy a published first root aside: what each party pins.
    fn pin(&self, tree: &str) -> String {
        let pin = format!("pins/{tree}.1.root.json");
        std::fs::create_dir_all(self.path("pins")).unwrap();
        std::fs::copy(
            self.path(&format!("{tree}/repository/1.root.json")),
            self.path(&pin),
        )
        .unwrap();
        pin
    }
    /// Every file under `dir` with its SHA-256 (without `cache/` when `skip_cache`).
    fn tree_state(&self, dir: &str, skip_cache: bool) -> BTreeMap<PathBuf, String> {
        self.fingerprint(dir, if skip_cache { &["cache"] } else { &[] })
    }
    /// The stored file of target `name` in `tree`'s repository.
    fn stored_target(&self, tree: &str, name: &str) -> PathBuf {
        let dir = self.path(&format!("{tree}/repository/targets"));
        let suffix = format!(".{name}");
        let found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(&suffix))
            .collect();
        assert!(found.len() <= 1, "{name} stored twice: {found:?}");
        found.into_iter().next().unwrap_or_default()
    }
    /// The signed body of the regulator's attestation of the image with hash `sha`, if any.
    /// The target name of the attestation of the release whose image hashes to `sha`
    /// (attestations are named by release: the hash of the manifest's signed body).
    fn attestation_name(&self, sha: &str) -> Option<String> {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path("reg/ota-repo.json")).unwrap())
                .unwrap();
        s["attestations"]
            .as_object()?
            .iter()
            .find(|(_, r)| r["release"]["hashes"]["sha256"] == sha)
            .map(|(id, _)| format!("{id}.attestation.json"))
    }
    fn attestation(&self, sha: &str) -> Option<serde_json::Value> {
        let p = self.stored_target("reg", &self.attestation_name(sha)?);
        if p.as_os_str().is_empty() {
            return None;
        }
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        assert!(
            !doc["signatures"].as_array().unwrap().is_empty(),
            "unsigned attestation"
        );
        Some(doc["signed"].clone())
    }
    /// The version and signed body of the newest `N.SUFFIX` in directory `dir`.
    fn newest_signed(&self, dir: &str, suffix: &str) -> (u64, serde_json::Value) {
        let dir = self.path(dir);
        let newest = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(&format!(".{suffix}"))?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or_else(|| panic!("no N.{suffix} in {}", dir.display()));
        let bytes = std::fs::read(dir.join(format!("{newest}.{suffix}"))).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        (newest, doc["signed"].clone())
    }
    /// The assignments of VIN the OEM's served tree lists now, with their version.
    fn newest_assignments(&self, vin: &str) -> (u64, serde_json::Value) {
        let (entry, doc) = ota_repo::oem::fleet::published_assignments(&self.path("oem"), vin)
            .unwrap()
            .unwrap_or_else(|| panic!("no assignments of {vin} published"));
        (entry.version, serde_json::to_value(doc).unwrap())
    }
}

/// Deterministic, marker-free firmware bytes.
fn firmware(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 32) as u8
                ^ seed
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A command line split on whitespace (no argument here contains any).
fn cmd(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Re-sign, with the supplier's own key, an image manifest (and its compact form) that claims
/// the hash of `claimed` for the image `uid`-`version` of supplier `tree`, store both, and point
/// the supplier's settings at them: the next publish lists an image whose hash differs from its
/// (correctly signed) manifest. The CLI cannot produce this; a buggy or compromised build
/// pipeline could.
fn forge_manifest(w: &World, tree: &str, key: &str, uid: &str, version: &str, claimed: &[u8]) {
    use ota_metadata::documents::compact::sign_compact;
    use ota_metadata::documents::{ImageManifest, ImageTargets};
    use ota_metadata::{sign_document, SigningKey};

    let settings_path = w.path(&format!("{tree}/ota-repo.json"));
    let mut settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings_path).unwrap()).unwrap();
    let record = settings["images"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["uid"] == uid && r["version"] == version)
        .expect("image record");
    let hardware_ids: Vec<String> = serde_json::from_value(record["hardware_ids"].clone()).unwrap();
    let m = ImageManifest::new(
        tree,
        uid,
        version,
        record["release_counter"].as_u64().unwrap(),
        hardware_ids,
        claimed.len() as u64,
        Sha256::digest(claimed).into(),
    )
    .unwrap();
    let k = SigningKey::from_pem(&std::fs::read_to_string(w.path(key)).unwrap()).unwrap();
    let json = sign_document(&m, &[&k]).unwrap();
    let compact = sign_compact(&m.compact_body().unwrap(), &[&k]).unwrap();
    let names = ImageTargets::new(uid, version);
    let repo = w.path(&format!("{tree}/repository"));
    let mi = ota_repo::supplier::store_target(&repo, &names.manifest, &json).unwrap();
    let mc = ota_repo::supplier::store_target(&repo, &names.compact, &compact).unwrap();
    record["manifest"] = serde_json::to_value(mi).unwrap();
    record["compact"] = serde_json::to_value(mc).unwrap();
    std::fs::write(
        &settings_path,
        serde_json::to_vec_pretty(&settings).unwrap(),
    )
    .unwrap();
}

#[test]
fn supplier_oem_and_regulator_end_to_end_over_http() {
    let started = Instant::now();
    let Some(nginx_bin) = support::require_program("nginx", "nginx") else {
        return;
    };
    let Some(clamscan) = support::require_program("clamscan", "clamav") else {
        return;
    };
    let w = World::new(env!("CARGO_BIN_EXE_ota-repo"));
    // nginx reads files at request time: the trees may appear after it starts.
    let trees = ["acme", "bolt", "oem", "reg"].map(|t| (t, w.path(&format!("{t}/repository"))));
    let served: Vec<(&str, &Path)> = trees.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let http = Nginx::start(&nginx_bin, &served);
    let [acme_url, bolt_url, oem_url, reg_url] =
        ["acme", "bolt", "oem", "reg"].map(|t| http.url(t));
    eprintln!("nginx up after {:?}", started.elapsed());

    // The regulator's scanner: ClamAV with a body signature for the backdoor marker.
    w.write(
        "rules.ndb",
        format!("{SIGNATURE}:0:*:{}\n", hex::encode(BACKDOOR)).as_bytes(),
    );
    let scanner = format!(
        "{} --no-summary -d '{}' {{}}",
        clamscan.display(),
        w.path("rules.ndb").display()
    );

    // ---- Supplier: a clean image, a backdoored one, and a tier-2 image.
    let acme_key = w.key("acme.pem");
    let tier2_key = w.key("tier2.pem");
    w.ok(&cmd(&format!(
        "supplier init acme --name acme --key {acme_key}"
    )));
    let acme_pin = w.pin("acme");
    let clean = firmware(1, 48_000);
    let mut backdoored = firmware(2, 48_000);
    backdoored.splice(20_000..20_000 + BACKDOOR.len(), BACKDOOR.iter().copied());
    let abs = firmware(3, 30_000);
    w.write("brake-1.0.0.bin", &clean);
    w.write("brake-1.1.0.bin", &backdoored);
    w.write("abs-2.0.0.bin", &abs);
    let add = "supplier add-image acme --file";
    w.ok(&cmd(&format!(
        "{add} brake-1.0.0.bin --uid brake-fw --version 1.0.0 --release-counter 1 --hardware-id BRAKE-A"
    )));
    w.ok(&cmd(&format!(
        "{add} brake-1.1.0.bin --uid brake-fw --version 1.1.0 --release-counter 2 --hardware-id BRAKE-A"
    )));
    w.ok(&cmd(&format!(
        "supplier delegate acme --name tier2 --key {tier2_key} --sign-here --hardware-id ABS-1"
    )));
    w.ok(&cmd(&format!(
        "{add} abs-2.0.0.bin --uid abs-fw --version 2.0.0 --release-counter 1 --hardware-id ABS-1 --role tier2"
    )));
    w.ok(&cmd("supplier publish acme"));

    // ---- OEM: a supplier root that does not verify is refused, naming it.
    let oem_key = w.key("oem.pem");
    let oem_offline = w.key("oem-offline.pem");
    w.ok(&cmd(&format!(
        "oem init oem --root-key {oem_offline} --targets-key {oem_offline} --key {oem_key}"
    )));
    let oem_pin = w.pin("oem");
    let mut bad_root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path(&acme_pin)).unwrap()).unwrap();
    let expires = bad_root["signed"]["expires"].as_str().unwrap().to_string();
    let digit = expires.as_bytes()[3] - b'0';
    bad_root["signed"]["expires"] =
        format!("{}{}{}", &expires[..3], (digit + 1) % 10, &expires[4..]).into();
    w.write(
        "acme-bad-root.json",
        &serde_json::to_vec_pretty(&bad_root).unwrap(),
    );
    let err = w.refused(
        &cmd(&format!(
            "oem supplier add oem --name acme --root acme-bad-root.json --url {acme_url} --hardware-id BRAKE-*"
        )),
        "oem",
        false,
        &["supplier acme", "acme-bad-root.json", "signature"],
    );
    eprintln!("bad supplier root: {err}");

    // ---- OEM: pin the supplier by its nginx URL; submit the images for review.
    w.ok(&cmd(&format!(
        "oem supplier add oem --name acme --root {acme_pin} --url {acme_url} --hardware-id BRAKE-* --hardware-id ABS-*"
    )));
    let err = w.refused(
        &cmd("oem review submit oem --supplier nobody --uid brake-fw --version 1.0.0"),
        "oem",
        false,
        &["unknown supplier \"nobody\""],
    );
    eprintln!("unknown supplier: {err}");
    for (uid, version) in [
        ("brake-fw", "1.0.0"),
        ("brake-fw", "1.1.0"),
        ("abs-fw", "2.0.0"),
    ] {
        let out = w.ok(&cmd(&format!(
            "oem review submit oem --supplier acme --uid {uid} --version {version}"
        )));
        assert!(
            out.contains(&format!("submitted {uid} {version} of acme")),
            "{out}"
        );
    }

    // ---- Regulator, authorized by the OEM.
    let reg_key = w.key("reg.pem");
    w.ok(&cmd(&format!(
        "regulator init reg --name tuv --key {reg_key}"
    )));
    let reg_pin = w.pin("reg");
    w.ok(&cmd(&format!(
        "oem regulator add oem --name tuv --root {reg_pin} --url {reg_url}"
    )));
    w.ok(&cmd("oem publish oem"));

    // ---- The regulator reviews over HTTP with the real scanner.
    let t = Instant::now();
    let review_line = format!("regulator review reg --master {oem_url} --master-root {oem_pin}");
    let mut review = cmd(&review_line);
    review.extend(["--scanner", &scanner]);
    let out = w.ok(&review);
    eprintln!("regulator review ({:?}):\n{out}", t.elapsed());
    assert!(
        out.contains("Approved: brake-fw 1.0.0 of acme (0 finding(s))"),
        "{out}"
    );
    assert!(
        out.contains("Rejected: brake-fw 1.1.0 of acme (1 finding(s))"),
        "{out}"
    );
    assert!(
        out.contains("Approved: abs-fw 2.0.0 of acme (0 finding(s))"),
        "{out}"
    );
    assert!(out.contains("3 image(s) reviewed"), "{out}");
    for (bytes, uid, version, verdict) in [
        (&clean, "brake-fw", "1.0.0", "approved"),
        (&backdoored, "brake-fw", "1.1.0", "rejected"),
        (&abs, "abs-fw", "2.0.0", "approved"),
    ] {
        let sha = sha256_hex(bytes);
        let a = w
            .attestation(&sha)
            .unwrap_or_else(|| panic!("no attestation for {uid} {version}"));
        assert_eq!(a["_type"], "attestation");
        assert_eq!(a["regulator"], "tuv");
        assert_eq!(a["verdict"], verdict, "{uid} {version}: {a}");
        assert_eq!(a["release"]["supplier"], "acme");
        assert_eq!(a["release"]["uid"], uid);
        assert_eq!(a["release"]["version"], version);
        assert_eq!(a["release"]["length"], bytes.len() as u64);
        assert_eq!(a["release"]["hashes"]["sha256"], sha.as_str());
        let findings = a["findings"].as_array().unwrap();
        if verdict == "approved" {
            assert!(findings.is_empty(), "{a}");
        } else {
            // clamscan's report, naming the image (not where the regulator staged it).
            let detail = findings
                .iter()
                .find(|f| f["rule"] == "external-scanner")
                .and_then(|f| f["detail"].as_str())
                .unwrap_or_else(|| panic!("the rejection does not carry clamscan's finding: {a}"));
            assert_eq!(
                detail,
                format!("brake-fw-1.1.0.bin: {SIGNATURE}.UNOFFICIAL FOUND"),
                "{a}"
            );
        }
    }
    w.ok(&cmd("regulator publish reg"));
    // A second review finds nothing new to judge.
    let out = w.ok(&review);
    assert!(out.contains("0 image(s) reviewed"), "{out}");

    // ---- A tampered image: the regulator refuses to attest it, and changes nothing.
    let patched = firmware(4, 40_000);
    w.write("brake-1.2.0.bin", &patched);
    w.ok(&cmd(&format!(
        "{add} brake-1.2.0.bin --uid brake-fw --version 1.2.0 --release-counter 3 --hardware-id BRAKE-A"
    )));
    w.ok(&cmd("supplier publish acme"));
    w.ok(&cmd(
        "oem review submit oem --supplier acme --uid brake-fw --version 1.2.0",
    ));
    w.ok(&cmd("oem publish oem"));
    let stored = w.stored_target("acme", "brake-fw-1.2.0.bin");
    let mut tampered = patched.clone();
    tampered[12_345] ^= 0x20;
    std::fs::write(&stored, &tampered).unwrap();
    // The error names the image and both hashes: what arrived and what the supplier signed.
    let err = w.refused(
        &review,
        "reg",
        true,
        &[
            "not attested",
            "brake-fw-1.2.0.bin",
            "sha256",
            &sha256_hex(&tampered),
            &sha256_hex(&patched),
        ],
    );
    eprintln!("tampered image: {err}");
    assert!(w.attestation(&sha256_hex(&patched)).is_none());
    assert!(w.attestation(&sha256_hex(&tampered)).is_none());
    w.fail(&cmd(&format!("verify acme --root {acme_pin}")));
    // Once the supplier's tree is repaired, the same review goes through.
    std::fs::write(&stored, &patched).unwrap();
    let out = w.ok(&review);
    assert!(out.contains("Approved: brake-fw 1.2.0 of acme"), "{out}");
    w.ok(&cmd("regulator publish reg"));
    // The published targets role lists the four verdicts, each with its stored file's hash,
    // and the rejection once more as a veto on the backdoored bytes (the same signed file).
    let (_, targets) = w.newest_signed("reg/repository", "targets.json");
    let listed = targets["targets"].as_object().unwrap();
    assert_eq!(listed.len(), 5, "{targets}");
    let veto = &listed[&format!("{}.veto.json", sha256_hex(&backdoored))];
    assert_eq!(veto["custom"]["verdict"], "rejected", "{targets}");
    for bytes in [&clean, &backdoored, &abs, &patched] {
        let name = w.attestation_name(&sha256_hex(bytes)).unwrap();
        let stored = std::fs::read(w.stored_target("reg", &name)).unwrap();
        assert_eq!(
            listed[&name]["hashes"]["sha256"],
            sha256_hex(&stored).as_str(),
            "{name} is not listed as stored"
        );
    }

    // ---- An image whose hash differs from its (validly signed) manifest.
    let bolt_key = w.key("bolt.pem");
    w.ok(&cmd(&format!(
        "supplier init bolt --name bolt --key {bolt_key}"
    )));
    let bolt_pin = w.pin("bolt");
    let gw = firmware(5, 20_000);
    let claimed = firmware(6, 20_000);
    w.write("gw-1.0.0.bin", &gw);
    w.ok(&cmd(
        "supplier add-image bolt --file gw-1.0.0.bin --uid gw-fw --version 1.0.0 --release-counter 1 --hardware-id GW-1",
    ));
    forge_manifest(&w, "bolt", &bolt_key, "gw-fw", "1.0.0", &claimed);
    // `supplier publish` refuses this tree (it does not verify); a rogue supplier's would not.
    ota_repo::supplier::publish_unverified(&w.path("bolt"), ota_metadata::DateTime::now()).unwrap();
    w.ok(&cmd(&format!(
        "oem supplier add oem --name bolt --root {bolt_pin} --url {bolt_url} --hardware-id GW-*"
    )));
    let err = w.refused(
        &cmd("oem review submit oem --supplier bolt --uid gw-fw --version 1.0.0"),
        "oem",
        true,
        &[
            "gw-fw-1.0.0.bin",
            "image manifest",
            "sha256",
            &sha256_hex(&gw),
            &sha256_hex(&claimed),
        ],
    );
    eprintln!("image hash differs from its manifest: {err}");
    let err = w.fail(&cmd(&format!("verify bolt --root {bolt_pin}")));
    assert!(err.contains("gw-fw-1.0.0"), "{err}");

    // ---- Inventory and assignments; unknown VINs and serials are refused.
    w.ok(&cmd(&format!(
        "oem vehicle add oem --vin {VIN} --ecu S1:BRAKE-A --ecu S2:ABS-1 --aftermarket S3:BRAKE-A"
    )));
    let assign = |vin: &str, ecu: &str, uid: &str, version: &str| {
        format!(
            "oem assign oem --vin {vin} --ecu {ecu} --supplier acme --uid {uid} --version {version}"
        )
    };
    let unknown = "NOSUCHVIN0000001";
    for (line, words) in [
        (assign(unknown, "S1", "brake-fw", "1.0.0"), vec![unknown]),
        (assign(VIN, "S9", "brake-fw", "1.0.0"), vec![VIN, "S9"]),
        (
            assign(VIN, "S3", "brake-fw", "1.0.0"),
            vec!["S3", "aftermarket"],
        ),
        (
            format!("oem ecu remove oem --vin {VIN} --ecu S9"),
            vec![VIN, "S9"],
        ),
        (
            format!("oem ecu remove oem --vin {unknown} --ecu S1"),
            vec![unknown],
        ),
    ] {
        let err = w.refused(&cmd(&line), "oem", false, &words);
        eprintln!("{line}: {err}");
    }
    w.ok(&cmd(&assign(VIN, "S1", "brake-fw", "1.0.0")));
    w.ok(&cmd(&assign(VIN, "S2", "abs-fw", "2.0.0")));
    w.ok(&cmd("oem publish oem"));
    let (n, a) = w.newest_assignments(VIN);
    assert_eq!(a["vin"], VIN);
    let ecus = a["ecus"].as_object().unwrap();
    assert_eq!(ecus.len(), 2, "{a}");
    assert_eq!(ecus["S1"]["uid"], "brake-fw");
    assert_eq!(ecus["S1"]["version"], "1.0.0");
    assert_eq!(ecus["S1"]["hashes"]["sha256"], sha256_hex(&clean).as_str());
    assert_eq!(ecus["S2"]["uid"], "abs-fw");

    // ---- Every tree verifies from its pinned first root.
    for (tree, pin) in [("acme", &acme_pin), ("oem", &oem_pin), ("reg", &reg_pin)] {
        let out = w.ok(&cmd(&format!("verify {tree} --root {pin}")));
        assert!(out.starts_with("OK "), "{out}");
    }

    // ---- Removing the supplier withdraws its assignments.
    let out = w.ok(&cmd("oem supplier remove oem --name acme"));
    assert!(out.contains("withdrew 2 assignment(s)"), "{out}");
    w.ok(&cmd("oem publish oem"));
    let (n2, a) = w.newest_assignments(VIN);
    assert_eq!(n2, n + 1);
    assert!(
        a["ecus"].as_object().unwrap().is_empty(),
        "assignments of a removed supplier are still published: {a}"
    );
    let out = w.ok(&cmd(&format!("verify oem --root {oem_pin}")));
    assert!(out.starts_with("OK "), "{out}");

    // Everything above went over HTTP through nginx.
    let log = http.access_log();
    for tree in ["acme", "bolt", "oem"] {
        assert!(
            log.contains(&format!("\"GET /{tree}/")),
            "nginx served nothing from /{tree}/:\n{log}"
        );
    }
    eprintln!("done in {:?}", started.elapsed());
}
