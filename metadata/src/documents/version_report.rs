//! Version reports: what each ECU says it runs, signed with the ECU's own key, gathered by the
//! gateway into a vehicle version report signed with the vehicle's key. The OEM ingests them
//! (`ota-repo oem report ingest`): an ECU whose serial or key it does not know is flagged for
//! the out-of-band replacement process, never silently accepted.
//!
//! The ECU signs `OTAVR1` ‖ its identification (serial, hardware id, uid, version, SHA-256,
//! length, release counter, in the fixed layout of `ota_ecu::uds`) ‖ the gateway's 16-byte
//! nonce, with RSASSA-PSS-SHA256: the nonce makes an old report useless to replay.

use crate::roles::SPEC_VERSION;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Domain separation for the ECU's signature.
pub const ECU_REPORT_TAG: &[u8] = b"OTAVR1";

/// The message an ECU signs for its report.
pub fn ecu_report_message(identification: &[u8], nonce: &[u8; 16]) -> Vec<u8> {
    [ECU_REPORT_TAG, identification, nonce].concat()
}

/// One ECU's report as the gateway received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuReport {
    pub serial: String,
    pub hardware_id: String,
    /// Empty when nothing was installed through the bootloader.
    pub uid: String,
    pub version: String,
    pub sha256: String,
    pub length: u64,
    pub release_counter: u64,
    /// The identification bytes the ECU signed (hex), and its nonce and signature (hex).
    pub identification: String,
    pub nonce: String,
    pub signature: String,
}

/// An ECU the gateway could not get a report from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuSilent {
    pub serial: String,
    pub reason: String,
}

/// An installed image a regulator revoked after installation, as the gateway found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuRecall {
    pub serial: String,
    pub uid: String,
    pub version: String,
    pub regulator: String,
    pub reason: String,
}

/// What happened to an ECU, as the gateway saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The ECU activated the update's image.
    Installed,
    /// The ECU (or the gateway's checks for it) refused the update; `code` says why.
    Refused,
    /// The ECU's bootloader returned to the previous image after a failed trial boot.
    Reverted,
    /// A regulator revoked the image the ECU runs.
    Recalled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Refused => "refused",
            Outcome::Reverted => "reverted",
            Outcome::Recalled => "recalled",
        }
    }
}

/// One thing that happened to one ECU. The gateway numbers its events (`seq`) and repeats the
/// recent ones in every report until they are old: the OEM keeps each number once, so a lost
/// upload loses nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcuEvent {
    pub seq: u64,
    pub serial: String,
    pub outcome: Outcome,
    /// Why (refused, reverted): the ECU's negative response code or the check that failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// The image concerned.
    pub uid: String,
    pub version: String,
    /// The update it belonged to: the version of the director's assignments that asked for it
    /// (empty for a recall found without an update).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update: String,
    pub at: DateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleVersionReport {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub vin: String,
    pub generated: DateTime,
    pub ecus: Vec<EcuReport>,
    #[serde(default)]
    pub silent: Vec<EcuSilent>,
    /// Installed images revoked since installation (a recall the OEM must act on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recalls: Vec<EcuRecall>,
    /// What happened to the ECUs recently (installs, refusals, reverts, recalls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EcuEvent>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl VehicleVersionReport {
    pub const TYPE: &'static str = "vehicle-version-report";

    pub fn new(
        vin: &str,
        generated: DateTime,
        ecus: Vec<EcuReport>,
        silent: Vec<EcuSilent>,
    ) -> Self {
        VehicleVersionReport {
            type_: Self::TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            vin: vin.into(),
            generated,
            ecus,
            silent,
            recalls: Vec::new(),
            events: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}
