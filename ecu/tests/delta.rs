//! Deltas and packed images (ecu/src/delta.rs) on their own: what goes in comes out, in any
//! piece sizes; anything else is refused or comes out different (the bootloader's hash check
//! then refuses it: ecu/tests/bootloader.rs).

use ota_ecu::delta::make::{self, apply};
use ota_ecu::delta::{Encoding, Error, DELTA_HEADER_LEN, HEADER_LEN};

/// Deterministic bytes that compress like code (repeated shapes with varying operands).
fn firmware_like(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        match x % 4 {
            0 => out.extend_from_slice(&[0x2D, 0xE9, 0xF0, 0x41]),
            1 => out.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]),
            _ => out.extend_from_slice(&x.to_le_bytes()[..2]),
        }
    }
    out.truncate(len);
    out
}

/// `old` with a point release's changes: bytes changed here and there, a run inserted, a run
/// removed (so later code moves).
fn point_release(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    for i in (1000..new.len()).step_by(4099) {
        new[i] ^= 0x5A;
    }
    let third = new.len() / 3;
    new.splice(
        third..third,
        b"a new feature: forty bytes of new code!!".iter().copied(),
    );
    new.drain(2 * third..2 * third + 300);
    new
}

const BLOCKS: [usize; 5] = [1, 7, 64, 1000, 4092];

#[test]
fn a_delta_rebuilds_the_new_image_from_the_old_in_any_block_size_and_is_small() {
    let old = firmware_like(96 * 1024, 1);
    let new = point_release(&old);
    let delta = make::delta(&old, &new);
    assert!(
        delta.len() * 10 < new.len(),
        "a point release's delta is under a tenth of the image: {} of {}",
        delta.len(),
        new.len()
    );
    for block in BLOCKS {
        let out = apply(Encoding::Delta, &old, &delta, new.len() as u64, block).unwrap();
        assert!(out == new, "block size {block}: the rebuilt image differs");
    }
}

#[test]
fn a_packed_image_unpacks_to_itself_and_an_empty_image_too() {
    let image = firmware_like(50_000, 2);
    let packed = make::packed(&image);
    assert!(packed.len() < image.len(), "code-like bytes compress");
    for block in BLOCKS {
        let out = apply(Encoding::Packed, &[], &packed, image.len() as u64, block).unwrap();
        assert!(out == image, "block size {block}");
    }
    let empty = make::packed(&[]);
    assert_eq!(apply(Encoding::Packed, &[], &empty, 0, 4092).unwrap(), b"");
    // A delta to an image from nothing, and from an image to nothing.
    let d = make::delta(&[], &image);
    assert!(apply(Encoding::Delta, &[], &d, image.len() as u64, 100).unwrap() == image);
    let d = make::delta(&image, &[]);
    assert_eq!(apply(Encoding::Delta, &image, &d, 0, 100).unwrap(), b"");
}

#[test]
fn a_delta_against_another_base_is_refused_before_anything_is_written() {
    let old = firmware_like(30_000, 3);
    let new = point_release(&old);
    let delta = make::delta(&old, &new);
    let mut other = old.clone();
    other[10] ^= 1;
    assert_eq!(
        apply(Encoding::Delta, &other, &delta, new.len() as u64, 4092),
        Err(Error::WrongBase)
    );
    // Same content, but the header's length says otherwise.
    let mut lying = delta.clone();
    lying[HEADER_LEN + 3] ^= 1;
    assert_eq!(
        apply(Encoding::Delta, &old, &lying, new.len() as u64, 4092),
        Err(Error::WrongBase)
    );
}

/// The decoder alone: a corrupted delta is refused by its format, or rebuilds at most the
/// announced length. That such bytes never become the pending image is the bootloader's hash
/// check (`a_delta_for_another_base_or_corrupted_never_becomes_pending` in bootloader.rs).
#[test]
fn a_corrupted_delta_is_refused_by_its_format_or_rebuilds_at_most_the_announced_length() {
    let old = firmware_like(30_000, 4);
    let new = point_release(&old);
    let delta = make::delta(&old, &new);
    let mut refused = 0;
    for at in (DELTA_HEADER_LEN..delta.len()).step_by(7) {
        let mut bad = delta.clone();
        bad[at] ^= 0x10;
        match apply(Encoding::Delta, &old, &bad, new.len() as u64, 4092) {
            Err(_) => refused += 1,
            // What comes out may differ (the bootloader's hash check refuses it) or, where the
            // flipped bit was padding, equal the image; it never exceeds the announced length.
            Ok(out) => assert!(out.len() <= new.len()),
        }
    }
    assert!(
        refused > 0,
        "some corruptions are caught by the format itself"
    );
    // Every header byte matters.
    for at in 0..HEADER_LEN {
        let mut bad = delta.clone();
        bad[at] ^= 0x01;
        assert!(apply(Encoding::Delta, &old, &bad, new.len() as u64, 4092).is_err());
    }
}

#[test]
fn truncated_or_overlong_data_is_refused() {
    let old = firmware_like(20_000, 5);
    let new = point_release(&old);
    let delta = make::delta(&old, &new);
    // Cut inside the header: the download ends before its stream does.
    assert_eq!(
        apply(Encoding::Delta, &old, &delta[..20], new.len() as u64, 4092),
        Err(Error::Malformed)
    );
    // More out than the manifest announced.
    assert_eq!(
        apply(Encoding::Delta, &old, &delta, new.len() as u64 - 1, 4092),
        Err(Error::TooLong)
    );
    let packed = make::packed(&new);
    assert_eq!(
        apply(Encoding::Packed, &[], &packed, 100, 4092),
        Err(Error::TooLong)
    );
    // A delta sent as a packed image, and the reverse.
    assert!(apply(Encoding::Packed, &old, &delta, 1 << 20, 4092).is_err());
    assert!(apply(Encoding::Delta, &old, &packed, 1 << 20, 4092).is_err());
}

#[test]
fn hostile_patch_records_cannot_read_outside_the_base_or_spin() {
    use ota_ecu::delta::{DELTA_MAGIC, FORMAT_VERSION, LOOKAHEAD_BITS, WINDOW_BITS};
    use sha2::{Digest, Sha256};
    let base = vec![7u8; 100];
    // A packed stream of raw records, compressed by the real compressor: make::packed's body
    // after its own header.
    let delta_of = |records: &[u8]| {
        let mut d = DELTA_MAGIC.to_vec();
        d.extend_from_slice(&[FORMAT_VERSION, WINDOW_BITS as u8, LOOKAHEAD_BITS as u8, 0]);
        d.extend_from_slice(&(base.len() as u32).to_be_bytes());
        d.extend_from_slice(&Sha256::digest(&base)[..16]);
        d.extend_from_slice(&make::packed(records)[HEADER_LEN..]);
        d
    };
    // mix 101 > base.
    let d = delta_of(&[101, 0, 0]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Err(Error::Malformed)
    );
    // seek -1 from 0, and +101.
    let d = delta_of(&[0, 0, 1]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Err(Error::Malformed)
    );
    let d = delta_of(&[0, 0, 202, 1]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Err(Error::Malformed)
    );
    // A number of 11 LEB128 bytes.
    let d = delta_of(&[0xFF; 11]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Err(Error::Malformed)
    );
    // Empty records only: nothing out, ends on a record boundary.
    let d = delta_of(&[0; 300]);
    assert_eq!(apply(Encoding::Delta, &base, &d, 1000, 4092), Ok(vec![]));
    // A record cut short.
    let d = delta_of(&[3, 2, 0, 1, 1]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Err(Error::Malformed)
    );
    // A good one: mix 3 (+1 each), copy 2 (9, 9); then mix 1 (+0) at the cursor, 3, and
    // seek -3 (zigzag 5), back inside the base.
    let d = delta_of(&[3, 2, 0, 1, 1, 1, 9, 9, 1, 0, 5, 0]);
    assert_eq!(
        apply(Encoding::Delta, &base, &d, 1000, 4092),
        Ok(vec![8, 8, 8, 9, 9, 7])
    );
}

#[test]
fn format_ids_are_the_uds_compression_nibble() {
    for e in [Encoding::Plain, Encoding::Packed, Encoding::Delta] {
        assert_eq!(Encoding::from_format_id(e.format_id()), Some(e));
        assert_eq!(e.format_id() & 0x0F, 0, "no encryption nibble");
    }
    assert_eq!(Encoding::from_format_id(0x30), None);
    assert_eq!(Encoding::from_format_id(0x01), None);
}
