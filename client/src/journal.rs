//! The update journal: the one durable record of an all-or-nothing update in flight, in the
//! gateway's state directory (`update-journal.json`, written atomically: temp file, fsync,
//! rename, fsync of the directory).
//!
//! | journal                 | meaning                                     | the next run           |
//! |-------------------------|---------------------------------------------|------------------------|
//! | absent                  | no update in flight                         | walks as usual         |
//! | `distributing`          | images are being sent; nothing is decided   | DISCARD every listed ECU's pending image, clear, then walk (the update starts over, from the staged images) |
//! | `commit`                | every listed ECU held its image verified and pending; the update is decided | ACTIVATE every listed ECU (idempotent), record them as installed, clear, then walk |
//!
//! `commit` is written before the first ACTIVATE, and only after every ECU of the update
//! answered that it holds its image verified and pending. So a cut at any instant leaves
//! either a journal without a decision (no ECU was activated: every ECU still runs its old
//! image) or a decision that the next run carries out (every ECU ends on its new image).

use crate::tuf::MetadataStore;
use crate::walk::Installed;
use serde::{Deserialize, Serialize};
use std::path::Path;

const NAME: &str = "update-journal";
const MAX: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Images are being sent into the ECUs' inactive slots; nothing is decided.
    Distributing,
    /// Every ECU holds its image verified and pending: activate them all.
    Commit,
}

/// One ECU of the update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEcu {
    pub serial: String,
    /// What the ECU runs once activated (its `sha256` is what ACTIVATE names).
    pub installed: Installed,
    /// The image's signed length (to find it again in staging).
    pub length: u64,
    /// The compact manifest (hex), to send the image again if the ECU lost it after the
    /// commit (replaced, or its state restored in a workshop).
    pub compact_manifest: String,
    /// The regulators' compact attestation bundle (hex; empty: none), sent with the manifest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attestation_bundle: String,
    /// The OEM's instruction to the ECU (hex; empty: none), sent before the manifest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instruction: String,
    /// The delta phase one may have staged instead of the image (to find it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<StagedDelta>,
}

/// A delta in staging: its SHA-256 (hex) and length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedDelta {
    pub sha256: String,
    pub length: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub phase: Phase,
    pub ecus: Vec<JournalEcu>,
}

impl Journal {
    /// The journal in `state_dir`, `None` if no update is in flight.
    pub fn load(state_dir: &Path) -> std::io::Result<Option<Self>> {
        match MetadataStore::new(state_dir).read(NAME, MAX)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    /// Replace the journal, atomically and durably.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        MetadataStore::new(state_dir).write(NAME, &bytes)
    }

    /// Remove the journal (durably): no update in flight.
    pub fn clear(state_dir: &Path) -> std::io::Result<()> {
        MetadataStore::new(state_dir).remove(NAME)
    }

    /// Where the journal is kept.
    pub fn path(state_dir: &Path) -> std::path::PathBuf {
        MetadataStore::new(state_dir).path(NAME)
    }
}
