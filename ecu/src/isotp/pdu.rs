//! Protocol data units: the ISO-TP protocol control information (PCI) at the start of each
//! CAN frame, decoded from and encoded to frame data. Normal addressing (the PCI is the first
//! byte); the frame's data length (CAN_DL) is the length of the slice.

use super::frame::{is_valid_dl, round_up_dl, CLASSIC_MAX_DL, FD_MAX_DL};
use heapless::Vec;

/// The byte used to fill a CAN FD frame up to its DLC size when no padding byte is configured.
pub const DEFAULT_PADDING: u8 = 0xCC;
/// The largest length a first frame's 12-bit field holds; longer messages use the escape.
pub const FF_DL_12BIT_MAX: u32 = 4095;

/// Separation time minimum: the gap the receiver asks between consecutive frames.
///
/// The raw byte of the flow control frame: `0x00..=0x7F` milliseconds, `0xF1..=0xF9` 100 to
/// 900 µs. Every other value is reserved, and a sender that receives one uses the longest
/// defined gap, 127 ms, as ISO 15765-2 prescribes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StMin(u8);

impl StMin {
    pub const ZERO: StMin = StMin(0);
    /// The longest defined value, 127 ms.
    pub const MAX: StMin = StMin(0x7F);

    /// Any byte off the bus, reserved values included (they decode as 127 ms).
    pub const fn from_raw(raw: u8) -> Self {
        StMin(raw)
    }

    pub const fn raw(self) -> u8 {
        self.0
    }

    pub const fn is_reserved(self) -> bool {
        !matches!(self.0, 0x00..=0x7F | 0xF1..=0xF9)
    }

    /// The gap in microseconds, reserved values as 127 ms.
    pub const fn as_micros(self) -> u32 {
        match self.0 {
            0x00..=0x7F => self.0 as u32 * 1000,
            0xF1..=0xF9 => (self.0 - 0xF0) as u32 * 100,
            _ => 127_000,
        }
    }

    /// The shortest encodable gap of at least `us` microseconds (capped at 127 ms).
    pub const fn from_micros(us: u32) -> Self {
        if us == 0 {
            StMin(0)
        } else if us <= 900 {
            // 1..=900 µs -> 0xF1..=0xF9, rounding up to the next 100 µs.
            StMin(0xF0 + us.div_ceil(100) as u8)
        } else {
            let ms = us.div_ceil(1000);
            StMin(if ms > 0x7F { 0x7F } else { ms as u8 })
        }
    }
}

/// Flow status of a flow control frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowStatus {
    /// Send the next block (BS frames, or all of them if BS is 0) with STmin between them.
    ContinueToSend = 0,
    /// Not ready: wait for another flow control frame (restarts the sender's N_Bs timer).
    Wait = 1,
    /// The message is longer than the receiver can take: abort.
    Overflow = 2,
}

/// A decoded frame. Slices borrow the frame's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pdu<'a> {
    /// A whole message of 1..=62 bytes (exactly the message, padding removed).
    Single { data: &'a [u8] },
    /// The start of a segmented message of `len` bytes; `data` is the rest of the frame.
    First { len: u32, data: &'a [u8] },
    /// Sequence number 0..=15 and the rest of the frame (the last one may hold padding).
    Consecutive { sn: u8, data: &'a [u8] },
    FlowControl {
        status: FlowStatus,
        block_size: u8,
        st_min: StMin,
    },
}

/// Why frame data is not a valid PDU. The state machines ignore such frames, except a flow
/// control frame with a reserved flow status, which aborts a transmission waiting for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduError {
    Empty,
    /// A data length no CAN or CAN FD frame has (above 8 and not a DLC size, or above 64).
    BadDataLength(usize),
    /// PCI type nibble 4..=15.
    UnknownType(u8),
    /// SF_DL 0 in a frame of up to 8 bytes, longer than the frame, or a classic SF_DL nibble
    /// in a frame longer than 8 bytes (which must use the escape).
    BadSingleLength,
    /// First frame shorter than 8 bytes, or FF_DL below the minimum for its frame size
    /// (the message would have fitted a single frame).
    BadFirstLength,
    /// The 32-bit escape carries a length of 4095 or less, which the 12-bit field must carry.
    EscapeMisuse,
    /// Flow control or consecutive frame too short to hold its fields.
    Truncated,
    /// Flow control with a reserved flow status (3..=15).
    BadFlowStatus(u8),
}

impl core::fmt::Display for PduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PduError::Empty => f.write_str("empty frame"),
            PduError::BadDataLength(n) => write!(f, "no CAN frame carries {n} data bytes"),
            PduError::UnknownType(t) => write!(f, "unknown PCI type {t:#x}"),
            PduError::BadSingleLength => f.write_str("bad single frame length"),
            PduError::BadFirstLength => f.write_str("bad first frame length"),
            PduError::EscapeMisuse => f.write_str("escaped first frame length below 4096"),
            PduError::Truncated => f.write_str("frame too short for its PCI"),
            PduError::BadFlowStatus(s) => write!(f, "reserved flow status {s}"),
        }
    }
}

/// A single frame: its length in the PCI nibble (a classic frame) or, in a frame longer than
/// 8 bytes, in the byte after the escape (nibble 0, mandatory there). The length must be
/// at least 1 and within the frame.
#[inline]
fn single(data: &[u8], nibble: u8) -> Result<Pdu<'_>, PduError> {
    let (start, sf_dl) = if data.len() <= CLASSIC_MAX_DL {
        (1, usize::from(nibble))
    } else {
        // CAN_DL > 8: the escape (nibble 0) is mandatory; SF_DL is the next byte.
        if nibble != 0 {
            return Err(PduError::BadSingleLength);
        }
        (
            2,
            usize::from(*data.get(1).ok_or(PduError::BadSingleLength)?),
        )
    };
    if sf_dl == 0 {
        return Err(PduError::BadSingleLength);
    }
    let body = data
        .get(start..start + sf_dl)
        .ok_or(PduError::BadSingleLength)?;
    Ok(Pdu::Single { data: body })
}

/// A first frame: at least 8 bytes; its message length in 12 bits, or (12 bits zero) in the
/// 32-bit escape, which must then carry more than 4095; and the message too long for a single
/// frame of this size (FF_DLmin).
#[inline]
fn first(data: &[u8], nibble: u8) -> Result<Pdu<'_>, PduError> {
    let dl = data.len();
    if dl < CLASSIC_MAX_DL {
        return Err(PduError::BadFirstLength);
    }
    let b = |i: usize| data.get(i).copied().unwrap_or(0);
    let dl12 = (u32::from(nibble) << 8) | u32::from(b(1));
    let (len, start) = if dl12 == 0 {
        let len = u32::from_be_bytes([b(2), b(3), b(4), b(5)]);
        if len <= FF_DL_12BIT_MAX {
            return Err(PduError::EscapeMisuse);
        }
        (len, 6)
    } else {
        (dl12, 2)
    };
    // FF_DLmin: 8 for 8-byte frames; RX_DL - 1 above (anything shorter fits an SF).
    let min = if dl == CLASSIC_MAX_DL {
        8
    } else {
        dl as u32 - 1
    };
    if len < min {
        return Err(PduError::BadFirstLength);
    }
    let body = data.get(start..).ok_or(PduError::BadFirstLength)?;
    Ok(Pdu::First { len, data: body })
}

/// A flow control frame: its block size and STmin bytes present, its flow status one of the
/// three defined (continue, wait, overflow).
#[inline]
fn flow_control(data: &[u8], nibble: u8) -> Result<Pdu<'_>, PduError> {
    let (Some(&bs), Some(&st)) = (data.get(1), data.get(2)) else {
        return Err(PduError::Truncated);
    };
    let status = match nibble {
        0 => FlowStatus::ContinueToSend,
        1 => FlowStatus::Wait,
        2 => FlowStatus::Overflow,
        other => return Err(PduError::BadFlowStatus(other)),
    };
    Ok(Pdu::FlowControl {
        status,
        block_size: bs,
        st_min: StMin::from_raw(st),
    })
}

impl<'a> Pdu<'a> {
    /// Decode the data of one frame. Never panics, whatever the input.
    pub fn decode(data: &'a [u8]) -> Result<Self, PduError> {
        let dl = data.len();
        let Some(&pci) = data.first() else {
            return Err(PduError::Empty);
        };
        if !is_valid_dl(dl) {
            return Err(PduError::BadDataLength(dl));
        }
        let nibble = pci & 0x0F;
        match pci >> 4 {
            0 => single(data, nibble),
            1 => first(data, nibble),
            2 => {
                if dl < 2 {
                    return Err(PduError::Truncated);
                }
                Ok(Pdu::Consecutive {
                    sn: nibble,
                    data: data.get(1..).unwrap_or(&[]),
                })
            }
            3 => flow_control(data, nibble),
            other => Err(PduError::UnknownType(other)),
        }
    }

    /// Encode into frame data and pad it (see [`pad`]). A single frame of more than 7 bytes
    /// uses the CAN FD escape; a first frame of more than 4095 bytes the 32-bit escape. `None`
    /// if the result would not fit a 64-byte frame or a single frame is empty. This writes what
    /// it is given: choosing how much data fits a frame is the sender's job.
    pub fn encode(&self, padding: Option<u8>) -> Option<Vec<u8, FD_MAX_DL>> {
        let mut v: Vec<u8, FD_MAX_DL> = Vec::new();
        match *self {
            Pdu::Single { data } => {
                let n = data.len();
                if n == 0 {
                    return None;
                }
                if n < CLASSIC_MAX_DL {
                    v.push(n as u8).ok()?;
                } else {
                    v.push(0).ok()?;
                    v.push(u8::try_from(n).ok()?).ok()?;
                }
                v.extend_from_slice(data).ok()?;
            }
            Pdu::First { len, data } => {
                if (1..=FF_DL_12BIT_MAX).contains(&len) {
                    v.push(0x10 | (len >> 8) as u8).ok()?;
                    v.push(len as u8).ok()?;
                } else {
                    v.extend_from_slice(&[0x10, 0]).ok()?;
                    v.extend_from_slice(&len.to_be_bytes()).ok()?;
                }
                v.extend_from_slice(data).ok()?;
            }
            Pdu::Consecutive { sn, data } => {
                v.push(0x20 | (sn & 0x0F)).ok()?;
                v.extend_from_slice(data).ok()?;
            }
            Pdu::FlowControl {
                status,
                block_size,
                st_min,
            } => {
                v.extend_from_slice(&[0x30 | status as u8, block_size, st_min.raw()])
                    .ok()?;
            }
        }
        pad(&mut v, padding)?;
        Some(v)
    }
}

/// Pad frame data: above 8 bytes always up to the next CAN FD size (with `padding`, or
/// [`DEFAULT_PADDING`] if none is configured); up to 8 bytes, to 8 only when `padding` is set.
/// `None` if the data is longer than 64 bytes.
pub fn pad(v: &mut Vec<u8, FD_MAX_DL>, padding: Option<u8>) -> Option<()> {
    let target = if v.len() > CLASSIC_MAX_DL {
        round_up_dl(v.len())?
    } else if padding.is_some() {
        CLASSIC_MAX_DL
    } else {
        v.len()
    };
    let byte = padding.unwrap_or(DEFAULT_PADDING);
    while v.len() < target {
        v.push(byte).ok()?;
    }
    Some(())
}

/// The most message bytes a single frame carries with this TX_DL: 7 for 8-byte frames,
/// TX_DL - 2 above (escaped SF), so 62 for 64-byte CAN FD frames.
pub const fn max_single(tx_dl: usize) -> usize {
    if tx_dl <= CLASSIC_MAX_DL {
        CLASSIC_MAX_DL - 1
    } else {
        tx_dl - 2
    }
}

/// Message bytes in a first frame of a message of `len` bytes (TX_DL - 2, or TX_DL - 6 with
/// the 32-bit escape).
pub const fn first_frame_capacity(tx_dl: usize, len: u64) -> usize {
    if len > FF_DL_12BIT_MAX as u64 {
        tx_dl.saturating_sub(6)
    } else {
        tx_dl.saturating_sub(2)
    }
}
