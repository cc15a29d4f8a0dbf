//! Fleet queries over what vehicles reported: which ECUs run a release, which are behind one,
//! which run a recalled image. Each is one indexed statement (`ecus_release`,
//! `ecus_hardware`), so a query over a million vehicles reads only the rows it answers with.

use crate::error::Result;
use crate::sql::{int, Tx, Value};
use ota_metadata::DateTime;
use serde::Serialize;

/// One ECU as its vehicle last reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EcuRow {
    pub vin: String,
    pub serial: String,
    pub hardware_id: String,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub reported_at: DateTime,
    /// The highest release counter the ECU ever reported. Above `release_counter`: this
    /// report is an older entry replayed by a compromised gateway, or a revert (flagged).
    pub highest_release_counter: u64,
}

impl EcuRow {
    /// The last report is below what the ECU reported before (replayed or reverted).
    pub fn below_highest(&self) -> bool {
        self.highest_release_counter > self.release_counter
    }
}

const COLUMNS: &str =
    "vin, serial, hardware_id, uid, version, release_counter, reported_at, highest_release_counter";

fn rows(tx: &mut dyn Tx, sql: &str, params: &[Value]) -> Result<Vec<EcuRow>> {
    Ok(tx
        .rows(sql, params)?
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let mut next = || r.next().unwrap_or(Value::Null);
            EcuRow {
                vin: next().into_text(),
                serial: next().into_text(),
                hardware_id: next().into_text(),
                uid: next().into_text(),
                version: next().into_text(),
                release_counter: next().int().unwrap_or(0).max(0) as u64,
                reported_at: DateTime(next().int().unwrap_or(0)),
                highest_release_counter: next().int().unwrap_or(0).max(0) as u64,
            }
        })
        .collect())
}

/// The ECUs that last reported running `uid` `version`.
pub fn running(tx: &mut dyn Tx, uid: &str, version: &str) -> Result<Vec<EcuRow>> {
    rows(
        tx,
        &format!("SELECT {COLUMNS} FROM ecus WHERE uid = $1 AND version = $2 ORDER BY vin, serial"),
        &[uid.into(), version.into()],
    )
}

/// The ECUs of `hardware_ids` that last reported a release counter below `counter` (behind
/// a release at that counter; nothing installed counts as 0).
pub fn behind(tx: &mut dyn Tx, hardware_ids: &[String], counter: u64) -> Result<Vec<EcuRow>> {
    let mut out = Vec::new();
    for hw in hardware_ids {
        out.extend(rows(
            tx,
            &format!(
                "SELECT {COLUMNS} FROM ecus WHERE hardware_id = $1 AND release_counter < $2
                 ORDER BY vin, serial"
            ),
            &[hw.into(), int(counter, "release counter")?],
        )?);
    }
    out.sort_by(|a, b| (&a.vin, &a.serial).cmp(&(&b.vin, &b.serial)));
    Ok(out)
}

/// How many ECUs last reported running `uid` `version` (without reading them).
pub fn count_running(tx: &mut dyn Tx, uid: &str, version: &str) -> Result<u64> {
    Ok(tx
        .count(
            "SELECT COUNT(*) FROM ecus WHERE uid = $1 AND version = $2",
            &[uid.into(), version.into()],
        )?
        .max(0) as u64)
}

/// How many ECUs of `hardware_ids` are behind a release at `counter` (without reading them).
pub fn count_behind(tx: &mut dyn Tx, hardware_ids: &[String], counter: u64) -> Result<u64> {
    let mut n = 0u64;
    for hw in hardware_ids {
        n = n.saturating_add(
            tx.count(
                "SELECT COUNT(*) FROM ecus WHERE hardware_id = $1 AND release_counter < $2",
                &[hw.into(), int(counter, "release counter")?],
            )?
            .max(0) as u64,
        );
    }
    Ok(n)
}
