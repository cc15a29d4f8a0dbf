//! This vehicle's assignments: the fleet index (the OEM's online `vehicles` role, listed in the
//! snapshot) names the bin holding the vehicle, the bin (content-addressed) names the version,
//! length and hash of the vehicle's signed assignments file.

use super::error::{fail, Check, Result};
use crate::tuf::{Fetch, MetadataStore, Updater};
use ota_metadata::documents::vehicles::bin_of;
use ota_metadata::documents::{Assignments, VehicleBin, VehicleIndex};
use ota_metadata::roles::sha256_of;
use ota_metadata::Envelope;

/// Size bound for bins and assignment files.
const MAX_VEHICLE_FILE: u64 = 16 << 20;

/// The assignments of `vin` (`None`: the OEM assigns it nothing), verified and checked against
/// the last accepted ones in `store`, which they then replace.
pub fn read_assignments<F: Fetch>(
    master: &Updater<F>,
    url: &str,
    vin: &str,
    store: &MetadataStore,
) -> Result<Option<Assignments>> {
    let check = Check::Assignments;
    let index = master
        .load_extra_role::<VehicleIndex>(
            "vehicles",
            VehicleIndex::TYPE,
            |r| r.expires,
            |r| r.version,
        )
        .map_err(|e| fail(check, url, e))?
        .signed;
    let bin = bin_of(vin, index.bins);
    let Some(bin_meta) = index.bin_files.get(&bin) else {
        return Ok(None);
    };
    let sha = bin_meta
        .hashes
        .as_ref()
        .map(|h| sha256_of(h, "bin"))
        .transpose()
        .map_err(|e| fail(check, url, e))?
        .ok_or_else(|| fail(check, url, format!("bin {bin} has no sha256 in the index")))?;
    let bytes = master
        .fetch_metadata_file_cached(
            &format!("vehicles/bins/{}.bin-{bin}.json", hex::encode(sha)),
            "vehicle-bin",
            bin_meta,
            MAX_VEHICLE_FILE,
        )
        .map_err(|e| fail(check, url, e))?;
    let b: VehicleBin =
        serde_json::from_slice(&bytes).map_err(|e| fail(check, url, format!("bin {bin}: {e}")))?;
    if b.bin != bin {
        return Err(fail(
            check,
            url,
            format!("bin file holds bin {}, expected {bin}", b.bin),
        ));
    }
    let Some(meta) = b.vehicles.get(vin) else {
        return Ok(None);
    };
    let path = format!(
        "vehicles/{}/{}.assignments.json",
        crate::tuf::encode::url_segment(vin),
        meta.version
    );
    let bytes = master
        .fetch_metadata_file_cached(&path, "assignments-file", meta, MAX_VEHICLE_FILE)
        .map_err(|e| fail(check, url, e))?;
    let root = &master.trusted().root().signed;
    let r = root.role("vehicles").map_err(|e| fail(check, url, e))?;
    let env = Envelope::parse(&path, &bytes, MAX_VEHICLE_FILE).map_err(|e| fail(check, url, e))?;
    env.verify(
        &format!("assignments of {vin}"),
        &r.keyids,
        r.threshold,
        &root.keys,
    )
    .map_err(|e| fail(check, url, e))?;
    let a: Assignments = env
        .decode(&path, Assignments::TYPE)
        .map_err(|e| fail(check, url, e))?;
    if a.vin != vin || a.version != meta.version {
        return Err(fail(
            check,
            url,
            format!(
                "file is {} v{}, the bin lists {vin} v{}",
                a.vin, a.version, meta.version
            ),
        ));
    }
    if a.expires <= master.trusted().now() {
        return Err(fail(
            check,
            url,
            format!("assignments of {vin} expired at {}", a.expires),
        ));
    }
    // Rollback: never accept older assignments than the last accepted ones, as long as those
    // were signed by the `vehicles` keys trusted now. After the OEM rotates that role (a
    // stolen key), a version the attacker pushed up with the old key is forgotten, as TUF
    // forgets timestamp and snapshot on their keys' rotation; else the vehicle would refuse
    // every legitimate assignment below it forever.
    if let Ok(Some(prev)) = store.read("assignments", MAX_VEHICLE_FILE) {
        let still_trusted = Envelope::parse("assignments", &prev, MAX_VEHICLE_FILE)
            .and_then(|e| {
                e.verify("accepted assignments", &r.keyids, r.threshold, &root.keys)?;
                e.decode::<Assignments>("assignments", Assignments::TYPE)
            })
            .ok()
            .filter(|p| p.vin == vin);
        if let Some(p) = still_trusted {
            if a.version < p.version {
                return Err(fail(
                    check,
                    url,
                    format!(
                        "version {} is older than the accepted {} (rollback)",
                        a.version, p.version
                    ),
                ));
            }
        }
    }
    store
        .write("assignments", &bytes)
        .map_err(|e| fail(check, url, e))?;
    Ok(Some(a))
}
