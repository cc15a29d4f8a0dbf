//! The ingest server's bounds, against a server in this process on loopback: slow clients
//! hold sockets, not the server; every connection has one deadline; past the connection limit
//! new connections are closed at once; a report's answer says what happened.
//!
//! No wall-clock bound decides a test: each waits for an event (an answer, an end of stream)
//! with a read timeout far above any loaded machine's.

mod common;
use common::*;
use ota_fleet::server::{serve, Log, Options};
use ota_fleet::Location;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

struct Server {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(dir: &std::path::Path, tune: impl FnOnce(&mut Options)) -> Server {
        let at = Location::Sqlite(dir.join("reports.sqlite"));
        let mut opts = Options::new("127.0.0.1:0".parse().unwrap());
        tune(&mut opts);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let log: Log = Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        let (tx, rx) = mpsc::channel();
        let inventory = Arc::new(inventory(&["VIN1", "VIN2"]));
        let thread = std::thread::spawn(move || {
            serve(&at, inventory, opts, log, |a| tx.send(a).unwrap()).unwrap();
        });
        let addr = rx.recv_timeout(PATIENCE).expect("the server did not start");
        Server {
            addr,
            lines,
            thread: Some(thread),
        }
    }

    /// POST `body`; the status line and the body of the answer.
    fn post(&self, body: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            s,
            "POST /reports HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("no answer");
        answer
    }

    /// A connection that sent part of a request head and nothing more.
    fn slow(&self) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.write_all(b"POST /reports HTTP/1.1\r\nContent-Le")
            .unwrap();
        s
    }
}

/// Whether the server still holds `s` open: no end of stream, no reset, nothing to read.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let open = matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// Read until the server closes `s`: true if it did (end of stream or reset) before
/// PATIENCE ran out.
fn closed_by_server(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Scenario: Fleet backend | 1,000 slowloris connections hold the report server open | a valid report sent meanwhile is answered 200 while every slow connection is still open (an async server: a slow client holds a socket, not the server)
#[test]
fn a_thousand_slow_connections_do_not_delay_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |o| {
        o.deadline = Duration::from_secs(600);
        o.max_requests = Some(1);
    });
    let slow: Vec<TcpStream> = (0..1000).map(|_| server.slow()).collect();
    let answer = server.post(&report("VIN1", 1000, 1, both("1.0", 1), vec![]));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("ingested: 2 ECU(s) accepted"), "{answer}");
    // Answered before any slow connection was given up on.
    assert_eq!(slow.iter().filter(|s| still_open(s)).count(), 1000);
    drop(slow);
    server.thread.unwrap().join().unwrap();
}

/// Scenario: Fleet backend | a client sends its request head slower than the deadline | the server closes the connection at the deadline (head, body and answer share one bound)
#[test]
fn a_slow_client_is_cut_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |o| o.deadline = Duration::from_secs(1));
    let head = server.slow();
    assert!(closed_by_server(head));
    // A body that stops halfway: the same.
    let mut body = TcpStream::connect(server.addr).unwrap();
    body.write_all(b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"sig")
        .unwrap();
    assert!(closed_by_server(body));
    // And the server still answers.
    let answer = server.post(&report("VIN1", 1000, 1, both("1.0", 1), vec![]));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// Scenario: Fleet backend | more connections than the server serves at once | each one past the limit is closed at once, and a report is served again as soon as a place is free
#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |o| {
        o.max_connections = 4;
        o.deadline = Duration::from_secs(600);
    });
    let mut slow: Vec<TcpStream> = (0..4).map(|_| server.slow()).collect();
    // The server accepts in arrival order and takes a place before the next accept: when
    // the fifth is accepted, the four hold every place.
    let extra = server.slow();
    assert!(closed_by_server(extra));
    assert!(slow.iter().all(still_open));
    slow.pop();
    // The freed place: a report is served (the server may see the close a moment late: try
    // until it answers).
    let r = report("VIN1", 1000, 1, both("1.0", 1), vec![]);
    let answer = (0..600)
        .map(|_| {
            let a = server.post(&r);
            if a.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
            a
        })
        .find(|a| !a.is_empty())
        .expect("never served");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// Scenario: Fleet backend | requests that are not reports (wrong method, no length, too large, not a report, another vehicle's key) | each answered with its status and reason, logged, nothing recorded; the server carries on
#[test]
fn bad_requests_get_their_status_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |_| {});
    let raw = |req: &[u8]| {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(req).unwrap();
        let mut a = String::new();
        let _ = s.read_to_string(&mut a);
        a
    };
    assert!(raw(b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(raw(b"POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 411 "));
    assert!(
        raw(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").starts_with("HTTP/1.1 413 ")
    );
    let head = [
        b"POST / HTTP/1.1\r\nX: ".as_slice(),
        &[b'a'; 20_000],
        b"\r\n\r\n",
    ]
    .concat();
    assert!(raw(&head).starts_with("HTTP/1.1 431 "));
    assert!(server.post(b"not a report").starts_with("HTTP/1.1 400 "));
    let unknown = server.post(&report("VIN7", 1000, 1, both("1.0", 1), vec![]));
    assert!(
        unknown.starts_with("HTTP/1.1 400 ") && unknown.contains("unknown vehicle VIN7"),
        "{unknown}"
    );
    let ok = server.post(&report("VIN2", 1000, 1, both("1.0", 1), vec![]));
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    let lines = server.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("405 ")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("400 unknown vehicle VIN7")),
        "{lines:?}"
    );
    let mut db = ota_fleet::Db::open(&Location::Sqlite(dir.path().join("reports.sqlite"))).unwrap();
    let vins = db
        .transaction(|tx| tx.rows("SELECT vin FROM vehicles", &[]))
        .unwrap();
    assert_eq!(vins, vec![vec![ota_fleet::sql::Value::Text("VIN2".into())]]);
}
