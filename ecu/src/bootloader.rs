//! The bootloader's state machine: verify the compact manifest (supplier signature, hardware
//! id, release counter, size) before accepting any data; write the inactive slot while hashing;
//! activate it only when the whole image is there and its SHA-256 matches; and keep the active
//! slot and release counter in power-loss-safe state. Until activation the previous image stays
//! the active, bootable one.

use crate::compact_manifest::{Body, CompactManifest, Field, ProvisionedKey};
use crate::flash::{Flash, Slot};
use crate::state::{EcuState, ImageInfo, Stored};
use sha2::{Digest, Sha256};

/// Why the bootloader refused a request (each maps to a UDS negative response code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The manifest is malformed.
    BadManifest,
    /// Not signed by a threshold of the provisioned supplier keys.
    BadSignature,
    /// The image is not built for this ECU's hardware id.
    WrongHardwareId,
    /// The release counter is below the installed one.
    Rollback,
    /// Bigger than a slot, or more data than the manifest announced.
    TooLarge,
    /// The received image does not hash to the manifest's SHA-256 (or is short).
    HashMismatch,
    /// A request out of order (data before a download was requested, ...).
    Sequence,
    /// A data block with the wrong block sequence counter.
    WrongBlock,
    /// The flash failed (or lost power); the previous image stays active.
    Programming,
    /// Both copies of the persistent state are invalid although it was written before: the
    /// installed release counter is unknown, so nothing is installed until the state is
    /// restored (starting again from 0 would let a rollback in).
    StateLost,
}

/// The ECU's identity and trust anchors.
pub struct Identity<'k> {
    pub hardware_id: Field,
    /// The supplier keys provisioned at the factory, and how many must have signed.
    pub keys: &'k [ProvisionedKey],
    pub threshold: u8,
}

// One session lives inside the bootloader for its whole life; boxing the big variant would
// only move it to the heap the ECU keeps for RSA.
#[allow(clippy::large_enum_variant)]
enum Session {
    Idle,
    Receiving {
        body: Body,
        slot: Slot,
        received: u64,
        hasher: Sha256,
        next_block: u8,
    },
}

pub struct Bootloader<'k, F: Flash> {
    flash: F,
    identity: Identity<'k>,
    state: EcuState,
    /// The persistent state was written before and no copy is valid now (see [`Refusal::StateLost`]).
    lost: bool,
    session: Session,
}

/// Largest data block accepted in one transfer request. 4092 bytes plus the two-byte UDS
/// header make 4094-byte messages that fill every ISO-TP frame, classic (6 + 584×7) and FD
/// (62 + 64×63): 4093 would leave a last frame with one byte.
pub const MAX_BLOCK: usize = 4092;

impl<'k, F: Flash> Bootloader<'k, F> {
    /// Start up: read the persistent state (the newest valid copy). A lost state still starts
    /// (so the ECU can answer and report), but refuses every download.
    pub fn new(mut flash: F, identity: Identity<'k>) -> Result<Self, F::Error> {
        let (state, lost) = match EcuState::read(&mut flash)? {
            Stored::Valid(s) => (s, false),
            Stored::Blank => (EcuState::blank(), false),
            Stored::Lost => (EcuState::blank(), true),
        };
        Ok(Bootloader {
            flash,
            identity,
            state,
            lost,
            session: Session::Idle,
        })
    }

    /// The persistent state; blank if it is lost ([`Bootloader::state_lost`]).
    pub fn state(&self) -> &EcuState {
        &self.state
    }

    /// Whether the persistent state was written before and no copy of it is valid now: every
    /// download is refused with [`Refusal::StateLost`] until a valid state is restored.
    pub fn state_lost(&self) -> bool {
        self.lost
    }

    pub fn hardware_id(&self) -> Field {
        self.identity.hardware_id
    }

    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    pub fn into_flash(self) -> F {
        self.flash
    }

    /// A download request carrying the compact manifest. On success the inactive slot is
    /// erased and data blocks are expected, starting with block counter 1.
    pub fn request_download(&mut self, manifest: &[u8]) -> Result<(), Refusal> {
        // A new request abandons any transfer in progress (the old image is still active).
        self.session = Session::Idle;
        if self.lost {
            return Err(Refusal::StateLost);
        }
        let m = CompactManifest::parse(manifest).map_err(|_| Refusal::BadManifest)?;
        m.verify(self.identity.keys, self.identity.threshold)
            .map_err(|_| Refusal::BadSignature)?;
        if !m.body.fits(self.identity.hardware_id.as_str()) {
            return Err(Refusal::WrongHardwareId);
        }
        if m.body.release_counter < self.state.release_counter {
            return Err(Refusal::Rollback);
        }
        if m.body.length > self.flash.slot_size() {
            return Err(Refusal::TooLarge);
        }
        let slot = self.state.active.other();
        self.flash
            .erase_slot(slot)
            .map_err(|_| Refusal::Programming)?;
        self.session = Session::Receiving {
            body: m.body,
            slot,
            received: 0,
            hasher: Sha256::new(),
            next_block: 1,
        };
        Ok(())
    }

    /// One data block, numbered by the wrapping block sequence counter (1, 2, …, 255, 0, 1, …).
    pub fn transfer_data(&mut self, block: u8, data: &[u8]) -> Result<(), Refusal> {
        let Session::Receiving {
            body,
            slot,
            received,
            hasher,
            next_block,
        } = &mut self.session
        else {
            return Err(Refusal::Sequence);
        };
        if block != *next_block {
            return Err(Refusal::WrongBlock);
        }
        if data.len() > MAX_BLOCK {
            return Err(Refusal::TooLarge);
        }
        let end = received
            .checked_add(data.len() as u64)
            .ok_or(Refusal::TooLarge)?;
        if end > body.length {
            self.session = Session::Idle;
            return Err(Refusal::TooLarge);
        }
        if self.flash.write_slot(*slot, *received, data).is_err() {
            self.session = Session::Idle;
            return Err(Refusal::Programming);
        }
        hasher.update(data);
        *received = end;
        *next_block = next_block.wrapping_add(1);
        Ok(())
    }

    /// End of the transfer: check the length and hash, then activate the new slot and raise the
    /// release counter, in one power-loss-safe state write.
    pub fn transfer_exit(&mut self) -> Result<ImageInfo, Refusal> {
        let session = core::mem::replace(&mut self.session, Session::Idle);
        let Session::Receiving {
            body,
            slot,
            received,
            hasher,
            ..
        } = session
        else {
            return Err(Refusal::Sequence);
        };
        if received != body.length {
            return Err(Refusal::HashMismatch);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if digest != body.sha256 {
            return Err(Refusal::HashMismatch);
        }
        let info = ImageInfo {
            uid: body.uid,
            version: body.version,
            sha256: digest,
            length: body.length,
            release_counter: body.release_counter,
        };
        let next = EcuState {
            active: slot,
            image: Some(info),
            release_counter: self.state.release_counter.max(body.release_counter),
            ..self.state
        };
        self.state = self
            .state
            .commit(&mut self.flash, next)
            .map_err(|_| Refusal::Programming)?;
        Ok(info)
    }

    /// Re-hash the active slot: what a boot would check before jumping to the image.
    pub fn verify_active(&mut self) -> Result<bool, F::Error> {
        let Some(info) = self.state.image else {
            return Ok(false);
        };
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 512];
        let mut off = 0u64;
        while off < info.length {
            let want =
                usize::try_from((info.length - off).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = self
                .flash
                .read_slot(self.state.active, off, &mut buf[..want])?;
            if n == 0 {
                return Ok(false);
            }
            hasher.update(&buf[..n]);
            off += n as u64;
        }
        let digest: [u8; 32] = hasher.finalize().into();
        Ok(digest == info.sha256)
    }
}
