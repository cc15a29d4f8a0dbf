//! Publishing the master repository: TUF roles, supplier pins, regulators, review queue, and the
//! per-vehicle assignments with their fleet index (see `ota_metadata::documents::vehicles`).

use super::{read_state, write_state, Assignments, Inventory, Settings, ASSIGNMENTS, PUBLISHED};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::publish::{self, body_of, PublishPlan, Report, RoleDoc, Signer};
use crate::workdir;
use ota_metadata::canonical::to_canonical;
use ota_metadata::documents::vehicles::{bin_of, VehicleBin};
use ota_metadata::documents::{
    Assignments as AssignmentsDoc, EcuAssignment, RegulatorPolicy, Review, VehicleIndex,
    REGULATORS_FIELD,
};
use ota_metadata::roles::{MetaFile, Root, Targets, SPEC_VERSION};
use ota_metadata::time::parse_duration;
use ota_metadata::{sign_document, DateTime, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// What was last published for one vehicle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVehicle {
    pub version: u64,
    pub length: u64,
    pub sha256: String,
    pub expires: DateTime,
    /// SHA-256 of the canonical ECU map: decides whether the vehicle changed.
    pub content: String,
}

pub type Published = BTreeMap<String, PublishedVehicle>;

/// Sign and write what changed for each vehicle; returns the new published state and how many
/// vehicles were re-signed.
fn publish_vehicles(
    repo: &Path,
    s: &Settings,
    wanted: &Assignments,
    mut published: Published,
    keys: &[&SigningKey],
    now: DateTime,
) -> Result<(Published, usize)> {
    let lifetime = parse_duration(&s.assignment_expires)?;
    let empty = BTreeMap::new();
    let vins: Vec<String> = wanted
        .keys()
        .chain(published.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut signed = 0;
    for vin in vins {
        let ecus: &BTreeMap<String, EcuAssignment> = wanted.get(&vin).unwrap_or(&empty);
        let content = hex::encode(Sha256::digest(to_canonical(ecus)?));
        let old = published.get(&vin);
        if old.is_none() && ecus.is_empty() {
            continue;
        }
        if let Some(o) = old {
            // Unchanged and not in the second half of its life: keep it.
            if o.content == content && o.expires.0 - now.0 >= lifetime / 2 {
                continue;
            }
        }
        let version = old.map_or(1, |o| o.version + 1);
        let doc = AssignmentsDoc {
            type_: AssignmentsDoc::TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            vin: vin.clone(),
            version,
            expires: now.plus_seconds(lifetime),
            ecus: ecus.clone(),
            extra: BTreeMap::new(),
        };
        let bytes = sign_document(&doc, keys)?;
        fsutil::write_atomic(
            &repo
                .join("vehicles")
                .join(&vin)
                .join(format!("{version}.assignments.json")),
            &bytes,
        )?;
        published.insert(
            vin,
            PublishedVehicle {
                version,
                length: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
                expires: doc.expires,
                content,
            },
        );
        signed += 1;
    }
    Ok((published, signed))
}

/// Write the bins (content-addressed, only new ones) and return the index body.
fn index_body(repo: &Path, bins: u32, published: &Published) -> Result<Value> {
    let mut grouped: BTreeMap<String, BTreeMap<String, MetaFile>> = BTreeMap::new();
    for (vin, p) in published {
        grouped.entry(bin_of(vin, bins)).or_default().insert(
            vin.clone(),
            MetaFile {
                version: p.version,
                length: Some(p.length),
                hashes: Some(BTreeMap::from([("sha256".to_string(), p.sha256.clone())])),
            },
        );
    }
    let mut bin_files = BTreeMap::new();
    for (bin, vehicles) in grouped {
        let doc = VehicleBin {
            type_: VehicleBin::TYPE.into(),
            bin: bin.clone(),
            vehicles,
        };
        let bytes = to_canonical(&doc)?;
        let path = repo
            .join("vehicles")
            .join("bins")
            .join(VehicleBin::file_name(&bin, &bytes));
        if !path.exists() {
            fsutil::write_atomic(&path, &bytes)?;
        }
        bin_files.insert(
            bin,
            MetaFile {
                version: 1,
                length: Some(bytes.len() as u64),
                hashes: Some(BTreeMap::from([(
                    "sha256".to_string(),
                    hex::encode(Sha256::digest(&bytes)),
                )])),
            },
        );
    }
    body_of(&VehicleIndex {
        type_: VehicleIndex::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: DateTime(0),
        bins,
        bin_files,
        extra: BTreeMap::new(),
    })
}

/// What an OEM publish did.
pub struct OemReport {
    pub roles: Report,
    pub vehicles_signed: usize,
    pub withdrawn: Vec<String>,
}

pub fn publish(dir: &Path, now: DateTime, force: bool) -> Result<OemReport> {
    let s = Settings::load(dir)?;
    let root = publish::read_root(&workdir::repository_path(dir))?;
    publish_with(dir, &s, &root, now, force, &BTreeMap::new())
}

/// Publish `s` under `root`; `also_sign` co-signs per role (during a key rotation). When the
/// `vehicles` role is co-signed, every vehicle's assignments are re-signed.
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

    // Assignments that no longer match the inventory are withdrawn, loudly.
    let inv = Inventory::load(dir)?;
    let mut wanted: Assignments = read_state(dir, ASSIGNMENTS)?;
    let mut withdrawn = Vec::new();
    for (vin, ecus) in wanted.iter_mut() {
        ecus.retain(|serial, a| {
            let ok = inv
                .vehicles
                .get(vin)
                .and_then(|v| v.ecus.get(serial))
                .is_some_and(|e| !e.aftermarket && e.hardware_id == a.hardware_id)
                && s.suppliers.contains_key(&a.supplier);
            if !ok {
                withdrawn.push(format!("{vin}/{serial}"));
            }
            ok
        });
    }
    let mut published: Published = read_state(dir, PUBLISHED)?;
    if also_sign.contains_key("vehicles") {
        // New keys for the vehicles role: every vehicle's assignments must be re-signed.
        for p in published.values_mut() {
            p.content.clear();
        }
    }
    let vk: Vec<&SigningKey> = vehicles_k.iter().collect();
    let (published, vehicles_signed) = publish_vehicles(&repo, s, &wanted, published, &vk, now)?;
    let index = index_body(&repo, s.vehicle_bins, &published)?;
    // Recorded before the timestamp lands: a crash after this point leaves files and state
    // that agree, and the next publish completes the job.
    write_state(dir, PUBLISHED, &published)?;

    // Who is trusted (supplier pins, authorized regulators): the offline targets role.
    let mut targets = Targets::new(1, now);
    let policy = RegulatorPolicy {
        threshold: s.regulator_threshold,
        regulators: s.regulators.clone(),
    };
    let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| Error::refused(e.to_string()));
    targets.extra.insert(
        "suppliers".into(),
        json(serde_json::to_value(&s.suppliers))?,
    );
    targets.extra.insert(
        REGULATORS_FIELD.into(),
        json(serde_json::to_value(&policy))?,
    );
    let review = Review {
        type_: Review::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: now,
        requests: s.reviews.clone(),
        extra: BTreeMap::new(),
    };
    fn doc<'k>(
        s: &Settings,
        name: &str,
        body: Value,
        keys: &'k [SigningKey],
    ) -> Result<RoleDoc<'k>> {
        Ok(RoleDoc {
            name: name.into(),
            body,
            keys: keys.iter().collect(),
            lifetime: s.roles[name].lifetime()?,
        })
    }
    let plan = PublishPlan {
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
        vehicles_signed,
        withdrawn,
    })
}
