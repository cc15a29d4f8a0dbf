//! The board: QEMU's mps2-an386 (Cortex-M4), as an S32K144-class ECU sees its hardware. All of
//! the firmware's `unsafe` is here, each use commented.
//!
//! - **UART0** (CMSDK APB UART at 0x4000_4000) carries the CAN bus as SLCAN lines
//!   ([`ota_ecu::slcan`]); **UART1** (0x4000_5000) is the console. QEMU maps its first
//!   `-serial` to UART0 and its second to UART1.
//! - **Flash**: a 576 KiB region at 0x0010_0000 of the machine's memory, in 4 KiB sectors, as
//!   the flash controller would present it: reads are plain loads; an erase sets a sector to
//!   0xFF; a write is refused unless every byte it covers is erased (0xFF), as on NOR flash.
//!   Every erase and write is also written through to the host file `ota-ecu-flash.bin` by
//!   semihosting, and the region is loaded from it at start-up, so the flash outlives QEMU
//!   (killed mid-download, restarted on the same file: a power cut).
//! - **Clock**: SysTick at 1 kHz (25 MHz core clock).
//! - **Reset cause**: the last 32 bytes of RAM (outside the linker's RAM region) hold a word a
//!   fault handler writes before it resets the core; QEMU starts with RAM zeroed (power on).

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m_semihosting::nr;
use ota_ecu::bootloader::ResetCause;
use ota_ecu::flash::{Flash, Slot, STATE_LEN, TRUST_LEN};

const UART0: usize = 0x4000_4000;
const UART1: usize = 0x4000_5000;
const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const BAUDDIV: usize = 0x10;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// A CMSDK APB UART.
pub struct Uart(usize);

impl Uart {
    /// UART0 (the CAN line) or UART1 (the console), transmit and receive enabled.
    pub fn new(console: bool) -> Self {
        let u = Uart(if console { UART1 } else { UART0 });
        u.write_reg(BAUDDIV, 16);
        u.write_reg(CTRL, 0b11);
        u
    }

    fn read_reg(&self, off: usize) -> u32 {
        // SAFETY: a register of the CMSDK UART at its fixed address on this machine; volatile,
        // as the device changes it.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::read_volatile((self.0 + off) as *const u32)
        }
    }

    fn write_reg(&self, off: usize, v: u32) {
        // SAFETY: as in `read_reg`.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile((self.0 + off) as *mut u32, v)
        }
    }

    /// A received byte, if one is waiting.
    pub fn read(&self) -> Option<u8> {
        (self.read_reg(STATE) & RX_FULL != 0).then(|| self.read_reg(DATA) as u8)
    }

    pub fn write(&self, bytes: &[u8]) {
        for &b in bytes {
            while self.read_reg(STATE) & TX_FULL != 0 {}
            self.write_reg(DATA, u32::from(b));
        }
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        Uart::write(self, s.as_bytes());
        Ok(())
    }
}

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

const CAUSE_AT: usize = 0x2000_FFE0;
const CAUSE_FAULT: u32 = 0xFA17_0001;
const CAUSE_WATCHDOG: u32 = 0xD06D_0002;

/// Why the core started, as left by the last fault handler (and cleared for the next start).
pub fn take_reset_cause() -> ResetCause {
    // SAFETY: the reset-cause word, reserved outside the linker's RAM region (memory.x);
    // nothing else reads or writes it.
    #[allow(unsafe_code)]
    let word = unsafe {
        let p = CAUSE_AT as *mut u32;
        let w = core::ptr::read_volatile(p);
        core::ptr::write_volatile(p, 0);
        w
    };
    match word {
        CAUSE_FAULT => ResetCause::Fault,
        CAUSE_WATCHDOG => ResetCause::Watchdog,
        _ => ResetCause::PowerOn,
    }
}

/// Leave "a fault reset the core" for the next start-up, and reset.
pub fn fault_reset() -> ! {
    // SAFETY: as in `take_reset_cause`.
    #[allow(unsafe_code)]
    unsafe {
        core::ptr::write_volatile(CAUSE_AT as *mut u32, CAUSE_FAULT)
    };
    cortex_m::peripheral::SCB::sys_reset()
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
