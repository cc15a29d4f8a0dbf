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
//! An image is started only if it is an application for this board; the images this stage
//! installs are data to it, so the bootloader's start-up check of them is the hash it already
//! checked, and it confirms them itself. On the host this is an empty program.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

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
    use ota_ecu::uds::{Server, ECU_BLOCK_SIZE};

    /// The heap RSA's big integers live in (the ECU benchmark's peak is 23.8 KiB).
    const HEAP_BYTES: usize = 24 * 1024;

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
        board::fault_reset()
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
        board::fault_reset()
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
        let (server, link, tag) = init(&mut console);
        let _ = writeln!(
            console,
            "ECU {}: listening on the CAN line (UART0, SLCAN; 0x7E0 -> 0x7E8)",
            tag.as_str()
        );
        serve(server, link, &line, &mut console, tag.as_str())
    }

    /// Start-up, in a frame of its own (never inlined): reading the flash, the factory record
    /// and the stored trust document takes stack that the update loop then has back.
    #[inline(never)]
    fn init(
        console: &mut Uart,
    ) -> (
        &'static mut Server<'static, BoardFlash>,
        &'static mut Link<4096, 4096>,
        ota_ecu::compact_manifest::Field,
    ) {
        let cause = board::take_reset_cause();
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
        let Ok(bootloader) = Bootloader::new(flash, identity) else {
            halt(console, "the flash state cannot be read")
        };
        let Some(server) = static_server(bootloader, factory.serial) else {
            halt(console, "started twice")
        };
        start(server, cause, console, tag.as_str());
        let (Some(tx), Some(rx)) = (standard_id(0x7E8), standard_id(0x7E0)) else {
            halt(console, "CAN ids")
        };
        let mut cfg = Config::new(tx, rx);
        cfg.block_size = ECU_BLOCK_SIZE;
        let Some(link) = static_link(cfg) else {
            halt(console, "ISO-TP configuration")
        };
        (server, link, tag)
    }

    /// The ECU benchmark's emulated-core section: when the host file `ota-ecu-bench.bin`
    /// exists (it never does on a vehicle: semihosting is the emulator's), run the checks it
    /// lists on this core, print each one's cost in virtual nanoseconds (instructions under
    /// `-icount shift=0`) and stop QEMU. Records: kind (1: a compact manifest, verified with the
    /// factory's keys; 2: a 32-byte Ed25519 key and an OEM instruction, verified with it),
    /// length (u16, little endian), bytes.
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

    /// The ISO-TP link, in static memory. Built in a frame of its own (never inlined) so its
    /// temporary copy is gone from the stack before the first request is served.
    #[inline(never)]
    fn static_link(cfg: Config) -> Option<&'static mut Link<4096, 4096>> {
        let link = Link::<4096, 4096>::new(cfg).ok()?;
        cortex_m::singleton!(: Link<4096, 4096> = link)
    }

    /// The UDS server (and its bootloader), in static memory; as [`static_link`].
    #[inline(never)]
    fn static_server(
        bootloader: Bootloader<'static, BoardFlash>,
        serial: ota_ecu::compact_manifest::Field,
    ) -> Option<&'static mut Server<'static, BoardFlash>> {
        cortex_m::singleton!(: Server<'static, BoardFlash> = Server::new(bootloader, serial))
    }

    /// A start-up: the bootloader decides what runs, counting or reverting a trial.
    fn start(
        server: &mut Server<'_, BoardFlash>,
        cause: ota_ecu::bootloader::ResetCause,
        console: &mut Uart,
        tag: &str,
    ) {
        let before = server.bootloader.state().reverted;
        match server.bootloader.boot(cause) {
            Ok(Boot::Image { info, trial }) => {
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
                if trial {
                    // Data to this board (not an application): its start-up check is the
                    // hash the bootloader checked at this boot.
                    match server.bootloader.confirm() {
                        Ok(()) => {
                            let _ = writeln!(
                                console,
                                "ECU {tag}: confirmed: release counter {} is final",
                                server.bootloader.state().release_counter
                            );
                        }
                        Err(e) => {
                            let _ = writeln!(console, "ECU {tag}: confirmation failed: {e:?}");
                        }
                    }
                }
            }
            Ok(Boot::Bootloader) => {
                let _ = writeln!(
                    console,
                    "ECU {tag}: no image installed: waiting for an update"
                );
            }
            Err(e) => {
                let _ = writeln!(
                    console,
                    "ECU {tag}: start-up refused: {e:?}: waiting for a workshop"
                );
            }
        }
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
        link: &mut Link<4096, 4096>,
        line: &Uart,
        console: &mut Uart,
        tag: &str,
    ) -> ! {
        let mut decoder = Decoder::default();
        let mut out = [0u8; slcan::MAX_LINE + 1];
        let mut reset_after_answer = false;
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
                    if server.take_reset() {
                        reset_after_answer = true;
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
        }
    }
}
