//! SocketCAN (Linux): a real CAN interface such as `can0` or `vcan0`, classic frames, through
//! the `socketcan` crate's `embedded-can` implementation. This development machine's kernel has
//! no CAN support, so this backend is compiled (feature `socketcan`) but only runs on a vehicle
//! computer or a Linux host with CAN.

use super::BusError;
use crate::isotp::Frame;
use socketcan::{CanSocket, Socket};
use std::string::ToString;

/// An ISO-TP-ready SocketCAN interface: converts between this crate's frames and SocketCAN's.
pub struct SocketCanBus {
    socket: CanSocket,
}

impl SocketCanBus {
    /// Open interface `name` (e.g. `can0`), non-blocking.
    pub fn open(name: &str) -> std::io::Result<Self> {
        let socket = CanSocket::open(name)?;
        socket.set_nonblocking(true)?;
        Ok(SocketCanBus { socket })
    }
}

impl embedded_can::nb::Can for SocketCanBus {
    type Frame = Frame;
    type Error = BusError;

    fn transmit(&mut self, frame: &Frame) -> nb::Result<Option<Frame>, BusError> {
        if frame.fd {
            return Err(nb::Error::Other(BusError(std::io::Error::other(
                "CAN FD frames need an FD socket; this backend carries classic frames",
            ))));
        }
        let f: socketcan::CanFrame = frame.to_can().ok_or_else(|| {
            nb::Error::Other(BusError(std::io::Error::other("frame not representable")))
        })?;
        match embedded_can::nb::Can::transmit(&mut self.socket, &f) {
            Ok(_) => Ok(None),
            Err(nb::Error::WouldBlock) => Err(nb::Error::WouldBlock),
            Err(nb::Error::Other(e)) => Err(nb::Error::Other(BusError(std::io::Error::other(
                e.to_string(),
            )))),
        }
    }

    fn receive(&mut self) -> nb::Result<Frame, BusError> {
        match embedded_can::nb::Can::receive(&mut self.socket) {
            Ok(f) => Frame::from_can(&f).ok_or(nb::Error::WouldBlock),
            Err(nb::Error::WouldBlock) => Err(nb::Error::WouldBlock),
            Err(nb::Error::Other(e)) => Err(nb::Error::Other(BusError(std::io::Error::other(
                e.to_string(),
            )))),
        }
    }
}
