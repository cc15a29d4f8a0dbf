//! The receiver: reassembly and the receive side of flow control.

use super::pdu::{FlowStatus, Pdu, StMin};
use super::{Config, Event, RxError, FD_MAX_DL};
use heapless::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// Reassembling a message of `len` bytes from frames of `rx_dl` bytes; `sn` is the next
    /// expected sequence number, `in_block` the CFs received since the last FC.
    Receiving {
        len: usize,
        rx_dl: usize,
        sn: u8,
        in_block: u8,
        deadline: u64,
    },
}

/// Reassembles one message at a time into an `N`-byte buffer.
///
/// Sans-I/O: [`Receiver::on_single`], [`Receiver::on_first`] and [`Receiver::on_consecutive`]
/// take decoded frames; [`Receiver::poll_transmit`] hands out the flow control frame it owes;
/// [`Receiver::handle_timeout`] enforces N_Cr; [`Receiver::message`] is the last complete
/// message.
#[derive(Clone, Debug)]
pub struct Receiver<const N: usize> {
    padding: Option<u8>,
    block_size: u8,
    st_min: StMin,
    n_cr_us: u64,
    buf: Vec<u8, N>,
    complete: bool,
    /// A flow control frame owed to the sender, and since when.
    pending_fc: Option<(FlowStatus, u64)>,
    state: State,
}

impl<const N: usize> Receiver<N> {
    /// A receiver asking for the link's BS and STmin, with its N_Cr and padding.
    pub fn new(cfg: &Config) -> Self {
        Receiver {
            padding: cfg.padding,
            block_size: cfg.block_size,
            st_min: cfg.st_min,
            n_cr_us: cfg.n_cr_us,
            buf: Vec::new(),
            complete: false,
            pending_fc: None,
            state: State::Idle,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Bytes of the message being received so far, and its announced length.
    pub fn progress(&self) -> Option<(usize, usize)> {
        match self.state {
            State::Idle => None,
            State::Receiving { len, .. } => Some((self.buf.len(), len)),
        }
    }

    /// The last complete message, until a new single or first frame arrives.
    pub fn message(&self) -> Option<&[u8]> {
        self.complete.then_some(self.buf.as_slice())
    }

    /// Drop the message being received and any flow control owed, without an event.
    pub fn abort(&mut self) {
        self.state = State::Idle;
        self.pending_fc = None;
    }

    fn fail(&mut self, e: RxError, emit: &mut impl FnMut(Event)) {
        self.abort();
        emit(Event::RxFailed(e));
    }

    /// Every SF or FF starts afresh: the previous message is gone, a reception in progress
    /// is aborted (N_UNEXP_PDU).
    fn begin(&mut self, emit: &mut impl FnMut(Event)) {
        self.complete = false;
        self.buf.clear();
        if !self.is_idle() {
            self.fail(RxError::Interrupted, emit);
        }
        self.pending_fc = None;
    }

    /// A single frame's message.
    pub fn on_single(&mut self, data: &[u8], emit: &mut impl FnMut(Event)) {
        self.begin(emit);
        if self.buf.extend_from_slice(data).is_err() {
            self.buf.clear();
            emit(Event::RxFailed(RxError::Overflow {
                len: data.len() as u32,
            }));
            return;
        }
        self.complete = true;
        emit(Event::Received { len: data.len() });
    }

    /// A first frame announcing `len` bytes, carried in a frame of `rx_dl` bytes (8 or a CAN
    /// FD size, as [`Pdu::decode`] checked) with `data` after the PCI.
    pub fn on_first(
        &mut self,
        len: u32,
        data: &[u8],
        rx_dl: usize,
        now: u64,
        emit: &mut impl FnMut(Event),
    ) {
        self.begin(emit);
        let fits = usize::try_from(len).is_ok_and(|l| l <= N);
        if !fits || data.len() > len as usize || self.buf.extend_from_slice(data).is_err() {
            self.buf.clear();
            self.pending_fc = Some((FlowStatus::Overflow, now));
            emit(Event::RxFailed(RxError::Overflow { len }));
            return;
        }
        self.state = State::Receiving {
            len: len as usize,
            rx_dl,
            sn: 1,
            in_block: 0,
            deadline: now.saturating_add(self.n_cr_us),
        };
        self.pending_fc = Some((FlowStatus::ContinueToSend, now));
    }

    /// A consecutive frame with sequence number `sn`, `data` after the PCI, in a frame of
    /// `frame_len` bytes. Returns `false` if it was ignored (no reception in progress).
    pub fn on_consecutive(
        &mut self,
        sn: u8,
        data: &[u8],
        frame_len: usize,
        now: u64,
        emit: &mut impl FnMut(Event),
    ) -> bool {
        let State::Receiving {
            len,
            rx_dl,
            sn: expected,
            in_block,
            ..
        } = self.state
        else {
            return false;
        };
        if sn != expected {
            self.fail(RxError::WrongSequence { expected, got: sn }, emit);
            return true;
        }
        let remaining = len.saturating_sub(self.buf.len());
        if frame_len > rx_dl || (data.len() < remaining && frame_len != rx_dl) {
            self.fail(RxError::BadConsecutiveFrame, emit);
            return true;
        }
        let take = remaining.min(data.len());
        if self
            .buf
            .extend_from_slice(data.get(..take).unwrap_or(&[]))
            .is_err()
        {
            // Cannot happen: `len` fits the buffer (checked at the first frame).
            self.fail(RxError::Overflow { len: len as u32 }, emit);
            return true;
        }
        if self.buf.len() >= len {
            self.state = State::Idle;
            self.pending_fc = None;
            self.complete = true;
            emit(Event::Received { len });
            return true;
        }
        let mut in_block = in_block.saturating_add(1);
        if self.block_size != 0 && in_block >= self.block_size {
            in_block = 0;
            self.pending_fc = Some((FlowStatus::ContinueToSend, now));
        }
        self.state = State::Receiving {
            len,
            rx_dl,
            sn: (expected + 1) & 0x0F,
            in_block,
            deadline: now.saturating_add(self.n_cr_us),
        };
        true
    }

    /// The flow control frame owed to the sender, if any. Restarts N_Cr: the timer runs from
    /// the flow control frame, not from the frame that asked for it.
    pub fn poll_transmit(&mut self, now: u64) -> Option<Vec<u8, FD_MAX_DL>> {
        let (status, _) = self.pending_fc.take()?;
        if let State::Receiving { deadline, .. } = &mut self.state {
            *deadline = now.saturating_add(self.n_cr_us);
        }
        Pdu::FlowControl {
            status,
            block_size: self.block_size,
            st_min: self.st_min,
        }
        .encode(self.padding)
    }

    /// Enforce N_Cr.
    pub fn handle_timeout(&mut self, now: u64, emit: &mut impl FnMut(Event)) {
        if let State::Receiving { deadline, .. } = self.state {
            if now >= deadline {
                self.fail(RxError::Timeout, emit);
            }
        }
    }

    /// When the receiver next needs attention: a flow control frame owed (due since then),
    /// or the N_Cr deadline. `None` when neither.
    pub fn next_deadline(&self) -> Option<u64> {
        if let Some((_, since)) = self.pending_fc {
            return Some(since);
        }
        match self.state {
            State::Idle => None,
            State::Receiving { deadline, .. } => Some(deadline),
        }
    }
}
