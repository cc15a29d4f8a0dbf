//! The bootloader's state machine: verify the compact manifest (supplier signature, hardware
//! id, release counter, size) before accepting any data; write the inactive slot while hashing;
//! when the whole image is there and its SHA-256 matches, record it as *pending* (verified,
//! not active); switch to it only on an explicit [`Bootloader::activate`], and keep the active
//! slot, the pending image and the release counter in power-loss-safe state. Until activation
//! the previous image stays the active, bootable one, and [`Bootloader::discard`] drops the
//! pending one.
//!
//! Activation is a *trial*: the new image becomes the active one, and the next start-ups run
//! it, but the release counter stays where it was and the previous image stays untouched in
//! the other slot until the new image confirms itself ([`Bootloader::confirm`], called by the
//! image after its own start-up checks). At each start-up ([`Bootloader::boot`], told why the
//! core reset) the bootloader counts the trial's boots; a watchdog or fault reset of the trial
//! image, [`MAX_TRIAL_BOOTS`] starts without a confirmation, or a trial slot that no longer
//! hashes to what was verified make it return to the previous image by itself and remember
//! which image it left and why ([`crate::state::Reverted`]): those bytes are refused from then
//! on, so a reverted image never runs again on this ECU (a fixed build has other bytes). The
//! previous image is not returned to if a trust document's floor revoked it since: the ECU
//! then stays in its bootloader, waiting for an update, rather than run a revoked release.
//!
//! The split is what lets a gateway update several ECUs all or nothing: it distributes every
//! image first, and activates only when every ECU holds its image verified and pending
//! (otherwise it discards them all). Activation is idempotent (activating the image that is
//! already active succeeds) so a gateway that lost power half-way through activating can
//! simply activate every ECU again.

use crate::compact_manifest::{Body, CompactManifest, Field, ProvisionedKey};
use crate::delta::{self, Decoder, Encoding};
use crate::flash::TRUST_LEN;
use crate::flash::{Flash, Slot};
use crate::instruction::{self, Instruction};
use crate::state::{EcuState, ImageInfo, RevertReason, Reverted, Stored, Trial, TrustRecord};
use crate::trust::{self, Mode, TrustDocument};
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
    /// The release counter is below the installed one, or below the trust document's floor
    /// (a release the OEM revoked).
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
    /// Activation of an image that is neither pending (verified in the inactive slot) nor
    /// already active.
    NothingPending,
    /// Both copies of the persistent state are invalid although it was written before: the
    /// installed release counter is unknown, so nothing is installed until the state is
    /// restored (starting again from 0 would let a rollback in).
    StateLost,
    /// A trust document that does not parse (or exceeds the trust area).
    TrustMalformed,
    /// A trust document not signed by a threshold of the held document's signers and of its
    /// own, or (at provisioning) of its own.
    TrustSignature,
    /// A trust document older than the held one, or another document of the same version.
    TrustDowngrade,
    /// A trust document sent over the bus to an ECU that holds none: the first anchor is
    /// installed at provisioning only, never by whoever talks on the bus.
    NoTrustAnchor,
    /// Full verification: the regulators' approval (a threshold of distinct regulator keys of
    /// the trust document over the manifest) is missing or insufficient.
    NotApproved,
    /// The trust document names instruction keys and no instruction was given for this
    /// download ([`crate::instruction`]).
    InstructionMissing,
    /// A download while the active image is on trial: it would erase the image the
    /// bootloader returns to if the trial fails.
    OnTrial,
    /// The image is the one this ECU reverted from (it failed its trial here).
    Reverted,
    /// The instruction is malformed, not signed by an instruction key of the trust document,
    /// for another ECU or another manifest, or older than one this ECU accepted.
    InstructionRejected,
    /// The data is not a well-formed packed image or delta ([`crate::delta`]).
    BadEncoding,
    /// A delta against another image than the active one (or with no image active).
    WrongBase,
}

impl From<trust::Error> for Refusal {
    fn from(e: trust::Error) -> Refusal {
        match e {
            trust::Error::WrongHardwareId => Refusal::WrongHardwareId,
            trust::Error::Downgrade { .. } => Refusal::TrustDowngrade,
            trust::Error::NotSignedByCurrent | trust::Error::NotSelfSigned => {
                Refusal::TrustSignature
            }
            _ => Refusal::TrustMalformed,
        }
    }
}

/// The ECU's identity and trust anchors.
pub struct Identity<'k> {
    pub hardware_id: Field,
    /// The supplier keys provisioned at the factory, and how many must have signed: the legacy
    /// anchor, used only while no trust document is held ([`Bootloader::provision_trust`]).
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
        /// Image bytes written to the slot (and hashed) so far.
        written: u64,
        hasher: Sha256,
        next_block: u8,
        /// How the data blocks carry the image.
        decoder: Decoder,
    },
}

/// The inactive slot being written, as a delta's target: what comes out is written after what
/// came before and hashed, never past the manifest's length; the base is the active slot.
struct SlotWriter<'a, F: Flash> {
    flash: &'a mut F,
    slot: Slot,
    written: &'a mut u64,
    length: u64,
    hasher: &'a mut Sha256,
}

impl<F: Flash> delta::Target for SlotWriter<'_, F> {
    type Error = F::Error;

    fn emit(&mut self, bytes: &[u8]) -> Result<(), delta::Error<F::Error>> {
        let end = self
            .written
            .checked_add(bytes.len() as u64)
            .filter(|end| *end <= self.length)
            .ok_or(delta::Error::TooLong)?;
        self.flash
            .write_slot(self.slot, *self.written, bytes)
            .map_err(delta::Error::Storage)?;
        self.hasher.update(bytes);
        *self.written = end;
        Ok(())
    }

    fn read_base(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), F::Error> {
        let mut done = 0;
        while done < buf.len() {
            let n =
                self.flash
                    .read_slot(self.slot.other(), offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                // The base is shorter than its record says: leave zeros; the hash check
                // refuses what comes out.
                break;
            }
            done += n;
        }
        Ok(())
    }
}

impl<E> From<delta::Error<E>> for Refusal {
    fn from(e: delta::Error<E>) -> Refusal {
        match e {
            delta::Error::Malformed => Refusal::BadEncoding,
            delta::Error::WrongBase => Refusal::WrongBase,
            delta::Error::TooLong => Refusal::TooLarge,
            delta::Error::Storage(_) => Refusal::Programming,
        }
    }
}

pub struct Bootloader<'k, F: Flash> {
    flash: F,
    identity: Identity<'k>,
    state: EcuState,
    /// The persistent state was written before and no copy is valid now (see [`Refusal::StateLost`]).
    lost: bool,
    /// The trust document in force (its record is in `state.trust`).
    trust: Option<TrustDocument>,
    /// The OEM's instruction for the next download, verified when it was given.
    instruction: Option<Instruction>,
    session: Session,
}

/// Starts of an image on trial without a confirmation before the bootloader returns to the
/// previous image (power cuts during start-up count: three allow for two of them).
pub const MAX_TRIAL_BOOTS: u8 = 3;

/// Why the core (re)started, as the board's reset-cause register tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// Power on, or an ordinary reset (the bootloader's own after an activation).
    PowerOn,
    /// The watchdog expired.
    Watchdog,
    /// A fault or lockup reset the core.
    Fault,
}

/// What a start-up runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// The active image; `trial` while it has not confirmed itself.
    Image { info: ImageInfo, trial: bool },
    /// No image to run: stay in the bootloader, waiting for an update.
    Bootloader,
}

/// Largest data block accepted in one transfer request. 4092 bytes plus the two-byte UDS
/// header make 4094-byte messages that fill every ISO-TP frame, classic (6 + 584×7) and FD
/// (62 + 64×63): 4093 would leave a last frame with one byte.
pub const MAX_BLOCK: usize = 4092;

impl<'k, F: Flash> Bootloader<'k, F> {
    /// Start up: read the persistent state (the newest valid copy). A lost state still starts
    /// (so the ECU can answer and report), but refuses every download.
    // Never inlined: see `update_trust`.
    #[inline(never)]
    pub fn new(mut flash: F, identity: Identity<'k>) -> Result<Self, F::Error> {
        let (state, mut lost) = match EcuState::read(&mut flash)? {
            Stored::Valid(s) => (s, false),
            Stored::Blank => (EcuState::blank(), false),
            Stored::Lost => (EcuState::blank(), true),
        };
        let mut trust = None;
        if let Some(rec) = state.trust {
            // A recorded document that is gone or altered is lost trust: falling back to the
            // factory keys would bring back keys the document may have revoked.
            match load_trust(&mut flash, &rec)? {
                Some(t) => trust = Some(t),
                None => lost = true,
            }
        }
        Ok(Bootloader {
            flash,
            identity,
            state,
            lost,
            trust,
            instruction: None,
            session: Session::Idle,
        })
    }

    /// The trust document in force, if any.
    pub fn trust(&self) -> Option<&TrustDocument> {
        self.trust.as_ref()
    }

    /// The held trust document's version and mode; `(0, Partial)` without one.
    pub fn trust_version(&self) -> (u32, Mode) {
        self.trust
            .as_ref()
            .map_or((0, Mode::Partial), |t| (t.version, t.mode))
    }

    /// Install the first trust document (a factory or workshop operation, never over the
    /// bus): for this ECU's hardware id and signed by a threshold of its own signer keys. With
    /// a document already held this is an ordinary update ([`Bootloader::update_trust`]).
    // Never inlined: on a microcontroller its large locals (a parsed trust document or
    // manifest) take stack only while it runs, not in every caller's frame.
    #[inline(never)]
    pub fn provision_trust(&mut self, bytes: &[u8]) -> Result<u32, Refusal> {
        if self.trust.is_some() {
            return self.update_trust(bytes);
        }
        if self.lost {
            return Err(Refusal::StateLost);
        }
        let doc = TrustDocument::provision(bytes, self.identity.hardware_id.as_str())?;
        self.store_trust(bytes, doc)
    }

    /// A trust document from the bus: the successor of the held one (see [`crate::trust`]),
    /// stored power-loss safely. The held document again is accepted without a write.
    // Never inlined: on a microcontroller its large locals (a parsed trust document or
    // manifest) take stack only while it runs, not in every caller's frame.
    #[inline(never)]
    pub fn update_trust(&mut self, bytes: &[u8]) -> Result<u32, Refusal> {
        self.session = Session::Idle;
        if self.lost {
            return Err(Refusal::StateLost);
        }
        let Some(held) = &self.trust else {
            return Err(Refusal::NoTrustAnchor);
        };
        let doc = held.accept(bytes)?;
        if doc.version == held.version {
            return Ok(doc.version);
        }
        self.store_trust(bytes, doc)
    }

    /// Write `bytes` to the trust copy the state does not name, then commit the state naming
    /// it: a power cut in between leaves the previous document in force.
    fn store_trust(&mut self, bytes: &[u8], doc: TrustDocument) -> Result<u32, Refusal> {
        if bytes.len() > TRUST_LEN {
            return Err(Refusal::TrustMalformed);
        }
        // An instruction held was verified under the keys of the document being replaced.
        self.instruction = None;
        let copy = self.state.trust.map_or(0, |t| (t.copy ^ 1) & 1);
        self.flash
            .write_trust(copy, bytes)
            .map_err(|_| Refusal::Programming)?;
        let version = doc.version;
        self.commit(EcuState {
            trust: Some(TrustRecord {
                copy,
                version,
                // At most TRUST_LEN (checked above).
                length: bytes.len() as u32,
                sha256: Sha256::digest(bytes).into(),
            }),
            ..self.state
        })?;
        self.trust = Some(doc);
        Ok(version)
    }

    /// The lowest release counter accepted: the installed one, or the trust document's floor
    /// if that is higher.
    fn floor(&self) -> u64 {
        let raised = self.trust.as_ref().map_or(0, |t| t.min_release_counter);
        self.state.release_counter.max(raised)
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
        self.request_download_attested(manifest, None)
    }

    /// [`Bootloader::request_download`] with the regulators' compact attestation bundle (see
    /// [`crate::attestation`]): required, and checked against the trust document's regulator
    /// keys, when the trust document asks for full verification; ignored in partial mode.
    // Never inlined: on a microcontroller its large locals (a parsed trust document or
    // manifest) take stack only while it runs, not in every caller's frame.
    #[inline(never)]
    pub fn request_download_attested(
        &mut self,
        manifest: &[u8],
        bundle: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        self.request_download_encoded(manifest, bundle, Encoding::Plain)
    }

    /// [`Bootloader::request_download_attested`] with the data blocks carrying the image in
    /// `encoding` ([`crate::delta`]): what they decode to is written, hashed and checked as a
    /// plain image is. A delta is against the active image.
    // Never inlined: see `request_download_attested`.
    #[inline(never)]
    pub fn request_download_encoded(
        &mut self,
        manifest: &[u8],
        bundle: Option<&[u8]>,
        encoding: Encoding,
    ) -> Result<(), Refusal> {
        // A new request abandons any transfer in progress (the old image is still active).
        self.session = Session::Idle;
        if self.lost {
            return Err(Refusal::StateLost);
        }
        if self.state.trial.is_some() {
            return Err(Refusal::OnTrial);
        }
        let m = CompactManifest::parse(manifest).map_err(|_| Refusal::BadManifest)?;
        match &self.trust {
            Some(t) => m.verify(&t.suppliers.keys, t.suppliers.threshold),
            None => m.verify(self.identity.keys, self.identity.threshold),
        }
        .map_err(|_| Refusal::BadSignature)?;
        if let Some(t) = self.trust.as_ref().filter(|t| t.mode == Mode::Full) {
            let bundle = bundle.ok_or(Refusal::NotApproved)?;
            crate::attestation::verify(bundle, &m.body_bytes, &t.regulators)
                .map_err(|_| Refusal::NotApproved)?;
        }
        if !m.body.fits(self.identity.hardware_id.as_str()) {
            return Err(Refusal::WrongHardwareId);
        }
        if m.body.release_counter < self.floor() {
            return Err(Refusal::Rollback);
        }
        if self
            .state
            .reverted
            .is_some_and(|r| r.sha256 == m.body.sha256)
            || self.state.revert_history.contains(&m.body.sha256)
        {
            return Err(Refusal::Reverted);
        }
        if m.body.length > self.flash.slot_size() {
            return Err(Refusal::TooLarge);
        }
        self.follow_instruction(&m)?;
        // The inactive slot is about to be erased: forget the image pending there first.
        self.drop_pending()?;
        let slot = self.state.active.other();
        self.flash
            .erase_slot(slot)
            .map_err(|_| Refusal::Programming)?;
        let base = self.state.image.map(|i| delta::Base {
            length: i.length,
            sha256: i.sha256,
        });
        self.session = Session::Receiving {
            body: m.body,
            slot,
            written: 0,
            hasher: Sha256::new(),
            next_block: 1,
            decoder: Decoder::new(encoding, base),
        };
        Ok(())
    }

    /// Hold the OEM's instruction `bytes` for the next download, after checking that an
    /// instruction key of the trust document signed it, that it names this ECU (`serial`),
    /// and that its sequence is not below the highest accepted. Without instruction keys (a
    /// legacy trust document, or none) the instruction is not needed and is ignored.
    pub fn hold_instruction(&mut self, bytes: &[u8], serial: &str) -> Result<(), Refusal> {
        self.instruction = None;
        let Some(t) = self
            .trust
            .as_ref()
            .filter(|t| !t.instruction_keys.is_empty())
        else {
            return Ok(());
        };
        let i = instruction::verify(bytes, &t.instruction_keys)
            .map_err(|_| Refusal::InstructionRejected)?;
        let serial_sha256: [u8; 32] = Sha256::digest(serial.as_bytes()).into();
        if i.serial_sha256 != serial_sha256 || i.sequence < self.state.instruction_sequence {
            return Err(Refusal::InstructionRejected);
        }
        // A newer instruction seen is a floor at once: an older one offered next (an
        // assignment the OEM replaced) is refused, whether or not this one's image follows.
        if i.sequence > self.state.instruction_sequence {
            let mut next = self.state;
            next.instruction_sequence = i.sequence;
            self.commit(next)?;
        }
        self.instruction = Some(i);
        Ok(())
    }

    /// With instruction keys in the trust document: the held instruction must name this
    /// manifest and its release counter; it is used up. Its sequence needs no check here:
    /// [`Bootloader::hold_instruction`], the only place an instruction is held, refused it
    /// below the accepted sequence and recorded a higher one before holding it, the recorded
    /// sequence never falls, and a new trust document drops what is held. So an older
    /// instruction is refused from then on whatever happens to this download. (Mutation
    /// testing showed a second check and write here could never change an outcome.)
    fn follow_instruction(&mut self, m: &CompactManifest) -> Result<(), Refusal> {
        if self
            .trust
            .as_ref()
            .is_none_or(|t| t.instruction_keys.is_empty())
        {
            return Ok(());
        }
        let i = self.instruction.take().ok_or(Refusal::InstructionMissing)?;
        let manifest_sha256: [u8; 32] = Sha256::digest(m.body_bytes).into();
        if i.manifest_sha256 != manifest_sha256 || i.release_counter != m.body.release_counter {
            return Err(Refusal::InstructionRejected);
        }
        Ok(())
    }

    /// One data block, numbered by the wrapping block sequence counter (1, 2, …, 255, 0, 1, …).
    pub fn transfer_data(&mut self, block: u8, data: &[u8]) -> Result<(), Refusal> {
        let Session::Receiving {
            body,
            slot,
            written,
            hasher,
            next_block,
            decoder,
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
        let mut target = SlotWriter {
            flash: &mut self.flash,
            slot: *slot,
            written,
            length: body.length,
            hasher,
        };
        if let Err(e) = decoder.feed(data, &mut target) {
            // Whatever was written stays unverified in the inactive slot: nothing points at it.
            self.session = Session::Idle;
            return Err(e.into());
        }
        *next_block = next_block.wrapping_add(1);
        Ok(())
    }

    /// End of the transfer: check the length and hash, then record the image as pending in
    /// one power-loss-safe state write. The active slot and the release counter stay as they
    /// are until [`Bootloader::activate`].
    pub fn transfer_exit(&mut self) -> Result<ImageInfo, Refusal> {
        let session = core::mem::replace(&mut self.session, Session::Idle);
        let Session::Receiving {
            body,
            written,
            hasher,
            decoder,
            ..
        } = session
        else {
            return Err(Refusal::Sequence);
        };
        decoder.finish::<()>()?;
        if written != body.length {
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
        self.commit(EcuState {
            pending: Some(info),
            ..self.state
        })?;
        Ok(info)
    }

    /// Make the image of SHA-256 `sha256` the active one: the pending image, re-hashed in its
    /// slot first, becomes active and the release counter rises to its counter, in one
    /// power-loss-safe state write. Idempotent: if that image is already the active one, this
    /// succeeds without writing anything.
    pub fn activate(&mut self, sha256: &[u8; 32]) -> Result<ImageInfo, Refusal> {
        self.session = Session::Idle;
        if self.lost {
            return Err(Refusal::StateLost);
        }
        match (self.state.pending, self.state.image) {
            (Some(p), _) if p.sha256 == *sha256 => {
                // The floor may have risen since the image was staged (a revocation).
                if p.release_counter < self.floor() {
                    return Err(Refusal::Rollback);
                }
                let slot = self.state.active.other();
                let intact = self
                    .slot_matches(slot, &p)
                    .map_err(|_| Refusal::Programming)?;
                if !intact {
                    // The slot no longer holds what was verified: never boot it.
                    self.drop_pending()?;
                    return Err(Refusal::HashMismatch);
                }
                // On trial: the counter becomes final when the image confirms itself.
                self.commit(EcuState {
                    active: slot,
                    image: Some(p),
                    pending: None,
                    trial: Some(Trial {
                        boots: 0,
                        previous: self.state.image,
                    }),
                    ..self.state
                })?;
                Ok(p)
            }
            (_, Some(i)) if i.sha256 == *sha256 => Ok(i),
            _ => Err(Refusal::NothingPending),
        }
    }

    /// A start-up: count a trial's boot, or return from a trial that failed (see the module
    /// documentation); then what to run. Called by the board's start-up code with the reset
    /// cause, before it jumps to any image.
    pub fn boot(&mut self, cause: ResetCause) -> Result<Boot, Refusal> {
        if self.lost {
            return Err(Refusal::StateLost);
        }
        if let (Some(trial), Some(info)) = (self.state.trial, self.state.image) {
            let failed = if trial.boots > 0 && cause == ResetCause::Watchdog {
                Some(RevertReason::Watchdog)
            } else if trial.boots > 0 && cause == ResetCause::Fault {
                Some(RevertReason::Fault)
            } else if trial.boots >= MAX_TRIAL_BOOTS {
                Some(RevertReason::Unconfirmed)
            } else if !self
                .slot_matches(self.state.active, &info)
                .map_err(|_| Refusal::Programming)?
            {
                Some(RevertReason::Corrupt)
            } else {
                None
            };
            match failed {
                Some(reason) => self.revert(trial, info, reason)?,
                None => self.commit(EcuState {
                    trial: Some(Trial {
                        boots: trial.boots.saturating_add(1),
                        ..trial
                    }),
                    ..self.state
                })?,
            }
        }
        Ok(match self.state.image {
            Some(info) => Boot::Image {
                info,
                trial: self.state.trial.is_some(),
            },
            None => Boot::Bootloader,
        })
    }

    /// Return from the trial image `info` to the previous one, in one state write.
    fn revert(
        &mut self,
        trial: Trial,
        info: ImageInfo,
        reason: RevertReason,
    ) -> Result<(), Refusal> {
        let reverted = Some(Reverted {
            uid: info.uid,
            version: info.version,
            sha256: info.sha256,
            reason,
        });
        let mut revert_history = self.state.revert_history;
        revert_history.push(&info.sha256);
        // A previous image revoked since (below the trust document's floor) is not run again.
        let previous = trial.previous.filter(|p| p.release_counter >= self.floor());
        let next = match previous {
            Some(p) => EcuState {
                active: self.state.active.other(),
                image: Some(p),
                trial: None,
                reverted,
                revert_history,
                ..self.state
            },
            None => EcuState {
                image: None,
                trial: None,
                reverted,
                revert_history,
                ..self.state
            },
        };
        self.commit(next)
    }

    /// The board's start-up code found the image on trial cannot be started (`reason`, e.g.
    /// [`RevertReason::NotStartable`]): return to the previous image now, in one state write,
    /// as a failed trial. Without a trial it writes nothing.
    pub fn fail_trial(&mut self, reason: RevertReason) -> Result<(), Refusal> {
        if self.lost {
            return Err(Refusal::StateLost);
        }
        match (self.state.trial, self.state.image) {
            (Some(trial), Some(info)) => self.revert(trial, info, reason),
            _ => Ok(()),
        }
    }

    /// The image on trial confirms itself (after its own start-up checks): it stays, and its
    /// release counter becomes the ECU's. Idempotent: without a trial it writes nothing.
    pub fn confirm(&mut self) -> Result<(), Refusal> {
        if self.lost {
            return Err(Refusal::StateLost);
        }
        let (Some(_), Some(info)) = (self.state.trial, self.state.image) else {
            return Ok(());
        };
        self.commit(EcuState {
            trial: None,
            release_counter: self.state.release_counter.max(info.release_counter),
            ..self.state
        })
    }

    /// Drop the pending image (abandoning any transfer in progress); the active image stays.
    /// Idempotent: with nothing pending it succeeds without writing anything.
    pub fn discard(&mut self) -> Result<(), Refusal> {
        self.session = Session::Idle;
        self.drop_pending()
    }

    /// Forget the pending image, if there is one (one state write).
    fn drop_pending(&mut self) -> Result<(), Refusal> {
        if self.state.pending.is_none() {
            return Ok(());
        }
        self.commit(EcuState {
            pending: None,
            ..self.state
        })
    }

    /// Persist `next` as the new state.
    fn commit(&mut self, next: EcuState) -> Result<(), Refusal> {
        self.state = self
            .state
            .commit(&mut self.flash, next)
            .map_err(|_| Refusal::Programming)?;
        Ok(())
    }

    /// Re-hash the active slot: what a boot would check before jumping to the image.
    pub fn verify_active(&mut self) -> Result<bool, F::Error> {
        match self.state.image {
            Some(info) => self.slot_matches(self.state.active, &info),
            None => Ok(false),
        }
    }

    /// Whether `slot` holds `info.length` bytes hashing to `info.sha256`.
    fn slot_matches(&mut self, slot: Slot, info: &ImageInfo) -> Result<bool, F::Error> {
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 512];
        let mut off = 0u64;
        while off < info.length {
            let want =
                usize::try_from((info.length - off).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = self.flash.read_slot(slot, off, &mut buf[..want])?;
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

/// The trust document `rec` names, if its copy still holds exactly those bytes.
fn load_trust<F: Flash>(
    flash: &mut F,
    rec: &TrustRecord,
) -> Result<Option<TrustDocument>, F::Error> {
    let mut buf = alloc::vec![0u8; TRUST_LEN];
    let n = flash.read_trust(rec.copy, &mut buf)?;
    let Some(bytes) = buf.get(..n) else {
        return Ok(None);
    };
    if n != rec.length as usize || <[u8; 32]>::from(Sha256::digest(bytes)) != rec.sha256 {
        return Ok(None);
    }
    // Verified before it was stored; its hash in the checksummed state vouches for it now.
    Ok(trust::Signed::parse(bytes).ok().map(|s| s.doc))
}
