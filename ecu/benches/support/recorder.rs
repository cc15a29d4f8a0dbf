//! A bus node that records what it sends, shared by the ECU and delta benchmarks.

use ota_ecu::isotp::Frame;

/// A bus node that keeps a copy of every frame it puts on the bus.
pub struct Recorder<C> {
    pub inner: C,
    pub sent: Vec<Frame>,
}

impl<C: embedded_can::nb::Can<Frame = Frame>> embedded_can::nb::Can for Recorder<C> {
    type Frame = Frame;
    type Error = C::Error;

    fn transmit(&mut self, frame: &Frame) -> nb::Result<Option<Frame>, C::Error> {
        let r = self.inner.transmit(frame);
        if r.is_ok() {
            self.sent.push(frame.clone());
        }
        r
    }

    fn receive(&mut self) -> nb::Result<Frame, C::Error> {
        self.inner.receive()
    }
}
