//! A tiny, misbehaving-on-demand HTTP/1.1 server on 127.0.0.1 for tests: one request per
//! connection, a thread per connection, bounded in every direction (request size, socket
//! timeouts, body sizes, how long any reply may take), and stopped when dropped (every
//! thread is told, and joined). It records each request it sees, with its `Range` header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    /// `Range: bytes=N-` (the only form the client sends), as `N`.
    pub range_from: Option<u64>,
    /// The raw `Range` header, when there was one.
    pub range: Option<String>,
}

/// A body served from memory, possibly misbehaving.
#[derive(Clone, Debug, Default)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// Answer `Range: bytes=N-` with 206 and the rest of the body (else always 200).
    pub ranges: bool,
    /// Send at most this many body bytes of the reply, then hang up (Content-Length still
    /// announces all of them).
    pub cut_after: Option<usize>,
    /// Before hanging up after a cut, say nothing for this long (so a read times out).
    pub stall: Duration,
    /// Claim this start in `Content-Range` (whatever was asked).
    pub lie_start: Option<u64>,
}

impl Body {
    pub fn new(bytes: Vec<u8>) -> Body {
        Body {
            bytes,
            ..Body::default()
        }
    }
}

/// What the server does for a request.
pub enum Reply {
    /// Serve this file (404 if missing), always 200.
    File(PathBuf),
    /// Serve these bytes, as [`Body`] says.
    Body(Body),
    /// 200 without Content-Length, then bytes until the client hangs up (at most 64 MiB).
    Endless,
    /// 200 announcing this Content-Length, then a little data and a hang-up.
    Announce(u64),
    /// Headers, then silence for this long (slow retrieval), then a hang-up.
    Stall(Duration),
    /// 200 with the Content-Length of `bytes`, then one byte of them every `every`.
    Trickle { bytes: Vec<u8>, every: Duration },
}

type Route = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Request>>>,
}

const ENDLESS_CAP: usize = 64 << 20;
/// No reply takes longer than this, whatever it was asked to do.
const MAX_REPLY_TIME: Duration = Duration::from_secs(20);

impl Server {
    /// Serve files under `root`; `route` may override what a path gets.
    pub fn start(
        root: PathBuf,
        route: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static,
    ) -> Server {
        Server::start_with(root, move |req: &Request| route(&req.path))
    }

    /// Serve files under `root`; `route` may override what a request gets.
    pub fn start_with(
        root: PathBuf,
        route: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let route: Arc<Route> = Arc::new(move |req: &Request| {
            route(req).unwrap_or_else(|| {
                let rel = ota_client::tuf::encode::decode(req.path.trim_start_matches('/'))
                    .unwrap_or_default();
                if rel.split('/').any(|s| s == "..") {
                    return Reply::File(PathBuf::new());
                }
                Reply::File(root.join(rel))
            })
        });
        let flag = stop.clone();
        let requests = log.clone();
        let thread = std::thread::spawn(move || {
            let mut workers: Vec<JoinHandle<()>> = Vec::new();
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    // One thread per connection, so a stalled reply holds up nobody else.
                    let (route, flag, requests) = (route.clone(), flag.clone(), requests.clone());
                    workers.push(std::thread::spawn(move || {
                        let _ = serve(stream, &*route, &flag, &requests);
                    }));
                    workers.retain(|w| !w.is_finished());
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests seen so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// The requests seen so far for paths ending in `suffix`.
    pub fn requests_for(&self, suffix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
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

/// Sleep `d` in small steps, returning early (false) once the server is stopping.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d.min(MAX_REPLY_TIME);
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
    !stop.load(Ordering::SeqCst)
}

/// End the reply cleanly: no more data from us, then wait (briefly) for the client to hang
/// up, so that closing never turns into a reset that could discard data in flight.
fn hang_up(mut out: TcpStream) -> std::io::Result<()> {
    out.shutdown(Shutdown::Write)?;
    out.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut sink = [0u8; 1024];
    while matches!(out.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

fn parse_range(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

fn serve(
    stream: TcpStream,
    route: &Route,
    stop: &AtomicBool,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take(16 * 1024);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    if stop.load(Ordering::SeqCst) || request_line.is_empty() {
        return Ok(());
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let req = Request {
        path: path.to_string(),
        range_from: range.as_deref().and_then(parse_range),
        range,
    };
    log.lock().unwrap().push(req.clone());
    let mut out = stream;
    if method != "GET" {
        return out.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    match route(&req) {
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
        Reply::Body(b) => {
            let len = b.bytes.len();
            let from = match req.range_from {
                Some(from) if b.ranges => {
                    let Ok(from) = usize::try_from(from) else {
                        return Ok(());
                    };
                    if from >= len {
                        write!(
                            out,
                            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                             Content-Length: 0\r\nConnection: close\r\n\r\n"
                        )?;
                        return Ok(());
                    }
                    let claimed = b.lie_start.unwrap_or(from as u64);
                    write!(
                        out,
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {claimed}-{}/{len}\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        len - 1,
                        len - from
                    )?;
                    from
                }
                _ => {
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                    )?;
                    0
                }
            };
            let rest = &b.bytes[from..];
            match b.cut_after {
                None => out.write_all(rest),
                Some(n) => {
                    out.write_all(&rest[..n.min(rest.len())])?;
                    out.flush()?;
                    pause(b.stall, stop);
                    hang_up(out)
                }
            }
        }
        Reply::Endless => {
            out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < ENDLESS_CAP && !stop.load(Ordering::SeqCst) {
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
            out.write_all(&[b' '; 1024])?;
            hang_up(out)
        }
        Reply::Stall(d) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")?;
            out.flush()?;
            pause(d, stop);
            Ok(())
        }
        Reply::Trickle { bytes, every } => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )?;
            let started = Instant::now();
            for byte in bytes {
                out.write_all(&[byte])?;
                out.flush()?;
                if started.elapsed() > MAX_REPLY_TIME || !pause(every, stop) {
                    break;
                }
            }
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
    // Holds the certificate files until the server is gone.
    _ca: ota_testkit::tls::TestCa,
}

impl TlsServer {
    /// Serve the files in `docroot` (each a complete HTTP response) with a certificate of a
    /// test CA made here (`certdir` is unused but kept for the callers).
    pub fn start(docroot: &std::path::Path, _certdir: &std::path::Path) -> TlsServer {
        let ca = ota_testkit::tls::TestCa::new();
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
            .arg(ca.leaf_pem())
            .arg("-key")
            .arg(ca.leaf_key())
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
            ca_pem: std::fs::read(ca.ca_pem()).unwrap(),
            child,
            _ca: ca,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
