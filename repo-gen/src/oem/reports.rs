//! The OEM working directory's side of the fleet backend ([`ota_fleet`]): where its report
//! database is, the inventory as the backend reads it, and the report commands.
//!
//! The database is `DIR/reports.sqlite` unless `oem report database` chose another (PostgreSQL
//! for several ingest nodes). Reports never take the working directory's lock: the database
//! orders them, and the inventory shards they are checked against are replaced atomically.

use super::inventory::Vehicle;
use super::{read_state, store, Settings};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_crypt::fleet::FleetSecret;
use ota_fleet::report::{Inventory as FleetInventory, KnownEcu, KnownVehicle};
use ota_fleet::{store as db_store, Applied, Db, FleetError, Location};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The default report database, in the working directory.
pub const DATABASE: &str = "reports.sqlite";
/// Written once the JSON report state of earlier versions is in the database.
const MIGRATED: &str = "reports.migrated";
/// Earlier versions' report state (imported once, then left as it was).
pub const LEGACY_FLAGGED: &str = "flagged.json";
const LEGACY_RECALLS: &str = "recalls.json";

impl From<FleetError> for Error {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Io { path, source } => Error::Io { path, source },
            e => Error::Refused(e.to_string()),
        }
    }
}

/// Where `dir`'s reports live. An SQLite path is relative to the working directory `dir`
/// (not to where a command runs).
pub fn location(dir: &Path, s: &Settings) -> Location {
    match s.report_database.as_deref().map(Location::parse) {
        Some(Location::Sqlite(p)) if p.is_relative() => Location::Sqlite(dir.join(p)),
        Some(at) => at,
        None => Location::Sqlite(dir.join(DATABASE)),
    }
}

/// A database the reports can live in: a PostgreSQL URL, or an SQLite file path (not an
/// in-memory database or an SQLite URI: reports must survive the process).
fn check_database(url: &str) -> Result<()> {
    match Location::parse(url) {
        Location::Postgres(_) => Ok(()),
        Location::Sqlite(p) => {
            let text = p.to_string_lossy();
            if text.is_empty()
                || text == ":memory:"
                || text.starts_with("file:")
                || text.contains("://")
                || text.ends_with('/')
            {
                Err(Error::refused(format!(
                    "{url:?}: give a PostgreSQL URL (postgres://…) or the path of an SQLite file (not an in-memory database or an SQLite URI)"
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// Written when this working directory's SQLite report database was first made: from then
/// on a missing database file is a loss, not "no vehicle ever reported".
const MADE: &str = "reports.made";

/// Refuse to go on without a report database that existed: the director would pass an
/// assignment below what a vehicle reported, and rollouts would forget their outcomes.
fn check_not_lost(dir: &Path, at: &Location) -> Result<()> {
    match at {
        Location::Sqlite(path) if !path.exists() && dir.join(MADE).exists() => {
            Err(Error::refused(format!(
                "the report database {} is missing, though one was made here before ({}): restore it from your backup (without it the director would not know what vehicles reported); to start afresh knowingly, delete {}",
                path.display(),
                dir.join(MADE).display(),
                dir.join(MADE).display()
            )))
        }
        _ => Ok(()),
    }
}

/// Open the report database of `dir` (made and migrated when needed).
pub fn open(dir: &Path) -> Result<Db> {
    let s = Settings::load(dir)?;
    let at = location(dir, &s);
    check_not_lost(dir, &at)?;
    let mut db = Db::open(&at)?;
    if matches!(at, Location::Sqlite(_)) && !dir.join(MADE).exists() {
        fsutil::write_atomic(&dir.join(MADE), b"a report database was made here\n")?;
    }
    import_legacy(dir, &mut db)?;
    Ok(db)
}

/// The report database if it exists (`None`: an SQLite file not made yet, so no reports):
/// for commands that only read it and must not create state when they are refused.
pub fn open_existing(dir: &Path) -> Result<Option<Db>> {
    let s = Settings::load(dir)?;
    let at = location(dir, &s);
    check_not_lost(dir, &at)?;
    match at {
        Location::Sqlite(path) if !path.exists() && !dir.join(LEGACY_FLAGGED).exists() => Ok(None),
        _ => open(dir).map(Some),
    }
}

/// Import earlier versions' report state if that was not done yet (a stat when it was).
pub(crate) fn import_legacy_once(dir: &Path) -> Result<()> {
    // Not (yet) a working directory: no report state to import.
    if dir.join(MIGRATED).exists() || !crate::workdir::settings_path(dir).exists() {
        return Ok(());
    }
    open(dir).map(|_| ())
}

/// A new working directory has no earlier report state.
pub(crate) fn mark_migrated(dir: &Path) -> Result<()> {
    fsutil::write_atomic(&dir.join(MIGRATED), b"report state in the database\n")
}

/// Choose the database (`oem report database`): opened and migrated before it is recorded.
pub fn set_database(dir: &Path, url: Option<&str>) -> Result<Location> {
    if let Some(url) = url {
        check_database(url)?;
    }
    let mut s = Settings::load(dir)?;
    s.report_database = url.map(str::to_string);
    let at = location(dir, &s);
    let mut db = Db::open(&at)?;
    // The marker is per working directory: a new database gets the legacy state too.
    let _ = std::fs::remove_file(dir.join(MIGRATED));
    s.save(dir)?;
    import_legacy(dir, &mut db)?;
    Ok(at)
}

/// The inventory as the ingest reads it: a vehicle's shard, parsed once and kept while its
/// file is unchanged (a server ingests many reports of one shard).
pub struct ShardInventory {
    dir: PathBuf,
    fleet: FleetSecret,
    cache: Mutex<HashMap<String, CachedShard>>,
}

struct CachedShard {
    stamp: (u64, i64, i64, u64),
    vehicles: Arc<BTreeMap<String, Arc<KnownVehicle>>>,
}

/// Shards kept parsed (each about 1/4096 of the fleet).
const CACHED_SHARDS: usize = 512;

impl ShardInventory {
    pub fn new(dir: &Path) -> Result<Self> {
        Ok(ShardInventory {
            dir: dir.to_path_buf(),
            fleet: super::privacy::fleet_secret(dir)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn shard(&self, shard: &str) -> ota_fleet::Result<Arc<BTreeMap<String, Arc<KnownVehicle>>>> {
        let path = self
            .dir
            .join(store::INVENTORY_DIR)
            .join(format!("{shard}.json"));
        let stamp = match std::fs::metadata(&path) {
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                (m.ino(), m.mtime(), m.mtime_nsec(), m.len())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0, 0, 0),
            Err(e) => return Err(FleetError::Io { path, source: e }),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(shard).filter(|c| c.stamp == stamp) {
            return Ok(c.vehicles.clone());
        }
        let (map, _) = store::read_shard::<Vehicle>(&self.dir, store::INVENTORY_DIR, shard)
            .map_err(|e| FleetError::Inventory(e.to_string()))?;
        let vehicles: Arc<BTreeMap<String, Arc<KnownVehicle>>> = Arc::new(
            map.into_iter()
                .map(|(vin, v)| (vin, Arc::new(known(v))))
                .collect(),
        );
        if cache.len() >= CACHED_SHARDS {
            cache.clear();
        }
        cache.insert(
            shard.to_string(),
            CachedShard {
                stamp,
                vehicles: vehicles.clone(),
            },
        );
        Ok(vehicles)
    }
}

fn known(v: Vehicle) -> KnownVehicle {
    KnownVehicle {
        key: v.key,
        ecus: v
            .ecus
            .into_iter()
            .map(|(serial, e)| {
                (
                    serial,
                    KnownEcu {
                        hardware_id: e.hardware_id,
                        aftermarket: e.aftermarket,
                        key: e.key,
                    },
                )
            })
            .collect(),
    }
}

impl FleetInventory for ShardInventory {
    fn vehicle(&self, vin: &str) -> ota_fleet::Result<Option<Arc<KnownVehicle>>> {
        let shard = store::shard_of(&self.fleet, vin);
        Ok(self.shard(&shard)?.get(vin).cloned())
    }
}

/// Largest report file accepted.
pub use ota_fleet::report::MAX_REPORT;

/// Ingest a report file (`oem report ingest`).
pub fn ingest(dir: &Path, file: &Path) -> Result<Applied> {
    let bytes = fsutil::read_bounded(file, MAX_REPORT)?;
    ingest_bytes(dir, &bytes).map_err(|e| match e {
        Error::Refused(r) => Error::Refused(format!("{}: {r}", file.display())),
        e => e,
    })
}

/// Ingest a report given as bytes.
pub fn ingest_bytes(dir: &Path, bytes: &[u8]) -> Result<Applied> {
    let inventory = ShardInventory::new(dir)?;
    let mut db = open(dir)?;
    Ok(ota_fleet::ingest(&mut db, &inventory, bytes)?)
}

/// The flags recorded.
pub fn flags(dir: &Path) -> Result<Vec<db_store::StoredFlag>> {
    Ok(open(dir)?.transaction(db_store::flags)?)
}

/// Clear the flags of `vin` (of ECU `serial` only, when given) after review.
pub fn clear_flags(
    dir: &Path,
    vin: &str,
    serial: Option<&str>,
) -> Result<Vec<db_store::StoredFlag>> {
    Ok(open(dir)?.transaction(|tx| db_store::clear_flags(tx, vin, serial))?)
}

/// Forget `vin`'s report history when it gets a new key (see [`db_store::forget_vehicle`]).
pub fn forget_vehicle(dir: &Path, vin: &str) -> Result<()> {
    if let Some(mut db) = open_existing(dir)? {
        db.transaction(|tx| db_store::forget_vehicle(tx, vin))?;
    }
    Ok(())
}

/// End the report history of each of `vins` (removed from the fleet, or added again; see
/// [`db_store::end_history`]): reports generated before `now` are refused from then on.
pub fn end_history(dir: &Path, vins: &[&str], now: i64) -> Result<()> {
    if vins.is_empty() {
        return Ok(());
    }
    if let Some(mut db) = open_existing(dir)? {
        db.transaction(|tx| {
            vins.iter()
                .try_for_each(|vin| db_store::end_history(tx, vin, now))
        })?;
    }
    Ok(())
}

/// A vehicle's events, oldest first.
pub fn events(dir: &Path, vin: &str) -> Result<Vec<ota_metadata::documents::EcuEvent>> {
    Ok(open(dir)?.transaction(|tx| db_store::events(tx, vin))?)
}

/// What each (VIN, serial) of `ecus` last reported running.
pub fn reported(
    db: &mut Db,
    ecus: &[(String, String)],
) -> Result<BTreeMap<(String, String), db_store::Reported>> {
    Ok(db.transaction(|tx| {
        let mut out = BTreeMap::new();
        for (vin, serial) in ecus {
            if let Some(r) = db_store::reported(tx, vin, serial)? {
                out.insert((vin.clone(), serial.clone()), r);
            }
        }
        Ok(out)
    })?)
}

/// What each ECU of `vin` last reported running: serial -> (uid, version, release counter).
pub fn vehicle_running(db: &mut Db, vin: &str) -> Result<ota_metadata::documents::VehicleImages> {
    Ok(db
        .transaction(|tx| db_store::vehicle_running(tx, vin))?
        .into_iter()
        .map(|(serial, r)| (serial, (r.uid, r.version, r.release_counter)))
        .collect())
}

/// The ECUs of hardware id `hw` that ever reported a release counter above `counter`.
pub fn running_above(
    db: &mut Db,
    hw: &str,
    counter: u64,
) -> Result<Vec<(String, String, db_store::Reported)>> {
    Ok(db.transaction(|tx| db_store::running_above(tx, hw, counter))?)
}

/// The report state earlier versions kept in JSON (the inventory's `reported` and
/// `last_report` fields, `flagged.json`, `recalls.json`), imported into the database once,
/// shard by shard (bounded memory whatever the fleet).
fn import_legacy(dir: &Path, db: &mut Db) -> Result<()> {
    if dir.join(MIGRATED).exists() {
        return Ok(());
    }
    for shard in store::shard_files(dir, store::INVENTORY_DIR)? {
        let (vehicles, _) =
            store::read_shard_file::<LegacyVehicle>(dir, store::INVENTORY_DIR, &shard)?;
        if vehicles
            .values()
            .any(|v| v.last_report.is_some() || v.ecus.values().any(|e| e.reported.is_some()))
        {
            db.transaction(|tx| import_vehicles(tx, &vehicles))?;
        }
    }
    let flags: Vec<LegacyFlag> = read_state(dir, LEGACY_FLAGGED)?;
    let recalls: BTreeMap<String, Vec<ota_metadata::documents::EcuRecall>> =
        read_state(dir, LEGACY_RECALLS)?;
    if !flags.is_empty() || !recalls.is_empty() {
        db.transaction(|tx| import_flags_and_recalls(tx, &flags, &recalls))?;
    }
    // Written after the imports commit: a crash in between imports again (every import
    // statement leaves the state already there alone).
    mark_migrated(dir)
}

#[derive(Default, serde::Deserialize)]
struct LegacyVehicle {
    #[serde(default)]
    ecus: BTreeMap<String, LegacyEcu>,
    last_report: Option<ota_metadata::DateTime>,
    last_report_sha256: Option<String>,
    last_report_counter: Option<u64>,
}

#[derive(Default, serde::Deserialize)]
struct LegacyEcu {
    hardware_id: String,
    reported: Option<LegacyReported>,
}

#[derive(serde::Deserialize)]
struct LegacyReported {
    uid: String,
    version: String,
    sha256: String,
    release_counter: u64,
    at: ota_metadata::DateTime,
}

#[derive(serde::Deserialize)]
struct LegacyFlag {
    vin: String,
    serial: String,
    reason: String,
    report_generated: ota_metadata::DateTime,
}

fn import_vehicles(
    tx: &mut dyn ota_fleet::sql::Tx,
    vehicles: &BTreeMap<String, LegacyVehicle>,
) -> ota_fleet::Result<()> {
    use ota_fleet::sql::{int, Value};
    for (vin, v) in vehicles {
        if let (Some(at), Some(sha)) = (v.last_report, &v.last_report_sha256) {
            tx.exec(
                "INSERT INTO vehicles (vin, last_generated, last_counter, last_sha256, last_ingested)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (vin) DO NOTHING",
                &[
                    vin.into(),
                    Value::Int(at.0),
                    int(v.last_report_counter.unwrap_or(0), "report counter")?,
                    sha.into(),
                    Value::Int(ota_fleet::now()),
                ],
            )?;
        }
        for (serial, e) in &v.ecus {
            let Some(r) = &e.reported else { continue };
            tx.exec(
                "INSERT INTO ecus (vin, serial, hardware_id, uid, version, sha256, release_counter, reported_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (vin, serial) DO NOTHING",
                &[
                    vin.into(),
                    serial.into(),
                    Value::from(&e.hardware_id),
                    Value::from(&r.uid),
                    Value::from(&r.version),
                    Value::from(&r.sha256),
                    int(r.release_counter, "release counter")?,
                    Value::Int(r.at.0),
                ],
            )?;
        }
    }
    Ok(())
}

fn import_flags_and_recalls(
    tx: &mut dyn ota_fleet::sql::Tx,
    flags: &[LegacyFlag],
    recalls: &BTreeMap<String, Vec<ota_metadata::documents::EcuRecall>>,
) -> ota_fleet::Result<()> {
    use ota_fleet::sql::Value;
    for f in flags {
        tx.exec(
            "INSERT INTO flags (vin, serial, reason, first_seen, last_seen, times)
             VALUES ($1, $2, $3, $4, $4, 1) ON CONFLICT (vin, serial) DO NOTHING",
            &[
                Value::from(&f.vin),
                Value::from(&f.serial),
                Value::from(&f.reason),
                Value::Int(f.report_generated.0),
            ],
        )?;
    }
    for (vin, list) in recalls {
        for r in list {
            tx.exec(
                "INSERT INTO recalls (vin, serial, uid, version, regulator, reason, reported_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (vin, serial) DO NOTHING",
                &[
                    vin.into(),
                    Value::from(&r.serial),
                    Value::from(&r.uid),
                    Value::from(&r.version),
                    Value::from(&r.regulator),
                    Value::from(&r.reason),
                    Value::Int(0),
                ],
            )?;
        }
    }
    Ok(())
}
