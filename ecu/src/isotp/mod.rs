//! ISO-TP (ISO 15765-2:2016) transport over classic CAN and CAN FD: segmentation, reassembly
//! and flow control, sans-I/O.
//!
//! # Design
//! The state machines never touch a bus or a clock. The caller feeds them received frames and
//! the current time (a monotonic `u64` in microseconds, from any origin), and pulls out frames
//! to put on the bus, events, and the instant it should call back. The same code therefore
//! runs under an in-memory bus in unit tests (deterministically, with simulated time), a UDP
//! bus between processes, or SocketCAN, and on a microcontroller from an interrupt-fed queue.
//!
//! One [`Link`] is one full-duplex ISO-TP connection with normal addressing: frames it sends
//! carry [`Config::tx_id`], frames it accepts carry [`Config::rx_id`] (standard or extended
//! ids). It holds a [`Sender`] and a [`Receiver`]; flow control frames received go to the
//! sender, single/first/consecutive frames to the receiver, and the receiver's own flow control
//! frames go out before the sender's data frames. Buffers are const generics (`TX` and `RX`
//! bytes, `heapless`), so memory is fixed at compile time: no heap, no recursion, and every
//! input off the bus is bounds-checked (a randomized test feeds garbage frames).
//!
//! ```text
//! loop {
//!     let now = clock_us();
//!     if let Some(f) = bus.try_receive() { link.handle_frame(&f, now); }
//!     link.handle_timeout(now);
//!     while let Some(f) = link.poll_transmit(now) { bus.transmit(&f); }
//!     while let Some(ev) = link.poll_event() {
//!         if let Event::Received { .. } = ev { serve(link.received()); }
//!     }
//!     sleep_until(link.poll_timeout());   // or the next frame, whichever is first
//! }
//! ```
//!
//! # What follows the standard, and the choices where it leaves room
//! - Frame formats: SF (1..=7 bytes; with CAN_DL > 8 the escaped SF, up to TX_DL - 2 = 62
//!   bytes), FF (12-bit FF_DL, or the escape with a 32-bit FF_DL above 4095, used on classic
//!   CAN too), CF (SN starts at 1 and wraps 15 -> 0), FC (CTS / WAIT / OVFLW, BS, STmin).
//! - Padding: frames longer than 8 bytes are always padded to the next CAN FD size (0x08, 0x0C,
//!   0x10, 0x14, 0x18, 0x20, 0x30, 0x40 bytes); up to 8 bytes only when [`Config::padding`] is
//!   set (then to 8). Receivers never check padding bytes.
//! - Received frames are checked as the standard says: SF_DL 0 or longer than the frame, a
//!   missing or misused escape, FF shorter than 8 bytes or FF_DL below FF_DLmin, unknown PCI
//!   types, reserved data lengths: the frame is ignored (counted in [`Stats::ignored`]).
//!   The escaped SF is accepted with any SF_DL of 1..=CAN_DL-2 (no "optimal length" check).
//! - Unexpected PDUs (the standard's table of unexpected N_PDU arrivals): a CF while not receiving and an FC while not
//!   waiting for one are ignored; an SF or FF during a reception aborts it
//!   ([`RxError::Interrupted`], N_UNEXP_PDU) and starts the new one.
//! - Errors abort the message and are reported as events: wrong SN (N_WRONG_SN, covers lost,
//!   duplicated and reordered CFs), N_Cr timeout at the receiver, N_Bs timeout, FC.OVFLW
//!   (N_BUFFER_OVFLW), more than N_WFTmax FC.WAIT in a row (N_WFT_OVRN), reserved flow status
//!   (N_INVALID_FS) at the sender. A CF other than the last that is shorter than RX_DL (the
//!   FF's frame length), or any CF longer than RX_DL, aborts the reception
//!   ([`RxError::BadConsecutiveFrame`]).
//! - FF_DL above the receive buffer: FC.OVFLW is sent and the reception is refused; an SF that
//!   does not fit is dropped with [`RxError::Overflow`].
//! - Timing: the sender starts N_Bs when it hands out the FF or the last CF of a block, and
//!   restarts it on each FC.WAIT; the receiver restarts N_Cr when it hands out an FC and on each
//!   CF. The first CF after an FC.CTS may go at once; later ones STmin after the previous one
//!   (reserved STmin = 127 ms). There is no transmit confirmation in a sans-I/O design, so
//!   N_As / N_Ar are the bus backend's business.
//! - Not implemented: extended and mixed addressing, functional (1:n) addressing, the receiver
//!   sending FC.WAIT (the upper layers here finish their work between messages).
//!
//! # Completed messages
//! After an [`Event::Received`], [`Link::received`] returns the message until the next single
//! or first frame starts another. Handle events after every `handle_frame` call; should a new
//! message replace one whose `Received` event is still queued, that event is turned into
//! [`RxError::Unread`], so an event never points at the wrong bytes.

mod frame;
mod link;
mod pdu;
mod rx;
mod tx;

#[cfg(test)]
mod tests;

pub use embedded_can::{ExtendedId, Id, StandardId};
pub use frame::{
    dlc_to_len, extended_id, is_valid_dl, len_to_dlc, raw_id, round_up_dl, standard_id, Frame,
    CLASSIC_MAX_DL, FD_DL_SIZES, FD_MAX_DL,
};
pub use link::{Link, Stats};
pub use pdu::{
    first_frame_capacity, max_single, pad, FlowStatus, Pdu, PduError, StMin, DEFAULT_PADDING,
    FF_DL_12BIT_MAX,
};
pub use rx::Receiver;
pub use tx::Sender;

/// Default N_Bs and N_Cr: 1000 ms, the timeout values of ISO 15765-2.
pub const DEFAULT_TIMEOUT_US: u64 = 1_000_000;
/// Default N_WFTmax: FC.WAIT frames accepted in a row before the sender gives up.
pub const DEFAULT_WFT_MAX: u8 = 10;

/// Frame format of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Classic CAN: frames of up to 8 data bytes.
    Classic,
    /// CAN FD: the sender's FF and CFs fill `tx_dl` bytes (8, 12, 16, 20, 24, 32, 48 or 64);
    /// the receiver takes whatever RX_DL the peer's FF has.
    Fd { tx_dl: u8 },
}

impl Mode {
    /// CAN FD with 64-byte frames.
    pub const FD64: Mode = Mode::Fd { tx_dl: 64 };

    /// TX_DL: the data length of the sender's full frames.
    pub const fn tx_dl(self) -> usize {
        match self {
            Mode::Classic => CLASSIC_MAX_DL,
            Mode::Fd { tx_dl } => tx_dl as usize,
        }
    }

    pub const fn is_fd(self) -> bool {
        matches!(self, Mode::Fd { .. })
    }

    fn is_valid(self) -> bool {
        let dl = self.tx_dl();
        dl == CLASSIC_MAX_DL || FD_DL_SIZES.contains(&dl)
    }
}

/// Everything a [`Link`] needs to know. [`Config::new`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Identifier of every frame this link sends.
    pub tx_id: Id,
    /// Identifier of the frames this link accepts; others are not looked at.
    pub rx_id: Id,
    pub mode: Mode,
    /// Fill byte for frames of up to 8 bytes (padded to 8), and for CAN FD padding.
    /// `None`: short frames go out with their minimal length. Default `Some(0xCC)`.
    pub padding: Option<u8>,
    /// BS this link asks of its peer: consecutive frames between flow controls, 0 = all.
    pub block_size: u8,
    /// STmin this link asks of its peer.
    pub st_min: StMin,
    /// N_Bs: how long the sender waits for a flow control frame, in µs.
    pub n_bs_us: u64,
    /// N_Cr: how long the receiver waits for the next consecutive frame, in µs.
    pub n_cr_us: u64,
    /// N_WFTmax: FC.WAIT frames the sender accepts in a row; one more aborts.
    pub wft_max: u8,
}

impl Config {
    /// Classic CAN, padding 0xCC, BS 0, STmin 0, N_Bs = N_Cr = 1000 ms, N_WFTmax 10.
    pub const fn new(tx_id: Id, rx_id: Id) -> Self {
        Config {
            tx_id,
            rx_id,
            mode: Mode::Classic,
            padding: Some(DEFAULT_PADDING),
            block_size: 0,
            st_min: StMin::ZERO,
            n_bs_us: DEFAULT_TIMEOUT_US,
            n_cr_us: DEFAULT_TIMEOUT_US,
            wft_max: DEFAULT_WFT_MAX,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.mode.is_valid() {
            return Err(ConfigError::BadTxDl(self.mode.tx_dl()));
        }
        if self.tx_id == self.rx_id {
            return Err(ConfigError::SameIds);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// CAN FD TX_DL not one of 8, 12, 16, 20, 24, 32, 48, 64.
    BadTxDl(usize),
    /// A link must not receive its own frames.
    SameIds,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::BadTxDl(n) => write!(f, "TX_DL {n} is not a CAN FD frame size"),
            ConfigError::SameIds => f.write_str("tx and rx identifiers are equal"),
        }
    }
}

/// Why [`Link::send`] refused a message. Nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// A message is still being sent.
    Busy,
    /// ISO-TP has no empty messages.
    Empty,
    /// Longer than the transmit buffer (or than 2^32 - 1 bytes).
    TooLong { len: usize, max: usize },
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Busy => f.write_str("a transmission is in progress"),
            SendError::Empty => f.write_str("empty message"),
            SendError::TooLong { len, max } => {
                write!(f, "message of {len} bytes, transmit buffer holds {max}")
            }
        }
    }
}

/// A transmission aborted. The names in brackets are the standard's N_Result values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No flow control within N_Bs (N_TIMEOUT_Bs).
    Timeout,
    /// The receiver answered FC.OVFLW: the message is too long for it (N_BUFFER_OVFLW).
    Overflow,
    /// More than N_WFTmax FC.WAIT in a row (N_WFT_OVRN).
    WaitLimit,
    /// Flow control with a reserved flow status (N_INVALID_FS).
    InvalidFlowStatus(u8),
    /// A frame could not be encoded. Cannot happen with a validated configuration; reported
    /// instead of panicking.
    Internal,
}

/// A reception aborted or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// No consecutive frame within N_Cr (N_TIMEOUT_Cr).
    Timeout,
    /// A consecutive frame with the wrong sequence number: one was lost, repeated or
    /// reordered (N_WRONG_SN).
    WrongSequence { expected: u8, got: u8 },
    /// A single or first frame arrived during a reception, which it replaced (N_UNEXP_PDU).
    Interrupted,
    /// The announced length is more than the receive buffer holds (FC.OVFLW was sent for a
    /// first frame) (N_BUFFER_OVFLW).
    Overflow { len: u32 },
    /// A consecutive frame of the wrong size for RX_DL (short before the last, or longer
    /// than the first frame).
    BadConsecutiveFrame,
    /// A completed message was replaced by the next one before its `Received` event was
    /// taken from the queue.
    Unread,
}

impl core::fmt::Display for TxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TxError::Timeout => f.write_str("no flow control within N_Bs"),
            TxError::Overflow => f.write_str("receiver reported buffer overflow"),
            TxError::WaitLimit => f.write_str("too many flow control wait frames"),
            TxError::InvalidFlowStatus(s) => write!(f, "invalid flow status {s}"),
            TxError::Internal => f.write_str("internal encoding error"),
        }
    }
}

impl core::fmt::Display for RxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RxError::Timeout => f.write_str("no consecutive frame within N_Cr"),
            RxError::WrongSequence { expected, got } => {
                write!(f, "consecutive frame {got}, expected {expected}")
            }
            RxError::Interrupted => f.write_str("reception replaced by a new message"),
            RxError::Overflow { len } => write!(f, "message of {len} bytes too long"),
            RxError::BadConsecutiveFrame => f.write_str("consecutive frame of the wrong size"),
            RxError::Unread => f.write_str("message replaced before it was read"),
        }
    }
}

/// What happened on a link; taken with [`Link::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message arrived whole: read it with [`Link::received`].
    Received {
        len: usize,
    },
    /// The last frame of a message was handed out by [`Link::poll_transmit`].
    Sent {
        len: usize,
    },
    RxFailed(RxError),
    TxFailed(TxError),
}

/// Data frames (SF, FF, CFs) a sender needs for a message of `len` bytes with this TX_DL:
/// the ISO-TP minimum. `None` for a TX_DL that is not a frame size, or a length ISO-TP cannot
/// carry (0, or above 2^32 - 1).
pub fn frames_for_message(len: u64, tx_dl: usize) -> Option<u64> {
    if !(tx_dl == CLASSIC_MAX_DL || FD_DL_SIZES.contains(&tx_dl))
        || len == 0
        || len > u64::from(u32::MAX)
    {
        return None;
    }
    if len <= max_single(tx_dl) as u64 {
        return Some(1);
    }
    let rest = len - first_frame_capacity(tx_dl, len) as u64;
    Some(1 + rest.div_ceil(tx_dl as u64 - 1))
}

/// Flow control frames the receiver sends for a message of `len` bytes at this TX_DL when it
/// asks for `block_size` (0: one FC after the FF only). `None` as for [`frames_for_message`].
pub fn flow_control_frames(len: u64, tx_dl: usize, block_size: u8) -> Option<u64> {
    let frames = frames_for_message(len, tx_dl)?;
    if frames == 1 {
        return Some(0);
    }
    let cfs = frames - 1;
    Some(if block_size == 0 {
        1
    } else {
        1 + (cfs - 1) / u64::from(block_size)
    })
}
