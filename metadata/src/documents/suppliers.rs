//! The OEM's pins of its suppliers' image repositories (DESIGN.md: "the supplier's image
//! repository pinned by the OEM's delegation"). They travel in the OEM's signed `targets` role,
//! as its `suppliers` field, so the same freshness and rollback rules cover them.

use super::pin::RepositoryPin;
use crate::error::{Error, Result};
use crate::roles::{glob_match, Targets};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One supplier: its pinned repository and the hardware ids (patterns, `*` and `?` allowed)
/// it may serve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupplierEntry {
    #[serde(flatten)]
    pub repository: RepositoryPin,
    pub hardware_ids: Vec<String>,
}

impl SupplierEntry {
    /// Whether this supplier may serve images for `hardware_id`.
    pub fn serves(&self, hardware_id: &str) -> bool {
        self.hardware_ids.iter().any(|p| glob_match(p, hardware_id))
    }
}

/// The supplier pins in an OEM targets document (empty if it has none).
pub fn suppliers_of(t: &Targets) -> Result<BTreeMap<String, SupplierEntry>> {
    match t.extra.get("suppliers") {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::malformed("OEM targets: suppliers", e.to_string())),
    }
}
