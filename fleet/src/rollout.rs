//! Staged rollouts: a release assigned to a growing share of one hardware id's ECUs (1%, 10%,
//! 50%, 100%, say), advanced when the current stage's members report success often enough,
//! halted when too many report a refusal or a revert. What a stage's members did is read from
//! the reports: an ECU that reports running the release succeeded; one with a `refused` or
//! `reverted` event about the release failed; the rest are pending.
//!
//! [`decide`] is the policy, pure; the rest keeps a rollout's state in the report database.
//! Choosing members and writing assignments is the OEM working directory's
//! (`ota-repo oem rollout`).

use crate::error::{FleetError, Result};
use crate::sql::{Tx, Value};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    /// Stopped by failures (or by the operator): pending assignments withdrawn.
    Halted,
    /// Every stage went out and met the bar.
    Done,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Halted => "halted",
            State::Done => "done",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(State::Running),
            "halted" => Ok(State::Halted),
            "done" => Ok(State::Done),
            other => Err(FleetError::Database(format!("rollout state {other:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// `SUPPLIER/UID/VERSION/HARDWARE_ID`.
    pub id: String,
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub hardware_id: String,
    /// Cumulative shares of the hardware id's ECUs, in percent, rising, ending at 100.
    pub stages: Vec<u32>,
    /// The stage assigned last (an index into `stages`).
    pub stage: usize,
    /// Percent of the members so far that must run the release before the next stage.
    pub success_bar: u32,
    /// Percent of the members so far whose failure halts the rollout.
    pub failure_limit: u32,
    pub state: State,
    /// Why it halted or finished.
    pub reason: String,
    pub started: i64,
    pub updated: i64,
}

impl Rollout {
    pub fn id_of(supplier: &str, uid: &str, version: &str, hardware_id: &str) -> String {
        format!("{supplier}/{uid}/{version}/{hardware_id}")
    }

    /// Checks a new rollout's settings.
    pub fn check(&self) -> Result<()> {
        let rising = self.stages.windows(2).all(|w| w[0] < w[1]);
        if self.stages.is_empty()
            || !rising
            || self.stages.first().is_some_and(|s| *s == 0)
            || self.stages.last() != Some(&100)
        {
            return Err(FleetError::Refused(format!(
                "stages {:?}: rising percentages above 0, the last 100 (e.g. 1,10,50,100)",
                self.stages
            )));
        }
        if self.success_bar == 0 || self.success_bar > 100 || self.failure_limit > 100 {
            return Err(FleetError::Refused(format!(
                "success bar {}% and failure limit {}%: the bar in 1..=100, the limit in 0..=100",
                self.success_bar, self.failure_limit
            )));
        }
        Ok(())
    }
}

/// What a rollout's members so far did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub members: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl Progress {
    pub fn pending(&self) -> u64 {
        self.members.saturating_sub(self.succeeded + self.failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Too many failed: halt, withdraw what is pending.
    Halt(String),
    /// The bar is met: assign the next stage.
    Advance,
    /// The bar is met at the last stage.
    Done,
    /// Not yet: too few have reported.
    Wait,
}

/// The policy: failures past the limit halt (checked first: a stage that both meets the bar
/// and fails too often halts); successes at the bar advance, or finish at the last stage.
pub fn decide(r: &Rollout, p: &Progress) -> Decision {
    let m = u128::from(p.members.max(1));
    if u128::from(p.failed) * 100 > u128::from(r.failure_limit) * m {
        return Decision::Halt(format!(
            "{} of {} ECUs failed ({}%), above the limit of {}%",
            p.failed,
            p.members,
            u128::from(p.failed) * 100 / m,
            r.failure_limit
        ));
    }
    if u128::from(p.succeeded) * 100 >= u128::from(r.success_bar) * m {
        return if r.stage + 1 >= r.stages.len() {
            Decision::Done
        } else {
            Decision::Advance
        };
    }
    Decision::Wait
}

const COLUMNS: &str = "id, supplier, uid, version, hardware_id, stages, stage, success_bar, \
                       failure_limit, state, reason, started, updated";

fn of_row(r: Vec<Value>) -> Result<Rollout> {
    let mut r = r.into_iter();
    let mut next = || r.next().unwrap_or(Value::Null);
    let id = next().into_text();
    let supplier = next().into_text();
    let uid = next().into_text();
    let version = next().into_text();
    let hardware_id = next().into_text();
    let stages = next()
        .into_text()
        .split(',')
        .map(|s| s.parse::<u32>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| FleetError::Database(format!("rollout {id}: stages: {e}")))?;
    let stage = next().int().unwrap_or(0).max(0) as usize;
    let success_bar = next().int().unwrap_or(100).clamp(0, 100) as u32;
    let failure_limit = next().int().unwrap_or(0).clamp(0, 100) as u32;
    let state = State::parse(&next().into_text())?;
    Ok(Rollout {
        id,
        supplier,
        uid,
        version,
        hardware_id,
        stage: stage.min(stages.len().saturating_sub(1)),
        stages,
        success_bar,
        failure_limit,
        state,
        reason: next().into_text(),
        started: next().int().unwrap_or(0),
        updated: next().int().unwrap_or(0),
    })
}

/// Record a new rollout. Refused while a rollout of the same release and hardware id runs.
pub fn create(tx: &mut dyn Tx, r: &Rollout) -> Result<()> {
    r.check()?;
    if let Some(old) = get(tx, &r.id)? {
        if old.state == State::Running {
            return Err(FleetError::Refused(format!(
                "rollout {} is running (stage {} of {})",
                r.id,
                old.stage + 1,
                old.stages.len()
            )));
        }
        tx.exec(
            "DELETE FROM rollout_members WHERE rollout = $1",
            &[r.id.as_str().into()],
        )?;
        tx.exec(
            "DELETE FROM rollouts WHERE id = $1",
            &[r.id.as_str().into()],
        )?;
    }
    let stages = r
        .stages
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tx.exec(
        &format!("INSERT INTO rollouts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
        &[
            r.id.as_str().into(),
            r.supplier.as_str().into(),
            r.uid.as_str().into(),
            r.version.as_str().into(),
            r.hardware_id.as_str().into(),
            stages.into(),
            Value::Int(r.stage as i64),
            Value::Int(r.success_bar.into()),
            Value::Int(r.failure_limit.into()),
            r.state.as_str().into(),
            r.reason.as_str().into(),
            Value::Int(r.started),
            Value::Int(r.updated),
        ],
    )?;
    Ok(())
}

pub fn get(tx: &mut dyn Tx, id: &str) -> Result<Option<Rollout>> {
    tx.row(
        &format!("SELECT {COLUMNS} FROM rollouts WHERE id = $1"),
        &[id.into()],
    )?
    .map(of_row)
    .transpose()
}

/// Every rollout, by id.
pub fn all(tx: &mut dyn Tx) -> Result<Vec<Rollout>> {
    tx.rows(&format!("SELECT {COLUMNS} FROM rollouts ORDER BY id"), &[])?
        .into_iter()
        .map(of_row)
        .collect()
}

/// Move `id` to `stage` and `state`, saying why.
pub fn set(
    tx: &mut dyn Tx,
    id: &str,
    stage: usize,
    state: State,
    reason: &str,
    now: i64,
) -> Result<()> {
    tx.exec(
        "UPDATE rollouts SET stage = $2, state = $3, reason = $4, updated = $5 WHERE id = $1",
        &[
            id.into(),
            Value::Int(stage as i64),
            state.as_str().into(),
            reason.into(),
            Value::Int(now),
        ],
    )?;
    Ok(())
}

/// Record the ECUs `stage` assigned (each with its vehicle's newest event number: only
/// events after it count for this rollout).
pub fn add_members(
    tx: &mut dyn Tx,
    id: &str,
    stage: usize,
    ecus: &[(String, String)],
) -> Result<()> {
    for (vin, serial) in ecus {
        tx.exec(
            "INSERT INTO rollout_members (rollout, vin, serial, stage, events_after)
             VALUES ($1, $2, $3, $4,
                     (SELECT COALESCE(MAX(seq), 0) FROM events WHERE vin = $2))
             ON CONFLICT (rollout, vin, serial) DO NOTHING",
            &[
                id.into(),
                vin.into(),
                serial.into(),
                Value::Int(stage as i64),
            ],
        )?;
    }
    Ok(())
}

/// A member and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub vin: String,
    pub serial: String,
    pub stage: usize,
    pub succeeded: bool,
    pub failed: bool,
}

/// The members so far and what each did (from the ECU's last verified report and the events
/// its vehicle reported since it joined).
pub fn members(tx: &mut dyn Tx, r: &Rollout) -> Result<Vec<Member>> {
    let rows = tx.rows(
        "SELECT m.vin, m.serial, m.stage,
            (SELECT COUNT(*) FROM ecus e WHERE e.vin = m.vin AND e.serial = m.serial
                AND e.uid = $2 AND e.version = $3),
            (SELECT COUNT(*) FROM events v WHERE v.vin = m.vin AND v.serial = m.serial
                AND v.uid = $2 AND v.version = $3 AND v.outcome IN ('refused', 'reverted')
                AND v.seq > m.events_after)
         FROM rollout_members m WHERE m.rollout = $1 ORDER BY m.vin, m.serial",
        &[
            r.id.as_str().into(),
            r.uid.as_str().into(),
            r.version.as_str().into(),
        ],
    )?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut row = row.into_iter();
            let mut next = || row.next().unwrap_or(Value::Null);
            let vin = next().into_text();
            let serial = next().into_text();
            let stage = next().int().unwrap_or(0).max(0) as usize;
            let running = next().int().unwrap_or(0) > 0;
            let refused = next().int().unwrap_or(0) > 0;
            Member {
                vin,
                serial,
                stage,
                // Running it now is success, whatever failed before (a retry that worked).
                succeeded: running,
                failed: !running && refused,
            }
        })
        .collect())
}

/// Tally of `members`.
pub fn progress(members: &[Member]) -> Progress {
    Progress {
        members: members.len() as u64,
        succeeded: members.iter().filter(|m| m.succeeded).count() as u64,
        failed: members.iter().filter(|m| m.failed).count() as u64,
    }
}
