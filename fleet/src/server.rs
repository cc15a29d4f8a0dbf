//! The ingest endpoint gateways POST version reports to (`report_url` of `ota-gateway run`).
//!
//! Plain HTTP/1.1 on hyper and tokio, meant for loopback behind the TLS web server that serves
//! the OEM repository (`deploy/`'s nginx site). What an attacker can make it spend is bounded:
//! - **Connections**: at most `max_connections` at once; past that a new connection is closed at
//!   once. A slow client holds a socket and a small task, never a thread, so a thousand of them
//!   do not delay a valid report.
//! - **Time**: one deadline covers a connection's whole life (head, body, answer); one request
//!   per connection.
//! - **Bytes**: a body of at most [`MAX_REPORT`]; the head at hyper's bound.
//! - **State**: nothing is locked or written before the report's signatures verify (on the
//!   blocking pool, so verification never stalls the accept loop); the database's writer
//!   thread records verified reports in batches, one commit for all of a batch.

use crate::error::{FleetError, Result};
use crate::report::{Inventory, Verdict, MAX_REPORT};
use crate::sql::{Db, Location};
use crate::store::Applied;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;

pub struct Options {
    pub listen: SocketAddr,
    /// Connections served at once.
    pub max_connections: usize,
    /// The whole life of a connection.
    pub deadline: Duration,
    /// Reports per database commit, at most.
    pub batch: usize,
    /// Stop after this many requests (tests).
    pub max_requests: Option<u64>,
    /// Bytes of request bodies held in memory at once, over every connection; a request
    /// that would pass it is answered 503 at once.
    pub body_budget: u64,
}

impl Options {
    pub fn new(listen: SocketAddr) -> Self {
        Options {
            listen,
            max_connections: 4096,
            deadline: Duration::from_secs(10),
            batch: 256,
            max_requests: None,
            body_budget: 64 << 20,
        }
    }
}

/// Where each request's outcome line goes (stdout in the CLI: a closed stdout must not stop
/// the server, so the writer ignores errors).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// One verified report waiting for the writer, and where its outcome goes.
struct Job {
    verdict: Verdict,
    answer: oneshot::Sender<Result<Applied>>,
}

struct Shared {
    inventory: Arc<dyn Inventory>,
    jobs: mpsc::Sender<Job>,
    log: Log,
    /// Body bytes that may be buffered, in KiB.
    bodies: Arc<Semaphore>,
    /// Reports parsed and verified at once (parsing costs memory: a few times the body).
    verifying: Arc<Semaphore>,
    served: AtomicU64,
    max_requests: Option<u64>,
    done: Notify,
}

/// Bind, call `listening` with the bound address, and serve until killed (or `max_requests`).
pub fn serve(
    at: &Location,
    inventory: Arc<dyn Inventory>,
    opts: Options,
    log: Log,
    listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let db = Db::open(at)?;
    let max_connections = opts.max_connections.min(file_budget());
    let listener = std::net::TcpListener::bind(opts.listen).map_err(|e| FleetError::Io {
        path: opts.listen.to_string().into(),
        source: e,
    })?;
    let local = listener.local_addr().map_err(|e| FleetError::Io {
        path: opts.listen.to_string().into(),
        source: e,
    })?;
    listener.set_nonblocking(true).map_err(|e| FleetError::Io {
        path: local.to_string().into(),
        source: e,
    })?;
    let (jobs, queue) = mpsc::channel(opts.batch.max(1) * 4);
    let batch = opts.batch.max(1);
    let writer = std::thread::Builder::new()
        .name("report-writer".into())
        .spawn(move || write_batches(db, queue, batch))
        .map_err(|e| FleetError::Database(format!("starting the writer: {e}")))?;
    if opts.max_connections == 0 {
        return Err(FleetError::Refused(
            "--max-connections 0 would refuse every connection".into(),
        ));
    }
    let shared = Arc::new(Shared {
        inventory,
        jobs,
        log: nonblocking(log),
        bodies: Arc::new(Semaphore::new(
            usize::try_from((opts.body_budget / 1024).max(1)).unwrap_or(usize::MAX >> 4),
        )),
        verifying: Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
        served: AtomicU64::new(0),
        max_requests: opts.max_requests,
        done: Notify::new(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| FleetError::Database(format!("starting the runtime: {e}")))?;
    listening(local);
    let served = rt.block_on(accept_loop(
        listener,
        shared,
        max_connections,
        opts.deadline,
    ));
    drop(rt);
    // The last sender is gone: the writer finishes its queue and stops.
    writer
        .join()
        .map_err(|_| FleetError::Database("the writer thread panicked".into()))?;
    served
}

/// Log lines go to a thread of their own through a bounded queue, dropped when it is full: a
/// log reader that stops reading (a full pipe) never stalls a request.
fn nonblocking(log: Log) -> Log {
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
    let writer = std::thread::Builder::new()
        .name("report-log".into())
        .spawn(move || {
            for line in rx {
                log(&line);
            }
        });
    if writer.is_err() {
        return Arc::new(|_: &str| {});
    }
    let dropped = Arc::new(AtomicU64::new(0));
    Arc::new(move |line: &str| {
        let lost = dropped.swap(0, Ordering::SeqCst);
        let line = if lost > 0 {
            format!("({lost} log line(s) dropped: the log was not read) {line}")
        } else {
            line.to_string()
        };
        if tx.try_send(line).is_err() {
            dropped.fetch_add(lost + 1, Ordering::SeqCst);
        }
    })
}

/// `s` with control characters escaped: answers and log lines quote what clients sent.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// As many connections as open files allow, keeping some for the database and the process.
fn file_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    // Raise the soft limit to the hard one: a thousand slow clients need a thousand sockets.
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    let current = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(current.saturating_sub(64)).unwrap_or(usize::MAX)
}

/// The connections being served: when every place is taken, the oldest is closed to make
/// room (a slow client holds a place for at most as long as new clients keep away).
#[derive(Default)]
struct Connections {
    next: u64,
    open: std::collections::BTreeMap<u64, tokio::task::AbortHandle>,
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    deadline: Duration,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| FleetError::Io {
        path: "listener".into(),
        source: e,
    })?;
    let slots = Arc::new(Semaphore::new(max_connections));
    let open = Arc::new(std::sync::Mutex::new(Connections::default()));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => r,
            _ = shared.done.notified() => break,
        };
        let Ok((stream, _peer)) = stream else {
            // Out of descriptors or a reset before accept: wait a moment, go on.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Full: the oldest connection makes room (its task is cancelled, its place
                // returned); a client that holds every place loses them, one per newcomer.
                let oldest = {
                    let mut c = open.lock().unwrap_or_else(|p| p.into_inner());
                    c.open.pop_first().map(|(_, h)| h)
                };
                if let Some(h) = oldest {
                    h.abort();
                }
                match tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(slot)) => slot,
                    _ => continue,
                }
            }
        };
        let shared = shared.clone();
        let id = {
            let mut c = open.lock().unwrap_or_else(|p| p.into_inner());
            c.next += 1;
            c.next
        };
        let registry = open.clone();
        // The task waits until it is registered: it cannot finish (and unregister) before.
        let (go, registered) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = registered.await;
            serve_connection(stream, shared, deadline).await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .remove(&id);
            drop(slot);
        });
        open.lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .insert(id, task.abort_handle());
        let _ = go.send(());
    }
    // Let the connections in flight finish (each within its deadline).
    let _ = slots.acquire_many(max_connections as u32).await;
    Ok(())
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, deadline: Duration) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, &shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        // A client that shuts its side after the request still gets the answer.
        .half_close(true)
        // The request head's bound (hyper answers 431 past it).
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, svc);
    // One deadline for the whole connection: a slow head, a slow body and a slow reader of
    // the answer are all cut at the same bound.
    let _ = tokio::time::timeout(deadline, conn).await;
}

async fn handle(req: Request<hyper::body::Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (status, text) = outcome(req, shared).await;
    let text = printable(&text);
    (shared.log)(&format!("{} {text}", status.as_u16()));
    let served = shared.served.fetch_add(1, Ordering::SeqCst) + 1;
    if shared.max_requests.is_some_and(|m| served >= m) {
        shared.done.notify_one();
    }
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("connection", "close")
        .body(Full::new(Bytes::from(format!("{text}\n"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn outcome(req: Request<hyper::body::Incoming>, shared: &Shared) -> (StatusCode, String) {
    if req.method() != hyper::Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {}: only POST", req.method()),
        );
    }
    // A length up front (gateways always send one), so an oversized report is refused
    // before a byte of it is read.
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared else {
        return (
            StatusCode::LENGTH_REQUIRED,
            "Content-Length required (chunked bodies are not accepted)".into(),
        );
    };
    if declared > MAX_REPORT {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{declared} bytes; a report is at most {MAX_REPORT}"),
        );
    }
    // Room for the body in the server's budget, or 503 now (never a queue of buffers).
    let kib = u32::try_from(declared.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(_room) = shared.bodies.clone().try_acquire_many_owned(kib) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many report bodies in flight; send it again later".into(),
        );
    };
    let body = match Limited::new(req.into_body(), MAX_REPORT as usize)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("body shorter than Content-Length, or cut: {e}"),
            )
        }
    };
    let Ok(turn) = shared.verifying.clone().acquire_owned().await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping".into(),
        );
    };
    let inventory = shared.inventory.clone();
    let verdict = tokio::task::spawn_blocking(move || crate::report::verify(&*inventory, &body))
        .await
        .unwrap_or_else(|e| Err(FleetError::Database(format!("verifier: {e}"))));
    // The turn bounds verifying, not waiting for the writer: held across the commit it would
    // let only as many reports into a batch as there are cores, and every commit would carry
    // one or two (the writer then waits on the database's round trips, report after report).
    drop(turn);
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => return status_of(&e),
    };
    let (answer, outcome) = oneshot::channel();
    if shared.jobs.send(Job { verdict, answer }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the report writer stopped".into(),
        );
    }
    match outcome.await {
        Ok(Ok(applied)) => (StatusCode::OK, crate::describe(&applied)),
        Ok(Err(e)) => status_of(&e),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the report writer stopped".into(),
        ),
    }
}

fn status_of(e: &FleetError) -> (StatusCode, String) {
    let status = if e.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, e.to_string())
}

/// The writer thread: take what is queued (up to `batch`), record it in one transaction,
/// answer each; until every sender is gone.
fn write_batches(mut db: Db, mut queue: mpsc::Receiver<Job>, batch: usize) {
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < batch {
            match queue.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // By VIN (arrival order kept within one): two nodes' batches lock vehicle rows in the
        // same order, so they cannot deadlock.
        jobs.sort_by(|a, b| a.verdict.vin.cmp(&b.verdict.vin));
        let now = crate::now();
        let verdicts: Vec<&crate::report::Verdict> = jobs.iter().map(|j| &j.verdict).collect();
        // A report refused (a replay) wrote nothing; a database failure spoils the
        // transaction: the whole batch fails, and each gateway sends its report again.
        let results = db.transaction(|tx| crate::store::apply_batch(tx, &verdicts, now));
        match results {
            Ok(results) => {
                for (j, r) in jobs.into_iter().zip(results) {
                    let _ = j.answer.send(r);
                }
            }
            Err(e) => {
                for j in jobs {
                    let _ = j
                        .answer
                        .send(Err(FleetError::Database(format!("not recorded: {e}"))));
                }
            }
        }
    }
}
