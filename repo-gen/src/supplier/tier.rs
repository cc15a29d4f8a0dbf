//! A tier-2 or tier-3 supplier's own directory (Uptane's supply chain): it signs one role of
//! its delegator's repository with keys that never leave it.
//!
//! ```text
//! ota-repo supplier init-tier bosch --name bosch --role brake-cal --key bosch.pem \
//!                             --hardware-id BRAKE-A --path 'brake-cal-*'
//! ota-repo supplier add-image bosch --file cal.bin --uid brake-cal --version 1.0 …
//! ota-repo supplier handover bosch --out to-acme/      # signed role + its files
//! ota-repo supplier ingest acme --from to-acme/        # the delegator checks and takes it in
//! ```
//!
//! A hand-over is a directory: `handover.json` (which roles it carries), `metadata/ROLE.json`
//! (each role as signed: this tier's, and those of the tiers below it that it ingested) and
//! `targets/SHA256.NAME` (every file those roles list). Nothing in it is trusted until the
//! delegator's [`super::ingest`] has checked it against the delegation.

use super::publish::{delegating_doc, live_delegations};
use super::{Settings, Tier, DELEGATED_DIR};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::publish::body_of;
use crate::root_build::check_threshold;
use crate::workdir::{self, RoleConfig};
use ota_metadata::{names, DateTime, Envelope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The hand-over's index.
pub const INDEX: &str = "handover.json";
pub const FORMAT: &str = "ota-handover-v1";
/// Where a tier keeps its role as last signed (to hand the same bytes over again).
const SIGNED_DIR: &str = "signed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: String,
    /// The role of the tier that made it.
    pub role: String,
    /// Every role whose signed file is in `metadata/`.
    pub roles: Vec<String>,
}

pub struct TierInit {
    pub name: String,
    pub role: String,
    pub keys: Vec<PathBuf>,
    pub threshold: u32,
    pub hardware_ids: Vec<String>,
    pub paths: Vec<String>,
    pub expires: Option<String>,
    pub max_image_size: u64,
}

/// Create tier directory `dir`, which signs role `o.role` for its delegator.
pub fn init_tier(dir: &Path, o: TierInit) -> Result<()> {
    workdir::check_new(dir, super::KIND)?;
    names::check_role_name(&o.name).map_err(|e| Error::refused(format!("supplier name: {e}")))?;
    names::check_role_name(&o.role)?;
    if o.role == "targets" {
        return Err(Error::refused(
            "a tier signs a delegated role: give --role the name its delegator delegates to",
        ));
    }
    if o.hardware_ids.is_empty() {
        return Err(Error::refused(
            "give the --hardware-id(s) the delegation allows this tier",
        ));
    }
    for h in &o.hardware_ids {
        names::check_hardware_id(h)?;
    }
    for p in &o.paths {
        if p.is_empty() || p.contains("..") {
            return Err(Error::refused(format!("path pattern {p:?} is not allowed")));
        }
    }
    // Under the delegator's default bound of 90 days, and long enough that a monthly
    // hand-over keeps the delegator's publish from warning (it warns at 30 days).
    let expires = o.expires.as_deref().unwrap_or("60d");
    let role = RoleConfig::new(o.keys, o.threshold, expires)?;
    let ids: BTreeSet<_> = role
        .load_keys(&o.role)?
        .iter()
        .map(|k| k.key_id().clone())
        .collect();
    check_threshold(&o.role, &role, ids.len())?;
    workdir::create(dir, true)?;
    let s = Settings {
        kind: super::KIND.into(),
        name: o.name,
        roles: BTreeMap::from([(o.role.clone(), role)]),
        max_image_size: o.max_image_size,
        delegations: Vec::new(),
        images: Vec::new(),
        retired: Vec::new(),
        tier: Some(Tier {
            role: o.role,
            hardware_ids: o.hardware_ids,
            paths: if o.paths.is_empty() {
                vec!["*".into()]
            } else {
                o.paths
            },
            version: 0,
            body_sha256: String::new(),
        }),
        ingested: BTreeMap::new(),
    };
    s.save(dir)
}

/// What a hand-over did.
pub struct HandedOver {
    pub role: String,
    pub version: u64,
    /// Whether the role was signed anew (else the bytes of the last hand-over).
    pub signed: bool,
    pub roles: usize,
    pub targets: usize,
}

/// Sign this tier's role (a new version when its content changed, or when `renew`) and write
/// the hand-over to `out` (a new or empty directory).
pub fn handover(dir: &Path, out: &Path, renew: bool, now: DateTime) -> Result<HandedOver> {
    let mut s = Settings::load(dir)?;
    let t = s.tier.clone().ok_or_else(|| {
        Error::refused(format!(
            "{} is not a tier directory: a tier-1 supplier publishes (`supplier publish`)",
            dir.display()
        ))
    })?;
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(Error::io(out))?
            .next()
            .is_some()
    {
        return Err(Error::refused(format!(
            "{} is not empty: hand over into a new directory",
            out.display()
        )));
    }
    let rc = s.role(&t.role)?.clone();
    let keys = rc.load_keys(&t.role)?;
    let live = live_delegations(&s, &BTreeMap::new())?;
    if live.iter().any(|(d, _)| !d.external()) {
        return Err(Error::refused(
            "a tier delegates only to suppliers that sign for themselves (`supplier delegate --public-key`)",
        ));
    }
    let doc = delegating_doc(&s, &t.role, &live, now);
    let body = body_of(&doc)?;
    let body_sha = hex::encode(Sha256::digest(
        serde_json::to_vec(&body).unwrap_or_default(),
    ));
    let last = dir.join(SIGNED_DIR).join(format!("{}.json", t.role));
    let keep = !renew && t.body_sha256 == body_sha && t.version > 0 && last.exists();
    let (bytes, version) = if keep {
        (
            fsutil::read_bounded(&last, ota_metadata::MetadataLimits::default().targets)?,
            t.version,
        )
    } else {
        let version = t.version + 1;
        let mut signed = doc.clone();
        signed.version = version;
        signed.expires = now.plus_seconds(rc.lifetime()?);
        let key_refs: Vec<_> = keys.iter().collect();
        let bytes = ota_metadata::sign_document(&signed, &key_refs)?;
        std::fs::create_dir_all(dir.join(SIGNED_DIR)).map_err(Error::io(dir))?;
        fsutil::write_atomic(&last, &bytes)?;
        if let Some(tier) = s.tier.as_mut() {
            tier.version = version;
            tier.body_sha256 = body_sha;
        }
        s.save(dir)?;
        (bytes, version)
    };
    // Expired last time and not renewed: the delegator would refuse it.
    let env = Envelope::parse(&t.role, &bytes, bytes.len() as u64).map_err(Error::meta(&last))?;
    let expires = env
        .signed_value()
        .get("expires")
        .and_then(|v| v.as_str())
        .and_then(|e| DateTime::parse(e).ok());
    if expires.is_none_or(|e| e <= now) {
        return Err(Error::refused(format!(
            "role {} as last signed has expired: hand over with --renew",
            t.role
        )));
    }
    write_handover(dir, out, &s, &t.role, &bytes, version, keep)
}

fn write_handover(
    dir: &Path,
    out: &Path,
    s: &Settings,
    role: &str,
    own: &[u8],
    version: u64,
    kept: bool,
) -> Result<HandedOver> {
    let meta_dir = out.join("metadata");
    let targets_out = out.join("targets");
    std::fs::create_dir_all(&meta_dir).map_err(Error::io(&meta_dir))?;
    std::fs::create_dir_all(&targets_out).map_err(Error::io(&targets_out))?;
    let mut roles = vec![(role.to_string(), own.to_vec())];
    for name in s.ingested.keys() {
        let path = dir.join(DELEGATED_DIR).join(format!("{name}.json"));
        roles.push((
            name.clone(),
            fsutil::read_bounded(&path, ota_metadata::MetadataLimits::default().targets)?,
        ));
    }
    let store = workdir::repository_path(dir).join("targets");
    let mut targets = 0;
    for (name, bytes) in &roles {
        fsutil::write_atomic(&meta_dir.join(format!("{name}.json")), bytes)?;
        let env = Envelope::parse(name, bytes, bytes.len() as u64)
            .map_err(|e| Error::refused(format!("role {name}: {e}")))?;
        let doc: ota_metadata::roles::Targets = env
            .decode(name, ota_metadata::roles::Targets::TYPE)
            .map_err(|e| Error::refused(format!("role {name}: {e}")))?;
        for (target, info) in &doc.targets {
            let sha = info.hashes.get("sha256").ok_or_else(|| {
                Error::refused(format!("role {name}: target {target} lists no sha256"))
            })?;
            let file = format!("{sha}.{target}");
            copy_file(&store.join(&file), &targets_out.join(&file))?;
            targets += 1;
        }
    }
    let index = Index {
        format: FORMAT.into(),
        role: role.into(),
        roles: roles.iter().map(|(n, _)| n.clone()).collect(),
    };
    fsutil::write_atomic(
        &out.join(INDEX),
        &serde_json::to_vec_pretty(&index).unwrap_or_default(),
    )?;
    Ok(HandedOver {
        role: role.into(),
        version,
        signed: !kept,
        roles: roles.len(),
        targets,
    })
}

/// Copy a stored file into a hand-over (hard link when the file system allows).
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(Error::io(from))?;
    Ok(())
}

/// Rotate this tier's own key(s): every manifest it signed is signed again with `keys`, and
/// its next hand-over is signed with them. The delegator then names the new public keys
/// (`supplier delegate --replace`) and ingests that hand-over; it signs nothing else anew.
pub fn rotate_tier_key(dir: &Path, keys: Vec<PathBuf>, threshold: u32) -> Result<()> {
    let mut s = Settings::load(dir)?;
    let t = s
        .tier
        .clone()
        .ok_or_else(|| Error::refused("not a tier directory"))?;
    let old = s.role(&t.role)?.clone();
    let rc = RoleConfig::new(keys, threshold, &old.expires)?;
    let new_keys = rc.load_keys(&t.role)?;
    let ids: BTreeSet<_> = new_keys.iter().map(|k| k.key_id().clone()).collect();
    check_threshold(&t.role, &rc, ids.len())?;
    let refs: Vec<_> = new_keys.iter().collect();
    let repo = workdir::repository_path(dir);
    for i in 0..s.images.len() {
        if s.images[i].role == t.role {
            let m = super::manifest_of(&s.name, &s.images[i])?;
            let (manifest, compact) = super::add_image::write_manifests(&repo, &m, &refs)?;
            s.images[i].manifest = manifest;
            s.images[i].compact = compact;
        }
    }
    s.roles.insert(t.role.clone(), rc);
    s.save(dir)
}
