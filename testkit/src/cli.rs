//! Driving a command-line program as a user would, in a temporary directory of its own: run
//! it, insist it succeeds or fails cleanly (never a panic), and fingerprint a directory to
//! prove a refused command changed nothing.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct CliEnv {
    pub tmp: tempfile::TempDir,
    bin: PathBuf,
}

impl CliEnv {
    /// An empty working directory for the program `bin` (e.g. `env!("CARGO_BIN_EXE_ota-repo")`).
    pub fn new(bin: &str) -> Self {
        CliEnv {
            tmp: tempfile::tempdir().expect("tempdir"),
            bin: PathBuf::from(bin),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    pub fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }

    /// Run the program in the working directory.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .current_dir(self.tmp.path())
            .args(args)
            .output()
            .expect("running the program")
    }

    /// Run a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("UTF-8 output")
    }

    /// Run a command that must fail cleanly (an error, not a panic); returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "{args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let err = String::from_utf8(o.stderr).expect("UTF-8 errors");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        err
    }

    /// Write `bytes` to `name` in the working directory; returns `name`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.path(name), bytes).expect("writing a test file");
        name.to_string()
    }

    /// Every file under `dir` with its SHA-256, leaving out the subdirectories named in
    /// `skip` (relative to `dir`).
    pub fn fingerprint(&self, dir: &str, skip: &[&str]) -> BTreeMap<PathBuf, String> {
        fn walk(p: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(p).expect("reading a directory").flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if !skip.contains(&path) {
                        walk(&path, skip, out);
                    }
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.insert(path, hex::encode(Sha256::digest(bytes)));
                }
            }
        }
        let top = self.path(dir);
        let skip: Vec<PathBuf> = skip.iter().map(|s| top.join(s)).collect();
        let mut out = BTreeMap::new();
        walk(&top, &skip, &mut out);
        out
    }

    /// Every file under `dir` with its SHA-256.
    pub fn state(&self, dir: &str) -> BTreeMap<PathBuf, String> {
        self.fingerprint(dir, &[])
    }
}
