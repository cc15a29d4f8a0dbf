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
    /// The update set it belongs to: the assignments of one set are installed all or
    /// nothing, and sets are independent (one refused set does not hold back another).
    /// `None`: the vehicle's default set. Sets linked by a requirement met within the update
    /// are installed as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// Images the vehicle must run beside this one, after the update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Requirement>,
    /// Images never to run beside this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

/// "This image needs an ECU of the vehicle running `uid` at release counter
/// `min_release_counter` or above."
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Requirement {
    pub uid: String,
    pub min_release_counter: u64,
}

/// "This image never runs beside `uid` (at `version`, or any version when absent)."
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}>={}", self.uid, self.min_release_counter)
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.uid),
            None => f.write_str(&self.uid),
        }
    }
}

impl std::str::FromStr for Requirement {
    type Err = String;
    /// `UID>=COUNTER`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (uid, n) = s
            .split_once(">=")
            .ok_or_else(|| format!("{s:?}: a requirement is UID>=RELEASE_COUNTER"))?;
        Ok(Requirement {
            uid: uid.trim().to_string(),
            min_release_counter: n
                .trim()
                .parse()
                .map_err(|_| format!("{s:?}: {n:?} is not a release counter"))?,
        })
    }
}

impl std::str::FromStr for Conflict {
    type Err = String;
    /// `UID` or `UID@VERSION`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (uid, version) = match s.split_once('@') {
            Some((u, v)) => (u, Some(v.trim().to_string())),
            None => (s, None),
        };
        if uid.trim().is_empty() {
            return Err(format!("{s:?}: a conflict is UID or UID@VERSION"));
        }
        Ok(Conflict {
            uid: uid.trim().to_string(),
            version,
        })
    }
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

/// What each ECU of a vehicle runs, or will run: serial -> (uid, version, release counter).
pub type VehicleImages = BTreeMap<String, (String, String, u64)>;

/// Why ECU `serial`'s assignment `a` cannot run on the vehicle as `after` describes it (a
/// requirement no ECU meets, or a conflicting image on another ECU); `None` if it can. The one
/// rule the OEM checks at assignment and the gateway before it installs.
pub fn unmet(serial: &str, a: &EcuAssignment, after: &VehicleImages) -> Option<String> {
    unmet_requirement(a, after).or_else(|| conflict(serial, a, after))
}

/// The first requirement of `a` no ECU of `after` meets.
pub fn unmet_requirement(a: &EcuAssignment, after: &VehicleImages) -> Option<String> {
    let r = a.requires.iter().find(|r| {
        !after
            .values()
            .any(|(uid, _, c)| *uid == r.uid && *c >= r.min_release_counter)
    })?;
    Some(format!(
        "{} {} needs an ECU running {} at release counter {} or above, and none will",
        a.uid, a.version, r.uid, r.min_release_counter
    ))
}

/// The first image of another ECU of `after` that `a` (for ECU `serial`) conflicts with.
pub fn conflict(serial: &str, a: &EcuAssignment, after: &VehicleImages) -> Option<String> {
    a.conflicts.iter().find_map(|c| {
        let (s, (uid, version, _)) = after.iter().find(|(s, (uid, version, _))| {
            s.as_str() != serial && *uid == c.uid && c.version.as_ref().is_none_or(|v| v == version)
        })?;
        Some(format!(
            "{} {} never runs beside {c}, and ECU {s} would run {uid} {version}",
            a.uid, a.version
        ))
    })
}
