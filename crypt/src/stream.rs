//! Chunked authenticated encryption of an image (the STREAM construction of Hoang,
//! Reyhanitabar, Rogaway and Vizár over XChaCha20-Poly1305).
//!
//! Layout: a 40-byte header, then the chunks, each `chunk_size` bytes of plaintext (the last
//! one shorter) sealed with a 16-byte tag.
//!
//! | offset | size | field                                                    |
//! |-------:|-----:|----------------------------------------------------------|
//! | 0      | 4    | magic `OTAE`                                             |
//! | 4      | 1    | format version, 1                                        |
//! | 5      | 3    | reserved, zero                                           |
//! | 8      | 4    | chunk size (plaintext bytes per chunk), 1 KiB to 16 MiB  |
//! | 12     | 8    | plaintext length                                         |
//! | 20     | 19   | nonce prefix (random)                                    |
//! | 39     | 1    | reserved, zero                                           |
//!
//! Chunk `i` is sealed with nonce `prefix ‖ i (u32, big-endian) ‖ last (1 for the final chunk,
//! else 0)` and the whole header as associated data. So a chunk cannot be moved, dropped,
//! duplicated or taken from another image, the stream cannot be truncated or extended, and the
//! header (length, chunk size) cannot be changed: each is an authentication failure at the
//! first chunk it touches. The ciphertext length follows from the header
//! ([`Header::ciphertext_len`]), which is the TUF target length publishers sign.

use crate::xchacha::Sealer;
use crate::Key;
use std::io::{Read, Write};

pub const MAGIC: [u8; 4] = *b"OTAE";
/// The name image manifests give this format.
pub const SCHEME: &str = "ota-crypt-stream-v1";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
pub const TAG_LEN: usize = crate::xchacha::TAG_LEN;
/// What `supplier add-image --encrypt` uses: large enough that the tag costs 0.02%, small
/// enough that a receiver holds one chunk in memory.
pub const DEFAULT_CHUNK: u32 = 64 * 1024;
pub const MIN_CHUNK: u32 = 1024;
pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an encrypted image (bad magic)")]
    BadMagic,
    #[error("unsupported encrypted-image format {0}")]
    UnsupportedFormat(u8),
    #[error("malformed encrypted-image header: {0}")]
    BadHeader(&'static str),
    #[error("the encrypted image is truncated in its header")]
    TruncatedHeader,
    /// The chunk does not authenticate: tampered, reordered, from another image, or the
    /// wrong key.
    #[error(
        "chunk {index} of the encrypted image does not authenticate (tampered, or the wrong key)"
    )]
    Chunk { index: u32 },
    #[error("the encrypted image ends after {got} of {want} bytes")]
    Truncated { got: u64, want: u64 },
    #[error("the encrypted image has bytes after its last chunk")]
    TrailingBytes,
    #[error("the image is {0} bytes: more chunks than the format counts")]
    TooLarge(u64),
    #[error("the image is shorter than announced ({got} of {want} bytes)")]
    ShortInput { got: u64, want: u64 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub chunk_size: u32,
    pub plaintext_len: u64,
    pub nonce_prefix: [u8; 19],
}

impl Header {
    pub fn new(chunk_size: u32, plaintext_len: u64) -> Result<Header, Error> {
        use rand_core::RngCore;
        let mut nonce_prefix = [0u8; 19];
        rand_core::OsRng.fill_bytes(&mut nonce_prefix);
        let h = Header {
            chunk_size,
            plaintext_len,
            nonce_prefix,
        };
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<(), Error> {
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk_size) {
            return Err(Error::BadHeader("chunk size out of range"));
        }
        if self.chunks_u64() > u64::from(u32::MAX) {
            return Err(Error::TooLarge(self.plaintext_len));
        }
        Ok(())
    }

    fn chunks_u64(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_size))
            .max(1)
    }

    /// Number of chunks (at least one: an empty image is one empty chunk).
    pub fn chunks(&self) -> u32 {
        // check() bounds it to u32.
        u32::try_from(self.chunks_u64()).unwrap_or(u32::MAX)
    }

    /// Header plus every chunk and its tag.
    pub fn ciphertext_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + u64::from(self.chunks()) * TAG_LEN as u64
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT_VERSION;
        b[8..12].copy_from_slice(&self.chunk_size.to_be_bytes());
        b[12..20].copy_from_slice(&self.plaintext_len.to_be_bytes());
        b[20..39].copy_from_slice(&self.nonce_prefix);
        b
    }

    /// Parse untrusted bytes (at least [`HEADER_LEN`]; the rest is ignored). Never panics.
    pub fn parse(b: &[u8]) -> Result<Header, Error> {
        let b = b.get(..HEADER_LEN).ok_or(Error::TruncatedHeader)?;
        if b[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if b[4] != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat(b[4]));
        }
        if b[5..8] != [0, 0, 0] || b[39] != 0 {
            return Err(Error::BadHeader("reserved bytes are not zero"));
        }
        let mut cs = [0u8; 4];
        cs.copy_from_slice(&b[8..12]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[12..20]);
        let mut nonce_prefix = [0u8; 19];
        nonce_prefix.copy_from_slice(&b[20..39]);
        let h = Header {
            chunk_size: u32::from_be_bytes(cs),
            plaintext_len: u64::from_be_bytes(len),
            nonce_prefix,
        };
        h.check()?;
        Ok(h)
    }

    /// The cipher for this image: `key` with the nonce bytes every chunk shares (the first 16
    /// of the prefix).
    pub fn sealer(&self, key: &Key) -> Sealer {
        let mut head = [0u8; 16];
        head.copy_from_slice(&self.nonce_prefix[..16]);
        Sealer::new(key, &head)
    }

    /// The rest of chunk `index`'s nonce: the prefix's last 3 bytes, the index, the last flag.
    pub fn nonce_tail(&self, index: u32) -> [u8; 8] {
        let mut n = [0u8; 8];
        n[..3].copy_from_slice(&self.nonce_prefix[16..]);
        n[3..7].copy_from_slice(&index.to_be_bytes());
        n[7] = u8::from(index.checked_add(1) == Some(self.chunks()));
        n
    }

    /// The whole chunks in the first `held` bytes of the plaintext: how many, and their bytes.
    pub fn whole_chunks(&self, held: u64) -> (u32, u64) {
        if held >= self.plaintext_len {
            return (self.chunks(), self.plaintext_len);
        }
        // Fewer than chunks() (a u32), as held < plaintext_len.
        let n = (held / u64::from(self.chunk_size)) as u32;
        (n, u64::from(n) * u64::from(self.chunk_size))
    }

    /// Seal chunk `index` again (the encryption is deterministic for one key and header):
    /// `data` is its plaintext, encrypted in place; returns the tag.
    pub fn seal_chunk(
        &self,
        key: &Key,
        index: u32,
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        if index >= self.chunks() || data.len() != self.chunk_len(index) {
            return Err(Error::BadHeader("chunk index or length outside the stream"));
        }
        self.sealer(key)
            .seal(&self.nonce_tail(index), &self.encode(), data)
            .map_err(|_| Error::TooLarge(self.plaintext_len))
    }

    /// Plaintext bytes in chunk `index`.
    pub fn chunk_len(&self, index: u32) -> usize {
        let start = u64::from(index) * u64::from(self.chunk_size);
        let len = self
            .plaintext_len
            .saturating_sub(start)
            .min(u64::from(self.chunk_size));
        // At most chunk_size (a u32).
        len as usize
    }
}

/// The length of the encryption of `plaintext_len` bytes in chunks of `chunk_size`: what a
/// manifest that describes both must agree with. `None` when the format cannot hold it.
pub fn ciphertext_len(chunk_size: u32, plaintext_len: u64) -> Option<u64> {
    let h = Header {
        chunk_size,
        plaintext_len,
        nonce_prefix: [0; 19],
    };
    h.check().ok()?;
    Some(h.ciphertext_len())
}

/// Encrypt `len` bytes read from `input` under `key` into `output`, `chunk_size` bytes at a
/// time (memory: one chunk). Returns the header written.
pub fn encrypt(
    key: &Key,
    input: &mut impl Read,
    len: u64,
    output: &mut impl Write,
    chunk_size: u32,
) -> Result<Header, Error> {
    let header = Header::new(chunk_size, len)?;
    let aad = header.encode();
    output.write_all(&aad)?;
    let cipher = header.sealer(key);
    let mut buf = vec![0u8; chunk_size as usize];
    let mut done = 0u64;
    for index in 0..header.chunks() {
        let n = header.chunk_len(index);
        let chunk = &mut buf[..n];
        if let Err(e) = input.read_exact(chunk) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::ShortInput {
                    got: done,
                    want: len,
                }
            } else {
                e.into()
            });
        }
        let tag = cipher
            .seal(&header.nonce_tail(index), &aad, chunk)
            .map_err(|_| Error::TooLarge(len))?;
        output.write_all(chunk)?;
        output.write_all(&tag)?;
        done += n as u64;
    }
    Ok(header)
}

/// Decrypts a stream as it arrives: bytes in, authenticated plaintext out, one chunk at a
/// time. Nothing of a chunk is released before its tag is checked.
pub struct Decryptor {
    /// The content key, until the header names the nonce the cipher needs.
    key: Key,
    /// Set with the header.
    cipher: Option<Sealer>,
    header: Header,
    aad: [u8; HEADER_LEN],
    /// Header bytes seen so far, until the header is complete.
    head: Vec<u8>,
    started: bool,
    buf: Vec<u8>,
    next: u32,
    received: u64,
}

impl Decryptor {
    /// A decryptor for a stream whose header is not yet read.
    pub fn new(key: &Key) -> Decryptor {
        Decryptor {
            key: key.clone(),
            cipher: None,
            header: Header {
                chunk_size: MIN_CHUNK,
                plaintext_len: 0,
                nonce_prefix: [0; 19],
            },
            aad: [0; HEADER_LEN],
            head: Vec::with_capacity(HEADER_LEN),
            started: false,
            buf: Vec::new(),
            next: 0,
            received: 0,
        }
    }

    /// A decryptor that continues a stream at chunk `next`: the header and the chunks before
    /// were read by an earlier one (see [`crate::plain::PlainWriter::resume`]).
    pub fn resume(key: &Key, header: Header, next: u32) -> Result<Decryptor, Error> {
        header.check()?;
        if next > header.chunks() {
            return Err(Error::BadHeader("resumed after the last chunk"));
        }
        let before: u64 = u64::from(next) * u64::from(header.chunk_size);
        let before = before.min(header.plaintext_len) + u64::from(next) * TAG_LEN as u64;
        Ok(Decryptor {
            key: key.clone(),
            cipher: Some(header.sealer(key)),
            header,
            aad: header.encode(),
            head: Vec::new(),
            started: true,
            buf: Vec::with_capacity(header.chunk_size as usize + TAG_LEN),
            next,
            received: HEADER_LEN as u64 + before,
        })
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.started.then_some(&self.header)
    }

    /// Feed the next ciphertext bytes; `out` receives each chunk's plaintext once it
    /// authenticated. An error is final.
    ///
    /// `out` is a trait object, not a generic, on purpose: a generic would instantiate this
    /// code in the caller's crate, at the caller's optimisation level (the gateway is built for
    /// size). The cipher itself is assembly ([`crate::xchacha`]), fast in any build.
    pub fn update(
        &mut self,
        mut input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.received = self.received.saturating_add(input.len() as u64);
        if !self.started {
            let need = HEADER_LEN - self.head.len();
            let take = need.min(input.len());
            self.head.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.head.len() < HEADER_LEN {
                return Ok(());
            }
            self.header = Header::parse(&self.head)?;
            self.aad = self.header.encode();
            self.cipher = Some(self.header.sealer(&self.key));
            self.started = true;
            self.buf = Vec::with_capacity(self.header.chunk_size as usize + TAG_LEN);
        }
        while !input.is_empty() {
            if self.next >= self.header.chunks() {
                return Err(Error::TrailingBytes);
            }
            let sealed = self.header.chunk_len(self.next) + TAG_LEN;
            let take = (sealed - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == sealed {
                self.open_chunk(out)?;
            }
        }
        Ok(())
    }

    fn open_chunk(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), Error>) -> Result<(), Error> {
        let index = self.next;
        let cipher = self.cipher.as_ref().ok_or(Error::TruncatedHeader)?;
        let data = cipher
            .open(&self.header.nonce_tail(index), &self.aad, &mut self.buf)
            .map_err(|_| Error::Chunk { index })?;
        out(data)?;
        self.buf.clear();
        self.next += 1;
        Ok(())
    }

    /// The end of the stream: every chunk must have arrived and authenticated.
    pub fn finish(self) -> Result<Header, Error> {
        if !self.started || self.next < self.header.chunks() {
            let want = if self.started {
                self.header.ciphertext_len()
            } else {
                HEADER_LEN as u64
            };
            return Err(Error::Truncated {
                got: self.received,
                want,
            });
        }
        Ok(self.header)
    }
}

/// Decrypt a whole stream from `input` into `output` (memory: one chunk).
pub fn decrypt(key: &Key, input: &mut impl Read, output: &mut impl Write) -> Result<Header, Error> {
    let mut d = Decryptor::new(key);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        d.update(&buf[..n], &mut |p| Ok(output.write_all(p)?))?;
    }
    d.finish()
}
