//! The gateway's commands over the walk: `init` (install the factory root), `check` (what
//! would change, every check but the image bytes), `update` (the full walk, download, stage,
//! forward, record) and `status`.

use crate::config::Config;
use crate::forward::Forwarder;
use crate::progress::ProgressFetcher;
use crate::state::GatewayState;
use crate::tuf::{
    self, init_trusted_root, targets_url, AnyFetcher, CaRoots, HttpFetcher, MetadataStore, Updater,
};
use crate::walk::{
    self, check_attestations, check_image, check_recall, decide, download_image, Decision,
    Installed, Recall, Repositories,
};
use ota_metadata::DateTime;
use std::path::PathBuf;

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
    /// Handing the image to the ECU failed, or the ECU refused it.
    #[error(transparent)]
    Forward(#[from] crate::forward::ForwardError),
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
    },
    Updated {
        uid: String,
        version: String,
        regulators: Vec<String>,
    },
    Failed(EcuError),
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

    /// Walk every repository. With a forwarder, download, forward and record; without, only
    /// report what would change.
    pub fn run(
        &self,
        mut forward: Option<&mut dyn Forwarder>,
    ) -> Result<Vec<(String, EcuOutcome)>> {
        let limits = self.config.limits();
        let state_dir = &self.config.state_dir;
        let mut state = GatewayState::load(state_dir).map_err(state_err(state_dir))?;
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
        let m = walk::read_master(&mut master, url, &self.config.vin, &store)?;
        let mut repos =
            Repositories::new(&self.fetcher, limits, self.now, &state_dir.join("repos"));
        let mut out = Vec::new();
        for ecu_cfg in &self.config.ecus {
            let ecu = ecu_cfg.ecu();
            let installed = state.installed.get(&ecu.serial).cloned();
            let outcome = match decide(&m, &ecu, installed.as_ref()) {
                Decision::Update(a) => self
                    .update_one(
                        &mut repos,
                        &m,
                        ecu_cfg,
                        &a,
                        installed.as_ref(),
                        &mut forward,
                        &mut state,
                    )
                    .unwrap_or_else(EcuOutcome::Failed),
                decision => {
                    // Nothing to install: is what runs still approved?
                    let recall = match installed.as_ref() {
                        Some(i) => check_recall(&mut repos, &m, i),
                        None => Ok(None),
                    };
                    match (decision, recall) {
                        (_, Err(e)) => EcuOutcome::Failed(e.into()),
                        (_, Ok(Some(recall))) => {
                            let i = installed.clone().unwrap_or_default();
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
            };
            match &outcome {
                EcuOutcome::Recalled { recall, .. } => {
                    state.recalls.insert(ecu.serial.clone(), recall.clone());
                }
                EcuOutcome::Updated { .. } | EcuOutcome::UpToDate { .. } => {
                    state.recalls.remove(&ecu.serial);
                }
                // Unknown: keep what the last check found.
                _ => {}
            }
            out.push((ecu.serial.clone(), outcome));
        }
        state.last_check = Some(self.now);
        if forward.is_some() {
            state.last_update = Some(self.now);
            state.last_results = out.iter().map(|(s, o)| (s.clone(), summary(o))).collect();
        }
        state.save(state_dir).map_err(state_err(state_dir))?;
        Ok(out)
    }

    /// Steps 2-5 of the walk for one ECU whose assignment differs from what it runs: the
    /// supplier's manifest, the regulators' word on that release, then (with a forwarder) the
    /// image, the forward, and the record.
    #[allow(clippy::too_many_arguments)]
    fn update_one<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        ecu_cfg: &crate::config::EcuConfig,
        a: &ota_metadata::documents::EcuAssignment,
        installed: Option<&Installed>,
        forward: &mut Option<&mut dyn Forwarder>,
        state: &mut GatewayState,
    ) -> std::result::Result<EcuOutcome, EcuError> {
        let ecu = ecu_cfg.ecu();
        let staging = self.config.state_dir.join("staging");
        let image = check_image(repos, m, &ecu, a, installed, &staging)?;
        let regulators = check_attestations(repos, m, &image.release)?;
        let Some(fw) = forward.as_deref_mut() else {
            return Ok(EcuOutcome::WouldUpdate {
                uid: a.uid.clone(),
                version: a.version.clone(),
                regulators,
            });
        };
        let path = download_image(repos, m, a, &image, &staging)?;
        let forwarded = fw.forward(ecu_cfg, &image.info.compact_bytes, &path);
        let _ = std::fs::remove_file(&path);
        forwarded?;
        state.installed.insert(
            ecu.serial.clone(),
            Installed {
                uid: a.uid.clone(),
                version: a.version.clone(),
                release_counter: a.release_counter,
                sha256: a.hashes.get("sha256").cloned().unwrap_or_default(),
                release: Some(image.release),
            },
        );
        // Recorded at once: a power cut after this ECU must not forget it.
        state.save(&self.config.state_dir)?;
        Ok(EcuOutcome::Updated {
            uid: a.uid.clone(),
            version: a.version.clone(),
            regulators,
        })
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
        let state = GatewayState::load(&self.config.state_dir)
            .map_err(state_err(&self.config.state_dir))?;
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
            s += &format!("  ECU {} [{}]: {line}\n", e.serial, e.hardware_id);
            if let Some(r) = state.recalls.get(&e.serial) {
                s += &format!(
                    "    RECALLED by regulator {}: {} (update or replace this image)\n",
                    r.regulator, r.reason
                );
            }
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
        } => {
            format!(
                "would update to {uid} {version} (approved by {})",
                regulators.join(", ")
            )
        }
        EcuOutcome::Updated {
            uid,
            version,
            regulators,
        } => {
            format!(
                "updated to {uid} {version} (approved by {})",
                regulators.join(", ")
            )
        }
        EcuOutcome::Failed(e) => format!("FAILED: {e}"),
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
