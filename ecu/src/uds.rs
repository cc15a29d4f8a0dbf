//! A UDS-style (ISO 14229) session carried in ISO-TP messages: the three services a download
//! needs, two routines that finish it, plus reading the ECU's identification. The layout
//! follows UDS where it can:
//!
//! | request                               | positive response                  |
//! |---------------------------------------|------------------------------------|
//! | `34 00 00` + compact manifest          | `74 20` + max block length (u16)   |
//! | `34 00 01` + manifest length (u16) + compact manifest + attestation bundle | the same |
//! | `34 10 ..`, `34 20 ..` as above         | the same: the data is packed, or a delta ([`crate::delta`]) |
//! | `36` block-counter + data              | `76` block-counter                 |
//! | `37`                                   | `77`                               |
//! | `31 01 02 01` + image SHA-256 (32)     | `71 01 02 01` (activate)           |
//! | `31 01 02 02`                          | `71 01 02 02` (discard)            |
//! | `31 01 02 03` + trust document         | `71 01 02 03` + version (u32)      |
//! | `31 01 02 04` + OEM instruction (152)  | `71 01 02 04` (held for the next download) |
//! | `22 F1 A0`                             | `62 F1 A0` + identification        |
//! | `22 F1 A2`                             | `62 F1 A2` + trust version (u32) + mode (u8) |
//! | `10 02` (programming session)          | `50 02` + P2 / P2* server timing   |
//! | `10 01` (default session)              | `50 01` + timing (the ECU may return to its application) |
//!
//! and `7F` service-id code for a refusal. RequestDownload carries the supplier-signed
//! compact manifest instead of UDS's address and size: the ECU decides where the image goes.
//! A positive TransferExit means the image is verified and *pending* in the inactive slot; it
//! runs only after the RoutineControl (`31`, start routine `01`) [`RID_ACTIVATE`] with its
//! hash, which is idempotent; [`RID_DISCARD`] drops a pending image (also idempotent). The
//! routine ids are in ISO 14229's vehicle-manufacturer-specific range.
//!
//! DiagnosticSessionControl (`10`) is how a tester reaches the bootloader on an ECU that runs
//! an application: the tester asks for the programming session, the application resets into
//! the bootloader, and the bootloader answers for it (the AUTOSAR flash-bootloader pattern; the
//! application never answers itself). The bootloader is always in the programming session.

use crate::bootloader::{Bootloader, Refusal, MAX_BLOCK};
use crate::compact_manifest::{Field, FIELD_LEN};
use crate::delta::Encoding;
use crate::flash::Flash;
use heapless::Vec;

pub const REQUEST_DOWNLOAD: u8 = 0x34;
pub const TRANSFER_DATA: u8 = 0x36;
pub const TRANSFER_EXIT: u8 = 0x37;
pub const READ_DATA_BY_ID: u8 = 0x22;
pub const ROUTINE_CONTROL: u8 = 0x31;
/// DiagnosticSessionControl.
pub const SESSION_CONTROL: u8 = 0x10;
/// Its sub-functions: the default session and the programming session.
pub const DEFAULT_SESSION: u8 = 0x01;
pub const PROGRAMMING_SESSION: u8 = 0x02;
/// The positive answer to the programming-session request, with the session's timing: P2server
/// 50 ms, P2*server 5000 ms (in 10 ms units), ISO 14229-2's defaults. The bootloader sends it,
/// also when it answers for an application that reset into it.
pub const PROGRAMMING_SESSION_ANSWER: [u8; 6] = [0x50, PROGRAMMING_SESSION, 0x00, 0x32, 0x01, 0xF4];
/// RoutineControl sub-function: start routine.
pub const START_ROUTINE: u8 = 0x01;
/// Routine: activate the pending image whose SHA-256 the request carries (idempotent: the
/// image already active answers positively too). The release counter rises only now.
pub const RID_ACTIVATE: u16 = 0x0201;
/// Routine: discard the pending image (idempotent); the active image stays.
pub const RID_DISCARD: u16 = 0x0202;
/// Routine: install the trust document the request carries (the successor of the held one,
/// see [`crate::trust`]); the positive response carries the version now in force (u32).
pub const RID_TRUST: u16 = 0x0203;
/// Routine: hold the OEM's instruction the request carries ([`crate::instruction`]) for the
/// next download; refused at once if it is not signed by an instruction key of the trust
/// document, names another ECU, or is older than one accepted.
pub const RID_INSTRUCTION: u16 = 0x0204;
/// Data identifier of the trust document in force: version (u32, 0 for none) and mode
/// (0 partial, 1 full).
pub const DID_TRUST: u16 = 0xF1A2;
pub const NEGATIVE: u8 = 0x7F;
/// Data identifier of the ECU's identification (serial, hardware id, active image).
pub const DID_IDENTIFICATION: u16 = 0xF1A0;
/// Data identifier of the signed version report: the request carries a 16-byte nonce, the
/// answer the identification, the nonce and the ECU's signature over
/// `OTAVR1` ‖ identification ‖ nonce.
pub const DID_SIGNED_REPORT: u16 = 0xF1A1;
/// Length of the identification record (after the DID).
pub const IDENTIFICATION_LEN: usize = 4 * FIELD_LEN + 32 + 16 + 16;
/// Length of the record before trial boots (no trial and revert bytes), still read.
pub const IDENTIFICATION_LEN_V1: usize = 4 * FIELD_LEN + 32 + 16;
/// Domain separation tag of the ECU's report signature.
pub const REPORT_TAG: &[u8; 6] = b"OTAVR1";

/// Signs version reports with the ECU's own key (host: RSA-PSS with the OS's randomness; on a
/// real ECU: its key store and TRNG).
pub trait ReportSigner {
    /// A signature of `msg`, at most 512 bytes; `None` if signing failed.
    fn sign(&mut self, msg: &[u8]) -> Option<alloc::vec::Vec<u8>>;
}

/// The ISO-TP block size an ECU asks for in its flow control: a flow control every 32
/// consecutive frames, so a 4 KiB block never overruns a receive FIFO (or, on the UDP bus, a
/// socket's receive buffer) when the tester sends back to back.
pub const ECU_BLOCK_SIZE: u8 = 32;

/// Negative response codes: the standard ones where they fit, vehicle-manufacturer-specific
/// ones (0xF0..) for the verification results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Nrc {
    ServiceNotSupported = 0x11,
    SubFunctionNotSupported = 0x12,
    IncorrectLength = 0x13,
    Busy = 0x21,
    SequenceError = 0x24,
    RequestOutOfRange = 0x31,
    ProgrammingFailure = 0x72,
    WrongBlockSequence = 0x73,
    BadSignature = 0xF0,
    WrongHardwareId = 0xF1,
    ReleaseCounterRollback = 0xF2,
    TooLarge = 0xF3,
    HashMismatch = 0xF4,
    BadManifest = 0xF5,
    StateLost = 0xF6,
    NothingPending = 0xF7,
    TrustMalformed = 0xF8,
    TrustSignature = 0xF9,
    TrustDowngrade = 0xFA,
    NoTrustAnchor = 0xFB,
    NotApproved = 0xFC,
    InstructionMissing = 0xFD,
    InstructionRejected = 0xFE,
    /// ISO 14229's conditionsNotCorrect: a download while the active image is on trial.
    ConditionsNotCorrect = 0x22,
    /// ISO 14229's uploadDownloadNotAccepted: the image this ECU reverted from.
    DownloadNotAccepted = 0x70,
    /// ISO 14229's transferDataSuspended: the data is not a packed image or delta this ECU
    /// can apply (malformed, or a delta against another image than the one it runs).
    TransferDataSuspended = 0x71,
}

impl Nrc {
    pub fn from_u8(b: u8) -> Option<Nrc> {
        use Nrc::*;
        [
            ServiceNotSupported,
            SubFunctionNotSupported,
            IncorrectLength,
            Busy,
            SequenceError,
            RequestOutOfRange,
            ProgrammingFailure,
            WrongBlockSequence,
            BadSignature,
            WrongHardwareId,
            ReleaseCounterRollback,
            TooLarge,
            HashMismatch,
            BadManifest,
            StateLost,
            NothingPending,
            TrustMalformed,
            TrustSignature,
            TrustDowngrade,
            NoTrustAnchor,
            NotApproved,
            InstructionMissing,
            InstructionRejected,
            ConditionsNotCorrect,
            DownloadNotAccepted,
            TransferDataSuspended,
        ]
        .into_iter()
        .find(|n| *n as u8 == b)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Nrc::ServiceNotSupported => "service not supported",
            Nrc::SubFunctionNotSupported => "sub-function not supported",
            Nrc::IncorrectLength => "incorrect message length",
            Nrc::Busy => "busy, repeat request",
            Nrc::SequenceError => "request sequence error",
            Nrc::RequestOutOfRange => "request out of range",
            Nrc::ProgrammingFailure => "programming failure",
            Nrc::WrongBlockSequence => "wrong block sequence counter",
            Nrc::BadSignature => "manifest signature not valid for the provisioned supplier keys",
            Nrc::WrongHardwareId => "image not built for this ECU's hardware id",
            Nrc::ReleaseCounterRollback => "release counter below the installed one",
            Nrc::TooLarge => "image too large",
            Nrc::HashMismatch => "image hash does not match the manifest",
            Nrc::BadManifest => "malformed manifest",
            Nrc::StateLost => {
                "ECU state lost (both copies invalid): installs refused until it is restored"
            }
            Nrc::NothingPending => {
                "no verified image of that hash is pending or active (nothing to activate)"
            }
            Nrc::TrustMalformed => "malformed trust document",
            Nrc::TrustSignature => {
                "trust document not signed by a threshold of the held and of its own signer keys"
            }
            Nrc::TrustDowngrade => "trust document does not supersede the held one",
            Nrc::NoTrustAnchor => "no trust document provisioned: none accepted over the bus",
            Nrc::NotApproved => {
                "full verification: no approval by the threshold of regulator keys of the trust document"
            }
            Nrc::InstructionMissing => {
                "no OEM instruction for this download (the trust document requires one)"
            }
            Nrc::InstructionRejected => {
                "OEM instruction refused: not signed by an instruction key of the trust document, for another ECU or image, or older than one accepted"
            }
            Nrc::ConditionsNotCorrect => {
                "the active image is on trial (not confirmed yet): no download until it confirms or is reverted"
            }
            Nrc::DownloadNotAccepted => {
                "this ECU reverted from that image (it failed its trial boot here): a fixed build is needed"
            }
            Nrc::TransferDataSuspended => {
                "not a compressed image or delta this ECU can apply (malformed, or a delta against another image than the one it runs)"
            }
        }
    }
}

impl From<Refusal> for Nrc {
    fn from(r: Refusal) -> Nrc {
        match r {
            Refusal::BadManifest => Nrc::BadManifest,
            Refusal::BadSignature => Nrc::BadSignature,
            Refusal::WrongHardwareId => Nrc::WrongHardwareId,
            Refusal::Rollback => Nrc::ReleaseCounterRollback,
            Refusal::TooLarge => Nrc::TooLarge,
            Refusal::HashMismatch => Nrc::HashMismatch,
            Refusal::Sequence => Nrc::SequenceError,
            Refusal::WrongBlock => Nrc::WrongBlockSequence,
            Refusal::Programming => Nrc::ProgrammingFailure,
            Refusal::StateLost => Nrc::StateLost,
            Refusal::NothingPending => Nrc::NothingPending,
            Refusal::TrustMalformed => Nrc::TrustMalformed,
            Refusal::TrustSignature => Nrc::TrustSignature,
            Refusal::TrustDowngrade => Nrc::TrustDowngrade,
            Refusal::NoTrustAnchor => Nrc::NoTrustAnchor,
            Refusal::NotApproved => Nrc::NotApproved,
            Refusal::InstructionMissing => Nrc::InstructionMissing,
            Refusal::InstructionRejected => Nrc::InstructionRejected,
            Refusal::OnTrial => Nrc::ConditionsNotCorrect,
            Refusal::Reverted => Nrc::DownloadNotAccepted,
            // One code for both: either way the tester sends the full image instead.
            Refusal::BadEncoding | Refusal::WrongBase => Nrc::TransferDataSuspended,
        }
    }
}

/// Largest response: the signed report (`62 F1 A1` + identification + nonce + length + an
/// RSA-4096 signature).
pub const MAX_RESPONSE: usize = 3 + IDENTIFICATION_LEN + 16 + 2 + 512;

pub type Response = Vec<u8, MAX_RESPONSE>;

fn negative(sid: u8, nrc: Nrc) -> Response {
    let mut r = Response::new();
    // Three bytes always fit the response buffer.
    let _ = r.extend_from_slice(&[NEGATIVE, sid, nrc as u8]);
    r
}

/// The ECU's side: requests in, responses out, the bootloader behind.
pub struct Server<'k, F: Flash> {
    pub bootloader: Bootloader<'k, F>,
    pub serial: Field,
    /// Without a signer the ECU answers no signed report.
    pub signer: Option<alloc::boxed::Box<dyn ReportSigner + 'k>>,
    /// An activation put a new image on trial: the ECU resets into it once the answer is
    /// sent ([`Server::take_reset`]).
    reset: bool,
    /// The tester asked for the default session: the ECU may return to its application
    /// ([`Server::take_leave`]).
    leave: bool,
}

impl<'k, F: Flash> Server<'k, F> {
    pub fn new(bootloader: Bootloader<'k, F>, serial: Field) -> Self {
        Server {
            bootloader,
            serial,
            signer: None,
            reset: false,
            leave: false,
        }
    }

    /// Whether the ECU must now reset into the image an activation put on trial (asked once:
    /// the board's loop sends the answer, then resets, and the bootloader's start-up
    /// [`crate::bootloader::Bootloader::boot`] runs the trial).
    pub fn take_reset(&mut self) -> bool {
        core::mem::take(&mut self.reset)
    }

    /// Whether the tester ended the programming session (asked once): a board whose
    /// bootloader starts applications may return to the active one once the answer is sent.
    pub fn take_leave(&mut self) -> bool {
        core::mem::take(&mut self.leave)
    }

    /// Handle one request message (never panics, whatever the bytes).
    pub fn handle(&mut self, req: &[u8]) -> Response {
        let Some((&sid, rest)) = req.split_first() else {
            return negative(0, Nrc::IncorrectLength);
        };
        let mut ok = Response::new();
        let result: Result<(), Nrc> = match sid {
            REQUEST_DOWNLOAD => self.request_download(rest, &mut ok),
            TRANSFER_DATA => match rest.split_first() {
                None => Err(Nrc::IncorrectLength),
                Some((&block, data)) => self
                    .bootloader
                    .transfer_data(block, data)
                    .map_err(Nrc::from)
                    .map(|()| {
                        let _ = ok.extend_from_slice(&[0x76, block]);
                    }),
            },
            TRANSFER_EXIT => {
                if !rest.is_empty() {
                    Err(Nrc::IncorrectLength)
                } else {
                    self.bootloader.transfer_exit().map_err(Nrc::from).map(|_| {
                        let _ = ok.push(0x77);
                    })
                }
            }
            ROUTINE_CONTROL => self.routine(rest, &mut ok),
            SESSION_CONTROL => self.session_control(rest, &mut ok),
            READ_DATA_BY_ID => self.read_data_by_id(rest, &mut ok),
            _ => Err(Nrc::ServiceNotSupported),
        };
        match result {
            Ok(()) => ok,
            Err(nrc) => negative(sid, nrc),
        }
    }

    /// RequestDownload: the payload's encoding (data format id), then the manifest and, with
    /// address-and-length format 1, the attestation bundle after it (its length first, two
    /// bytes). An unknown encoding is refused before a malformed layout; the bootloader then
    /// checks the manifest, and the answer gives the largest block it takes.
    #[inline]
    fn request_download(&mut self, rest: &[u8], ok: &mut Response) -> Result<(), Nrc> {
        let encoding = rest
            .first()
            .and_then(|id| Encoding::from_format_id(*id))
            .ok_or(Nrc::RequestOutOfRange);
        let parts = match rest {
            [_, 0, manifest @ ..] => Ok((manifest, None)),
            [_, 1, hi, lo, more @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                if more.len() < n {
                    Err(Nrc::IncorrectLength)
                } else {
                    let (manifest, bundle) = more.split_at(n);
                    Ok((manifest, Some(bundle)))
                }
            }
            _ => Err(Nrc::RequestOutOfRange),
        };
        match encoding.and_then(|e| parts.map(|p| (e, p))) {
            Err(e) => Err(e),
            Ok((encoding, (manifest, bundle))) => self
                .bootloader
                .request_download_encoded(manifest, bundle, encoding)
                .map_err(Nrc::from)
                .map(|()| {
                    let _ = ok.extend_from_slice(&[0x74, 0x20]);
                    let _ = ok.extend_from_slice(&((MAX_BLOCK + 2) as u16).to_be_bytes());
                }),
        }
    }

    /// DiagnosticSessionControl: the programming session is where the ECU already is; the
    /// default session ends it (the board may return to its application once answered).
    #[inline]
    fn session_control(&mut self, rest: &[u8], ok: &mut Response) -> Result<(), Nrc> {
        match rest {
            [PROGRAMMING_SESSION] => {
                let _ = ok.extend_from_slice(&PROGRAMMING_SESSION_ANSWER);
                Ok(())
            }
            [DEFAULT_SESSION] => {
                self.leave = true;
                let _ = ok.extend_from_slice(&PROGRAMMING_SESSION_ANSWER);
                ok[1] = DEFAULT_SESSION;
                Ok(())
            }
            [_] => Err(Nrc::SubFunctionNotSupported),
            _ => Err(Nrc::IncorrectLength),
        }
    }

    /// ReadDataByIdentifier: `F1A0` the identification, `F1A1` the signed version report for
    /// the tester's 16-byte nonce, `F1A2` the trust document version and the ECU's mode.
    #[inline]
    fn read_data_by_id(&mut self, rest: &[u8], ok: &mut Response) -> Result<(), Nrc> {
        match rest {
            [0xF1, 0xA0] => {
                let _ = ok.extend_from_slice(&[0x62, 0xF1, 0xA0]);
                let _ = ok.extend_from_slice(&self.identification());
                Ok(())
            }
            [0xF1, 0xA1, nonce @ ..] if nonce.len() == 16 => self.signed_report(nonce, ok),
            [0xF1, 0xA2] => {
                let (version, mode) = self.bootloader.trust_version();
                let _ = ok.extend_from_slice(&[0x62, 0xF1, 0xA2]);
                let _ = ok.extend_from_slice(&version.to_be_bytes());
                let _ = ok.push(mode as u8);
                Ok(())
            }
            _ => Err(Nrc::RequestOutOfRange),
        }
    }

    /// RoutineControl: start [`RID_ACTIVATE`] or [`RID_DISCARD`].
    fn routine(&mut self, req: &[u8], ok: &mut Response) -> Result<(), Nrc> {
        let [START_ROUTINE, hi, lo, arg @ ..] = req else {
            return Err(if req.first().is_some_and(|s| *s != START_ROUTINE) {
                Nrc::RequestOutOfRange
            } else {
                Nrc::IncorrectLength
            });
        };
        match (u16::from_be_bytes([*hi, *lo]), arg.len()) {
            (RID_ACTIVATE, 32) => {
                let mut sha = [0u8; 32];
                sha.copy_from_slice(arg);
                let before = self.bootloader.state().sequence;
                self.bootloader.activate(&sha).map_err(Nrc::from)?;
                // A new trial (not the idempotent activation of the running image).
                self.reset = self.bootloader.state().sequence != before
                    && self.bootloader.state().trial.is_some();
            }
            (RID_DISCARD, 0) => self.bootloader.discard().map_err(Nrc::from)?,
            (RID_TRUST, n) if n > 0 => {
                let version = self.bootloader.update_trust(arg).map_err(Nrc::from)?;
                let _ = ok.extend_from_slice(&[ROUTINE_CONTROL + 0x40, START_ROUTINE, *hi, *lo]);
                let _ = ok.extend_from_slice(&version.to_be_bytes());
                return Ok(());
            }
            (RID_INSTRUCTION, crate::instruction::LEN) => {
                let serial = self.serial;
                self.bootloader
                    .hold_instruction(arg, serial.as_str())
                    .map_err(Nrc::from)?;
            }
            (RID_ACTIVATE | RID_DISCARD | RID_TRUST | RID_INSTRUCTION, _) => {
                return Err(Nrc::IncorrectLength)
            }
            _ => return Err(Nrc::RequestOutOfRange),
        }
        let _ = ok.extend_from_slice(&[ROUTINE_CONTROL + 0x40, START_ROUTINE, *hi, *lo]);
        Ok(())
    }

    /// The identification record: serial, hardware id, uid, version, SHA-256, length,
    /// release counter (zeros for the image fields when nothing is installed).
    fn identification(&self) -> [u8; IDENTIFICATION_LEN] {
        let st = self.bootloader.state();
        let mut b = [0u8; IDENTIFICATION_LEN];
        b[0..32].copy_from_slice(self.serial.as_bytes());
        b[32..64].copy_from_slice(self.bootloader_hardware().as_bytes());
        if let Some(i) = &st.image {
            b[64..96].copy_from_slice(i.uid.as_bytes());
            b[96..128].copy_from_slice(i.version.as_bytes());
            b[128..160].copy_from_slice(&i.sha256);
            b[160..168].copy_from_slice(&i.length.to_be_bytes());
        }
        b[168..176].copy_from_slice(&st.release_counter.to_be_bytes());
        // The trial and the last revert, in the record's spare bytes (zeros from an ECU
        // without trial boots): flags (bit 0 on trial, bit 1 reverted), the revert's reason,
        // the first 8 bytes of the reverted image's SHA-256.
        if st.trial.is_some() {
            b[176] |= 1;
        }
        if let Some(r) = &st.reverted {
            b[176] |= 2;
            b[177] = r.reason as u8;
            b[178..186].copy_from_slice(&r.sha256[..8]);
        }
        b
    }

    fn signed_report(&mut self, nonce: &[u8], out: &mut Response) -> Result<(), Nrc> {
        let ident = self.identification();
        let signer = self.signer.as_mut().ok_or(Nrc::RequestOutOfRange)?;
        let mut msg = [0u8; REPORT_TAG.len() + IDENTIFICATION_LEN + 16];
        msg[..6].copy_from_slice(REPORT_TAG);
        msg[6..6 + IDENTIFICATION_LEN].copy_from_slice(&ident);
        msg[6 + IDENTIFICATION_LEN..].copy_from_slice(nonce);
        let sig = signer
            .sign(&msg)
            .filter(|s| s.len() <= 512)
            .ok_or(Nrc::ProgrammingFailure)?;
        let _ = out.extend_from_slice(&[0x62, 0xF1, 0xA1]);
        let _ = out.extend_from_slice(&ident);
        let _ = out.extend_from_slice(nonce);
        let _ = out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        out.extend_from_slice(&sig)
            .map_err(|_| Nrc::ProgrammingFailure)
    }

    fn bootloader_hardware(&self) -> Field {
        self.bootloader.hardware_id()
    }
}

/// What an ECU reports about itself (decoded from the identification response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identification {
    pub serial: Field,
    pub hardware_id: Field,
    /// `None` when nothing was installed through the bootloader yet.
    pub image: Option<(Field, Field)>,
    pub sha256: [u8; 32],
    pub length: u64,
    /// The final release counter (an image on trial has its own, not final yet).
    pub release_counter: u64,
    /// The active image has not confirmed itself yet.
    pub on_trial: bool,
    /// The last image this ECU reverted from: the first 8 bytes of its SHA-256, and why.
    pub reverted: Option<([u8; 8], crate::state::RevertReason)>,
}

/// The gateway's side: build requests, read responses.
pub mod client {
    use super::*;
    extern crate alloc;
    use alloc::vec::Vec as AVec;

    /// RequestDownload of an image carried in `encoding`, with the regulators' compact
    /// attestation bundle if there is one.
    pub fn request_download_encoded(
        manifest: &[u8],
        bundle: Option<&[u8]>,
        encoding: Encoding,
    ) -> AVec<u8> {
        let extra = bundle.map_or(0, |b| b.len() + 2);
        let mut v = AVec::with_capacity(manifest.len() + extra + 3);
        v.extend_from_slice(&[REQUEST_DOWNLOAD, encoding.format_id()]);
        match bundle {
            Some(b) => {
                v.push(1);
                v.extend_from_slice(
                    &u16::try_from(manifest.len())
                        .unwrap_or(u16::MAX)
                        .to_be_bytes(),
                );
                v.extend_from_slice(manifest);
                v.extend_from_slice(b);
            }
            None => {
                v.push(0);
                v.extend_from_slice(manifest);
            }
        }
        v
    }

    /// RequestDownload with the regulators' compact attestation bundle.
    pub fn request_download_attested(manifest: &[u8], bundle: &[u8]) -> AVec<u8> {
        request_download_encoded(manifest, Some(bundle), Encoding::Plain)
    }

    pub fn request_download(manifest: &[u8]) -> AVec<u8> {
        request_download_encoded(manifest, None, Encoding::Plain)
    }

    pub fn transfer_data(block: u8, data: &[u8]) -> AVec<u8> {
        let mut v = AVec::with_capacity(data.len() + 2);
        v.extend_from_slice(&[TRANSFER_DATA, block]);
        v.extend_from_slice(data);
        v
    }

    pub fn transfer_exit() -> [u8; 1] {
        [TRANSFER_EXIT]
    }

    /// Activate the pending image of SHA-256 `sha256`.
    pub fn activate(sha256: &[u8; 32]) -> [u8; 36] {
        let mut v = [0u8; 36];
        let rid = RID_ACTIVATE.to_be_bytes();
        v[..4].copy_from_slice(&[ROUTINE_CONTROL, START_ROUTINE, rid[0], rid[1]]);
        v[4..].copy_from_slice(sha256);
        v
    }

    /// Discard the pending image.
    pub fn discard() -> [u8; 4] {
        let rid = RID_DISCARD.to_be_bytes();
        [ROUTINE_CONTROL, START_ROUTINE, rid[0], rid[1]]
    }

    /// Whether `payload` (after the positive response id) confirms routine `rid`.
    pub fn routine_done(payload: &[u8], rid: u16) -> bool {
        let r = rid.to_be_bytes();
        payload == [START_ROUTINE, r[0], r[1]]
    }

    /// Hold the OEM's instruction `bytes` for the next download.
    pub fn instruction(bytes: &[u8]) -> AVec<u8> {
        let rid = RID_INSTRUCTION.to_be_bytes();
        let mut v = AVec::with_capacity(bytes.len() + 4);
        v.extend_from_slice(&[ROUTINE_CONTROL, START_ROUTINE, rid[0], rid[1]]);
        v.extend_from_slice(bytes);
        v
    }

    /// Install the trust document `doc` (the successor of the ECU's).
    pub fn trust(doc: &[u8]) -> AVec<u8> {
        let rid = RID_TRUST.to_be_bytes();
        let mut v = AVec::with_capacity(doc.len() + 4);
        v.extend_from_slice(&[ROUTINE_CONTROL, START_ROUTINE, rid[0], rid[1]]);
        v.extend_from_slice(doc);
        v
    }

    /// The version in force after [`trust`], from its response payload.
    pub fn trust_done(payload: &[u8]) -> Option<u32> {
        let r = RID_TRUST.to_be_bytes();
        match payload {
            [START_ROUTINE, a, b, v @ ..] if [*a, *b] == r && v.len() == 4 => {
                Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            _ => None,
        }
    }

    pub fn read_trust() -> [u8; 3] {
        let d = DID_TRUST.to_be_bytes();
        [READ_DATA_BY_ID, d[0], d[1]]
    }

    /// The trust version (0: none) and mode byte from a [`read_trust`] response payload.
    pub fn parse_trust(payload: &[u8]) -> Option<(u32, u8)> {
        match payload {
            [0xF1, 0xA2, a, b, c, d, mode] => Some((u32::from_be_bytes([*a, *b, *c, *d]), *mode)),
            _ => None,
        }
    }

    /// DiagnosticSessionControl: the programming session (the bootloader).
    pub fn programming_session() -> [u8; 2] {
        [SESSION_CONTROL, PROGRAMMING_SESSION]
    }

    /// DiagnosticSessionControl: the default session (the ECU may return to its application).
    pub fn default_session() -> [u8; 2] {
        [SESSION_CONTROL, DEFAULT_SESSION]
    }

    pub fn read_identification() -> [u8; 3] {
        let d = DID_IDENTIFICATION.to_be_bytes();
        [READ_DATA_BY_ID, d[0], d[1]]
    }

    /// Why a response is not the positive answer to service `sid`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ResponseError {
        Negative(Nrc),
        UnknownNegative(u8),
        Unexpected,
    }

    /// The payload of a positive response to `sid`, or what went wrong.
    pub fn check(sid: u8, resp: &[u8]) -> Result<&[u8], ResponseError> {
        match resp {
            [NEGATIVE, s, code] if *s == sid => Err(Nrc::from_u8(*code).map_or(
                ResponseError::UnknownNegative(*code),
                ResponseError::Negative,
            )),
            [first, rest @ ..] if *first == sid.wrapping_add(0x40) => Ok(rest),
            _ => Err(ResponseError::Unexpected),
        }
    }

    /// The maximum block length a RequestDownload response allows (data bytes per block).
    pub fn max_block(payload: &[u8]) -> Option<usize> {
        match payload {
            [0x20, hi, lo] => usize::from(u16::from_be_bytes([*hi, *lo]))
                .checked_sub(2)
                .filter(|n| *n > 0),
            _ => None,
        }
    }

    pub fn read_signed_report(nonce: &[u8; 16]) -> AVec<u8> {
        let d = DID_SIGNED_REPORT.to_be_bytes();
        let mut v = AVec::with_capacity(19);
        v.extend_from_slice(&[READ_DATA_BY_ID, d[0], d[1]]);
        v.extend_from_slice(nonce);
        v
    }

    /// A signed version report as received.
    pub struct SignedReport {
        pub identification: Identification,
        /// The identification bytes the ECU signed.
        pub raw: [u8; IDENTIFICATION_LEN],
        pub nonce: [u8; 16],
        /// For the OEM to verify against the ECU's registered key.
        pub signature: AVec<u8>,
    }

    /// Decode a signed report: the identification (decoded and raw), the nonce it answers, the
    /// signature.
    pub fn parse_signed_report(payload: &[u8]) -> Option<SignedReport> {
        let rest = payload.strip_prefix(&[0xF1, 0xA1])?;
        if rest.len() < IDENTIFICATION_LEN + 18 {
            return None;
        }
        let (ident, rest) = rest.split_at(IDENTIFICATION_LEN);
        let (nonce, rest) = rest.split_at(16);
        let (len, sig) = rest.split_at(2);
        if usize::from(u16::from_be_bytes([len[0], len[1]])) != sig.len() {
            return None;
        }
        let mut raw = [0u8; IDENTIFICATION_LEN];
        raw.copy_from_slice(ident);
        let mut n = [0u8; 16];
        n.copy_from_slice(nonce);
        let mut with_did = AVec::with_capacity(IDENTIFICATION_LEN + 2);
        with_did.extend_from_slice(&[0xF1, 0xA0]);
        with_did.extend_from_slice(ident);
        Some(SignedReport {
            identification: parse_identification(&with_did)?,
            raw,
            nonce: n,
            signature: sig.to_vec(),
        })
    }

    pub fn parse_identification(payload: &[u8]) -> Option<Identification> {
        let rest = payload.strip_prefix(&[0xF1, 0xA0])?;
        if rest.len() != IDENTIFICATION_LEN && rest.len() != IDENTIFICATION_LEN_V1 {
            return None;
        }
        // The earlier record ends before the trial and revert bytes: read as zeros.
        let mut full = [0u8; IDENTIFICATION_LEN];
        full[..rest.len()].copy_from_slice(rest);
        let rest = &full[..];
        let field = |at: usize| {
            let mut f = [0u8; FIELD_LEN];
            f.copy_from_slice(&rest[at..at + FIELD_LEN]);
            f
        };
        let u64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&rest[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&rest[128..160]);
        let image = match (Field::from_raw(field(64)), Field::from_raw(field(96))) {
            (Some(u), Some(v)) => Some((u, v)),
            _ => None,
        };
        Some(Identification {
            serial: Field::from_raw(field(0))?,
            hardware_id: Field::from_raw(field(32))?,
            image,
            sha256,
            length: u64_at(160),
            release_counter: u64_at(168),
            on_trial: rest[176] & 1 == 1,
            reverted: if rest[176] & 2 == 2 {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&rest[178..186]);
                Some((prefix, crate::state::RevertReason::from_u8(rest[177])?))
            } else {
                None
            },
        })
    }
}
