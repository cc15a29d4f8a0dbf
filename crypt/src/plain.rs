//! Decrypting while downloading, then checking the plaintext against the image manifest:
//! each chunk is released only after it authenticated, the plaintext is hashed as it is
//! written, and [`PlainWriter::finish`] refuses a plaintext whose length or SHA-256 is not
//! the manifest's (a supplier that encrypted other bytes than it signed).

use crate::stream::{Decryptor, Error as StreamError, Header, HEADER_LEN, TAG_LEN};
use crate::Key;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("the decrypted image is {got} bytes; its manifest says {want}")]
    Length { got: u64, want: u64 },
    #[error("the decrypted image's SHA-256 is not its manifest's")]
    Hash,
    /// Refused before any chunk is buffered: the header is not authenticated until chunk 0
    /// is, and a chunk size of its own choosing would make the reader buffer up to 16 MiB.
    #[error(
        "the encrypted stream's header says chunks of {got} bytes; the signed manifest says {want}"
    )]
    ChunkSize { got: u32, want: u32 },
}

/// What the signed image manifest says the stream decrypts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub length: u64,
    pub sha256: [u8; 32],
    pub chunk_size: u32,
}

/// Ciphertext in ([`Write`]), verified plaintext out to `inner`.
pub struct PlainWriter<W: Write> {
    decryptor: Decryptor,
    inner: W,
    hasher: Sha256,
    written: u64,
    want_len: u64,
    want_sha256: [u8; 32],
    want_chunk_size: u32,
    /// Ciphertext bytes fed, up to the header's length.
    fed: usize,
}

impl<W: Write> PlainWriter<W> {
    /// Decrypt with `key` into `inner`, expecting what `want` says.
    pub fn new(key: &Key, inner: W, want: Expected) -> Self {
        PlainWriter {
            decryptor: Decryptor::new(key),
            inner,
            hasher: Sha256::new(),
            written: 0,
            want_len: want.length,
            want_sha256: want.sha256,
            want_chunk_size: want.chunk_size,
            fed: 0,
        }
    }

    /// The header against the manifest, before anything else is read.
    fn check_header(&self, header: &Header) -> Result<(), Error> {
        if header.chunk_size != self.want_chunk_size {
            return Err(Error::ChunkSize {
                got: header.chunk_size,
                want: self.want_chunk_size,
            });
        }
        if header.plaintext_len != self.want_len {
            return Err(Error::Length {
                got: header.plaintext_len,
                want: self.want_len,
            });
        }
        Ok(())
    }

    /// Continue, on this fresh writer, a decryption that an earlier attempt stopped after
    /// `chunks` whole chunks of `header`'s stream: `prefix` reads back the plaintext it wrote
    /// (and `inner` appends after it). The prefix is hashed again and sealed again (one key
    /// and header always give the same ciphertext), and `ciphertext` is shown the stream up to
    /// there, header first, so a download can hash what it holds without having kept it. A
    /// prefix changed since gives other ciphertext, which that hash then refuses (and other
    /// plaintext, which [`PlainWriter::finish`] refuses).
    pub fn resume(
        &mut self,
        key: &Key,
        header: Header,
        chunks: u32,
        prefix: &mut dyn Read,
        ciphertext: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Error> {
        if self.fed != 0 {
            return Err(StreamError::BadHeader("resumed after bytes were fed").into());
        }
        self.check_header(&header)?;
        let decryptor = Decryptor::resume(key, header, chunks)?;
        ciphertext(&header.encode());
        let mut buf = vec![0u8; header.chunk_size as usize + TAG_LEN];
        for index in 0..chunks {
            let n = header.chunk_len(index);
            let (data, tag) = buf.split_at_mut(n);
            prefix.read_exact(data).map_err(StreamError::Io)?;
            self.hasher.update(&*data);
            tag[..TAG_LEN].copy_from_slice(&header.seal_chunk(key, index, data)?);
            ciphertext(&buf[..n + TAG_LEN]);
            self.written = self.written.saturating_add(n as u64);
        }
        self.decryptor = decryptor;
        self.fed = HEADER_LEN;
        Ok(())
    }

    /// The stream's header, once read (or resumed).
    pub fn header(&self) -> Option<&Header> {
        self.decryptor.header()
    }

    /// Feed ciphertext.
    pub fn update(&mut self, ciphertext: &[u8]) -> Result<(), Error> {
        // The header first, so a length or chunk size other than the manifest's is refused
        // before any chunk is buffered or decrypted.
        let mut rest = ciphertext;
        if self.fed < HEADER_LEN {
            let n = (HEADER_LEN - self.fed).min(rest.len());
            let (head, tail) = rest.split_at(n);
            self.feed(head)?;
            self.fed += n;
            rest = tail;
            if let Some(h) = self.decryptor.header().copied() {
                self.check_header(&h)?;
            }
        }
        self.feed(rest)
    }

    fn feed(&mut self, ciphertext: &[u8]) -> Result<(), Error> {
        let (inner, hasher, written, want) = (
            &mut self.inner,
            &mut self.hasher,
            &mut self.written,
            self.want_len,
        );
        self.decryptor.update(ciphertext, &mut |p| {
            *written = written.saturating_add(p.len() as u64);
            if *written > want {
                // Stop before writing more than the manifest allows.
                return Err(StreamError::TrailingBytes);
            }
            hasher.update(p);
            inner.write_all(p)?;
            Ok(())
        })?;
        Ok(())
    }

    /// The end of the ciphertext: every chunk authenticated, and the plaintext is the
    /// manifest's. Returns the inner writer.
    pub fn finish(self) -> Result<W, Error> {
        self.decryptor.finish()?;
        if self.written != self.want_len {
            return Err(Error::Length {
                got: self.written,
                want: self.want_len,
            });
        }
        let got: [u8; 32] = self.hasher.finalize().into();
        if got != self.want_sha256 {
            return Err(Error::Hash);
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for PlainWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
