//! The CMSDK APB watchdog (0x4000_8000), clocked at the core's 25 MHz: it counts down from its
//! load value; the first time it reaches zero it raises its interrupt (unhandled here) and
//! reloads; the second time, the interrupt still pending, it resets the system.

const BASE: usize = 0x4000_8000;
const LOAD: usize = 0x000;
const CONTROL: usize = 0x008;
const LOCK: usize = 0xC00;
/// Writing this to the lock register unlocks the others; anything else locks them.
const UNLOCK: u32 = 0x1ACC_E551;
/// Interrupt enable and reset enable.
const INTEN_RESEN: u32 = 0b11;
/// Ticks per second (the core clock).
const HZ: u32 = 25_000_000;

fn write(off: usize, v: u32) {
    // SAFETY: a register of the CMSDK watchdog at its fixed address on this machine; volatile,
    // as the device acts on each write.
    #[allow(unsafe_code)]
    unsafe {
        core::ptr::write_volatile((BASE + off) as *mut u32, v)
    }
}

/// Start the watchdog: the system resets after `seconds` (two load periods) unless it is
/// stopped or the core resets first. Locked afterwards, so a stray write cannot stop it.
pub fn start(seconds: u32) {
    write(LOCK, UNLOCK);
    write(LOAD, (HZ / 2).saturating_mul(seconds));
    write(CONTROL, INTEN_RESEN);
    write(LOCK, 0);
    super::handoff::mark_armed();
}
