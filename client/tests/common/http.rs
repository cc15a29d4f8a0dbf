//! A tiny HTTP/1.1 file server on 127.0.0.1 for tests: one request per connection, bounded in
//! every direction (request size, timeouts, body sizes), stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server does for a request path.
pub enum Reply {
    /// Serve this file (404 if missing).
    File(PathBuf),
    /// 200 without Content-Length, then bytes until the client hangs up (at most 64 MiB).
    Endless,
    /// 200 announcing this Content-Length, then a little data and a hang-up.
    Announce(u64),
    /// Headers, then silence for this long (slow retrieval), then a hang-up.
    Stall(Duration),
}

type Route = dyn Fn(&str) -> Reply + Send + Sync;

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const ENDLESS_CAP: usize = 64 << 20;

impl Server {
    /// Serve files under `root`; `route` may override what a path gets.
    pub fn start(
        root: PathBuf,
        route: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let route: Arc<Route> = Arc::new(move |path: &str| {
            route(path).unwrap_or_else(|| {
                let rel = ota_client::tuf::encode::decode(path.trim_start_matches('/'))
                    .unwrap_or_default();
                if rel.split('/').any(|s| s == "..") {
                    return Reply::File(PathBuf::new());
                }
                Reply::File(root.join(rel))
            })
        });
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    // One thread per connection, so a stalled reply holds up nobody else.
                    let route = route.clone();
                    std::thread::spawn(move || serve(stream, &*route));
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, route: &Route) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(16 * 1024);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut out = stream;
    if method != "GET" {
        return out.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    match route(path) {
        Reply::File(p) => match std::fs::read(&p) {
            Ok(body) if p.is_file() => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                out.write_all(&body)
            }
            _ => out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        },
        Reply::Endless => {
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < ENDLESS_CAP {
                out.write_all(&chunk)?;
                sent += chunk.len();
            }
            Ok(())
        }
        Reply::Announce(len) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(&[b' '; 1024])
        }
        Reply::Stall(d) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")?;
            out.flush()?;
            std::thread::sleep(d);
            Ok(())
        }
    }
}

/// An HTTPS server for tests: `openssl s_server -HTTP`, which sends each requested file (a
/// complete HTTP response) verbatim, with a leaf certificate for 127.0.0.1 issued by a CA
/// made here. webpki refuses a self-signed certificate used directly by the server, hence the
/// CA and the leaf. Killed when dropped, and exits by itself after a few connections anyway.
pub struct TlsServer {
    pub port: u16,
    pub ca_pem: Vec<u8>,
    child: std::process::Child,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command-line tool is needed for the HTTPS tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsServer {
    /// Serve the files in `docroot` (each a complete HTTP response).
    pub fn start(docroot: &std::path::Path, certdir: &std::path::Path) -> TlsServer {
        std::fs::create_dir_all(certdir).unwrap();
        openssl(
            certdir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ota-client test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            certdir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            certdir.join("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n\
             extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
        )
        .unwrap();
        openssl(
            certdir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("openssl")
            .current_dir(docroot)
            .args(["s_server", "-HTTP", "-naccept", "20", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(certdir.join("leaf.pem"))
            .arg("-key")
            .arg(certdir.join("leaf.key"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        // It prints ACCEPT once it listens.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.any(|l| l.map(|l| l.contains("ACCEPT")).unwrap_or(false));
        assert!(ready, "openssl s_server did not start");
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        TlsServer {
            port,
            ca_pem: std::fs::read(certdir.join("ca.pem")).unwrap(),
            child,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
