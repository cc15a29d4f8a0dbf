//! A failed check of the walk: which one (typed), in which repository, and why.

use std::fmt;

/// The check that failed. Callers and tests match on it; the reason is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The OEM's TUF metadata (root, timestamp, snapshot, targets).
    OemMetadata,
    /// The OEM's supplier pins.
    SupplierPins,
    /// The OEM's list of authorized regulators.
    RegulatorPolicy,
    /// The OEM's fleet index (the `vehicles` role): signature, version, expiry, format.
    VehicleIndex,
    /// A node of the fleet tree on this vehicle's path (length, hash, prefix, form).
    VehicleTree,
    /// This vehicle's assignments file (length, hash, VIN, version).
    Assignments,
    /// This vehicle's assignments are older than the ones accepted before (rollback).
    AssignmentsRollback,
    /// The supplier is not pinned, or not for this hardware id.
    SupplierDelegation,
    /// The supplier's TUF metadata.
    SupplierMetadata,
    /// The image manifest against the assignment.
    ImageManifest,
    /// The image does not fit the ECU's hardware id.
    HardwareId,
    /// The image's release counter is below the installed one.
    ReleaseCounter,
    /// An authorized regulator's repository could not be reached or verified fresh.
    RegulatorUnreachable,
    /// A regulator revoked the release, or a release of the same bytes (a veto).
    Revoked,
    /// A regulator rejected the release, or a release of the same bytes (a veto).
    Rejected,
    /// Fewer distinct regulators approved the release than the OEM requires.
    NotApproved,
    /// The image bytes (download, length, hash).
    Image,
    /// The content key of an encrypted image: this vehicle's keys, the OEM's wraps for it
    /// (excluded, not published, tampered).
    ContentKey,
    /// Decrypting an encrypted image: a chunk that does not authenticate, or a plaintext that
    /// is not the one the supplier signed.
    Decryption,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::OemMetadata => "OEM metadata",
            Check::SupplierPins => "OEM supplier pins",
            Check::RegulatorPolicy => "OEM regulators",
            Check::VehicleIndex => "OEM fleet index",
            Check::VehicleTree => "OEM fleet tree",
            Check::Assignments => "vehicle assignments",
            Check::AssignmentsRollback => "vehicle assignments rollback",
            Check::SupplierDelegation => "supplier delegation",
            Check::SupplierMetadata => "supplier metadata",
            Check::ImageManifest => "image manifest",
            Check::HardwareId => "hardware id",
            Check::ReleaseCounter => "release counter",
            Check::RegulatorUnreachable => "regulator freshness",
            Check::Revoked => "regulator revocation",
            Check::Rejected => "regulator rejection",
            Check::NotApproved => "regulator attestations",
            Check::Image => "image",
            Check::ContentKey => "content key",
            Check::Decryption => "decryption",
        }
    }
}

/// A failed check: which one, where, and why.
#[derive(Debug)]
pub struct WalkError {
    pub check: Check,
    /// The repository (URL) the failed check was about.
    pub repository: String,
    pub reason: String,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} check failed ({}): {}",
            self.check.name(),
            self.repository,
            self.reason
        )
    }
}

impl std::error::Error for WalkError {}

pub(crate) fn fail(check: Check, repository: &str, reason: impl fmt::Display) -> WalkError {
    WalkError {
        check,
        repository: repository.into(),
        reason: reason.to_string(),
    }
}

pub type Result<T> = std::result::Result<T, WalkError>;
