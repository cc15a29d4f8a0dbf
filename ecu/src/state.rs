//! The ECU's power-loss-safe state: which slot is active, the release counter, what the
//! active image is, and which verified image waits in the other slot for activation. Two
//! copies, each with a sequence number and a checksum; a write goes to the copy *not* holding
//! the newest valid state, so a power cut while writing tears at most that copy, and the other
//! still holds the previous state.
//!
//! Layout of a copy (608 bytes, big-endian):
//! `OTA4` magic (4) · sequence (4) · active slot (1) · flags (1, bit 0: an image is installed,
//! bit 1: a verified image is pending in the other slot, bit 2: a trust document is held,
//! bit 3: the active image is on trial, bit 4: an image was reverted)
//! · reserved (6) · release counter (8)
//! · active image: uid (32) · version (32) · SHA-256 (32) · length (8)
//! · pending image: uid (32) · version (32) · SHA-256 (32) · length (8) · release counter (8)
//! · trust document: copy (1) · reserved (3) · version (4) · length (4) · SHA-256 (32)
//! · instruction sequence (4): the highest the ECU accepted ([`crate::instruction`]; zero
//! in states written before instructions, whose bytes were reserved and zero)
//! · trial: boots started (1) · revert reason (1) · reserved (6) · the trial image's release
//! counter (8) · the previous image, in the other slot: uid (32) · version (32) · SHA-256 (32)
//! · length (8)
//! · the last image reverted: uid (32) · version (32) · SHA-256 (32)
//! · images reverted: count (1) · reserved (7) · the first 8 bytes of the SHA-256 of each of
//! the last [`REVERT_HISTORY`] (64) · SHA-256 of bytes 0..576 (32).
//!
//! The third layout (`OTA3`, 320 bytes: the same up to the instruction sequence, then the
//! SHA-256 of bytes 0..288) is still read, as a state with no trial and nothing reverted.
//!
//! The trust document itself lives in one of two trust copies of the flash
//! ([`Flash::read_trust`]); a new one is written to the copy the state does not name, then
//! the state is committed naming it, so a power cut leaves the old or the new document.
//!
//! A trial ([`Trial`]): activation makes the new image active *on trial*; the release counter
//! stays where it was until the image confirms itself ([`crate::bootloader`]), and the
//! previous image stays intact in the other slot (downloads, which would erase it, are refused
//! during a trial) so the bootloader can return to it by itself.
//!
//! The second layout (`OTA2`, 272 bytes: the same up to the pending image, then the SHA-256 of
//! bytes 0..240) is still read, as a state with no trust document; never written again.
//!
//! The first layout (`OTAS`, 160 bytes: the same up to the active image's length, then the
//! SHA-256 of bytes 0..128) is still read, as a state with nothing pending, so an ECU whose
//! bootloader is updated keeps its release counter; it is never written again.
//!
//! A pending image is written by a transfer whose length and hash matched (the two-phase
//! update: the gateway distributes first), and becomes the active one only on an explicit
//! activation, which is also when the release counter rises. Until then the ECU boots its
//! active image; a pending image survives restarts and is dropped by a discard or by the next
//! download (which erases its slot, after dropping the record).
//!
//! If neither copy is valid, the state is *lost*, not new: falling back to release counter 0
//! would let a rollback in. Installs are then refused until a valid state is written back
//! (a workshop operation). Only a never-written state reads as blank: copy 1 still erased.
//! The first commit of a blank ECU writes the blank state to copy 0 before anything goes to
//! copy 1, so copy 1 erased means nothing beyond release counter 0 was ever committed, even if
//! a power cut tore copy 0 during that first write.

use crate::compact_manifest::{Field, FIELD_LEN};
use crate::flash::{Flash, Slot, STATE_LEN};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"OTA4";
/// The third layout's magic (read, never written).
const MAGIC_V3: [u8; 4] = *b"OTA3";
/// The second layout's magic (read, never written).
const MAGIC_V2: [u8; 4] = *b"OTA2";
/// The first layout's magic (read, never written).
const MAGIC_V1: [u8; 4] = *b"OTAS";
/// Where the checksum starts in the current layout (it covers everything before).
const SUM_AT: usize = 576;
/// Where the checksum starts in the third layout.
const SUM_AT_V3: usize = 288;
/// Where the checksum starts in the second layout.
const SUM_AT_V2: usize = 240;
/// Where the checksum starts in the first layout.
const SUM_AT_V1: usize = 128;

/// What the ECU runs and may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcuState {
    pub sequence: u32,
    pub active: Slot,
    /// `None` until a first image is installed through the bootloader.
    pub image: Option<ImageInfo>,
    /// Highest release counter ever activated: images below it are refused.
    pub release_counter: u64,
    /// A verified image in the inactive slot (`active.other()`), waiting for activation.
    pub pending: Option<ImageInfo>,
    /// The trust document in force, if one was ever installed.
    pub trust: Option<TrustRecord>,
    /// The highest instruction sequence accepted: an instruction below it (an assignment the
    /// OEM has since replaced) is refused.
    pub instruction_sequence: u32,
    /// The active image (`image`, whose `release_counter` is its own, not yet final) is on
    /// trial: it has not confirmed itself yet.
    pub trial: Option<Trial>,
    /// The last image the bootloader returned from, and why.
    pub reverted: Option<Reverted>,
    /// Every image reverted from (the last [`REVERT_HISTORY`], by the first 8 bytes of their
    /// SHA-256): none is downloaded again.
    pub revert_history: RevertHistory,
}

/// How many reverted images the state remembers.
pub const REVERT_HISTORY: usize = 8;

/// The images reverted from, newest last (bounded: the oldest is forgotten first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevertHistory {
    len: u8,
    prefixes: [[u8; 8]; REVERT_HISTORY],
}

impl RevertHistory {
    /// Whether the image of SHA-256 `sha256` is one of them.
    pub fn contains(&self, sha256: &[u8; 32]) -> bool {
        self.prefixes[..usize::from(self.len)]
            .iter()
            .any(|p| p[..] == sha256[..8])
    }

    /// Remember `sha256` (the oldest goes when it is full).
    pub fn push(&mut self, sha256: &[u8; 32]) {
        let mut p = [0u8; 8];
        p.copy_from_slice(&sha256[..8]);
        if usize::from(self.len) == REVERT_HISTORY {
            self.prefixes.copy_within(1.., 0);
            self.prefixes[REVERT_HISTORY - 1] = p;
        } else {
            self.prefixes[usize::from(self.len)] = p;
            self.len += 1;
        }
    }
}

/// An activated image that has not confirmed itself yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trial {
    /// Boots of the trial image so far (the bootloader counts them before starting it).
    pub boots: u8,
    /// The image in the other slot, to return to (its counter is the state's, which is final);
    /// `None` when the trial image is the first ever installed.
    pub previous: Option<ImageInfo>,
}

/// Why the bootloader returned to the previous image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevertReason {
    /// Started the allowed number of times and never confirmed itself.
    Unconfirmed = 1,
    /// Reset by the watchdog before it confirmed itself.
    Watchdog = 2,
    /// A fault (hard fault, lockup) reset it before it confirmed itself.
    Fault = 3,
    /// At boot, its slot no longer hashed to what was verified.
    Corrupt = 4,
    /// Not an application this ECU's board can start (its bootloader checked it before the
    /// jump): a build for another address or another processor, or data.
    NotStartable = 5,
}

impl RevertReason {
    pub fn from_u8(b: u8) -> Option<Self> {
        [
            RevertReason::Unconfirmed,
            RevertReason::Watchdog,
            RevertReason::Fault,
            RevertReason::Corrupt,
            RevertReason::NotStartable,
        ]
        .into_iter()
        .find(|r| *r as u8 == b)
    }

    pub fn describe(self) -> &'static str {
        match self {
            RevertReason::Unconfirmed => "never confirmed itself within its trial boots",
            RevertReason::Watchdog => "reset by the watchdog before confirming itself",
            RevertReason::Fault => "faulted before confirming itself",
            RevertReason::Corrupt => "its slot no longer held the verified image at boot",
            RevertReason::NotStartable => "not an application this ECU can start",
        }
    }
}

/// The image the bootloader returned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reverted {
    pub uid: Field,
    pub version: Field,
    pub sha256: [u8; 32],
    pub reason: RevertReason,
}

/// Where the trust document in force is, and what it must hash to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustRecord {
    /// Trust copy (0 or 1) holding it.
    pub copy: u8,
    pub version: u32,
    pub length: u32,
    pub sha256: [u8; 32],
}

/// What [`EcuState::read`] found in the two state copies.
// Read once at start-up and taken apart at once; boxing would only move it to the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The newest valid copy.
    Valid(EcuState),
    /// Never written: a factory-fresh ECU, release counter 0.
    Blank,
    /// Written before, and now no copy is valid: the release counter is unknown.
    Lost,
}

/// Why [`EcuState::load`] has no state to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    Flash(E),
    /// Both copies are invalid but the state was written before: refuse installs until a valid
    /// state is restored, rather than start again from release counter 0.
    Lost,
}

/// Whether a copy reads as erased flash: all zeros (as [`Flash::read_state`] reports a
/// never-written copy) or all ones (NOR flash after an erase).
fn is_erased(b: &[u8; STATE_LEN]) -> bool {
    b.iter().all(|&x| x == 0x00) || b.iter().all(|&x| x == 0xFF)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub uid: Field,
    pub version: Field,
    pub sha256: [u8; 32],
    pub length: u64,
    pub release_counter: u64,
}

/// Where a stored copy's checksum is, by its layout (the magic): `None` for no known layout
/// or a checksum that does not match (a torn or never-written copy).
#[inline]
fn checked_sum_at(b: &[u8; STATE_LEN]) -> Option<usize> {
    let sum_at = match [b[0], b[1], b[2], b[3]] {
        MAGIC => SUM_AT,
        MAGIC_V3 => SUM_AT_V3,
        MAGIC_V2 => SUM_AT_V2,
        MAGIC_V1 => SUM_AT_V1,
        _ => return None,
    };
    let sum: [u8; 32] = Sha256::digest(&b[..sum_at]).into();
    if b[sum_at..sum_at + 32] != sum {
        return None;
    }
    Some(sum_at)
}

#[inline]
fn u32_at(b: &[u8; STATE_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn u64_at(b: &[u8; STATE_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[inline]
fn sha256_at(b: &[u8; STATE_LEN], at: usize) -> [u8; 32] {
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&b[at..at + 32]);
    sha256
}

/// A uid or version field; `None` if it is not one.
#[inline]
fn field_at(b: &[u8; STATE_LEN], at: usize) -> Option<Field> {
    let mut f = [0u8; FIELD_LEN];
    f.copy_from_slice(&b[at..at + FIELD_LEN]);
    Field::from_raw(f)
}

/// An image record (uid, version, SHA-256, length) at `at`, with the release counter kept
/// for it elsewhere.
#[inline]
fn image_at(b: &[u8; STATE_LEN], at: usize, release_counter: u64) -> Option<ImageInfo> {
    Some(ImageInfo {
        uid: field_at(b, at)?,
        version: field_at(b, at + 32)?,
        sha256: sha256_at(b, at + 64),
        length: u64_at(b, at + 96),
        release_counter,
    })
}

/// The trial: the boots it has taken, and the image it returns to if there is one.
#[inline]
fn trial_at(b: &[u8; STATE_LEN], release_counter: u64) -> Option<Trial> {
    Some(Trial {
        boots: b[288],
        previous: if b[289] == 1 {
            Some(image_at(b, 304, release_counter)?)
        } else {
            None
        },
    })
}

/// The image the bootloader returned from, and why.
#[inline]
fn reverted_at(b: &[u8; STATE_LEN]) -> Option<Reverted> {
    Some(Reverted {
        uid: field_at(b, 408)?,
        version: field_at(b, 440)?,
        sha256: sha256_at(b, 472),
        reason: RevertReason::from_u8(b[290])?,
    })
}

/// The trust record: which copy holds the trust document, its version, length and SHA-256.
#[inline]
fn trust_at(b: &[u8; STATE_LEN]) -> TrustRecord {
    TrustRecord {
        copy: b[240] & 1,
        version: u32_at(b, 244),
        length: u32_at(b, 248),
        sha256: sha256_at(b, 252),
    }
}

/// The revert history: `None` if it claims more entries than it holds.
#[inline]
fn revert_history_at(b: &[u8; STATE_LEN]) -> Option<RevertHistory> {
    let len = b[504];
    if usize::from(len) > REVERT_HISTORY {
        return None;
    }
    let mut prefixes = [[0u8; 8]; REVERT_HISTORY];
    for (i, p) in prefixes.iter_mut().enumerate() {
        p.copy_from_slice(&b[512 + 8 * i..520 + 8 * i]);
    }
    Some(RevertHistory { len, prefixes })
}

impl EcuState {
    /// A factory-fresh ECU: slot A, nothing installed, counter 0.
    pub const fn blank() -> Self {
        EcuState {
            sequence: 0,
            active: Slot::A,
            image: None,
            release_counter: 0,
            pending: None,
            trust: None,
            instruction_sequence: 0,
            trial: None,
            reverted: None,
            revert_history: RevertHistory {
                len: 0,
                prefixes: [[0; 8]; REVERT_HISTORY],
            },
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
            put_image(&mut b[24..128], i);
        }
        if let Some(p) = &self.pending {
            b[9] |= 2;
            b[128..160].copy_from_slice(p.uid.as_bytes());
            b[160..192].copy_from_slice(p.version.as_bytes());
            b[192..224].copy_from_slice(&p.sha256);
            b[224..232].copy_from_slice(&p.length.to_be_bytes());
            b[232..240].copy_from_slice(&p.release_counter.to_be_bytes());
        }
        if let Some(t) = &self.trust {
            b[9] |= 4;
            b[240] = t.copy & 1;
            b[244..248].copy_from_slice(&t.version.to_be_bytes());
            b[248..252].copy_from_slice(&t.length.to_be_bytes());
            b[252..284].copy_from_slice(&t.sha256);
        }
        b[284..288].copy_from_slice(&self.instruction_sequence.to_be_bytes());
        if let Some(t) = &self.trial {
            b[9] |= 8;
            b[288] = t.boots;
            let counter = self.image.map_or(0, |i| i.release_counter);
            b[296..304].copy_from_slice(&counter.to_be_bytes());
            if let Some(p) = &t.previous {
                b[289] = 1;
                put_image(&mut b[304..408], p);
            }
        }
        if let Some(r) = &self.reverted {
            b[9] |= 16;
            b[290] = r.reason as u8;
            b[408..440].copy_from_slice(r.uid.as_bytes());
            b[440..472].copy_from_slice(r.version.as_bytes());
            b[472..504].copy_from_slice(&r.sha256);
        }
        b[504] = self.revert_history.len;
        for (i, p) in self.revert_history.prefixes.iter().enumerate() {
            b[512 + 8 * i..520 + 8 * i].copy_from_slice(p);
        }
        let sum: [u8; 32] = Sha256::digest(&b[..SUM_AT]).into();
        b[SUM_AT..SUM_AT + 32].copy_from_slice(&sum);
        b
    }

    /// A stored copy, if it is one: a known layout (by its magic) with a matching checksum.
    /// Fields a layout does not have take their defaults (no pending image before version 2,
    /// no trust record or instruction sequence before version 3, no trial, revert or revert
    /// history before the current one).
    fn decode(b: &[u8; STATE_LEN]) -> Option<Self> {
        let sum_at = checked_sum_at(b)?;
        let active = Slot::from_index(b[8])?;
        let release_counter = u64_at(b, 16);
        let current = sum_at == SUM_AT;
        let with_trust = sum_at == SUM_AT || sum_at == SUM_AT_V3;
        let on_trial = current && b[9] & 8 == 8;
        let image = if b[9] & 1 == 1 {
            // On trial, the image's own counter (not final yet) is kept beside the state's.
            let counter = if on_trial {
                u64_at(b, 296)
            } else {
                release_counter
            };
            Some(image_at(b, 24, counter)?)
        } else {
            None
        };
        let trial = if on_trial {
            Some(trial_at(b, release_counter)?)
        } else {
            None
        };
        let reverted = if current && b[9] & 16 == 16 {
            Some(reverted_at(b)?)
        } else {
            None
        };
        let pending = if sum_at != SUM_AT_V1 && b[9] & 2 == 2 {
            Some(image_at(b, 128, u64_at(b, 232))?)
        } else {
            None
        };
        let trust = if with_trust && b[9] & 4 == 4 {
            Some(trust_at(b))
        } else {
            None
        };
        Some(EcuState {
            sequence: u32_at(b, 4),
            active,
            image,
            release_counter,
            pending,
            trust,
            instruction_sequence: if with_trust { u32_at(b, 284) } else { 0 },
            trial,
            reverted,
            revert_history: if current {
                revert_history_at(b)?
            } else {
                RevertHistory::default()
            },
        })
    }

    /// What the two copies hold: the newest valid one, a never-written (blank) state, or a
    /// lost one (see the module documentation).
    pub fn read<F: Flash>(flash: &mut F) -> Result<Stored, F::Error> {
        let mut newest: Option<EcuState> = None;
        let mut copy1_erased = false;
        for copy in 0..2u8 {
            let mut buf = [0u8; STATE_LEN];
            flash.read_state(copy, &mut buf)?;
            if let Some(s) = Self::decode(&buf) {
                if newest.is_none_or(|n| s.sequence > n.sequence) {
                    newest = Some(s);
                }
            } else if copy == 1 {
                copy1_erased = is_erased(&buf);
            }
        }
        Ok(match newest {
            Some(s) => Stored::Valid(s),
            None if copy1_erased => Stored::Blank,
            None => Stored::Lost,
        })
    }

    /// The newest valid copy, or a blank state for a never-written one; an error if the state
    /// was written and both copies are now invalid.
    pub fn load<F: Flash>(flash: &mut F) -> Result<Self, LoadError<F::Error>> {
        match Self::read(flash).map_err(LoadError::Flash)? {
            Stored::Valid(s) => Ok(s),
            Stored::Blank => Ok(Self::blank()),
            Stored::Lost => Err(LoadError::Lost),
        }
    }

    /// Persist `next` as the state after `self`: sequence + 1, written to the copy that does
    /// not hold `self`. From a blank state whose copy 0 is not valid yet, the blank state is
    /// written there first (see the module documentation).
    pub fn commit<F: Flash>(
        &self,
        flash: &mut F,
        mut next: EcuState,
    ) -> Result<EcuState, F::Error> {
        if self.sequence == 0 {
            let mut buf = [0u8; STATE_LEN];
            flash.read_state(0, &mut buf)?;
            if Self::decode(&buf).is_none() {
                flash.write_state(0, &self.encode())?;
            }
        }
        next.sequence = self.sequence.wrapping_add(1);
        // Copy for sequence n is n % 2: the current state's copy is never overwritten.
        let copy = (next.sequence & 1) as u8;
        flash.write_state(copy, &next.encode())?;
        Ok(next)
    }
}

/// An image record (uid, version, SHA-256, length: 104 bytes) at the start of `b`.
fn put_image(b: &mut [u8], i: &ImageInfo) {
    b[0..32].copy_from_slice(i.uid.as_bytes());
    b[32..64].copy_from_slice(i.version.as_bytes());
    b[64..96].copy_from_slice(&i.sha256);
    b[96..104].copy_from_slice(&i.length.to_be_bytes());
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
    fn a_blank_ecu_starts_at_zero_but_a_lost_state_is_an_error() {
        let mut f = MemFlash::new(1024);
        assert_eq!(EcuState::read(&mut f).unwrap(), Stored::Blank);
        f.state = [[0xFF; STATE_LEN], [0xFF; STATE_LEN]];
        assert_eq!(EcuState::load(&mut f).unwrap(), EcuState::blank());
        // Written before, now garbage or a bad checksum in both copies: lost, not blank.
        f.state = [[0xAB; STATE_LEN], [0x00; STATE_LEN]];
        let mut b = EcuState {
            image: Some(info(1)),
            release_counter: 1,
            ..EcuState::blank()
        }
        .encode();
        b[20] ^= 1; // flip a bit: checksum fails
        f.state[1] = b;
        assert_eq!(EcuState::read(&mut f).unwrap(), Stored::Lost);
        assert_eq!(EcuState::load(&mut f), Err(LoadError::Lost));
        f.state[0] = [0; STATE_LEN];
        assert_eq!(EcuState::load(&mut f), Err(LoadError::Lost));
    }

    #[test]
    fn the_first_commit_survives_a_power_cut_at_every_write() {
        let next = EcuState {
            active: Slot::B,
            image: Some(info(3)),
            release_counter: 3,
            ..EcuState::blank()
        };
        for cut in 0..3 {
            let mut f = MemFlash::new(1024);
            f.writes_left = Some(cut);
            let s0 = EcuState::load(&mut f).unwrap();
            let done = s0.commit(&mut f, next).is_ok();
            f.power_on();
            let s = EcuState::load(&mut f).unwrap();
            if done {
                assert_eq!(s.release_counter, 3);
            } else {
                assert_eq!(s.release_counter, 0, "cut {cut}");
                let s1 = s.commit(&mut f, next).unwrap();
                assert_eq!(EcuState::load(&mut f).unwrap(), s1);
            }
        }
    }

    #[test]
    fn a_pending_image_round_trips_and_the_first_layout_still_reads() {
        let mut f = MemFlash::new(1024);
        let s0 = EcuState::load(&mut f).unwrap();
        let pending = ImageInfo {
            release_counter: 9,
            ..info(9)
        };
        let s1 = s0
            .commit(
                &mut f,
                EcuState {
                    image: Some(info(3)),
                    release_counter: 3,
                    pending: Some(pending),
                    ..s0
                },
            )
            .unwrap();
        assert_eq!(EcuState::load(&mut f).unwrap(), s1);
        assert_eq!(s1.pending, Some(pending));

        // A copy in the first layout (160 bytes, `OTAS`, checksum over 0..128).
        let mut old = [0u8; STATE_LEN];
        old[0..4].copy_from_slice(b"OTAS");
        old[4..8].copy_from_slice(&7u32.to_be_bytes());
        old[8] = 1;
        old[9] = 1;
        old[16..24].copy_from_slice(&5u64.to_be_bytes());
        old[24..56].copy_from_slice(info(5).uid.as_bytes());
        old[56..88].copy_from_slice(info(5).version.as_bytes());
        old[88..120].copy_from_slice(&[7; 32]);
        old[120..128].copy_from_slice(&1234u64.to_be_bytes());
        let sum: [u8; 32] = Sha256::digest(&old[..128]).into();
        old[128..160].copy_from_slice(&sum);
        let mut f = MemFlash::new(1024);
        f.state[1] = old;
        let s = EcuState::load(&mut f).unwrap();
        assert_eq!(
            (s.sequence, s.active, s.release_counter, s.image, s.pending),
            (7, Slot::B, 5, Some(info(5)), None)
        );
        // The next commit writes the current layout to the other copy, and it wins.
        let s2 = s
            .commit(
                &mut f,
                EcuState {
                    pending: Some(pending),
                    ..s
                },
            )
            .unwrap();
        assert_eq!(&f.state[0][0..4], b"OTA4");
        assert_eq!(EcuState::load(&mut f).unwrap(), s2);
    }
}
