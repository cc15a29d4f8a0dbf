//! Recording verified reports, and reading back what they said.
//!
//! One report is one transaction: the vehicle's row is advanced only if the report is newer than
//! the last one (a conditional upsert, so two ingest nodes racing on one vehicle serialize on
//! its row), then its ECUs, flags, recalls and events are written. Storage per vehicle is
//! bounded whatever a vehicle's key signs: one row per inventory ECU, at most
//! [`MAX_FLAGS_PER_VEHICLE`] flags (plus one row counting the rest), one recall per ECU, and
//! the newest [`MAX_EVENTS_PER_VEHICLE`] events.

use crate::error::{FleetError, Result};
use crate::report::{Flag, Verdict};
use crate::sql::{int, Tx, Value};
use ota_metadata::documents::{EcuEvent, EcuRecall, Outcome};
use ota_metadata::DateTime;
use std::collections::BTreeMap;

/// Distinct flagged serials kept per vehicle; more are counted in the row of serial `*`.
pub const MAX_FLAGS_PER_VEHICLE: i64 = 64;
/// Events kept per vehicle (the newest).
pub const MAX_EVENTS_PER_VEHICLE: i64 = 256;
/// The serial of the row counting the flags past the cap.
pub const OVERFLOW_SERIAL: &str = "*";

/// What recording a report did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Ingested {
        accepted: usize,
        flagged: Vec<Flag>,
        recalls: Vec<EcuRecall>,
        new_events: usize,
    },
    /// The report ingested last, sent again (an upload whose answer was lost): nothing changed.
    AlreadySeen,
}

/// Record `v` at time `now` (Unix seconds): [`apply_batch`] of one report.
pub fn apply(tx: &mut dyn Tx, v: &Verdict, now: i64) -> Result<Applied> {
    apply_batch(tx, &[v], now)?
        .pop()
        .unwrap_or(Err(FleetError::Database("no result for the report".into())))
}

/// Rows per multi-row statement (5 parameters per vehicle row, 8 per ECU row: far inside
/// both databases' limits).
const ROWS_PER_STATEMENT: usize = 64;

/// Record the reports of `batch`, in order, at time `now`: what each did, or why it was
/// refused (the outer error is the database's, which spoils the whole transaction).
///
/// Every bound is checked before the first write, and the first write decides whether a
/// report is newer; after it only the database can fail. So a refused report never leaves
/// anything half-written, and no savepoint is needed per report. The reports go in rounds,
/// each vehicle at most once per round (a vehicle's reports in arrival order): a round is one
/// multi-row statement advancing its vehicles and one writing all their ECUs (per 64 rows),
/// then flags, recalls and events where a report has any. A batch of 64 single-vehicle
/// reports is about three round trips to the database, not 128.
pub fn apply_batch(tx: &mut dyn Tx, batch: &[&Verdict], now: i64) -> Result<Vec<Result<Applied>>> {
    let mut results: Vec<Option<Result<Applied>>> = batch.iter().map(|_| None).collect();
    let mut pending = Vec::new();
    for (i, v) in batch.iter().enumerate() {
        match check_bounds(v) {
            Ok(()) => pending.push(i),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    while !pending.is_empty() {
        let mut seen = std::collections::BTreeSet::new();
        let (round, rest): (Vec<usize>, Vec<usize>) = pending
            .into_iter()
            .partition(|&i| seen.insert(batch[i].vin.as_str()));
        apply_round(tx, batch, &round, now, &mut results)?;
        pending = rest;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(FleetError::Database("report not recorded".into()))))
        .collect())
}

/// One round of [`apply_batch`]: `round` indexes reports of distinct vehicles.
fn apply_round(
    tx: &mut dyn Tx,
    batch: &[&Verdict],
    round: &[usize],
    now: i64,
    results: &mut [Option<Result<Applied>>],
) -> Result<()> {
    let reports: Vec<&Verdict> = round.iter().map(|&i| batch[i]).collect();
    let advanced = advance_vehicles(tx, &reports, now)?;
    let mut newer = Vec::new();
    for &i in round {
        let v = batch[i];
        match advanced.get(v.vin.as_str()) {
            Some(&recalled_before) => newer.push((i, recalled_before)),
            None => match refuse_stale(tx, v) {
                Err(e @ FleetError::Database(_)) => return Err(e),
                r => results[i] = Some(r),
            },
        }
    }
    let rows: Vec<(&str, &crate::report::EcuState, i64)> = newer
        .iter()
        .flat_map(|&(i, _)| {
            let v = batch[i];
            v.accepted
                .iter()
                .map(move |e| (v.vin.as_str(), e, v.generated.0))
        })
        .collect();
    let highest = record_ecu_rows(tx, &rows)?;
    for (i, recalled_before) in newer {
        let v = batch[i];
        let mut flagged = v.flagged.clone();
        for e in &v.accepted {
            let h = highest
                .get(&(v.vin.clone(), e.serial.clone()))
                .copied()
                .unwrap_or(0);
            if let Some(why) = below_highest(e, h) {
                flagged.push(Flag {
                    serial: e.serial.clone(),
                    reason: why,
                });
            }
        }
        for f in &flagged {
            record_flag(tx, &v.vin, f, now)?;
        }
        record_recalls(tx, v, recalled_before)?;
        let new_events = record_events(tx, &v.vin, &v.events)?;
        results[i] = Some(Ok(Applied::Ingested {
            accepted: v.accepted.len(),
            flagged,
            recalls: v.recalls.clone(),
            new_events,
        }));
    }
    Ok(())
}

/// The numbers the database stores as signed 64-bit integers fit (a verified report's do; this
/// makes it true of any `Verdict`).
/// And the accepted ECUs are distinct (one row each in one statement).
fn check_bounds(v: &Verdict) -> Result<()> {
    int(v.counter, "report counter")?;
    let mut serials = std::collections::BTreeSet::new();
    for e in &v.accepted {
        if !serials.insert(&e.serial) {
            return Err(FleetError::Malformed(format!(
                "ECU {} accepted twice in one report",
                e.serial
            )));
        }
        if let Some(i) = &e.image {
            int(i.release_counter, "release counter")?;
        }
    }
    for e in &v.events {
        int(e.seq, "event number")?;
    }
    Ok(())
}

/// An ECU reporting a lower release counter than it did before (`highest`, the largest it has
/// reported, this report included): an older signed entry a compromised gateway replays (the
/// gateway picks the nonce the ECU signs), or a revert of an image never confirmed. Recorded,
/// and flagged for the OEM to look at.
fn below_highest(e: &crate::report::EcuState, highest: i64) -> Option<String> {
    let now = e.image.as_ref()?.release_counter;
    (u64::try_from(highest).unwrap_or(0) > now).then(|| {
        format!(
            "reports release counter {now}, below the {highest} it reported before: an older entry replayed by a compromised gateway, or a reverted image"
        )
    })
}

/// Make each of `reports` (distinct vehicles) its vehicle's newest report where it is newer
/// than the one recorded: by VIN, how many recalls the report before listed (not zero if
/// unknown). A VIN missing from the answer was not newer.
fn advance_vehicles(
    tx: &mut dyn Tx,
    reports: &[&Verdict],
    now: i64,
) -> Result<std::collections::BTreeMap<String, i64>> {
    let mut advanced = std::collections::BTreeMap::new();
    for chunk in reports.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 5);
        let mut rows = Vec::with_capacity(chunk.len());
        for v in chunk {
            let p = params.len();
            rows.push(format!(
                "(${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            ));
            params.extend([
                Value::from(&v.vin),
                Value::Int(v.generated.0),
                int(v.counter, "report counter")?,
                Value::from(&v.sha256),
                Value::Int(now),
            ]);
        }
        // `recalled` is not updated here: RETURNING gives the previous report's count.
        let sql = format!(
            "INSERT INTO vehicles (vin, last_generated, last_counter, last_sha256, last_ingested)
             VALUES {}
             ON CONFLICT (vin) DO UPDATE SET
                last_generated = excluded.last_generated,
                last_counter = excluded.last_counter,
                last_sha256 = excluded.last_sha256,
                last_ingested = excluded.last_ingested
             WHERE vehicles.last_generated < excluded.last_generated
                OR (vehicles.last_generated = excluded.last_generated
                    AND vehicles.last_counter < excluded.last_counter)
             RETURNING vin, recalled",
            rows.join(", ")
        );
        for r in tx.rows(&sql, &params)? {
            let mut r = r.into_iter();
            let vin = r.next().unwrap_or(Value::Null).into_text();
            advanced.insert(vin, r.next().and_then(|v| v.int()).unwrap_or(1));
        }
    }
    Ok(advanced)
}

/// The report is not newer: the same one again, or a replay.
fn refuse_stale(tx: &mut dyn Tx, v: &Verdict) -> Result<Applied> {
    let row = tx
        .row(
            "SELECT last_sha256, last_generated, last_counter FROM vehicles WHERE vin = $1",
            &[Value::from(&v.vin)],
        )?
        .unwrap_or_default();
    let mut row = row.into_iter();
    let sha = row.next().unwrap_or(Value::Null).into_text();
    if sha == v.sha256 {
        return Ok(Applied::AlreadySeen);
    }
    let last_generated = row.next().and_then(|x| x.int()).unwrap_or(0);
    let last_counter = row.next().and_then(|x| x.int()).unwrap_or(0);
    if sha.is_empty() {
        // The floor `end_history` set: no report has come since.
        return Err(FleetError::BeforeHistory {
            vin: v.vin.clone(),
            generated: v.generated.to_string(),
            began: DateTime(last_generated).to_string(),
        });
    }
    Err(FleetError::Replay {
        vin: v.vin.clone(),
        generated: v.generated.to_string(),
        counter: v.counter,
        last_generated: DateTime(last_generated).to_string(),
        last_counter: last_counter.max(0) as u64,
    })
}

/// Record what ECU `e` of `vin` runs, as reported at `at` (a verified report's; an import's);
/// the highest release counter it has reported, this one included.
pub fn record_ecu(tx: &mut dyn Tx, vin: &str, e: &crate::report::EcuState, at: i64) -> Result<i64> {
    let highest = record_ecus(tx, vin, std::slice::from_ref(e), at)?;
    Ok(highest.get(&e.serial).copied().unwrap_or(0))
}

/// Record what the ECUs `ecus` (distinct serials) of `vin` run, as reported at `at`; by serial,
/// the highest release counter each has reported, this report included.
pub fn record_ecus(
    tx: &mut dyn Tx,
    vin: &str,
    ecus: &[crate::report::EcuState],
    at: i64,
) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<_> = ecus.iter().map(|e| (vin, e, at)).collect();
    Ok(record_ecu_rows(tx, &rows)?
        .into_iter()
        .map(|((_, serial), h)| (serial, h))
        .collect())
}

/// Record ECU rows (VIN, what it runs, reported at; distinct (VIN, serial)), 64 per
/// statement; by (VIN, serial), the highest release counter each has reported.
fn record_ecu_rows(
    tx: &mut dyn Tx,
    ecus: &[(&str, &crate::report::EcuState, i64)],
) -> Result<BTreeMap<(String, String), i64>> {
    let mut highest = BTreeMap::new();
    for chunk in ecus.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 8);
        let mut rows = Vec::with_capacity(chunk.len());
        for &(vin, e, at) in chunk {
            let (uid, version, sha256, counter) = match &e.image {
                Some(r) => (
                    r.uid.as_str(),
                    r.version.as_str(),
                    r.sha256.as_str(),
                    int(r.release_counter, "release counter")?,
                ),
                None => ("", "", "", Value::Int(0)),
            };
            let p = params.len();
            rows.push(format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8,
                p + 7
            ));
            params.extend([
                vin.into(),
                Value::from(&e.serial),
                Value::from(&e.hardware_id),
                uid.into(),
                version.into(),
                sha256.into(),
                counter,
                Value::Int(at),
            ]);
        }
        let sql = format!(
            "INSERT INTO ecus (vin, serial, hardware_id, uid, version, sha256, release_counter,
                               reported_at, highest_release_counter)
             VALUES {}
             ON CONFLICT (vin, serial) DO UPDATE SET
                hardware_id = excluded.hardware_id, uid = excluded.uid,
                version = excluded.version, sha256 = excluded.sha256,
                release_counter = excluded.release_counter, reported_at = excluded.reported_at,
                highest_release_counter = CASE
                    WHEN ecus.highest_release_counter > excluded.release_counter
                    THEN ecus.highest_release_counter ELSE excluded.release_counter END
             RETURNING vin, serial, highest_release_counter",
            rows.join(", ")
        );
        for r in tx.rows(&sql, &params)? {
            let mut r = r.into_iter();
            let vin = r.next().unwrap_or(Value::Null).into_text();
            let serial = r.next().unwrap_or(Value::Null).into_text();
            let h = r.next().and_then(|v| v.int()).unwrap_or(0);
            highest.insert((vin, serial), h);
        }
    }
    Ok(highest)
}

/// One flag per (vehicle, serial), refreshed when seen again; past the per-vehicle cap, new
/// serials only count in the overflow row.
fn record_flag(tx: &mut dyn Tx, vin: &str, f: &Flag, now: i64) -> Result<()> {
    let refreshed = tx.exec(
        "UPDATE flags SET reason = $3, last_seen = $4, times = times + 1
         WHERE vin = $1 AND serial = $2",
        &[
            vin.into(),
            Value::from(&f.serial),
            Value::from(&f.reason),
            Value::Int(now),
        ],
    )?;
    if refreshed > 0 {
        return Ok(());
    }
    let held = tx.count(
        "SELECT COUNT(*) FROM flags WHERE vin = $1 AND serial <> $2",
        &[vin.into(), OVERFLOW_SERIAL.into()],
    )?;
    let (serial, reason) = if held < MAX_FLAGS_PER_VEHICLE {
        (f.serial.as_str(), f.reason.clone())
    } else {
        (
            OVERFLOW_SERIAL,
            format!("more ECUs flagged than the {MAX_FLAGS_PER_VEHICLE} kept per vehicle (last: {}: {})", f.serial, f.reason),
        )
    };
    tx.exec(
        "INSERT INTO flags (vin, serial, reason, first_seen, last_seen, times)
         VALUES ($1, $2, $3, $4, $4, 1)
         ON CONFLICT (vin, serial) DO UPDATE SET
            reason = excluded.reason, last_seen = excluded.last_seen, times = flags.times + 1",
        &[vin.into(), serial.into(), reason.into(), Value::Int(now)],
    )?;
    Ok(())
}

/// The vehicle's recalls become those of its newest report (`before`: how many the one before
/// listed, not zero if unknown).
fn record_recalls(tx: &mut dyn Tx, v: &Verdict, before: i64) -> Result<()> {
    if before != 0 {
        tx.exec("DELETE FROM recalls WHERE vin = $1", &[Value::from(&v.vin)])?;
    }
    for r in &v.recalls {
        tx.exec(
            "INSERT INTO recalls (vin, serial, uid, version, regulator, reason, reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (vin, serial) DO NOTHING",
            &[
                Value::from(&v.vin),
                Value::from(&r.serial),
                Value::from(&r.uid),
                Value::from(&r.version),
                Value::from(&r.regulator),
                Value::from(&r.reason),
                Value::Int(v.generated.0),
            ],
        )?;
    }
    let now = i64::try_from(v.recalls.len()).unwrap_or(i64::MAX);
    if now != before {
        tx.exec(
            "UPDATE vehicles SET recalled = $2 WHERE vin = $1",
            &[Value::from(&v.vin), Value::Int(now)],
        )?;
    }
    Ok(())
}

/// Keep each event number once; then only the newest per vehicle. Returns how many were new.
fn record_events(tx: &mut dyn Tx, vin: &str, events: &[EcuEvent]) -> Result<usize> {
    let mut new = 0;
    for e in events {
        new += tx.exec(
            "INSERT INTO events (vin, seq, serial, outcome, code, uid, version, update_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (vin, seq) DO NOTHING",
            &[
                vin.into(),
                int(e.seq, "event number")?,
                Value::from(&e.serial),
                e.outcome.as_str().into(),
                Value::from(&e.code),
                Value::from(&e.uid),
                Value::from(&e.version),
                Value::from(&e.update),
                Value::Int(e.at.0),
            ],
        )? as usize;
    }
    if new > 0 {
        tx.exec(
            "DELETE FROM events WHERE vin = $1 AND seq NOT IN (
                SELECT seq FROM events WHERE vin = $1 ORDER BY at DESC, seq DESC LIMIT $2)",
            &[vin.into(), Value::Int(MAX_EVENTS_PER_VEHICLE)],
        )?;
    }
    Ok(new)
}

/// A flag as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFlag {
    pub vin: String,
    pub serial: String,
    pub reason: String,
    pub first_seen: DateTime,
    pub last_seen: DateTime,
    pub times: u64,
}

/// Every flag, by VIN and serial.
pub fn flags(tx: &mut dyn Tx) -> Result<Vec<StoredFlag>> {
    let rows = tx.rows(
        "SELECT vin, serial, reason, first_seen, last_seen, times FROM flags ORDER BY vin, serial",
        &[],
    )?;
    Ok(rows.into_iter().map(stored_flag).collect())
}

fn stored_flag(r: Vec<Value>) -> StoredFlag {
    let mut r = r.into_iter();
    let mut text = || r.next().unwrap_or(Value::Null);
    let vin = text().into_text();
    let serial = text().into_text();
    let reason = text().into_text();
    let first_seen = DateTime(text().int().unwrap_or(0));
    let last_seen = DateTime(text().int().unwrap_or(0));
    let times = text().int().unwrap_or(0).max(0) as u64;
    StoredFlag {
        vin,
        serial,
        reason,
        first_seen,
        last_seen,
        times,
    }
}

/// Clear the flags of `vin` (only ECU `serial`'s when given); the flags removed. Refused when
/// none matched (a typo must not look like success).
pub fn clear_flags(tx: &mut dyn Tx, vin: &str, serial: Option<&str>) -> Result<Vec<StoredFlag>> {
    let all = flags(tx)?;
    let cleared: Vec<StoredFlag> = all
        .into_iter()
        .filter(|f| f.vin == vin && serial.is_none_or(|s| f.serial == s))
        .collect();
    if cleared.is_empty() {
        return Err(FleetError::NotFound(format!(
            "no flag for {vin}{}",
            serial.map(|s| format!(" ECU {s}")).unwrap_or_default()
        )));
    }
    for f in &cleared {
        tx.exec(
            "DELETE FROM flags WHERE vin = $1 AND serial = $2",
            &[Value::from(&f.vin), Value::from(&f.serial)],
        )?;
    }
    Ok(cleared)
}

/// What an ECU last reported running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    /// The highest release counter it ever reported (an ECU never goes below it; a lower one
    /// reported later is a replayed entry, or a revert of an image never confirmed).
    pub highest_release_counter: u64,
}

/// What an ECU last reported running.
pub fn reported(tx: &mut dyn Tx, vin: &str, serial: &str) -> Result<Option<Reported>> {
    let row = tx.row(
        "SELECT uid, version, release_counter, highest_release_counter FROM ecus
         WHERE vin = $1 AND serial = $2",
        &[vin.into(), serial.into()],
    )?;
    Ok(row.map(|r| reported_of(&mut r.into_iter())))
}

/// The next four columns (uid, version, release counter, highest release counter).
fn reported_of(r: &mut impl Iterator<Item = Value>) -> Reported {
    let uid = r.next().unwrap_or(Value::Null).into_text();
    let version = r.next().unwrap_or(Value::Null).into_text();
    let release_counter = r.next().and_then(|v| v.int()).unwrap_or(0).max(0) as u64;
    let highest = r.next().and_then(|v| v.int()).unwrap_or(0).max(0) as u64;
    Reported {
        uid,
        version,
        release_counter,
        highest_release_counter: highest.max(release_counter),
    }
}

/// What each ECU of `vin` last reported running (those with an image).
pub fn vehicle_running(tx: &mut dyn Tx, vin: &str) -> Result<Vec<(String, Reported)>> {
    let rows = tx.rows(
        "SELECT serial, uid, version, release_counter, highest_release_counter FROM ecus
         WHERE vin = $1 AND uid <> ''",
        &[vin.into()],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let serial = r.next().unwrap_or(Value::Null).into_text();
            (serial, reported_of(&mut r))
        })
        .collect())
}

/// The ECUs of hardware id `hw` that ever reported a release counter above `counter`:
/// (VIN, serial, what they report).
pub fn running_above(
    tx: &mut dyn Tx,
    hw: &str,
    counter: u64,
) -> Result<Vec<(String, String, Reported)>> {
    let rows = tx.rows(
        "SELECT vin, serial, uid, version, release_counter, highest_release_counter FROM ecus
         WHERE hardware_id = $1 AND highest_release_counter > $2 ORDER BY vin, serial",
        &[hw.into(), int(counter, "release counter")?],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let vin = r.next().unwrap_or(Value::Null).into_text();
            let serial = r.next().unwrap_or(Value::Null).into_text();
            (vin, serial, reported_of(&mut r))
        })
        .collect())
}

/// The recalls the newest reports carry, by VIN and serial.
pub fn recalls(tx: &mut dyn Tx) -> Result<Vec<(String, EcuRecall)>> {
    let rows = tx.rows(
        "SELECT vin, serial, uid, version, regulator, reason FROM recalls ORDER BY vin, serial",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Value::into_text);
            let mut next = || r.next().unwrap_or_default();
            let vin = next();
            (
                vin,
                EcuRecall {
                    serial: next(),
                    uid: next(),
                    version: next(),
                    regulator: next(),
                    reason: next(),
                },
            )
        })
        .collect())
}

/// A vehicle's events, oldest first.
pub fn events(tx: &mut dyn Tx, vin: &str) -> Result<Vec<EcuEvent>> {
    let rows = tx.rows(
        "SELECT seq, serial, outcome, code, uid, version, update_id, at FROM events
         WHERE vin = $1 ORDER BY seq",
        &[vin.into()],
    )?;
    Ok(rows.into_iter().filter_map(event_of).collect())
}

fn event_of(r: Vec<Value>) -> Option<EcuEvent> {
    let mut r = r.into_iter();
    let seq = r.next()?.int()?.max(0) as u64;
    let serial = r.next()?.into_text();
    let outcome = match r.next()?.text()? {
        "installed" => Outcome::Installed,
        "refused" => Outcome::Refused,
        "reverted" => Outcome::Reverted,
        "recalled" => Outcome::Recalled,
        _ => return None,
    };
    Some(EcuEvent {
        seq,
        serial,
        outcome,
        code: r.next()?.into_text(),
        uid: r.next()?.into_text(),
        version: r.next()?.into_text(),
        update: r.next()?.into_text(),
        at: DateTime(r.next()?.int()?),
    })
}

/// Forget a vehicle's report history (its newest report and its events), as when it gets a
/// new key: reports signed with the new key start afresh, and nothing the old key signed
/// (a report dated ahead, events numbered ahead) outlives it. What its ECUs run, its flags and
/// recalls stay.
/// End `vin`'s report history: the vehicle left the fleet, or came back into it. Everything
/// recorded of it goes (what its ECUs ran, flags, recalls, events, rollout membership), and a
/// report generated before `not_before` is refused from now on ([`FleetError::BeforeHistory`]):
/// nothing a scrapped unit, or a key kept from before, signed counts for what comes back.
pub fn end_history(tx: &mut dyn Tx, vin: &str, not_before: i64) -> Result<()> {
    for table in [
        "ecus",
        "flags",
        "recalls",
        "events",
        "rollout_members",
        "vehicles",
    ] {
        tx.exec(
            &format!("DELETE FROM {table} WHERE vin = $1"),
            &[vin.into()],
        )?;
    }
    tx.exec(
        "INSERT INTO vehicles (vin, last_generated, last_counter, last_sha256, last_ingested)
         VALUES ($1, $2, 0, '', $2)",
        &[vin.into(), Value::Int(not_before)],
    )?;
    Ok(())
}

pub fn forget_vehicle(tx: &mut dyn Tx, vin: &str) -> Result<()> {
    tx.exec("DELETE FROM vehicles WHERE vin = $1", &[vin.into()])?;
    tx.exec("DELETE FROM events WHERE vin = $1", &[vin.into()])?;
    // The new key's gateway numbers its events afresh: all of them count for rollouts.
    tx.exec(
        "UPDATE rollout_members SET events_after = -1 WHERE vin = $1",
        &[vin.into()],
    )?;
    Ok(())
}
