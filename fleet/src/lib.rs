//! The OEM's fleet backend: what vehicles report, kept in a database, and served to the OEM's
//! commands (`ota-repo oem report …`, `oem assign`'s director checks, fleet queries).
//!
//! - [`report`] checks a vehicle version report (bounds, the vehicle's and every ECU's
//!   signature) before anything is written: a [`report::Verdict`].
//! - [`store`] records a verdict in one transaction (replays refused, storage per vehicle
//!   bounded) and reads back flags, recalls, events and what each ECU runs.
//! - [`sql`] runs the same statements on SQLite (embedded, the default) or PostgreSQL (several
//!   ingest nodes); [`schema`] migrates either, by numbered versions.
//! - [`server`] is the ingest endpoint gateways POST to: async, bounded connections, one
//!   deadline over each whole request, signatures checked on worker threads before the
//!   database is touched, reports written in batches (one commit for many).

pub mod error;
pub mod query;
pub mod report;
pub mod rollout;
pub mod schema;
pub mod server;
pub mod sql;
pub mod store;

pub use error::{FleetError, Result};
pub use report::{Inventory, KnownEcu, KnownVehicle, Verdict};
pub use sql::{Db, Location};
pub use store::Applied;

/// Now, in Unix seconds (when a report was ingested, a flag seen).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Verify and record one report (the command-line ingest; the server batches instead).
pub fn ingest(db: &mut Db, inventory: &dyn Inventory, bytes: &[u8]) -> Result<Applied> {
    let verdict = report::verify(inventory, bytes)?;
    db.transaction(|tx| store::apply(tx, &verdict, now()))
}

/// The one-line answer to the gateway (and the log line) for what an ingest did.
pub fn describe(applied: &Applied) -> String {
    match applied {
        Applied::AlreadySeen => "already seen: the report ingested last".into(),
        Applied::Ingested {
            accepted,
            flagged,
            recalls,
            ..
        } if flagged.is_empty() => {
            let mut s = format!("ingested: {accepted} ECU(s) accepted");
            for c in recalls {
                s.push_str(&format!(
                    "; RECALL: ECU {} runs {} {}, revoked by {}",
                    c.serial, c.uid, c.version, c.regulator
                ));
            }
            s
        }
        Applied::Ingested { flagged, .. } => format!(
            "ingested; {} ECU(s) flagged for review: {}",
            flagged.len(),
            flagged
                .iter()
                .map(|f| format!("{} ({})", f.serial, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
