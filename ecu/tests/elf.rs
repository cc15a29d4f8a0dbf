//! The image a bootloader loads, made from a linker's ELF (`ota_ecu::elf`, `ota-ecu-image`):
//! segments at their load addresses, and a hostile file refused by name, never a panic.

use ota_ecu::elf::{image, ElfError, MAX_IMAGE};

/// A 32-bit little-endian ELF with the given (type, load address, bytes) program headers.
fn elf(segments: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let phoff = 52u32;
    let mut data_at = phoff + 32 * segments.len() as u32;
    let mut out = vec![0u8; 52];
    out[..6].copy_from_slice(&[0x7F, b'E', b'L', b'F', 1, 1]);
    out[28..32].copy_from_slice(&phoff.to_le_bytes());
    out[42..44].copy_from_slice(&32u16.to_le_bytes());
    out[44..46].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    let mut bodies = Vec::new();
    for (kind, addr, bytes) in segments {
        let mut ph = [0u8; 32];
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        ph[4..8].copy_from_slice(&data_at.to_le_bytes());
        ph[8..12].copy_from_slice(&addr.to_le_bytes());
        ph[12..16].copy_from_slice(&addr.to_le_bytes());
        ph[16..20].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        ph[20..24].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&ph);
        bodies.extend_from_slice(bytes);
        data_at += bytes.len() as u32;
    }
    out.extend_from_slice(&bodies);
    out
}

#[test]
fn segments_land_at_their_load_addresses_with_gaps_erased() {
    let vectors = [1u8, 2, 3, 4];
    let text = [5u8, 6];
    // A non-loadable segment (type 0x6474e551, GNU_STACK) and an empty one are skipped.
    let f = elf(&[
        (1, 0x8_0008, &text),
        (0x6474_e551, 0, &[9, 9]),
        (1, 0x8_0000, &vectors),
        (1, 0x9_0000, &[]),
    ]);
    let (base, img) = image(&f).unwrap();
    assert_eq!(base, 0x8_0000);
    assert_eq!(img, [1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 5, 6]);
}

#[test]
fn hostile_files_are_refused_by_name_never_a_panic() {
    let good = elf(&[(1, 0x8_0000, &[1, 2, 3, 4, 5, 6, 7, 8])]);
    // Every truncation: refused, or (cut inside nothing that matters) never a panic.
    for n in 0..good.len() {
        assert!(image(&good[..n]).is_err(), "cut at {n}");
    }
    assert_eq!(image(b"\x7fELF\x02\x01rest"), Err(ElfError::NotElf32));
    assert_eq!(image(&elf(&[])), Err(ElfError::Empty));
    // A segment whose bytes lie past the end of the file.
    let mut past = good.clone();
    past[52 + 4..52 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(image(&past), Err(ElfError::Truncated));
    // Two segments 4 GiB apart: refused before anything that size is allocated.
    let far = elf(&[(1, 0, &[1]), (1, 0xFFFF_FF00, &[2])]);
    assert!(matches!(image(&far), Err(ElfError::TooLarge { span }) if span > MAX_IMAGE as u64));
    // A header count that points past the file.
    let mut many = good.clone();
    many[44..46].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(image(&many), Err(ElfError::Truncated));
    // Random bytes behind a valid magic never panic.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        let mut f = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = 6 + (x as usize % (f.len() - 6));
            f[at] = (x >> 8) as u8;
        }
        let _ = image(&f);
    }
}
