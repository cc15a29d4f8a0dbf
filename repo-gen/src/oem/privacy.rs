//! The fleet secret (issue 23): what keeps the served vehicle tree from naming any vehicle.
//! Every vehicle's secret, and from it its locator and entry key, derive from the OEM's fleet
//! secret (`ota_crypt::fleet`). The OEM's state is sharded by locator ([`super::store`]), and a
//! vehicle's gateway is provisioned with its own secret (`oem vehicle secret`, or `vehicle add
//! --secret`); a replaced gateway is given the same secret again.
//!
//! ```text
//! DIR/keys/fleet.secret   64 hex digits, mode 0600. Back it up with the root keys: losing it
//!                         means provisioning every vehicle again; whoever steals it can read
//!                         every vehicle's entry (what the OEM's own state holds anyway).
//! ```

use super::Inventory;
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::fleet::{FleetSecret, VehicleSecret};
use ota_crypt::Key;
use std::path::Path;

pub const FLEET_SECRET: &str = "keys/fleet.secret";
/// The secret while the state is moved to its layout ([`super::store`]'s reshard).
const FLEET_SECRET_NEW: &str = "keys/fleet.secret.new";

pub fn has_fleet_secret(dir: &Path) -> bool {
    dir.join(FLEET_SECRET).exists()
}

/// The fleet secret (made with the working directory's first vehicle command).
pub fn fleet_secret(dir: &Path) -> Result<FleetSecret> {
    let path = dir.join(FLEET_SECRET);
    if !path.exists() {
        return Err(Error::refused(format!(
            "{} is missing: the vehicle tree's locators and keys derive from it. Restore it from your backup of the OEM's keys (a new one would make every vehicle's provisioned secret useless)",
            path.display()
        )));
    }
    Ok(FleetSecret(Key(fsutil::secret_file(&path, false)?)))
}

/// The secret about to become the fleet secret (made now if there is none yet).
pub(super) fn fleet_secret_to_be(dir: &Path) -> Result<FleetSecret> {
    Ok(FleetSecret(Key(fsutil::secret_file(
        &dir.join(FLEET_SECRET_NEW),
        true,
    )?)))
}

/// Make [`fleet_secret_to_be`]'s secret the fleet secret.
pub(super) fn commit_fleet_secret(dir: &Path) -> Result<()> {
    let (from, to) = (dir.join(FLEET_SECRET_NEW), dir.join(FLEET_SECRET));
    std::fs::rename(&from, &to).map_err(Error::io(&from))?;
    fsutil::sync_dir(to.parent().unwrap_or(dir));
    Ok(())
}

/// The secret of vehicle `vin`, which must be in the inventory.
pub fn vehicle_secret(dir: &Path, vin: &str) -> Result<VehicleSecret> {
    let inv = Inventory::load_for(dir, &[vin])?;
    inv.vehicle(vin)?;
    Ok(fleet_secret(dir)?.vehicle(vin))
}

/// Write vehicle `vin`'s secret to `out` (a new file, mode 0600), to install in its gateway
/// (`vehicle_secret` in its configuration). Returns its locator.
pub fn issue_vehicle_secret(dir: &Path, vin: &str, out: &Path) -> Result<String> {
    let s = vehicle_secret(dir, vin)?;
    fsutil::write_new_private(out, s.to_file_text().as_bytes())?;
    Ok(s.locator())
}
