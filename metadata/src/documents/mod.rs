//! The project's own signed documents, beside TUF's roles (DESIGN.md's table):
//! the image manifest (Mi) and its compact form, the review request (Mm), the `regulators`
//! role, vehicle assignments (Mv) and attestations (Mr).

pub mod assignments;
pub mod attestation;
pub mod compact;
pub mod image_manifest;
pub mod key_wraps;
pub mod pin;
pub mod regulators;
pub mod review;
pub mod suppliers;
pub mod vehicles;
pub mod version_report;

pub use assignments::{
    conflict, unmet, unmet_requirement, Assignments, Conflict, EcuAssignment, EcuInstruction,
    Requirement, VehicleImages,
};
pub use attestation::{attestation_target, veto_target, Attestation, Finding, Release, Verdict};
pub use image_manifest::{ImageKind, ImageManifest, ImageTargetCustom, ImageTargets};
pub use key_wraps::{KeyWraps, ShardFile};
pub use pin::{material_of, root_material, verified_root, RepositoryPin};
pub use regulators::{count_parties, regulators_of, RegulatorPolicy, REGULATORS_FIELD};
pub use review::{Review, ReviewRequest};
pub use suppliers::{suppliers_of, SupplierEntry};
pub use vehicles::{VehicleEntry, VehicleIndex, VehicleNode};
pub use version_report::{
    EcuEvent, EcuRecall, EcuReport, EcuSilent, Outcome, VehicleVersionReport,
};

use crate::roles::Hashes;
use serde::{Deserialize, Serialize};

/// A reference to an image by its name in a supplier repository and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub supplier: String,
    pub uid: String,
    pub version: String,
    /// Target name of the image in the supplier's repository.
    pub target: String,
    pub length: u64,
    pub hashes: Hashes,
}
