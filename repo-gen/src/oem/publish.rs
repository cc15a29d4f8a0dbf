//! Publishing the master repository: TUF roles, supplier pins, regulators, review queue, and the
//! per-vehicle assignments with their fleet index (see `ota_metadata::documents::vehicles` and
//! [`super::fleet`]).

use super::fleet::{self, FleetReport};
use super::{store, Settings};
use crate::error::{Error, Result};
use crate::publish::{self, body_of, PublishPlan, Report, RoleDoc, Signer};
use crate::workdir;
use ota_metadata::documents::vehicles::FANOUT;
use ota_metadata::documents::{Review, VehicleIndex, REGULATORS_FIELD};
use ota_metadata::roles::{Root, Targets, SPEC_VERSION};
use ota_metadata::{DateTime, SigningKey};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub use super::fleet::Record;

/// What an OEM publish did.
pub struct OemReport {
    pub roles: Report,
    /// Vehicles whose assignments file was written (new or changed).
    pub vehicles_written: usize,
    /// `VIN/serial` of assignments not published (see [`FleetReport::withdrawn`]).
    pub withdrawn: Vec<String>,
    pub fleet: FleetReport,
}

pub fn publish(dir: &Path, now: DateTime, force: bool) -> Result<OemReport> {
    // A key rotation a kill cut off is finished (or undone) first.
    crate::rotation::resume::<Settings>(dir, now)?;
    // Never one ECU serial or key in two vehicles' published state (a restored inventory
    // shard can bring one back).
    super::claims::check_fleet(dir, force)?;
    let s = Settings::load(dir)?;
    let root = publish::read_root(&workdir::repository_path(dir))?;
    publish_with(dir, &s, &root, now, force, &BTreeMap::new())
}

/// Publish `s` under `root`; `also_sign` co-signs per role (during a key rotation). Rotating
/// the `vehicles` keys re-signs the index only: vehicles' files carry no signature.
///
/// The procedure: every encrypted image wrapped for who is entitled now → each vehicle's file
/// and the tree, for what changed, then the record → the targets role (trust documents,
/// supplier pins, regulators), the review queue and the vehicles index → published.
pub fn publish_with(
    dir: &Path,
    s: &Settings,
    root: &Root,
    now: DateTime,
    force: bool,
    also_sign: &BTreeMap<String, Vec<SigningKey>>,
) -> Result<OemReport> {
    let repo = workdir::repository_path(dir);
    let k = |role: &str| publish::role_signers(root, role, &s.roles[role], also_sign);
    let (targets_k, snapshot_k, timestamp_k) = (k("targets")?, k("snapshot")?, k("timestamp")?);
    let (review_k, vehicles_k) = (k("review")?, k("vehicles")?);
    let life = |role: &str| s.roles[role].lifetime();

    // Each vehicle's file and the tree, for what changed; then the record, before the
    // timestamp lands: a crash after this point leaves files and record that agree, and the
    // next publish completes the job.
    // Every encrypted image is wrapped again for who is entitled now (a revocation holds from
    // this publish on); the review requests carry the regulators' wraps.
    let mut reviews = s.reviews.clone();
    let wraps = super::broadcast::plan(dir, &repo, &mut reviews)?;
    let up = fleet::update_vehicles(dir, &repo, s, &wraps, force)?;
    let index = body_of(&VehicleIndex {
        type_: VehicleIndex::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: DateTime(0),
        fanout: FANOUT,
        entries: ota_metadata::documents::vehicles::ENTRY_FORMAT.into(),
        tree: up.record.tree.clone(),
        extra: BTreeMap::new(),
    })?;
    up.record.save(dir)?;
    store::clear_pending(dir, &up.handled)?;

    let targets = targets_role(dir, &repo, s, now)?;
    let review = review_queue(reviews, &wraps, now);
    let plan = PublishPlan {
        verbatim: Vec::new(),
        roles: vec![
            doc(s, "targets", body_of(&targets)?, &targets_k)?,
            doc(s, "review", body_of(&review)?, &review_k)?,
            doc(s, "vehicles", index, &vehicles_k)?,
        ],
        snapshot: Signer {
            keys: snapshot_k.iter().collect(),
            lifetime: life("snapshot")?,
        },
        timestamp: Signer {
            keys: timestamp_k.iter().collect(),
            lifetime: life("timestamp")?,
        },
        force,
    };
    let roles = publish::publish(&repo, now, &plan)?;
    Ok(OemReport {
        roles,
        vehicles_written: up.report.vehicles_written,
        withdrawn: up.report.withdrawn.clone(),
        fleet: up.report,
    })
}

/// Who is trusted (supplier pins, authorized regulators): the offline targets role. The ECU
/// trust documents are its targets, so gateways fetch them through TUF (see
/// [`super::ecu_trust`]); each is stored in the tree here.
fn targets_role(dir: &Path, repo: &Path, s: &Settings, now: DateTime) -> Result<Targets> {
    let mut targets = Targets::new(1, now);
    for (name, bytes) in super::ecu_trust::all(dir)? {
        let info = crate::supplier::store_target(repo, &name, &bytes)?;
        targets.targets.insert(
            name,
            ota_metadata::roles::TargetFile {
                length: info.length,
                hashes: BTreeMap::from([("sha256".to_string(), info.sha256)]),
                custom: None,
            },
        );
    }
    let policy = s.regulator_policy()?;
    let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| Error::refused(e.to_string()));
    targets.extra.insert(
        "suppliers".into(),
        json(serde_json::to_value(&s.suppliers))?,
    );
    targets.extra.insert(
        REGULATORS_FIELD.into(),
        json(serde_json::to_value(&policy))?,
    );
    Ok(targets)
}

/// The review queue: every request (with the regulators' wraps of an encrypted image), and the
/// ledger of the wraps, when there is one.
fn review_queue(
    requests: Vec<ota_metadata::documents::ReviewRequest>,
    wraps: &super::broadcast::WrapPlan,
    now: DateTime,
) -> Review {
    let mut review = Review {
        type_: Review::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: now,
        requests,
        extra: BTreeMap::new(),
    };
    if let Some(l) = &wraps.ledger {
        review.extra.insert(
            super::broadcast::ledger::FIELD.into(),
            Value::String(l.clone()),
        );
    }
    review
}

/// A role of the OEM's tree to publish: its body, keys and lifetime.
fn doc<'k>(s: &Settings, name: &str, body: Value, keys: &'k [SigningKey]) -> Result<RoleDoc<'k>> {
    Ok(RoleDoc {
        name: name.into(),
        body,
        keys: keys.iter().collect(),
        lifetime: s.roles[name].lifetime()?,
    })
}
