//! A real PostgreSQL server on loopback for the fleet backend's tests: a fresh cluster made by
//! `initdb` in a temporary directory (trust authentication on 127.0.0.1 only), started by
//! `pg_ctl` on a free port, stopped and deleted when dropped. As root (CI), the server runs as
//! the `postgres` user the Debian package makes (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    _dir: tempfile::TempDir,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    pub port: u16,
}

/// The directory holding `initdb` and `pg_ctl` (Debian keeps them off `PATH`, under
/// /usr/lib/postgresql/VERSION/bin). Fails (CI) or returns `None` (a notice) when missing.
pub fn bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort();
    candidates.reverse();
    if let Some(d) = candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    {
        return Some(d);
    }
    crate::require_program("pg_ctl", "postgresql")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("initdb").exists())
}

impl PgServer {
    /// A running server, or `None` (skipped with a notice) when PostgreSQL is not installed
    /// and `CI` is not set.
    pub fn start() -> Option<PgServer> {
        let bin = bin_dir()?;
        let root = is_root();
        let run_as = root.then_some("postgres");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        if root {
            // The cluster's directories belong to the user the server runs as.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("running chown");
            assert!(ok.success(), "chown of the cluster directory failed");
        }
        let out = command(&bin, "initdb", run_as)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c max_connections=50",
            dir.path().display()
        );
        let out = command(&bin, "pg_ctl", run_as)
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.path().join("server.log"))
            .args(["-o", &opts, "start"])
            .output()
            .expect("running pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        Some(PgServer {
            bin,
            data,
            run_as,
            _dir: dir,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
        })
    }

    /// A new empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let out = command(&self.bin, "createdb", self.run_as)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .output()
            .expect("running createdb");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = command(&self.bin, "pg_ctl", self.run_as)
            .args(["-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

fn command(bin: &Path, program: &str, run_as: Option<&str>) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join(program));
            c
        }
        None => Command::new(bin.join(program)),
    }
}

fn is_root() -> bool {
    // The effective user, without a dependency: /proc/self/status's Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
