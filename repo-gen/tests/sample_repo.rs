//! The committed sample trees verify, and the documented command regenerates them.

use std::path::Path;
use std::process::Command;

/// The committed sample is checked as of this date, not the real clock: its metadata was signed
/// with fixed lifetimes and would expire under a test that reads the clock (every later
/// regeneration expires later still, and TUF has no not-before). The regenerated sample below
/// is checked against the real clock.
const SAMPLE_CHECKED_AT: &str = "2026-12-01T00:00:00Z";

fn verify(tree: &Path, root: &Path, at: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ota-repo"));
    cmd.arg("verify").arg(tree).arg("--root").arg(root);
    if let Some(t) = at {
        cmd.args(["--now", t]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{} does not verify: {}",
        tree.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The three trees of a generated sample verify, pinned to their first roots, as of `at`
/// (`None`: now).
fn verify_all(sample: &Path, at: Option<&str>) {
    let repo = |p: &str| sample.join(p).join("repository");
    let s = verify(
        &repo("supplier/acme"),
        &repo("supplier/acme").join("1.root.json"),
        at,
    );
    assert!(s.contains("5 image(s)"), "{s}");
    let o = verify(&repo("oem"), &repo("oem").join("1.root.json"), at);
    assert!(o.contains("3 vehicle(s)"), "{o}");
    let r = verify(
        &repo("regulator/tuv"),
        &repo("regulator/tuv").join("1.root.json"),
        at,
    );
    assert!(r.contains("5 attestation(s)"), "{r}");
}

#[test]
fn committed_sample_verifies() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo");
    verify_all(&sample, Some(SAMPLE_CHECKED_AT));
    // The date is what is checked: long after the sample's lifetimes the same tree is refused.
    let oem = sample.join("oem/repository");
    let late = Command::new(env!("CARGO_BIN_EXE_ota-repo"))
        .arg("verify")
        .arg(&oem)
        .arg("--root")
        .arg(oem.join("1.root.json"))
        .args(["--now", "2040-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert!(!late.status.success(), "an expired sample verified");
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
    let keys = std::fs::read_dir(sample.join("keys")).unwrap();
    for k in keys {
        let name = k.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "README.md" || name.ends_with(".TEST-ONLY.pem"),
            "{name} is not marked test-only"
        );
    }
}

#[test]
fn generate_script_rebuilds_the_sample() {
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo/generate.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .env("OTA_REPO", env!("CARGO_BIN_EXE_ota-repo"))
        .status()
        .unwrap();
    assert!(status.success());
    verify_all(out.path(), None);
    // Two images rejected: a known-vulnerable build and a backdoor marker; each rejection is
    // listed twice, as the release's attestation and as a veto on its bytes.
    let rejected = |suffix: &str| {
        std::fs::read_dir(out.path().join("regulator/tuv/repository/targets"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .filter(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .contains("\"verdict\": \"rejected\"")
            })
            .count()
    };
    assert_eq!(rejected(".attestation.json"), 2);
    assert_eq!(rejected(".veto.json"), 2);
    // Run from another directory: relative key paths resolve against the working directory.
    for (kind, dir) in [
        ("supplier", "supplier/acme"),
        ("oem", "oem"),
        ("regulator", "regulator/tuv"),
    ] {
        let status = Command::new(env!("CARGO_BIN_EXE_ota-repo"))
            .current_dir("/")
            .args([kind, "publish"])
            .arg(out.path().join(dir))
            .status()
            .unwrap();
        assert!(status.success(), "{kind} publish");
    }
}
