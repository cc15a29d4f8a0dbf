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
use ota_metadata::documents::EcuReport;
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

impl CanForwarder {
    fn ask_report<C>(
        &self,
        can: C,
        cfg: Config,
        ecu: &EcuConfig,
        nonce: &[u8; 16],
    ) -> Result<EcuReport, ForwardError>
    where
        C: embedded_can::nb::Can<Frame = Frame>,
        C::Error: std::fmt::Debug,
    {
        use ota_ecu::uds::{client, READ_DATA_BY_ID};
        let bad = |reason: String| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason,
        };
        let mut ep =
            Endpoint::new(can, cfg).map_err(|e| bad(format!("ISO-TP configuration: {e:?}")))?;
        let resp = ep
            .request(
                &client::read_signed_report(nonce),
                ota_ecu::flasher::ANSWER_TIMEOUT,
            )
            .map_err(|e| bad(format!("no version report: {e}")))?;
        let payload = client::check(READ_DATA_BY_ID, &resp)
            .map_err(|e| bad(format!("version report refused: {e:?}")))?;
        let client::SignedReport {
            identification: id,
            raw,
            nonce: echoed,
            signature: sig,
        } = client::parse_signed_report(payload)
            .ok_or_else(|| bad("malformed version report".into()))?;
        if &echoed != nonce {
            return Err(bad(
                "the version report answers another nonce (replayed?)".into()
            ));
        }
        let (uid, version) = id.image.map_or((String::new(), String::new()), |(u, v)| {
            (u.as_str().into(), v.as_str().into())
        });
        Ok(EcuReport {
            serial: id.serial.as_str().into(),
            hardware_id: id.hardware_id.as_str().into(),
            uid,
            version,
            sha256: hex::encode(id.sha256),
            length: id.length,
            release_counter: id.release_counter,
            identification: hex::encode(raw),
            nonce: hex::encode(nonce),
            signature: hex::encode(sig),
        })
    }
}

impl Forwarder for CanForwarder {
    fn report(&mut self, ecu: &EcuConfig, nonce: &[u8; 16]) -> Result<EcuReport, ForwardError> {
        let cfg = self.link(ecu)?;
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        match &self.bus {
            CanBus::Udp { bind, peers } => {
                let bus = ota_ecu::bus::udp::UdpBus::bind(*bind, peers.clone()).map_err(io)?;
                self.ask_report(bus, cfg, ecu, nonce)
            }
            CanBus::SocketCan { interface } => {
                let bus = ota_ecu::bus::socketcan::SocketCanBus::open(interface).map_err(io)?;
                self.ask_report(bus, cfg, ecu, nonce)
            }
        }
    }

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
