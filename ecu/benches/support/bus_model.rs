//! The bit-level model of CAN frames on the wire (classic and CAN FD with bit rate switching),
//! shared by the ECU and delta benchmarks.
#![allow(dead_code)]

use ota_ecu::isotp::{len_to_dlc, Frame, Id};

pub const NOMINAL_BPS: f64 = 500_000.0;
pub const FD_DATA_BPS: f64 = 2_000_000.0;

/// A frame's length in bits at the nominal rate and at the data rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits {
    pub nominal: u64,
    pub data: u64,
}

impl Bits {
    pub fn seconds(self) -> f64 {
        self.nominal as f64 / NOMINAL_BPS + self.data as f64 / FD_DATA_BPS
    }
    pub fn add(self, o: Bits) -> Bits {
        Bits {
            nominal: self.nominal + o.nominal,
            data: self.data + o.data,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stuffing {
    /// No stuff bits at all (the best case, for the limits).
    None,
    /// The stuff bits of the frame's actual bits.
    Exact,
    /// The upper bound.
    Worst,
}

fn push_bits(bits: &mut Vec<bool>, value: u32, width: u32) {
    for i in (0..width).rev() {
        bits.push(value >> i & 1 == 1);
    }
}

/// CAN's CRC-15 (x^15 + x^14 + x^10 + x^8 + x^7 + x^4 + x^3 + 1) over unstuffed bits.
pub fn crc15(bits: &[bool]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bits {
        let next = b ^ (crc & 0x4000 != 0);
        crc = (crc << 1) & 0x7FFF;
        if next {
            crc ^= 0x4599;
        }
    }
    crc
}

/// Stuff bits inserted into `bits`: (after a bit before index `split`, the others). With
/// `trailing` false a stuff bit due after the last bit is not counted (CAN FD: the fixed
/// stuff bit before the stuff count takes its place).
fn stuff_exact(bits: &[bool], split: usize, trailing: bool) -> (u64, u64) {
    let (mut before, mut after) = (0, 0);
    let (mut last, mut run) = (None, 0);
    for (i, &b) in bits.iter().enumerate() {
        if last == Some(b) {
            run += 1;
        } else {
            last = Some(b);
            run = 1;
        }
        if run == 5 {
            if !trailing && i + 1 == bits.len() {
                break;
            }
            if i + 1 < split {
                before += 1;
            } else {
                after += 1;
            }
            // The stuff bit is the opposite value and starts the next run.
            last = Some(!b);
            run = 1;
        }
    }
    (before, after)
}

/// The worst case: a stuff bit after bit 5, 9, 13, … (indices 4, 8, 12, …).
fn stuff_worst(len: usize, split: usize, trailing: bool) -> (u64, u64) {
    let end = if trailing { len } else { len.saturating_sub(1) };
    let (mut before, mut after) = (0, 0);
    let mut i = 4;
    while i < end {
        if i + 1 < split {
            before += 1;
        } else {
            after += 1;
        }
        i += 4;
    }
    (before, after)
}

/// The bits of `f` on the wire, interframe space included. Frames with `fd` set are CAN FD
/// frames with bit rate switching; the others classic. 11-bit identifiers only.
pub fn frame_bits(f: &Frame, stuffing: Stuffing) -> Bits {
    let Id::Standard(id) = f.id else {
        panic!("the bus model covers 11-bit identifiers only");
    };
    let n = f.data.len() as u64;
    let dlc = len_to_dlc(f.data.len()).expect("a valid data length");
    let mut bits = Vec::with_capacity(64 + 8 * f.data.len());
    bits.push(false); // SOF (dominant)
    push_bits(&mut bits, u32::from(id.as_raw()), 11);
    if f.fd {
        // RRS 0, IDE 0, FDF 1, res 0, BRS 1, ESI 0 (error active).
        bits.extend([false, false, true, false, true, false]);
    } else {
        // RTR 0 (data frame), IDE 0, r0 0.
        bits.extend([false, false, false]);
    }
    push_bits(&mut bits, u32::from(dlc), 4);
    for &b in f.data.iter() {
        push_bits(&mut bits, u32::from(b), 8);
    }
    if f.fd {
        // Dynamic stuffing from SOF to the end of the data; the rate switches after BRS
        // (index 16).
        let (s_nom, s_data) = match stuffing {
            Stuffing::None => (0, 0),
            Stuffing::Exact => stuff_exact(&bits, 17, false),
            Stuffing::Worst => stuff_worst(bits.len(), 17, false),
        };
        let (crc, fixed) = if n <= 16 { (17, 6) } else { (21, 7) };
        Bits {
            nominal: 30 + s_nom,
            data: 5 + 8 * n + 4 + crc + fixed + s_data,
        }
    } else {
        let crc = crc15(&bits);
        push_bits(&mut bits, u32::from(crc), 15);
        let (s, _) = match stuffing {
            Stuffing::None => (0, 0),
            Stuffing::Exact => stuff_exact(&bits, usize::MAX, true),
            Stuffing::Worst => stuff_worst(bits.len(), usize::MAX, true),
        };
        Bits {
            nominal: 47 + 8 * n + s,
            data: 0,
        }
    }
}

/// Checks of the model against published figures; run before it is used.
pub fn self_test() {
    // CRC-15/CAN check value: CRC of ASCII "123456789".
    let mut bits = Vec::new();
    for b in b"123456789" {
        push_bits(&mut bits, u32::from(*b), 8);
    }
    assert_eq!(crc15(&bits), 0x059E, "CRC-15/CAN check value");
    // 0x555 and 0x55 bytes: no five equal bits in a row anywhere before the CRC.
    let id = ota_ecu::isotp::standard_id(0x555).expect("id");
    let classic = Frame::new(id, &[0x55; 8], false).expect("frame");
    assert_eq!(frame_bits(&classic, Stuffing::Worst).nominal, 135);
    let fd = Frame::new(id, &[0x55; 64], true).expect("frame");
    let w = frame_bits(&fd, Stuffing::Worst);
    let e = frame_bits(&fd, Stuffing::Exact);
    assert_eq!((e.nominal, e.data), (30, 549), "no stuff bits");
    assert_eq!(frame_bits(&fd, Stuffing::None), e);
    assert!(w.nominal >= e.nominal && w.data >= e.data);
}
