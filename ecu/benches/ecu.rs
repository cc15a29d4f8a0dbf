//! ECU benchmark (issue 5, "Performance"). Run: `cargo bench -p ota-ecu --bench ecu`.
//!
//! Prints five sections, each with the model or method it rests on:
//!
//! 1. **Frames for a 1 MiB image**, classic CAN and CAN FD (64-byte frames): a real download
//!    with [`flash_image`] against the ECU's [`serve`] loop over the in-memory bus, every frame
//!    each node transmits recorded and classified (data frames, flow control, UDS responses),
//!    against the ISO-TP minimum ([`frames_for_message`]) for 1 MiB as one message and for the
//!    UDS messages actually sent.
//! 2. **Bus time** of exactly those frames on a 500 kbit/s bus (CAN FD: 2 Mbit/s data phase),
//!    from a bit-level model of each frame (see [`bus_model`]), against the physical payload
//!    limit; and the wall and CPU time of the download over the in-memory bus and over the UDP
//!    bus on loopback (what our own stack costs on the host).
//! 3. **ECU instructions per byte** under `valgrind --tool=callgrind`: this same binary re-runs
//!    itself as the measurement program (environment variable [`CHILD_ENV`], see [`child`]), so
//!    that valgrind counts only the ECU's work: parse the compact manifest, verify its RSA-PSS
//!    signature, stream the image through the bootloader into a `MemFlash` while hashing.
//!    Runs of the same program that stop earlier are subtracted to split the fixed cost (the
//!    signature) from the per-byte cost.
//! 4. **ECU RAM**: `size_of` of the ECU's state and buffers, and the peak heap of the RSA
//!    verification, measured with the counting global allocator of this binary.
//!
//! 5. **Firmware size**: `.text`, `.rodata`, `.data` and `.bss` of `ecu/firmware`, the same
//!    path linked bare-metal for `thumbv7em-none-eabihf` (`size -A`), when it has been built.
//! 6. **On an emulated Cortex-M4**: the firmware of `ecu/qemu` run under QEMU (`mps2-an386`,
//!    `-icount shift=0`, one instruction per virtual nanosecond) checks a manifest signed with
//!    each key, an OEM instruction and SHA-256 over its own code, timing each with SysTick:
//!    instructions on the ARM core, beside section 3's x86-64 counts; and its painted stack and
//!    heap high-water mark.
//!
//! Sections 1-4 are the host build (x86-64); see the caveats printed with each section.

use ota_ecu::bootloader::{Bootloader, Identity, MAX_BLOCK};
use ota_ecu::bus::mem::MemBus;
use ota_ecu::bus::udp::UdpBus;
use ota_ecu::compact_manifest::{Body, CompactManifest, Field, ProvisionedKey};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::flash::{Flash, Slot, STATE_LEN};
use ota_ecu::flasher::{flash_image, serve};
use ota_ecu::isotp::{
    flow_control_frames, frames_for_message, standard_id, Config, Event, Frame, Link, Mode, Pdu,
};
use ota_ecu::transport::{Endpoint, MAX_MESSAGE};
use ota_ecu::uds::{self, Server};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::SigningKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The image size every section is about.
const IMAGE_LEN: usize = 1 << 20;
/// The "tiny" image of the fixed-cost run in section 3 (one short data block).
const TINY_LEN: usize = 64;
/// Slot size of the simulated ECU flash.
const SLOT_SIZE: u64 = 4 << 20;
const HARDWARE_ID: &str = "HW-BENCH";
/// Set (to a mode of [`child::main`]) when this binary runs as the callgrind measurement program.
const CHILD_ENV: &str = "OTA_ECU_BENCH_CHILD";
const DIR_ENV: &str = "OTA_ECU_BENCH_DIR";
const BITS_ENV: &str = "OTA_ECU_BENCH_BITS";
/// The tester's and the ECU's identifiers (11-bit, as in the tests and the simulator).
const TESTER_ID: u16 = 0x7E0;
const ECU_ID: u16 = 0x7E8;

// ---------------------------------------------------------------------------------------------
// Counting allocator (section 4)
// ---------------------------------------------------------------------------------------------

/// The system allocator, counting bytes in use and their peak. Counters are process-wide, so
/// [`heap_during`] is only meaningful while no other thread allocates.
struct Counting;

static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);
static HEAP_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn heap_grow(n: usize) {
    let now = HEAP_NOW.fetch_add(n, Ordering::Relaxed) + n;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
    HEAP_ALLOCS.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            heap_grow(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            heap_grow(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(p, l) };
        HEAP_NOW.fetch_sub(l.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            // Counted as a copy: old and new block both live for a moment (the worst case).
            heap_grow(new_size);
            HEAP_NOW.fetch_sub(l.size(), Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap use while `f` runs: (its result, peak bytes above the level before, allocations).
fn heap_during<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let base = HEAP_NOW.load(Ordering::Relaxed);
    HEAP_PEAK.store(base, Ordering::Relaxed);
    let allocs = HEAP_ALLOCS.load(Ordering::Relaxed);
    let r = f();
    let peak = HEAP_PEAK.load(Ordering::Relaxed) - base;
    (r, peak, HEAP_ALLOCS.load(Ordering::Relaxed) - allocs)
}

// ---------------------------------------------------------------------------------------------
// Fixtures: keys, image, manifests, link configurations
// ---------------------------------------------------------------------------------------------

/// A firmware-like image: pseudo-random bytes (xorshift64*), as compressed or encrypted images
/// are. The content matters only for the bit stuffing of section 2.
fn image(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn field(s: &str) -> Field {
    Field::new(s).expect("a valid field")
}

/// The compact manifest of `img`, signed by `key`, as a supplier's repository would make it.
/// The serial the measured ECU's instruction names.
const INSTRUCTED: &str = "ECU-BENCH";

/// The OEM's instruction key of the measurement (a fixed seed: the child derives its public
/// half).
fn instruction_signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

fn instruction_key() -> [u8; 32] {
    instruction_signing_key().verifying_key().to_bytes()
}

/// The OEM's instruction to [`INSTRUCTED`] for the compact manifest `m`.
fn instruction_for(m: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let parsed = CompactManifest::parse(m).expect("manifest");
    let i = ota_ecu::instruction::Instruction::new(
        INSTRUCTED,
        &parsed.body_bytes,
        parsed.body.release_counter,
        1,
    );
    i.assemble(&instruction_signing_key().sign(&i.body()).to_bytes())
        .to_vec()
}

fn manifest(key: &SigningKey, img: &[u8]) -> Vec<u8> {
    let body = Body {
        uid: field("bench-fw"),
        version: field("1.0.0"),
        release_counter: 1,
        length: img.len() as u64,
        sha256: Sha256::digest(img).into(),
        hardware_ids: heapless::Vec::from_slice(&[field(HARDWARE_ID)]).expect("one id"),
    };
    sign_compact(&body, &[key]).expect("signing")
}

/// The regulators' compact attestation bundle over `manifest`'s body, signed by `key`.
fn attestation_bundle(key: &SigningKey, manifest: &[u8]) -> Vec<u8> {
    let m = CompactManifest::parse(manifest).expect("manifest");
    let sig = key
        .sign(&ota_ecu::attestation::message(&m.body_bytes))
        .expect("sign");
    ota_ecu::attestation::assemble(&[(keyid_bytes(key.key_id()).expect("key id"), &sig)])
}

/// Trust document `version` naming `key` as supplier, regulator and signer (full mode),
/// signed by `key`.
fn trust_document(key: &SigningKey, version: u32) -> Vec<u8> {
    use ota_ecu::trust::{assemble, KeySpec, Mode, TrustBody};
    let n = key.rsa_public().n().to_bytes_be();
    let spec = [KeySpec {
        keyid: keyid_bytes(key.key_id()).expect("key id"),
        exponent: 65537,
        modulus: &n,
    }];
    let body = TrustBody {
        version,
        hardware_id: field(HARDWARE_ID),
        mode: Mode::Full,
        min_release_counter: 0,
        suppliers: (&spec, 1),
        regulators: (&spec, 1),
        signers: (&spec, 1),
        instruction_keys: &[],
    }
    .encode();
    let sig = key.sign(&body).expect("sign");
    assemble(&body, &[(keyid_bytes(key.key_id()).expect("key id"), &sig)])
}

fn provisioned(key: &SigningKey) -> ProvisionedKey {
    ProvisionedKey {
        keyid: keyid_bytes(key.key_id()).expect("key id"),
        key: key.rsa_public(),
    }
}

fn identity(keys: &[ProvisionedKey]) -> Identity<'_> {
    Identity {
        hardware_id: field(HARDWARE_ID),
        keys,
        threshold: 1,
    }
}

/// (tester, ECU) link configurations as the gateway and the simulator use them: the defaults
/// (padding 0xCC, STmin 0), and the ECU asking for a flow control every
/// [`uds::ECU_BLOCK_SIZE`] frames.
fn configs(mode: Mode) -> (Config, Config) {
    let (t, e) = (
        standard_id(TESTER_ID).expect("id"),
        standard_id(ECU_ID).expect("id"),
    );
    let mut tester = Config::new(t, e);
    let mut ecu = Config::new(e, t);
    tester.mode = mode;
    ecu.mode = mode;
    ecu.block_size = uds::ECU_BLOCK_SIZE;
    (tester, ecu)
}

/// The ISO-TP link as an ECU would size it: it sends only UDS responses (at most
/// [`uds::MAX_RESPONSE`] bytes) and receives at most a data block ([`MAX_BLOCK`] + 2; the
/// largest RequestDownload, 3 + [`ota_ecu::compact_manifest::MAX_LEN`], is shorter).
type EcuLink = Link<{ uds::MAX_RESPONSE }, { MAX_BLOCK + 2 }>;

/// CPU time this thread has run, from the scheduler (`/proc/thread-self/schedstat`, in ns).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Sections 1 and 2: a real download, every frame recorded
// ---------------------------------------------------------------------------------------------

#[path = "support/recorder.rs"]
mod recorder;
use recorder::Recorder;

/// One download: what each side put on the bus, and what it cost on the host.
struct Download {
    tester: Vec<Frame>,
    ecu: Vec<Frame>,
    wall: Duration,
    tester_cpu: Option<Duration>,
    ecu_cpu: Option<Duration>,
}

/// Download `img` with `flash_image` (the gateway's code) into an ECU running `serve` (the
/// simulator's code) on its own thread, over the two bus nodes given.
fn download<C>(
    tester_can: C,
    ecu_can: C,
    mode: Mode,
    key: &SigningKey,
    manifest: &[u8],
    img: &[u8],
) -> Result<Download, String>
where
    C: embedded_can::nb::Can<Frame = Frame> + Send + 'static,
    C::Error: std::fmt::Debug,
{
    let (tcfg, ecfg) = configs(mode);
    let stop = Arc::new(AtomicBool::new(false));
    let ecu_stop = stop.clone();
    let pk = provisioned(key);
    let ecu = std::thread::spawn(move || -> Result<_, String> {
        let cpu0 = thread_cpu();
        let keys = [pk];
        let bl = Bootloader::new(MemFlash::new(SLOT_SIZE), identity(&keys))
            .map_err(|e| format!("{e:?}"))?;
        let mut server = Server::new(bl, field("ECU-BENCH"));
        let rec = Recorder {
            inner: ecu_can,
            sent: Vec::new(),
        };
        let mut ep = Endpoint::new(rec, ecfg).map_err(|e| e.to_string())?;
        serve(&mut ep, &mut server, &ecu_stop)?;
        let cpu = thread_cpu().zip(cpu0).map(|(b, a)| b - a);
        let installed = server.bootloader.state().pending.map(|i| i.sha256);
        Ok((ep.can.sent, cpu, installed))
    });
    let rec = Recorder {
        inner: tester_can,
        sent: Vec::new(),
    };
    let mut tester = Endpoint::new(rec, tcfg).map_err(|e| e.to_string())?;
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let result = flash_image(
        &mut tester,
        manifest,
        &mut &img[..],
        img.len() as u64,
        |_| {},
    );
    let wall = t0.elapsed();
    let tester_cpu = thread_cpu().zip(cpu0).map(|(b, a)| b - a);
    stop.store(true, Ordering::Relaxed);
    let (ecu_frames, ecu_cpu, installed) = ecu.join().map_err(|_| "ECU thread panicked")??;
    result.map_err(|e| e.to_string())?;
    if installed != Some(Sha256::digest(img).into()) {
        return Err("the ECU did not install the image".into());
    }
    Ok(Download {
        tester: tester.can.sent,
        ecu: ecu_frames,
        wall,
        tester_cpu,
        ecu_cpu,
    })
}

/// Downloads per configuration for the host timings.
const RUNS: usize = 3;

/// [`RUNS`] downloads of one configuration.
struct Repeated {
    /// Of the runs that completed, the one with the median wall time (all runs that complete
    /// put the same frames on the bus).
    median: Option<Download>,
    /// Why the others failed.
    errors: Vec<String>,
    /// Growth of the kernel's UDP `RcvbufErrors` counter (datagrams dropped because a socket's
    /// receive buffer was full; system-wide) during the runs.
    udp_drops: Option<u64>,
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (`/proc/net/snmp`).
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

fn repeated(mut f: impl FnMut() -> Result<Download, String>) -> Repeated {
    let drops0 = udp_rcvbuf_errors();
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        match f() {
            Ok(d) => ok.push(d),
            Err(e) => errors.push(e),
        }
    }
    ok.sort_by_key(|d| d.wall);
    let mid = ok.len() / 2;
    Repeated {
        median: (!ok.is_empty()).then(|| ok.swap_remove(mid)),
        errors,
        udp_drops: udp_rcvbuf_errors().zip(drops0).map(|(b, a)| b - a),
    }
}

fn download_mem(
    mode: Mode,
    key: &SigningKey,
    manifest: &[u8],
    img: &[u8],
) -> Result<Download, String> {
    let bus = MemBus::new();
    download(bus.node(), bus.node(), mode, key, manifest, img)
}

fn download_udp(
    mode: Mode,
    key: &SigningKey,
    manifest: &[u8],
    img: &[u8],
) -> Result<Download, String> {
    let any = "127.0.0.1:0".parse().expect("address");
    let mut gw = UdpBus::bind(any, vec![]).map_err(|e| e.to_string())?;
    let ecu = UdpBus::bind(any, vec![gw.local_addr().map_err(|e| e.to_string())?])
        .map_err(|e| e.to_string())?;
    gw.add_peer(ecu.local_addr().map_err(|e| e.to_string())?);
    download(gw, ecu, mode, key, manifest, img)
}

/// One side's frames by ISO-TP frame type, and the messages it started (from SF/FF lengths).
#[derive(Default)]
struct Tally {
    single: u64,
    first: u64,
    consecutive: u64,
    flow_control: u64,
    undecodable: u64,
    messages: Vec<u64>,
    /// The largest STmin (µs) asked for in this side's flow control frames.
    st_min_us: u32,
}

impl Tally {
    fn of(frames: &[Frame]) -> Tally {
        let mut t = Tally::default();
        for f in frames {
            match Pdu::decode(&f.data) {
                Ok(Pdu::Single { data }) => {
                    t.single += 1;
                    t.messages.push(data.len() as u64);
                }
                Ok(Pdu::First { len, .. }) => {
                    t.first += 1;
                    t.messages.push(u64::from(len));
                }
                Ok(Pdu::Consecutive { .. }) => t.consecutive += 1,
                Ok(Pdu::FlowControl { st_min, .. }) => {
                    t.flow_control += 1;
                    t.st_min_us = t.st_min_us.max(st_min.as_micros());
                }
                Err(_) => t.undecodable += 1,
            }
        }
        t
    }

    fn data_frames(&self) -> u64 {
        self.single + self.first + self.consecutive
    }

    fn total(&self) -> u64 {
        self.data_frames() + self.flow_control + self.undecodable
    }
}

/// Bit-level timing of CAN frames (11-bit identifiers, data frames).
///
/// Classic CAN, base format, `n` data bytes (ISO 11898-1), in bits:
///
/// ```text
/// SOF 1, identifier 11, RTR 1, IDE 1, r0 1, DLC 4, data 8n, CRC 15, CRC delimiter 1,
/// ACK 1, ACK delimiter 1, EOF 7                                   = 44 + 8n
/// with the 3-bit interframe space                                 = 47 + 8n  (111 for n = 8)
/// stuffing region: SOF to the end of the CRC                      = 34 + 8n
/// worst-case stuff bits                                           = floor((33 + 8n) / 4)
///                                                                   (24 for n = 8: 135 in all)
/// ```
///
/// CAN FD, base format, `n` in 0..=8, 12, 16, 20, 24, 32, 48, 64, bit rate switch on:
///
/// ```text
/// nominal rate: SOF 1, identifier 11, RRS 1, IDE 1, FDF 1, res 1, BRS 1           = 17
///               CRC delimiter 1, ACK 1, ACK delimiter 1, EOF 7, IFS 3              = 13
///               in all 30, plus the dynamic stuff bits before the switch
/// data rate:    ESI 1, DLC 4, data 8n, stuff count 4, CRC 17 (n <= 16) or 21,
///               fixed stuff bits 6 or 7 (before the stuff count, then every 4 bits)
///               in all 32 + 8n (n <= 16) or 37 + 8n (549 for n = 64),
///               plus the dynamic stuff bits after the switch
/// dynamic stuffing region: SOF to the end of the data             = 22 + 8n
/// worst case: a stuff bit after bits 5, 9, 13, ... of that region
/// ```
///
/// The rate changes inside BRS and inside the CRC delimiter; both are counted whole at the
/// nominal rate. "Exact" stuffing builds each frame's real bit sequence (identifier, control
/// field, the data bytes as sent, and for classic CAN the real CRC-15) and counts the stuff
/// bits a transmitter inserts; "worst" is the bound above; "none" counts none (the limits).
/// Error frames, overload frames and arbitration losses are not modelled: one tester and one
/// ECU on an otherwise idle bus, each frame right after the previous one.
#[path = "support/bus_model.rs"]
mod bus_model;

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

/// `1234567` -> `1 234 567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A table row: a label and one value per column.
fn row(label: &str, cols: &[String]) {
    let mut line = format!("  {label:<48}");
    for c in cols {
        line.push_str(&format!("{c:>22}"));
    }
    println!("{}", line.trim_end());
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), secs)
}

fn mode_name(mode: Mode) -> &'static str {
    if mode.is_fd() {
        "CAN FD (64 B)"
    } else {
        "classic CAN"
    }
}

// ---------------------------------------------------------------------------------------------
// Section 1: frames
// ---------------------------------------------------------------------------------------------

/// What the frames of one download add up to.
struct FrameReport {
    mode: Mode,
    tester: Tally,
    ecu: Tally,
    /// ISO-TP minimum for 1 MiB as one message: data frames, flow control frames.
    min_image: (u64, u64),
    /// ISO-TP minimum for the messages both sides actually sent (data + flow control).
    min_sent: u64,
}

impl FrameReport {
    fn new(mode: Mode, d: &Download) -> FrameReport {
        let (tcfg, ecfg) = configs(mode);
        let dl = mode.tx_dl();
        let (tester, ecu) = (Tally::of(&d.tester), Tally::of(&d.ecu));
        let len = IMAGE_LEN as u64;
        let min_image = (
            frames_for_message(len, dl).expect("length"),
            flow_control_frames(len, dl, ecfg.block_size).expect("length"),
        );
        // Each side's messages, plus the flow control the other side must send for them.
        let min_for = |msgs: &[u64], peer_bs: u8| -> u64 {
            msgs.iter()
                .map(|&l| {
                    frames_for_message(l, dl).expect("length")
                        + flow_control_frames(l, dl, peer_bs).expect("length")
                })
                .sum()
        };
        let min_sent =
            min_for(&tester.messages, ecfg.block_size) + min_for(&ecu.messages, tcfg.block_size);
        FrameReport {
            mode,
            tester,
            ecu,
            min_image,
            min_sent,
        }
    }

    fn total(&self) -> u64 {
        self.tester.total() + self.ecu.total()
    }
}

/// ISO-TP data frames to send 1 MiB in TransferData blocks of `block` bytes (2 UDS header
/// bytes each), the rest of the download left out.
fn block_data_frames(block: usize, dl: usize) -> u64 {
    (0..IMAGE_LEN)
        .step_by(block)
        .map(|at| {
            let n = block.min(IMAGE_LEN - at) as u64;
            frames_for_message(n + 2, dl).expect("length")
        })
        .sum()
}

fn print_frames(runs: &[(Download, FrameReport)], manifest_len: usize) {
    let reports: Vec<&FrameReport> = runs.iter().map(|(_, r)| r).collect();
    println!();
    println!(
        "1. Frames on the bus for a 1 MiB image: flash_image (tester) against serve (ECU) over \
         the in-memory bus"
    );
    println!(
        "   ECU block size {}, STmin 0, padding 0xCC; TransferData blocks of {MAX_BLOCK} B; \
         RSA-3072 compact manifest of {manifest_len} B",
        uds::ECU_BLOCK_SIZE
    );
    let cols =
        |f: &dyn Fn(&FrameReport) -> String| reports.iter().map(|r| f(r)).collect::<Vec<_>>();
    row("", &cols(&|r| mode_name(r.mode).to_string()));
    row(
        "UDS requests / responses",
        &cols(&|r| format!("{} / {}", r.tester.messages.len(), r.ecu.messages.len())),
    );
    row(
        "tester -> ECU data frames (SF/FF/CF)",
        &cols(&|r| thousands(r.tester.data_frames())),
    );
    row(
        "  of which SF / FF / CF",
        &cols(&|r| {
            format!(
                "{} / {} / {}",
                r.tester.single,
                r.tester.first,
                thousands(r.tester.consecutive)
            )
        }),
    );
    row(
        "tester -> ECU flow control",
        &cols(&|r| thousands(r.tester.flow_control)),
    );
    row(
        "ECU -> tester flow control",
        &cols(&|r| thousands(r.ecu.flow_control)),
    );
    row(
        "ECU -> tester UDS responses (SF/FF/CF)",
        &cols(&|r| thousands(r.ecu.data_frames())),
    );
    if reports
        .iter()
        .any(|r| r.tester.undecodable + r.ecu.undecodable > 0)
    {
        row(
            "undecodable frames (!)",
            &cols(&|r| thousands(r.tester.undecodable + r.ecu.undecodable)),
        );
    }
    row("total frames on the bus", &cols(&|r| thousands(r.total())));
    row(
        "ISO-TP minimum, 1 MiB as one message",
        &cols(&|r| format!("{} + {} FC", thousands(r.min_image.0), r.min_image.1)),
    );
    row(
        "  ratio total / that minimum",
        &cols(&|r| {
            format!(
                "{:.4}",
                r.total() as f64 / (r.min_image.0 + r.min_image.1) as f64
            )
        }),
    );
    row(
        "  ratio data frames / 1 MiB data frames",
        &cols(&|r| {
            format!(
                "{:.4}",
                r.tester.data_frames() as f64 / r.min_image.0 as f64
            )
        }),
    );
    row(
        "ISO-TP minimum for the UDS messages sent",
        &cols(&|r| thousands(r.min_sent)),
    );
    row(
        "  ratio total / that minimum",
        &cols(&|r| format!("{:.4}", r.total() as f64 / r.min_sent as f64)),
    );
    // A 4095-byte TransferData message (4093 B of data) is an FF and CFs whose last carries
    // one byte, classic (6 + 584 x 7 = 4094) and FD (62 + 64 x 63 = 4094) alike.
    row(
        &format!("image data frames, {MAX_BLOCK} B blocks (as sent)"),
        &cols(&|r| thousands(block_data_frames(MAX_BLOCK, r.mode.tx_dl()))),
    );
    row(
        &format!("  what-if: {} B blocks (no 1-byte last CF)", MAX_BLOCK - 1),
        &cols(&|r| thousands(block_data_frames(MAX_BLOCK - 1, r.mode.tx_dl()))),
    );
}

// ---------------------------------------------------------------------------------------------
// Section 2: bus time
// ---------------------------------------------------------------------------------------------

/// Modelled bus time of a download: every frame of both sides, plus STmin gaps.
fn bus_time(d: &Download, r: &FrameReport, stuffing: bus_model::Stuffing) -> f64 {
    let bits = d
        .tester
        .iter()
        .chain(&d.ecu)
        .map(|f| bus_model::frame_bits(f, stuffing))
        .fold(bus_model::Bits::default(), bus_model::Bits::add);
    // STmin separates consecutive frames, except the first after each flow control frame.
    let gaps = |cfs: u64, fcs: u64, st_min_us: u32| {
        cfs.saturating_sub(fcs) as f64 * f64::from(st_min_us) / 1e6
    };
    bits.seconds()
        + gaps(r.tester.consecutive, r.ecu.flow_control, r.ecu.st_min_us)
        + gaps(r.ecu.consecutive, r.tester.flow_control, r.tester.st_min_us)
}

/// Bus time of 1 MiB sent as `frames` full frames (TX_DL bytes each) and nothing else: the
/// physical limit the download is compared with.
fn limit_time(mode: Mode, frames: u64, stuffing: bus_model::Stuffing) -> f64 {
    let id = standard_id(TESTER_ID).expect("id");
    let f = Frame::new(id, &vec![0; mode.tx_dl()], mode.is_fd()).expect("frame");
    frames as f64 * bus_model::frame_bits(&f, stuffing).seconds()
}

fn print_bus_time(runs: &[(Download, FrameReport)], udp: &[Repeated]) {
    use bus_model::Stuffing;
    println!();
    println!(
        "2. Bus time of those frames: {} kbit/s, CAN FD data phase {} Mbit/s, 11-bit ids, \
         interframe space included",
        bus_model::NOMINAL_BPS / 1e3,
        bus_model::FD_DATA_BPS / 1e6
    );
    println!(
        "   (sum over every frame of both sides; bits per frame as documented in bus_model; \
         no ECU turnaround, no other traffic; kB = 1000 B)"
    );
    let mib = IMAGE_LEN as f64;
    let cols = |f: &dyn Fn(&(Download, FrameReport)) -> String| -> Vec<String> {
        runs.iter().map(f).collect()
    };
    let rate = |t: f64| format!("{:.2} s {:>6.1} kB/s", t, mib / t / 1e3);
    row("", &cols(&|(_, r)| mode_name(r.mode).to_string()));
    row(
        "download, no stuff bits",
        &cols(&|(d, r)| rate(bus_time(d, r, Stuffing::None))),
    );
    row(
        "download, stuff bits of the frames as sent",
        &cols(&|(d, r)| rate(bus_time(d, r, Stuffing::Exact))),
    );
    row(
        "download, worst-case stuffing",
        &cols(&|(d, r)| rate(bus_time(d, r, Stuffing::Worst))),
    );
    row(
        "  STmin gaps included",
        &cols(&|(_, r)| format!("{} us x CF", r.ecu.st_min_us)),
    );
    let raw = |m: Mode| (IMAGE_LEN as u64).div_ceil(m.tx_dl() as u64);
    let isotp = |m: Mode| frames_for_message(IMAGE_LEN as u64, m.tx_dl()).expect("length");
    row(
        "limit: full frames (8|64 B), no stuffing",
        &cols(&|(_, r)| rate(limit_time(r.mode, raw(r.mode), Stuffing::None))),
    );
    row(
        "limit: full frames, worst-case stuffing",
        &cols(&|(_, r)| rate(limit_time(r.mode, raw(r.mode), Stuffing::Worst))),
    );
    row(
        "limit: ISO-TP one message (7|63 B/CF), no stuff",
        &cols(&|(_, r)| rate(limit_time(r.mode, isotp(r.mode), Stuffing::None))),
    );
    row(
        "ratio download / ISO-TP limit, both no stuffing",
        &cols(&|(d, r)| {
            format!(
                "{:.3}",
                bus_time(d, r, Stuffing::None) / limit_time(r.mode, isotp(r.mode), Stuffing::None)
            )
        }),
    );
    row(
        "ratio download (as sent) / full-frame limit",
        &cols(&|(d, r)| {
            format!(
                "{:.3}",
                bus_time(d, r, Stuffing::Exact) / limit_time(r.mode, raw(r.mode), Stuffing::None)
            )
        }),
    );
    row(
        "ratio download (as sent) / ISO-TP limit",
        &cols(&|(d, r)| {
            format!(
                "{:.3}",
                bus_time(d, r, Stuffing::Exact) / limit_time(r.mode, isotp(r.mode), Stuffing::None)
            )
        }),
    );
    row(
        "ratio download (worst) / full-frame (worst)",
        &cols(&|(d, r)| {
            format!(
                "{:.3}",
                bus_time(d, r, Stuffing::Worst) / limit_time(r.mode, raw(r.mode), Stuffing::Worst)
            )
        }),
    );
    println!(
        "   Host cost of our stack: the same download, frames as fast as the code goes \
         (median of {RUNS} runs; includes Endpoint's polling sleeps of up to 200 us)"
    );
    row("in-memory bus: wall time", &cols(&|(d, _)| secs(d.wall)));
    row(
        "  CPU time, tester thread / ECU thread",
        &cols(&|(d, _)| format!("{} / {}", opt_secs(d.tester_cpu), opt_secs(d.ecu_cpu))),
    );
    let udp_cols = |f: &dyn Fn(&Download) -> String| -> Vec<String> {
        udp.iter()
            .map(|r| r.median.as_ref().map_or_else(|| "failed".into(), f))
            .collect()
    };
    row(
        "UDP bus on 127.0.0.1: wall time",
        &udp_cols(&|d| secs(d.wall)),
    );
    row(
        "  CPU time, tester thread / ECU thread",
        &udp_cols(&|d| format!("{} / {}", opt_secs(d.tester_cpu), opt_secs(d.ecu_cpu))),
    );
    row(
        "  frames on the bus",
        &udp_cols(&|d| thousands((d.tester.len() + d.ecu.len()) as u64)),
    );
    row(
        "  runs completed",
        &udp.iter()
            .map(|r| format!("{} of {RUNS}", RUNS - r.errors.len()))
            .collect::<Vec<_>>(),
    );
    row(
        "  kernel UDP receive-buffer drops (RcvbufErrors)",
        &udp.iter()
            .map(|r| r.udp_drops.map_or_else(|| "n/a".into(), thousands))
            .collect::<Vec<_>>(),
    );
    for (r, (_, fr)) in udp.iter().zip(runs) {
        for e in &r.errors {
            println!("   UDP, {}: a run failed: {e}", mode_name(fr.mode));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Section 3: instructions per byte under callgrind
// ---------------------------------------------------------------------------------------------

/// The measurement program: this binary started by valgrind with [`CHILD_ENV`] set to a mode.
///
/// Every mode does the same set-up (read the public key, both manifests and the 1 MiB image
/// from files the parent wrote, build the provisioned key and the bootloader over a
/// `MemFlash`), then goes a step further than the one before:
///
/// | mode             | after the set-up                                                    |
/// |------------------|---------------------------------------------------------------------|
/// | `baseline`       | nothing                                                             |
/// | `verify`         | `CompactManifest::parse` + `verify` (the tiny image's manifest)     |
/// | `tiny`           | the ECU's download of a 64-byte image: `request_download` (parse,   |
/// |                  | verify, checks, erase), one `transfer_data`, `transfer_exit`         |
/// | `full`           | the same with the 1 MiB image in [`MAX_BLOCK`]-byte blocks           |
/// | `stack-baseline` | build the classic CAN frames a tester sends for the 1 MiB download  |
/// | `stack`          | and feed them to the ECU's ISO-TP link and UDS server (`full` plus  |
/// |                  | reassembly, flow control, UDS dispatch and responses)               |
///
/// The differences between the runs' instruction counts are the ECU's costs, free of the
/// set-up, of process start-up and of the test fixtures (no signing, no key generation).
mod child {
    use super::*;

    struct Inputs {
        keys: [ProvisionedKey; 1],
        /// The same key as the regulator set of a full-mode trust document.
        regulators: ota_ecu::trust::KeySet,
        bundle: Vec<u8>,
        trust_1: Vec<u8>,
        trust_2: Vec<u8>,
        manifest_tiny: Vec<u8>,
        manifest_full: Vec<u8>,
        image: Vec<u8>,
        /// The OEM's instruction for `manifest_tiny` ([`instruction_for`]).
        instruction: Vec<u8>,
    }

    fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))
    }

    fn load(dir: &Path, bits: &str) -> Result<Inputs, String> {
        let key = read(dir, &format!("key-{bits}.bin"))?;
        // keyid (32) | length of e (1) | e | n, big-endian.
        let (keyid, rest) = key.split_at_checked(32).ok_or("short key file")?;
        let (&e_len, rest) = rest.split_first().ok_or("short key file")?;
        let (e, n) = rest
            .split_at_checked(usize::from(e_len))
            .ok_or("short key file")?;
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .map_err(|e| e.to_string())?;
        let keyid: [u8; 32] = keyid.try_into().map_err(|_| "key id")?;
        let mut regulators = ota_ecu::trust::KeySet {
            keys: heapless::Vec::new(),
            threshold: 1,
        };
        let _ = regulators.keys.push(ProvisionedKey {
            keyid,
            key: key.clone(),
        });
        Ok(Inputs {
            keys: [ProvisionedKey { keyid, key }],
            regulators,
            bundle: read(dir, &format!("bundle-{bits}.bin"))?,
            trust_1: read(dir, &format!("trust-{bits}-1.bin"))?,
            trust_2: read(dir, &format!("trust-{bits}-2.bin"))?,
            manifest_tiny: read(dir, &format!("manifest-{bits}-tiny.bin"))?,
            manifest_full: read(dir, &format!("manifest-{bits}-full.bin"))?,
            image: read(dir, "image.bin")?,
            instruction: read(dir, &format!("instruction-{bits}.bin"))?,
        })
    }

    /// What the ECU's bootloader does with one download.
    fn ecu_download(
        bl: &mut Bootloader<'_, MemFlash>,
        manifest: &[u8],
        img: &[u8],
    ) -> Result<(), String> {
        bl.request_download(manifest)
            .map_err(|r| format!("request download: {r:?}"))?;
        for (i, block) in img.chunks(MAX_BLOCK).enumerate() {
            bl.transfer_data((i + 1) as u8, block)
                .map_err(|r| format!("block {i}: {r:?}"))?;
        }
        bl.transfer_exit().map_err(|r| format!("exit: {r:?}"))?;
        Ok(())
    }

    /// The classic CAN frames a tester puts on the bus for the whole download, built with a
    /// tester-side `Link` that is handed the ECU's flow control (CTS, BS 0, STmin 0) after
    /// each first frame, as the ECU would send it.
    fn tester_frames(manifest: &[u8], img: &[u8]) -> Result<Vec<Frame>, String> {
        let (tcfg, ecfg) = configs(Mode::Classic);
        let mut link: Link<MAX_MESSAGE, MAX_MESSAGE> =
            Link::new(tcfg).map_err(|e| e.to_string())?;
        let fc = Pdu::FlowControl {
            status: ota_ecu::isotp::FlowStatus::ContinueToSend,
            block_size: 0,
            st_min: ota_ecu::isotp::StMin::ZERO,
        }
        .encode(ecfg.padding)
        .ok_or("flow control")?;
        let fc = Frame::new(ecfg.tx_id, &fc, false).ok_or("flow control")?;
        let mut frames = Vec::new();
        let mut send = |msg: &[u8]| -> Result<(), String> {
            link.send(msg, 0).map_err(|e| e.to_string())?;
            loop {
                while let Some(f) = link.poll_transmit(0) {
                    frames.push(f);
                }
                let mut sent = false;
                while let Some(ev) = link.poll_event() {
                    sent |= matches!(ev, Event::Sent { .. });
                }
                if sent {
                    return Ok(());
                }
                if !link.handle_frame(&fc, 0) {
                    return Err("flow control refused".into());
                }
            }
        };
        send(&uds::client::request_download(manifest))?;
        for (i, block) in img.chunks(MAX_BLOCK).enumerate() {
            send(&uds::client::transfer_data((i + 1) as u8, block))?;
        }
        send(&uds::client::transfer_exit())?;
        Ok(frames)
    }

    /// The ECU's receive loop over pre-recorded frames: ISO-TP link sized as on the ECU, UDS
    /// server, bootloader. Returns the number of negative responses.
    fn ecu_stack(server: &mut Server<'_, MemFlash>, frames: &[Frame]) -> Result<u32, String> {
        let (_, ecfg) = configs(Mode::Classic);
        let mut link = EcuLink::new(ecfg).map_err(|e| e.to_string())?;
        let mut negative = 0;
        for f in frames {
            link.handle_frame(f, 0);
            while let Some(out) = link.poll_transmit(0) {
                std::hint::black_box(out);
            }
            while let Some(ev) = link.poll_event() {
                if let Event::Received { .. } = ev {
                    if let Some(resp) = link.received().map(|req| server.handle(req)) {
                        negative += u32::from(resp.first() == Some(&uds::NEGATIVE));
                        link.send(&resp, 0).map_err(|e| e.to_string())?;
                        while let Some(out) = link.poll_transmit(0) {
                            std::hint::black_box(out);
                        }
                    }
                }
            }
        }
        Ok(negative)
    }

    pub fn main(mode: &str) -> Result<(), String> {
        let dir = PathBuf::from(std::env::var(DIR_ENV).map_err(|_| "no directory")?);
        let bits = std::env::var(BITS_ENV).map_err(|_| "no key size")?;
        let inputs = load(&dir, &bits)?;
        let mut bl = Bootloader::new(MemFlash::new(SLOT_SIZE), identity(&inputs.keys))
            .map_err(|e| format!("{e:?}"))?;
        match mode {
            "baseline" => {}
            "verify" => {
                let m = CompactManifest::parse(&inputs.manifest_tiny)
                    .map_err(|e| format!("parse: {e}"))?;
                m.verify(&inputs.keys, 1)
                    .map_err(|e| format!("verify: {e}"))?;
            }
            "attest" => {
                let m = CompactManifest::parse(&inputs.manifest_tiny)
                    .map_err(|e| format!("parse: {e}"))?;
                m.verify(&inputs.keys, 1)
                    .map_err(|e| format!("verify: {e}"))?;
                ota_ecu::attestation::verify(&inputs.bundle, &m.body_bytes, &inputs.regulators)
                    .map_err(|e| format!("attestation: {e:?}"))?;
            }
            "instruction" => {
                let m = CompactManifest::parse(&inputs.manifest_tiny)
                    .map_err(|e| format!("parse: {e}"))?;
                m.verify(&inputs.keys, 1)
                    .map_err(|e| format!("verify: {e}"))?;
                let i = ota_ecu::instruction::verify(&inputs.instruction, &[instruction_key()])
                    .map_err(|e| format!("instruction: {e:?}"))?;
                ota_ecu::instruction::check(
                    &i,
                    INSTRUCTED,
                    &m.body_bytes,
                    m.body.release_counter,
                    0,
                )
                .map_err(|e| format!("instruction: {e:?}"))?;
            }
            "trust-parse" => {
                let s = ota_ecu::trust::Signed::parse(&inputs.trust_1)
                    .map_err(|e| format!("trust: {e}"))?;
                std::hint::black_box(&s.doc);
            }
            "trust-update" => {
                let held = ota_ecu::trust::Signed::parse(&inputs.trust_1)
                    .map_err(|e| format!("trust: {e}"))?
                    .doc;
                let next = held
                    .accept(&inputs.trust_2)
                    .map_err(|e| format!("trust update: {e}"))?;
                std::hint::black_box(&next);
            }
            "tiny" => ecu_download(&mut bl, &inputs.manifest_tiny, &inputs.image[..TINY_LEN])?,
            "full" => ecu_download(&mut bl, &inputs.manifest_full, &inputs.image)?,
            "stack-baseline" | "stack" => {
                let frames = tester_frames(&inputs.manifest_full, &inputs.image)?;
                if mode == "stack" {
                    let mut server = Server::new(bl, field("ECU-BENCH"));
                    let negative = ecu_stack(&mut server, &frames)?;
                    let installed = server.bootloader.state().pending.map(|i| i.length);
                    if negative > 0 || installed != Some(IMAGE_LEN as u64) {
                        return Err(format!("{negative} negative responses"));
                    }
                    bl = server.bootloader;
                }
                std::hint::black_box(&frames);
            }
            other => return Err(format!("unknown mode {other}")),
        }
        std::hint::black_box(&bl);
        // What sha2 will use here: valgrind does not implement the SHA extensions, so the CPU
        // it shows the program may lack them.
        println!("sha_ni={}", std::arch::is_x86_feature_detected!("sha"));
        Ok(())
    }
}

/// Whether `valgrind` runs here, and its version.
fn valgrind_version() -> Option<String> {
    let out = Command::new("valgrind").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The total instruction count (Ir) of a callgrind output file: its `summary:` line (or
/// `totals:`, which older versions write instead).
fn parse_callgrind_ir(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .or_else(|| text.lines().find(|l| l.starts_with("totals:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run the measurement program in `mode` under callgrind; returns (Ir, whether SHA-NI was
/// visible to the program).
fn callgrind(dir: &Path, bits: usize, mode: &str) -> Result<(u64, bool), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out_file = dir.join(format!("callgrind-{bits}-{mode}.out"));
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("-q")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .env(CHILD_ENV, mode)
        .env(DIR_ENV, dir)
        .env(BITS_ENV, bits.to_string())
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{mode} (RSA-{bits}) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
    let ir = parse_callgrind_ir(&text).ok_or("no summary line in the callgrind output")?;
    let sha_ni = String::from_utf8_lossy(&out.stdout).contains("sha_ni=true");
    Ok((ir, sha_ni))
}

/// Instruction counts of one key size, by mode.
struct IrRuns {
    baseline: u64,
    verify: u64,
    tiny: u64,
    full: u64,
    stack_baseline: u64,
    stack: u64,
    attest: u64,
    instruction: u64,
    trust_parse: u64,
    trust_update: u64,
    sha_ni: bool,
}

fn measure_ir(dir: &Path, bits: usize) -> Result<IrRuns, String> {
    let run = |mode| callgrind(dir, bits, mode);
    let (baseline, _) = run("baseline")?;
    let (verify, _) = run("verify")?;
    let (tiny, _) = run("tiny")?;
    let (full, sha_ni) = run("full")?;
    let (stack_baseline, _) = run("stack-baseline")?;
    let (stack, _) = run("stack")?;
    let (attest, _) = run("attest")?;
    let (instruction, _) = run("instruction")?;
    let (trust_parse, _) = run("trust-parse")?;
    let (trust_update, _) = run("trust-update")?;
    Ok(IrRuns {
        attest,
        instruction,
        trust_parse,
        trust_update,
        baseline,
        verify,
        tiny,
        full,
        stack_baseline,
        stack,
        sha_ni,
    })
}

/// Write the measurement program's inputs for one key.
fn write_inputs(dir: &Path, key: &SigningKey, img: &[u8]) -> std::io::Result<()> {
    let bits = key.bits();
    let public = key.rsa_public();
    let e = public.e().to_bytes_be();
    let mut file = keyid_bytes(key.key_id()).expect("key id").to_vec();
    file.push(u8::try_from(e.len()).expect("short exponent"));
    file.extend_from_slice(&e);
    file.extend_from_slice(&public.n().to_bytes_be());
    std::fs::write(dir.join(format!("key-{bits}.bin")), file)?;
    std::fs::write(
        dir.join(format!("manifest-{bits}-tiny.bin")),
        manifest(key, &img[..TINY_LEN]),
    )?;
    std::fs::write(
        dir.join(format!("manifest-{bits}-full.bin")),
        manifest(key, img),
    )?;
    std::fs::write(
        dir.join(format!("bundle-{bits}.bin")),
        attestation_bundle(key, &manifest(key, &img[..TINY_LEN])),
    )?;
    std::fs::write(
        dir.join(format!("trust-{bits}-1.bin")),
        trust_document(key, 1),
    )?;
    std::fs::write(
        dir.join(format!("instruction-{bits}.bin")),
        instruction_for(&manifest(key, &img[..TINY_LEN])),
    )?;
    std::fs::write(
        dir.join(format!("trust-{bits}-2.bin")),
        trust_document(key, 2),
    )?;
    std::fs::write(dir.join("image.bin"), img)
}

fn section_callgrind(keys: &[&SigningKey], img: &[u8]) {
    println!();
    println!(
        "3. ECU verification cost, valgrind callgrind: instructions executed (Ir), host build"
    );
    let Some(version) = valgrind_version() else {
        println!("   valgrind is not installed (apt-get install valgrind): section skipped");
        skipped("3 (valgrind is not installed)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ota-ecu-bench-{}", std::process::id()));
    let result = (|| -> Result<Vec<IrRuns>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut runs = Vec::new();
        for key in keys {
            write_inputs(&dir, key, img).map_err(|e| e.to_string())?;
            runs.push(measure_ir(&dir, key.bits())?);
        }
        Ok(runs)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let runs = match result {
        Ok(r) => r,
        Err(e) => {
            println!("   callgrind failed: {e}");
            return;
        }
    };
    println!(
        "   {version}; each figure a difference of two runs of the same program (see `child`); \
         SHA-256 {}",
        if runs.iter().all(|r| !r.sha_ni) {
            "in software (valgrind hides the SHA extensions)"
        } else {
            "with the SHA extensions"
        }
    );
    let per_byte = (IMAGE_LEN - TINY_LEN) as f64;
    let cols = |f: &dyn Fn(&IrRuns) -> String| runs.iter().map(f).collect::<Vec<_>>();
    let names: Vec<String> = keys.iter().map(|k| format!("RSA-{}", k.bits())).collect();
    row("", &names);
    row(
        "whole process: baseline run",
        &cols(&|r| thousands(r.baseline)),
    );
    row(
        "whole process: full run (1 MiB)",
        &cols(&|r| thousands(r.full)),
    );
    row(
        "parse + verify the signature",
        &cols(&|r| thousands(r.verify - r.baseline)),
    );
    row(
        "full mode, extra: regulator bundle (1 sig)",
        &cols(&|r| thousands(r.attest - r.verify)),
    );
    row(
        "OEM instruction, extra: Ed25519 verify + checks",
        &cols(&|r| thousands(r.instruction - r.verify)),
    );
    row(
        "  against the supplier's RSA verification (ratio)",
        &cols(&|r| {
            format!(
                "{:.2}",
                (r.instruction - r.verify) as f64 / (r.verify - r.baseline) as f64
            )
        }),
    );
    row(
        "trust document: parse at boot (3 keys)",
        &cols(&|r| thousands(r.trust_parse - r.baseline)),
    );
    row(
        "trust document: accept version 2 (2 verif.)",
        &cols(&|r| thousands(r.trust_update - r.trust_parse)),
    );
    row(
        "fixed cost: request download + 64 B + exit",
        &cols(&|r| thousands(r.tiny - r.baseline)),
    );
    row(
        "1 MiB through the bootloader, in all",
        &cols(&|r| thousands(r.full - r.baseline)),
    );
    row(
        "per byte: SHA-256 + copy into MemFlash",
        &cols(&|r| format!("{:.2} Ir/B", (r.full - r.tiny) as f64 / per_byte)),
    );
    row(
        "1 MiB through ISO-TP + UDS + bootloader",
        &cols(&|r| thousands(r.stack - r.stack_baseline)),
    );
    row(
        "  per byte (classic CAN frames, 7 B each)",
        &cols(&|r| {
            format!(
                "{:.2} Ir/B",
                (r.stack - r.stack_baseline - (r.tiny - r.baseline)) as f64 / per_byte
            )
        }),
    );
    row(
        "  of which ISO-TP reassembly + UDS, per byte",
        &cols(&|r| {
            format!(
                "{:.2} Ir/B",
                (r.stack - r.stack_baseline - (r.full - r.baseline)) as f64 / IMAGE_LEN as f64
            )
        }),
    );
    println!(
        "   Caveat: x86-64 instructions of the host build (64-bit bignum limbs, SIMD memcpy); a \
         32-bit Cortex-M executes more instructions for the same work (published: RSA-2048 \
         verification ~52 ms on an 84 MHz Cortex-M4 with mbedTLS). MemFlash writes are RAM \
         copies; real flash programming time is not included."
    );
}

// ---------------------------------------------------------------------------------------------
// Section 4: RAM
// ---------------------------------------------------------------------------------------------

/// A flash driver with no state of its own (on an ECU it is a handle to the flash controller's
/// registers), so that `size_of::<Bootloader<NoFlash>>()` is the bootloader's own RAM.
struct NoFlash;

impl Flash for NoFlash {
    type Error = ();
    fn slot_size(&self) -> u64 {
        SLOT_SIZE
    }
    fn erase_slot(&mut self, _: Slot) -> Result<(), ()> {
        Ok(())
    }
    fn write_slot(&mut self, _: Slot, _: u64, _: &[u8]) -> Result<(), ()> {
        Ok(())
    }
    fn read_slot(&mut self, _: Slot, _: u64, _: &mut [u8]) -> Result<usize, ()> {
        Ok(0)
    }
    fn read_state(&mut self, _: u8, buf: &mut [u8; STATE_LEN]) -> Result<(), ()> {
        *buf = [0; STATE_LEN];
        Ok(())
    }
    fn write_state(&mut self, _: u8, _: &[u8; STATE_LEN]) -> Result<(), ()> {
        Ok(())
    }
    fn read_trust(&mut self, _: u8, _: &mut [u8]) -> Result<usize, ()> {
        Ok(0)
    }
    fn write_trust(&mut self, _: u8, _: &[u8]) -> Result<(), ()> {
        Ok(())
    }
}

fn section_ram(keys: &[&SigningKey], img: &[u8]) {
    use std::mem::size_of;
    println!();
    println!(
        "4. ECU RAM, bytes (host build: x86-64, 8-byte pointers and usize; a 32-bit ECU needs \
         a little less)"
    );
    let sizes = [
        (
            "Bootloader<flash driver without state>",
            size_of::<Bootloader<'static, NoFlash>>(),
        ),
        (
            "uds::Server<..> (bootloader + serial)",
            size_of::<Server<'static, NoFlash>>(),
        ),
        (
            "ISO-TP Link<4096, 4096> (as shipped: ota-ecu-sim, ecu/firmware)",
            size_of::<Link<MAX_MESSAGE, MAX_MESSAGE>>(),
        ),
        ("uds::Response (on the stack)", size_of::<uds::Response>()),
        (
            "CompactManifest (on the stack, RequestDownload)",
            size_of::<CompactManifest>(),
        ),
        (
            "attestation bundle, parsed (on the stack, full mode)",
            size_of::<heapless::Vec<ota_ecu::compact_manifest::SignatureEntry, 4>>(),
        ),
        (
            "OEM instruction held for the next download (in the Bootloader above)",
            size_of::<Option<ota_ecu::instruction::Instruction>>(),
        ),
    ];
    for (what, n) in sizes {
        row(what, &[thousands(n as u64)]);
    }
    // The held instruction is counted in the Bootloader, itself in the Server.
    let total: usize = sizes[1..sizes.len() - 1].iter().map(|(_, n)| n).sum();
    row(
        "ECU total, as shipped: Server + Link + Response + manifest + bundle",
        &[thousands(total as u64)],
    );
    row(
        "  the smallest link the protocol allows: Link<MAX_RESPONSE, MAX_BLOCK + 2>",
        &[thousands(size_of::<EcuLink>() as u64)],
    );
    row(
        "  and the total with it",
        &[thousands(
            (total - size_of::<Link<MAX_MESSAGE, MAX_MESSAGE>>() + size_of::<EcuLink>()) as u64,
        )],
    );
    row(
        "one isotp::Frame (a receive-queue entry)",
        &[thousands(size_of::<Frame>() as u64)],
    );

    // Heap, measured with this binary's counting allocator (single-threaded here).
    let names: Vec<String> = keys.iter().map(|k| format!("RSA-{}", k.bits())).collect();
    row("heap", &names);
    let mut provisioned_heap = Vec::new();
    let mut verify_peak = Vec::new();
    let mut request_peak = Vec::new();
    let mut parse_peak = Vec::new();
    let mut trust_heap = Vec::new();
    let mut attest_peak = Vec::new();
    let mut trust_update_peak = Vec::new();
    for key in keys {
        let t1 = trust_document(key, 1);
        let t2 = trust_document(key, 2);
        let before = HEAP_NOW.load(Ordering::Relaxed);
        let held = ota_ecu::trust::Signed::parse(&t1).expect("trust").doc;
        let kept = HEAP_NOW.load(Ordering::Relaxed) - before;
        trust_heap.push(format!(
            "{} + {}",
            size_of::<ota_ecu::trust::TrustDocument>(),
            thousands(kept as u64)
        ));
        let (ok, peak, _) = heap_during(|| held.accept(&t2).map(|_| ()));
        ok.expect("trust update");
        trust_update_peak.push(thousands(peak as u64));
        let tm = manifest(key, &img[..TINY_LEN]);
        let b = attestation_bundle(key, &tm);
        let body = CompactManifest::parse(&tm).expect("parse").body_bytes;
        let (ok, peak, _) =
            heap_during(|| ota_ecu::attestation::verify(&b, &body, &held.regulators));
        ok.expect("attestation");
        attest_peak.push(thousands(peak as u64));
        let m = manifest(key, &img[..TINY_LEN]);
        let before = HEAP_NOW.load(Ordering::Relaxed);
        let pk = [provisioned(key)];
        let kept = HEAP_NOW.load(Ordering::Relaxed) - before;
        provisioned_heap.push(format!(
            "{} + {}",
            size_of::<ProvisionedKey>(),
            thousands(kept as u64)
        ));
        let (parsed, peak, _) = heap_during(|| CompactManifest::parse(&m));
        let parsed = parsed.expect("parse");
        parse_peak.push(thousands(peak as u64));
        let (ok, peak, allocs) = heap_during(|| parsed.verify(&pk, 1));
        ok.expect("verify");
        verify_peak.push(format!("{} ({allocs} allocs)", thousands(peak as u64)));
        let mut bl = Bootloader::new(NoFlash, identity(&pk)).expect("bootloader");
        let (ok, peak, _) = heap_during(|| bl.request_download(&m));
        ok.expect("request download");
        request_peak.push(thousands(peak as u64));
    }
    row(
        "provisioned key: size_of + heap (modulus, e)",
        &provisioned_heap,
    );
    row("peak heap, CompactManifest::parse", &parse_peak);
    row("peak heap, CompactManifest::verify", &verify_peak);
    row("peak heap, Bootloader::request_download", &request_peak);
    row("trust document held: size_of + heap (3 keys)", &trust_heap);
    row("peak heap, attestation::verify (full mode)", &attest_peak);
    row("peak heap, TrustDocument::accept", &trust_update_peak);
    let tiny = manifest(keys[0], &img[..TINY_LEN]);
    let instruction = instruction_for(&tiny);
    let (ok, peak, allocs) =
        heap_during(|| ota_ecu::instruction::verify(&instruction, &[instruction_key()]));
    ok.expect("instruction");
    row(
        "peak heap, instruction::verify (Ed25519)",
        &[format!("{} ({allocs} allocs)", thousands(peak as u64))],
    );
    println!(
        "   Stack depth is not measured. The verification's heap includes the clone of the \
         public key that rsa's VerifyingKey takes. Keys are generated afresh on every run, so \
         allocation counts (and section 3's signature Ir) vary a little from run to run."
    );
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        if let Err(e) = child::main(&mode) {
            eprintln!("measurement program, mode {mode}: {e}");
            std::process::exit(1);
        }
        return;
    }
    bus_model::self_test();
    let start = Instant::now();
    println!("== ota-ecu benchmark: one 1 MiB image to one ECU ==");
    let k2048 = SigningKey::generate(2048).expect("key generation");
    let k3072 = SigningKey::generate(3072).expect("key generation");
    println!(
        "(supplier keys RSA-2048 and RSA-3072 generated in {:.1} s; image: 1 MiB of \
         pseudo-random bytes)",
        start.elapsed().as_secs_f64()
    );
    let img = image(IMAGE_LEN);
    let m3072 = manifest(&k3072, &img);

    let fail = |what: &str, e: String| -> ! {
        eprintln!("{what}: {e}");
        std::process::exit(1);
    };
    let runs: Vec<(Download, FrameReport)> = [Mode::Classic, Mode::FD64]
        .into_iter()
        .map(|mode| {
            let r = repeated(|| download_mem(mode, &k3072, &m3072, &img));
            let d = r
                .median
                .filter(|_| r.errors.is_empty())
                .unwrap_or_else(|| fail("download over the in-memory bus", r.errors.join("; ")));
            let r = FrameReport::new(mode, &d);
            (d, r)
        })
        .collect();
    print_frames(&runs, m3072.len());
    let udp: Vec<Repeated> = [Mode::Classic, Mode::FD64]
        .into_iter()
        .map(|mode| repeated(|| download_udp(mode, &k3072, &m3072, &img)))
        .collect();
    print_bus_time(&runs, &udp);
    section_callgrind(&[&k2048, &k3072], &img);
    section_ram(&[&k2048, &k3072], &img);
    section_firmware();
    section_emulated(&[&k2048, &k3072], &img);
    println!();
    println!("(benchmark ran {:.1} s)", start.elapsed().as_secs_f64());
    // The last line says whether every section ran (a skipped one is not a figure).
    println!("{}", SKIPPED.last_line());
}

/// Section 6: the firmware's own checks on an emulated Cortex-M4 (`ecu/qemu` under QEMU's
/// `mps2-an386`), counted in instructions: with `-icount shift=0` every instruction takes one
/// virtual nanosecond, and the firmware times each check with SysTick (40 ns resolution).
/// Inputs: a factory record provisioning both supplier keys, and `ota-ecu-bench.bin` listing
/// a compact manifest signed by each and an OEM instruction (see the firmware's `bench`).
fn section_emulated(keys: &[&SigningKey], img: &[u8]) {
    println!();
    println!(
        "6. On an emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0: instructions counted as \
         virtual ns by SysTick), the firmware of ecu/qemu"
    );
    let elf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/thumbv7em-none-eabihf/firmware/ota-ecu-qemu");
    if !elf.exists() {
        println!(
            "   {} is not built (cargo build -p ota-ecu-qemu --profile firmware --target \
             thumbv7em-none-eabihf): section skipped",
            elf.display()
        );
        skipped("6 (ecu/qemu firmware not built)");
        return;
    }
    if let Some(t) = section_table(&elf) {
        let flash: u64 = [".vector_table", ".text", ".rodata", ".data"]
            .iter()
            .map(|n| section_size(&t, n))
            .sum();
        println!(
            "   the bootloader's flash: {} B of its {} B partition (vector table, .text, \
             .rodata, .data; ecu/qemu/memory.x); RAM: .bss {} B of {} B, the rest its stack",
            thousands(flash),
            thousands(128 * 1024),
            thousands(section_size(&t, ".bss")),
            thousands(64 * 1024 - 32)
        );
    }
    // One run per key, as an ECU is provisioned: the factory record holds that key alone.
    let mut consoles = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut input = Vec::new();
        let mut push = |kind: u8, bytes: &[u8]| {
            input.push(kind);
            input.extend_from_slice(&u16::try_from(bytes.len()).expect("short").to_le_bytes());
            input.extend_from_slice(bytes);
        };
        push(1, &manifest(key, &img[..TINY_LEN]));
        if i == 0 {
            let mut instruction = instruction_key().to_vec();
            instruction.extend_from_slice(&instruction_for(&manifest(key, &img[..TINY_LEN])));
            push(2, &instruction);
        }
        match run_emulated(&elf, key, &input) {
            Ok(c) => consoles.push(c),
            Err(e) => {
                println!("   RSA-{}: {e}", key.bits());
                skipped(&format!("6 for RSA-{} ({e})", key.bits()));
                consoles.push(String::new());
            }
        }
    }
    let ns_in = |console: &str, prefix: &str| -> Option<u64> {
        let line = console.lines().find(|l| l.starts_with(prefix))?;
        if line.contains("FAILED") {
            return None;
        }
        line.rsplit_once(": ")?.1.split(' ').next()?.parse().ok()
    };
    let names: Vec<String> = keys.iter().map(|k| format!("RSA-{}", k.bits())).collect();
    row("", &names);
    let verify: Vec<String> = consoles
        .iter()
        .map(|c| {
            ns_in(c, "BENCH 1 manifest parse + RSA-PSS verify").map_or("failed".into(), thousands)
        })
        .collect();
    row("manifest parse + RSA-PSS verify (instructions)", &verify);
    // "stack peak S B of T B, heap peak H B of C B" -> "S / H B".
    let ram: Vec<String> = consoles
        .iter()
        .map(|c| {
            let numbers: Vec<u64> = c
                .lines()
                .find_map(|l| l.strip_prefix("BENCH RAM: "))
                .unwrap_or_default()
                .split(|ch: char| !ch.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            match numbers[..] {
                [stack, _, heap, _] => format!("{} / {} B", thousands(stack), thousands(heap)),
                _ => "no figures".into(),
            }
        })
        .collect();
    row("stack / heap peak (of 28,948 / 24,576 B)", &ram);
    let ed = ns_in(&consoles[0], "BENCH 2 instruction Ed25519 verify");
    println!(
        "   OEM instruction, Ed25519 verify + checks: {} instructions",
        ed.map_or("failed".into(), thousands)
    );
    let sha = consoles[0]
        .lines()
        .filter(|l| l.starts_with("BENCH sha256 "))
        .filter_map(|l| {
            let len: u64 = l.split(' ').nth(2)?.parse().ok()?;
            let ns: u64 = l.rsplit_once(": ")?.1.split(' ').next()?.parse().ok()?;
            Some((len, ns))
        })
        .collect::<Vec<_>>();
    if let [(short, short_ns), (long, long_ns)] = sha[..] {
        println!(
            "   SHA-256 per image byte: {:.1} instructions ({} B hashed in {} instructions, less \
             {short} B in {})",
            (long_ns - short_ns) as f64 / (long - short) as f64,
            thousands(long),
            thousands(long_ns),
            thousands(short_ns)
        );
    } else {
        println!("   SHA-256: no figures on the console");
    }
    println!(
        "   (instructions, not cycles: QEMU models no pipeline, no flash wait states and no \
         caches, so time on a real core is these counts times its cycles per instruction)"
    );
}

/// Run the emulated ECU's benchmark once: a factory record provisioning `key` alone, the
/// benchmark's input, QEMU at one instruction per virtual ns; its console (two minutes at
/// most: a firmware that hangs is reported, not waited for).
fn run_emulated(elf: &Path, key: &SigningKey, input: &[u8]) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "ota-ecu-emulated-{}-{}",
        std::process::id(),
        key.bits()
    ));
    let result = (|| {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let provisioned = [(keyid_bytes(key.key_id()).expect("key id"), key.rsa_public())];
        let mut record =
            ota_ecu::factory::build("BENCH-1", HARDWARE_ID, &provisioned, 1).ok_or("factory")?;
        record.resize(4096, 0xFF);
        std::fs::write(dir.join("ota-ecu-flash.bin"), record).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("ota-ecu-bench.bin"), input).map_err(|e| e.to_string())?;
        let mut child = Command::new("qemu-system-arm")
            .current_dir(&dir)
            .args(["-M", "mps2-an386", "-nographic", "-icount", "shift=0"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args([
                "-serial",
                "null",
                "-serial",
                "file:console.log",
                "-monitor",
                "none",
            ])
            .arg("-kernel")
            .arg(elf)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("qemu-system-arm: {e} (Debian package qemu-system-arm)"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let console = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(console),
            Some(_) => Err(format!("the firmware failed: {}", console.trim())),
            None => Err(format!("no end within 120 s: {}", console.trim())),
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Sections that could not run, for the benchmark's last line.
static SKIPPED: ota_testkit::bench::Skipped = ota_testkit::bench::Skipped::new();

fn skipped(what: &str) {
    SKIPPED.add(what);
}

/// `size -A` of an ELF (binutils), or `None` if it cannot be read.
fn section_table(elf: &std::path::Path) -> Option<String> {
    let o = std::process::Command::new("size")
        .arg("-A")
        .arg(elf)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// One section's size in a [`section_table`] (0 when absent).
fn section_size(table: &str, name: &str) -> u64 {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Section 5: the sections of the bare-metal firmware (`ecu/firmware`), if it was built.
fn section_firmware() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let elf = target.join("thumbv7em-none-eabihf/firmware/ota-ecu-firmware");
    println!();
    println!(
        "5. Bare-metal firmware (ecu/firmware: ISO-TP Link<4096, 4096>, UDS server, bootloader, \
         compact-manifest, trust-document and attestation verifiers, RSA; thumbv7em-none-eabihf, \
         opt-level s, LTO)"
    );
    let text = match section_table(&elf) {
        Some(t) => t,
        None => {
            println!(
                "   not built: `rustup target add thumbv7em-none-eabihf && cargo build -p \
                 ota-ecu-firmware --profile firmware --target thumbv7em-none-eabihf` ({})",
                elf.display()
            );
            skipped("5 (ecu/firmware not built)");
            return;
        }
    };
    let size = |name: &str| section_size(&text, name);
    println!(
        "| .text | .rodata | .data | .bss (the heap for RSA, 32 KiB) | flash (text + rodata + data) |"
    );
    println!("|---|---|---|---|---|");
    let (t, r, d, b) = (size(".text"), size(".rodata"), size(".data"), size(".bss"));
    println!(
        "| {} | {} | {} | {} | {} |",
        thousands(t),
        thousands(r),
        thousands(d),
        thousands(b),
        thousands(t + r + d)
    );
    println!(
        "   RAM beyond .bss is the stack: the link and server sizes are in section 4 (host sizes; \
         a 32-bit ECU's are a little smaller)."
    );
}
