//! A CAN bus carried over UDP: each node binds a local address and sends every frame it
//! transmits to all its peers, one frame per datagram ([`super::encode_frame`]). With the
//! gateway peering with every ECU and each ECU with the gateway, this behaves as a shared bus
//! between processes on 127.0.0.1. Datagrams that do not decode are dropped.

pub use imp::UdpBus;

mod imp {
    use super::super::{decode_frame, encode_frame, BusError};
    use crate::isotp::Frame;
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::vec::Vec;

    pub struct UdpBus {
        socket: UdpSocket,
        peers: Vec<SocketAddr>,
        /// Frames transmitted, and datagrams dropped as malformed.
        pub sent: u64,
        pub dropped: u64,
    }

    impl UdpBus {
        pub fn bind(local: SocketAddr, peers: Vec<SocketAddr>) -> io::Result<Self> {
            let socket = UdpSocket::bind(local)?;
            socket.set_nonblocking(true)?;
            Ok(UdpBus {
                socket,
                peers,
                sent: 0,
                dropped: 0,
            })
        }

        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            self.socket.local_addr()
        }

        pub fn add_peer(&mut self, peer: SocketAddr) {
            if !self.peers.contains(&peer) {
                self.peers.push(peer);
            }
        }
    }

    impl embedded_can::nb::Can for UdpBus {
        type Frame = Frame;
        type Error = BusError;

        fn transmit(&mut self, frame: &Frame) -> nb::Result<Option<Frame>, BusError> {
            let mut buf = [0u8; 70];
            let n = encode_frame(frame, &mut buf);
            for p in &self.peers {
                match self.socket.send_to(&buf[..n], p) {
                    Ok(_) => {}
                    // A full socket buffer is a busy bus: try again.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(nb::Error::WouldBlock)
                    }
                    // A peer that is not (yet) listening: the frame is lost, as on a bus.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(nb::Error::Other(BusError(e))),
                }
            }
            self.sent += 1;
            Ok(None)
        }

        fn receive(&mut self) -> nb::Result<Frame, BusError> {
            let mut buf = [0u8; 128];
            loop {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, _)) => match decode_frame(&buf[..n]) {
                        Some(f) => return Ok(f),
                        None => self.dropped += 1,
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(nb::Error::WouldBlock)
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(nb::Error::Other(BusError(e))),
                }
            }
        }
    }
}
