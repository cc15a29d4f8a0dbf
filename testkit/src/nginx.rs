//! A real nginx serving directories over HTTP on 127.0.0.1, for end-to-end tests.
//!
//! nginx runs in the foreground as a child process (`daemon off`, one process:
//! `master_process off`), with its configuration, pid file, logs and temp directories all in a
//! temporary directory of its own (`-e` for the early error log needs nginx >= 1.19.5); it is
//! killed when the [`Nginx`] value is dropped. Readiness is an HTTP answer with
//! `Server: nginx`, not just an open port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    port: u16,
    scheme: &'static str,
    // Holds the configuration and logs until nginx is gone (dropped after `drop` runs).
    prefix: tempfile::TempDir,
}

/// A string as an nginx configuration token.
fn quoted(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(
        !s.contains(['"', '\\', '$']),
        "path {s:?} cannot be written into an nginx config"
    );
    format!("\"{s}\"")
}

/// Whether this process runs as root. Then the config says `user root;`: nginx started by root
/// otherwise serves as `nobody`, who cannot read the test's private (0700) temporary
/// directories. (In the single-process mode used here nginx keeps its user anyway; the line
/// keeps the config right should workers ever be turned on.)
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port on 127.0.0.1")
        .port()
}

/// The temp-path directives this nginx build knows (a module built without is not allowed to
/// be configured).
fn temp_path_directives(nginx: &Path) -> Vec<&'static str> {
    let out = Command::new(nginx)
        .arg("-V")
        .output()
        .expect("running nginx -V");
    let built =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    [
        ("client_body_temp_path", None),
        ("proxy_temp_path", Some("proxy")),
        ("fastcgi_temp_path", Some("fastcgi")),
        ("uwsgi_temp_path", Some("uwsgi")),
        ("scgi_temp_path", Some("scgi")),
    ]
    .into_iter()
    .filter(|(_, module)| {
        module.is_none_or(|m| !built.contains(&format!("--without-http_{m}_module")))
    })
    .map(|(d, _)| d)
    .collect()
}

impl Nginx {
    /// Start `nginx` (the binary's path) serving each `(name, dir)` of `trees` at
    /// `http://127.0.0.1:PORT/name/`. Waits until it accepts connections.
    pub fn start(nginx: &Path, trees: &[(&str, &Path)]) -> Nginx {
        Self::start_with(nginx, trees, None)
    }

    /// The same over HTTPS, with the test CA's server certificate for 127.0.0.1.
    pub fn start_tls(nginx: &Path, trees: &[(&str, &Path)], ca: &crate::tls::TestCa) -> Nginx {
        Self::start_with(nginx, trees, Some(ca))
    }

    /// HTTPS, with `extra` (nginx directives, e.g. a rate-limited location) added to the
    /// server block.
    pub fn start_tls_with(
        nginx: &Path,
        trees: &[(&str, &Path)],
        ca: &crate::tls::TestCa,
        extra: &str,
    ) -> Nginx {
        Self::start_inner(nginx, trees, Some(ca), extra)
    }

    fn start_with(
        nginx: &Path,
        trees: &[(&str, &Path)],
        tls: Option<&crate::tls::TestCa>,
    ) -> Nginx {
        Self::start_inner(nginx, trees, tls, "")
    }

    /// Start nginx in a fresh prefix on a free port (a few tries: the port found free may be
    /// taken before nginx binds it), serving `trees` and `extra`, over TLS with `tls`. Panics
    /// if it never comes up.
    fn start_inner(
        nginx: &Path,
        trees: &[(&str, &Path)],
        tls: Option<&crate::tls::TestCa>,
        extra: &str,
    ) -> Nginx {
        let prefix = tempfile::Builder::new()
            .prefix("nginx-")
            .tempdir()
            .expect("nginx tempdir");
        let p = prefix.path();
        for d in ["logs", "temp"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        let temp_paths = temp_paths(nginx, p);
        let locations = locations(trees) + extra;
        let user = if running_as_root() {
            "user root;\n"
        } else {
            ""
        };
        let error_log = p.join("logs").join("error.log");
        let mut last_log = String::new();
        // The port found free may be taken before nginx binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let conf = config(p, port, tls, user, &temp_paths, &locations);
            let conf_path = p.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let stderr = std::fs::File::create(p.join("logs").join("stderr.log")).unwrap();
            let mut child = Command::new(nginx)
                .arg("-p")
                .arg(p)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(&error_log)
                .arg("-g")
                .arg("daemon off;")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("starting nginx");
            match until_up(&mut child, p, port) {
                Some(log) => last_log = log,
                None => {
                    return Nginx {
                        child,
                        port,
                        scheme: if tls.is_some() { "https" } else { "http" },
                        prefix,
                    }
                }
            }
        }
        panic!("nginx failed to start:\n{last_log}");
    }

    /// The URL a tree is served at (with a trailing slash).
    pub fn url(&self, name: &str) -> String {
        format!("{}://127.0.0.1:{}/{name}/", self.scheme, self.port)
    }

    /// What nginx has logged of the requests so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("logs").join("access.log"))
            .unwrap_or_default()
    }
}

/// Whether the server on `addr` is up and is nginx (not another program that took the port).
/// The `*_temp_path` directives this nginx knows, each into its own directory of the prefix.
fn temp_paths(nginx: &Path, p: &Path) -> String {
    temp_path_directives(nginx)
        .into_iter()
        .map(|d| {
            format!(
                "    {d} {};\n",
                quoted(&p.join("temp").join(d.trim_end_matches("_temp_path")))
            )
        })
        .collect()
}

/// A location per tree, `/NAME/` serving its directory (names are plain: letters, digits,
/// `-`).
fn locations(trees: &[(&str, &Path)]) -> String {
    trees
        .iter()
        .map(|(name, dir)| {
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "tree name {name:?}"
            );
            let dir = std::path::absolute(dir).unwrap();
            format!(
                "        location /{name}/ {{ alias {}; }}\n",
                quoted(&PathBuf::from(format!("{}/", dir.display())))
            )
        })
        .collect::<String>()
}

/// The configuration for one try: one worker in the foreground, logs and pid in prefix `p`,
/// the deployment's cache and content-type rules, one server on 127.0.0.1:`port` (TLS with
/// the test CA's leaf when `tls`) with the `locations`.
fn config(
    p: &Path,
    port: u16,
    tls: Option<&crate::tls::TestCa>,
    user: &str,
    temp_paths: &str,
    locations: &str,
) -> String {
    format!(
        "# written by the ota-repo tests\n\
         {user}\
         master_process off;\n\
         worker_processes 1;\n\
         error_log {} info;\n\
         pid {};\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20   access_log {};\n\
         {temp_paths}\
         \x20   include {site};\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port}{ssl};\n\
         {certs}\
         \x20       server_name localhost;\n\
         \x20       add_header Cache-Control $ota_cache_control always;\n\
         {locations}\
         \x20   }}\n\
         }}\n",
        quoted(&p.join("logs").join("error.log")),
        quoted(&p.join("nginx.pid")),
        quoted(&p.join("logs").join("access.log")),
        // The cache and content-type rules a deployment uses (deploy/nginx/).
        site = quoted(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/ota-http.conf")),
        ssl = if tls.is_some() { " ssl http2" } else { "" },
        certs = tls.map_or(String::new(), |ca| format!(
            "        ssl_certificate {};\n        ssl_certificate_key {};\n",
            quoted(&ca.leaf_pem()),
            quoted(&ca.leaf_key())
        )),
    )
}

/// Wait for the started nginx to answer on `port`: `None` once it does; if it exited (the
/// port was taken, say), its logs, for the next try. Panics (nginx killed) if it neither
/// answers nor exits within 20 s.
fn until_up(child: &mut Child, p: &Path, port: u16) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let last_log = logs(p);
            eprintln!("nginx on port {port} exited ({status}):\n{last_log}");
            return Some(last_log);
        }
        if answers_as_nginx(&addr) {
            return None;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "nginx did not accept connections on {addr} within 20 s:\n{}",
                logs(p)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn answers_as_nginx(addr: &SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reply = String::new();
    s.write_all(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
        && s.read_to_string(&mut reply).is_ok()
        && reply.to_ascii_lowercase().contains("\r\nserver: nginx")
}

fn logs(prefix: &Path) -> String {
    let mut out = String::new();
    for f in ["stderr.log", "error.log"] {
        if let Ok(mut file) = std::fs::File::open(prefix.join("logs").join(f)) {
            let _ = file.read_to_string(&mut out);
        }
    }
    out
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (master_process off): killing it stops the server completely.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
