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
/// A check value of the fleet secret (HMAC-SHA256 under it of a fixed label; reveals
/// nothing of it), kept with the state: a fleet secret lost, or replaced by another, is
/// refused by name instead of silently re-sharding the fleet and stranding every vehicle.
pub const FLEET_CHECK: &str = "fleet.check";

/// Whether the state must still be moved to the locator layout under a new fleet secret: no
/// fleet secret was ever made here, or one was being made when a command was cut. A secret
/// that existed and is gone (its check value remains) is never made again.
pub fn needs_fleet_secret(dir: &Path) -> bool {
    !dir.join(FLEET_SECRET).exists()
        && (dir.join(FLEET_SECRET_NEW).exists() || !dir.join(FLEET_CHECK).exists())
}

fn check_value(f: &FleetSecret) -> String {
    f.check_value()
}

/// The fleet secret (made with the working directory's first vehicle command), checked
/// against the state's [`FLEET_CHECK`].
pub fn fleet_secret(dir: &Path) -> Result<FleetSecret> {
    let path = dir.join(FLEET_SECRET);
    if !path.exists() {
        return Err(Error::refused(format!(
            "{} is missing: the vehicle tree's locators and keys derive from it. Restore it from your backup of the OEM's keys (a new one would make every vehicle's provisioned secret useless)",
            path.display()
        )));
    }
    let f = FleetSecret(Key(fsutil::secret_file(&path, false)?));
    let check = dir.join(FLEET_CHECK);
    match fsutil::read_bounded(&check, 1024) {
        Ok(b) if String::from_utf8_lossy(&b).trim() == check_value(&f) => {}
        Ok(_) => {
            return Err(Error::refused(format!(
                "{} is not the fleet secret this OEM's state was made with ({} does not match): restore the right one from your backup of the OEM's keys",
                path.display(),
                check.display()
            )))
        }
        // A secret made before check values were kept: recorded now.
        Err(_) => fsutil::write_atomic(&check, format!("{}\n", check_value(&f)).as_bytes())?,
    }
    Ok(f)
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
    let f = FleetSecret(Key(fsutil::secret_file(&from, false)?));
    // The instruction key is made with the fleet secret (an OEM's first vehicle command).
    fsutil::secret_file(&dir.join(INSTRUCTION_KEY), true)?;
    fsutil::write_atomic(
        &dir.join(FLEET_CHECK),
        format!("{}\n", check_value(&f)).as_bytes(),
    )?;
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

/// The OEM's instruction key: an Ed25519 key whose seed is kept like the fleet secret
/// (`DIR/keys/instruction.secret`, mode 0600, made with the fleet secret, never again). It signs each ECU's
/// instruction at publish ([`super::fleet`]); `oem ecu-trust` names its public half in the
/// ECU trust documents it issues. Online, like the `vehicles` key: whoever steals it can
/// instruct ECUs to install what the gateway must still find approved and signed.
pub fn instruction_key(dir: &Path) -> Result<ed25519_dalek::SigningKey> {
    // A working directory from before the fleet secret gets both now (its state moved).
    super::store::migrate(dir)?;
    let path = dir.join(INSTRUCTION_KEY);
    if !path.exists() {
        // Made with the fleet secret, once: a new one would sign instructions that no ECU
        // trust document names, and every ECU requiring instructions would stop updating.
        return Err(Error::refused(format!(
            "{} is missing: the ECU trust documents name its public key. Restore it from your backup of the OEM's keys (a new key needs new trust documents for every hardware id, signed by the trust signers)",
            path.display()
        )));
    }
    let seed = fsutil::secret_file(&path, false)?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

pub const INSTRUCTION_KEY: &str = "keys/instruction.secret";
