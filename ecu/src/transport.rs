//! A blocking ISO-TP endpoint over any `embedded-can` bus (host side: the gateway's forwarder
//! and the ECU simulator). It drives the sans-I/O [`Link`] with the wall clock: receive what
//! the bus has, run the timers, transmit what the link hands out, and sleep briefly when idle.

use crate::isotp::{Config, Event, Frame, Link, RxError, SendError, TxError};
use embedded_can::nb::Can;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// Largest message either way: a data block (4093 bytes + 2) or a manifest, with room.
pub const MAX_MESSAGE: usize = 4096;

#[derive(Debug)]
pub enum TransportError<E> {
    Bus(E),
    Send(SendError),
    Tx(TxError),
    Rx(RxError),
    /// Nothing (or not all of it) within the time allowed.
    Timeout,
}

impl<E: core::fmt::Debug> core::fmt::Display for TransportError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransportError::Bus(e) => write!(f, "bus error: {e:?}"),
            TransportError::Send(e) => write!(f, "cannot send: {e}"),
            TransportError::Tx(e) => write!(f, "ISO-TP send failed: {e:?}"),
            TransportError::Rx(e) => write!(f, "ISO-TP receive failed: {e:?}"),
            TransportError::Timeout => f.write_str("timed out"),
        }
    }
}

pub struct Endpoint<C: Can<Frame = Frame>> {
    pub can: C,
    pub link: Link<MAX_MESSAGE, MAX_MESSAGE>,
    start: Instant,
    /// A completed message not yet taken.
    inbox: Option<Vec<u8>>,
    /// Frames put on the bus.
    pub frames_sent: u64,
}

impl<C: Can<Frame = Frame>> Endpoint<C> {
    pub fn new(can: C, cfg: Config) -> Result<Self, crate::isotp::ConfigError> {
        Ok(Endpoint {
            can,
            link: Link::new(cfg)?,
            start: Instant::now(),
            inbox: None,
            frames_sent: 0,
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// One round: take in frames, run timers, send frames. Returns the events of the round and
    /// whether anything happened.
    fn pump(&mut self, events: &mut Vec<Event>) -> Result<bool, TransportError<C::Error>> {
        let mut busy = false;
        loop {
            match self.can.receive() {
                Ok(f) => {
                    busy = true;
                    let now = self.now();
                    self.link.handle_frame(&f, now);
                    self.drain(events);
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => return Err(TransportError::Bus(e)),
            }
        }
        let now = self.now();
        self.link.handle_timeout(now);
        while let Some(f) = self.link.poll_transmit(now) {
            busy = true;
            loop {
                match self.can.transmit(&f) {
                    Ok(_) => break,
                    Err(nb::Error::WouldBlock) => std::thread::sleep(Duration::from_micros(50)),
                    Err(nb::Error::Other(e)) => return Err(TransportError::Bus(e)),
                }
            }
            self.frames_sent += 1;
        }
        self.drain(events);
        Ok(busy)
    }

    fn drain(&mut self, events: &mut Vec<Event>) {
        while let Some(ev) = self.link.poll_event() {
            if let Event::Received { .. } = ev {
                self.inbox = self.link.received().map(<[u8]>::to_vec);
            }
            events.push(ev);
        }
    }

    fn idle(&self) {
        // Wake for the link's next deadline (STmin, timeouts) or shortly, for new frames.
        let now = self.now();
        let wait = self
            .link
            .poll_timeout()
            .map_or(200, |t| t.saturating_sub(now).min(200));
        if wait > 0 {
            std::thread::sleep(Duration::from_micros(wait));
        }
    }

    /// Send one message and wait until its last frame is on the bus.
    pub fn send(
        &mut self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), TransportError<C::Error>> {
        let now = self.now();
        self.link.send(payload, now).map_err(TransportError::Send)?;
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let busy = self.pump(&mut events)?;
            for ev in events.drain(..) {
                match ev {
                    Event::Sent { .. } => return Ok(()),
                    Event::TxFailed(e) => return Err(TransportError::Tx(e)),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                self.link.abort_tx();
                return Err(TransportError::Timeout);
            }
            if !busy {
                self.idle();
            }
        }
    }

    /// Wait for the next complete message.
    pub fn receive(&mut self, timeout: Duration) -> Result<Vec<u8>, TransportError<C::Error>> {
        if let Some(m) = self.inbox.take() {
            return Ok(m);
        }
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let busy = self.pump(&mut events)?;
            for ev in events.drain(..) {
                if let Event::RxFailed(e) = ev {
                    return Err(TransportError::Rx(e));
                }
            }
            if let Some(m) = self.inbox.take() {
                return Ok(m);
            }
            if Instant::now() > deadline {
                return Err(TransportError::Timeout);
            }
            if !busy {
                self.idle();
            }
        }
    }

    /// Send a request and wait for the answer.
    pub fn request(
        &mut self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError<C::Error>> {
        self.inbox = None;
        self.send(payload, timeout)?;
        self.receive(timeout)
    }
}
