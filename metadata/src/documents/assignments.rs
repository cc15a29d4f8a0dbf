//! Vehicle assignments (the paper's Mv): which image each ECU of one vehicle should run.
//! Unsigned canonical JSON, trusted through the signed fleet index by hash
//! ([`super::vehicles`]); no expiry of its own: the index's is what keeps it fresh.

use crate::roles::Hashes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuAssignment {
    pub hardware_id: String,
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub target: String,
    pub length: u64,
    pub hashes: Hashes,
    /// The vehicle's wrapped content key, when the image is encrypted (issue 11): the top
    /// shard and the vehicle's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_wraps: Option<super::KeyWraps>,
    /// SHA-256 (hex) of the compact manifest's signed body, as the OEM reviewed it: what the
    /// ECU's instruction names (absent for images submitted before instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_sha256: Option<String>,
    /// The OEM's signed instruction to this ECU (`ota_ecu::instruction`), made at publish:
    /// the gateway rebuilds the signed body from the ECU's serial and the compact manifest,
    /// and forwards it with the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<EcuInstruction>,
}

/// The parts of an ECU instruction a gateway cannot rebuild: the sequence and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuInstruction {
    pub sequence: u32,
    /// Ed25519 signature, base64.
    pub signature: String,
}

impl EcuInstruction {
    /// The whole instruction for `serial` and the compact manifest body `manifest_body`
    /// (with its release counter), as the ECU receives it; `None` if the signature is not
    /// 64 bytes of base64.
    pub fn assemble(
        &self,
        serial: &str,
        manifest_body: &[u8],
        release_counter: u64,
    ) -> Option<[u8; ota_ecu::instruction::LEN]> {
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .ok()?;
        let sig: [u8; ota_ecu::instruction::SIG_LEN] = sig.try_into().ok()?;
        Some(
            ota_ecu::instruction::Instruction::new(
                serial,
                manifest_body,
                release_counter,
                self.sequence,
            )
            .assemble(&sig),
        )
    }
}

impl EcuAssignment {
    /// This assignment without its instruction: what the OEM's state holds, and what decides
    /// whether an ECU's assignment changed.
    pub fn without_instruction(&self) -> EcuAssignment {
        EcuAssignment {
            instruction: None,
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub vin: String,
    /// Raised with every change; a vehicle never accepts a lower one (rollback).
    pub version: u64,
    /// Keyed by ECU serial.
    pub ecus: BTreeMap<String, EcuAssignment>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Assignments {
    pub const TYPE: &'static str = "assignments";
}
