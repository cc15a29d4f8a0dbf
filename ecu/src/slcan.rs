//! Serial-line CAN (SLCAN, the Lawicel protocol USB-CAN adapters and Linux's `slcand` speak):
//! CAN frames as ASCII lines over a serial port. The emulated ECU (`ecu/qemu`) carries its bus
//! this way over the machine's UART, and `ota-slcan-bridge` joins such a line to the project's
//! UDP bus.
//!
//! ```text
//! t7E08021001000000000000\r     classic frame, standard id 0x7E0, 8 bytes
//! T000007E08…\r                 classic frame, extended id
//! d7E0F…\r                      CAN FD frame (DLC F: 64 bytes), as slcan-FD adapters send it
//! b7E0F…\r                      CAN FD with bit-rate switch (read as `d`)
//! ```
//! Commands an adapter receives (`S6` bit rate, `O` open, `C` close, `V` version, …) are
//! answered with `\r` (accepted) and otherwise ignored: the line is already open. Everything
//! off the line is untrusted: [`Decoder`] bounds its line, and a line that does not decode
//! is dropped whole (as a CAN controller drops a frame with a bad CRC).

use crate::isotp::{dlc_to_len, extended_id, len_to_dlc, standard_id, Frame};

/// Longest line: `T` + 8 id digits + DLC + 64 bytes × 2.
pub const MAX_LINE: usize = 1 + 8 + 1 + 128;

/// What one line of the serial stream was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Frame(Frame),
    /// An adapter command (bit rate, open, close, …): answered with `\r`, nothing else.
    Command(u8),
}

fn hex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some((acc << 4) | u32::from(hex(d)?)))
}

/// Decode one line (without its `\r`).
pub fn decode(line: &[u8]) -> Option<Line> {
    let (&kind, rest) = line.split_first()?;
    let (id_digits, fd) = match kind {
        b't' => (3, false),
        b'T' => (8, false),
        b'd' | b'b' => (3, true),
        b'D' | b'B' => (8, true),
        b'S' | b's' | b'O' | b'C' | b'V' | b'v' | b'N' | b'F' | b'Z' | b'M' | b'm' | b'L'
        | b'Y' | b'y' => return Some(Line::Command(kind)),
        _ => return None,
    };
    if rest.len() < id_digits + 1 {
        return None;
    }
    let (id, rest) = rest.split_at(id_digits);
    let raw = hex_value(id)?;
    let id = if id_digits == 3 {
        standard_id(u16::try_from(raw).ok()?)?
    } else {
        extended_id(raw)?
    };
    let (&dlc, data) = rest.split_first()?;
    let dlc = hex(dlc)?;
    if !fd && dlc > 8 {
        return None;
    }
    let len = dlc_to_len(dlc)?;
    if data.len() != len * 2 {
        return None;
    }
    let mut bytes = [0u8; 64];
    for (b, pair) in bytes.iter_mut().zip(data.chunks_exact(2)) {
        *b = (hex(pair[0])? << 4) | hex(pair[1])?;
    }
    Frame::new(id, &bytes[..len], fd).map(Line::Frame)
}

/// Encode `f` as one line, `\r` included, into `out`; its length.
pub fn encode(f: &Frame, out: &mut [u8; MAX_LINE + 1]) -> Option<usize> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let data = &f.data[..];
    let dlc = len_to_dlc(data.len())?;
    let (kind, id_digits) = match (f.fd, f.is_extended()) {
        (false, false) => (b't', 3),
        (false, true) => (b'T', 8),
        (true, false) => (b'd', 3),
        (true, true) => (b'D', 8),
    };
    let mut n = 0;
    let mut put = |b: u8, out: &mut [u8; MAX_LINE + 1]| {
        out[n] = b;
        n += 1;
    };
    put(kind, out);
    let id = f.raw_id();
    for i in (0..id_digits).rev() {
        put(DIGITS[((id >> (4 * i)) & 0xF) as usize], out);
    }
    put(DIGITS[usize::from(dlc & 0xF)], out);
    for b in data {
        put(DIGITS[usize::from(b >> 4)], out);
        put(DIGITS[usize::from(b & 0xF)], out);
    }
    put(b'\r', out);
    Some(n)
}

/// Splits a byte stream into lines, bounded: a line longer than [`MAX_LINE`] is dropped up to
/// its end (it cannot be a frame).
pub struct Decoder {
    buf: [u8; MAX_LINE],
    len: usize,
    overlong: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            buf: [0; MAX_LINE],
            len: 0,
            overlong: false,
        }
    }
}

impl Decoder {
    /// Feed one byte; at the end of a line (`\r`, or `\n` from a terminal) what it was, if it
    /// decodes. `\x07` (BEL, an adapter's error answer) and empty lines give nothing.
    pub fn push(&mut self, byte: u8) -> Option<Line> {
        if byte == b'\r' || byte == b'\n' {
            let line = (!self.overlong && self.len > 0)
                .then(|| decode(&self.buf[..self.len]))
                .flatten();
            self.len = 0;
            self.overlong = false;
            return line;
        }
        if byte == 0x07 {
            return None;
        }
        if self.len == MAX_LINE {
            self.overlong = true;
        } else {
            self.buf[self.len] = byte;
            self.len += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u16, data: &[u8], fd: bool) -> Frame {
        Frame::new(standard_id(id).unwrap(), data, fd).unwrap()
    }

    fn lines(bytes: &[u8]) -> std::vec::Vec<Line> {
        let mut d = Decoder::default();
        bytes.iter().filter_map(|&b| d.push(b)).collect()
    }

    #[test]
    fn frames_round_trip_classic_fd_and_extended() {
        let ext = Frame::new(extended_id(0x18DA_F110).unwrap(), &[1, 2, 3], false).unwrap();
        for f in [
            frame(0x7E0, &[0x02, 0x10, 0x01, 0, 0, 0, 0, 0], false),
            frame(0x123, &[], false),
            frame(0x7E8, &[0xAB; 64], true),
            frame(0x7E8, &[0x5A; 12], true),
            ext,
        ] {
            let mut out = [0u8; MAX_LINE + 1];
            let n = encode(&f, &mut out).unwrap();
            assert_eq!(out[n - 1], b'\r');
            assert_eq!(lines(&out[..n]), [Line::Frame(f.clone())]);
        }
        let mut out = [0u8; MAX_LINE + 1];
        let n = encode(&frame(0x7E0, &[0x02, 0x10, 0x01], false), &mut out).unwrap();
        assert_eq!(&out[..n], b"t7E03021001\r");
    }

    #[test]
    fn commands_are_named_and_bad_lines_dropped() {
        assert_eq!(
            lines(b"S6\rO\r\r"),
            [Line::Command(b'S'), Line::Command(b'O')]
        );
        for bad in [
            &b"t7E09001122334455667788\r"[..], // classic DLC 9
            b"t7E0201\r",                      // short data
            b"t7E020102FF\r",                  // long data
            b"t8000\r",                        // id above 0x7FF
            b"tXYZ0\r",                        // not hex
            b"q123\r",                         // unknown kind
            b"t7E\r",                          // no DLC
        ] {
            assert_eq!(lines(bad), [], "{:?}", core::str::from_utf8(bad));
        }
        // An overlong line is dropped to its end; the next line decodes.
        let mut long = std::vec![b't'; MAX_LINE + 50];
        long.extend_from_slice(b"\rt1230\r");
        assert_eq!(lines(&long), [Line::Frame(frame(0x123, &[], false))]);
    }
}
