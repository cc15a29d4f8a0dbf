//! The SLCAN bridge behind `ota-slcan-bridge`: a serial-line CAN port joined to the
//! UDP-carried CAN bus (see the binary's documentation).

use crate::bus::{decode_frame, encode_frame};
use crate::slcan::{self, Decoder, Line};
use std::boxed::Box;
use std::format;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::vec::Vec;
use std::{eprintln, println};

pub const USAGE: &str = "usage: ota-slcan-bridge --serial tcp:HOST:PORT|PATH --bind ADDR --peer ADDR [--peer ADDR …] [--connect-timeout SECONDS] [--cut-after-frames N]";

pub struct Args {
    pub serial: String,
    pub bind: SocketAddr,
    pub peers: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// Stop carrying frames onto the line after this many (a cable pulled mid-transfer;
    /// `--cut-after-frames`, for tests).
    pub cut_after_frames: Option<u64>,
}

pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut serial, mut bind, mut peers, mut timeout) = (None, None, Vec::new(), 30u64);
    let mut cut = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--serial" => serial = Some(value()?),
            "--bind" => bind = Some(value()?.parse().map_err(|e| format!("--bind: {e}"))?),
            "--peer" => peers.push(value()?.parse().map_err(|e| format!("--peer: {e}"))?),
            "--connect-timeout" => {
                timeout = value()?
                    .parse()
                    .map_err(|e| format!("--connect-timeout: {e}"))?
            }
            "--cut-after-frames" => {
                cut = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--cut-after-frames: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        serial: serial.ok_or(format!("--serial is required\n{USAGE}"))?,
        bind: bind.ok_or(format!("--bind is required\n{USAGE}"))?,
        peers,
        connect_timeout: Duration::from_secs(timeout),
        cut_after_frames: cut,
    })
}

/// The serial side, as two halves (one per direction).
type Halves = (Box<dyn Read + Send>, Box<dyn Write + Send>);

fn open_serial(spec: &str, timeout: Duration) -> Result<Halves, String> {
    if let Some(addr) = spec.strip_prefix("tcp:") {
        let deadline = Instant::now() + timeout;
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    let w = s.try_clone().map_err(|e| e.to_string())?;
                    return Ok((Box::new(s), Box::new(w)));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("--serial {spec}: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(spec)
        .map_err(|e| format!("--serial {spec}: {e}"))?;
    let w = f.try_clone().map_err(|e| format!("--serial {spec}: {e}"))?;
    Ok((Box::new(f), Box::new(w)))
}

/// `OTA_SLCAN_TRACE=1`: every frame bridged, on standard error.
fn trace() -> bool {
    std::env::var_os("OTA_SLCAN_TRACE").is_some_and(|v| v == "1")
}

pub fn run(a: Args) -> Result<(), String> {
    let socket = UdpSocket::bind(a.bind).map_err(|e| format!("--bind {}: {e}", a.bind))?;
    let (mut rx, mut tx) = open_serial(&a.serial, a.connect_timeout)?;
    println!(
        "bridging {} <-> UDP {} (peers {:?})",
        a.serial, a.bind, a.peers
    );
    // The bus to the line.
    let from_bus = socket.try_clone().map_err(|e| e.to_string())?;
    // Wakes up to see whether the line closed: the bridge then ends whole, its port free.
    from_bus
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let line_closed = closed.clone();
    let cut = a.cut_after_frames;
    let bus_side = std::thread::spawn(move || {
        let mut carried = 0u64;
        let mut buf = [0u8; 128];
        let mut line = [0u8; slcan::MAX_LINE + 1];
        while !line_closed.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(n) = from_bus.recv(&mut buf) else {
                continue;
            };
            let Some(frame) = decode_frame(&buf[..n]) else {
                continue;
            };
            if cut.is_some_and(|c| carried >= c) {
                continue;
            }
            carried += 1;
            let Some(len) = slcan::encode(&frame, &mut line) else {
                continue;
            };
            if trace() {
                eprintln!("bus -> line {}", String::from_utf8_lossy(&line[..len - 1]));
            }
            if tx
                .write_all(&line[..len])
                .and_then(|()| tx.flush())
                .is_err()
            {
                return;
            }
        }
    });
    // The line to the bus, until it closes.
    let mut decoder = Decoder::default();
    let mut buf = [0u8; 4096];
    let mut dropped = 0u64;
    let mut out = [0u8; 70];
    loop {
        let n = match rx.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", a.serial)),
        };
        for &b in &buf[..n] {
            match decoder.push(b) {
                Some(Line::Frame(f)) => {
                    if trace() {
                        eprintln!("line -> bus {:03X} {:02X?}", f.raw_id(), &f.data[..]);
                    }
                    let len = encode_frame(&f, &mut out);
                    for p in &a.peers {
                        let _ = socket.send_to(&out[..len], p);
                    }
                }
                Some(Line::Command(_)) => {}
                None if b == b'\r' => dropped += 1,
                None => {}
            }
        }
    }
    closed.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = bus_side.join();
    println!("{}: closed ({dropped} line(s) dropped)", a.serial);
    Ok(())
}
