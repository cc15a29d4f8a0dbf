//! Helpers shared by integration tests that need real programs from the system: nginx serving
//! trees over HTTP or HTTPS, a test certificate authority, and finding programs.

pub mod bench;
pub mod cli;
pub mod images;
pub mod nginx;
pub mod postgres;
pub mod s3;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `python3` (python-tuf, the peer of the interop tests and the client benchmark), talking to
/// 127.0.0.1 directly whatever proxy the environment names.
pub fn python3() -> Command {
    let mut c = Command::new("python3");
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(v);
    }
    c.env("no_proxy", "127.0.0.1,localhost")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// The path of `name` on `PATH` (or in the sbin directories, where Debian puts nginx).
/// When it is missing: with `CI` set the test fails loudly (CI installs it, see `.ci/run`);
/// otherwise a notice is printed and `None` returned so the caller can skip.
pub fn require_program(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p));
    if found.is_none() {
        let msg =
            format!("`{name}` is not installed (Debian package {package}; `.ci/run` installs it)");
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI is set, so this test may not be skipped");
        }
        eprintln!("NOTICE: skipping: {msg}");
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What an attacker with the OEM's publishing host does before publishing a fleet tree of its
/// choosing: the served vehicles index is removed, so the publisher has only its (edited)
/// record to continue from. Tests of attacks with the online keys use it; the OEM's own tool
/// refuses a record that disagrees with the served index otherwise.
pub fn hide_served_vehicles_index(repo: &std::path::Path) {
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(repo.join(name)).unwrap()).unwrap()
    };
    let ts = read("timestamp.json");
    let n = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap = read(&format!("{n}.snapshot.json"));
    let v = snap["signed"]["meta"]["vehicles.json"]["version"]
        .as_u64()
        .unwrap();
    std::fs::remove_file(repo.join(format!("{v}.vehicles.json"))).unwrap();
}

/// Copy the directory tree `from` to `to` (a backup, a snapshot of a state to restore).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
