//! The ECU as firmware on an emulated Cortex-M4 (QEMU's `mps2-an386`): the real update path
//! of `ota-ecu` (ISO-TP, UDS, trust document, compact manifest and attestation checks, RSA,
//! the A/B state with trial boots) over CAN frames carried as SLCAN lines on UART0, the flash
//! emulated in the machine's memory and kept in a host file ([`board`]), all RAM within the
//! 64 KiB the linker script gives (`memory.x`).
//!
//! ```text
//! qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native \
//!     -serial tcp:127.0.0.1:7100,server=on,wait=off -serial file:console.log \
//!     -kernel target/thumbv7em-none-eabihf/firmware/ota-ecu-qemu
//! ota-slcan-bridge --serial tcp:127.0.0.1:7100 --bind 127.0.0.1:7003 --peer 127.0.0.1:7000
//! ```
//! The flash file `ota-ecu-flash.bin` (in QEMU's working directory) must hold the factory
//! record ([`ota_ecu::factory`]: serial, hardware id, supplier keys) in its first sector; the
//! firmware says so on the console and waits when it does not.
//!
//! **Starting what it installed** (a trial boot): at start-up the bootloader counts a trial's
//! boot or returns from a failed one ([`Bootloader::boot`]); then, if the active image is an
//! application for this board ([`board::is_application`]), it copies it to the run region,
//! checks it there and jumps to it, telling it whether it is on trial. An application on trial
//! runs its own start-up checks and asks the bootloader to confirm it (a hand-off word and a
//! reset, [`ota_mps2::handoff`]); one that faults instead is reset by its fault handler, and the
//! bootloader returns to the previous image by itself. A tester reaches the bootloader through
//! the application with the programming-session request (UDS `10 02`): the application resets
//! into the bootloader, which answers; the bootloader returns to the application after the
//! tester's default-session request or five seconds without a request (ISO 14229's S3 timer).
//! An image on trial that is not an application for this board (linked for another address,
//! data) fails its trial at once and is reverted: a signed image must never leave the ECU
//! confirmed with nothing to run. On the host this is an empty program.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod board;

#[cfg(target_os = "none")]
mod firmware {
    use crate::board::{self, BoardFlash, Uart};
    use core::fmt::Write;
    use core::sync::atomic::Ordering;
    use cortex_m_rt::{entry, exception};
    use ota_ecu::bootloader::{Boot, Bootloader, Identity};
    use ota_ecu::isotp::{standard_id, Config, Event, Link};
    use ota_ecu::slcan::{self, Decoder, Line};
    use ota_ecu::uds::{Server, ECU_BLOCK_SIZE, PROGRAMMING_SESSION_ANSWER};
    use ota_mps2::handoff;

    /// The heap RSA's big integers live in (the ECU benchmark's peak is 23.8 KiB).
    const HEAP_BYTES: usize = 24 * 1024;

    /// The ISO-TP transmit buffer: the largest answer (a signed version report), not the
    /// largest request; the RAM this saves is the stack's (the instruction and trust-document
    /// paths come within a few hundred bytes of a 28 KiB stack).
    const TX_BUF: usize = 1024;
    const _: () = assert!(ota_ecu::uds::MAX_RESPONSE <= TX_BUF);

    #[global_allocator]
    static HEAP: board::CountingHeap = board::CountingHeap::empty();

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let _ = writeln!(
            Uart::new(true),
            "ECU: PANIC: {info} (heap: {} B used, {} B free)",
            HEAP.used(),
            HEAP.free()
        );
        if board::BENCHMARKING.load(Ordering::Relaxed) {
            board::exit(false)
        }
        board::fault_reset(0)
    }

    #[exception]
    fn SysTick() {
        board::MILLIS.fetch_add(1, Ordering::Relaxed);
    }

    #[exception]
    unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
        let _ = writeln!(
            Uart::new(true),
            "ECU: HARD FAULT at pc {:#010x} (lr {:#010x}); resetting",
            frame.pc(),
            frame.lr()
        );
        if board::BENCHMARKING.load(Ordering::Relaxed) {
            board::exit(false)
        }
        board::fault_reset(frame.pc())
    }

    fn init_heap() {
        use core::mem::MaybeUninit;
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: the allocator is handed its memory once, here, before anything allocates,
        // and nothing else ever touches HEAP_MEM.
        #[allow(unsafe_code)]
        unsafe {
            HEAP.init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_BYTES)
        }
    }

    /// Stop here, saying why on the console (a board without its factory record, a flash
    /// the host cannot keep): nothing can be installed safely.
    fn halt(console: &mut Uart, why: &str) -> ! {
        let _ = writeln!(console, "ECU: HALTED: {why}");
        loop {
            cortex_m::asm::wfi();
        }
    }

    #[entry]
    fn main() -> ! {
        board::paint_stack();
        init_heap();
        let mut console = Uart::new(true);
        let line = Uart::new(false);
        let (server, link, tag, next) = init(&mut console);
        let tag = tag.as_str();
        let mut session = Session {
            answer: false,
            application: false,
        };
        match next {
            Next::Serve(s) => session = s,
            Next::Application { info, trial } => {
                let slot = server.bootloader.state().active;
                let start = if trial {
                    handoff::Start::Trial
                } else {
                    handoff::Start::Confirmed
                };
                let _ = writeln!(
                    console,
                    "ECU {tag}: starting the application {} {}{}",
                    info.uid.as_str(),
                    info.version.as_str(),
                    if trial { " on trial" } else { "" }
                );
                let why =
                    board::start_application(server.bootloader.flash_mut(), slot, &info, start);
                let _ = writeln!(
                    console,
                    "ECU {tag}: the application was not started: {why:?}: waiting for an update"
                );
            }
        }
        #[cfg(feature = "point-release")]
        let _ = writeln!(
            console,
            "ECU {tag}: bootloader 1.1 (the point release the delta benchmark measures)"
        );
        let _ = writeln!(
            console,
            "ECU {tag}: listening on the CAN line (UART0, SLCAN; 0x7E0 -> 0x7E8)"
        );
        serve(server, link, &line, &mut console, tag, session)
    }

    /// What the bootloader does after its start-up.
    enum Next {
        /// Start the active application.
        Application {
            info: ota_ecu::state::ImageInfo,
            trial: bool,
        },
        /// Serve the tester.
        Serve(Session),
    }

    /// The programming session the bootloader serves.
    #[derive(Clone, Copy)]
    struct Session {
        /// The application reset into the bootloader for a tester's programming-session
        /// request: the bootloader answers it.
        answer: bool,
        /// An application is active: the bootloader returns to it when the tester is done.
        application: bool,
    }

    /// Start-up, in a frame of its own (never inlined): reading the flash, the factory record
    /// and the stored trust document takes stack that the update loop then has back.
    #[inline(never)]
    fn init(
        console: &mut Uart,
    ) -> (
        &'static mut Server<'static, BoardFlash>,
        &'static mut Link<TX_BUF, 4096>,
        ota_ecu::compact_manifest::Field,
        Next,
    ) {
        let (cause, why) = board::take_reset_cause();
        let request = handoff::take_request();
        if let handoff::Cause::Fault { pc } = why {
            let _ = writeln!(console, "ECU: the last start faulted (pc {pc:#010x})");
        }
        let Some(p) = cortex_m::Peripherals::take() else {
            halt(console, "peripherals taken twice")
        };
        board::start_clock(p.SYST);
        let flash = match BoardFlash::load() {
            Ok(f) => f,
            Err(board::FlashError::Persist) => halt(
                console,
                "the flash file (ota-ecu-flash.bin) cannot be read or written through semihosting",
            ),
            Err(_) => halt(console, "flash"),
        };
        let Some(factory) = ota_ecu::factory::parse(flash.factory()) else {
            halt(
                console,
                "no valid factory record in the flash's first sector",
            )
        };
        // The long-lived state is static (in .bss, where the linker holds it to the RAM
        // budget), not on the stack, which keeps room for a request's verification.
        let Some(factory) = cortex_m::singleton!(: ota_ecu::factory::Factory = factory) else {
            halt(console, "started twice")
        };
        let tag = factory.serial;
        bench(factory, console);
        let identity = Identity {
            hardware_id: factory.hardware_id,
            keys: &factory.keys,
            threshold: factory.threshold,
        };
        // The production line's trust document, provisioned at the first start (its
        // signatures checked then); copied out first, as the flash moves into the bootloader.
        let factory_trust = flash.factory_trust().map(alloc::vec::Vec::from);
        let Ok(mut bootloader) = Bootloader::new(flash, identity) else {
            halt(console, "the flash state cannot be read")
        };
        if let Some(doc) = factory_trust.filter(|_| bootloader.trust().is_none()) {
            let _ = match bootloader.provision_trust(&doc) {
                Ok(v) => writeln!(
                    console,
                    "ECU {}: provisioned the factory's trust document version {v}",
                    tag.as_str()
                ),
                Err(e) => writeln!(
                    console,
                    "ECU {}: the factory's trust document is refused: {e:?}",
                    tag.as_str()
                ),
            };
        }
        let Some(server) = static_server(bootloader, factory.serial) else {
            halt(console, "started twice")
        };
        if request == handoff::Request::Confirm {
            confirm_trial(
                server,
                console,
                tag.as_str(),
                "the application's start-up checks",
            );
        }
        let next = start(server, cause, request, console, tag.as_str());
        let (Some(tx), Some(rx)) = (standard_id(0x7E8), standard_id(0x7E0)) else {
            halt(console, "CAN ids")
        };
        let mut cfg = Config::new(tx, rx);
        cfg.block_size = ECU_BLOCK_SIZE;
        let Some(link) = static_link(cfg) else {
            halt(console, "ISO-TP configuration")
        };
        (server, link, tag, next)
    }

    /// The ECU benchmark's emulated-core section: when the host file `ota-ecu-bench.bin`
    /// exists (it never does on a vehicle: semihosting is the emulator's), run the checks it
    /// lists on this core, print each one's cost in virtual nanoseconds (instructions under
    /// `-icount shift=0`) and stop QEMU. Records: kind (1: a compact manifest, verified with the
    /// factory's keys; 2: a 32-byte Ed25519 key and an OEM instruction, verified with it; 3: a
    /// delta against the start of this firmware's code partition, applied), length (u16,
    /// little endian), bytes.
    #[inline(never)]
    fn bench(factory: &ota_ecu::factory::Factory, console: &mut Uart) {
        let mut input = [0u8; 2048];
        let Some(n) = board::read_host_file(b"ota-ecu-bench.bin\0", &mut input) else {
            return;
        };
        board::BENCHMARKING.store(true, Ordering::Relaxed);
        let mut rest = &input[..n];
        let mut i = 0;
        while let [kind, a, b, tail @ ..] = rest {
            let len = usize::from(u16::from_le_bytes([*a, *b]));
            let Some((record, next)) = (len <= tail.len()).then(|| tail.split_at(len)) else {
                break;
            };
            rest = next;
            i += 1;
            let t = board::virtual_ns();
            let (what, ok) = match kind {
                1 => (
                    "manifest parse + RSA-PSS verify",
                    ota_ecu::compact_manifest::CompactManifest::parse(record)
                        .is_ok_and(|m| m.verify(&factory.keys, 1).is_ok()),
                ),
                2 if record.len() > 32 => {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&record[..32]);
                    (
                        "instruction Ed25519 verify",
                        ota_ecu::instruction::verify(&record[32..], &[key]).is_ok(),
                    )
                }
                3 => (
                    "delta apply over its own code + SHA-256",
                    bench_delta(record, console),
                ),
                _ => ("unknown record", false),
            };
            let ns = board::virtual_ns() - t;
            let _ = writeln!(
                console,
                "BENCH {i} {what} ({len} B): {ns} ns{}",
                if ok { "" } else { " FAILED" }
            );
        }
        // SHA-256 over the bootloader's own partition, and over 64 bytes (the fixed cost).
        let code = board::code_partition();
        for part in [&code[..64], code] {
            let t = board::virtual_ns();
            let digest = {
                use sha2::Digest;
                sha2::Sha256::digest(part)
            };
            let ns = board::virtual_ns() - t;
            let _ = writeln!(
                console,
                "BENCH sha256 {} B: {ns} ns (digest starts {:02x})",
                part.len(),
                digest[0]
            );
        }
        let (stack, stack_size) = board::stack_peak();
        let _ = writeln!(
            console,
            "BENCH RAM: stack peak {stack} B of {stack_size} B, heap peak {} B of {HEAP_BYTES} B",
            HEAP.peak()
        );
        board::exit(true)
    }

    /// Apply the delta `record` against the start of this firmware's own code partition (the
    /// base the host took from the same ELF), hashing what comes out as the bootloader does;
    /// print what came out, the decoder's size and the stack's peak while applying. The time
    /// is taken by the caller (the base's hash, computed first, is outside it only in the
    /// sense that a real ECU knows its active image's hash from its state).
    #[inline(never)]
    fn bench_delta(record: &[u8], console: &mut Uart) -> bool {
        use ota_ecu::delta::{Base, Decoder, Encoding, Target, HEADER_LEN};
        use sha2::Digest;
        struct Code {
            out: sha2::Sha256,
            len: u64,
        }
        impl Target for Code {
            type Error = ();
            fn emit(&mut self, bytes: &[u8]) -> Result<(), ota_ecu::delta::Error<()>> {
                self.out.update(bytes);
                self.len += bytes.len() as u64;
                Ok(())
            }
            fn read_base(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
                let start = usize::try_from(offset).map_err(|_| ())?;
                let end = start.checked_add(buf.len()).ok_or(())?;
                buf.copy_from_slice(board::code_partition().get(start..end).ok_or(())?);
                Ok(())
            }
        }
        let Some(length) = record
            .get(HEADER_LEN..HEADER_LEN + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from(u32::from_be_bytes(b)))
        else {
            return false;
        };
        let Some(base) = usize::try_from(length)
            .ok()
            .and_then(|n| board::code_partition().get(..n))
        else {
            return false;
        };
        let base = Base {
            length,
            sha256: sha2::Sha256::digest(base).into(),
        };
        board::paint_stack();
        let mut decoder = Decoder::new(Encoding::Delta, Some(base));
        let mut code = Code {
            out: sha2::Sha256::new(),
            len: 0,
        };
        let ok = decoder.feed(record, &mut code).is_ok() && decoder.finish::<()>().is_ok();
        let (stack, _) = board::stack_peak();
        let digest = code.out.finalize();
        let _ = writeln!(
            console,
            "BENCH delta: {} B out, decoder {} B, stack peak {stack} B, digest starts {:02x}{:02x}",
            code.len,
            core::mem::size_of::<Decoder>(),
            digest[0],
            digest[1]
        );
        ok
    }

    /// The ISO-TP link, in static memory. Built in a frame of its own (never inlined) so its
    /// temporary copy is gone from the stack before the first request is served.
    #[inline(never)]
    fn static_link(cfg: Config) -> Option<&'static mut Link<TX_BUF, 4096>> {
        let link = Link::<TX_BUF, 4096>::new(cfg).ok()?;
        cortex_m::singleton!(: Link<TX_BUF, 4096> = link)
    }

    /// The UDS server (and its bootloader), in static memory; as [`static_link`].
    #[inline(never)]
    fn static_server(
        bootloader: Bootloader<'static, BoardFlash>,
        serial: ota_ecu::compact_manifest::Field,
    ) -> Option<&'static mut Server<'static, BoardFlash>> {
        cortex_m::singleton!(: Server<'static, BoardFlash> = Server::new(bootloader, serial))
    }

    /// The image on trial passed its start-up check (`what`): its release counter becomes
    /// final.
    fn confirm_trial(
        server: &mut Server<'_, BoardFlash>,
        console: &mut Uart,
        tag: &str,
        what: &str,
    ) {
        if server.bootloader.state().trial.is_none() {
            return;
        }
        let _ = match server.bootloader.confirm() {
            Ok(()) => writeln!(
                console,
                "ECU {tag}: confirmed after {what}: release counter {} is final",
                server.bootloader.state().release_counter
            ),
            Err(e) => writeln!(console, "ECU {tag}: confirmation failed: {e:?}"),
        };
    }

    /// A start-up: the bootloader decides what runs, counting or reverting a trial.
    fn start(
        server: &mut Server<'_, BoardFlash>,
        cause: ota_ecu::bootloader::ResetCause,
        request: handoff::Request,
        console: &mut Uart,
        tag: &str,
    ) -> Next {
        let before = server.bootloader.state().reverted;
        let programming = request == handoff::Request::Programming;
        let (info, trial) = match server.bootloader.boot(cause) {
            Ok(Boot::Image { info, trial }) => (info, trial),
            Ok(Boot::Bootloader) => {
                let _ = writeln!(
                    console,
                    "ECU {tag}: no image installed: waiting for an update"
                );
                return Next::Serve(Session {
                    answer: programming,
                    application: false,
                });
            }
            Err(e) => {
                let _ = writeln!(
                    console,
                    "ECU {tag}: start-up refused: {e:?}: waiting for a workshop"
                );
                return Next::Serve(Session {
                    answer: programming,
                    application: false,
                });
            }
        };
        if let Some(r) = server
            .bootloader
            .state()
            .reverted
            .filter(|r| Some(*r) != before)
        {
            let _ = writeln!(
                console,
                "ECU {tag}: REVERTED {} {}: {}",
                r.uid.as_str(),
                r.version.as_str(),
                r.reason.describe()
            );
        }
        let _ = writeln!(
            console,
            "ECU {tag}: running {} {} (release counter {}{})",
            info.uid.as_str(),
            info.version.as_str(),
            info.release_counter,
            if trial { ", on trial" } else { "" }
        );
        let slot = server.bootloader.state().active;
        let application = board::is_application(server.bootloader.flash_mut(), slot, info.length);
        if !application && trial {
            // Signed and verified, but nothing this board can start (linked for another
            // address, data): a failed trial, never a confirmed image that leaves the ECU
            // without an application.
            let reason = ota_ecu::state::RevertReason::NotStartable;
            if let Err(e) = server.bootloader.fail_trial(reason) {
                let _ = writeln!(
                    console,
                    "ECU {tag}: the revert failed: {e:?}: waiting for a workshop"
                );
                return Next::Serve(Session {
                    answer: programming,
                    application: false,
                });
            }
            let _ = writeln!(
                console,
                "ECU {tag}: REVERTED {} {}: {}",
                info.uid.as_str(),
                info.version.as_str(),
                reason.describe()
            );
            // Once: the trial is over, so the next start has none to fail.
            return start(
                server,
                ota_ecu::bootloader::ResetCause::PowerOn,
                request,
                console,
                tag,
            );
        }
        if !application {
            let _ = writeln!(
                console,
                "ECU {tag}: {} {} is not an application for this board: nothing to start; waiting for an update",
                info.uid.as_str(),
                info.version.as_str()
            );
        } else if !programming {
            return Next::Application { info, trial };
        }
        // An application (on trial or not) is returned to when the tester is done: a trial
        // one is counted again at that start.
        Next::Serve(Session {
            answer: programming,
            application,
        })
    }

    /// One request (a frame of its own: the server's deep paths use the stack only while a
    /// request is being answered).
    #[inline(never)]
    fn handle(server: &mut Server<'_, BoardFlash>, req: &[u8]) -> ota_ecu::uds::Response {
        server.handle(req)
    }

    /// The RAM the update path used since start-up (measured: painted stack, the heap's
    /// high-water mark), for the benchmark and the test that read the console.
    fn report_ram(console: &mut Uart, tag: &str) {
        let (stack, stack_size) = board::stack_peak();
        let _ = writeln!(
            console,
            "ECU {tag}: RAM used: stack peak {stack} B of {stack_size} B, heap peak {} B of {HEAP_BYTES} B",
            HEAP.peak()
        );
    }

    /// The update loop: SLCAN lines in, ISO-TP messages to the UDS server, answers out.
    fn serve(
        server: &mut Server<'_, BoardFlash>,
        link: &mut Link<TX_BUF, 4096>,
        line: &Uart,
        console: &mut Uart,
        tag: &str,
        session: Session,
    ) -> ! {
        let mut decoder = Decoder::default();
        let mut out = [0u8; slcan::MAX_LINE + 1];
        let mut reset_after_answer = false;
        let mut leave_after_answer = false;
        if session.answer {
            // The tester's programming-session request, answered for the application.
            let _ = link.send(&PROGRAMMING_SESSION_ANSWER, board::now_us());
            let _ = writeln!(
                console,
                "ECU {tag}: in the programming session (asked through the application)"
            );
        }
        let mut last_request = board::now_us();
        loop {
            let now = board::now_us();
            while let Some(b) = line.read() {
                match decoder.push(b) {
                    Some(Line::Frame(f)) => {
                        link.handle_frame(&f, now);
                    }
                    Some(Line::Command(_)) => line.write(b"\r"),
                    None => {}
                }
            }
            link.handle_timeout(now);
            while let Some(ev) = link.poll_event() {
                if let Event::Received { .. } = ev {
                    let response = match link.received() {
                        Some(req) => handle(server, req),
                        None => continue,
                    };
                    let _ = link.send(&response, now);
                    last_request = now;
                    if server.take_reset() {
                        reset_after_answer = true;
                    }
                    if server.take_leave() {
                        leave_after_answer = true;
                    }
                }
            }
            while let Some(f) = link.poll_transmit(now) {
                if let Some(n) = slcan::encode(&f, &mut out) {
                    line.write(&out[..n]);
                }
            }
            if reset_after_answer && link.is_tx_idle() {
                report_ram(console, tag);
                let _ = writeln!(
                    console,
                    "ECU {tag}: activated: resetting into the image on trial"
                );
                cortex_m::peripheral::SCB::sys_reset();
            }
            let quiet = now.saturating_sub(last_request) > S3_TIMEOUT_US;
            if session.application && (leave_after_answer || quiet) && link.is_tx_idle() {
                let _ = writeln!(
                    console,
                    "ECU {tag}: the programming session ended ({}): returning to the application",
                    if leave_after_answer {
                        "the tester is done"
                    } else {
                        "5 s without a request"
                    }
                );
                cortex_m::peripheral::SCB::sys_reset();
            }
        }
    }

    /// ISO 14229-2's S3server: a programming session without a request for this long ends.
    const S3_TIMEOUT_US: u64 = 5_000_000;
}
