//! An in-memory CAN bus: every frame one node transmits is queued for every other node.
//! Shared through `Arc<Mutex<…>>`, so nodes may live on different threads.

use crate::isotp::Frame;
use core::convert::Infallible;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// The bus: create nodes from it.
#[derive(Clone, Default)]
pub struct MemBus {
    queues: Arc<Mutex<Vec<VecDeque<Frame>>>>,
}

impl MemBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new node attached to the bus.
    pub fn node(&self) -> MemNode {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.push(VecDeque::new());
        MemNode {
            bus: self.clone(),
            index: q.len() - 1,
            sent: 0,
        }
    }
}

pub struct MemNode {
    bus: MemBus,
    index: usize,
    /// Frames this node transmitted.
    pub sent: u64,
}

impl embedded_can::nb::Can for MemNode {
    type Frame = Frame;
    type Error = Infallible;

    fn transmit(&mut self, frame: &Frame) -> nb::Result<Option<Frame>, Infallible> {
        let mut q = self.bus.queues.lock().unwrap_or_else(|e| e.into_inner());
        for (i, queue) in q.iter_mut().enumerate() {
            if i != self.index {
                queue.push_back(frame.clone());
            }
        }
        self.sent += 1;
        Ok(None)
    }

    fn receive(&mut self) -> nb::Result<Frame, Infallible> {
        let mut q = self.bus.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.get_mut(self.index)
            .and_then(VecDeque::pop_front)
            .ok_or(nb::Error::WouldBlock)
    }
}
