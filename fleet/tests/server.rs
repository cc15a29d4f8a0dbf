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

/// Scenario: Fleet backend | one client opens and holds every connection the server serves at once (no key needed) | a valid report still gets a place (the oldest connection is closed to make room) and is answered 200
#[test]
fn a_client_holding_every_connection_does_not_lock_out_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |o| {
        o.max_connections = 4;
        o.deadline = Duration::from_secs(600);
    });
    let slow: Vec<TcpStream> = (0..4).map(|_| server.slow()).collect();
    let answer = server.post(&report("VIN1", 1000, 1, both("1.0", 1), vec![]));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // The oldest slow connection made room.
    let mut slow = slow.into_iter();
    assert!(closed_by_server(slow.next().unwrap()));
}

/// Scenario: Fleet backend | the report server's log reader stops reading (a full pipe) | reports are still answered: log lines are queued and dropped when the queue is full, never written from a request
#[test]
fn a_log_reader_that_stops_reading_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let at = Location::Sqlite(dir.path().join("reports.sqlite"));
    let opts = Options::new("127.0.0.1:0".parse().unwrap());
    // A log that blocks for good on its first line, as a write to a full pipe does.
    let (_keep, stuck) = mpsc::channel::<()>();
    let stuck = Mutex::new(stuck);
    let log: Log = Arc::new(move |_: &str| {
        let _ = stuck.lock().unwrap().recv();
    });
    let (tx, rx) = mpsc::channel();
    let inventory = Arc::new(inventory(&["VIN1", "VIN2"]));
    std::thread::spawn(move || {
        let _ = serve(&at, inventory, opts, log, |a| tx.send(a).unwrap());
    });
    let addr = rx.recv_timeout(PATIENCE).unwrap();
    let server = Server {
        addr,
        lines: Arc::new(Mutex::new(Vec::new())),
        thread: None,
    };
    for i in 0..2000u64 {
        let answer = server.post(b"junk");
        assert!(answer.starts_with("HTTP/1.1 400 "), "request {i}: {answer}");
    }
    let answer = server.post(&report("VIN1", 1000, 1, both("1.0", 1), vec![]));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// Scenario: Fleet backend | many clients send large report bodies at once and hold them (memory, no key needed) | bodies in flight stay within the server's budget: past it a request is answered 503 at once; a body over 1 MiB is refused before it is read
#[test]
fn bodies_in_flight_are_bounded_by_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |o| {
        o.body_budget = 2 << 20;
        o.deadline = Duration::from_secs(600);
    });
    let big = |n: usize| {
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(s, "POST / HTTP/1.1\r\nContent-Length: {n}\r\n\r\n{{\"sig").unwrap();
        s
    };
    let held: Vec<TcpStream> = (0..2).map(|_| big(1_000_000)).collect();
    // Both hold their room once the server has read their heads; a third waits for none.
    let third = (0..600)
        .map(|_| {
            let mut s = big(1_000_000);
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut a = String::new();
            let _ = s.read_to_string(&mut a);
            a
        })
        .find(|a| a.starts_with("HTTP/1.1 503 "))
        .expect("the budget never filled");
    assert!(third.contains("busy"), "{third}");
    drop(held);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n").unwrap();
    let mut a = String::new();
    let _ = s.read_to_string(&mut a);
    assert!(a.starts_with("HTTP/1.1 413 "), "{a}");
}

/// Scenario: Fleet backend | a client sends a report whose fields carry terminal escape sequences and newlines (no key needed) | the answer and the server's log line show them escaped: no forged log line, no escape reaches the operator's terminal
#[test]
fn answers_and_log_lines_never_carry_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), |_| {});
    let evil = br#"{"signed": {"_type": "[2J
200 ingested: 9 ECU(s) accepted"}, "signatures": []}"#;
    let answer = server.post(evil);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(!body.trim_end().chars().any(|c| c.is_control()), "{body:?}");
    let lines = server.lines.lock().unwrap().clone();
    assert!(
        lines.iter().all(|l| !l.chars().any(|c| c.is_control())),
        "{lines:?}"
    );
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
