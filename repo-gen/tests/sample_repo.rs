//! The committed sample trees verify, and the documented command regenerates them.

use std::path::Path;
use std::process::Command;

fn verify(tree: &Path, root: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota-repo"))
        .arg("verify")
        .arg(tree)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not verify: {}",
        tree.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 image(s)"));
}

#[test]
fn committed_sample_verifies() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo");
    let repo = sample.join("supplier/acme/repository");
    verify(&repo, &repo.join("1.root.json"));
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
    let repo = out.path().join("supplier/acme/repository");
    verify(&repo, &repo.join("1.root.json"));
    // Run from another directory: relative key paths resolve against the working directory.
    let status = Command::new(env!("CARGO_BIN_EXE_ota-repo"))
        .current_dir("/")
        .args(["supplier", "publish"])
        .arg(out.path().join("supplier/acme"))
        .status()
        .unwrap();
    assert!(status.success());
}
