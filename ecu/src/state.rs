//! The ECU's power-loss-safe state: which slot is active, the release counter, and what the
//! active image is. Two copies, each with a sequence number and a checksum; a write goes to
//! the copy *not* holding the newest valid state, so a power cut while writing tears at most
//! that copy, and the other still holds the previous state.
//!
//! Layout of a copy (160 bytes, big-endian):
//! `OTAS` magic (4) · sequence (4) · active slot (1) · flags (1, bit 0: an image is installed)
//! · reserved (6) · release counter (8) · uid (32) · version (32) · image SHA-256 (32) ·
//! image length (8) · SHA-256 of bytes 0..128 (32).

use crate::compact_manifest::{Field, FIELD_LEN};
use crate::flash::{Flash, Slot, STATE_LEN};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"OTAS";

/// What the ECU runs and may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcuState {
    pub sequence: u32,
    pub active: Slot,
    /// `None` until a first image is installed through the bootloader.
    pub image: Option<ImageInfo>,
    /// Highest release counter ever installed: images below it are refused.
    pub release_counter: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub uid: Field,
    pub version: Field,
    pub sha256: [u8; 32],
    pub length: u64,
    pub release_counter: u64,
}

impl EcuState {
    /// A factory-fresh ECU: slot A, nothing installed, counter 0.
    pub const fn blank() -> Self {
        EcuState {
            sequence: 0,
            active: Slot::A,
            image: None,
            release_counter: 0,
        }
    }

    fn encode(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.sequence.to_be_bytes());
        b[8] = self.active.index();
        b[16..24].copy_from_slice(&self.release_counter.to_be_bytes());
        if let Some(i) = &self.image {
            b[9] = 1;
            b[24..56].copy_from_slice(i.uid.as_bytes());
            b[56..88].copy_from_slice(i.version.as_bytes());
            b[88..120].copy_from_slice(&i.sha256);
            b[120..128].copy_from_slice(&i.length.to_be_bytes());
        }
        let sum: [u8; 32] = Sha256::digest(&b[..128]).into();
        b[128..160].copy_from_slice(&sum);
        b
    }

    fn decode(b: &[u8; STATE_LEN]) -> Option<Self> {
        if b[0..4] != MAGIC {
            return None;
        }
        let sum: [u8; 32] = Sha256::digest(&b[..128]).into();
        if b[128..160] != sum {
            return None;
        }
        let u32_at = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let active = Slot::from_index(b[8])?;
        let release_counter = u64_at(16);
        let image = if b[9] & 1 == 1 {
            let field = |at: usize| {
                let mut f = [0u8; FIELD_LEN];
                f.copy_from_slice(&b[at..at + FIELD_LEN]);
                Field::from_raw(f)
            };
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(&b[88..120]);
            Some(ImageInfo {
                uid: field(24)?,
                version: field(56)?,
                sha256,
                length: u64_at(120),
                release_counter,
            })
        } else {
            None
        };
        Some(EcuState {
            sequence: u32_at(4),
            active,
            image,
            release_counter,
        })
    }

    /// The newest valid copy, or a blank state if neither copy is valid (a new ECU).
    pub fn load<F: Flash>(flash: &mut F) -> Result<Self, F::Error> {
        let mut newest: Option<EcuState> = None;
        for copy in 0..2u8 {
            let mut buf = [0u8; STATE_LEN];
            flash.read_state(copy, &mut buf)?;
            if let Some(s) = Self::decode(&buf) {
                if newest.is_none_or(|n| s.sequence > n.sequence) {
                    newest = Some(s);
                }
            }
        }
        Ok(newest.unwrap_or(Self::blank()))
    }

    /// Persist `next` as the state after `self`: sequence + 1, written to the copy that does
    /// not hold `self`.
    pub fn commit<F: Flash>(
        &self,
        flash: &mut F,
        mut next: EcuState,
    ) -> Result<EcuState, F::Error> {
        next.sequence = self.sequence.wrapping_add(1);
        // Copy for sequence n is n % 2: the current state's copy is never overwritten.
        let copy = (next.sequence & 1) as u8;
        flash.write_state(copy, &next.encode())?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::mem::MemFlash;

    fn info(counter: u64) -> ImageInfo {
        ImageInfo {
            uid: Field::new("fw").unwrap(),
            version: Field::new("1.0").unwrap(),
            sha256: [7; 32],
            length: 1234,
            release_counter: counter,
        }
    }

    #[test]
    fn round_trip_and_newest_wins() {
        let mut f = MemFlash::new(1024);
        let s0 = EcuState::load(&mut f).unwrap();
        assert_eq!(s0, EcuState::blank());
        let s1 = s0
            .commit(
                &mut f,
                EcuState {
                    active: Slot::B,
                    image: Some(info(3)),
                    release_counter: 3,
                    ..s0
                },
            )
            .unwrap();
        let s2 = s1
            .commit(
                &mut f,
                EcuState {
                    active: Slot::A,
                    image: Some(info(4)),
                    release_counter: 4,
                    ..s1
                },
            )
            .unwrap();
        assert_eq!(EcuState::load(&mut f).unwrap(), s2);
        assert_eq!(s2.sequence, 2);
    }

    #[test]
    fn a_torn_write_leaves_the_previous_state() {
        let mut f = MemFlash::new(1024);
        let s0 = EcuState::load(&mut f).unwrap();
        let s1 = s0
            .commit(
                &mut f,
                EcuState {
                    active: Slot::B,
                    image: Some(info(3)),
                    release_counter: 3,
                    ..s0
                },
            )
            .unwrap();
        f.writes_left = Some(0);
        assert!(s1
            .commit(
                &mut f,
                EcuState {
                    active: Slot::A,
                    release_counter: 9,
                    ..s1
                }
            )
            .is_err());
        f.power_on();
        assert_eq!(EcuState::load(&mut f).unwrap(), s1);
    }

    #[test]
    fn garbage_copies_are_ignored() {
        let mut f = MemFlash::new(1024);
        f.state = [[0xAB; STATE_LEN], [0x00; STATE_LEN]];
        assert_eq!(EcuState::load(&mut f).unwrap(), EcuState::blank());
        let mut b = EcuState {
            image: Some(info(1)),
            release_counter: 1,
            ..EcuState::blank()
        }
        .encode();
        b[20] ^= 1; // flip a bit: checksum fails
        f.state[0] = b;
        assert_eq!(EcuState::load(&mut f).unwrap(), EcuState::blank());
    }
}
