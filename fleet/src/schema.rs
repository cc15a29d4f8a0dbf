//! The report database's schema, as numbered migrations applied in order, each once, each in
//! its own transaction (`schema_migrations` records which ran). The same statements run on
//! SQLite and PostgreSQL. A database migrated by a newer release is refused, not written.
//!
//! Times are Unix seconds; counters are `BIGINT` (refused above `i64::MAX` on the way in).

use crate::error::{FleetError, Result};
use crate::sql::{Db, Location, Tx, Value};

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&[&str]] = &[
    &[
        // The newest report ingested per vehicle: a report not newer is a replay (or the same one
        // again, told by its digest).
        "CREATE TABLE vehicles (
        vin TEXT PRIMARY KEY,
        last_generated BIGINT NOT NULL,
        last_counter BIGINT NOT NULL,
        last_sha256 TEXT NOT NULL,
        last_ingested BIGINT NOT NULL
    )",
        // What each ECU last reported running, from a report whose ECU signature verified.
        "CREATE TABLE ecus (
        vin TEXT NOT NULL,
        serial TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        uid TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        release_counter BIGINT NOT NULL,
        reported_at BIGINT NOT NULL,
        PRIMARY KEY (vin, serial)
    )",
        "CREATE INDEX ecus_release ON ecus (uid, version)",
        "CREATE INDEX ecus_hardware ON ecus (hardware_id, release_counter)",
        // ECUs held for the replacement process: one row per (vehicle, serial), at most
        // MAX_FLAGS_PER_VEHICLE per vehicle (the rest counted in the row of serial '*').
        "CREATE TABLE flags (
        vin TEXT NOT NULL,
        serial TEXT NOT NULL,
        reason TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        times BIGINT NOT NULL,
        PRIMARY KEY (vin, serial)
    )",
        // Installed releases a regulator revoked, as the vehicle's last report listed them.
        "CREATE TABLE recalls (
        vin TEXT NOT NULL,
        serial TEXT NOT NULL,
        uid TEXT NOT NULL,
        version TEXT NOT NULL,
        regulator TEXT NOT NULL,
        reason TEXT NOT NULL,
        reported_at BIGINT NOT NULL,
        PRIMARY KEY (vin, serial)
    )",
        // What happened to each ECU (installed, refused, reverted, recalled), numbered by the
        // gateway: an event sent again in a later report is kept once. The newest
        // MAX_EVENTS_PER_VEHICLE per vehicle are kept.
        "CREATE TABLE events (
        vin TEXT NOT NULL,
        seq BIGINT NOT NULL,
        serial TEXT NOT NULL,
        outcome TEXT NOT NULL,
        code TEXT NOT NULL,
        uid TEXT NOT NULL,
        version TEXT NOT NULL,
        update_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (vin, seq)
    )",
        "CREATE INDEX events_release ON events (uid, version, outcome)",
    ],
    &[
        // Staged rollouts (`oem rollout`): a release going out to a growing share of one hardware
        // id's ECUs, advanced or halted from the reports.
        "CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        supplier TEXT NOT NULL,
        uid TEXT NOT NULL,
        version TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        stages TEXT NOT NULL,
        stage BIGINT NOT NULL,
        success_bar BIGINT NOT NULL,
        failure_limit BIGINT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        started BIGINT NOT NULL,
        updated BIGINT NOT NULL
    )",
        // The ECUs each stage assigned the release to.
        "CREATE TABLE rollout_members (
        rollout TEXT NOT NULL,
        vin TEXT NOT NULL,
        serial TEXT NOT NULL,
        stage BIGINT NOT NULL,
        PRIMARY KEY (rollout, vin, serial)
    )",
    ],
    &[
        // The highest release counter each ECU ever reported: an older signed entry replayed
        // by a compromised gateway cannot lower what the director checks against.
        "ALTER TABLE ecus ADD COLUMN highest_release_counter BIGINT NOT NULL DEFAULT 0",
        "UPDATE ecus SET highest_release_counter = release_counter",
        "CREATE INDEX ecus_highest ON ecus (hardware_id, highest_release_counter)",
    ],
    &[
        // How many recalls the vehicle's newest report listed, so a report of a vehicle with
        // none before and none now skips the delete (one round trip per report on
        // PostgreSQL). Not zero ("maybe some") until a report has set it: a vehicle's first
        // report, and one after this migration, clears whatever an import left.
        "ALTER TABLE vehicles ADD COLUMN recalled BIGINT NOT NULL DEFAULT 1",
    ],
    &[
        // The newest event number the member's vehicle had reported when it joined: only
        // later events count for the rollout (an old refusal of the same release is history,
        // not this rollout's failure). By number, not by the gateway's clock, which may lag.
        // -1 (members from before): every event counts, as before.
        "ALTER TABLE rollout_members ADD COLUMN events_after BIGINT NOT NULL DEFAULT -1",
    ],
];

/// The schema version this release writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Apply the migrations the database lacks.
pub(crate) fn migrate(db: &mut Db, at: &Location) -> Result<()> {
    let postgres = db.is_postgres();
    db.transaction(|tx| {
        if postgres {
            // Several ingest nodes may start at once: one migrates, the others wait.
            tx.rows("SELECT pg_advisory_xact_lock(7402651)", &[])?;
        }
        tx.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                applied BIGINT NOT NULL
            )",
            &[],
        )?;
        let found = tx.count("SELECT MAX(version) FROM schema_migrations", &[])?;
        if found > VERSION {
            return Err(FleetError::NewerSchema {
                at: at.to_string(),
                found,
                known: VERSION,
            });
        }
        for (i, statements) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            apply(tx, i as i64 + 1, statements)?;
        }
        Ok(())
    })
}

fn apply(tx: &mut dyn Tx, version: i64, statements: &[&str]) -> Result<()> {
    for s in statements {
        tx.exec(s, &[])?;
    }
    tx.exec(
        "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
        &[Value::Int(version), Value::Int(crate::now())],
    )?;
    Ok(())
}
