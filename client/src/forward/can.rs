//! The CAN forwarder: hands each verified image to its ECU over ISO-TP and the UDS-style
//! download session of `ota-ecu` (request download with the compact manifest, numbered data
//! blocks, transfer exit). The ECU verifies everything again before it activates the image;
//! its refusals come back as errors naming the reason.
//!
//! Buses: the UDP-carried bus (ECU simulators as separate processes on 127.0.0.1) or SocketCAN
//! (a real interface, classic frames). Each ECU listens on its `address` and answers on
//! `address + 8` (the usual diagnostic id pairing, e.g. 0x7E0/0x7E8).

use super::{ForwardError, Forwarder};
use crate::config::EcuConfig;
use ota_ecu::flasher::flash_image;
use ota_ecu::isotp::{standard_id, Config, Frame, Mode};
use ota_ecu::transport::Endpoint;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;

/// Which bus the forwarder opens for each ECU.
#[derive(Clone, Debug)]
pub enum CanBus {
    Udp {
        bind: SocketAddr,
        peers: Vec<SocketAddr>,
    },
    SocketCan {
        interface: String,
    },
}

pub struct CanForwarder {
    bus: CanBus,
    fd: bool,
    progress: bool,
}

impl CanForwarder {
    pub fn new(bus: CanBus, fd: bool) -> Self {
        CanForwarder {
            bus,
            fd,
            progress: std::io::stderr().is_terminal(),
        }
    }

    fn link(&self, ecu: &EcuConfig) -> Result<Config, ForwardError> {
        let bad = |reason: String| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason,
        };
        let address = ecu
            .address
            .ok_or_else(|| bad("no bus address configured (ecus.address)".into()))?;
        let (tx, rx) = (u16::try_from(address).ok(), u16::try_from(address + 8).ok());
        let (Some(tx), Some(rx)) = (tx.and_then(standard_id), rx.and_then(standard_id)) else {
            return Err(bad(format!(
                "address 0x{address:X} is not a standard CAN id pair"
            )));
        };
        let mut cfg = Config::new(tx, rx);
        if self.fd {
            cfg.mode = Mode::FD64;
        }
        Ok(cfg)
    }

    fn run<C>(
        &self,
        can: C,
        cfg: Config,
        ecu: &EcuConfig,
        manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError>
    where
        C: embedded_can::nb::Can<Frame = Frame>,
        C::Error: std::fmt::Debug,
    {
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        let mut ep = Endpoint::new(can, cfg).map_err(|e| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: format!("ISO-TP configuration: {e:?}"),
        })?;
        let len = std::fs::metadata(image).map_err(io)?.len();
        let mut f = std::io::BufReader::new(std::fs::File::open(image).map_err(io)?);
        let mut shown = 0u64;
        let show = self.progress;
        let result = flash_image(&mut ep, manifest, &mut f, len, |sent| {
            let pct = sent.saturating_mul(100).checked_div(len).unwrap_or(100);
            if show && pct >= shown + 5 {
                shown = pct;
                eprint!("\r  ECU {}: {pct:>3}% of {len} bytes over CAN", ecu.serial);
            }
        });
        if show {
            eprintln!();
        }
        result.map_err(|e| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: e.to_string(),
        })
    }
}

impl Forwarder for CanForwarder {
    fn forward(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        let cfg = self.link(ecu)?;
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        match &self.bus {
            CanBus::Udp { bind, peers } => {
                let bus = ota_ecu::bus::udp::UdpBus::bind(*bind, peers.clone()).map_err(io)?;
                self.run(bus, cfg, ecu, compact_manifest, image)
            }
            CanBus::SocketCan { interface } => {
                let bus = ota_ecu::bus::socketcan::SocketCanBus::open(interface).map_err(io)?;
                self.run(bus, cfg, ecu, compact_manifest, image)
            }
        }
    }
}
