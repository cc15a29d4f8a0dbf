//! What can go wrong in the fleet backend, typed so that the server answers each with the right
//! status and tests match on the case.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Not a version report, or one out of bounds (too many ECUs, a field too long).
    #[error("malformed report: {0}")]
    Malformed(String),
    /// The VIN is not in the inventory.
    #[error("unknown vehicle {0}: not in the inventory")]
    UnknownVehicle(String),
    #[error("vehicle {0} has no registered key (`oem vehicle key`): its report cannot be trusted")]
    NoVehicleKey(String),
    /// The vehicle's signature does not verify with its registered key.
    #[error("version report of {vin}: {reason}")]
    BadSignature { vin: String, reason: String },
    /// Not newer than the last report ingested for the vehicle.
    #[error(
        "generated {generated} (counter {counter}), not newer than the last report ingested for \
         {vin} (generated {last_generated}, counter {last_counter}): a replay?"
    )]
    Replay {
        vin: String,
        generated: String,
        counter: u64,
        last_generated: String,
        last_counter: u64,
    },
    /// Generated before the vehicle's history began (it was removed from the fleet, or added
    /// again): nothing signed before counts.
    #[error(
        "generated {generated}, before the vehicle's history began at {began} ({vin} was removed from the fleet or added again since): refused"
    )]
    BeforeHistory {
        vin: String,
        generated: String,
        began: String,
    },
    /// The inventory could not be read.
    #[error("inventory: {0}")]
    Inventory(String),
    #[error("report database: {0}")]
    Database(String),
    /// The database was migrated by a newer release.
    #[error("report database {at} has schema version {found}; this release knows up to {known}: upgrade ota-repo")]
    NewerSchema { at: String, found: i64, known: i64 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Asked for something that does not exist (a query's subject, a rollout).
    #[error("{0}")]
    NotFound(String),
    /// A request the backend refuses (a rollout setting out of range, a rollout already running).
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

impl FleetError {
    pub(crate) fn sqlite(e: rusqlite::Error) -> Self {
        FleetError::Database(format!("sqlite: {e}"))
    }
    pub(crate) fn postgres(e: postgres::Error) -> Self {
        FleetError::Database(format!("postgres: {e}"))
    }
    pub(crate) fn db(at: &crate::sql::Location, e: impl std::fmt::Display) -> Self {
        FleetError::Database(format!("{at}: {e}"))
    }

    /// The fault is the sender's (HTTP 400), not the server's (503: try again later).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            FleetError::Malformed(_)
                | FleetError::UnknownVehicle(_)
                | FleetError::NoVehicleKey(_)
                | FleetError::BadSignature { .. }
                | FleetError::Replay { .. }
                | FleetError::BeforeHistory { .. }
        )
    }
}
