//! The owned CAN frame the ISO-TP state machines consume and produce, CAN FD data-length
//! rules, and conversions to and from any [`embedded_can::Frame`] implementor.

use embedded_can::{ExtendedId, Id, StandardId};
use heapless::Vec;

/// Data bytes in a classic CAN frame.
pub const CLASSIC_MAX_DL: usize = 8;
/// Data bytes in the largest CAN FD frame.
pub const FD_MAX_DL: usize = 64;
/// The CAN FD data lengths above 8 that a DLC can express (DLC 9..=15).
pub const FD_DL_SIZES: [usize; 7] = [12, 16, 20, 24, 32, 48, 64];

/// Whether a frame may carry exactly `len` data bytes: 0..=8 always, above 8 only the FD sizes.
pub fn is_valid_dl(len: usize) -> bool {
    len <= CLASSIC_MAX_DL || FD_DL_SIZES.contains(&len)
}

/// The smallest valid frame data length that holds `len` bytes (`None` above 64).
pub fn round_up_dl(len: usize) -> Option<usize> {
    if len <= CLASSIC_MAX_DL {
        return Some(len);
    }
    FD_DL_SIZES.iter().copied().find(|&s| s >= len)
}

/// The data length a 4-bit DLC code stands for (CAN FD table; classic frames use 0..=8).
pub fn dlc_to_len(dlc: u8) -> Option<usize> {
    match dlc {
        0..=8 => Some(usize::from(dlc)),
        9..=15 => FD_DL_SIZES.get(usize::from(dlc) - 9).copied(),
        _ => None,
    }
}

/// The DLC code of a valid data length.
pub fn len_to_dlc(len: usize) -> Option<u8> {
    if len <= CLASSIC_MAX_DL {
        return u8::try_from(len).ok();
    }
    let i = FD_DL_SIZES.iter().position(|&s| s == len)?;
    u8::try_from(i + 9).ok()
}

/// An 11-bit identifier, or `None` above 0x7FF.
pub fn standard_id(raw: u16) -> Option<Id> {
    StandardId::new(raw).map(Id::Standard)
}

/// A 29-bit identifier, or `None` above 0x1FFF_FFFF.
pub fn extended_id(raw: u32) -> Option<Id> {
    ExtendedId::new(raw).map(Id::Extended)
}

/// The raw numeric value of an identifier (11 or 29 bits).
pub fn raw_id(id: Id) -> u32 {
    match id {
        Id::Standard(s) => u32::from(s.as_raw()),
        Id::Extended(e) => e.as_raw(),
    }
}

/// One CAN data frame: identifier, 0..=64 data bytes, and whether it goes out as CAN FD.
///
/// Fields are public so a bus backend can build frames freely; the ISO-TP state machines
/// re-check everything they read ([`Frame::is_valid`]) and ignore frames that break the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub id: Id,
    pub data: Vec<u8, FD_MAX_DL>,
    /// A CAN FD frame (FDF bit). Classic frames carry at most 8 bytes.
    pub fd: bool,
}

impl Frame {
    /// A frame, or `None` if `data` is too long for the format (classic: 8 bytes; FD: 64) or,
    /// for FD, not one of the lengths a DLC can express.
    pub fn new(id: impl Into<Id>, data: &[u8], fd: bool) -> Option<Self> {
        let ok = if fd {
            is_valid_dl(data.len())
        } else {
            data.len() <= CLASSIC_MAX_DL
        };
        if !ok {
            return None;
        }
        Some(Frame {
            id: id.into(),
            data: Vec::from_slice(data).ok()?,
            fd,
        })
    }

    /// Whether the data length is legal for the frame format.
    pub fn is_valid(&self) -> bool {
        if self.fd {
            is_valid_dl(self.data.len())
        } else {
            self.data.len() <= CLASSIC_MAX_DL
        }
    }

    pub fn is_extended(&self) -> bool {
        matches!(self.id, Id::Extended(_))
    }

    /// The identifier as a plain number (see [`Frame::is_extended`] for its width).
    pub fn raw_id(&self) -> u32 {
        raw_id(self.id)
    }

    /// Copy a frame received through an [`embedded_can`] driver. `None` for a remote frame or
    /// a data length this type cannot hold. Frames longer than 8 bytes are marked FD; a driver
    /// that knows an 8-byte-or-shorter frame was FD can set [`Frame::fd`] afterwards.
    pub fn from_can<F: embedded_can::Frame>(f: &F) -> Option<Self> {
        if f.is_remote_frame() {
            return None;
        }
        let data = f.data();
        Frame::new(f.id(), data, data.len() > CLASSIC_MAX_DL)
    }

    /// Build the driver's frame type. `None` if the driver refuses the length (a classic-only
    /// driver given an FD frame of more than 8 bytes).
    pub fn to_can<F: embedded_can::Frame>(&self) -> Option<F> {
        F::new(self.id, &self.data)
    }
}

/// So an in-memory or UDP bus can be written against the `embedded-can` traits and carry this
/// type directly. `new` accepts up to 64 bytes (FD above 8); remote frames are not supported.
impl embedded_can::Frame for Frame {
    fn new(id: impl Into<Id>, data: &[u8]) -> Option<Self> {
        Frame::new(id, data, data.len() > CLASSIC_MAX_DL)
    }

    /// ISO-TP never uses remote frames: always `None`.
    fn new_remote(_id: impl Into<Id>, _dlc: usize) -> Option<Self> {
        None
    }

    fn is_extended(&self) -> bool {
        Frame::is_extended(self)
    }

    fn is_remote_frame(&self) -> bool {
        false
    }

    fn id(&self) -> Id {
        self.id
    }

    /// The data length in bytes (for FD frames, up to 64; not the 4-bit code).
    fn dlc(&self) -> usize {
        self.data.len()
    }

    fn data(&self) -> &[u8] {
        &self.data
    }
}
