//! `ota-repo oem report serve`: collect version reports that gateways POST (`report_url` of
//! `ota-gateway run`) and ingest each exactly as `oem report ingest` does.
//!
//! A deliberately small, blocking, one-request-at-a-time HTTP/1.1 server on std's
//! `TcpListener`, meant to listen on localhost behind the TLS-terminating web server that
//! serves the OEM repository (nginx `proxy_pass`). Strict bounds: 16 KiB of request head,
//! a `Content-Length` of at most [`MAX_REPORT`] bytes (no chunked bodies), 10 s per read and
//! write, one request per connection. Answers 200 (ingested, or the same report again),
//! 400 with the reason (malformed, unverifiable, replayed, flagged ECUs), 404, 405, 411, 413.

use super::report::{ingest_bytes, MAX_REPORT};
use crate::error::Result;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

const MAX_HEAD: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve until killed (or `max_requests` requests, for tests). Prints one line per request.
pub fn serve(
    dir: &Path,
    listen: SocketAddr,
    wait: Option<u64>,
    max_requests: Option<u64>,
) -> Result<()> {
    super::Settings::load(dir)?;
    let listener = TcpListener::bind(listen).map_err(crate::error::Error::io(dir))?;
    let local = listener
        .local_addr()
        .map_err(crate::error::Error::io(dir))?;
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();
    let mut served: u64 = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (status, reason) = handle(dir, wait, stream);
        println!("{status} {reason}");
        let _ = std::io::stdout().flush();
        served = served.saturating_add(1);
        if max_requests.is_some_and(|m| served >= m) {
            break;
        }
    }
    Ok(())
}

fn handle(dir: &Path, wait: Option<u64>, stream: TcpStream) -> (u16, String) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(writer) = stream.try_clone() else {
        return (500, "cannot clone the connection".into());
    };
    let (status, reason) = match read_request(stream) {
        Ok(body) => ingest(dir, wait, &body),
        Err(e) => e,
    };
    answer(writer, status, &reason);
    (status, reason)
}

/// The request body, or the status and reason to answer with.
fn read_request(stream: TcpStream) -> std::result::Result<Vec<u8>, (u16, String)> {
    let mut r = BufReader::new(Read::take(stream, (MAX_HEAD as u64) + MAX_REPORT));
    let mut head_len = 0usize;
    let mut line = String::new();
    let mut read_line =
        |r: &mut BufReader<_>, line: &mut String| -> std::result::Result<(), (u16, String)> {
            line.clear();
            let n = r
                .by_ref()
                .take((MAX_HEAD - head_len.min(MAX_HEAD)) as u64)
                .read_line(line)
                .map_err(|e| (400, format!("reading the request: {e}")))?;
            head_len += n;
            if n == 0 || !line.ends_with('\n') {
                return Err((431, "request head too large or cut short".into()));
            }
            Ok(())
        };
    read_line(&mut r, &mut line)?;
    let mut parts = line.split_ascii_whitespace();
    let (method, _path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "POST" {
        return Err((405, format!("method {method:?}: only POST")));
    }
    let mut length: Option<u64> = None;
    loop {
        read_line(&mut r, &mut line)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            return Err((400, "malformed header".into()));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name == "content-length" {
            length = Some(
                value
                    .parse()
                    .map_err(|_| (400, "malformed Content-Length".to_string()))?,
            );
        } else if name == "transfer-encoding" {
            return Err((
                411,
                "chunked bodies are not accepted: send Content-Length".into(),
            ));
        }
    }
    let length = length.ok_or((411, "Content-Length required".to_string()))?;
    if length > MAX_REPORT {
        return Err((
            413,
            format!("{length} bytes; a report is at most {MAX_REPORT}"),
        ));
    }
    let mut body = vec![0u8; usize::try_from(length).map_err(|_| (413, "too large".to_string()))?];
    r.read_exact(&mut body)
        .map_err(|e| (400, format!("body shorter than Content-Length: {e}")))?;
    Ok(body)
}

fn ingest(dir: &Path, wait: Option<u64>, body: &[u8]) -> (u16, String) {
    let _lock = match crate::workdir::lock_waiting(dir, wait) {
        Ok(l) => l,
        Err(e) => return (503, e.to_string()),
    };
    match ingest_bytes(dir, "the POSTed report", body) {
        Ok(r) if r.already_seen => (200, "already seen: the report ingested last".into()),
        Ok(r) if r.flagged.is_empty() => {
            let mut s = format!("ingested: {} ECU(s) accepted", r.accepted.len());
            for c in &r.recalls {
                s.push_str(&format!(
                    "; RECALL: ECU {} runs {} {}, revoked by {}",
                    c.serial, c.uid, c.version, c.regulator
                ));
            }
            (200, s)
        }
        Ok(r) => (
            // Recorded; the vehicle's ECUs wait for the replacement process.
            200,
            format!(
                "ingested; {} ECU(s) flagged for review: {}",
                r.flagged.len(),
                r.flagged
                    .iter()
                    .map(|f| format!("{} ({})", f.serial, f.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(e) => (400, e.to_string()),
    }
}

fn answer(mut w: TcpStream, status: u16, reason: &str) {
    let text = match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{reason}\n");
    let _ = write!(
        w,
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = w.flush();
}
