//! `ota-repo oem rollout`: a release assigned stage by stage to a hardware id's fleet, advanced
//! or halted by what vehicles report ([`ota_fleet::rollout`] keeps the state and the policy).
//!
//! The ECUs of a stage are the next ones in a fixed pseudo-random order of the hardware id's
//! ECUs (SHA-256 of the rollout and the ECU), so each stage is a spread sample of the fleet,
//! not the oldest vehicles; ECUs that already run a higher release counter are left out (they
//! would refuse it). `advance` (from cron, then `oem publish`) assigns the next stage when the
//! members so far meet the success bar, and halts, withdrawing the assignments still pending,
//! when failures pass the limit.

use super::assign::{assign, Approval, Assign, AssignTarget};
use super::{reports, store, Assignments};
use crate::error::{Error, Result};
use ota_fleet::rollout::{self as policy, Decision, Member, Progress, Rollout, State};
use ota_metadata::documents::EcuAssignment;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub struct Start {
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub hardware_id: String,
    pub stages: Vec<u32>,
    pub success_bar: u32,
    pub failure_limit: u32,
    pub approval: Approval,
}

/// What a rollout looks like now.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub rollout: Rollout,
    pub progress: Progress,
}

/// What `start` or `advance` did to one rollout.
#[derive(Debug)]
pub enum Step {
    /// Stage `stage` (index) assigned to `assigned` more ECUs.
    Assigned {
        id: String,
        stage: usize,
        assigned: usize,
    },
    Halted {
        id: String,
        reason: String,
        withdrawn: usize,
    },
    Done {
        id: String,
    },
    Waiting {
        id: String,
        progress: Progress,
    },
    /// This rollout could not move on now (the next stage's assignment was refused: a
    /// regulator unreachable, the release vetoed); the others were still handled.
    Failed {
        id: String,
        error: String,
    },
}

/// The update set a rollout's assignments belong to.
pub fn set_of(r: &Rollout) -> String {
    format!("rollout {}", r.id)
}

/// Start a rollout and assign its first stage.
pub fn start(dir: &Path, s: Start, now: i64) -> Result<Step> {
    let id = Rollout::id_of(&s.supplier, &s.uid, &s.version, &s.hardware_id);
    let r = Rollout {
        id: id.clone(),
        supplier: s.supplier,
        uid: s.uid,
        version: s.version,
        hardware_id: s.hardware_id,
        stages: s.stages,
        stage: 0,
        success_bar: s.success_bar,
        failure_limit: s.failure_limit,
        state: State::Running,
        reason: String::new(),
        started: now,
        updated: now,
    };
    r.check()?;
    let mut db = reports::open(dir)?;
    db.transaction(|tx| policy::create(tx, &r))?;
    assign_stage(dir, &mut db, &r, 0, &s.approval)
}

/// Advance, halt or finish every running rollout, as its members' reports say.
pub fn advance(dir: &Path, approval: &Approval, now: i64) -> Result<Vec<Step>> {
    let mut db = reports::open(dir)?;
    let running: Vec<Rollout> = db
        .transaction(policy::all)?
        .into_iter()
        .filter(|r| r.state == State::Running)
        .collect();
    let mut steps = Vec::new();
    for r in running {
        let members = db.transaction(|tx| policy::members(tx, &r))?;
        let progress = policy::progress(&members);
        // A release a regulator vetoed since the rollout started: vehicles refuse it, so its
        // pending assignments only hold their updates up. Halted, whatever the progress.
        let veto = super::assign::vetoed(
            dir,
            &r.supplier,
            &r.uid,
            &r.version,
            &r.hardware_id,
            approval,
        )?;
        let decision = match veto {
            Some(why) => Decision::Halt(format!("a regulator vetoed the release: {why}")),
            None => policy::decide(&r, &progress),
        };
        let step = match decision {
            Decision::Wait => Step::Waiting {
                id: r.id.clone(),
                progress,
            },
            Decision::Done => {
                let why = format!("{} of {} ECUs run it", progress.succeeded, progress.members);
                db.transaction(|tx| policy::set(tx, &r.id, r.stage, State::Done, &why, now))?;
                Step::Done { id: r.id.clone() }
            }
            // One rollout's refusal (a regulator unreachable, a veto) must not keep the others
            // from being advanced or halted.
            Decision::Advance => match assign_stage(dir, &mut db, &r, r.stage + 1, approval) {
                Ok(step) => step,
                Err(e) => Step::Failed {
                    id: r.id.clone(),
                    error: e.to_string(),
                },
            },
            Decision::Halt(reason) => {
                let withdrawn = withdraw_pending(dir, &r, &members)?;
                db.transaction(|tx| policy::set(tx, &r.id, r.stage, State::Halted, &reason, now))?;
                Step::Halted {
                    id: r.id.clone(),
                    reason,
                    withdrawn,
                }
            }
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Halt a rollout by hand: its pending assignments are withdrawn.
pub fn halt(dir: &Path, id: &str, reason: &str, now: i64) -> Result<usize> {
    let mut db = reports::open(dir)?;
    let r = db.transaction(|tx| policy::get(tx, id))?.ok_or_else(|| {
        Error::refused(format!("no rollout {id} (`oem rollout status` lists them)"))
    })?;
    let members = db.transaction(|tx| policy::members(tx, &r))?;
    let withdrawn = withdraw_pending(dir, &r, &members)?;
    db.transaction(|tx| policy::set(tx, id, r.stage, State::Halted, reason, now))?;
    Ok(withdrawn)
}

/// Every rollout and its progress.
pub fn status(dir: &Path) -> Result<Vec<Status>> {
    let mut db = reports::open(dir)?;
    let all = db.transaction(policy::all)?;
    all.into_iter()
        .map(|rollout| {
            let members = db.transaction(|tx| policy::members(tx, &rollout))?;
            Ok(Status {
                progress: policy::progress(&members),
                rollout,
            })
        })
        .collect()
}

/// Assign stage `stage`: the next ECUs in the rollout's order up to the stage's share.
fn assign_stage(
    dir: &Path,
    db: &mut ota_fleet::Db,
    r: &Rollout,
    stage: usize,
    approval: &Approval,
) -> Result<Step> {
    let order = eligible(dir, db, r)?;
    let members: std::collections::BTreeSet<(String, String)> = db
        .transaction(|tx| policy::members(tx, r))?
        .into_iter()
        .map(|m| (m.vin, m.serial))
        .collect();
    let share = u64::from(r.stages[stage]);
    let target = (order.len() as u64 * share).div_ceil(100) as usize;
    let new: Vec<(String, String)> = order
        .into_iter()
        .filter(|e| !members.contains(e))
        .take(target.saturating_sub(members.len()))
        .collect();
    if !new.is_empty() {
        assign(
            dir,
            Assign {
                target: AssignTarget::Ecus(new.clone()),
                supplier: r.supplier.clone(),
                uid: r.uid.clone(),
                version: r.version.clone(),
                approval: approval.clone(),
                // Its own update set: a stage that fails never holds back the vehicles'
                // other updates.
                rules: super::assign::Rules {
                    set: Some(set_of(r)),
                    ..Default::default()
                },
            },
        )?;
    }
    let now = ota_fleet::now();
    db.transaction(|tx| {
        policy::add_members(tx, &r.id, stage, &new)?;
        policy::set(tx, &r.id, stage, State::Running, "", now)
    })?;
    Ok(Step::Assigned {
        id: r.id.clone(),
        stage,
        assigned: new.len(),
    })
}

/// The hardware id's updatable ECUs in the rollout's order, without those that reported a
/// higher release counter.
fn eligible(dir: &Path, db: &mut ota_fleet::Db, r: &Rollout) -> Result<Vec<(String, String)>> {
    let s = super::Settings::load(dir)?;
    let counter = s
        .reviews
        .iter()
        .find(|q| {
            q.image.supplier == r.supplier && q.image.uid == r.uid && q.image.version == r.version
        })
        .map(|q| q.release_counter)
        .ok_or_else(|| {
            Error::refused(format!(
                "{} {} of {} has not been submitted for review",
                r.uid, r.version, r.supplier
            ))
        })?;
    let ahead: std::collections::BTreeSet<(String, String)> =
        reports::running_above(db, &r.hardware_id, counter)?
            .into_iter()
            .map(|(v, s, _)| (v, s))
            .collect();
    let mut out: Vec<([u8; 32], String, String)> = Vec::new();
    let set = set_of(r);
    for shard in store::shard_files(dir, store::INVENTORY_DIR)? {
        let (inv, _) = store::read_shard::<super::Vehicle>(dir, store::INVENTORY_DIR, &shard)?;
        let (assigned, _) = store::read_shard::<BTreeMap<String, EcuAssignment>>(
            dir,
            store::ASSIGNMENTS_DIR,
            &shard,
        )?;
        for (vin, v) in inv {
            for (serial, e) in v.ecus {
                // An ECU holding another assignment (by hand, another rollout) is left to it:
                // a rollout never overwrites what it did not assign.
                let busy = assigned
                    .get(&vin)
                    .and_then(|a| a.get(&serial))
                    .is_some_and(|a| a.set.as_deref() != Some(set.as_str()));
                if e.hardware_id == r.hardware_id
                    && !e.aftermarket
                    && !busy
                    && !ahead.contains(&(vin.clone(), serial.clone()))
                {
                    let key: [u8; 32] = Sha256::digest(format!("{}\n{vin}\n{serial}", r.id)).into();
                    out.push((key, vin.clone(), serial));
                }
            }
        }
    }
    out.sort();
    Ok(out.into_iter().map(|(_, v, s)| (v, s)).collect())
}

/// Withdraw the rollout's assignments its members have not installed yet (still this
/// release); returns how many.
fn withdraw_pending(dir: &Path, r: &Rollout, members: &[Member]) -> Result<usize> {
    let pending: Vec<&Member> = members.iter().filter(|m| !m.succeeded).collect();
    if pending.is_empty() {
        return Ok(0);
    }
    let vins: Vec<&str> = pending.iter().map(|m| m.vin.as_str()).collect();
    let mut assignments = Assignments::load_for(dir, &vins)?;
    let mut withdrawn = 0;
    for m in pending {
        let Some(ecus) = assignments.vehicles.get_mut(&m.vin) else {
            continue;
        };
        let ours = ecus
            .get(&m.serial)
            .is_some_and(|a| a.supplier == r.supplier && a.uid == r.uid && a.version == r.version);
        if ours {
            ecus.remove(&m.serial);
            withdrawn += 1;
        }
    }
    assignments.save(dir)?;
    Ok(withdrawn)
}
