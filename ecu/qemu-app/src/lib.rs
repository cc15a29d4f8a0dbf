//! What both applications do (`src/bin/`): on the board the bootloader started them on, say
//! which version runs; on trial, run the start-up checks and ask the bootloader to confirm
//! (or fault in them); then run, listening on the CAN line for a tester's programming-session
//! request (UDS `10 02` on 0x7E0), on which it resets into the bootloader, which answers (the
//! application never does). On the host this is empty.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
mod app {
    use core::fmt::Write;
    use cortex_m_rt::exception;
    use ota_ecu::slcan::{Decoder, Line};
    use ota_mps2::handoff::{self, Request, Start};
    use ota_mps2::Uart;

    /// `ota-ecu` (its SLCAN decoder, here) is built with `alloc`; nothing on this path
    /// allocates, but the program must have an allocator to link.
    #[global_allocator]
    static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let _ = writeln!(Uart::new(true), "APP: PANIC: {info}");
        handoff::fault_reset(0)
    }

    #[exception]
    unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
        let _ = writeln!(
            Uart::new(true),
            "APP: HARD FAULT at pc {:#010x}: resetting",
            frame.pc()
        );
        handoff::fault_reset(frame.pc())
    }

    /// Run the application `name` `version`; `start_up_checks` are its own checks, run when
    /// it is on trial (they return only if they pass).
    pub fn run(name: &str, version: &str, start_up_checks: fn(&mut Uart)) -> ! {
        let mut console = Uart::new(true);
        let start = handoff::take_start();
        let _ = writeln!(console, "APP {name} {version}: started ({start:?})");
        if start == Start::Trial {
            start_up_checks(&mut console);
            let _ = writeln!(
                console,
                "APP {name} {version}: start-up checks passed: asking the bootloader to confirm"
            );
            handoff::reset_with(Request::Confirm)
        }
        let _ = writeln!(console, "APP {name} {version}: running");
        listen(&Uart::new(false), &mut console, name)
    }

    /// Wait for the programming-session request (a single-frame `10 02` to 0x7E0) and reset
    /// into the bootloader for it. SLCAN commands (open, bitrate) are acknowledged.
    fn listen(line: &Uart, console: &mut Uart, name: &str) -> ! {
        let mut decoder = Decoder::default();
        loop {
            let Some(b) = line.read() else { continue };
            match decoder.push(b) {
                Some(Line::Frame(f)) if is_programming_request(&f) => {
                    let _ = writeln!(
                        console,
                        "APP {name}: programming session requested: resetting into the bootloader"
                    );
                    handoff::reset_with(Request::Programming)
                }
                Some(Line::Command(_)) => line.write(b"\r"),
                _ => {}
            }
        }
    }

    fn is_programming_request(f: &ota_ecu::isotp::Frame) -> bool {
        !f.is_extended() && f.raw_id() == 0x7E0 && f.data.get(..3) == Some(&[0x02, 0x10, 0x02])
    }
}

#[cfg(target_os = "none")]
pub use app::run;
#[cfg(target_os = "none")]
pub use ota_mps2::Uart;
