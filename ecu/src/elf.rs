//! The image a bootloader loads, from the linker's ELF (what `objcopy -O binary` makes): the
//! bytes of every loadable segment at its load address, from the lowest one up, gaps filled
//! with the erased-flash value. A supplier publishes this image; the ECU's bootloader copies it
//! to the address it was linked for and starts it.
//!
//! The ELF is read as untrusted input (a file the user names): every offset and length is
//! checked, and the image is bounded by [`MAX_IMAGE`].

use alloc::vec::Vec;

/// The largest image made (a slot of the emulated ECU is 256 KiB; a microcontroller's flash
/// a few MiB).
pub const MAX_IMAGE: usize = 16 << 20;

/// Why an ELF gives no image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a 32-bit little-endian ELF executable (what `thumbv7em-none-eabihf` links).
    NotElf32,
    /// A header or segment reaches past the end of the file.
    Truncated,
    /// No segment with bytes to load.
    Empty,
    /// The segments span more than [`MAX_IMAGE`] bytes.
    TooLarge { span: u64 },
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::NotElf32 => write!(f, "not a 32-bit little-endian ELF executable"),
            ElfError::Truncated => write!(
                f,
                "truncated: a header or segment is past the end of the file"
            ),
            ElfError::Empty => write!(f, "no loadable segment with bytes"),
            ElfError::TooLarge { span } => write!(
                f,
                "the loadable segments span {span} bytes (at most {MAX_IMAGE})"
            ),
        }
    }
}

/// One loadable segment: load address, and its bytes in the file.
struct Segment {
    address: u64,
    offset: usize,
    len: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b.get(at..at + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b.get(at..at + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The loadable segments with bytes in the file (`PT_LOAD`, file size above zero), by their
/// load (physical) address: initialised data is loaded where the start-up code copies it from.
fn segments(elf: &[u8]) -> Result<Vec<Segment>, ElfError> {
    const PT_LOAD: u32 = 1;
    if elf.get(..6) != Some(&[0x7F, b'E', b'L', b'F', 1, 1]) {
        return Err(ElfError::NotElf32);
    }
    let phoff = u32_at(elf, 28)? as usize;
    let phentsize = usize::from(u16_at(elf, 42)?);
    let phnum = usize::from(u16_at(elf, 44)?);
    if phentsize < 32 {
        return Err(ElfError::NotElf32);
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let at = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        let (kind, offset, paddr, filesz) = (
            u32_at(elf, at)?,
            u32_at(elf, at + 4)? as usize,
            u32_at(elf, at + 12)?,
            u32_at(elf, at + 16)? as usize,
        );
        if kind != PT_LOAD || filesz == 0 {
            continue;
        }
        if offset.checked_add(filesz).is_none_or(|e| e > elf.len()) {
            return Err(ElfError::Truncated);
        }
        out.push(Segment {
            address: u64::from(paddr),
            offset,
            len: filesz,
        });
    }
    Ok(out)
}

/// The image of `elf`: its load address and bytes.
pub fn image(elf: &[u8]) -> Result<(u32, Vec<u8>), ElfError> {
    let segs = segments(elf)?;
    let base = segs
        .iter()
        .map(|s| s.address)
        .min()
        .ok_or(ElfError::Empty)?;
    let end = segs
        .iter()
        .map(|s| s.address + s.len as u64)
        .max()
        .ok_or(ElfError::Empty)?;
    let span = end - base;
    if span > MAX_IMAGE as u64 {
        return Err(ElfError::TooLarge { span });
    }
    let mut out = alloc::vec![0xFF; span as usize];
    for s in &segs {
        let at = (s.address - base) as usize;
        out[at..at + s.len].copy_from_slice(&elf[s.offset..s.offset + s.len]);
    }
    // `base` came from a 32-bit field.
    Ok((base as u32, out))
}
