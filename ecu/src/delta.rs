//! Fewer bytes on the bus (issue 26): an image may arrive *packed* (compressed) or as a
//! *delta* against the image the ECU runs, and the bootloader rebuilds the image as the data
//! blocks arrive, streaming it into the inactive slot. Only the bytes that come out are
//! written, hashed and checked against the compact manifest's length and SHA-256, exactly as a
//! plain image is: the encoding is transport, and a wrong, corrupted or hostile delta can only
//! produce an image that fails that check (nothing is activated). The active slot is only read,
//! so a power cut while applying leaves the running image as it was.
//!
//! Which encoding a download uses is the UDS RequestDownload's dataFormatIdentifier (high
//! nibble: compression method): [`Encoding::format_id`].
//!
//! ## Formats
//! Both encoded forms start with an 8-byte header: magic (`OTAZ` packed, `OTAD` delta), format
//! version 1, the heatshrink window and lookahead bits they were compressed with (the ECU's are
//! compiled in: [`WINDOW_BITS`], [`LOOKAHEAD_BITS`]), and a zero byte. A delta's header goes on
//! with the base image's length (u32, big-endian) and the first 16 bytes of its SHA-256, which
//! must be the active image's.
//! Then comes a heatshrink stream (LZSS, as `detools` and many bootloaders use on
//! microcontrollers): of the image itself (packed), or of the patch (delta).
//!
//! The patch is bsdiff's (Colin Percival's) sequence of records, each three LEB128 numbers and
//! two runs of bytes: `mix` bytes each *added* (mod 256) to the base byte at the base cursor,
//! `copy` bytes taken as they are, and `seek`, the zigzag-encoded signed move of the base cursor
//! after the mix. Its output is strictly sequential and its base reads are bounded runs, which
//! is what streaming needs: RAM is the decompressor's window and input buffer plus two small
//! stack buffers (about 0.6 KiB in all, see [`Decoder`]'s size in the ECU benchmark), whatever
//! the image size. The format is this project's own because no maintained `no_std` crate
//! applies bsdiff patches from a stream (the `bsdiff` crate's `patch` needs `std` and the whole
//! base and output in memory); the host side builds patches with that crate's suffix-sorting
//! diff and re-encodes its records here ([`make`]).

use heatshrink::decoder::HeatshrinkDecoder;
use heatshrink::{Poll, SinkError};

/// heatshrink's window: 2^8 = 256 bytes of history on the ECU.
pub const WINDOW_BITS: usize = 8;
/// heatshrink's back-reference length field: runs up to 2^7 = 128 bytes (long runs of zeros
/// are what a patch is mostly made of; detools' microcontroller setting uses the same).
pub const LOOKAHEAD_BITS: usize = 7;
const WINDOW: usize = 1 << WINDOW_BITS;
/// Compressed bytes the decompressor buffers.
const INPUT: usize = 32;
type Inflater = HeatshrinkDecoder<WINDOW_BITS, LOOKAHEAD_BITS, INPUT, WINDOW>;

pub const PACKED_MAGIC: [u8; 4] = *b"OTAZ";
pub const DELTA_MAGIC: [u8; 4] = *b"OTAD";
pub const FORMAT_VERSION: u8 = 1;
/// Magic, version, window bits, lookahead bits, zero.
pub const HEADER_LEN: usize = 8;
/// Bytes of the base's SHA-256 a delta's header names it by: enough to tell one base from
/// another (2^64 work to make two collide on purpose, which buys nothing: what the delta
/// rebuilds is checked against the manifest's whole SHA-256), and few enough that a small
/// image's delta carries little more than its records.
pub const BASE_ID_LEN: usize = 16;
/// A delta's header: the common one, then the base's length (u32) and the first
/// [`BASE_ID_LEN`] bytes of its SHA-256.
pub const DELTA_HEADER_LEN: usize = HEADER_LEN + 4 + BASE_ID_LEN;
/// Bytes of the base read, and of output produced, per step (on the stack).
const CHUNK: usize = 128;

/// How the image's bytes travel in a download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The image as it is.
    Plain,
    /// heatshrink-compressed.
    Packed,
    /// A patch against the ECU's active image, heatshrink-compressed.
    Delta,
}

impl Encoding {
    /// The UDS dataFormatIdentifier of a RequestDownload in this encoding (ISO 14229: the high
    /// nibble names the compression method, the low one the encryption; 0 is neither).
    pub const fn format_id(self) -> u8 {
        match self {
            Encoding::Plain => 0x00,
            Encoding::Packed => 0x10,
            Encoding::Delta => 0x20,
        }
    }

    pub fn from_format_id(id: u8) -> Option<Encoding> {
        [Encoding::Plain, Encoding::Packed, Encoding::Delta]
            .into_iter()
            .find(|e| e.format_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Plain => "full image",
            Encoding::Packed => "compressed image",
            Encoding::Delta => "delta",
        }
    }
}

/// Why encoded data was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// Not a well-formed packed image or delta of the format and parameters this ECU knows
    /// (a base read outside the base, a number too long, a bad header, ...).
    Malformed,
    /// The delta is against another image than the one this ECU runs.
    WrongBase,
    /// More bytes came out than the manifest announced.
    TooLong,
    /// Reading the base or writing the output failed.
    Storage(E),
}

/// Where the rebuilt image goes, and where its base is read from.
pub trait Target {
    type Error;
    /// The next bytes of the image, in order ([`Error::TooLong`] past the announced length).
    fn emit(&mut self, bytes: &[u8]) -> Result<(), Error<Self::Error>>;
    /// Fill `buf` with the base image's bytes from `offset` (within the base's length).
    fn read_base(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// The image a delta may be applied to: the active one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    pub length: u64,
    pub sha256: [u8; 32],
}

/// The streaming decoder of one download's data.
pub struct Decoder {
    encoding: Encoding,
    base: Option<Base>,
    header: heapless::Vec<u8, DELTA_HEADER_LEN>,
    inflater: Inflater,
    patch: Patch,
}

impl Decoder {
    /// A decoder for data in `encoding`; `base` is the active image (a delta needs one).
    pub fn new(encoding: Encoding, base: Option<Base>) -> Decoder {
        Decoder {
            encoding,
            base,
            header: heapless::Vec::new(),
            inflater: Inflater::new(),
            patch: Patch::new(base.map_or(0, |b| b.length)),
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The next bytes of the download's data, in order: what they decode to goes to `target`.
    pub fn feed<T: Target>(&mut self, data: &[u8], target: &mut T) -> Result<(), Error<T::Error>> {
        if self.encoding == Encoding::Plain {
            return target.emit(data);
        }
        let rest = self.take_header(data)?;
        self.inflate(rest, target)
    }

    /// The end of the data: an encoded download must have ended where its stream does.
    pub fn finish<E>(&self) -> Result<(), Error<E>> {
        let whole = match self.encoding {
            Encoding::Plain => true,
            Encoding::Packed => self.header.len() == HEADER_LEN,
            Encoding::Delta => {
                self.header.len() == DELTA_HEADER_LEN && matches!(self.patch.step, Step::Record)
            }
        };
        if whole {
            Ok(())
        } else {
            Err(Error::Malformed)
        }
    }

    fn header_len(&self) -> usize {
        match self.encoding {
            Encoding::Delta => DELTA_HEADER_LEN,
            _ => HEADER_LEN,
        }
    }

    /// Collect the header from the first bytes; check it once whole. The bytes after it.
    fn take_header<'d, E>(&mut self, data: &'d [u8]) -> Result<&'d [u8], Error<E>> {
        let want = self.header_len();
        if self.header.len() == want {
            return Ok(data);
        }
        let n = (want - self.header.len()).min(data.len());
        let (head, rest) = data.split_at(n);
        // Never more than the capacity: `n` is at most what is missing.
        self.header
            .extend_from_slice(head)
            .map_err(|_| Error::Malformed)?;
        if self.header.len() == want {
            self.check_header()?;
        }
        Ok(rest)
    }

    fn check_header<E>(&self) -> Result<(), Error<E>> {
        let h = &self.header;
        let magic = match self.encoding {
            Encoding::Delta => DELTA_MAGIC,
            _ => PACKED_MAGIC,
        };
        if h[..4] != magic
            || h[4] != FORMAT_VERSION
            || usize::from(h[5]) != WINDOW_BITS
            || usize::from(h[6]) != LOOKAHEAD_BITS
            || h[7] != 0
        {
            return Err(Error::Malformed);
        }
        if self.encoding == Encoding::Delta {
            let mut length = [0u8; 4];
            length.copy_from_slice(&h[HEADER_LEN..HEADER_LEN + 4]);
            let length = u64::from(u32::from_be_bytes(length));
            let id = &h[HEADER_LEN + 4..DELTA_HEADER_LEN];
            let named = self
                .base
                .is_some_and(|b| b.length == length && b.sha256[..BASE_ID_LEN] == *id);
            if !named {
                return Err(Error::WrongBase);
            }
        }
        Ok(())
    }

    /// Decompress `data` and pass what comes out on.
    fn inflate<T: Target>(
        &mut self,
        mut data: &[u8],
        target: &mut T,
    ) -> Result<(), Error<T::Error>> {
        let mut out = [0u8; CHUNK];
        loop {
            let mut progress = false;
            if !data.is_empty() {
                match self.inflater.sink(data) {
                    Ok(n) => {
                        data = &data[n..];
                        progress = n > 0;
                    }
                    Err(SinkError::Full) => {}
                    Err(SinkError::Misuse) => return Err(Error::Malformed),
                }
            }
            loop {
                let poll = self.inflater.poll(&mut out).map_err(|_| Error::Malformed)?;
                let n = poll.bytes_written();
                progress |= n > 0;
                self.produce(&out[..n], target)?;
                if matches!(poll, Poll::Empty(_)) {
                    break;
                }
            }
            if data.is_empty() {
                return Ok(());
            }
            if !progress {
                // The decompressor neither takes input nor gives output: never spin.
                return Err(Error::Malformed);
            }
        }
    }

    fn produce<T: Target>(&mut self, bytes: &[u8], target: &mut T) -> Result<(), Error<T::Error>> {
        match self.encoding {
            Encoding::Delta => self.patch.apply(bytes, target),
            _ => target.emit(bytes),
        }
    }
}

/// Where the patch's reader is.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Between records.
    Record,
    /// Reading the record's numbers: `fields[..index]` are read, `value` is the one in
    /// progress (`shift` bits of it so far).
    Numbers {
        fields: [u64; 3],
        index: usize,
        value: u64,
        shift: u32,
    },
    /// Bytes to add to the base's.
    Mix { left: u64, copy: u64, seek: i64 },
    /// Bytes taken as they are.
    Copy { left: u64 },
}

struct Patch {
    step: Step,
    /// The base cursor.
    cursor: u64,
    base_length: u64,
}

impl Patch {
    fn new(base_length: u64) -> Patch {
        Patch {
            step: Step::Record,
            cursor: 0,
            base_length,
        }
    }

    fn apply<T: Target>(
        &mut self,
        mut bytes: &[u8],
        target: &mut T,
    ) -> Result<(), Error<T::Error>> {
        while !bytes.is_empty() {
            bytes = match self.step {
                Step::Record => {
                    self.step = Step::Numbers {
                        fields: [0; 3],
                        index: 0,
                        value: 0,
                        shift: 0,
                    };
                    bytes
                }
                Step::Numbers { .. } => self.number_byte(bytes)?,
                Step::Mix { left, copy, seek } => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len())
                        .min(CHUNK);
                    let (now, rest) = bytes.split_at(n);
                    self.mix(now, target)?;
                    let left = left - n as u64;
                    self.step = Step::Mix { left, copy, seek };
                    if left == 0 {
                        self.end_mix()?;
                    }
                    rest
                }
                Step::Copy { left } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let (now, rest) = bytes.split_at(n);
                    target.emit(now)?;
                    let left = left - n as u64;
                    self.step = if left == 0 {
                        Step::Record
                    } else {
                        Step::Copy { left }
                    };
                    rest
                }
            };
        }
        Ok(())
    }

    /// One byte of a record's LEB128 numbers; the rest.
    fn number_byte<'b, E>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], Error<E>> {
        let Step::Numbers {
            mut fields,
            mut index,
            mut value,
            mut shift,
        } = self.step
        else {
            return Ok(bytes);
        };
        let (&b, rest) = bytes.split_first().ok_or(Error::Malformed)?;
        let bits = u64::from(b & 0x7F);
        if shift > 63 || (shift == 63 && bits > 1) {
            return Err(Error::Malformed);
        }
        value |= bits << shift;
        shift += 7;
        if b & 0x80 != 0 {
            self.step = Step::Numbers {
                fields,
                index,
                value,
                shift,
            };
            return Ok(rest);
        }
        fields[index] = value;
        index += 1;
        if index < 3 {
            self.step = Step::Numbers {
                fields,
                index,
                value: 0,
                shift: 0,
            };
        } else {
            self.start_record(fields)?;
        }
        Ok(rest)
    }

    /// A record's numbers are read: check its base run, then mix (or go on at once).
    fn start_record<E>(&mut self, [mix, copy, seek]: [u64; 3]) -> Result<(), Error<E>> {
        // Zigzag: 0, -1, 1, -2, ... <- 0, 1, 2, 3, ...
        let seek = ((seek >> 1) as i64) ^ -((seek & 1) as i64);
        let end = self.cursor.checked_add(mix).ok_or(Error::Malformed)?;
        if end > self.base_length {
            return Err(Error::Malformed);
        }
        self.step = Step::Mix {
            left: mix,
            copy,
            seek,
        };
        if mix == 0 {
            self.end_mix()?;
        }
        Ok(())
    }

    /// Add `delta`'s bytes to the base's at the cursor and emit the sums.
    fn mix<T: Target>(&mut self, delta: &[u8], target: &mut T) -> Result<(), Error<T::Error>> {
        let mut base = [0u8; CHUNK];
        let base = &mut base[..delta.len()];
        target
            .read_base(self.cursor, base)
            .map_err(Error::Storage)?;
        for (b, d) in base.iter_mut().zip(delta) {
            *b = b.wrapping_add(*d);
        }
        // Within the base: checked when the record started.
        self.cursor += delta.len() as u64;
        target.emit(base)
    }

    /// The mix is done: move the cursor by the record's seek (never outside the base), then
    /// copy, or go on to the next record.
    fn end_mix<E>(&mut self) -> Result<(), Error<E>> {
        let Step::Mix { copy, seek, .. } = self.step else {
            return Ok(());
        };
        self.cursor = self
            .cursor
            .checked_add_signed(seek)
            .filter(|c| *c <= self.base_length)
            .ok_or(Error::Malformed)?;
        self.step = if copy == 0 {
            Step::Record
        } else {
            Step::Copy { left: copy }
        };
        Ok(())
    }
}

/// The host's side: build packed images and deltas, and apply them (the gateway's checks, the
/// tests, the benchmark).
#[cfg(feature = "std")]
pub mod make {
    use super::*;
    use heatshrink::encoder::HeatshrinkEncoder;
    use heatshrink::Finish;
    use std::vec::Vec;

    type Deflater = HeatshrinkEncoder<WINDOW_BITS, LOOKAHEAD_BITS, { 2 << WINDOW_BITS }>;

    fn header(magic: [u8; 4]) -> Vec<u8> {
        let mut h = magic.to_vec();
        h.extend_from_slice(&[FORMAT_VERSION, WINDOW_BITS as u8, LOOKAHEAD_BITS as u8, 0]);
        h
    }

    /// heatshrink-compress `data` onto `out`.
    fn deflate(data: &[u8], out: &mut Vec<u8>) {
        let mut enc = Deflater::new();
        let mut buf = [0u8; 4096];
        let mut rest = data;
        let mut drain = |enc: &mut Deflater, out: &mut Vec<u8>| loop {
            match enc.poll(&mut buf) {
                Ok(Poll::More(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Poll::Empty(n)) => {
                    out.extend_from_slice(&buf[..n]);
                    break;
                }
                // Only for an empty output buffer, which this is not.
                Err(_) => break,
            }
        };
        while !rest.is_empty() {
            match enc.sink(rest) {
                Ok(n) => rest = &rest[n..],
                Err(SinkError::Full) => {}
                Err(SinkError::Misuse) => break,
            }
            drain(&mut enc, out);
        }
        while enc.finish() == Finish::More {
            drain(&mut enc, out);
        }
    }

    /// `image`, packed.
    pub fn packed(image: &[u8]) -> Vec<u8> {
        let mut out = header(PACKED_MAGIC);
        deflate(image, &mut out);
        out
    }

    /// A delta that rebuilds `new` from `old`.
    pub fn delta(old: &[u8], new: &[u8]) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut out = header(DELTA_MAGIC);
        // A base past 4 GiB cannot be named: the ECU refuses the delta (no ECU slot is that
        // large, and the supplier applies every delta before publishing it).
        out.extend_from_slice(&u32::try_from(old.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&Sha256::digest(old)[..BASE_ID_LEN]);
        deflate(&records(old, new), &mut out);
        out
    }

    /// bsdiff's records, re-encoded (see the module documentation).
    fn records(old: &[u8], new: &[u8]) -> Vec<u8> {
        let mut raw = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = bsdiff::diff(old, new, &mut raw);
        let mut out = Vec::with_capacity(raw.len());
        let mut rest = &raw[..];
        while rest.len() >= 24 {
            let num = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().unwrap_or([0; 8]));
            let (mix, copy, seek_raw) = (num(0), num(8), num(16));
            // bsdiff's sign-magnitude offset.
            let magnitude = (seek_raw & !(1 << 63)) as i64;
            let seek = if seek_raw >> 63 == 1 {
                -magnitude
            } else {
                magnitude
            };
            for v in [mix, copy, ((seek << 1) ^ (seek >> 63)) as u64] {
                leb128(v, &mut out);
            }
            let body = (mix + copy) as usize;
            out.extend_from_slice(&rest[24..24 + body]);
            rest = &rest[24 + body..];
        }
        out
    }

    fn leb128(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// An in-memory target: the image rebuilt from `base`.
    pub struct Rebuilt<'b> {
        pub base: &'b [u8],
        pub out: Vec<u8>,
        pub limit: u64,
    }

    impl Target for Rebuilt<'_> {
        type Error = ();
        fn emit(&mut self, bytes: &[u8]) -> Result<(), Error<()>> {
            if self.out.len() as u64 + bytes.len() as u64 > self.limit {
                return Err(Error::TooLong);
            }
            self.out.extend_from_slice(bytes);
            Ok(())
        }
        fn read_base(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ()> {
            let start = usize::try_from(offset).map_err(|_| ())?;
            let src = self.base.get(start..start + buf.len()).ok_or(())?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    /// Decode `data` (in `encoding`, against `base`) as the ECU would, in `block`-byte pieces;
    /// at most `limit` bytes out.
    pub fn apply(
        encoding: Encoding,
        base: &[u8],
        data: &[u8],
        limit: u64,
        block: usize,
    ) -> Result<Vec<u8>, Error<()>> {
        use sha2::{Digest, Sha256};
        let info = Base {
            length: base.len() as u64,
            sha256: Sha256::digest(base).into(),
        };
        let mut decoder = Decoder::new(encoding, Some(info));
        let mut target = Rebuilt {
            base,
            out: Vec::new(),
            limit,
        };
        for piece in data.chunks(block.max(1)) {
            decoder.feed(piece, &mut target)?;
        }
        decoder.finish()?;
        Ok(target.out)
    }
}
