//! `ota-gateway run`, the gateway as a service, as real processes: against trees served by
//! nginx over HTTPS with a test CA made here, uploading version reports to
//! `ota-repo oem report serve` (a real process: this test binary re-run as the `ota-repo` CLI),
//! stopped by SIGTERM in the middle of a (rate-limited) download and resumed, backing off while
//! the server is down, and spreading its checks with random jitter.

mod world;

use clap::Parser;
use ota_testkit::nginx::Nginx;
use ota_testkit::require_program;
use ota_testkit::tls::TestCa;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use world::World;

const SERVE_ARGS: &str = "OTA_TEST_REPORT_SERVE_ARGS";

/// Not a test by itself: the `ota-repo` CLI when re-run by `ReportServer::start`.
#[test]
fn ota_repo_cli_process() {
    let Ok(args) = std::env::var(SERVE_ARGS) else {
        return;
    };
    let cli =
        ota_repo::cli::Cli::parse_from(std::iter::once("ota-repo").chain(args.split('\u{1f}')));
    if let Err(e) = ota_repo::run::run(cli) {
        eprintln!("ota-repo: error: {e}");
        std::process::exit(1);
    }
}

/// `ota-repo oem report serve DIR --listen 127.0.0.1:PORT` as a process; its output lines.
struct ReportServer {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ReportServer {
    fn start(oem: &Path) -> ReportServer {
        Self::start_with(oem, false)
    }

    /// `close_stdout`: close the reading end of the server's stdout once it listens (a log
    /// pipe whose reader died).
    fn start_with(oem: &Path, close_stdout: bool) -> ReportServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = [
            "oem",
            "report",
            "serve",
            &oem.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]
        .join("\u{1f}");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "ota_repo_cli_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVE_ARGS, args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let listening = line.contains("listening on");
                let _ = tx.send(line);
                if listening && close_stdout {
                    // Dropping the reader closes the pipe: the server's next line meets EPIPE.
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("report server did not start");
            if line.contains("listening on") {
                break;
            }
        }
        ReportServer {
            child,
            port,
            lines: rx,
        }
    }

    /// The next answer line the server printed ("200 ingested ...").
    fn answer(&self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("no answer from the report server");
            if line.starts_with(|c: char| c.is_ascii_digit()) {
                return line;
            }
        }
    }
}

impl Drop for ReportServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A world whose trees nginx serves over HTTPS; `slow_images`: image downloads limited to
/// 1000 bytes/s (a 5000-byte image takes seconds).
fn served_world(slow_images: bool) -> Option<(World, Nginx)> {
    let nginx_bin = require_program("nginx", "nginx")?;
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let trees: Vec<(&str, PathBuf)> = ["acme", "oem", "tuv"]
        .iter()
        .map(|n| (*n, tmp.path().join(n).join("repository")))
        .collect();
    for (_, p) in &trees {
        std::fs::create_dir_all(p).unwrap();
    }
    let refs: Vec<(&str, &Path)> = trees.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let extra = if slow_images {
        format!(
            "        location ~ ^/acme/(targets/.+-[0-9.]+\\.bin)$ {{ alias \"{}/$1\"; limit_rate 1000; }}\n",
            std::path::absolute(&trees[0].1).unwrap().display()
        )
    } else {
        String::new()
    };
    let nginx = Nginx::start_tls_with(&nginx_bin, &refs, &ca, &extra);
    let base = nginx.url("x");
    let base = base.trim_end_matches("x/").to_string();
    let world = World::build(
        tmp,
        Some(Box::new(move |name| format!("{base}{name}/"))),
        Some(ca.ca_pem()),
    );
    // The CA files live in the CA's directory: keep it for the world's life.
    std::mem::forget(ca);
    Some((world, nginx))
}

/// The world's gateway configuration, with `top` (top-level keys) and `tail` (tables) added.
fn config(w: &World, file: &str, top: &str, tail: &str) -> PathBuf {
    w.config("BRAKE-A");
    let text = std::fs::read_to_string(w.p("gateway.toml")).unwrap();
    let path = w.p(file);
    std::fs::write(&path, format!("{top}{text}{tail}")).unwrap();
    path
}

fn gateway(cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ota-gateway"));
    c.arg("--config").arg(cfg).args(args);
    c
}

/// The JSON lines of a `run`.
fn log_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line: {l}: {e}"))
        })
        .collect()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn run_updates_logs_one_json_line_per_check_and_uploads_reports() {
    let Some((w, _nginx)) = served_world(false) else {
        return;
    };
    w.assign("S1", "1.0");
    let key = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(w.p("vehicle.pem"), key.to_pkcs8_pem().unwrap()).unwrap();
    ota_repo::oem::vehicle_key(&w.p("oem"), "VIN1", &w.p("vehicle.pem")).unwrap();
    let server = ReportServer::start(&w.p("oem"));
    let cfg = config(
        &w,
        "service.toml",
        &format!(
            "report_url = \"http://127.0.0.1:{}/reports\"\nvehicle_key = \"vehicle.pem\"\n",
            server.port
        ),
        "[service]\ninterval_secs = 1\njitter_secs = 0\nretry_secs = 1\nmax_backoff_secs = 4\n",
    );
    ok(gateway(&cfg, &["init"]).output().unwrap());
    let out = ok(gateway(&cfg, &["run", "--max-checks", "2"])
        .output()
        .unwrap());
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (first, second) = (&lines[0], &lines[1]);
    assert_eq!(first["vin"], "VIN1");
    assert_eq!(first["outcome"], "updated", "{first}");
    assert_eq!(first["ecus_updated"], serde_json::json!(["S1"]));
    assert_eq!(first["report"], "uploaded", "{first}");
    assert_eq!(first["next_check_secs"], 1);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(second["outcome"], "nothing-new", "{second}");
    assert_eq!(second["report"], "uploaded", "{second}");
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        vec![1u8; 5000]
    );
    // The OEM ingested both (the dir forwarder's ECUs cannot sign reports: flagged, and
    // recorded), the second as the newer by the gateway's report counter.
    for _ in 0..2 {
        let a = server.answer();
        assert!(a.starts_with("200 ingested"), "{a}");
    }
    let last = last_counter(&w.p("oem"));
    assert_eq!(last, Some(vec![ota_fleet::sql::Value::Int(2)]));
    // The report said what happened: S1 installed 1.0, in the update of the assignments.
    let events = ota_repo::oem::reports::events(&w.p("oem"), "VIN1").unwrap();
    assert!(
        events.iter().any(|e| e.serial == "S1"
            && e.outcome == ota_metadata::documents::Outcome::Installed
            && e.version == "1.0"
            && e.update.starts_with("assignments v")),
        "{events:?}"
    );
    assert_eq!(
        events.len(),
        1,
        "one install is one event, however many reports carry it"
    );

    // The server's bounds: each bad request gets its status and a reason, and the server
    // carries on.
    let raw = |req: &[u8]| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(req);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    let cases: [(&[u8], &str); 6] = [
        (b"GET /reports HTTP/1.1\r\n\r\n", "405"),
        (b"POST /reports HTTP/1.1\r\n\r\n", "411"),
        (
            b"POST /reports HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "411",
        ),
        (
            b"POST /reports HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            "413",
        ),
        (
            b"POST /reports HTTP/1.1\r\nContent-Length: 5\r\n\r\nnope!",
            "400",
        ),
        (
            b"POST /reports HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort",
            "400",
        ),
    ];
    for (req, status) in cases {
        let answer = raw(req);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {answer}",
            String::from_utf8_lossy(req)
        );
        assert!(server.answer().starts_with(status));
    }
    let huge_head = [b"POST / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 20_000]].concat();
    assert!(raw(&huge_head).starts_with("HTTP/1.1 431 "));
    // The bytes `ota-gateway report` writes, POSTed by any client, are ingested the same way.
    let answer = {
        let out = ok(gateway(&cfg, &["report"]).output().unwrap());
        let mut req = format!(
            "POST /reports HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            out.stdout.len()
        )
        .into_bytes();
        req.extend_from_slice(&out.stdout);
        raw(&req)
    };
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[test]
fn errors_back_off_exponentially_up_to_the_cap() {
    let Some((w, _nginx)) = served_world(false) else {
        return;
    };
    // Nothing listens on port 1: every check fails to connect.
    let cfg = config(
        &w,
        "down.toml",
        "",
        "[service]\ninterval_secs = 60\njitter_secs = 0\nretry_secs = 1\nmax_backoff_secs = 4\n",
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(&w.url("oem"), "https://127.0.0.1:1/oem/");
    std::fs::write(&cfg, text).unwrap();
    ok(gateway(&cfg, &["init"]).output().unwrap());
    let out = ok(gateway(&cfg, &["run", "--max-checks", "4"])
        .output()
        .unwrap());
    let lines = log_lines(&out);
    let delays: Vec<u64> = lines
        .iter()
        .map(|l| l["next_check_secs"].as_u64().unwrap())
        .collect();
    // 1, 2, 4, then the cap (plus at most a tenth of jitter, 0 at these sizes).
    assert_eq!(delays, [1, 2, 4, 4], "{lines:?}");
    for l in &lines {
        assert_eq!(l["outcome"], "failed", "{l}");
        assert_eq!(l["error_kind"], "walk", "{l}");
        assert!(l["error"].as_str().unwrap().contains("refused"), "{l}");
    }
}

#[test]
fn checks_are_spread_by_random_jitter_within_bounds() {
    let Some((w, _nginx)) = served_world(false) else {
        return;
    };
    let cfg = config(
        &w,
        "jitter.toml",
        "",
        "[service]\ninterval_secs = 1000\njitter_secs = 3\n",
    );
    ok(gateway(&cfg, &["init"]).output().unwrap());
    let mut delays = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let start = Instant::now();
        let out = ok(gateway(&cfg, &["run", "--once"]).output().unwrap());
        // The first check waits a random delay in [0, jitter].
        assert!(start.elapsed() < Duration::from_secs(3 + 20));
        let l = &log_lines(&out)[0];
        assert_eq!(l["outcome"], "nothing-new", "{l}");
        let d = l["next_check_secs"].as_u64().unwrap();
        assert!((997..=1003).contains(&d), "{d}");
        delays.insert(d);
    }
    assert!(delays.len() > 1, "six runs, one delay: {delays:?}");
}

/// Every `.partial-*` file under `dir` (a download in progress or stopped).
fn partials(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".partial-") {
                out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    out
}

#[test]
fn sigterm_mid_download_stops_cleanly_and_the_next_run_resumes() {
    let Some((w, nginx)) = served_world(true) else {
        return;
    };
    let Some(kill) = require_program("kill", "procps") else {
        return;
    };
    w.assign("S1", "1.0");
    let cfg = config(
        &w,
        "slow.toml",
        "",
        "[service]\ninterval_secs = 60\njitter_secs = 0\n[limits]\nmin_bytes_per_sec = 0\n",
    );
    ok(gateway(&cfg, &["init"]).output().unwrap());
    let mut child = gateway(&cfg, &["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the image is partly downloaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let image = |p: &Path| !p.to_string_lossy().contains("manifest");
        if partials(&w.p("state"))
            .iter()
            .any(|(p, n)| *n > 0 && image(p))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no download started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped_at = Instant::now();
    assert!(Command::new(&kill)
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // A guard against a hang only: that the stop came mid-download, not after it, is
        // shown below by the partial image (shorter than the image) it leaves behind.
        assert!(
            stopped_at.elapsed() < Duration::from_secs(60),
            "did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["stopped"], true, "{}", lines[0]);
    assert_eq!(lines[0]["outcome"], "failed", "{}", lines[0]);
    assert_eq!(lines[0]["error_kind"], "stopped", "{}", lines[0]);
    // The partial image stays, and nothing was installed.
    let held = partials(&w.p("state"));
    assert!(held.iter().any(|(_, n)| *n > 0 && *n < 5000), "{held:?}");
    assert!(!w.p("ecus/S1/image.bin").exists());
    // The next run resumes it (a Range request: 206) and installs.
    let out = ok(gateway(&cfg, &["run", "--once"]).output().unwrap());
    let l = &log_lines(&out)[0];
    assert_eq!(l["outcome"], "updated", "{l}");
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        vec![1u8; 5000]
    );
    assert!(partials(&w.p("state")).is_empty());
    let log = nginx.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains(".bin") && l.contains(" 206 ")),
        "no ranged request for the image:\n{log}"
    );
}

/// POST `body` to the report server on `port`; the whole answer.
fn post(port: u16, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "POST /reports HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// Scenario: Fleet backend | the report server's stdout is a closed pipe (its log reader died) while another command holds the OEM working directory's lock | reports are still answered 200 and recorded: a log line that cannot be written is dropped, and ingesting takes no lock
#[test]
fn the_report_server_answers_with_a_closed_stdout_while_the_directory_is_locked() {
    let w = World::new();
    let key = ota_metadata::SigningKey::generate(2048).unwrap();
    std::fs::write(w.p("vehicle.pem"), key.to_pkcs8_pem().unwrap()).unwrap();
    ota_repo::oem::vehicle_key(&w.p("oem"), "VIN1", &w.p("vehicle.pem")).unwrap();
    let cfg = config(&w, "report.toml", "vehicle_key = \"vehicle.pem\"\n", "");
    ok(gateway(&cfg, &["init"]).output().unwrap());
    let mut server = ReportServer::start_with(&w.p("oem"), true);
    let _lock = ota_repo::workdir::lock(&w.p("oem")).unwrap();
    for round in 1..=3 {
        let report = ok(gateway(&cfg, &["report"]).output().unwrap()).stdout;
        let answer = post(server.port, &report);
        assert!(
            answer.starts_with("HTTP/1.1 200 "),
            "report {round}: {answer}"
        );
        assert!(answer.contains("ingested"), "report {round}: {answer}");
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server stopped"
    );
    let last = last_counter(&w.p("oem"));
    assert_eq!(last, Some(vec![ota_fleet::sql::Value::Int(3)]));
}

/// The report counter of VIN1's newest report the OEM recorded.
fn last_counter(oem: &Path) -> Option<Vec<ota_fleet::sql::Value>> {
    ota_repo::oem::reports::open(oem)
        .unwrap()
        .transaction(|tx| {
            tx.row(
                "SELECT last_counter FROM vehicles WHERE vin = $1",
                &["VIN1".into()],
            )
        })
        .unwrap()
}
