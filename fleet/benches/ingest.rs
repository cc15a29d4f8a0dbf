//! The ingest server under load, on SQLite and on a real PostgreSQL server, in one run:
//! - reports ingested per second (each with the vehicle's and two ECUs' RSA-2048 signatures
//!   verified), from 64 concurrent clients (on the same two cores), one connection per report, as gateways send them;
//! - a valid report's latency while 1,000 slowloris connections are open;
//! - the reference measured in the same run: the signature checks alone (three RSA-2048
//!   verifications per report, on both cores), the bound no server could beat.
//!
//! `cargo bench -p ota-fleet --bench ingest [-- --quick]` (or `OTA_BENCH_QUICK=1`). Figures are
//! medians of the run.

use ota_fleet::report::{KnownEcu, KnownVehicle};
use ota_fleet::server::{serve, Log, Options};
use ota_fleet::Location;
use ota_metadata::documents::version_report::ecu_report_message;
use ota_metadata::documents::{EcuReport, VehicleVersionReport};
use ota_metadata::{DateTime, SigningKey};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;

fn field(s: &str) -> [u8; 32] {
    let mut f = [0u8; 32];
    f[..s.len()].copy_from_slice(s.as_bytes());
    f
}

fn ecu_entry(key: &SigningKey, serial: &str) -> EcuReport {
    let mut id = [0u8; ota_ecu::uds::IDENTIFICATION_LEN];
    id[0..32].copy_from_slice(&field(serial));
    id[32..64].copy_from_slice(&field("BRAKE-A"));
    id[64..96].copy_from_slice(&field("brake-fw"));
    id[96..128].copy_from_slice(&field("1.0"));
    id[168..176].copy_from_slice(&1u64.to_be_bytes());
    let nonce = [3u8; 16];
    let sig = key.sign(&ecu_report_message(&id, &nonce)).unwrap();
    EcuReport {
        serial: serial.into(),
        hardware_id: "BRAKE-A".into(),
        uid: "brake-fw".into(),
        version: "1.0".into(),
        sha256: hex::encode([0u8; 32]),
        length: 0,
        release_counter: 1,
        identification: hex::encode(id),
        nonce: hex::encode(nonce),
        signature: hex::encode(sig),
    }
}

struct Fleet {
    inventory: BTreeMap<String, Arc<KnownVehicle>>,
    reports: Vec<Vec<u8>>,
}

/// `n` vehicles with two ECUs each, and one signed report of each (the ECUs' entries signed
/// once: an ECU signs its identification, not the VIN).
fn fleet(n: usize, vehicle: &SigningKey, ecu: &SigningKey) -> Fleet {
    let entries = vec![ecu_entry(ecu, "S1"), ecu_entry(ecu, "S2")];
    let known = Arc::new(KnownVehicle {
        key: Some(vehicle.public().clone()),
        ecus: ["S1", "S2"]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    KnownEcu {
                        hardware_id: "BRAKE-A".into(),
                        aftermarket: false,
                        key: Some(ecu.public().clone()),
                    },
                )
            })
            .collect(),
    });
    let mut inventory = BTreeMap::new();
    let mut reports = Vec::with_capacity(n);
    for i in 0..n {
        let vin = format!("WDD{i:014}");
        inventory.insert(vin.clone(), known.clone());
        let mut doc =
            VehicleVersionReport::new(&vin, DateTime(1_000_000), entries.clone(), Vec::new());
        doc.extra.insert("counter".into(), 1.into());
        reports.push(ota_metadata::sign_document(&doc, &[vehicle]).unwrap());
    }
    Fleet { inventory, reports }
}

fn post(addr: SocketAddr, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // One write for head and body, as an HTTP client library sends them: pieces written one
    // after another would wait on Nagle's algorithm and the server's delayed ACK (tens of
    // milliseconds each), and the bench would time the loopback's TCP, not the server.
    let mut request = format!(
        "POST /reports HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    s.write_all(&request).unwrap();
    let mut a = String::new();
    let _ = s.read_to_string(&mut a);
    a
}

fn start(at: Location, fleet: &Fleet, deadline: Duration) -> SocketAddr {
    let mut opts = Options::new("127.0.0.1:0".parse().unwrap());
    opts.deadline = deadline;
    let inventory = Arc::new(fleet.inventory.clone());
    let log: Log = Arc::new(|_: &str| {});
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        serve(&at, inventory, opts, log, |a| tx.send(a).unwrap()).unwrap();
    });
    rx.recv().unwrap()
}

/// Reports per second from CLIENTS concurrent clients, every answer checked.
fn throughput(addr: SocketAddr, reports: &[Vec<u8>]) -> f64 {
    let reports = Arc::new(reports.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (reports, next) = (reports.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(r) = reports.get(i) else { return };
                let a = post(addr, r);
                assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    reports.len() as f64 / t.elapsed().as_secs_f64()
}

/// Latencies of `n` valid reports sent one after another while 1,000 slow connections are
/// open; (median, max) in milliseconds.
fn latency_under_slowloris(addr: SocketAddr, reports: &[Vec<u8>]) -> (f64, f64) {
    let slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /reports HTTP/1.1\r\nContent-Le")
                .unwrap();
            s
        })
        .collect();
    let mut ms: Vec<f64> = reports
        .iter()
        .map(|r| {
            let t = Instant::now();
            let a = post(addr, r);
            assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    drop(slow);
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

/// The reference: the report's three signature checks alone, on two threads.
fn verify_only(fleet: &Fleet) -> f64 {
    let inv = Arc::new(fleet.inventory.clone());
    let reports = Arc::new(fleet.reports.clone());
    let t = Instant::now();
    let halves: Vec<_> = (0..2)
        .map(|h| {
            let (inv, reports) = (inv.clone(), reports.clone());
            std::thread::spawn(move || {
                for r in reports.iter().skip(h).step_by(2) {
                    ota_fleet::report::verify(&*inv, r).unwrap();
                }
            })
        })
        .collect();
    for h in halves {
        h.join().unwrap();
    }
    fleet.reports.len() as f64 / t.elapsed().as_secs_f64()
}

/// Fill a database with `n` vehicles' ECU rows (1% on brake-fw 2.0, the rest on 1.0) and
/// time three queries; seconds (fill, count, list, behind).
fn queries(path: &std::path::Path, n: usize) -> (f64, f64, f64, f64) {
    use ota_fleet::report::{EcuState, Running};
    let mut db = ota_fleet::Db::open(&Location::Sqlite(path.to_path_buf())).unwrap();
    let t = Instant::now();
    db.transaction(|tx| {
        for i in 0..n {
            let vin = format!("WDD{i:014}");
            let version = if i % 100 == 0 { "2.0" } else { "1.0" };
            for serial in ["S1", "S2"] {
                let e = EcuState {
                    serial: serial.into(),
                    hardware_id: "BRAKE-A".into(),
                    image: Some(Running {
                        uid: "brake-fw".into(),
                        version: version.into(),
                        sha256: String::new(),
                        release_counter: if version == "2.0" { 2 } else { 1 },
                    }),
                };
                ota_fleet::store::record_ecu(tx, &vin, &e, 1_000_000)?;
            }
        }
        Ok(())
    })
    .unwrap();
    let fill = t.elapsed().as_secs_f64();
    let timed = |db: &mut ota_fleet::Db, f: &dyn Fn(&mut dyn ota_fleet::sql::Tx) -> usize| {
        let t = Instant::now();
        let n = db.transaction(|tx| Ok(f(tx))).unwrap();
        assert!(n > 0);
        t.elapsed().as_secs_f64()
    };
    let count = timed(&mut db, &|tx| {
        ota_fleet::query::count_running(tx, "brake-fw", "1.0").unwrap() as usize
    });
    let list = timed(&mut db, &|tx| {
        ota_fleet::query::running(tx, "brake-fw", "2.0")
            .unwrap()
            .len()
    });
    let behind = timed(&mut db, &|tx| {
        ota_fleet::query::count_behind(tx, &["BRAKE-A".into()], 2).unwrap() as usize
    });
    (fill, count, list, behind)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("OTA_BENCH_QUICK").is_some_and(|v| v == "1");
    let n = if quick { 600 } else { 3000 };
    let runs = if quick { 1 } else { 3 };
    let vehicle = SigningKey::generate(2048).unwrap();
    let ecu = SigningKey::generate(2048).unwrap();
    // One fleet per run and database: a report is ingested once (the next run's are newer).
    let fleets: Vec<Fleet> = (0..runs).map(|_| fleet(n, &vehicle, &ecu)).collect();
    let reference = median(fleets.iter().map(verify_only).collect());
    println!("ingest benchmark: {n} reports per run, {runs} run(s), {CLIENTS} clients, 2 ECUs per report");
    println!("{:<44} {:>12} {:>10}", "", "reports/s", "ratio");
    println!(
        "{:<44} {:>12.0} {:>10}",
        "reference: signature checks alone (2 threads)", reference, "1.00"
    );
    let dir = tempfile::tempdir().unwrap();
    let pg = ota_testkit::postgres::PgServer::start();
    let mut backends = vec![("SQLite", Location::Sqlite(dir.path().join("bench.sqlite")))];
    match &pg {
        Some(pg) => backends.push(("PostgreSQL", Location::Postgres(pg.database("bench")))),
        None => println!("PostgreSQL: not installed, its rows are skipped"),
    }
    let mut skipped = pg.is_none();
    // OTA_BENCH_ONLY=PostgreSQL (or SQLite) runs that backend's row alone, for profiling.
    let only = std::env::var("OTA_BENCH_ONLY").ok();
    if only.is_some() {
        skipped = true;
    }
    for (name, at) in &backends {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let mut rates = Vec::new();
        for (run, f) in fleets.iter().enumerate() {
            // A fresh database per run, so each ingests new reports.
            let at = match at {
                Location::Sqlite(p) => Location::Sqlite(p.with_extension(format!("{run}"))),
                Location::Postgres(_) => Location::Postgres(
                    pg.as_ref()
                        .map(|p| p.database(&format!("bench{run}")))
                        .unwrap_or_default(),
                ),
            };
            let addr = start(at, f, Duration::from_secs(600));
            rates.push(throughput(addr, &f.reports));
        }
        let rate = median(rates);
        println!(
            "{:<44} {:>12.0} {:>10.2}",
            format!("ingest server, {name}"),
            rate,
            rate / reference
        );
    }
    if let Some(o) = only {
        println!("SKIPPED: every row but {o} (OTA_BENCH_ONLY)");
        return;
    }
    // Latency under attack, SQLite (the default).
    let f = &fleets[0];
    let at = Location::Sqlite(dir.path().join("slowloris.sqlite"));
    let addr = start(at, f, Duration::from_secs(600));
    let sample = if quick { 20 } else { 100 };
    let (med, max) = latency_under_slowloris(addr, &f.reports[..sample]);
    println!(
        "valid report with 1,000 slow connections open: median {med:.1} ms, max {max:.1} ms ({sample} reports; goal: within 1 s)"
    );
    // A fleet query over a million vehicles (two ECUs each), SQLite.
    let vehicles = if quick { 100_000 } else { 1_000_000 };
    let (fill, count, list, behind) = queries(&dir.path().join("fleet.sqlite"), vehicles);
    println!(
        "{vehicles} vehicles ({} ECU rows): filled in {fill:.1} s; `fleet running --count` {count:.3} s, `fleet running` (1% of the fleet) {list:.3} s, `fleet behind --count` {behind:.3} s (goal: a query within 1 s)",
        vehicles * 2
    );
    if pg.is_none() {
        skipped = true;
    }
    let sections = ota_testkit::bench::Skipped::new();
    if skipped {
        sections.add("the PostgreSQL rows (install postgresql)");
    }
    println!("{}", sections.last_line());
}
