//! The ECU's update path as bare-metal firmware: ISO-TP over CAN (`Link<4096, 4096>`, the
//! shipped size), the UDS server, the bootloader and the compact-manifest verifier, with a
//! heap for RSA only (32 KiB). Built for `thumbv7em-none-eabihf` (Cortex-M4F/M7), it proves `ota-ecu`
//! links without `std` (workspace feature unification builds it with `std` everywhere else)
//! and gives the code and RAM size of that path (`cargo bench -p ota-ecu --bench ecu`).
//!
//! The board-specific parts are stand-ins: CAN frames and the clock come through
//! `core::hint::black_box` (so nothing is optimised away), and the flash driver keeps nothing.
//! On the host this is an empty program.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod firmware {
    use core::hint::black_box;
    use ota_ecu::bootloader::{Boot, Bootloader, Identity, ResetCause};
    use ota_ecu::compact_manifest::{Field, ProvisionedKey};
    use ota_ecu::flash::{Flash, Slot, STATE_LEN};
    use ota_ecu::isotp::{standard_id, Config, Event, Frame, Link};
    use ota_ecu::uds::Server;
    use rsa::{BigUint, RsaPublicKey};
    // Linked for the critical section it provides (see Cargo.toml).
    use cortex_m as _;

    /// The heap RSA's big integers live in: the ECU benchmark measures a peak of 23.8 KiB for
    /// accepting a trust document of RSA-3072 keys (22.3 KiB for a regulator bundle), so 32 KiB.
    const HEAP_BYTES: usize = 32 * 1024;

    #[global_allocator]
    static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    /// The board's flash driver would go here: this one reads erased flash and keeps nothing.
    struct BoardFlash;

    impl Flash for BoardFlash {
        type Error = ();
        fn slot_size(&self) -> u64 {
            512 * 1024
        }
        fn erase_slot(&mut self, slot: Slot) -> Result<(), ()> {
            black_box(slot);
            Ok(())
        }
        fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> Result<(), ()> {
            black_box((slot, offset, data));
            Ok(())
        }
        fn read_slot(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> Result<usize, ()> {
            black_box((slot, offset));
            buf.fill(0xFF);
            Ok(buf.len())
        }
        fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> Result<(), ()> {
            black_box(copy);
            buf.fill(0);
            Ok(())
        }
        fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> Result<(), ()> {
            black_box((copy, data));
            Ok(())
        }
        fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> Result<usize, ()> {
            black_box((copy, buf));
            Ok(0)
        }
        fn write_trust(&mut self, copy: u8, data: &[u8]) -> Result<(), ()> {
            black_box((copy, data));
            Ok(())
        }
    }

    #[no_mangle]
    pub extern "C" fn _start() -> ! {
        {
            use core::mem::MaybeUninit;
            static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] =
                [MaybeUninit::uninit(); HEAP_BYTES];
            // SAFETY: unavoidable on bare metal: the allocator is handed its memory once, here,
            // before anything allocates, and nothing else ever touches HEAP_MEM.
            #[allow(unsafe_code)]
            unsafe {
                HEAP.init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_BYTES)
            }
        }
        let modulus = BigUint::from_bytes_be(&black_box([0xC5u8; 384]));
        let Ok(key) = RsaPublicKey::new(modulus, BigUint::from(65_537u32)) else {
            loop {}
        };
        let keys = [ProvisionedKey {
            keyid: black_box([0x11; 32]),
            key,
        }];
        let (Some(hw), Some(serial)) = (Field::new("BRAKE-A"), Field::new("BRK-0001")) else {
            loop {}
        };
        let identity = Identity {
            hardware_id: hw,
            keys: &keys,
            threshold: 1,
        };
        let Ok(bootloader) = Bootloader::new(BoardFlash, identity) else {
            loop {}
        };
        let mut server = Server::new(bootloader, serial);
        // Start-up: the reset cause comes from the board's reset-status register; the
        // bootloader counts a trial boot or returns from a failed one, then names the image to
        // start (the jump is the board's; this stand-in stays in the update loop).
        let cause = match black_box(0u8) {
            1 => ResetCause::Watchdog,
            2 => ResetCause::Fault,
            _ => ResetCause::PowerOn,
        };
        if let Ok(Boot::Image { info, .. }) = server.bootloader.boot(cause) {
            black_box(info);
        }
        let mut reset_after_answer = false;
        let (Some(tx), Some(rx)) = (standard_id(0x7E8), standard_id(0x7E0)) else {
            loop {}
        };
        let Ok(mut link) = Link::<4096, 4096>::new(Config::new(tx, rx)) else {
            loop {}
        };
        loop {
            // A frame off the CAN controller and the time, from the board.
            let now: u64 = black_box(0);
            let raw: [u8; 65] = black_box([0; 65]);
            let len = usize::from(raw[0] & 0x3F).min(64);
            if let Some(f) = Frame::new(rx, &raw[1..1 + len], raw[0] & 0x80 != 0) {
                link.handle_frame(&f, now);
            }
            link.handle_timeout(now);
            while let Some(ev) = link.poll_event() {
                if let Event::Received { .. } = ev {
                    let response = match link.received() {
                        Some(req) => server.handle(req),
                        None => continue,
                    };
                    let _ = link.send(&response, now);
                    reset_after_answer |= server.take_reset();
                }
            }
            while let Some(f) = link.poll_transmit(now) {
                black_box(f);
            }
            if reset_after_answer && link.is_tx_idle() {
                // The activation's answer is out: reset into the image on trial.
                cortex_m::peripheral::SCB::sys_reset();
            }
        }
    }
}
