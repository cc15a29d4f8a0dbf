//! CAN buses behind the `embedded-can` non-blocking trait (`embedded_can::nb::Can`), so the
//! transport runs unchanged over any of them:
//!
//! - [`mem`]: an in-process bus for tests (every node sees every other node's frames);
//! - [`udp`]: a bus carried in UDP datagrams on loopback, so the gateway and ECU simulators run
//!   as separate processes where the kernel has no CAN (this project's CI);
//! - [`socketcan`] (feature `socketcan`, Linux): a real CAN interface, classic frames.

#[cfg(feature = "std")]
pub mod mem;
#[cfg(feature = "socketcan")]
pub mod socketcan;
#[cfg(feature = "std")]
pub mod udp;

/// An I/O failure of a bus backend, as `embedded-can` wants errors to be.
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct BusError(pub std::io::Error);

#[cfg(feature = "std")]
impl embedded_can::Error for BusError {
    fn kind(&self) -> embedded_can::ErrorKind {
        embedded_can::ErrorKind::Other
    }
}

#[cfg(feature = "std")]
impl core::fmt::Display for BusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CAN bus: {}", self.0)
    }
}

use crate::isotp::{raw_id, Frame, Id};
use embedded_can::{ExtendedId, StandardId};

/// Wire form of a frame inside one datagram: flags (bit 0 FD, bit 1 extended id), id (u32
/// big-endian), length, data.
pub fn encode_frame(f: &Frame, out: &mut [u8; 70]) -> usize {
    let mut flags = 0u8;
    if f.fd {
        flags |= 1;
    }
    if f.is_extended() {
        flags |= 2;
    }
    out[0] = flags;
    out[1..5].copy_from_slice(&raw_id(f.id).to_be_bytes());
    let n = f.data.len().min(64);
    out[5] = n as u8;
    out[6..6 + n].copy_from_slice(&f.data[..n]);
    6 + n
}

/// The inverse of [`encode_frame`]; `None` for anything malformed (datagrams are untrusted).
pub fn decode_frame(b: &[u8]) -> Option<Frame> {
    let (&flags, rest) = b.split_first()?;
    if flags & !3 != 0 || rest.len() < 5 {
        return None;
    }
    let raw = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let len = usize::from(rest[4]);
    let data = rest.get(5..)?;
    if data.len() != len {
        return None;
    }
    let id: Id = if flags & 2 != 0 {
        ExtendedId::new(raw)?.into()
    } else {
        StandardId::new(u16::try_from(raw).ok()?)?.into()
    };
    Frame::new(id, data, flags & 1 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_garbage() {
        let f = Frame::new(crate::isotp::standard_id(0x7E0).unwrap(), &[1, 2, 3], false).unwrap();
        let mut b = [0u8; 70];
        let n = encode_frame(&f, &mut b);
        assert_eq!(decode_frame(&b[..n]), Some(f));
        let g = Frame::new(
            crate::isotp::extended_id(0x18DA_F110).unwrap(),
            &[9; 64],
            true,
        )
        .unwrap();
        let n = encode_frame(&g, &mut b);
        assert_eq!(decode_frame(&b[..n]), Some(g));
        for bad in [
            &[][..],
            &[4, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0x08, 0, 1],
            &[0, 0, 0, 0, 1, 2, 7],
            &[0, 0, 0, 0, 1, 65],
        ] {
            assert_eq!(decode_frame(bad), None, "{bad:?}");
        }
    }
}
