//! The ECU simulator behind `ota-ecu-sim`: the real bootloader and UDS server of this crate
//! over file-backed flash, on the UDP-carried CAN bus, printing each verification step.
//!
//! ```text
//! ota-ecu-sim --bind 127.0.0.1:7001 --peer 127.0.0.1:7000 --serial BRK-0001 \
//!             --hardware-id BRAKE-A --supplier-key acme-targets.pub.pem --flash-dir /tmp/ecu1 \
//!             --rx-id 0x7E0 --tx-id 0x7E8 [--fd] [--threshold 1] [--slot-size 16777216]
//!             [--ecu-key PRIVATE.pem] [--flash-fault] [--trust HW.1.bin]
//! ```
//!
//! `--trust FILE` provisions the ECU's first trust document (see [`crate::trust`]): installed
//! when the flash holds none, ignored when it holds one (a later version arrives over the bus
//! and is never undone by the factory file). With a trust document the ECU verifies manifests
//! with its supplier keys; `--supplier-key` is then optional and used only before it.
//!
//! `--flash-fault` simulates an ECU whose flash has failed: every write to an image slot
//! fails, so every download is refused with a programming failure (NRC 0x72) while the active
//! image stays; the tests and the demo use it for the all-or-nothing update.
//! The simulated ECU runs no code, so an image stands for an application by its first bytes:
//! one that begins with [`FAULT_MARKER`] faults at start-up, every other one starts and
//! confirms itself. After each activation the simulator resets as an ECU does: the bootloader
//! counts the trial boot, the application starts, and a faulting trial image is reverted by
//! the bootloader itself (see [`crate::bootloader`]); the output says which and why.
//! `--power-cut-after-writes N` simulates a power cut: the process aborts just before its
//! (N+1)-th flash write (slot erase, slot write or state write), with no cleanup.

use crate::bootloader::{Boot, Bootloader, Identity, ResetCause, MAX_TRIAL_BOOTS};
use crate::bus::udp::UdpBus;
use crate::compact_manifest::{CompactManifest, Field, ProvisionedKey};
use crate::delta::Encoding;
use crate::flash::file::FileFlash;
use crate::flash::{Flash, Slot, STATE_LEN};
use crate::flasher::ANSWER_TIMEOUT;
use crate::isotp::{standard_id, Config, Mode};
use crate::transport::{Endpoint, TransportError};
use crate::uds::{self, Server};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};
use std::format;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::println;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::vec::Vec;

pub struct Args {
    bind: SocketAddr,
    peers: Vec<SocketAddr>,
    serial: String,
    hardware_id: String,
    keys: Vec<PathBuf>,
    threshold: u8,
    flash_dir: PathBuf,
    rx_id: u16,
    tx_id: u16,
    fd: bool,
    slot_size: u64,
    /// The ECU's own private key, for signed version reports.
    ecu_key: Option<PathBuf>,
    /// Every image slot write fails (a broken flash).
    flash_fault: bool,
    /// Abort before the flash write after this many (a power cut).
    power_cut_after: Option<u64>,
    /// The first trust document, installed if the flash holds none.
    trust: Option<PathBuf>,
}

const USAGE: &str = "usage: ota-ecu-sim --bind ADDR --peer ADDR [--peer ADDR…] --serial S --hardware-id H \
(--trust FILE | --supplier-key PUBLIC.pem [--supplier-key …] [--threshold N]) --flash-dir DIR --rx-id ID --tx-id ID [--fd] [--slot-size BYTES] [--ecu-key PRIVATE.pem] [--flash-fault] [--power-cut-after-writes N]";

fn parse_id(s: &str) -> Result<u16, String> {
    let v = s.strip_prefix("0x").map_or_else(
        || s.parse::<u16>().ok(),
        |h| u16::from_str_radix(h, 16).ok(),
    );
    v.filter(|v| *v <= 0x7FF)
        .ok_or_else(|| format!("{s}: a standard CAN id (0..=0x7FF)"))
}

fn need<T>(o: Option<T>, name: &str) -> Result<T, String> {
    o.ok_or_else(|| format!("{name} is required\n{USAGE}"))
}

/// Parse the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let (mut bind, mut peers, mut serial, mut hw, mut keys) =
        (None, Vec::new(), None, None, Vec::new());
    let (mut threshold, mut dir, mut rx, mut tx, mut fd, mut slot) =
        (1u8, None, None, None, false, 16u64 << 20);
    let mut ecu_key = None;
    let mut flash_fault = false;
    let mut power_cut_after = None;
    let mut trust = None;
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bind" => bind = Some(val()?.parse().map_err(|e| format!("--bind: {e}"))?),
            "--peer" => peers.push(val()?.parse().map_err(|e| format!("--peer: {e}"))?),
            "--serial" => serial = Some(val()?),
            "--hardware-id" => hw = Some(val()?),
            "--supplier-key" => keys.push(PathBuf::from(val()?)),
            "--threshold" => threshold = val()?.parse().map_err(|e| format!("--threshold: {e}"))?,
            "--flash-dir" => dir = Some(PathBuf::from(val()?)),
            "--rx-id" => rx = Some(parse_id(&val()?)?),
            "--tx-id" => tx = Some(parse_id(&val()?)?),
            "--fd" => fd = true,
            "--slot-size" => slot = val()?.parse().map_err(|e| format!("--slot-size: {e}"))?,
            "--ecu-key" => ecu_key = Some(PathBuf::from(val()?)),
            "--flash-fault" => flash_fault = true,
            "--trust" => trust = Some(PathBuf::from(val()?)),
            "--power-cut-after-writes" => {
                power_cut_after = Some(
                    val()?
                        .parse()
                        .map_err(|e| format!("--power-cut-after-writes: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        bind: need(bind, "--bind")?,
        peers,
        serial: need(serial, "--serial")?,
        hardware_id: need(hw, "--hardware-id")?,
        keys,
        threshold,
        flash_dir: need(dir, "--flash-dir")?,
        rx_id: need(rx, "--rx-id")?,
        tx_id: need(tx, "--tx-id")?,
        fd,
        slot_size: slot,
        ecu_key,
        flash_fault,
        power_cut_after,
        trust,
    })
}

/// The simulator's flash: files, with slot writes failing under `--flash-fault` and a power
/// cut under `--power-cut-after-writes`.
struct SimFlash {
    files: FileFlash,
    fault: bool,
    writes_left: Option<u64>,
}

impl SimFlash {
    /// Count one write; the power goes before the one after the last allowed.
    fn write(&mut self) {
        if let Some(n) = &mut self.writes_left {
            if *n == 0 {
                println!("POWER CUT (--power-cut-after-writes) before a flash write");
                std::process::abort();
            }
            *n -= 1;
        }
    }
}

impl Flash for SimFlash {
    type Error = std::io::Error;
    fn slot_size(&self) -> u64 {
        self.files.slot_size()
    }
    fn erase_slot(&mut self, slot: Slot) -> std::io::Result<()> {
        self.write();
        self.files.erase_slot(slot)
    }
    fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if self.fault {
            return Err(std::io::Error::other(
                "injected flash fault (--flash-fault)",
            ));
        }
        self.write();
        self.files.write_slot(slot, offset, data)
    }
    fn read_slot(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.files.read_slot(slot, offset, buf)
    }
    fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> std::io::Result<()> {
        self.files.read_state(copy, buf)
    }
    fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> std::io::Result<()> {
        self.write();
        self.files.write_state(copy, data)
    }
    fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> std::io::Result<usize> {
        self.files.read_trust(copy, buf)
    }
    fn write_trust(&mut self, copy: u8, data: &[u8]) -> std::io::Result<()> {
        self.write();
        self.files.write_trust(copy, data)
    }
}

/// An image whose bytes begin with this faults at start-up in the simulator (tests, demo).
pub const FAULT_MARKER: &[u8] = b"OTA-SIM:FAULT-AT-START-UP";

/// A reset as the ECU's start-up code sees it: the bootloader decides what runs (counting a
/// trial, reverting a failed one), the application starts; a faulting one resets the core
/// again (fault reset) until the bootloader returns to an image that starts, or has none.
fn reset<F: Flash>(server: &mut Server<'_, F>, tag: &str) {
    let mut cause = ResetCause::PowerOn;
    for _ in 0..=MAX_TRIAL_BOOTS {
        let reverted_before = server.bootloader.state().reverted;
        let boot = match server.bootloader.boot(cause) {
            Ok(b) => b,
            Err(e) => {
                println!("{tag}: start-up refused: {e:?}; waiting in the bootloader");
                return;
            }
        };
        let st = *server.bootloader.state();
        if let Some(r) = st.reverted.filter(|r| Some(*r) != reverted_before) {
            println!(
                "{tag}: REVERTED {} {}: {}; the bootloader returned to the previous image by itself",
                r.uid.as_str(),
                r.version.as_str(),
                r.reason.describe()
            );
        }
        let (info, trial) = match boot {
            Boot::Image { info, trial } => (info, trial),
            Boot::Bootloader => {
                println!("{tag}: no image to run: waiting in the bootloader for an update");
                return;
            }
        };
        let mut head = [0u8; 64];
        let n = server
            .bootloader
            .flash_mut()
            .read_slot(st.active, 0, &mut head[..FAULT_MARKER.len()])
            .unwrap_or(0);
        if head[..n].starts_with(FAULT_MARKER) {
            println!(
                "{tag}: {} faulted at start-up (hard fault): the core resets",
                image_name(&info)
            );
            cause = ResetCause::Fault;
            continue;
        }
        if trial {
            match server.bootloader.confirm() {
                Ok(()) => println!(
                    "{tag}: {} started and confirmed itself: release counter {} is final",
                    image_name(&info),
                    server.bootloader.state().release_counter
                ),
                Err(e) => println!("{tag}: confirmation failed: {e:?} (still on trial)"),
            }
        }
        return;
    }
    println!("{tag}: the confirmed image faults at every start-up and there is none to return to");
}

fn image_name(i: &crate::state::ImageInfo) -> String {
    format!(
        "{} {} (release counter {})",
        i.uid.as_str(),
        i.version.as_str(),
        i.release_counter
    )
}

/// The supplier key as provisioned: its RSA key and its TUF key id, the SHA-256 of the
/// canonical key object `{"keytype":"rsa","keyval":{"public":PEM},"scheme":"rsassa-pss-sha256"}`
/// (OLPC canonical JSON: PEM characters are written raw; it holds no `"` or `\`).
/// A supplier public key (PEM file) as the ECU is provisioned with it: the key and its TUF key id.
pub fn provision(path: &PathBuf) -> Result<ProvisionedKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = rsa::RsaPublicKey::from_public_key_pem(text.trim())
        .map_err(|e| format!("{}: not an RSA public key: {e}", path.display()))?;
    let pem = key
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let object = format!("{{\"keytype\":\"rsa\",\"keyval\":{{\"public\":\"{pem}\"}},\"scheme\":\"rsassa-pss-sha256\"}}");
    Ok(ProvisionedKey {
        keyid: Sha256::digest(object.as_bytes()).into(),
        key,
    })
}

/// Version reports signed with RSASSA-PSS-SHA256 (32-byte salt) by the ECU's key.
pub struct RsaReportSigner(rsa::pss::BlindedSigningKey<Sha256>);

impl RsaReportSigner {
    pub fn load(path: &PathBuf) -> Result<Self, String> {
        use rsa::pkcs8::DecodePrivateKey;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&text)
            .map_err(|e| format!("{}: not a PKCS#8 RSA private key: {e}", path.display()))?;
        Ok(RsaReportSigner(
            rsa::pss::BlindedSigningKey::new_with_salt_len(key, 32),
        ))
    }
}

impl crate::uds::ReportSigner for RsaReportSigner {
    fn sign(&mut self, msg: &[u8]) -> Option<Vec<u8>> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        self.0
            .try_sign_with_rng(&mut rsa::rand_core::OsRng, msg)
            .ok()
            .map(|s| s.to_vec())
    }
}

fn describe(m: &CompactManifest) -> String {
    format!(
        "{} {} (release counter {}, {} bytes)",
        m.body.uid.as_str(),
        m.body.version.as_str(),
        m.body.release_counter,
        m.body.length
    )
}

/// Serve until `stop` is set (checked at least every 100 ms).
pub fn run(a: Args, stop: &AtomicBool) -> Result<(), String> {
    let keys: Vec<ProvisionedKey> = a.keys.iter().map(provision).collect::<Result<_, _>>()?;
    if keys.is_empty() && a.trust.is_none() {
        return Err(format!(
            "give --trust or at least one --supplier-key\n{USAGE}"
        ));
    }
    let field = |s: &str, what: &str| {
        Field::new(s)
            .ok_or_else(|| format!("{what} {s:?} is not 1 to 32 printable ASCII characters"))
    };
    let flash = SimFlash {
        files: FileFlash::open(&a.flash_dir, a.slot_size)
            .map_err(|e| format!("{}: {e}", a.flash_dir.display()))?,
        fault: a.flash_fault,
        writes_left: a.power_cut_after,
    };
    let identity = Identity {
        hardware_id: field(&a.hardware_id, "hardware id")?,
        keys: &keys,
        threshold: a.threshold,
    };
    let bl =
        Bootloader::new(flash, identity).map_err(|e| format!("reading the flash state: {e}"))?;
    let mut server = Server::new(bl, field(&a.serial, "serial")?);
    let tag = format!("ECU {}", a.serial);
    if let Some(path) = &a.trust {
        provision_trust(&mut server, path, &tag)?;
    }
    if let Some(path) = &a.ecu_key {
        server.signer = Some(std::boxed::Box::new(RsaReportSigner::load(path)?));
    }
    // The start-up of a (re)started ECU: a trial left by an activation before a power cut is
    // counted (or reverted) here.
    if !server.bootloader.state_lost() {
        reset(&mut server, &tag);
    }
    report_start(&server, &tag, a.flash_fault);
    let mut ep = open_endpoint(a, &tag)?;
    let mut receiving: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let req = match ep.receive(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(TransportError::Timeout) | Err(TransportError::Rx(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let manifest = requested_manifest(&req);
        let before = *server.bootloader.state();
        let resp = server.handle(&req);
        narrate(
            &server,
            &tag,
            &req,
            &resp,
            &before,
            manifest,
            &mut receiving,
        );
        ep.send(&resp, ANSWER_TIMEOUT).map_err(|e| e.to_string())?;
        // After an activation's answer the ECU resets into its new image, as a real one does.
        if server.take_reset() {
            reset(&mut server, &tag);
        }
    }
    Ok(())
}

/// `--trust`: the factory trust document, provisioned only into an ECU that holds none yet
/// (and whose state is not lost); the document in force is then reported.
fn provision_trust<F: Flash>(
    server: &mut Server<'_, F>,
    path: &std::path::Path,
    tag: &str,
) -> Result<(), String> {
    if server.bootloader.trust().is_none() && !server.bootloader.state_lost() {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v = server
            .bootloader
            .provision_trust(&bytes)
            .map_err(|e| format!("{}: trust document refused: {e:?}", path.display()))?;
        println!("{tag}: provisioned trust document version {v}");
    }
    Ok(())
}

/// What the started ECU holds, told once: its trust document, a lost state, the image it runs,
/// a pending one, and an injected flash fault.
fn report_start<F: Flash>(server: &Server<'_, F>, tag: &str, flash_fault: bool) {
    if let Some(t) = server.bootloader.trust() {
        println!(
            "{tag}: trust document version {} ({:?} verification, {} supplier key(s), threshold {})",
            t.version,
            t.mode,
            t.suppliers.keys.len(),
            t.suppliers.threshold
        );
    }
    if server.bootloader.state_lost() {
        println!("{tag}: persistent state lost (both copies invalid): refusing installs until it is restored");
    }
    match server.bootloader.state().image {
        Some(i) => println!(
            "{tag}: running {} {} (release counter {})",
            i.uid.as_str(),
            i.version.as_str(),
            server.bootloader.state().release_counter
        ),
        None => println!("{tag}: no image installed yet"),
    }
    if let Some(p) = server.bootloader.state().pending {
        println!(
            "{tag}: {} verified and pending in the inactive slot (not active)",
            image_name(&p)
        );
    }
    if flash_fault {
        println!("{tag}: FLASH FAULT injected: every image slot write fails");
    }
}

/// The ECU's ISO-TP endpoint on the UDP bus: its CAN ids, CAN FD if asked, the block size it
/// grants; reported listening.
fn open_endpoint(a: Args, tag: &str) -> Result<Endpoint<UdpBus>, String> {
    let bus = UdpBus::bind(a.bind, a.peers).map_err(|e| format!("--bind {}: {e}", a.bind))?;
    let mut cfg = Config::new(
        standard_id(a.tx_id).ok_or("tx id")?,
        standard_id(a.rx_id).ok_or("rx id")?,
    );
    if a.fd {
        cfg.mode = Mode::FD64;
    }
    cfg.block_size = uds::ECU_BLOCK_SIZE;
    let ep = Endpoint::new(bus, cfg).map_err(|e| format!("ISO-TP configuration: {e:?}"))?;
    println!(
        "{tag}: listening on {} (CAN id 0x{:03X}, answers on 0x{:03X}{})",
        a.bind,
        a.rx_id,
        a.tx_id,
        if a.fd { ", CAN FD" } else { "" }
    );
    Ok(ep)
}

/// The compact manifest a RequestDownload carries (without or with an attestation bundle
/// after it), to name the image in what is printed; `None` for any other request or one that
/// does not parse.
fn requested_manifest(req: &[u8]) -> Option<CompactManifest> {
    match req {
        [uds::REQUEST_DOWNLOAD, _, 0, m @ ..] => CompactManifest::parse(m).ok(),
        [uds::REQUEST_DOWNLOAD, _, 1, hi, lo, rest @ ..] => rest
            .get(..usize::from(u16::from_be_bytes([*hi, *lo])))
            .and_then(|m| CompactManifest::parse(m).ok()),
        _ => None,
    }
}

/// What the ECU did with one request, printed as a real ECU's log would show it: a manifest
/// accepted, an image verified, a routine run, or a refusal (with the negative response's
/// reason). `receiving` names the image being written between the two.
#[allow(clippy::too_many_arguments)]
fn narrate<F: Flash>(
    server: &Server<'_, F>,
    tag: &str,
    req: &[u8],
    resp: &[u8],
    before: &crate::state::EcuState,
    manifest: Option<CompactManifest>,
    receiving: &mut Option<String>,
) {
    let refused = (resp.first() == Some(&uds::NEGATIVE))
        .then(|| resp.get(2).copied())
        .flatten();
    match (req.first().copied(), refused) {
        (Some(uds::REQUEST_DOWNLOAD), None) => {
            let what = manifest.as_ref().map(describe).unwrap_or_default();
            let regulators = if server.bootloader.trust_version().1 == crate::trust::Mode::Full {
                "regulators' approval ok, "
            } else {
                ""
            };
            let how = match req.get(1).copied().and_then(Encoding::from_format_id) {
                Some(Encoding::Delta) => " from the active image and a delta",
                Some(Encoding::Packed) => " as the compressed image unpacks",
                _ => "",
            };
            println!("{tag}: manifest for {what}: supplier signature ok, {regulators}hardware id ok, release counter ok; writing the inactive slot{how}");
            *receiving = Some(what);
        }
        (Some(uds::TRANSFER_EXIT), None) => {
            let st = server.bootloader.state();
            println!(
                "{tag}: image hash ok; {} verified in slot {:?}, pending activation (slot {:?} stays active)",
                receiving.take().unwrap_or_default(),
                st.active.other(),
                st.active,
            );
        }
        (Some(uds::ROUTINE_CONTROL), None) => narrate_routine(server, tag, req, before),
        (Some(sid), Some(code)) => {
            let why = uds::Nrc::from_u8(code).map_or("unknown reason", uds::Nrc::describe);
            println!("{tag}: REFUSED service 0x{sid:02X}: {why}; the active image is unchanged");
            *receiving = None;
        }
        _ => {}
    }
}

/// A routine the ECU ran: the trust document now in force, an activation (or none needed:
/// the state did not change), a discard (or nothing pending to discard).
fn narrate_routine<F: Flash>(
    server: &Server<'_, F>,
    tag: &str,
    req: &[u8],
    before: &crate::state::EcuState,
) {
    let st = server.bootloader.state();
    let running = st.image.as_ref().map(image_name).unwrap_or_default();
    let rid = req.get(2..4).map(|r| u16::from_be_bytes([r[0], r[1]]));
    match rid {
        Some(uds::RID_TRUST) => {
            let (v, mode) = server.bootloader.trust_version();
            println!("{tag}: trust document version {v} in force ({mode:?} verification)")
        }
        Some(uds::RID_ACTIVATE) if st.sequence == before.sequence => {
            println!("{tag}: activate: {running} is already active")
        }
        Some(uds::RID_ACTIVATE) => println!(
            "{tag}: activated slot {:?}: {running} on trial (it runs from the next start-up, and must confirm itself)",
            st.active
        ),
        Some(uds::RID_DISCARD) if before.pending.is_some() => println!(
            "{tag}: discarded the pending image; still running {running} (slot {:?})",
            st.active
        ),
        _ => println!("{tag}: discard: nothing pending; still running {running}"),
    }
}
