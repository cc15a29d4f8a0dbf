//! The gateway's commands over the walk: `init` (install the factory root), `check` (what
//! would change, every check but the image bytes), `update` (the full walk, then the two
//! phases below) and `status`.
//!
//! An update is all or nothing across the vehicle's ECUs (the paper's gateway verifies and
//! stores everything first, then distributes):
//!
//! 1. **verify and download**: every ECU whose assignment differs from what it runs goes
//!    through every check of the walk, then every image is downloaded into the staging area
//!    ([`crate::staging`]: within a disk budget, resumable). If any ECU of the update fails a
//!    check, no ECU is touched.
//! 2. **distribute, then decide**: each image goes into its ECU's inactive slot, where the
//!    ECU verifies it again and keeps it pending. Only when every ECU of the update holds its
//!    image does the gateway write the decision (`commit`, in the [`crate::journal`]) and
//!    activate them all; if any ECU refuses, every ECU discards its pending image and none
//!    switches. The installed state and version reports change only after activation.
//!
//! A gateway cut off at any point finishes the job at its next run, from the journal: a
//! decided update is rolled forward (activation is idempotent), an undecided one is discarded
//! and starts over. So after the next run every ECU of the update runs its old image or every
//! ECU runs its new one (`client/tests/two_phase.rs` kills the gateway at every step).

use crate::config::{Config, EcuConfig};
use crate::decrypt;
use crate::fault;
use crate::forward::{ForwardError, Forwarder};
use crate::journal::{Journal, JournalEcu, Phase};
use crate::progress::ProgressFetcher;
use crate::staging::{Staging, StagingError};
use crate::state::GatewayState;
use crate::tuf::{
    self, init_trusted_root, targets_url, AnyFetcher, CaRoots, HttpFetcher, MetadataStore, Updater,
};
use crate::walk::{
    self, check_image, check_recall, decide, download_image, CheckedImage, Decision, Installed,
    Recall, Repositories,
};
use ota_metadata::documents::EcuAssignment;
use ota_metadata::DateTime;
use std::collections::BTreeMap;
use std::path::PathBuf;

mod carry;
pub use carry::Carried;
mod recover;
mod sets;
mod trust;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tuf(#[from] tuf::Error),
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Phase one cannot start: the update does not fit the disk budget (nothing downloaded).
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("{0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, GatewayError>;

/// Why one ECU's update failed.
#[derive(Debug, thiserror::Error)]
pub enum EcuError {
    /// A check of the walk (which one: [`walk::Check`]).
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
    /// Handing the image to the ECU failed, or the ECU refused it: no ECU of the update
    /// switched.
    #[error("{0}; no ECU of the update switched (all or nothing)")]
    Forward(#[from] ForwardError),
    /// The update was committed, but activating this ECU failed: the next run activates it
    /// again (the journal says so).
    #[error("update committed, activation failed (the next run activates it again): {0}")]
    Activation(ForwardError),
    /// Staging the image failed.
    #[error(transparent)]
    Staging(#[from] StagingError),
    /// The image's requirement or conflict with the vehicle's other images
    /// (`EcuAssignment::requires`, `conflicts`): nothing of its set is installed.
    #[error("dependency: {0}")]
    Dependency(String),
    /// The gateway's own state could not be saved.
    #[error("gateway state: {0}")]
    State(#[from] std::io::Error),
}

impl EcuError {
    /// The walk check that failed, if it was one.
    pub fn check(&self) -> Option<walk::Check> {
        match self {
            EcuError::Walk(e) => Some(e.check),
            _ => None,
        }
    }
}

/// What happened (or would happen) to one ECU.
#[derive(Debug)]
pub enum EcuOutcome {
    Unassigned,
    UpToDate {
        uid: String,
        version: String,
    },
    /// The installed release was revoked by a regulator after it was installed, and no other
    /// image is assigned (or the assigned one is the same release).
    Recalled {
        uid: String,
        version: String,
        recall: Recall,
    },
    WouldUpdate {
        uid: String,
        version: String,
        regulators: Vec<String>,
        /// The image the ECU runs now was vetoed since it was installed (the update replaces
        /// it, but until then it is a recall).
        recall: Option<Recall>,
    },
    Updated {
        uid: String,
        version: String,
        regulators: Vec<String>,
        /// How the image went to the ECU (`None`: sent by an earlier run, activated now).
        carried: Option<Carried>,
    },
    /// Activated, then reverted by the ECU's bootloader: the image failed its trial boot
    /// (`reason`), and the ECU runs its previous image again.
    Reverted {
        uid: String,
        version: String,
        reason: String,
    },
    /// This ECU's image passed every check, but another ECU of the update (`because`) failed,
    /// so no ECU switched: it keeps running its image (and holds nothing pending).
    HeldBack {
        uid: String,
        version: String,
        because: Vec<String>,
        /// The image the ECU keeps running was vetoed since it was installed.
        recall: Option<Recall>,
    },
    Failed(EcuError),
    /// The update failed, and the image the ECU runs was vetoed since it was installed: both
    /// are reported, so a failing update never hides a recall.
    FailedRecalled {
        error: EcuError,
        uid: String,
        version: String,
        recall: Recall,
    },
}

impl EcuOutcome {
    /// The error of a failed ECU, recalled or not.
    pub fn error(&self) -> Option<&EcuError> {
        match self {
            EcuOutcome::Failed(e) | EcuOutcome::FailedRecalled { error: e, .. } => Some(e),
            _ => None,
        }
    }

    /// The recall of the image the ECU runs, if this outcome reports one.
    pub fn recall(&self) -> Option<&Recall> {
        match self {
            EcuOutcome::Recalled { recall, .. } | EcuOutcome::FailedRecalled { recall, .. } => {
                Some(recall)
            }
            EcuOutcome::HeldBack { recall, .. } | EcuOutcome::WouldUpdate { recall, .. } => {
                recall.as_ref()
            }
            _ => None,
        }
    }
}

pub struct Gateway {
    pub config: Config,
    fetcher: ProgressFetcher<AnyFetcher>,
    now: DateTime,
}

fn state_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> GatewayError + '_ {
    move |source| GatewayError::State {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Gateway::check_one`] found for one ECU.
struct Checked {
    image: CheckedImage,
    regulators: Vec<String>,
    sha256: String,
    length: u64,
    bundle: Vec<u8>,
    content_key: Option<ota_crypt::Key>,
}

/// An ECU whose checks passed, as its place in the update (`index`: its place in the
/// outcomes) with the delta its image's manifest lists from the image it runs, and the outcome
/// reported until the update is carried out: it would update.
fn plan<'c>(
    index: usize,
    ecu: &'c EcuConfig,
    a: EcuAssignment,
    c: Checked,
    installed: Option<&Installed>,
) -> (EcuOutcome, Planned<'c>) {
    let outcome = EcuOutcome::WouldUpdate {
        uid: a.uid.clone(),
        version: a.version.clone(),
        regulators: c.regulators.clone(),
        recall: None,
    };
    let mut p = Planned::new(index, ecu, a, c);
    p.delta = carry::delta_for(&p, installed.map(|i| i.sha256.as_str()));
    (outcome, p)
}

/// An ECU with nothing to install (up to date or unassigned): is what it runs still approved?
/// A veto on its installed release makes it recalled; a failure to ask fails it.
fn nothing_to_install<F: crate::tuf::Fetch>(
    repos: &mut Repositories<'_, F>,
    m: &walk::Master,
    decision: Decision,
    installed: Option<&Installed>,
) -> EcuOutcome {
    let recall = match installed {
        Some(i) => check_recall(repos, m, i),
        None => Ok(None),
    };
    match (decision, recall) {
        (_, Err(e)) => EcuOutcome::Failed(e.into()),
        (_, Ok(Some(recall))) => {
            let i = installed.cloned().unwrap_or_default();
            EcuOutcome::Recalled {
                uid: i.uid,
                version: i.version,
                recall,
            }
        }
        (Decision::UpToDate(a), Ok(None)) => EcuOutcome::UpToDate {
            uid: a.uid,
            version: a.version,
        },
        (_, Ok(None)) => EcuOutcome::Unassigned,
    }
}

/// The recalls the state remembers, as this run found them: an updated ECU's recovery and
/// recall are over, an up-to-date one runs an approved image, any other keeps the recall found
/// for it; where none was asked (failed or held back before), what the last check found.
fn remember_recalls(state: &mut GatewayState, out: &[(String, EcuOutcome)]) {
    for (serial, outcome) in out {
        match outcome {
            EcuOutcome::Updated { .. } => {
                state.recalls.remove(serial);
                state.recovery.remove(serial);
            }
            EcuOutcome::UpToDate { .. } => {
                state.recalls.remove(serial);
            }
            o => {
                if let Some(recall) = o.recall() {
                    state.recalls.insert(serial.clone(), recall.clone());
                }
                // Otherwise unknown (failed or held back before the recall was asked):
                // keep what the last check found.
            }
        }
    }
}

/// The ECUs of the update not among `because` are held back by them: the update is all or
/// nothing.
fn hold_back(planned: &[Planned<'_>], out: &mut [(String, EcuOutcome)], because: &[String]) {
    for p in planned {
        if !because.contains(&p.ecu.serial) {
            out[p.index].1 = EcuOutcome::HeldBack {
                uid: p.a.uid.clone(),
                version: p.a.version.clone(),
                because: because.to_vec(),
                recall: None,
            };
        }
    }
}

/// An ECU's outcome once the update rolled forward: it runs the new image, or its bootloader
/// returned from it (reverted), or its activation failed.
fn activated(
    p: &Planned<'_>,
    r: std::result::Result<recover::Activated, ForwardError>,
    c: Carried,
) -> EcuOutcome {
    match r {
        Ok(recover::Activated::Running) => EcuOutcome::Updated {
            uid: p.a.uid.clone(),
            version: p.a.version.clone(),
            regulators: p.regulators.clone(),
            carried: Some(c),
        },
        Ok(recover::Activated::Reverted { reason, .. }) => EcuOutcome::Reverted {
            uid: p.a.uid.clone(),
            version: p.a.version.clone(),
            reason,
        },
        Err(e) => EcuOutcome::Failed(EcuError::Activation(e)),
    }
}

/// One ECU of the update, its checks passed.
struct Planned<'c> {
    /// Its place in the outcomes.
    index: usize,
    ecu: &'c EcuConfig,
    a: EcuAssignment,
    image: CheckedImage,
    regulators: Vec<String>,
    /// SHA-256 of the image (hex), by which it is staged and activated: the plaintext's.
    sha256: String,
    /// Its length (the plaintext's).
    length: u64,
    /// The content key of an encrypted image.
    content_key: Option<ota_crypt::Key>,
    /// The regulators' compact attestation bundle (empty: none), for full-verification ECUs.
    bundle: Vec<u8>,
    /// The delta the image's manifest lists from the image the ECU runs, if any.
    delta: Option<ota_metadata::documents::image_manifest::DeltaEntry>,
}

impl<'c> Planned<'c> {
    /// ECU `ecu` at place `index`, assigned `a`, whose checks `c` passed; no delta yet.
    fn new(index: usize, ecu: &'c EcuConfig, a: EcuAssignment, c: Checked) -> Self {
        Planned {
            index,
            ecu,
            a,
            image: c.image,
            regulators: c.regulators,
            sha256: c.sha256,
            length: c.length,
            content_key: c.content_key,
            bundle: c.bundle,
            delta: None,
        }
    }

    /// What the journal keeps of this ECU's part of the update.
    fn journal_entry(&self) -> JournalEcu {
        JournalEcu {
            serial: self.ecu.serial.clone(),
            installed: self.installed(),
            length: self.length,
            compact_manifest: hex::encode(&self.image.info.compact_bytes),
            attestation_bundle: hex::encode(&self.bundle),
            instruction: hex::encode(self.instruction()),
            delta: self.delta.as_ref().and_then(|d| {
                Some(crate::journal::StagedDelta {
                    sha256: d.hashes.get("sha256")?.clone(),
                    length: d.length,
                })
            }),
        }
    }

    /// The OEM's instruction to this ECU as the ECU receives it: the signed body rebuilt
    /// from its serial and the compact manifest it is sent with, and the assignment's
    /// signature (empty: the assignment carries none, which an ECU requiring instructions
    /// refuses by name).
    fn instruction(&self) -> Vec<u8> {
        let Some(i) = &self.a.instruction else {
            return Vec::new();
        };
        let Ok(m) =
            ota_ecu::compact_manifest::CompactManifest::parse(&self.image.info.compact_bytes)
        else {
            return Vec::new();
        };
        i.assemble(&self.ecu.serial, &m.body_bytes, m.body.release_counter)
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }

    fn installed(&self) -> Installed {
        Installed {
            uid: self.a.uid.clone(),
            version: self.a.version.clone(),
            release_counter: self.a.release_counter,
            sha256: self.sha256.clone(),
            release: Some(self.image.release.clone()),
            target_sha256: self
                .content_key
                .as_ref()
                .and_then(|_| self.image.info.target.hashes.get("sha256").cloned()),
        }
    }
}

fn sha256_bytes(hex_digest: &str) -> Option<[u8; 32]> {
    hex::decode(hex_digest).ok()?.try_into().ok()
}

impl Gateway {
    pub fn new(config: Config, now: DateTime) -> Result<Self> {
        let roots = match (&config.ca_bundle, config.system_roots) {
            (Some(p), _) => CaRoots::from_pem_file(p).map_err(tuf::Error::from)?,
            (None, true) => CaRoots::WebPki,
            (None, false) => CaRoots::None,
        };
        let fetcher =
            AnyFetcher::new(HttpFetcher::new(&config.limits(), roots).map_err(tuf::Error::from)?);
        Ok(Gateway {
            config,
            fetcher: ProgressFetcher::new(fetcher),
            now,
        })
    }

    fn master_dir(&self) -> PathBuf {
        self.config.state_dir.join("repos").join("oem")
    }

    fn staging(&self) -> Staging {
        Staging::new(&self.config.state_dir, self.config.staging_budget())
    }

    /// Install the factory OEM root as the master repository's trusted root.
    pub fn init(&self, force: bool) -> Result<()> {
        let dir = self.master_dir();
        let store = MetadataStore::new(&dir);
        let limits = self.config.limits();
        if !force
            && store
                .read("root", limits.metadata.root)
                .map_err(state_err(&dir))?
                .is_some()
        {
            return Err(GatewayError::Refused(format!(
                "{} already holds a trusted root; the gateway keeps it (pass --force to start over from the factory root)",
                dir.display()
            )));
        }
        let bytes =
            std::fs::read(&self.config.master_root).map_err(state_err(&self.config.master_root))?;
        if force {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).map_err(state_err(&dir))?;
        init_trusted_root(&dir, &bytes, &limits)?;
        let state = GatewayState::load(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
        state
            .save(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
        Ok(())
    }

    /// Walk every repository. With a forwarder, first finish an update a previous run left in
    /// flight, then verify and download, distribute, and activate all or nothing (see the
    /// module documentation); without, only report what would change.
    pub fn run(
        &self,
        mut forward: Option<&mut dyn Forwarder>,
    ) -> Result<Vec<(String, EcuOutcome)>> {
        let limits = self.config.limits();
        let state_dir = &self.config.state_dir;
        let mut state = GatewayState::load(state_dir).map_err(state_err(state_dir))?;
        let (mut master, m) = self.read_master(&limits)?;
        let mut repos =
            Repositories::new(&self.fetcher, limits, self.now, &state_dir.join("repos"));
        let staging = self.staging();
        // With a forwarder, before anything else reaches an ECU: the floors (trust documents)
        // go out, then what a previous run left in flight is finished or discarded, checked
        // again against the metadata just verified. ECUs still waiting are left alone.
        let mut held: BTreeMap<String, EcuError> = BTreeMap::new();
        if let Some(fw) = forward.as_deref_mut() {
            held = self.floors_then_in_flight(&mut master, &mut repos, &m, fw, &mut state)?;
        }
        let mut out = Vec::new();
        let mut planned = Vec::new();
        // ECUs of the update whose checks failed: they hold the whole update back.
        let mut failed = Vec::new();
        for ecu_cfg in &self.config.ecus {
            let ecu = ecu_cfg.ecu();
            let installed = state.installed.get(&ecu.serial).cloned();
            if let Some(e) = held.remove(&ecu.serial) {
                // An ECU of the update that cannot take its floor first holds the update back.
                if matches!(decide(&m, &ecu, installed.as_ref()), Decision::Update(_)) {
                    failed.push(ecu.serial.clone());
                }
                out.push((ecu.serial.clone(), EcuOutcome::Failed(e)));
                continue;
            }
            let outcome = match decide(&m, &ecu, installed.as_ref()) {
                Decision::Update(a) => {
                    match self.check_one(
                        &master,
                        &mut repos,
                        &m,
                        ecu_cfg,
                        &a,
                        installed.as_ref(),
                        &staging,
                    ) {
                        Ok(c) => {
                            let (outcome, p) = plan(out.len(), ecu_cfg, a, c, installed.as_ref());
                            planned.push(p);
                            outcome
                        }
                        Err(e) => {
                            failed.push(ecu.serial.clone());
                            EcuOutcome::Failed(e)
                        }
                    }
                }
                decision => nothing_to_install(&mut repos, &m, decision, installed.as_ref()),
            };
            out.push((ecu.serial.clone(), outcome));
        }
        if let Some(fw) = forward.as_deref_mut() {
            if !planned.is_empty() {
                self.install_sets(&mut repos, &m, planned, failed, fw, &mut state, &mut out)?;
            }
        }
        self.recalls_behind_failures(&mut repos, &m, &state, &mut out);
        self.record_events(&m, &mut state, &out, forward.is_some());
        self.save_state(state, &out, forward.is_some())?;
        Ok(out)
    }

    /// Step 1 of the walk: the master (OEM) repository's metadata, verified from its trusted
    /// root, and what it assigns this vehicle (read with the vehicle's secret).
    fn read_master(
        &self,
        limits: &tuf::Limits,
    ) -> Result<(Updater<&ProgressFetcher<AnyFetcher>>, walk::Master)> {
        let url = &self.config.master_url;
        let mut master = Updater::new(
            self.master_dir(),
            url,
            &targets_url(url),
            &self.fetcher,
            limits.clone(),
            self.now,
        )?;
        let store = MetadataStore::new(self.master_dir());
        let secret = self.config.vehicle_secret()?;
        let vehicle = walk::Vehicle {
            vin: &self.config.vin,
            secret: &secret,
        };
        let m = walk::read_master(&mut master, url, &vehicle, &store)?;
        Ok((master, m))
    }

    /// The run's end, kept for the next: the recalls found, when the gateway last checked and
    /// (an update, `updating`) last updated with what each ECU's outcome was.
    fn save_state(
        &self,
        mut state: GatewayState,
        out: &[(String, EcuOutcome)],
        updating: bool,
    ) -> Result<()> {
        let state_dir = &self.config.state_dir;
        remember_recalls(&mut state, out);
        state.last_check = Some(self.now);
        if updating {
            state.last_update = Some(self.now);
            state.last_results = out.iter().map(|(s, o)| (s.clone(), summary(o))).collect();
        }
        state.save(state_dir).map_err(state_err(state_dir))
    }

    /// Before anything else reaches an ECU: the floors (trust documents) go out, then what a
    /// previous run left in flight is finished or discarded ([`Gateway::recover`]). Returns the
    /// ECUs to hold this run, with why: those recovery held, then those that could not take
    /// their floor (where both hold one, recovery's reason is kept).
    fn floors_then_in_flight<F: crate::tuf::Fetch, G: crate::tuf::Fetch>(
        &self,
        master: &mut Updater<G>,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
    ) -> Result<BTreeMap<String, EcuError>> {
        let floors_failed = self.forward_floors(master, fw, state);
        let mut held = self.recover(master, repos, m, fw, state, &floors_failed)?;
        for (serial, e) in floors_failed {
            held.entry(serial).or_insert(e);
        }
        Ok(held)
    }

    /// What happened in this update, as events for the version report: an ECU that installed,
    /// one whose update was refused (by the ECU or by a check for it), one found running a
    /// recalled image (once, when the recall is new).
    fn record_events(
        &self,
        m: &walk::Master,
        state: &mut GatewayState,
        out: &[(String, EcuOutcome)],
        updating: bool,
    ) {
        use ota_metadata::documents::{EcuEvent, Outcome};
        let update = m
            .assignments
            .as_ref()
            .map(|a| format!("assignments v{}", a.version))
            .unwrap_or_default();
        let assigned = |serial: &str| {
            m.assignments
                .as_ref()
                .and_then(|a| a.ecus.get(serial))
                .map(|a| (a.uid.clone(), a.version.clone()))
                .unwrap_or_default()
        };
        for (serial, o) in out {
            let event = |outcome, code: String, (uid, version): (String, String)| EcuEvent {
                seq: 0,
                serial: serial.clone(),
                outcome,
                code,
                uid,
                version,
                update: update.clone(),
                at: self.now,
            };
            match o {
                // A check installs nothing, and its failures refuse nothing.
                _ if !updating => {}
                EcuOutcome::Updated { uid, version, .. } => state.record_event(event(
                    Outcome::Installed,
                    String::new(),
                    (uid.clone(), version.clone()),
                )),
                // Recorded where the activation was (`recover::activate_all`), on every path.
                EcuOutcome::Failed(e) | EcuOutcome::FailedRecalled { error: e, .. } => {
                    let mut code = e.to_string();
                    let mut end = code.len().min(240);
                    while !code.is_char_boundary(end) {
                        end -= 1;
                    }
                    code.truncate(end);
                    state.record_event(event(Outcome::Refused, code, assigned(serial)));
                }
                _ => {}
            }
            if let Some(recall) = o.recall() {
                if !state.recalls.contains_key(serial) {
                    let running = state
                        .installed
                        .get(serial)
                        .map(|i| (i.uid.clone(), i.version.clone()))
                        .unwrap_or_default();
                    let mut e = event(Outcome::Recalled, recall.reason.clone(), running);
                    e.update = String::new();
                    state.record_event(e);
                }
            }
        }
    }

    /// An update that fails, is held back or is still to come must not hide that the image an
    /// ECU runs was vetoed since: for each such ECU, ask the regulators about its installed
    /// release and report both.
    fn recalls_behind_failures<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        state: &GatewayState,
        out: &mut [(String, EcuOutcome)],
    ) {
        for (serial, outcome) in out.iter_mut() {
            if !matches!(
                outcome,
                EcuOutcome::Failed(_)
                    | EcuOutcome::HeldBack { .. }
                    | EcuOutcome::WouldUpdate { .. }
            ) {
                continue;
            }
            let Some(installed) = state.installed.get(serial.as_str()) else {
                continue;
            };
            let Ok(Some(found)) = check_recall(repos, m, installed) else {
                continue;
            };
            match std::mem::replace(outcome, EcuOutcome::Unassigned) {
                EcuOutcome::Failed(error) => {
                    *outcome = EcuOutcome::FailedRecalled {
                        error,
                        uid: installed.uid.clone(),
                        version: installed.version.clone(),
                        recall: found,
                    };
                }
                EcuOutcome::HeldBack {
                    uid,
                    version,
                    because,
                    ..
                } => {
                    *outcome = EcuOutcome::HeldBack {
                        uid,
                        version,
                        because,
                        recall: Some(found),
                    };
                }
                EcuOutcome::WouldUpdate {
                    uid,
                    version,
                    regulators,
                    ..
                } => {
                    *outcome = EcuOutcome::WouldUpdate {
                        uid,
                        version,
                        regulators,
                        recall: Some(found),
                    };
                }
                other => *outcome = other,
            }
        }
    }

    /// Steps 2-3 of the walk for one ECU whose assignment differs from what it runs: the
    /// supplier's manifest, then the regulators' word on that release, then (an encrypted
    /// image) its content key from the OEM's wraps: an excluded vehicle stops here, before
    /// anything large is downloaded.
    #[allow(clippy::too_many_arguments)]
    fn check_one<F: crate::tuf::Fetch, G: crate::tuf::Fetch>(
        &self,
        master: &Updater<G>,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        ecu_cfg: &EcuConfig,
        a: &EcuAssignment,
        installed: Option<&Installed>,
        staging: &Staging,
    ) -> std::result::Result<Checked, EcuError> {
        let ecu = ecu_cfg.ecu();
        let image = check_image(repos, m, &ecu, a, installed, &staging.incoming())?;
        let (regulators, bundle) = walk::check_attestations_bundle(repos, m, &image.release)?;
        let manifest = &image.info.manifest;
        let bad_manifest = |reason: String| walk::WalkError {
            check: walk::Check::ImageManifest,
            repository: image.url.clone(),
            reason,
        };
        let (length, sha) = manifest
            .plaintext()
            .map_err(|e| bad_manifest(e.to_string()))?;
        let content_key = match manifest.encryption {
            None => None,
            Some(_) => Some(self.content_key(master, m, a, manifest)?),
        };
        Ok(Checked {
            image,
            regulators,
            sha256: hex::encode(sha),
            length,
            bundle,
            content_key,
        })
    }

    /// The content key of an encrypted image, from the wraps the assignment names.
    fn content_key<G: crate::tuf::Fetch>(
        &self,
        master: &Updater<G>,
        m: &walk::Master,
        a: &EcuAssignment,
        manifest: &ota_metadata::documents::ImageManifest,
    ) -> std::result::Result<ota_crypt::Key, walk::WalkError> {
        let fail = |e: decrypt::DecryptError| walk::WalkError {
            check: walk::Check::ContentKey,
            repository: m.url.clone(),
            reason: format!("{} {}: {e}", a.uid, a.version),
        };
        let wraps = a
            .key_wraps
            .as_ref()
            .ok_or(decrypt::DecryptError::NoWraps)
            .map_err(fail)?;
        let path = self
            .config
            .decryption_keys
            .as_ref()
            .ok_or(decrypt::DecryptError::NoKeys)
            .map_err(fail)?;
        let keys = decrypt::load_keys(path).map_err(fail)?;
        decrypt::content_key(master, wraps, &keys, manifest).map_err(fail)
    }

    /// The update, set by set ([`sets`]): each set's requirements and conflicts checked on
    /// the vehicle as it will be, then the set installed all or nothing, independently of the
    /// others.
    #[allow(clippy::too_many_arguments)]
    fn install_sets<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        mut planned: Vec<Planned<'_>>,
        mut failed: Vec<String>,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        out: &mut [(String, EcuOutcome)],
    ) -> Result<()> {
        let assigned = |serial: &str| m.assignments.as_ref().and_then(|a| a.ecus.get(serial));
        let update: BTreeMap<String, &ota_metadata::documents::EcuAssignment> = planned
            .iter()
            .map(|p| p.ecu.serial.clone())
            .chain(failed.iter().cloned())
            .filter_map(|s| assigned(&s).map(|a| (s, a)))
            .collect();
        let group = sets::groups(&update);
        let group_of = |s: &str| group.get(s).copied().unwrap_or(usize::MAX);
        // Rules must hold whatever the other sets do: with this set alone (the others fail)
        // and with every set installed (they succeed).
        let everything = sets::after(&state.installed, update.iter().map(|(s, a)| (s, *a)));
        for p in &planned {
            let g = group_of(&p.ecu.serial);
            let with_set = sets::after(
                &state.installed,
                update
                    .iter()
                    .filter(|(s, _)| group_of(s) == g)
                    .map(|(s, a)| (s, *a)),
            );
            let why = [&with_set, &everything]
                .into_iter()
                .find_map(|after| ota_metadata::documents::unmet(&p.ecu.serial, &p.a, after));
            if let Some(why) = why {
                out[p.index].1 = EcuOutcome::Failed(EcuError::Dependency(why));
                failed.push(p.ecu.serial.clone());
            }
        }
        // Every image of the update stays staged while the sets go in turn (a later set's
        // partial download is kept for its resume).
        let keep: Vec<String> = planned.iter().map(|p| p.sha256.clone()).collect();
        planned.sort_by_key(|p| (group_of(&p.ecu.serial), p.index));
        for set in planned.chunk_by(|a, b| group_of(&a.ecu.serial) == group_of(&b.ecu.serial)) {
            let g = group_of(&set[0].ecu.serial);
            let set_failed: Vec<String> = failed
                .iter()
                .filter(|s| group_of(s) == g)
                .cloned()
                .collect();
            self.install(repos, m, set, &set_failed, &keep, fw, state, out)?;
        }
        Ok(())
    }

    /// Phase one (verify and download every image) and phase two (distribute, decide,
    /// activate) for the ECUs of the update; `failed` are those of its ECUs whose checks
    /// failed. Each planned ECU's outcome is set in `out`.
    #[allow(clippy::too_many_arguments)]
    fn install<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        planned: &[Planned<'_>],
        failed: &[String],
        keep: &[String],
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
        out: &mut [(String, EcuOutcome)],
    ) -> Result<()> {
        if !failed.is_empty() {
            hold_back(planned, out, failed);
            return Ok(());
        }
        let staging = self.staging();
        let Some(paths) = self.stage_all(repos, m, planned, keep, fw, &staging, out)? else {
            return Ok(());
        };
        let Some((mut journal, carried)) =
            self.distribute(repos, m, fw, planned, &paths, &staging, out)?
        else {
            return Ok(());
        };

        // The decision: from here on the update rolls forward, whatever happens.
        let state_dir = &self.config.state_dir;
        journal.phase = Phase::Commit;
        journal
            .save(state_dir)
            .map_err(state_err(&Journal::path(state_dir)))?;
        fault::point(|| "journal: commit".into());
        let results = self.roll_forward(fw, &journal, state, &staging)?;
        for ((p, r), c) in planned.iter().zip(results).zip(carried) {
            out[p.index].1 = activated(p, r, c);
        }
        Ok(())
    }

    /// Phase one: every image, within the budget, before any ECU hears of the update. The
    /// budget counts an encrypted image twice over (its ciphertext and its plaintext while it
    /// is decrypted). `None`: an image could not be staged; that ECU failed and the others are
    /// held back (set in `out`), and no ECU heard of the update.
    #[allow(clippy::too_many_arguments)]
    fn stage_all<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        planned: &[Planned<'_>],
        keep: &[String],
        fw: &mut dyn Forwarder,
        staging: &Staging,
        out: &mut [(String, EcuOutcome)],
    ) -> Result<Option<Vec<carry::Staged>>> {
        let lengths: Vec<u64> = planned
            .iter()
            .map(|p| match p.content_key {
                Some(_) => p.image.info.target.length.saturating_add(p.length),
                None => p.length,
            })
            .collect();
        staging.check_budget(&lengths)?;
        staging.prepare(keep)?;
        let mut paths = Vec::new();
        let carries_deltas = fw.carries_deltas();
        for p in planned {
            match self.stage_payload(repos, m, p, staging, carries_deltas) {
                Ok(path) => {
                    fault::point(|| format!("image for ECU {} staged", p.ecu.serial));
                    paths.push(path);
                }
                Err(e) => {
                    out[p.index].1 = EcuOutcome::Failed(e);
                    hold_back(planned, out, std::slice::from_ref(&p.ecu.serial));
                    return Ok(None);
                }
            }
        }
        staging.sync()?;
        Ok(Some(paths))
    }

    /// Phase two: every image into its ECU's inactive slot, verified there and pending, under
    /// a journal (phase distributing) that a later run finishes from. Returns the journal and
    /// what was carried to each ECU. `None`: an ECU refused; none activates, every ECU of the
    /// update drops what it holds pending, the journal is cleared, that ECU failed and the
    /// others are held back (set in `out`).
    #[allow(clippy::too_many_arguments)]
    fn distribute<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        fw: &mut dyn Forwarder,
        planned: &[Planned<'_>],
        paths: &[carry::Staged],
        staging: &Staging,
        out: &mut [(String, EcuOutcome)],
    ) -> Result<Option<(Journal, Vec<Carried>)>> {
        let state_dir = &self.config.state_dir;
        let journal = Journal {
            phase: Phase::Distributing,
            ecus: planned.iter().map(Planned::journal_entry).collect(),
        };
        let journal_path = Journal::path(state_dir);
        journal.save(state_dir).map_err(state_err(&journal_path))?;
        fault::point(|| "journal: distributing".into());
        let mut carried = Vec::new();
        for (p, staged) in planned.iter().zip(paths) {
            match self.deliver(repos, m, fw, p, staged, staging) {
                Ok(c) => carried.push(c),
                Err(e) => {
                    // None activates: every ECU of the update drops what it holds pending.
                    self.discard_all(fw, &journal);
                    Journal::clear(state_dir).map_err(state_err(&journal_path))?;
                    fault::point(|| "journal cleared".into());
                    out[p.index].1 = EcuOutcome::Failed(e);
                    hold_back(planned, out, std::slice::from_ref(&p.ecu.serial));
                    return Ok(None);
                }
            }
            fault::point(|| format!("ECU {} holds its image verified and pending", p.ecu.serial));
        }
        Ok(Some((journal, carried)))
    }

    /// Phase one for one ECU: its image from staging if a complete copy is there, else
    /// downloaded (bounded by its signed length, hashed while it streams) and staged.
    fn stage_image<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        p: &Planned<'_>,
        staging: &Staging,
    ) -> std::result::Result<PathBuf, EcuError> {
        if let Some(path) = staging.staged(&p.sha256, p.length)? {
            return Ok(path);
        }
        let incoming = staging.incoming();
        let Some(key) = &p.content_key else {
            let got = download_image(repos, m, &p.a, &p.image, &incoming, None)?;
            return Ok(staging.keep(&got, &p.sha256)?);
        };
        // Decrypted while it downloads: each chunk written once it authenticated, then the
        // plaintext checked against the supplier's signed length and SHA-256, and the
        // ciphertext (hashed as it passed, never staged) against the target's. A partial
        // download: a run stopped by SIGTERM leaves it for the next to resume.
        let decryption = |e: decrypt::DecryptError| walk::WalkError {
            check: walk::Check::Decryption,
            repository: p.image.url.clone(),
            reason: format!("{} {}: {e}", p.a.uid, p.a.version),
        };
        let plain = staging.partial_plaintext(&p.image.info.target, &p.sha256);
        let mut tap =
            decrypt::DecryptingTap::new(key, &plain, &p.image.info.manifest).map_err(decryption)?;
        if let Err(e) = download_image(repos, m, &p.a, &p.image, &incoming, Some(&mut tap)) {
            return Err(tap.take_failure().map_or(e, decryption).into());
        }
        let plain = tap.finish().map_err(decryption)?;
        Ok(staging.keep(&plain, &p.sha256)?)
    }

    /// Gather every ECU's signed version report into a vehicle version report signed with the
    /// vehicle key (`vehicle_key`), for the OEM to ingest.
    pub fn report(&self, forward: &mut dyn Forwarder) -> Result<Vec<u8>> {
        let key_path = self.config.vehicle_key.as_ref().ok_or_else(|| {
            GatewayError::Refused(
                "set vehicle_key (the vehicle's private key) in the configuration to sign reports"
                    .into(),
            )
        })?;
        let pem = std::fs::read_to_string(key_path).map_err(state_err(key_path))?;
        let key = ota_metadata::SigningKey::from_pem(&pem)
            .map_err(|e| GatewayError::Refused(format!("{}: {e}", key_path.display())))?;
        let mut ecus = Vec::new();
        let mut silent = Vec::new();
        for ecu in &self.config.ecus {
            let mut nonce = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
            match forward.report(ecu, &nonce) {
                Ok(r) if r.serial == ecu.serial => ecus.push(r),
                // A different serial at this address: the OEM decides (replacement process).
                Ok(r) => ecus.push(r),
                Err(e) => silent.push(ota_metadata::documents::EcuSilent {
                    serial: ecu.serial.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let mut doc = ota_metadata::documents::VehicleVersionReport::new(
            &self.config.vin,
            self.now,
            ecus,
            silent,
        );
        // Recalls the last check found travel to the OEM with the report.
        let mut state = GatewayState::load(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
        // Saved before the report leaves: a counter is never used twice, even after a crash.
        state.report_counter = state.report_counter.saturating_add(1);
        state
            .save(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
        doc.extra.insert(
            "counter".into(),
            serde_json::Value::from(state.report_counter),
        );
        doc.events = state.events.clone();
        doc.recalls = state
            .recalls
            .iter()
            .map(|(serial, r)| ota_metadata::documents::EcuRecall {
                serial: serial.clone(),
                uid: state
                    .installed
                    .get(serial)
                    .map(|i| i.uid.clone())
                    .unwrap_or_default(),
                version: state
                    .installed
                    .get(serial)
                    .map(|i| i.version.clone())
                    .unwrap_or_default(),
                regulator: r.regulator.clone(),
                reason: r.reason.clone(),
            })
            .collect();
        ota_metadata::sign_document(&doc, &[&key]).map_err(|e| GatewayError::Refused(e.to_string()))
    }

    /// Installed versions, trusted metadata versions, last check.
    pub fn status(&self) -> Result<String> {
        let state = GatewayState::load(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
        let mut s = format!("vehicle {}\n", self.config.vin);
        for e in &self.config.ecus {
            let line = match state.installed.get(&e.serial) {
                Some(i) => format!(
                    "{} {} (release counter {})",
                    i.uid, i.version, i.release_counter
                ),
                None => "unknown (nothing installed through this gateway)".into(),
            };
            let trust = match state.trust_versions.get(&e.serial) {
                Some(v) if *v > 0 => format!(", trust document version {v}"),
                _ => String::new(),
            };
            s += &format!("  ECU {} [{}]: {line}{trust}\n", e.serial, e.hardware_id);
            if let Some(r) = state.recovery.get(&e.serial) {
                s += &format!("    interrupted update dropped at recovery: {r}\n");
            }
            if let Some(r) = state.recalls.get(&e.serial) {
                s += &format!(
                    "    RECALLED by regulator {}: {} (update or replace this image)\n",
                    r.regulator, r.reason
                );
            }
        }
        if let Ok(Some(j)) = Journal::load(&self.config.state_dir) {
            let serials: Vec<&str> = j.ecus.iter().map(|e| e.serial.as_str()).collect();
            s += &match j.phase {
                Phase::Distributing => format!(
                    "interrupted update (undecided) of ECUs {}: the next update discards what they hold pending\n",
                    serials.join(", ")
                ),
                Phase::Commit => format!(
                    "interrupted update (committed) of ECUs {}: the next update checks each again and activates it\n",
                    serials.join(", ")
                ),
            };
        }
        s += &format!("trusted OEM metadata: {}\n", versions(&self.master_dir()));
        let repos = self.config.state_dir.join("repos");
        for kind in ["regulators", "suppliers"] {
            if let Ok(rd) = std::fs::read_dir(repos.join(kind)) {
                for e in rd.flatten() {
                    s += &format!(
                        "trusted {kind} {}: {}\n",
                        e.file_name().to_string_lossy(),
                        versions(&e.path())
                    );
                }
            }
        }
        let t = |d: Option<DateTime>| d.map_or("never".to_string(), |d| d.to_string());
        s += &format!(
            "last check: {}\nlast update: {}\n",
            t(state.last_check),
            t(state.last_update)
        );
        for (serial, r) in &state.last_results {
            s += &format!("  {serial}: {r}\n");
        }
        Ok(s)
    }
}

/// "; and RECALLED: …" for an outcome whose running image was vetoed since.
fn recalled(recall: &Option<Recall>) -> String {
    recall.as_ref().map_or(String::new(), |r| {
        format!(
            "; and RECALLED: the image it runs was revoked by regulator {}: {}",
            r.regulator, r.reason
        )
    })
}

/// One line about an outcome.
pub fn summary(o: &EcuOutcome) -> String {
    match o {
        EcuOutcome::Unassigned => "nothing assigned".into(),
        EcuOutcome::UpToDate { uid, version } => format!("up to date ({uid} {version})"),
        EcuOutcome::Recalled {
            uid,
            version,
            recall,
        } => format!(
            "RECALLED: installed {uid} {version} was revoked by regulator {}: {}",
            recall.regulator, recall.reason
        ),
        EcuOutcome::WouldUpdate {
            uid,
            version,
            regulators,
            recall,
        } => {
            format!(
                "would update to {uid} {version} (approved by {}){}",
                regulators.join(", "),
                recalled(recall)
            )
        }
        EcuOutcome::Updated {
            uid,
            version,
            regulators,
            carried,
        } => {
            let how = match carried {
                Some(c) if c.delta_from.is_some() || c.sent.encoding != crate::forward::Encoding::Plain => {
                    format!("; {c}")
                }
                _ => String::new(),
            };
            format!(
                "updated to {uid} {version} (approved by {}){how}",
                regulators.join(", ")
            )
        }
        EcuOutcome::Reverted {
            uid,
            version,
            reason,
        } => format!(
            "REVERTED {uid} {version}: activated, then {reason}; the ECU's bootloader returned to its previous image"
        ),
        EcuOutcome::HeldBack {
            uid,
            version,
            because,
            recall,
        } => format!(
            "NOT switched to {uid} {version}: the update is all or nothing and ECU {} failed; \
             this ECU keeps its image{}",
            because.join(", ECU "),
            recalled(recall)
        ),
        EcuOutcome::Failed(e) => format!("FAILED: {e}"),
        EcuOutcome::FailedRecalled {
            error,
            uid,
            version,
            recall,
        } => format!(
            "FAILED: {error}; and RECALLED: installed {uid} {version} was revoked by regulator {}: {}",
            recall.regulator, recall.reason
        ),
    }
}

/// "root v2, timestamp v7, …" of a local metadata directory.
fn versions(dir: &std::path::Path) -> String {
    let store = MetadataStore::new(dir);
    let mut parts = Vec::new();
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let v = store
            .read(role, 64 << 20)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["signed"]["version"].as_u64());
        parts.push(format!(
            "{role} {}",
            v.map_or("-".to_string(), |v| format!("v{v}"))
        ));
    }
    parts.join(", ")
}

/// Whether the image of SHA-256 `sha256` (hex) that `ecu` was just told to activate failed
/// its trial boot: the ECU's identification names it as reverted. Then why, and what the ECU
/// runs again. An ECU that cannot be asked (or a directory) counts as not reverted here; see
/// [`activation_outcome`] for what may be recorded as running.
pub(super) fn trial_failed(
    fw: &mut dyn Forwarder,
    ecu: &EcuConfig,
    sha256: &str,
) -> Option<(String, Installed)> {
    let id = fw.identify(ecu).ok().flatten()?;
    reverted_from(&id, sha256)
}

/// What `ecu` runs after the activation of the image of SHA-256 `sha256` (hex), as the ECU
/// itself says: that image, confirmed, or the image its bootloader returned to (the trial
/// failed). Anything else is not known to run, and is an error, so that nothing records the
/// image as installed and the journal keeps the ECU for the next run to ask again: an ECU that
/// does not answer (it may have lost power just after the activation), one whose image is
/// still on trial, or one that runs another image. A forwarder with no bootloader to ask (a
/// directory) counts as running.
fn activation_outcome(
    fw: &mut dyn Forwarder,
    ecu: &EcuConfig,
    sha256: &str,
) -> std::result::Result<recover::Activated, ForwardError> {
    let unknown = |why: String| {
        ForwardError::Ecu {
        serial: ecu.serial.clone(),
        reason: format!(
            "activated, but whether it runs the new image is not known: {why}; the next run asks again"
        ),
    }
    };
    let id = match fw.identify(ecu) {
        Ok(None) => return Ok(recover::Activated::Running),
        Ok(Some(id)) => id,
        Err(e) => return Err(unknown(format!("no answer afterwards ({e})"))),
    };
    if let Some((reason, running)) = reverted_from(&id, sha256) {
        return Ok(recover::Activated::Reverted {
            reason,
            running: Box::new(running),
        });
    }
    if hex::decode(sha256).ok().as_deref() != Some(&id.sha256[..]) {
        let runs = id.image.map_or("nothing".to_string(), |(u, v)| {
            format!("{} {}", u.as_str(), v.as_str())
        });
        return Err(unknown(format!("it runs {runs}")));
    }
    if id.on_trial {
        return Err(unknown(
            "its image is still on trial (not confirmed)".into(),
        ));
    }
    Ok(recover::Activated::Running)
}

/// The revert `id` records, if it is of the image of SHA-256 `sha256` (hex): why, and what the
/// ECU runs again.
fn reverted_from(id: &ota_ecu::uds::Identification, sha256: &str) -> Option<(String, Installed)> {
    let (prefix, reason) = id.reverted?;
    let activated = hex::decode(sha256).ok()?;
    if activated.get(..8) != Some(&prefix[..]) {
        return None;
    }
    let (uid, version) = id
        .image
        .map(|(u, v)| (u.as_str().to_string(), v.as_str().to_string()))
        .unwrap_or_default();
    Some((
        reason.describe().to_string(),
        Installed {
            uid,
            version,
            release_counter: id.release_counter,
            sha256: hex::encode(id.sha256),
            release: None,
            target_sha256: None,
        },
    ))
}
