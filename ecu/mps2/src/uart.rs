//! A CMSDK APB UART, polled.

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
