//! Finishing what a previous run left in flight (see [`crate::journal`]).
//!
//! The journal is read from the gateway's disk, so it is untrusted input: whatever it holds,
//! recovery ends in this run (never blocking the walk, the floors or the other ECUs), and it
//! acts only on what the current verified metadata says:
//! - an undecided update (`distributing`) is discarded: always safe, no ECU switched;
//! - a decided one (`commit`) runs after the walk read the master and after the trust
//!   documents (floors) went out to its ECUs. Each of its ECUs is checked again as if it were
//!   planned now: still in the configuration, still assigned exactly that release, and that
//!   release passing every check of the walk (supplier manifest, no regulator veto, enough
//!   approvals, the release-counter floor); the compact manifest and attestation bundle sent
//!   are the verified ones, never the journal's. An ECU that passes is activated; one that
//!   fails is told to discard its pending image and the reason is kept for `status`; one
//!   that cannot be reached stays in the journal for the next run, alone;
//! - a journal that cannot be read is discarded: every ECU drops what it holds pending.

use super::{sha256_bytes, state_err, trial_failed, EcuError, Gateway, Planned, Result};
use crate::fault;
use crate::forward::{ForwardError, Forwarder, Payload};
use crate::journal::{Journal, JournalEcu, Phase};
use crate::staging::Staging;
use crate::state::GatewayState;
use crate::tuf::{Fetch, Updater};
use crate::walk::{self, decide, Decision, Installed, Repositories};
use std::collections::BTreeMap;

/// What an activation came to.
pub(super) enum Activated {
    /// The ECU runs the new image (on trial until it confirms itself).
    Running,
    /// The ECU's bootloader returned from it (its trial boot failed): why, and what the ECU
    /// runs again.
    Reverted {
        reason: String,
        running: Box<Installed>,
    },
}

/// What recovery decided for one ECU of a committed update.
enum Recheck {
    /// Already recorded as running its new image.
    Done,
    /// Passed every check again: activate it with this (verified) entry.
    Activate(Box<JournalEcu>),
    /// Not to be activated: why.
    Drop(String),
    /// Its trust document could not be forwarded first: wait for the next run.
    Wait(EcuError),
}

impl Gateway {
    /// Ask every ECU of `journal` to drop its pending image. Best effort: an ECU that does
    /// not answer keeps a pending image it never activates on its own, and the next download
    /// replaces it.
    pub(super) fn discard_all(&self, fw: &mut dyn Forwarder, journal: &Journal) {
        for e in &journal.ecus {
            if let Some(ecu) = self.config.ecus.iter().find(|c| c.serial == e.serial) {
                let _ = fw.discard(ecu);
            }
            fault::point(|| format!("pending image of ECU {} discarded", e.serial));
        }
    }

    /// Carry out an update this run decided: activate every ECU of `journal`, record those
    /// that run their new image, and clear the journal once all do (else the next run's
    /// recovery finishes it). Returns each ECU's result.
    pub(super) fn roll_forward(
        &self,
        fw: &mut dyn Forwarder,
        journal: &Journal,
        state: &mut GatewayState,
        staging: &Staging,
    ) -> Result<Vec<std::result::Result<Activated, ForwardError>>> {
        let state_dir = &self.config.state_dir;
        let results = self.activate_all(fw, journal, state, staging)?;
        state.save(state_dir).map_err(state_err(state_dir))?;
        fault::point(|| "gateway state saved".into());
        if results.iter().all(|r| r.is_ok()) {
            Journal::clear(state_dir).map_err(state_err(&Journal::path(state_dir)))?;
            fault::point(|| "journal cleared".into());
            for e in &journal.ecus {
                staging.remove(&e.installed.sha256);
            }
        }
        Ok(results)
    }

    /// ACTIVATE every ECU of `journal` (idempotent) and record in `state` what each runs now
    /// (not saved): the new image, or, where the ECU's bootloader reverted it, the image it
    /// returned to, with a `reverted` event for the OEM. Returns each ECU's result.
    fn activate_all(
        &self,
        fw: &mut dyn Forwarder,
        journal: &Journal,
        state: &mut GatewayState,
        staging: &Staging,
    ) -> Result<Vec<std::result::Result<Activated, ForwardError>>> {
        let mut results = Vec::new();
        for e in &journal.ecus {
            let r = self.activate_one(fw, e, staging);
            fault::point(|| format!("activation of ECU {} sent", e.serial));
            results.push(r);
        }
        for (e, r) in journal.ecus.iter().zip(&results) {
            match r {
                Ok(Activated::Running) => {
                    state
                        .installed
                        .insert(e.serial.clone(), e.installed.clone());
                    state.recalls.remove(&e.serial);
                    state.recovery.remove(&e.serial);
                }
                Ok(Activated::Reverted { reason, running }) => {
                    // The record from before, if that is what runs again.
                    let back = state
                        .installed
                        .get(&e.serial)
                        .filter(|b| b.sha256 == running.sha256)
                        .cloned()
                        .unwrap_or_else(|| (**running).clone());
                    state.installed.insert(e.serial.clone(), back);
                    state.record_event(ota_metadata::documents::EcuEvent {
                        seq: 0,
                        serial: e.serial.clone(),
                        outcome: ota_metadata::documents::Outcome::Reverted,
                        code: reason.clone(),
                        uid: e.installed.uid.clone(),
                        version: e.installed.version.clone(),
                        update: String::new(),
                        at: self.now,
                    });
                }
                Err(_) => {}
            }
        }
        Ok(results)
    }

    /// ACTIVATE one ECU of a decided update, then ask it whether the image survived its trial
    /// boot ([`super::activation_outcome`]: only the ECU's own word that it runs the image,
    /// confirmed, records it as installed). An ECU that holds neither the image pending nor active has either reverted from
    /// it (an activation whose end this gateway did not see) or lost it after the commit
    /// (replaced, or its state restored): the first is reported as such, the second is sent
    /// the image again from staging first: the update is decided, it can only go forward.
    fn activate_one(
        &self,
        fw: &mut dyn Forwarder,
        e: &JournalEcu,
        staging: &Staging,
    ) -> std::result::Result<Activated, ForwardError> {
        let bad = |reason: String| ForwardError::Ecu {
            serial: e.serial.clone(),
            reason,
        };
        let ecu = self
            .config
            .ecus
            .iter()
            .find(|c| c.serial == e.serial)
            .ok_or_else(|| bad("not in the gateway's configuration any more".into()))?;
        let sha = sha256_bytes(&e.installed.sha256)
            .ok_or_else(|| bad("the journal's image hash is not a SHA-256".into()))?;
        let reverted = |fw: &mut dyn Forwarder| {
            trial_failed(fw, ecu, &e.installed.sha256).map(|(reason, running)| {
                Activated::Reverted {
                    reason,
                    running: Box::new(running),
                }
            })
        };
        match fw.activate(ecu, &sha) {
            Err(ForwardError::NothingPending { .. }) => {
                if let Some(r) = reverted(fw) {
                    return Ok(r);
                }
                // The image if it is staged, else the delta phase one staged for it.
                let staged = |sha: &str, length| staging.staged(sha, length).ok().flatten();
                let image = staged(&e.installed.sha256, e.length);
                let delta = e.delta.as_ref().and_then(|d| staged(&d.sha256, d.length));
                let payload = match (&image, &delta) {
                    (Some(path), _) => Payload::Image(path),
                    (None, Some(path)) => Payload::Delta(path),
                    (None, None) => {
                        return Err(bad(
                            "holds nothing to activate, and the staged image is gone".into(),
                        ))
                    }
                };
                let manifest = hex::decode(&e.compact_manifest)
                    .map_err(|_| bad("the journal's compact manifest is not hex".into()))?;
                let bundle = hex::decode(&e.attestation_bundle)
                    .map_err(|_| bad("the journal's attestation bundle is not hex".into()))?;
                let instruction = hex::decode(&e.instruction)
                    .map_err(|_| bad("the journal's instruction is not hex".into()))?;
                if !instruction.is_empty() {
                    fw.send_instruction(ecu, &instruction)?;
                }
                if fw
                    .stage_payload(ecu, &manifest, &bundle, payload)?
                    .is_none()
                {
                    return Err(bad(
                        "holds nothing to activate, and only a delta it cannot take is staged"
                            .into(),
                    ));
                }
                fault::point(|| format!("ECU {} holds its image verified and pending", e.serial));
                fw.activate(ecu, &sha)?;
            }
            r => r?,
        }
        super::activation_outcome(fw, ecu, &e.installed.sha256)
    }

    /// Finish what a previous run left in flight (module documentation). Returns the ECUs of
    /// a committed update that are still waiting (unreachable, or their floor could not be
    /// forwarded first), with why: the walk leaves them alone in this run.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recover<F: Fetch, G: Fetch>(
        &self,
        master: &Updater<G>,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        floors_failed: &BTreeMap<String, EcuError>,
    ) -> Result<BTreeMap<String, EcuError>> {
        let state_dir = &self.config.state_dir;
        let journal_path = Journal::path(state_dir);
        let journal = match Journal::load(state_dir) {
            Ok(None) => return Ok(BTreeMap::new()),
            Ok(Some(j)) => j,
            Err(e) => {
                self.discard_unreadable(fw, state, &e)?;
                return Ok(BTreeMap::new());
            }
        };
        let serials: Vec<&str> = journal.ecus.iter().map(|e| e.serial.as_str()).collect();
        if journal.phase == Phase::Distributing {
            crate::out::err_line(format_args!(
                "ota-gateway: an update was cut off before every ECU held its image ({}): discarding what they hold pending; no ECU switched",
                serials.join(", ")
            ));
            self.discard_all(fw, &journal);
            Journal::clear(state_dir).map_err(state_err(&journal_path))?;
            fault::point(|| "journal cleared".into());
            return Ok(BTreeMap::new());
        }
        crate::out::err_line(format_args!(
            "ota-gateway: an update was committed and cut off: checking every ECU of it again ({}), then activating",
            serials.join(", ")
        ));
        let mut activate = Vec::new();
        let mut waiting: BTreeMap<String, EcuError> = BTreeMap::new();
        let mut kept = Vec::new();
        for e in &journal.ecus {
            match self.recheck(master, repos, m, state, e, floors_failed) {
                Recheck::Done => {}
                Recheck::Activate(v) => activate.push(*v),
                Recheck::Wait(why) => {
                    kept.push(e.clone());
                    waiting.insert(e.serial.clone(), why);
                }
                Recheck::Drop(reason) => self.drop_one(fw, state, &e.serial, reason),
            }
        }
        let staging = self.staging();
        let verified = Journal {
            phase: Phase::Commit,
            ecus: activate,
        };
        let results = self.activate_all(fw, &verified, state, &staging)?;
        for (e, r) in verified.ecus.iter().zip(results) {
            if let Some(why) = self.after_activation(fw, state, e, r) {
                kept.push(e.clone());
                waiting.insert(e.serial.clone(), why);
            }
        }
        state.save(state_dir).map_err(state_err(state_dir))?;
        fault::point(|| "gateway state saved".into());
        self.close_journal(&journal, kept, &staging)?;
        Ok(waiting)
    }

    /// What one re-checked ECU's activation leaves to do. Running: nothing. Reverted (its
    /// bootloader returned to the previous image): reported, nothing more. Refused (the ECU
    /// answered with a negative response): it will not take this image; its part is dropped.
    /// Unreachable: `Some(why)`, it stays in the journal and the next run tries again.
    fn after_activation(
        &self,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        e: &JournalEcu,
        r: std::result::Result<Activated, ForwardError>,
    ) -> Option<EcuError> {
        match r {
            Ok(Activated::Running) => {}
            Ok(Activated::Reverted { reason, .. }) => crate::out::err_line(format_args!(
                "ota-gateway: ECU {}: REVERTED {} {}: activated, then {reason}; the ECU's bootloader returned to its previous image",
                e.serial, e.installed.uid, e.installed.version
            )),
            // The ECU answered and refused: it will not take this image; drop it.
            Err(err) if err.nrc().is_some() => self.drop_one(
                fw,
                state,
                &e.serial,
                format!("the ECU refused to activate it: {err}"),
            ),
            // Unreachable: the next run tries again.
            Err(err) => return Some(EcuError::Activation(err)),
        }
        None
    }

    /// The journal once recovery is through (the state already saved): with no ECU `kept`
    /// waiting, it is cleared and the update's staged images removed; else it is rewritten
    /// (still committed) with just the ECUs still waiting.
    fn close_journal(
        &self,
        journal: &Journal,
        kept: Vec<JournalEcu>,
        staging: &Staging,
    ) -> Result<()> {
        let state_dir = &self.config.state_dir;
        let journal_path = Journal::path(state_dir);
        if kept.is_empty() {
            Journal::clear(state_dir).map_err(state_err(&journal_path))?;
            fault::point(|| "journal cleared".into());
            for e in &journal.ecus {
                staging.remove(&e.installed.sha256);
            }
        } else {
            let rest = Journal {
                phase: Phase::Commit,
                ecus: kept,
            };
            rest.save(state_dir).map_err(state_err(&journal_path))?;
        }
        Ok(())
    }

    /// One ECU of a committed update, checked again against the current verified metadata.
    fn recheck<F: Fetch, G: Fetch>(
        &self,
        master: &Updater<G>,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        state: &GatewayState,
        e: &JournalEcu,
        floors_failed: &BTreeMap<String, EcuError>,
    ) -> Recheck {
        let Some(ecu_cfg) = self.config.ecus.iter().find(|c| c.serial == e.serial) else {
            return Recheck::Drop(
                "the ECU is no longer in the gateway's configuration (replaced or removed)".into(),
            );
        };
        if state.installed.get(&e.serial) == Some(&e.installed) {
            return Recheck::Done;
        }
        if let Some(why) = floors_failed.get(&e.serial) {
            return Recheck::Wait(EcuError::Walk(walk::WalkError {
                check: walk::Check::OemMetadata,
                repository: self.config.master_url.clone(),
                reason: format!("its trust document must reach it before the activation: {why}"),
            }));
        }
        let ecu = ecu_cfg.ecu();
        let a = match decide(m, &ecu, Some(&e.installed)) {
            Decision::UpToDate(a) => a,
            _ => {
                return Recheck::Drop(format!(
                    "the OEM no longer assigns it {} {}",
                    e.installed.uid, e.installed.version
                ))
            }
        };
        let installed = state.installed.get(&e.serial);
        let c = match self.check_one(master, repos, m, ecu_cfg, &a, installed, &self.staging()) {
            Ok(c) => c,
            Err(err) => return Recheck::Drop(format!("it fails its checks now: {err}")),
        };
        let compact = hex::encode(&c.image.info.compact_bytes);
        if c.sha256 != e.installed.sha256 || compact != e.compact_manifest {
            return Recheck::Drop(
                "the journal does not name the release the metadata verifies".into(),
            );
        }
        let p = Planned::new(0, ecu_cfg, a, c);
        Recheck::Activate(Box::new(p.journal_entry()))
    }

    /// Drop `serial`'s part of a committed update: it discards its pending image (best
    /// effort), and `status` says why.
    fn drop_one(
        &self,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        serial: &str,
        reason: String,
    ) {
        crate::out::err_line(format_args!(
            "ota-gateway: ECU {serial}: its part of the committed update is dropped: {reason}"
        ));
        if let Some(ecu) = self.config.ecus.iter().find(|c| c.serial == serial) {
            let _ = fw.discard(ecu);
        }
        fault::point(|| format!("pending image of ECU {serial} discarded"));
        state.recovery.insert(serial.to_string(), reason);
    }

    /// A journal that cannot be read: nothing in it can be acted on. Every ECU drops what it
    /// holds pending; the journal is removed; `status` says so.
    fn discard_unreadable(
        &self,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        e: &std::io::Error,
    ) -> Result<()> {
        let state_dir = &self.config.state_dir;
        let journal_path = Journal::path(state_dir);
        let reason = format!("the update journal could not be read ({e}): discarded");
        crate::out::err_line(format_args!("ota-gateway: {reason}"));
        for ecu in &self.config.ecus {
            let _ = fw.discard(ecu);
            fault::point(|| format!("pending image of ECU {} discarded", ecu.serial));
            state.recovery.insert(ecu.serial.clone(), reason.clone());
        }
        Journal::clear(state_dir).map_err(state_err(&journal_path))?;
        fault::point(|| "journal cleared".into());
        Ok(())
    }
}
