//! How per-vehicle assignments are published so that cost grows with what changed, not with
//! the fleet (DESIGN.md, "Per-vehicle metadata").
//!
//! ```text
//! N.vehicles.json                          signed index (snapshot-listed, short expiry):
//!                                          length and SHA-256 of every bin
//! vehicles/bins/SHA256.bin-XX.json         unsigned, content-addressed: for each VIN in the
//!                                          bin, version/length/SHA-256 of its assignments
//! vehicles/VIN/N.assignments.json          signed assignments of one vehicle (long expiry)
//! ```
//!
//! Changing one vehicle signs its assignments and the index (plus snapshot and timestamp):
//! four signatures whatever the fleet size. Keeping the fleet fresh re-signs only the index,
//! snapshot and timestamp, never a file per vehicle. A vehicle downloads the index, its bin and
//! its own assignments: a two-level inclusion proof from the signed index down to its file.

use crate::error::{Error, Result};
use crate::roles::MetaFile;
use crate::time::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Number of bins by default; the index lists one line per bin.
pub const DEFAULT_BINS: u32 = 256;
pub const MAX_BINS: u32 = 65_536;

/// The bin of `vin` among `bins` (a power of two up to 65,536): the first two bytes of
/// SHA-256(VIN) masked, in fixed-width hex.
pub fn bin_of(vin: &str, bins: u32) -> String {
    let h = Sha256::digest(vin.as_bytes());
    let n = u32::from(u16::from_be_bytes([h[0], h[1]])) & (bins.max(1) - 1);
    let width = if bins <= 256 { 2 } else { 4 };
    format!("{n:0width$x}")
}

pub fn check_bins(bins: u32) -> Result<()> {
    if bins == 0 || bins > MAX_BINS || !bins.is_power_of_two() {
        return Err(Error::malformed(
            "vehicle bins",
            format!("{bins}: use a power of two up to {MAX_BINS}"),
        ));
    }
    Ok(())
}

/// The signed fleet index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleIndex {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: DateTime,
    pub bins: u32,
    /// Bin id -> length and hashes of the bin file (version unused, 1).
    pub bin_files: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl VehicleIndex {
    pub const TYPE: &'static str = "vehicles";
}

/// One bin: the assignments file of every vehicle whose VIN falls in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleBin {
    #[serde(rename = "_type")]
    pub type_: String,
    pub bin: String,
    pub vehicles: BTreeMap<String, MetaFile>,
}

impl VehicleBin {
    pub const TYPE: &'static str = "vehicle-bin";

    /// File name of a bin with content `bytes`: content-addressed, so old and new coexist.
    pub fn file_name(bin: &str, bytes: &[u8]) -> String {
        format!("{}.bin-{bin}.json", hex::encode(Sha256::digest(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_stable_and_in_range() {
        assert_eq!(
            bin_of("WVWZZZ1JZXW000001", 256),
            bin_of("WVWZZZ1JZXW000001", 256)
        );
        for i in 0..1000 {
            let b = bin_of(&format!("VIN{i}"), 16);
            assert_eq!(b.len(), 2);
            assert!(u32::from_str_radix(&b, 16).unwrap() < 16);
            assert!(u32::from_str_radix(&bin_of(&format!("VIN{i}"), 4096), 16).unwrap() < 4096);
        }
        assert!(check_bins(256).is_ok() && check_bins(100).is_err() && check_bins(0).is_err());
    }
}
