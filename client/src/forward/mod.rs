//! Phase two of an update: handing each verified image to its ECU. The forwarder is a trait so
//! the gateway does not care how ECUs are reached: a directory per ECU here (tests, ECUs with
//! a file-based bootloader), CAN with ISO-TP and UDS in the ECU crate's backends.
//!
//! Delivery is split so the gateway can update a vehicle all or nothing:
//! [`Forwarder::stage`] puts an image into the ECU's inactive slot, where the ECU verifies it
//! and keeps it *pending*; [`Forwarder::activate`] switches the ECU to it, and
//! [`Forwarder::discard`] drops it. Both are idempotent, so a gateway that lost power can
//! simply send them again.

mod can;
mod dir;

pub use can::{CanBus, CanForwarder};
pub use dir::DirForwarder;
pub use ota_ecu::delta::Encoding;

use crate::config::EcuConfig;
use ota_ecu::flasher::FlashError;
use ota_ecu::uds::Nrc;
use ota_metadata::documents::EcuReport;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The ECU refused a request, or the exchange with it failed.
    #[error("ECU {serial}: {source}")]
    Flash {
        serial: String,
        #[source]
        source: FlashError,
    },
    /// The ECU has no pending image of that hash to activate (nor is it active).
    #[error("ECU {serial}: no verified image of that hash is pending or active")]
    NothingPending { serial: String },
    #[error("ECU {serial}: {reason}")]
    Ecu { serial: String, reason: String },
    #[error("ECU {serial}: {source}")]
    Io {
        serial: String,
        #[source]
        source: std::io::Error,
    },
}

impl ForwardError {
    /// The ECU the error is about.
    pub fn serial(&self) -> &str {
        match self {
            ForwardError::Flash { serial, .. }
            | ForwardError::NothingPending { serial }
            | ForwardError::Ecu { serial, .. }
            | ForwardError::Io { serial, .. } => serial,
        }
    }

    /// The UDS negative response code, when the ECU refused.
    pub fn nrc(&self) -> Option<Nrc> {
        match self {
            ForwardError::Flash {
                source: FlashError::Refused { nrc, .. },
                ..
            } => *nrc,
            ForwardError::NothingPending { .. } => Some(Nrc::NothingPending),
            _ => None,
        }
    }
}

/// What phase two hands an ECU: the verified image, or a delta (`ota_ecu::delta`) that
/// rebuilds it from the image the ECU runs. Either way the ECU checks the image it ends up
/// with against the compact manifest.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'p> {
    Image(&'p Path),
    Delta(&'p Path),
}

/// How a payload went over the bus: its encoding there (an image may be sent packed), and
/// the bytes sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub encoding: Encoding,
    pub bytes: u64,
}

pub trait Forwarder {
    /// Deliver `image` with its supplier-signed `compact_manifest` into `ecu`'s inactive slot;
    /// `Ok` only when the ECU verified it and holds it pending. The ECU keeps running its
    /// active image until [`Forwarder::activate`].
    fn stage(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError>;

    /// [`Forwarder::stage`] with the regulators' compact attestation `bundle` (empty: none),
    /// which a full-verification ECU requires; forwarders whose ECUs do not check it ignore it.
    fn stage_attested(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        bundle: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError> {
        let _ = bundle;
        self.stage(ecu, compact_manifest, image)
    }

    /// Whether [`Forwarder::stage_payload`] can carry a delta: when it cannot, the gateway
    /// does not download one.
    fn carries_deltas(&self) -> bool {
        false
    }

    /// Deliver `payload` (see [`Payload`]) as [`Forwarder::stage_attested`] delivers an image,
    /// and say how it went over the bus; `Ok(None)` when this forwarder cannot carry a delta
    /// (the gateway then sends the image). The default sends images as they are.
    fn stage_payload(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        bundle: &[u8],
        payload: Payload<'_>,
    ) -> Result<Option<Sent>, ForwardError> {
        match payload {
            Payload::Image(image) => {
                self.stage_attested(ecu, compact_manifest, bundle, image)?;
                let bytes = std::fs::metadata(image)
                    .map_err(|source| ForwardError::Io {
                        serial: ecu.serial.clone(),
                        source,
                    })?
                    .len();
                Ok(Some(Sent {
                    encoding: Encoding::Plain,
                    bytes,
                }))
            }
            Payload::Delta(_) => Ok(None),
        }
    }

    /// Give `ecu` the OEM's instruction (`ota_ecu::instruction`) for the download that
    /// follows; forwarders whose ECUs do not check instructions ignore it.
    fn send_instruction(
        &mut self,
        ecu: &EcuConfig,
        instruction: &[u8],
    ) -> Result<(), ForwardError> {
        let _ = (ecu, instruction);
        Ok(())
    }

    /// Switch `ecu` to its pending image of SHA-256 `sha256`. Idempotent: `Ok` also when that
    /// image is already the active one.
    fn activate(&mut self, ecu: &EcuConfig, sha256: &[u8; 32]) -> Result<(), ForwardError>;

    /// Drop `ecu`'s pending image, if any; its active image stays. Idempotent.
    fn discard(&mut self, ecu: &EcuConfig) -> Result<(), ForwardError>;

    /// The version of the trust document `ecu` holds (see `ota_ecu::trust`): `None` when this
    /// forwarder's ECUs hold none (a directory), `Some(0)` for an ECU provisioned with
    /// supplier keys only.
    fn trust_version(&mut self, ecu: &EcuConfig) -> Result<Option<u32>, ForwardError> {
        let _ = ecu;
        Ok(None)
    }

    /// Send `ecu` the successor of its trust document; the version it holds afterwards.
    fn send_trust(&mut self, ecu: &EcuConfig, doc: &[u8]) -> Result<u32, ForwardError> {
        let _ = doc;
        Err(ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: "this forwarder cannot send trust documents".into(),
        })
    }

    /// What `ecu` says it runs, by its identification (unsigned: the gateway's own view,
    /// e.g. whether an activated image was reverted). `None` from forwarders whose ECUs have
    /// no bootloader to ask (a directory).
    fn identify(
        &mut self,
        ecu: &EcuConfig,
    ) -> Result<Option<ota_ecu::uds::Identification>, ForwardError> {
        let _ = ecu;
        Ok(None)
    }

    /// Ask `ecu` for its version report, signed with its own key over `nonce`.
    fn report(&mut self, ecu: &EcuConfig, nonce: &[u8; 16]) -> Result<EcuReport, ForwardError> {
        let _ = nonce;
        Err(ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: "this forwarder cannot ask ECUs for version reports".into(),
        })
    }
}
