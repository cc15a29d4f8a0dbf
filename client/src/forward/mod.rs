//! Phase two of an update: handing each verified image to its ECU. The forwarder is a trait so
//! the gateway does not care how ECUs are reached: a directory per ECU here (tests, ECUs with
//! a file-based bootloader), CAN with ISO-TP and UDS in the ECU crate's backends.

mod can;
mod dir;

pub use can::{CanBus, CanForwarder};
pub use dir::DirForwarder;

use crate::config::EcuConfig;
use ota_metadata::documents::EcuReport;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("ECU {serial}: {reason}")]
    Ecu { serial: String, reason: String },
    #[error("ECU {serial}: {source}")]
    Io {
        serial: String,
        #[source]
        source: std::io::Error,
    },
}

pub trait Forwarder {
    /// Deliver `image` with its supplier-signed `compact_manifest` to `ecu`; `Ok` only when the
    /// ECU accepted (verified and installed) it.
    fn forward(
        &mut self,
        ecu: &EcuConfig,
        compact_manifest: &[u8],
        image: &Path,
    ) -> Result<(), ForwardError>;

    /// Ask `ecu` for its version report, signed with its own key over `nonce`.
    fn report(&mut self, ecu: &EcuConfig, nonce: &[u8; 16]) -> Result<EcuReport, ForwardError> {
        let _ = nonce;
        Err(ForwardError::Ecu {
            serial: ecu.serial.clone(),
            reason: "this forwarder cannot ask ECUs for version reports".into(),
        })
    }
}
