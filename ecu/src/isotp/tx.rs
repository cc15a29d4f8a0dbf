//! The sender: segmentation and the transmit side of flow control.

use super::pdu::{first_frame_capacity, max_single, FlowStatus, Pdu, StMin};
use super::{Config, Event, SendError, TxError, FD_MAX_DL};
use heapless::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// A message waits to go out as a single or first frame since `since`.
    First {
        since: u64,
    },
    /// FF or a block sent: waiting for flow control until `deadline` (N_Bs).
    WaitFc {
        deadline: u64,
    },
    /// Sending consecutive frames: the next may go at `next_at`; `block_left` frames remain
    /// in this block (0 when the receiver asked for no more flow control).
    Consecutive {
        next_at: u64,
        block_left: u8,
    },
}

/// Segments one message at a time, held in an `N`-byte buffer.
///
/// Sans-I/O: [`Sender::start`] queues a message, [`Sender::poll_transmit`] hands out the next
/// frame's data when it is due, [`Sender::on_flow_control`] takes the receiver's flow control,
/// [`Sender::handle_timeout`] enforces N_Bs, and [`Sender::next_deadline`] tells when to call
/// back (the earliest time the next CF may go, or the N_Bs deadline).
#[derive(Clone, Debug)]
pub struct Sender<const N: usize> {
    tx_dl: usize,
    padding: Option<u8>,
    n_bs_us: u64,
    wft_max: u8,
    buf: Vec<u8, N>,
    offset: usize,
    sn: u8,
    block_size: u8,
    st_min_us: u32,
    waits: u8,
    state: State,
}

impl<const N: usize> Sender<N> {
    /// A sender with the link's TX_DL, padding, N_Bs and N_WFTmax. An invalid TX_DL (see
    /// [`Config::validate`]) falls back to 8-byte frames.
    pub fn new(cfg: &Config) -> Self {
        let tx_dl = if cfg.mode.is_valid() {
            cfg.mode.tx_dl()
        } else {
            super::CLASSIC_MAX_DL
        };
        Sender {
            tx_dl,
            padding: cfg.padding,
            n_bs_us: cfg.n_bs_us,
            wft_max: cfg.wft_max,
            buf: Vec::new(),
            offset: 0,
            sn: 0,
            block_size: 0,
            st_min_us: 0,
            waits: 0,
            state: State::Idle,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Waiting for a flow control frame.
    pub fn is_waiting_for_fc(&self) -> bool {
        matches!(self.state, State::WaitFc { .. })
    }

    /// Bytes of the current message handed out so far, and its length.
    pub fn progress(&self) -> (usize, usize) {
        (self.offset, self.buf.len())
    }

    /// The separation time the receiver asked for, as the sender applies it.
    pub fn st_min_us(&self) -> u32 {
        self.st_min_us
    }

    /// Queue a message. Its first frame is due at once.
    pub fn start(&mut self, payload: &[u8], now: u64) -> Result<(), SendError> {
        if !self.is_idle() {
            return Err(SendError::Busy);
        }
        if payload.is_empty() {
            return Err(SendError::Empty);
        }
        let max = N.min(u32::MAX as usize);
        if payload.len() > max {
            return Err(SendError::TooLong {
                len: payload.len(),
                max,
            });
        }
        self.buf.clear();
        self.buf
            .extend_from_slice(payload)
            .map_err(|_| SendError::TooLong {
                len: payload.len(),
                max,
            })?;
        self.offset = 0;
        self.sn = 1;
        self.waits = 0;
        self.block_size = 0;
        self.st_min_us = 0;
        self.state = State::First { since: now };
        Ok(())
    }

    /// Drop the current message, if any, without an event.
    pub fn abort(&mut self) {
        self.state = State::Idle;
        self.buf.clear();
        self.offset = 0;
    }

    fn fail(&mut self, e: TxError, emit: &mut impl FnMut(Event)) {
        self.abort();
        emit(Event::TxFailed(e));
    }

    /// The data of the next frame to send, if one is due at `now`. Emits [`Event::Sent`] with
    /// the last frame of a message.
    pub fn poll_transmit(
        &mut self,
        now: u64,
        emit: &mut impl FnMut(Event),
    ) -> Option<Vec<u8, FD_MAX_DL>> {
        match self.state {
            State::Idle | State::WaitFc { .. } => None,
            State::First { .. } => {
                let len = self.buf.len();
                if len <= max_single(self.tx_dl) {
                    let Some(frame) = (Pdu::Single { data: &self.buf }).encode(self.padding) else {
                        self.fail(TxError::Internal, emit);
                        return None;
                    };
                    self.abort();
                    emit(Event::Sent { len });
                    return Some(frame);
                }
                let cap = first_frame_capacity(self.tx_dl, len as u64).min(len);
                let pdu = Pdu::First {
                    len: len as u32,
                    data: self.buf.get(..cap).unwrap_or(&[]),
                };
                let Some(frame) = pdu.encode(self.padding) else {
                    self.fail(TxError::Internal, emit);
                    return None;
                };
                self.offset = cap;
                self.sn = 1;
                self.state = State::WaitFc {
                    deadline: now.saturating_add(self.n_bs_us),
                };
                Some(frame)
            }
            State::Consecutive {
                next_at,
                block_left,
            } => {
                if now < next_at {
                    return None;
                }
                let rest = self.buf.get(self.offset..).unwrap_or(&[]);
                let take = rest.len().min(self.tx_dl - 1);
                let pdu = Pdu::Consecutive {
                    sn: self.sn,
                    data: rest.get(..take).unwrap_or(&[]),
                };
                let Some(frame) = pdu.encode(self.padding) else {
                    self.fail(TxError::Internal, emit);
                    return None;
                };
                self.offset += take;
                self.sn = (self.sn + 1) & 0x0F;
                if self.offset >= self.buf.len() {
                    let len = self.buf.len();
                    self.abort();
                    emit(Event::Sent { len });
                } else if block_left == 1 {
                    self.state = State::WaitFc {
                        deadline: now.saturating_add(self.n_bs_us),
                    };
                } else {
                    self.state = State::Consecutive {
                        next_at: now.saturating_add(u64::from(self.st_min_us)),
                        block_left: block_left.saturating_sub(1),
                    };
                }
                Some(frame)
            }
        }
    }

    /// A flow control frame from the receiver. Returns `false` if it was ignored because the
    /// sender was not waiting for one.
    pub fn on_flow_control(
        &mut self,
        status: FlowStatus,
        block_size: u8,
        st_min: StMin,
        now: u64,
        emit: &mut impl FnMut(Event),
    ) -> bool {
        if !self.is_waiting_for_fc() {
            return false;
        }
        match status {
            FlowStatus::ContinueToSend => {
                self.waits = 0;
                self.block_size = block_size;
                self.st_min_us = st_min.as_micros();
                self.state = State::Consecutive {
                    next_at: now,
                    block_left: block_size,
                };
            }
            FlowStatus::Wait => {
                self.waits = self.waits.saturating_add(1);
                if self.waits > self.wft_max {
                    self.fail(TxError::WaitLimit, emit);
                } else {
                    self.state = State::WaitFc {
                        deadline: now.saturating_add(self.n_bs_us),
                    };
                }
            }
            FlowStatus::Overflow => self.fail(TxError::Overflow, emit),
        }
        true
    }

    /// A flow control frame with a reserved flow status: aborts a sender waiting for flow
    /// control, ignored otherwise (returns `false`).
    pub fn on_invalid_flow_status(&mut self, status: u8, emit: &mut impl FnMut(Event)) -> bool {
        if !self.is_waiting_for_fc() {
            return false;
        }
        self.fail(TxError::InvalidFlowStatus(status), emit);
        true
    }

    /// Enforce N_Bs.
    pub fn handle_timeout(&mut self, now: u64, emit: &mut impl FnMut(Event)) {
        if let State::WaitFc { deadline } = self.state {
            if now >= deadline {
                self.fail(TxError::Timeout, emit);
            }
        }
    }

    /// When the sender next needs attention: the time its next frame is due (possibly in the
    /// past: send now), or its N_Bs deadline. `None` when idle.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::Idle => None,
            State::First { since } => Some(since),
            State::WaitFc { deadline } => Some(deadline),
            State::Consecutive { next_at, .. } => Some(next_at),
        }
    }
}
