//! The gateway's own state, beside the trusted metadata: what each ECU runs (as installed
//! through this gateway, or factory-recorded) and when the last check and update ran. Written
//! atomically, like the metadata.

use crate::tuf::MetadataStore;
use crate::walk::{Installed, Recall};
use ota_metadata::documents::EcuEvent;
use ota_metadata::DateTime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayState {
    /// By ECU serial.
    pub installed: BTreeMap<String, Installed>,
    pub last_check: Option<DateTime>,
    pub last_update: Option<DateTime>,
    /// The outcome of the last update, per ECU serial.
    #[serde(default)]
    pub last_results: BTreeMap<String, String>,
    /// Installed releases a regulator revoked, per ECU serial, as the last check found; they
    /// stay until the ECU is updated or found approved again, and go into version reports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recalls: BTreeMap<String, Recall>,
    /// Number of the last version report signed: each report carries the next one (`counter`),
    /// so the OEM tells two reports made in the same second apart (and orders them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub report_counter: u64,
    /// The trust document version each ECU held at the last check, by serial: an ECU is
    /// contacted for its trust document only when the newest one the OEM publishes is not
    /// this version (or when it has an update), not at every check. A hint only: a wrong
    /// number costs a question on the bus, never a forward.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trust_versions: BTreeMap<String, u32>,
    /// ECUs whose part of an interrupted update was dropped at recovery, by serial, with why
    /// (shown by `status` until the ECU is next updated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recovery: BTreeMap<String, String>,
    /// What happened to the ECUs recently (installed, refused, recalled), numbered: every
    /// version report carries them and the OEM keeps each number once, so a report lost on
    /// the way loses no event. The newest [`MAX_EVENTS`] are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EcuEvent>,
    /// The number of the last event recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub event_seq: u64,
}

/// Events kept (and sent with each report).
pub const MAX_EVENTS: usize = 64;

impl GatewayState {
    /// Record that `outcome` happened to ECU `serial`, unless it is the same as the ECU's last
    /// event (a refusal repeated at every check is one event, not one per check).
    pub fn record_event(&mut self, mut event: EcuEvent) {
        let same = self
            .events
            .iter()
            .rev()
            .find(|e| e.serial == event.serial)
            .is_some_and(|e| {
                e.outcome == event.outcome
                    && e.uid == event.uid
                    && e.version == event.version
                    && e.code == event.code
            });
        if same {
            return;
        }
        self.event_seq = self.event_seq.saturating_add(1);
        event.seq = self.event_seq;
        self.events.push(event);
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const NAME: &str = "gateway-state";
const MAX: u64 = 4 << 20;

impl GatewayState {
    pub fn load(state_dir: &Path) -> std::io::Result<Self> {
        match MetadataStore::new(state_dir).read(NAME, MAX)? {
            None => Ok(Self::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        MetadataStore::new(state_dir).write(NAME, &bytes)
    }
}
