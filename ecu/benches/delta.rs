//! Delta benchmark (issue 26). Run: `cargo bench -p ota-ecu --bench delta`
//! (`OTA_BENCH_QUICK=1`: one Debian pair, and no bus times for the Debian pairs).
//!
//! A corpus of real image pairs (old, new):
//! - this project's ECU firmware (`ecu/qemu`, a bootloader of about 120 KiB) and the trial-boot
//!   application `ecu-app-confirms`, each built for `thumbv7em-none-eabihf` as it is and with
//!   the feature `point-release` (a one-line source change), turned into flat images as a
//!   supplier publishes them (`ota_ecu::elf::image`);
//! - ELF binaries from Debian packages at two point releases (`scripts/delta-corpus.sh`
//!   downloads them, checking their SHA-256).
//!
//! For each pair, side by side in one run:
//! 1. **Sizes**: the full image, ours packed (heatshrink) and ours as a delta, and the same pair
//!    through `detools` (sequential patch, heatshrink, its defaults: window 2^8, lookahead 2^7,
//!    the microcontroller setting), `bsdiff` (bzip2) and `xdelta3 -9` (`scripts/delta-
//!    references.py`); the delta as a share of the full image and as a ratio to detools'.
//! 2. **Bus time** of each (full, packed, delta, and the three references' patches) on
//!    500 kbit/s classic CAN and
//!    on CAN FD (2 Mbit/s data phase): a real download of those bytes with the gateway's code
//!    (`flasher::flash_encoded`) into an ECU running the bootloader (`flasher::serve`) over the
//!    in-memory bus, every frame of both sides recorded and its bits counted by the bit-level
//!    model of the ECU benchmark (`support/bus_model.rs`, exact stuffing). Ours are real
//!    installs (the ECU rebuilds and verifies the new image); the references' patches are
//!    carried as opaque bytes of their length (what the bus would carry for them).
//! 3. **Applying on the ECU**: on an emulated Cortex-M4 (QEMU mps2-an386, `-icount shift=0`)
//!    the firmware applies a delta against the start of its own code (32 KiB of real ARM code)
//!    and hashes the output as the bootloader does: instructions per rebuilt byte, the
//!    decoder's size and the stack's peak while applying (painted); and on the host, the
//!    decoding throughput, against the bus's byte rate.

use ota_ecu::bootloader::{Bootloader, Identity, MAX_BLOCK};
use ota_ecu::bus::mem::MemBus;
use ota_ecu::compact_manifest::{Body, Field, ProvisionedKey};
use ota_ecu::delta::{make, Encoding};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::flasher::{flash_encoded, serve};
use ota_ecu::isotp::{standard_id, Config, Frame, Mode};
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::{self, Server};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::SigningKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/bus_model.rs"]
mod bus_model;

const HARDWARE_ID: &str = "HW-BENCH";
static SKIPPED: ota_testkit::bench::Skipped = ota_testkit::bench::Skipped::new();

fn skipped(what: &str) {
    SKIPPED.add(what);
}

fn quick() -> bool {
    std::env::var_os("OTA_BENCH_QUICK").is_some()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Pair {
    name: String,
    old: Vec<u8>,
    new: Vec<u8>,
    /// Bus times are measured for this pair.
    bus: bool,
}

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

/// The flat image of firmware ELF `elf`.
fn flat(elf: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    ota_ecu::elf::image(&bytes)
        .map(|(_, img)| img)
        .map_err(|e| format!("{}: {e}", elf.display()))
}

/// The firmware pairs: the ordinary build (`scripts/test.sh` and `.ci/run` build it) and a
/// point release built here into a target directory of its own.
fn firmware_pairs() -> Vec<Pair> {
    let built = root().join("target/thumbv7em-none-eabihf/firmware");
    let names = [
        ("ECU firmware (ecu/qemu)", "ota-ecu-qemu", "ota-ecu-qemu"),
        (
            "trial-boot application (ecu-app-confirms)",
            "ota-ecu-app",
            "ecu-app-confirms",
        ),
    ];
    if !names.iter().all(|(_, _, bin)| built.join(bin).exists()) {
        println!(
            "   the firmware is not built (cargo build -p ota-ecu-qemu -p ota-ecu-app --profile \
             firmware --target thumbv7em-none-eabihf): firmware pairs skipped"
        );
        skipped("the firmware pairs (firmware not built)");
        return Vec::new();
    }
    let other = root().join("target/delta-point-release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "-q", "--locked", "--profile", "firmware"])
        .args([
            "--target",
            "thumbv7em-none-eabihf",
            "--features",
            "point-release",
        ])
        .args(["-p", "ota-ecu-qemu", "-p", "ota-ecu-app", "--target-dir"])
        .arg(&other)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("   building the point releases failed: firmware pairs skipped");
        skipped("the firmware pairs (point-release build failed)");
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, _, bin) in names {
        let new = other.join("thumbv7em-none-eabihf/firmware").join(bin);
        match (flat(&built.join(bin)), flat(&new)) {
            (Ok(old), Ok(new)) => out.push(Pair {
                name: name.into(),
                old,
                new,
                bus: true,
            }),
            (Err(e), _) | (_, Err(e)) => {
                println!("   {name}: {e}");
                skipped(&format!("{name} ({e})"));
            }
        }
    }
    out
}

/// The Debian pairs (`scripts/delta-corpus.sh`: downloaded once into `target/delta-corpus`).
fn debian_pairs() -> Vec<Pair> {
    let out = Command::new(root().join("scripts/delta-corpus.sh"))
        .arg(root().join("target/delta-corpus"))
        .stderr(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        _ => {
            println!("   scripts/delta-corpus.sh failed (no network?): Debian pairs skipped");
            skipped("the Debian pairs (download failed)");
            return Vec::new();
        }
    };
    let mut pairs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((old, new)) = line.split_once(' ') else {
            continue;
        };
        let name = Path::new(new)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches("-new").to_string())
            .unwrap_or_default();
        if quick() && name != "ssh" {
            continue;
        }
        match (std::fs::read(old), std::fs::read(new)) {
            (Ok(old), Ok(new)) => pairs.push(Pair {
                name: format!("Debian {name}"),
                old,
                new,
                bus: !quick(),
            }),
            _ => skipped(&format!("Debian {name} (unreadable)")),
        }
    }
    if quick() {
        skipped("the other Debian pairs and their bus times (OTA_BENCH_QUICK)");
    }
    pairs
}

// ---------------------------------------------------------------------------------------------
// Section 1: sizes
// ---------------------------------------------------------------------------------------------

/// What `scripts/delta-references.py` measured for a pair.
#[derive(Default)]
struct References {
    detools: Option<u64>,
    bsdiff: Option<u64>,
    xdelta3: Option<u64>,
    /// The patches themselves (detools', bsdiff's, xdelta3's), for their bus times.
    patches: [Option<Vec<u8>>; 3],
}

fn references(p: &Pair) -> References {
    let dir = std::env::temp_dir().join(format!("ota-delta-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (old, new, work) = (dir.join("old"), dir.join("new"), dir.join("work"));
    let _ = std::fs::create_dir_all(&work);
    let written = std::fs::write(&old, &p.old).and_then(|()| std::fs::write(&new, &p.new));
    let out = written.ok().and_then(|()| {
        Command::new("python3")
            .arg(root().join("scripts/delta-references.py"))
            .args([&old, &new, &work])
            .output()
            .ok()
    });
    let refs = match out {
        Some(o) if o.status.success() => {
            let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            let n = |k: &str| j[k].as_u64();
            let patch = |tool: &str| std::fs::read(work.join(format!("{tool}.patch"))).ok();
            References {
                detools: n("detools_sequential_heatshrink"),
                bsdiff: n("bsdiff"),
                xdelta3: n("xdelta3"),
                patches: [patch("detools"), patch("bsdiff"), patch("xdelta3")],
            }
        }
        Some(o) => {
            let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
            println!("   {}: references failed: {why}", p.name);
            skipped(&format!("references for {} ({why})", p.name));
            References::default()
        }
        None => {
            skipped(&format!("references for {} (python3)", p.name));
            References::default()
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    refs
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(n: Option<u64>) -> String {
    n.map_or("-".into(), thousands)
}

/// One pair's own encodings, checked to rebuild the new image.
struct Ours {
    packed: Vec<u8>,
    delta: Vec<u8>,
    make_time: Duration,
}

fn ours(p: &Pair) -> Ours {
    let t = Instant::now();
    let delta = make::delta(&p.old, &p.new);
    let make_time = t.elapsed();
    let packed = make::packed(&p.new);
    let rebuilt = make::apply(
        Encoding::Delta,
        &p.old,
        &delta,
        p.new.len() as u64,
        MAX_BLOCK,
    );
    assert!(
        rebuilt.as_deref() == Ok(&p.new[..]),
        "{}: the delta does not rebuild the image",
        p.name
    );
    let unpacked = make::apply(
        Encoding::Packed,
        &[],
        &packed,
        p.new.len() as u64,
        MAX_BLOCK,
    );
    assert!(unpacked.as_deref() == Ok(&p.new[..]), "{}: packed", p.name);
    Ours {
        packed,
        delta,
        make_time,
    }
}

// ---------------------------------------------------------------------------------------------
// Section 2: bus time of a real download
// ---------------------------------------------------------------------------------------------

#[path = "support/recorder.rs"]
mod recorder;
use recorder::Recorder;

fn field(s: &str) -> Field {
    Field::new(s).expect("a valid field")
}

fn manifest(key: &SigningKey, img: &[u8], counter: u64) -> Vec<u8> {
    let body = Body {
        uid: field("bench-fw"),
        version: field(if counter == 1 { "1.0" } else { "1.1" }),
        release_counter: counter,
        length: img.len() as u64,
        sha256: Sha256::digest(img).into(),
        hardware_ids: heapless::Vec::from_slice(&[field(HARDWARE_ID)]).expect("one id"),
    };
    sign_compact(&body, &[key]).expect("signing")
}

/// Seconds on the bus for a download of `data` (`image` in `encoding`) into an ECU that runs
/// `base` (if any), in `mode`: every frame of both sides, exact stuffing.
fn bus_seconds(
    key: &SigningKey,
    mode: Mode,
    base: Option<&[u8]>,
    image: &[u8],
    encoding: Encoding,
    data: &[u8],
) -> Result<f64, String> {
    let bus = MemBus::new();
    let (tester_can, ecu_can) = (bus.node(), bus.node());
    let (t, e) = (
        standard_id(0x7E0).expect("id"),
        standard_id(0x7E8).expect("id"),
    );
    let (mut tcfg, mut ecfg) = (Config::new(t, e), Config::new(e, t));
    tcfg.mode = mode;
    ecfg.mode = mode;
    ecfg.block_size = uds::ECU_BLOCK_SIZE;
    let keys = [ProvisionedKey {
        keyid: keyid_bytes(key.key_id()).expect("key id"),
        key: key.rsa_public(),
    }];
    let slot = (image.len().max(base.map_or(0, <[u8]>::len)) as u64 + 4096).next_power_of_two();
    let mut bl = Bootloader::new(
        MemFlash::new(slot),
        Identity {
            hardware_id: field(HARDWARE_ID),
            keys: &keys,
            threshold: 1,
        },
    )
    .map_err(|e| format!("{e:?}"))?;
    if let Some(base) = base {
        install(&mut bl, &manifest(key, base, 1), base)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ecu_stop = stop.clone();
    let expected: [u8; 32] = Sha256::digest(image).into();
    let ecu = std::thread::scope(|s| {
        let ecu = s.spawn(move || -> Result<Vec<Frame>, String> {
            let mut server = Server::new(bl, field("ECU-BENCH"));
            let rec = Recorder {
                inner: ecu_can,
                sent: Vec::new(),
            };
            let mut ep = Endpoint::new(rec, ecfg).map_err(|e| e.to_string())?;
            serve(&mut ep, &mut server, &ecu_stop)?;
            match server.bootloader.state().pending {
                Some(p) if p.sha256 == expected => Ok(ep.can.sent),
                _ => Err("the ECU holds no verified image".into()),
            }
        });
        let rec = Recorder {
            inner: tester_can,
            sent: Vec::new(),
        };
        let result = Endpoint::new(rec, tcfg)
            .map_err(|e| e.to_string())
            .and_then(|mut tester| {
                let m = manifest(key, image, 2);
                flash_encoded(
                    &mut tester,
                    &m,
                    None,
                    encoding,
                    &mut &data[..],
                    data.len() as u64,
                    |_| {},
                )
                .map_err(|e| e.to_string())
                .map(|()| tester.can.sent)
            });
        stop.store(true, Ordering::Relaxed);
        let ecu = ecu.join().map_err(|_| "ECU thread panicked".to_string());
        (result, ecu)
    });
    let (tester, ecu) = ecu;
    let frames = tester?.into_iter().chain(ecu??);
    Ok(frames
        .map(|f| bus_model::frame_bits(&f, bus_model::Stuffing::Exact))
        .fold(bus_model::Bits::default(), bus_model::Bits::add)
        .seconds())
}

/// Install `img` (plain) and confirm it: the ECU's running image.
fn install(bl: &mut Bootloader<'_, MemFlash>, m: &[u8], img: &[u8]) -> Result<(), String> {
    let e = |r| format!("installing the base: {r:?}");
    bl.request_download(m).map_err(e)?;
    for (i, chunk) in img.chunks(MAX_BLOCK).enumerate() {
        bl.transfer_data(((i + 1) % 256) as u8, chunk).map_err(e)?;
    }
    let info = bl.transfer_exit().map_err(e)?;
    bl.activate(&info.sha256).map_err(e)?;
    bl.boot(ota_ecu::bootloader::ResetCause::PowerOn)
        .map_err(e)?;
    bl.confirm().map_err(e)
}

// ---------------------------------------------------------------------------------------------
// Section 3: applying on the ECU
// ---------------------------------------------------------------------------------------------

/// Bytes of the firmware's own code the emulated ECU applies a delta against.
const EMULATED_BASE: usize = 32 * 1024;

/// The emulated core's figures: (instructions per rebuilt byte, decoder bytes, stack peak).
fn emulated(key: &SigningKey) -> Result<(f64, u64, u64, usize, usize), String> {
    let elf = root().join("target/thumbv7em-none-eabihf/firmware/ota-ecu-qemu");
    let code = flat(&elf)?;
    // What the firmware reads as its code partition: past the 1 KiB vector table.
    let base = code
        .get(1024..1024 + EMULATED_BASE)
        .ok_or("the firmware is smaller than the base")?
        .to_vec();
    // A point release of that code: a few words changed, a few bytes inserted.
    let mut new = base.clone();
    for i in (700..new.len()).step_by(4099) {
        new[i] ^= 0x5A;
    }
    new.splice(EMULATED_BASE / 2..EMULATED_BASE / 2, *b"a fix: 16 bytes!");
    let delta = make::delta(&base, &new);
    let mut input = vec![3u8];
    input.extend_from_slice(
        &u16::try_from(delta.len())
            .map_err(|_| "delta too long for the firmware's bench input")?
            .to_le_bytes(),
    );
    input.extend_from_slice(&delta);
    if input.len() > 2048 {
        return Err(format!(
            "the delta ({} B) exceeds the bench input",
            delta.len()
        ));
    }
    let dir = std::env::temp_dir().join(format!("ota-delta-emulated-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let provisioned = [(keyid_bytes(key.key_id()).expect("key id"), key.rsa_public())];
        let mut record =
            ota_ecu::factory::build("BENCH-1", HARDWARE_ID, &provisioned, 1).ok_or("factory")?;
        record.resize(4096, 0xFF);
        std::fs::write(dir.join("ota-ecu-flash.bin"), record).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("ota-ecu-bench.bin"), &input).map_err(|e| e.to_string())?;
        let status = Command::new("timeout")
            .current_dir(&dir)
            .args(["120", "qemu-system-arm", "-M", "mps2-an386", "-nographic"])
            .args([
                "-icount",
                "shift=0",
                "-semihosting-config",
                "enable=on,target=native",
            ])
            .args([
                "-serial",
                "null",
                "-serial",
                "file:console.log",
                "-monitor",
                "none",
            ])
            .arg("-kernel")
            .arg(&elf)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("qemu-system-arm: {e}"))?;
        let console = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
        if !status.success() {
            return Err(format!("QEMU: {}", console.trim()));
        }
        Ok(console)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let console = result?;
    let numbers = |prefix: &str| -> Vec<u64> {
        console
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let apply_line = console
        .lines()
        .find(|l| l.contains("delta apply"))
        .ok_or_else(|| format!("no delta line: {console}"))?;
    if apply_line.contains("FAILED") {
        return Err(apply_line.into());
    }
    let ns: u64 = apply_line
        .rsplit_once(": ")
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or("no figure")?;
    let want = Sha256::digest(&new);
    let info = console
        .lines()
        .find(|l| l.starts_with("BENCH delta:"))
        .ok_or("no delta figures")?;
    if !info.contains(&format!("{:02x}{:02x}", want[0], want[1])) {
        return Err(format!("the emulated ECU rebuilt other bytes: {info}"));
    }
    let [out, decoder, stack, ..] = numbers("BENCH delta:")[..] else {
        return Err(format!("unreadable: {info}"));
    };
    Ok((
        ns as f64 / out as f64,
        out,
        decoder,
        stack as usize,
        delta.len(),
    ))
}

fn main() {
    bus_model::self_test();
    let key = SigningKey::generate(2048).expect("key");
    println!("Delta benchmark (issue 26): real image pairs, ours beside detools, bsdiff, xdelta3");
    println!();
    println!("Corpus");
    let mut pairs = firmware_pairs();
    pairs.extend(debian_pairs());

    println!();
    println!(
        "1. Sizes (bytes). delta % = our delta / full image; vs detools = our delta / detools' \
         (sequential, heatshrink 8/7)"
    );
    println!(
        "   {:<44} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "pair",
        "full",
        "packed",
        "delta",
        "detools",
        "bsdiff",
        "xdelta3",
        "delta %",
        "vs det.",
        "make s"
    );
    let mut rows = Vec::new();
    for p in &pairs {
        let o = ours(p);
        let r = references(p);
        let share = o.delta.len() as f64 * 100.0 / p.new.len() as f64;
        let vs = r.detools.map_or("-".into(), |d| {
            format!("{:.3}", o.delta.len() as f64 / d as f64)
        });
        println!(
            "   {:<44} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7.2}% {:>8} {:>8.2}",
            p.name,
            thousands(p.new.len() as u64),
            thousands(o.packed.len() as u64),
            thousands(o.delta.len() as u64),
            opt(r.detools),
            opt(r.bsdiff),
            opt(r.xdelta3),
            share,
            vs,
            o.make_time.as_secs_f64()
        );
        rows.push((p, o, r));
    }

    println!();
    println!(
        "2. Bus time (s) of a real download: classic CAN 500 kbit/s / CAN FD 500 kbit/s + 2 Mbit/s \
         data (every frame of both sides, exact stuffing)"
    );
    println!(
        "   {:<44} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
        "pair", "full", "packed", "delta", "detools", "bsdiff", "xdelta3"
    );
    // Bytes per second the bus carries in a download (classic, FD), from the first pair.
    let mut rates: Option<(f64, f64)> = None;
    for (p, o, r) in &rows {
        if !p.bus {
            continue;
        }
        let seconds = |m: Mode, base: Option<&[u8]>, image: &[u8], enc: Encoding, data: &[u8]| {
            bus_seconds(&key, m, base, image, enc, data)
                .inspect_err(|e| skipped(&format!("a bus time of {} ({e})", p.name)))
                .ok()
        };
        if rates.is_none() {
            let (c, f) = (
                seconds(Mode::Classic, None, &p.new, Encoding::Plain, &p.new),
                seconds(Mode::FD64, None, &p.new, Encoding::Plain, &p.new),
            );
            rates = c
                .zip(f)
                .map(|(c, f)| (p.new.len() as f64 / c, p.new.len() as f64 / f));
        }
        let time = |base: Option<&[u8]>, image: &[u8], enc: Encoding, data: &[u8]| {
            let t: Vec<String> = [Mode::Classic, Mode::FD64]
                .into_iter()
                .map(|m| {
                    seconds(m, base, image, enc, data)
                        .map_or("failed".into(), |s| format!("{s:.2}"))
                })
                .collect();
            t.join(" / ")
        };
        // The references' patches go as opaque bytes of their length.
        let refs: Vec<String> = r
            .patches
            .iter()
            .map(|d| {
                d.as_deref()
                    .map_or("-".into(), |d| time(None, d, Encoding::Plain, d))
            })
            .collect();
        println!(
            "   {:<44} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
            p.name,
            time(None, &p.new, Encoding::Plain, &p.new),
            time(None, &p.new, Encoding::Packed, &o.packed),
            time(Some(&p.old), &p.new, Encoding::Delta, &o.delta),
            refs[0],
            refs[1],
            refs[2]
        );
    }

    println!();
    println!("3. Applying on the ECU");
    match emulated(&key) {
        Ok((per_byte, out, decoder, stack, delta_len)) => {
            println!(
                "   emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0): a {delta_len}-byte delta \
                 rebuilding {} bytes of its own code and hashing them: {per_byte:.1} instructions \
                 per rebuilt byte (SHA-256 included: the ECU benchmark's section 6 gives its share)",
                thousands(out)
            );
            println!(
                "   RAM: the decoder {decoder} B (held in the bootloader's download session) and a \
                 stack peak of {} B while applying (of 28,948 B; the RSA check before it needs more)",
                thousands(stack as u64)
            );
            // The delta arrives at the bus's byte rate and rebuilds at least as many bytes.
            let core = 80e6 / per_byte;
            match rates {
                Some((classic, fd)) => println!(
                    "   keeping up with the bus: an 80 MHz core at one instruction per cycle rebuilds \
                     {:.0} KB/s; a download carries {:.1} KB/s on classic CAN and {:.1} KB/s on CAN \
                     FD (section 2): {:.0}x / {:.0}x the bus",
                    core / 1000.0,
                    classic / 1000.0,
                    fd / 1000.0,
                    core / classic,
                    core / fd
                ),
                None => println!(
                    "   an 80 MHz core at one instruction per cycle rebuilds {:.0} KB/s (no bus rate \
                     measured in this run)",
                    core / 1000.0
                ),
            }
        }
        Err(e) => {
            println!("   emulated core: {e}");
            skipped(&format!("3 on the emulated core ({e})"));
        }
    }
    if let Some((p, o, _)) = rows.iter().find(|(p, _, _)| p.bus) {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let _ = make::apply(
                Encoding::Delta,
                &p.old,
                &o.delta,
                p.new.len() as u64,
                MAX_BLOCK,
            );
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "   host (x86-64), {}: applying the delta at {:.0} MB/s of rebuilt image (median of 5)",
            p.name,
            p.new.len() as f64 / times[2].as_secs_f64() / 1e6
        );
    }
    println!();
    println!("{}", SKIPPED.last_line());
}
