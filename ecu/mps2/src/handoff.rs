//! The words the bootloader and the application leave each other across a reset, in the last
//! 32 bytes of RAM (outside both programs' linker RAM regions, so neither's stack or data
//! reaches them). Each is read once and cleared, so a word never outlives the start-up it was
//! meant for; a power-on finds them zero (QEMU zeroes RAM, as a cold SRAM reads on a real
//! board after the start-up code clears it).
//!
//! | word | written by | meaning |
//! |------|------------|---------|
//! | 0 | a fault handler | why the core reset: [`Cause`] |
//! | 1 | the application | what it asks of the bootloader: [`Request`] |
//! | 2 | the bootloader | how it started the application: [`Start`] |
//! | 3 | a fault handler | the faulting instruction's address, for the console |
//! | 4 | the bootloader | the watchdog is armed for a trial start ([`crate::watchdog`]) |
//!
//! This board has no reset-status register QEMU models, so a watchdog reset is told by
//! elimination: the bootloader armed the watchdog for a trial, and the core restarted without
//! the application asking for it (a request clears the mark) or faulting. A power cut clears
//! RAM, so it reads as a power-on.

const BASE: usize = 0x2000_FFE0;
const CAUSE: usize = BASE;
const REQUEST: usize = BASE + 4;
const START: usize = BASE + 8;
const FAULT_PC: usize = BASE + 12;
const ARMED: usize = BASE + 16;

const CAUSE_FAULT: u32 = 0xFA17_0001;
const CAUSE_WATCHDOG: u32 = 0xD06D_0002;
const REQUEST_CONFIRM: u32 = 0xC0F1_0003;
const REQUEST_PROGRAMMING: u32 = 0x9906_0004;
const START_TRIAL: u32 = 0x7B1A_0005;
const START_CONFIRMED: u32 = 0xC0DE_0006;
const WATCHDOG_ARMED: u32 = 0xA2ED_0007;

fn take(at: usize) -> u32 {
    // SAFETY: a hand-off word, reserved outside every program's linker RAM region (memory.x);
    // only this module reads or writes it.
    #[allow(unsafe_code)]
    unsafe {
        let p = at as *mut u32;
        let w = core::ptr::read_volatile(p);
        core::ptr::write_volatile(p, 0);
        w
    }
}

fn put(at: usize, word: u32) {
    // SAFETY: as in `take`.
    #[allow(unsafe_code)]
    unsafe {
        core::ptr::write_volatile(at as *mut u32, word)
    }
}

/// Why the core last reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Power on, or a reset the program asked for.
    PowerOn,
    /// A fault handler reset the core; the faulting instruction's address.
    Fault { pc: u32 },
    /// The watchdog reset the core.
    Watchdog,
}

/// Why the core reset, as the last fault handler left it (cleared for the next start).
pub fn take_cause() -> Cause {
    let pc = take(FAULT_PC);
    let armed = take(ARMED) == WATCHDOG_ARMED;
    match take(CAUSE) {
        CAUSE_FAULT => Cause::Fault { pc },
        CAUSE_WATCHDOG => Cause::Watchdog,
        _ if armed => Cause::Watchdog,
        _ => Cause::PowerOn,
    }
}

/// The bootloader, as it arms the watchdog for a trial start: a restart the application did
/// not ask for is then the watchdog's.
pub fn mark_armed() {
    put(ARMED, WATCHDOG_ARMED);
}

/// What the application asks of the bootloader at the next start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    None,
    /// The application on trial passed its start-up checks: confirm it.
    Confirm,
    /// A tester asked for the programming session: stay in the bootloader and answer it.
    Programming,
}

pub fn take_request() -> Request {
    match take(REQUEST) {
        REQUEST_CONFIRM => Request::Confirm,
        REQUEST_PROGRAMMING => Request::Programming,
        _ => Request::None,
    }
}

/// How the bootloader started the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Not by this bootloader (no word): treated as confirmed, there is nothing to confirm.
    Unknown,
    /// On trial: the application runs its start-up checks and confirms itself.
    Trial,
    /// Confirmed.
    Confirmed,
}

pub fn take_start() -> Start {
    match take(START) {
        START_TRIAL => Start::Trial,
        START_CONFIRMED => Start::Confirmed,
        _ => Start::Unknown,
    }
}

/// The bootloader, before it jumps to the application.
pub fn leave_start(start: Start) {
    put(
        START,
        match start {
            Start::Trial => START_TRIAL,
            Start::Confirmed => START_CONFIRMED,
            Start::Unknown => 0,
        },
    );
}

/// Reset the core, leaving `request` for the bootloader (a reset asked for, not the
/// watchdog's).
pub fn reset_with(request: Request) -> ! {
    put(ARMED, 0);
    put(
        REQUEST,
        match request {
            Request::Confirm => REQUEST_CONFIRM,
            Request::Programming => REQUEST_PROGRAMMING,
            Request::None => 0,
        },
    );
    cortex_m::peripheral::SCB::sys_reset()
}

/// Leave "a fault at `pc` reset the core" for the next start-up, and reset.
pub fn fault_reset(pc: u32) -> ! {
    put(FAULT_PC, pc);
    put(CAUSE, CAUSE_FAULT);
    cortex_m::peripheral::SCB::sys_reset()
}
