//! The board: QEMU's mps2-an386 (Cortex-M4), as an S32K144-class ECU sees its hardware. All of
//! the firmware's `unsafe` is here, each use commented.
//!
//! - **UART0** carries the CAN bus as SLCAN lines ([`ota_ecu::slcan`]); **UART1** is the
//!   console ([`ota_mps2::Uart`]).
//! - **Flash**: a 576 KiB region at 0x0010_0000 of the machine's memory, in 4 KiB sectors, as
//!   the flash controller would present it: reads are plain loads; an erase sets a sector to
//!   0xFF; a write is refused unless every byte it covers is erased (0xFF), as on NOR flash.
//!   Every erase and write is also written through to the host file `ota-ecu-flash.bin` by
//!   semihosting, and the region is loaded from it at start-up, so the flash outlives QEMU
//!   (killed mid-download, restarted on the same file: a power cut).
//! - **Clock**: SysTick at 1 kHz (25 MHz core clock).
//! - **Reset cause and the application's requests**: the hand-off words at the end of RAM
//!   ([`ota_mps2::handoff`]).
//! - **Starting an application** ([`start_application`]): the active image copied to the run
//!   region, checked again there, and jumped to.

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m_semihosting::nr;
use ota_ecu::bootloader::ResetCause;
use ota_ecu::flash::{Flash, Slot, STATE_LEN, TRUST_LEN};

pub use ota_mps2::Uart;

/// Milliseconds since start-up, counted by the SysTick handler (wraps after 49 days; the
/// link's timeouts are seconds).
pub static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Start SysTick at 1 kHz.
pub fn start_clock(mut syst: cortex_m::peripheral::SYST) {
    use cortex_m::peripheral::syst::SystClkSource;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(25_000 - 1);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

/// Microseconds since start-up (the ISO-TP link's clock).
pub fn now_us() -> u64 {
    u64::from(MILLIS.load(Ordering::Relaxed)) * 1000
}

/// Why the core started, as the last fault handler left it (and cleared for the next start).
pub fn take_reset_cause() -> (ResetCause, ota_mps2::handoff::Cause) {
    let cause = ota_mps2::handoff::take_cause();
    let reset = match cause {
        ota_mps2::handoff::Cause::Fault { .. } => ResetCause::Fault,
        ota_mps2::handoff::Cause::Watchdog => ResetCause::Watchdog,
        ota_mps2::handoff::Cause::PowerOn => ResetCause::PowerOn,
    };
    (reset, cause)
}

/// Leave "a fault at `pc` reset the core" for the next start-up, and reset.
pub fn fault_reset(pc: u32) -> ! {
    ota_mps2::handoff::fault_reset(pc)
}

/// The flash region.
pub const FLASH_BASE: usize = 0x0010_0000;
pub const SECTOR: usize = 4096;
const FACTORY: usize = 0;
const STATE_COPY: [usize; 2] = [SECTOR, 2 * SECTOR];
/// A trust copy: its length (4 bytes), then the document; two sectors.
const TRUST_COPY: [usize; 2] = [3 * SECTOR, 5 * SECTOR];
const SLOT_SIZE: usize = 256 * 1024;
const SLOT: [usize; 2] = [16 * SECTOR, 16 * SECTOR + SLOT_SIZE];
pub const FLASH_LEN: usize = 16 * SECTOR + 2 * SLOT_SIZE;

/// Why a flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Outside the region or the slot.
    Bounds,
    /// A write over bytes not erased.
    NotErased,
    /// The host file behind the flash could not be written.
    Persist,
}

/// The flash region, written through to the host's flash file.
pub struct BoardFlash {
    mem: &'static mut [u8],
    /// The semihosting handle of the flash file.
    file: usize,
}

/// A semihosting call.
fn host(op: usize, args: &[usize]) -> isize {
    // SAFETY: a semihosting call with an argument block of the size `op` reads; QEMU runs
    // with semihosting enabled (without it the call traps, which is a misconfiguration).
    #[allow(unsafe_code)]
    unsafe {
        cortex_m_semihosting::syscall1(op, args.as_ptr() as usize) as isize
    }
}

impl BoardFlash {
    /// The region, loaded from the host's flash file (made erased if there is none).
    pub fn load() -> Result<Self, FlashError> {
        // SAFETY: the flash region belongs to this driver alone: the linker places nothing
        // there (memory.x) and this is called once, at start-up.
        #[allow(unsafe_code)]
        let mem = unsafe { core::slice::from_raw_parts_mut(FLASH_BASE as *mut u8, FLASH_LEN) };
        let name = b"ota-ecu-flash.bin\0";
        let open = |mode: usize| host(nr::OPEN, &[name.as_ptr() as usize, mode, name.len() - 1]);
        let mut file = open(nr::open::RW_BINARY);
        let mut fresh = false;
        if file < 0 {
            file = open(nr::open::RW_TRUNC_BINARY);
            fresh = true;
        }
        if file < 0 {
            return Err(FlashError::Persist);
        }
        let mut f = BoardFlash {
            mem,
            file: file as usize,
        };
        // A shorter file (the factory sector alone, as the production line writes it) is
        // the start of the flash; the rest is erased, and the file grown to the whole region.
        let len = if fresh {
            0
        } else {
            usize::try_from(host(nr::FLEN, &[f.file]))
                .map_err(|_| FlashError::Persist)?
                .min(FLASH_LEN)
        };
        f.mem.fill(0xFF);
        if len > 0 {
            let left = host(nr::READ, &[f.file, f.mem.as_mut_ptr() as usize, len]);
            if left != 0 {
                return Err(FlashError::Persist);
            }
        }
        if len < FLASH_LEN {
            f.persist(len, FLASH_LEN - len)?;
        }
        Ok(f)
    }

    /// The factory sector.
    pub fn factory(&self) -> &[u8] {
        &self.mem[FACTORY..FACTORY + SECTOR]
    }

    /// The trust document the production line left (`ota_ecu::factory::TRUST_AT`), if any.
    pub fn factory_trust(&self) -> Option<&[u8]> {
        let at = ota_ecu::factory::TRUST_AT;
        ota_ecu::factory::trust_in(&self.mem[at..at + 4 + TRUST_LEN])
    }

    /// Write `mem[at..at + len]` through to the host file.
    fn persist(&mut self, at: usize, len: usize) -> Result<(), FlashError> {
        if host(nr::SEEK, &[self.file, at]) != 0 {
            return Err(FlashError::Persist);
        }
        let ptr = self.mem[at..at + len].as_ptr() as usize;
        match host(nr::WRITE, &[self.file, ptr, len]) {
            0 => Ok(()),
            _ => Err(FlashError::Persist),
        }
    }

    /// Erase the sectors of `[at, at + len)` (whole sectors).
    fn erase(&mut self, at: usize, len: usize) -> Result<(), FlashError> {
        if !at.is_multiple_of(SECTOR) || !len.is_multiple_of(SECTOR) || at + len > FLASH_LEN {
            return Err(FlashError::Bounds);
        }
        self.mem[at..at + len].fill(0xFF);
        self.persist(at, len)
    }

    /// Program `data` at `at`: every byte under it must be erased.
    fn program(&mut self, at: usize, data: &[u8]) -> Result<(), FlashError> {
        let end = at.checked_add(data.len()).ok_or(FlashError::Bounds)?;
        let target = self.mem.get_mut(at..end).ok_or(FlashError::Bounds)?;
        if target.iter().any(|&b| b != 0xFF) {
            return Err(FlashError::NotErased);
        }
        target.copy_from_slice(data);
        self.persist(at, data.len())
    }

    fn slot_at(slot: Slot, offset: u64, len: usize) -> Result<usize, FlashError> {
        let off = usize::try_from(offset).map_err(|_| FlashError::Bounds)?;
        if off.checked_add(len).is_none_or(|e| e > SLOT_SIZE) {
            return Err(FlashError::Bounds);
        }
        Ok(SLOT[usize::from(slot.index())] + off)
    }
}

impl Flash for BoardFlash {
    type Error = FlashError;

    fn slot_size(&self) -> u64 {
        SLOT_SIZE as u64
    }

    fn erase_slot(&mut self, slot: Slot) -> Result<(), FlashError> {
        self.erase(SLOT[usize::from(slot.index())], SLOT_SIZE)
    }

    fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        let at = Self::slot_at(slot, offset, data.len())?;
        self.program(at, data)
    }

    fn read_slot(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> Result<usize, FlashError> {
        let n = buf.len().min(SLOT_SIZE.saturating_sub(offset as usize));
        let at = Self::slot_at(slot, offset, n)?;
        buf[..n].copy_from_slice(&self.mem[at..at + n]);
        Ok(n)
    }

    fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> Result<(), FlashError> {
        let at = STATE_COPY[usize::from(copy & 1)];
        buf.copy_from_slice(&self.mem[at..at + STATE_LEN]);
        Ok(())
    }

    fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> Result<(), FlashError> {
        let at = STATE_COPY[usize::from(copy & 1)];
        self.erase(at, SECTOR)?;
        self.program(at, data)
    }

    fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> Result<usize, FlashError> {
        let at = TRUST_COPY[usize::from(copy & 1)];
        let len = u32::from_be_bytes([
            self.mem[at],
            self.mem[at + 1],
            self.mem[at + 2],
            self.mem[at + 3],
        ]) as usize;
        if len > TRUST_LEN || len > buf.len() {
            return Ok(0);
        }
        buf[..len].copy_from_slice(&self.mem[at + 4..at + 4 + len]);
        Ok(len)
    }

    fn write_trust(&mut self, copy: u8, data: &[u8]) -> Result<(), FlashError> {
        if data.len() > TRUST_LEN {
            return Err(FlashError::Bounds);
        }
        let at = TRUST_COPY[usize::from(copy & 1)];
        self.erase(at, 2 * SECTOR)?;
        self.program(at, &(data.len() as u32).to_be_bytes())?;
        self.program(at + 4, data)
    }
}

// ---- Measuring the RAM the update path uses (issue 25: painted stack, heap high-water) -----

/// What free stack is painted with.
const PAINT: u32 = 0x5AC3_5AC3;
/// Left unpainted below the stack pointer when painting (the painter's own frame).
const PAINT_MARGIN: usize = 256;

/// The stack's bounds: from the end of the statics (`__sheap`, cortex-m-rt's linker script) up
/// to the top of RAM (`_stack_start`). The heap is a static array, so nothing else lives here.
fn stack_bounds() -> (usize, usize) {
    extern "C" {
        static __sheap: u32;
        static _stack_start: u32;
    }
    // Only the addresses of the linker's symbols are taken (no unsafe needed); they are
    // never read.
    (
        core::ptr::addr_of!(__sheap) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paint the stack below the current frame, so [`stack_peak`] can tell how deep it went.
/// Called first thing at start-up.
#[inline(never)]
pub fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 4 <= sp.saturating_sub(PAINT_MARGIN) {
        // SAFETY: [bottom, sp - margin) is stack below every live frame (the stack grows
        // down from the top of RAM and this function's frame is above sp - margin); writing
        // it disturbs nothing.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile(p as *mut u32, PAINT)
        };
        p += 4;
    }
}

/// The deepest the stack has been since [`paint_stack`] (bytes from the top of RAM), and the
/// stack's whole size.
pub fn stack_peak() -> (usize, usize) {
    let (bottom, top) = stack_bounds();
    let mut p = bottom;
    // SAFETY: reads of the stack region below the live frames, word by word, stopping at the
    // first word the program wrote.
    #[allow(unsafe_code)]
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p, top - bottom)
}

/// The heap, counting its high-water mark (the most bytes in use at once).
pub struct CountingHeap {
    heap: embedded_alloc::LlffHeap,
    peak: core::sync::atomic::AtomicUsize,
}

impl CountingHeap {
    pub const fn empty() -> Self {
        CountingHeap {
            heap: embedded_alloc::LlffHeap::empty(),
            peak: core::sync::atomic::AtomicUsize::new(0),
        }
    }
    /// Hand the heap its memory; once, before anything allocates.
    ///
    /// # Safety
    /// As `embedded_alloc::LlffHeap::init`: `start..start + size` is memory nothing else uses,
    /// and this is called once.
    #[allow(unsafe_code)]
    pub unsafe fn init(&self, start: usize, size: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.heap.init(start, size) }
    }
    pub fn used(&self) -> usize {
        self.heap.used()
    }
    pub fn free(&self) -> usize {
        self.heap.free()
    }
    /// The most bytes in use at once since start-up.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is passed to the inner allocator unchanged; the wrapper only reads how
// much is in use afterwards.
#[allow(unsafe_code)]
unsafe impl core::alloc::GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { self.heap.alloc(layout) };
        self.peak.fetch_max(self.heap.used(), Ordering::Relaxed);
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
    unsafe fn realloc(
        &self,
        ptr: *mut u8,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { self.heap.realloc(ptr, layout, new_size) };
        self.peak.fetch_max(self.heap.used(), Ordering::Relaxed);
        p
    }
}

// ---- Measuring instructions (issue 25: the ECU benchmark's emulated-core section) ------------

/// The core clock SysTick counts (mps2-an386: 25 MHz), in virtual nanoseconds per count.
const NS_PER_TICK: u64 = 1_000_000_000 / 25_000_000;

/// Virtual nanoseconds since start-up, from the millisecond count and SysTick's down-counter
/// (40 ns resolution). Under `qemu -icount shift=0` each instruction takes exactly one virtual
/// nanosecond, so this is the number of instructions executed.
pub fn virtual_ns() -> u64 {
    loop {
        let ms = MILLIS.load(Ordering::Relaxed);
        let current = cortex_m::peripheral::SYST::get_current();
        let reload = cortex_m::peripheral::SYST::get_reload();
        // A tick between the two reads: read again.
        if MILLIS.load(Ordering::Relaxed) == ms {
            return u64::from(ms) * 1_000_000
                + u64::from(reload.saturating_sub(current)) * NS_PER_TICK;
        }
    }
}

/// Read the host file `name` (NUL-terminated) into `buf` through semihosting: its length, or
/// `None` when there is no such file or it does not fit.
pub fn read_host_file(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    let file = host(
        nr::OPEN,
        &[name.as_ptr() as usize, nr::open::R_BINARY, name.len() - 1],
    );
    let file = usize::try_from(file).ok()?;
    let len = usize::try_from(host(nr::FLEN, &[file])).ok();
    let got = len
        .filter(|&n| n <= buf.len())
        .and_then(|n| (host(nr::READ, &[file, buf.as_mut_ptr() as usize, n]) == 0).then_some(n));
    host(nr::CLOSE, &[file]);
    got
}

/// The bootloader's own flash partition past its vector table (its code and constants), as
/// bytes to hash.
pub fn code_partition() -> &'static [u8] {
    const VECTORS: usize = 1024;
    // SAFETY: the 128 KiB at address 0 are the firmware's flash partition (memory.x): mapped,
    // readable and never written while the firmware runs; the slice starts past the vector
    // table, so its pointer is not null.
    #[allow(unsafe_code)]
    unsafe {
        core::slice::from_raw_parts(VECTORS as *const u8, 128 * 1024 - VECTORS)
    }
}

/// Set while the benchmark runs: a panic then stops QEMU (failing) instead of resetting into
/// the benchmark again.
pub static BENCHMARKING: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Stop QEMU (semihosting exit), reporting success or failure.
pub fn exit(ok: bool) -> ! {
    cortex_m_semihosting::debug::exit(if ok {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

// ---- Starting an application (issue 25 §2: trial boots of real images) ----------------------

/// How long an application on trial has to confirm itself before the watchdog resets it.
const TRIAL_WATCHDOG_S: u32 = 2;

/// Why the active image is not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStarted {
    /// Longer than the run region.
    TooLarge,
    /// The flash could not be read.
    Flash,
    /// The copy in the run region does not hash to the image's SHA-256.
    CopyCorrupt,
}

/// Whether the image of `len` bytes in `slot` is an application for this board: its vector
/// table's initial stack pointer is in RAM (word-aligned, at most its end) and its reset handler
/// a Thumb address inside the image once copied to the run region. Anything else (the update
/// path's test images, data for another processor) is not started.
pub fn is_application(flash: &mut BoardFlash, slot: Slot, len: u64) -> bool {
    use ota_mps2::map::{RAM, RAM_LEN, RUN, RUN_LEN};
    let mut v = [0u8; 8];
    if len > RUN_LEN as u64 || len < 64 || flash.read_slot(slot, 0, &mut v) != Ok(8) {
        return false;
    }
    let sp = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize;
    let reset = u32::from_le_bytes([v[4], v[5], v[6], v[7]]) as usize;
    let sp_ok = sp > RAM && sp <= RAM + RAM_LEN && sp.is_multiple_of(8);
    let reset_ok = reset & 1 == 1 && (RUN + 8..RUN + len as usize).contains(&(reset & !1));
    sp_ok && reset_ok
}

/// Start the application in `slot` (`info`: what the bootloader verified): copy it to the run
/// region, hash the copy (what runs is what was verified, MCUboot's RAM-load), tell it how it
/// was started (`start`; on trial, with the watchdog armed), stop the bootloader's clock, and
/// jump. Returns only if it cannot.
/// Never inlined: its hasher would otherwise sit in `main`'s frame under every request.
#[inline(never)]
pub fn start_application(
    flash: &mut BoardFlash,
    slot: Slot,
    info: &ota_ecu::state::ImageInfo,
    start: ota_mps2::handoff::Start,
) -> NotStarted {
    use ota_mps2::map::{RUN, RUN_LEN};
    use sha2::Digest;
    let Some(len) = usize::try_from(info.length).ok().filter(|&n| n <= RUN_LEN) else {
        return NotStarted::TooLarge;
    };
    // SAFETY: the run region belongs to the bootloader until it jumps: no program's linker
    // script places anything there (memory.x of both), and nothing else holds a reference to
    // it; it is mapped RAM on this machine.
    #[allow(unsafe_code)]
    let run = unsafe { core::slice::from_raw_parts_mut(RUN as *mut u8, len) };
    if flash.read_slot(slot, 0, run) != Ok(len) {
        return NotStarted::Flash;
    }
    if <[u8; 32]>::from(sha2::Sha256::digest(&*run)) != info.sha256 {
        return NotStarted::CopyCorrupt;
    }
    if start == ota_mps2::handoff::Start::Trial {
        // An application that hangs before confirming itself is reset, and reverted.
        ota_mps2::watchdog::start(TRIAL_WATCHDOG_S);
    }
    ota_mps2::handoff::leave_start(start);
    // SAFETY: from here the bootloader hands the core over: its SysTick is stopped and any
    // pending tick cleared (the application's vector table may have no handler for it), the
    // vector table moved to the application's, and the stack pointer and entry taken from
    // that table, which `is_application` checked and the hash above vouches for.
    #[allow(unsafe_code)]
    unsafe {
        let syst = &*cortex_m::peripheral::SYST::PTR;
        syst.csr.write(0);
        let scb = &*cortex_m::peripheral::SCB::PTR;
        scb.icsr.write(1 << 25);
        scb.vtor.write(RUN as u32);
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        cortex_m::asm::bootload(RUN as *const u32)
    }
}
