//! The tester's side of a download (host, std): what the gateway does to hand one verified
//! image to one ECU over ISO-TP: request download with the compact manifest, send the image
//! in numbered blocks, request transfer exit ([`flash_image`]: the ECU then holds the image
//! verified and pending), then [`activate`] it or [`discard`] it; every refusal becomes a
//! precise error. Also the ECU's side loop ([`serve`]) that the simulator and the tests run.

use crate::bootloader::MAX_BLOCK;
use crate::delta::Encoding;
use crate::flash::Flash;
use crate::isotp::Frame;
use crate::transport::{Endpoint, TransportError};
use crate::uds::client::{self, ResponseError};
use crate::uds::{
    Nrc, Server, PROGRAMMING_SESSION, READ_DATA_BY_ID, REQUEST_DOWNLOAD, RID_ACTIVATE, RID_DISCARD,
    ROUTINE_CONTROL, SESSION_CONTROL, TRANSFER_DATA, TRANSFER_EXIT,
};
use embedded_can::nb::Can;
use std::io::Read;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub enum FlashError {
    /// The ECU refused a request.
    Refused {
        step: &'static str,
        nrc: Option<Nrc>,
        code: u8,
    },
    /// The bus or ISO-TP failed, or the ECU did not answer in time.
    Transport(String),
    /// Reading the staged image failed.
    Io(std::io::Error),
    /// An answer that is not a response to the request.
    Protocol(&'static str),
}

impl core::fmt::Display for FlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FlashError::Refused {
                step,
                nrc: Some(n),
                code,
            } => write!(f, "ECU refused {step}: {} (NRC 0x{code:02X})", n.describe()),
            FlashError::Refused {
                step,
                nrc: None,
                code,
            } => write!(f, "ECU refused {step} (NRC 0x{code:02X})"),
            FlashError::Transport(e) => write!(f, "transport: {e}"),
            FlashError::Io(e) => write!(f, "reading the image: {e}"),
            FlashError::Protocol(what) => write!(f, "unexpected answer to {what}"),
        }
    }
}

impl std::error::Error for FlashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlashError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The step a refusal of the download request names (the manifest, the bundle, the
/// encoding): what the ECU refuses before any data.
pub const REQUEST_STEP: &str = "the download request";

/// How long to wait for each answer; an ECU erasing a slot may take a while.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a busy ECU is asked again.
const BUSY_RETRIES: u32 = 20;

fn exchange<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    step: &'static str,
    sid: u8,
    req: &[u8],
) -> Result<std::vec::Vec<u8>, FlashError>
where
    C::Error: core::fmt::Debug,
{
    for _ in 0..=BUSY_RETRIES {
        let resp = ep
            .request(req, ANSWER_TIMEOUT)
            .map_err(|e: TransportError<C::Error>| FlashError::Transport(e.to_string()))?;
        match client::check(sid, &resp) {
            Ok(payload) => return Ok(payload.to_vec()),
            Err(ResponseError::Negative(Nrc::Busy)) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(refusal(step, e)),
        }
    }
    Err(FlashError::Refused {
        step,
        nrc: Some(Nrc::Busy),
        code: Nrc::Busy as u8,
    })
}

/// The error for a response to `step` that is not its positive answer.
fn refusal(step: &'static str, e: ResponseError) -> FlashError {
    match e {
        ResponseError::Negative(n) => FlashError::Refused {
            step,
            nrc: Some(n),
            code: n as u8,
        },
        ResponseError::UnknownNegative(c) => FlashError::Refused {
            step,
            nrc: None,
            code: c,
        },
        ResponseError::Unexpected => FlashError::Protocol(step),
    }
}

/// How long an ECU may take to reach its bootloader after the programming-session request
/// (an application resets into it, a trial image confirms itself or is reverted first).
pub const SESSION_TIMEOUT: Duration = ANSWER_TIMEOUT;
/// How long each programming-session request waits before it is sent again: a request that
/// reaches an ECU while it resets is lost.
const SESSION_ATTEMPT: Duration = Duration::from_millis(2500);

/// Bring the ECU behind `ep` into its programming session, i.e. its bootloader, before any
/// other request: an ECU running its application resets into the bootloader, which answers
/// (UDS `10 02`). Sent again until answered, for [`SESSION_TIMEOUT`]; an ECU that does not know
/// the service (`7F 10 11`) has no application to leave and is taken as there already.
pub fn enter_programming<C: Can<Frame = Frame>>(ep: &mut Endpoint<C>) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "the programming session";
    let deadline = std::time::Instant::now() + SESSION_TIMEOUT;
    let mut resent = false;
    let resp = loop {
        match ep.request(&client::programming_session(), SESSION_ATTEMPT) {
            Ok(resp) => break resp,
            Err(TransportError::Timeout) if std::time::Instant::now() < deadline => resent = true,
            Err(e) => return Err(FlashError::Transport(e.to_string())),
        }
    };
    match client::check(SESSION_CONTROL, &resp) {
        Ok([PROGRAMMING_SESSION, ..]) => {}
        Err(ResponseError::Negative(Nrc::ServiceNotSupported)) => return Ok(()),
        Ok(_) => return Err(FlashError::Protocol(step)),
        Err(e) => return Err(refusal(step, e)),
    }
    // An earlier request may have been answered late (the bootloader was still starting):
    // its answer must not be taken for the answer to the next request.
    if resent {
        while ep.receive(SESSION_ATTEMPT).is_ok() {}
    }
    Ok(())
}

/// Tell the ECU behind `ep` the tester is done (UDS `10 01`, the default session): an ECU
/// whose bootloader was entered from its application returns to it at once rather than after
/// the session's timeout. Best effort: an ECU that does not answer, or has no sessions, keeps
/// what it runs.
pub fn leave_programming<C: Can<Frame = Frame>>(ep: &mut Endpoint<C>)
where
    C::Error: core::fmt::Debug,
{
    let _ = ep.request(&client::default_session(), SESSION_ATTEMPT);
}

/// Download `image` (`len` bytes) with its compact `manifest` into the inactive slot of the
/// ECU behind `ep`. `Ok` means the ECU verified it and holds it *pending*: it runs only after
/// [`activate`]. `progress` is told the bytes sent so far.
pub fn flash_image<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    manifest: &[u8],
    image: &mut impl Read,
    len: u64,
    progress: impl FnMut(u64),
) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    flash_image_attested(ep, manifest, None, image, len, progress)
}

/// [`flash_image`] with the regulators' compact attestation `bundle` (see
/// [`crate::attestation`]), which a full-verification ECU requires.
pub fn flash_image_attested<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    manifest: &[u8],
    bundle: Option<&[u8]>,
    image: &mut impl Read,
    len: u64,
    progress: impl FnMut(u64),
) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    flash_encoded(ep, manifest, bundle, Encoding::Plain, image, len, progress)
}

/// [`flash_image_attested`] with the image carried in `encoding` ([`crate::delta`]): `data`
/// yields the `len` bytes of the packed image or delta, which the ECU decodes as they arrive
/// and verifies as it verifies a plain image.
pub fn flash_encoded<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    manifest: &[u8],
    bundle: Option<&[u8]>,
    encoding: Encoding,
    image: &mut impl Read,
    len: u64,
    mut progress: impl FnMut(u64),
) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let request = client::request_download_encoded(manifest, bundle, encoding);
    let payload = exchange(ep, REQUEST_STEP, REQUEST_DOWNLOAD, &request)?;
    let block = client::max_block(&payload)
        .ok_or(FlashError::Protocol(REQUEST_STEP))?
        .min(MAX_BLOCK);
    let mut buf = std::vec![0u8; block];
    let mut sent: u64 = 0;
    let mut counter: u8 = 1;
    while sent < len {
        let want = usize::try_from((len - sent).min(block as u64)).unwrap_or(block);
        image.read_exact(&mut buf[..want]).map_err(FlashError::Io)?;
        let answer = exchange(
            ep,
            "a data block",
            TRANSFER_DATA,
            &client::transfer_data(counter, &buf[..want]),
        )?;
        if answer.first() != Some(&counter) {
            return Err(FlashError::Protocol("a data block"));
        }
        sent += want as u64;
        counter = counter.wrapping_add(1);
        progress(sent);
    }
    exchange(
        ep,
        "the transfer exit",
        TRANSFER_EXIT,
        &client::transfer_exit(),
    )?;
    Ok(())
}

/// Activate the image of SHA-256 `sha256` on the ECU behind `ep`: the pending one becomes
/// active (or it already was: activation is idempotent).
pub fn activate<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    sha256: &[u8; 32],
) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "the activation";
    let answer = exchange(ep, step, ROUTINE_CONTROL, &client::activate(sha256))?;
    if !client::routine_done(&answer, RID_ACTIVATE) {
        return Err(FlashError::Protocol(step));
    }
    Ok(())
}

/// Drop the pending image of the ECU behind `ep` (idempotent); its active image stays.
pub fn discard<C: Can<Frame = Frame>>(ep: &mut Endpoint<C>) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "the discard";
    let answer = exchange(ep, step, ROUTINE_CONTROL, &client::discard())?;
    if !client::routine_done(&answer, RID_DISCARD) {
        return Err(FlashError::Protocol(step));
    }
    Ok(())
}

/// The trust document version the ECU behind `ep` holds (0: none, the legacy provisioning)
/// and its mode byte (0 partial, 1 full).
pub fn trust_version<C: Can<Frame = Frame>>(ep: &mut Endpoint<C>) -> Result<(u32, u8), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "reading the trust version";
    let answer = exchange(ep, step, READ_DATA_BY_ID, &client::read_trust())?;
    client::parse_trust(&answer).ok_or(FlashError::Protocol(step))
}

/// Give the ECU behind `ep` the OEM's instruction for its next download.
pub fn send_instruction<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    instruction: &[u8],
) -> Result<(), FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "the OEM instruction";
    let answer = exchange(ep, step, ROUTINE_CONTROL, &client::instruction(instruction))?;
    if !client::routine_done(&answer, crate::uds::RID_INSTRUCTION) {
        return Err(FlashError::Protocol(step));
    }
    Ok(())
}

/// Send the trust document `doc` to the ECU behind `ep`; the version it holds afterwards.
pub fn send_trust<C: Can<Frame = Frame>>(
    ep: &mut Endpoint<C>,
    doc: &[u8],
) -> Result<u32, FlashError>
where
    C::Error: core::fmt::Debug,
{
    let step = "the trust document";
    let answer = exchange(ep, step, ROUTINE_CONTROL, &client::trust(doc))?;
    client::trust_done(&answer).ok_or(FlashError::Protocol(step))
}

/// The ECU's loop: answer requests until `stop` is set.
pub fn serve<C: Can<Frame = Frame>, F: Flash>(
    ep: &mut Endpoint<C>,
    server: &mut Server<'_, F>,
    stop: &AtomicBool,
) -> Result<(), String>
where
    C::Error: core::fmt::Debug,
{
    while !stop.load(Ordering::Relaxed) {
        match ep.receive(Duration::from_millis(100)) {
            Ok(req) => {
                let resp = server.handle(&req);
                ep.send(&resp, ANSWER_TIMEOUT).map_err(|e| e.to_string())?;
                if server.take_reset() {
                    // The ECU resets into the image on trial; this generic ECU's applications
                    // all start and confirm themselves (the simulator's may fault).
                    let _ = server
                        .bootloader
                        .boot(crate::bootloader::ResetCause::PowerOn);
                    let _ = server.bootloader.confirm();
                }
            }
            Err(TransportError::Timeout) | Err(TransportError::Rx(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
