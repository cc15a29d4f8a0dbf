//! One full-duplex ISO-TP connection: a sender and a receiver behind one pair of identifiers.

use super::frame::{Frame, CLASSIC_MAX_DL};
use super::pdu::{Pdu, PduError};
use super::rx::Receiver;
use super::tx::Sender;
use super::{Config, ConfigError, Event, RxError, SendError};
use heapless::Deque;

/// Room in the event queue. One call of any method adds at most two events, so a caller that
/// drains the queue after each call never loses one; past this the oldest is dropped (and
/// counted in [`Stats::events_dropped`]).
const EVENTS: usize = 8;

/// Counters for diagnostics (wrapping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames with this link's receive identifier handed to [`Link::handle_frame`].
    pub frames_received: u32,
    /// Frames handed out by [`Link::poll_transmit`].
    pub frames_sent: u32,
    /// Received frames ignored: malformed, or unexpected where the standard says to ignore
    /// (a CF while not receiving, an FC while not waiting for one).
    pub ignored: u32,
    pub events_dropped: u32,
}

/// A full-duplex ISO-TP link with a `TX`-byte transmit buffer and an `RX`-byte receive buffer.
/// See the [module documentation](super) for the driving loop.
#[derive(Clone, Debug)]
pub struct Link<const TX: usize, const RX: usize> {
    cfg: Config,
    tx: Sender<TX>,
    rx: Receiver<RX>,
    events: Deque<Event, EVENTS>,
    stats: Stats,
}

/// Queue an event, dropping the oldest when full.
fn push(events: &mut Deque<Event, EVENTS>, stats: &mut Stats, e: Event) {
    if events.is_full() {
        events.pop_front();
        stats.events_dropped = stats.events_dropped.wrapping_add(1);
    }
    let _ = events.push_back(e);
}

impl<const TX: usize, const RX: usize> Link<TX, RX> {
    pub fn new(cfg: Config) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Link {
            cfg,
            tx: Sender::new(&cfg),
            rx: Receiver::new(&cfg),
            events: Deque::new(),
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn sender(&self) -> &Sender<TX> {
        &self.tx
    }

    pub fn receiver(&self) -> &Receiver<RX> {
        &self.rx
    }

    /// No message being sent.
    pub fn is_tx_idle(&self) -> bool {
        self.tx.is_idle()
    }

    /// No message being received.
    pub fn is_rx_idle(&self) -> bool {
        self.rx.is_idle()
    }

    /// Start sending a message; its frames come out of [`Link::poll_transmit`].
    pub fn send(&mut self, payload: &[u8], now: u64) -> Result<(), SendError> {
        self.tx.start(payload, now)
    }

    /// Abandon the message being sent (no event, no frame: the peer times out).
    pub fn abort_tx(&mut self) {
        self.tx.abort();
    }

    /// Abandon everything: both directions and the queued events.
    pub fn reset(&mut self) {
        self.tx.abort();
        self.rx.abort();
        self.events.clear();
    }

    /// The last complete message (see [`Event::Received`]).
    pub fn received(&self) -> Option<&[u8]> {
        self.rx.message()
    }

    /// Take the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Feed a frame received from the bus at `now`. Returns `false` if the frame was not for
    /// this link or was ignored; frames for other identifiers are not counted.
    pub fn handle_frame(&mut self, frame: &Frame, now: u64) -> bool {
        if frame.id != self.cfg.rx_id {
            return false;
        }
        self.stats.frames_received = self.stats.frames_received.wrapping_add(1);
        let used = self.dispatch(frame, now);
        if !used {
            self.stats.ignored = self.stats.ignored.wrapping_add(1);
        }
        used
    }

    fn dispatch(&mut self, frame: &Frame, now: u64) -> bool {
        let classic_only = !self.cfg.mode.is_fd();
        if !frame.is_valid() || (classic_only && frame.data.len() > CLASSIC_MAX_DL) {
            return false;
        }
        let Link {
            tx,
            rx,
            events,
            stats,
            ..
        } = self;
        let mut emit = |e: Event| push(events, stats, e);
        match Pdu::decode(&frame.data) {
            Ok(Pdu::Single { data }) => {
                Self::mark_unread(events);
                rx.on_single(data, &mut |e| push(events, stats, e));
                true
            }
            Ok(Pdu::First { len, data }) => {
                Self::mark_unread(events);
                let rx_dl = frame.data.len();
                rx.on_first(len, data, rx_dl, now, &mut |e| push(events, stats, e));
                true
            }
            Ok(Pdu::Consecutive { sn, data }) => {
                rx.on_consecutive(sn, data, frame.data.len(), now, &mut emit)
            }
            Ok(Pdu::FlowControl {
                status,
                block_size,
                st_min,
            }) => tx.on_flow_control(status, block_size, st_min, now, &mut emit),
            Err(PduError::BadFlowStatus(fs)) => tx.on_invalid_flow_status(fs, &mut emit),
            Err(_) => false,
        }
    }

    /// A new message is about to replace the receive buffer: a `Received` event still queued
    /// would point at the wrong bytes, so it becomes `RxFailed(Unread)`.
    fn mark_unread(events: &mut Deque<Event, EVENTS>) {
        for e in events.iter_mut() {
            if matches!(e, Event::Received { .. }) {
                *e = Event::RxFailed(RxError::Unread);
            }
        }
    }

    /// Enforce the timeouts (N_Bs, N_Cr) at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let Link {
            tx,
            rx,
            events,
            stats,
            ..
        } = self;
        let mut emit = |e: Event| push(events, stats, e);
        tx.handle_timeout(now, &mut emit);
        rx.handle_timeout(now, &mut emit);
    }

    /// The next frame to put on the bus at `now`, if one is due: a flow control frame the
    /// receiver owes first, then the sender's next frame (respecting STmin). Call until `None`.
    pub fn poll_transmit(&mut self, now: u64) -> Option<Frame> {
        let Link {
            cfg,
            tx,
            rx,
            events,
            stats,
        } = self;
        let data = match rx.poll_transmit(now) {
            Some(d) => d,
            None => tx.poll_transmit(now, &mut |e| push(events, stats, e))?,
        };
        stats.frames_sent = stats.frames_sent.wrapping_add(1);
        Some(Frame {
            id: cfg.tx_id,
            data,
            fd: cfg.mode.is_fd(),
        })
    }

    /// The earliest time at which [`Link::poll_transmit`] or [`Link::handle_timeout`] has
    /// something to do (at or before `now`: do it now). `None`: nothing until a frame arrives
    /// or a message is sent.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.tx.next_deadline(), self.rx.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
