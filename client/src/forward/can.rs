//! The CAN forwarder: hands each verified image to its ECU over ISO-TP and the UDS-style
//! download session of `ota-ecu` (request download with the compact manifest, numbered data
//! blocks, transfer exit), then activates or discards it with the ECU's routines. The ECU
//! verifies everything again before it holds the image pending; its refusals come back as
//! errors naming the reason.
//!
//! Buses: the UDP-carried bus (ECU simulators as separate processes on 127.0.0.1) or SocketCAN
//! (a real interface, classic frames). Each ECU listens on its `address` and answers on
//! `address + 8` (the usual diagnostic id pairing, e.g. 0x7E0/0x7E8).

use super::{ForwardError, Forwarder, Payload, Sent};
use crate::config::EcuConfig;
use ota_ecu::bus::socketcan::SocketCanBus;
use ota_ecu::bus::udp::UdpBus;
use ota_ecu::bus::BusError;
use ota_ecu::delta::Encoding;
use ota_ecu::flasher::{self, FlashError};
use ota_ecu::isotp::{standard_id, Config, Frame, Mode};
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::Nrc;
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

/// The bus opened for one exchange.
enum OpenBus {
    Udp(UdpBus),
    SocketCan(SocketCanBus),
}

impl embedded_can::nb::Can for OpenBus {
    type Frame = Frame;
    type Error = BusError;

    fn transmit(&mut self, frame: &Frame) -> nb::Result<Option<Frame>, BusError> {
        match self {
            OpenBus::Udp(b) => b.transmit(frame),
            OpenBus::SocketCan(b) => b.transmit(frame),
        }
    }

    fn receive(&mut self) -> nb::Result<Frame, BusError> {
        match self {
            OpenBus::Udp(b) => b.receive(),
            OpenBus::SocketCan(b) => b.receive(),
        }
    }
}

pub struct CanForwarder {
    bus: CanBus,
    fd: bool,
    progress: bool,
    /// Whole images go packed when that is smaller.
    compress: bool,
}

impl CanForwarder {
    pub fn new(bus: CanBus, fd: bool) -> Self {
        CanForwarder {
            bus,
            fd,
            progress: std::io::stderr().is_terminal(),
            compress: true,
        }
    }

    /// Whether whole images go packed when that is smaller (the default), or as they are.
    pub fn compress(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
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

    /// An ISO-TP endpoint to `ecu` over a freshly opened bus, the ECU in its programming
    /// session (its bootloader: an ECU running its application resets into it first).
    fn endpoint(&self, ecu: &EcuConfig) -> Result<Endpoint<OpenBus>, ForwardError> {
        let mut ep = self.open(ecu)?;
        flasher::enter_programming(&mut ep).map_err(|e| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: format!("no programming session: {e}"),
        })?;
        Ok(ep)
    }

    /// An ISO-TP endpoint to `ecu` over a freshly opened bus.
    fn open(&self, ecu: &EcuConfig) -> Result<Endpoint<OpenBus>, ForwardError> {
        let cfg = self.link(ecu)?;
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        let bus = match &self.bus {
            CanBus::Udp { bind, peers } => {
                OpenBus::Udp(UdpBus::bind(*bind, peers.clone()).map_err(io)?)
            }
            CanBus::SocketCan { interface } => {
                OpenBus::SocketCan(SocketCanBus::open(interface).map_err(io)?)
            }
        };
        Endpoint::new(bus, cfg).map_err(|e| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: format!("ISO-TP configuration: {e:?}"),
        })
    }
}

/// Images this large or larger are sent as they are: packing holds them in memory twice.
const MAX_PACKED: usize = 64 << 20;

/// `image` packed ([`ota_ecu::delta`]), if that saves bytes on the bus.
fn pack(image: &[u8]) -> Option<Vec<u8>> {
    if image.len() >= MAX_PACKED {
        return None;
    }
    let packed = ota_ecu::delta::make::packed(image);
    (packed.len() < image.len()).then_some(packed)
}

impl CanForwarder {
    /// One download of `data` (the image in `encoding`) to `ecu`, with progress.
    fn send(
        &self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        bundle: Option<&[u8]>,
        encoding: Encoding,
        data: &[u8],
    ) -> Result<Sent, ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        let len = data.len() as u64;
        let mut shown = 0u64;
        let show = self.progress;
        let mut halfway = false;
        let what = encoding.name();
        let result = flasher::flash_encoded(
            &mut ep,
            compact_manifest,
            bundle,
            encoding,
            &mut &data[..],
            len,
            |sent| {
                if !halfway && sent.saturating_mul(2) >= len {
                    halfway = true;
                    crate::fault::point(|| format!("half of the image sent to ECU {}", ecu.serial));
                }
                let pct = sent.saturating_mul(100).checked_div(len).unwrap_or(100);
                if show && pct >= shown + 5 {
                    shown = pct;
                    eprint!(
                        "\r  ECU {}: {pct:>3}% of {len} bytes ({what}) over CAN",
                        ecu.serial
                    );
                }
            },
        );
        if show {
            crate::out::err_line(format_args!(""));
        }
        result.map_err(flash_err(ecu))?;
        Ok(Sent {
            encoding,
            bytes: len,
        })
    }
}

fn flash_err(ecu: &EcuConfig) -> impl FnOnce(FlashError) -> ForwardError + '_ {
    |source| match source {
        FlashError::Refused {
            nrc: Some(Nrc::NothingPending),
            ..
        } => ForwardError::NothingPending {
            serial: ecu.serial.clone(),
        },
        source => ForwardError::Flash {
            serial: ecu.serial.clone(),
            source,
        },
    }
}

impl Forwarder for CanForwarder {
    fn identify(
        &mut self,
        ecu: &EcuConfig,
    ) -> Result<Option<ota_ecu::uds::Identification>, ForwardError> {
        use ota_ecu::uds::{client, READ_DATA_BY_ID};
        let bad = |reason: String| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason,
        };
        let mut ep = self.endpoint(ecu)?;
        let resp = ep
            .request(&client::read_identification(), flasher::ANSWER_TIMEOUT)
            .map_err(|e| bad(format!("no identification: {e}")))?;
        // Read after an activation or for a report: the gateway is done with this ECU.
        flasher::leave_programming(&mut ep);
        let payload = client::check(READ_DATA_BY_ID, &resp)
            .map_err(|e| bad(format!("identification refused: {e:?}")))?;
        client::parse_identification(payload)
            .map(Some)
            .ok_or_else(|| bad("malformed identification".into()))
    }

    fn report(&mut self, ecu: &EcuConfig, nonce: &[u8; 16]) -> Result<EcuReport, ForwardError> {
        use ota_ecu::uds::{client, READ_DATA_BY_ID};
        let bad = |reason: String| ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason,
        };
        let mut ep = self.endpoint(ecu)?;
        let resp = ep
            .request(&client::read_signed_report(nonce), flasher::ANSWER_TIMEOUT)
            .map_err(|e| bad(format!("no version report: {e}")))?;
        flasher::leave_programming(&mut ep);
        let payload = client::check(READ_DATA_BY_ID, &resp).map_err(|e| {
            bad(match e {
                // What an ECU without a key of its own answers (see `uds::Server::signer`).
                client::ResponseError::Negative(Nrc::RequestOutOfRange) => {
                    "signs no version reports: it has no key of its own (an ECU key is \
                     provisioned at the factory, e.g. `ota-ecu-sim --ecu-key`)"
                        .into()
                }
                e => format!("version report refused: {e:?}"),
            })
        })?;
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

    fn stage(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        self.stage_attested(ecu, compact_manifest, &[], image)
    }

    fn stage_attested(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        bundle: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        self.stage_payload(ecu, compact_manifest, bundle, Payload::Image(image))
            .map(|_| ())
    }

    fn carries_deltas(&self) -> bool {
        true
    }

    /// Images go packed when that is smaller (and back as they are to an ECU that does not
    /// know the encoding); deltas as they are.
    fn stage_payload(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        bundle: &[u8],
        payload: Payload<'_>,
    ) -> Result<Option<Sent>, ForwardError> {
        let io = |source| ForwardError::Io {
            serial: ecu.serial.clone(),
            source,
        };
        let bundle = (!bundle.is_empty()).then_some(bundle);
        let (path, encoding) = match payload {
            Payload::Delta(p) => (p, Encoding::Delta),
            Payload::Image(p) => (p, Encoding::Plain),
        };
        let data = std::fs::read(path).map_err(io)?;
        if encoding == Encoding::Plain && self.compress {
            if let Some(packed) = pack(&data) {
                match self.send(ecu, compact_manifest, bundle, Encoding::Packed, &packed) {
                    // An ECU whose bootloader predates packed images: send the image as it is.
                    Err(e) if e.nrc() == Some(Nrc::RequestOutOfRange) => {}
                    sent => return sent.map(Some),
                }
            }
        }
        self.send(ecu, compact_manifest, bundle, encoding, &data)
            .map(Some)
    }

    fn send_instruction(
        &mut self,
        ecu: &EcuConfig,
        instruction: &[u8],
    ) -> Result<(), ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        flasher::send_instruction(&mut ep, instruction).map_err(flash_err(ecu))
    }

    fn trust_version(&mut self, ecu: &EcuConfig) -> Result<Option<u32>, ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        let (version, _mode) = flasher::trust_version(&mut ep).map_err(flash_err(ecu))?;
        Ok(Some(version))
    }

    fn send_trust(&mut self, ecu: &EcuConfig, doc: &[u8]) -> Result<u32, ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        flasher::send_trust(&mut ep, doc).map_err(flash_err(ecu))
    }

    fn activate(&mut self, ecu: &EcuConfig, sha256: &[u8; 32]) -> Result<(), ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        flasher::activate(&mut ep, sha256).map_err(flash_err(ecu))
    }

    fn discard(&mut self, ecu: &EcuConfig) -> Result<(), ForwardError> {
        let mut ep = self.endpoint(ecu)?;
        flasher::discard(&mut ep).map_err(flash_err(ecu))
    }
}
