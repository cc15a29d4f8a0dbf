//! `ota-repo verify`: check a whole published tree the way a vehicle would, and more: every
//! root in the chain, every targets role, every target file's length and hash, and every image
//! manifest against its target entry, its signer and its compact form.
//!
//! The TUF rules are not re-implemented here: the tree is fed, file by file, to the same
//! [`TrustedSet`] the gateway uses.
//!
//! `publish` runs the same checks on the tree it is about to make ([`verify_pending`]), with
//! its new files still in memory, and writes nothing when they fail.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::workdir;
use ota_metadata::documents::image_manifest::verify_image_manifest;
use ota_metadata::documents::vehicles::{self, NodeLink};
use ota_metadata::documents::{
    regulators_of, suppliers_of, Attestation, ImageKind, ImageTargetCustom, ImageTargets, Review,
    VehicleIndex,
};
use ota_metadata::roles::{sha256_of, Targets};
use ota_metadata::{DateTime, Envelope, MetadataLimits, TrustedSet};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bound on delegated roles walked, as in the client.
const MAX_ROLES: usize = 1024;

#[derive(Debug, Default)]
pub struct Summary {
    pub root_version: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_roles: usize,
    pub targets: usize,
    pub images: usize,
    /// The project's extra roles found (regulators, review, vehicles).
    pub extra_roles: Vec<String>,
    /// Vehicles whose assignments were verified (through the tree, from the signed index).
    pub vehicles: usize,
    /// Regulator attestations verified.
    pub attestations: usize,
    /// Regulator vetoes (rejections and revocations listed under the bytes) verified.
    pub vetoes: usize,
    pub pinned_root: bool,
}

/// Accept either a working directory (with `repository/` inside) or the served tree itself.
pub fn tree_dir(dir: &Path) -> PathBuf {
    let inner = workdir::repository_path(dir);
    if workdir::settings_path(dir).exists() && inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// The files of a tree: on disk, or about to be written by `publish` (top-level files only).
struct Tree<'a> {
    dir: PathBuf,
    pending: Option<&'a BTreeMap<String, Vec<u8>>>,
}

impl Tree<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn exists(&self, name: &str) -> bool {
        self.pending.is_some_and(|p| p.contains_key(name)) || self.path(name).exists()
    }

    fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        match self.pending.and_then(|p| p.get(name)) {
            Some(bytes) if bytes.len() as u64 > limit => Err(Error::refused(format!(
                "{}: {} bytes, over the limit of {limit}",
                self.path(name).display(),
                bytes.len()
            ))),
            Some(bytes) => Ok(bytes.clone()),
            None => fsutil::read_bounded(&self.path(name), limit),
        }
    }
}

/// Verify the tree at `dir`, starting from `trusted_root` if given (else the tree's own
/// `1.root.json`, trusted on first use).
pub fn verify(dir: &Path, trusted_root: Option<&Path>, now: DateTime) -> Result<Summary> {
    let tree = Tree {
        dir: tree_dir(dir),
        pending: None,
    };
    check_tree(&tree, trusted_root, now)
}

/// Verify the tree `repo` as it will be once `pending` (file name in `repo` -> content) is
/// written, from its own `1.root.json`: what `publish` checks before writing anything. Every
/// check of [`verify`] runs except the per-vehicle walk of an OEM tree, whose cost grows with
/// the fleet (`ota-repo verify` does it).
pub fn verify_pending(
    repo: &Path,
    pending: &BTreeMap<String, Vec<u8>>,
    now: DateTime,
) -> Result<Summary> {
    let tree = Tree {
        dir: repo.to_path_buf(),
        pending: Some(pending),
    };
    check_tree(&tree, None, now)
}

/// Verify the tree as a client would, from its first root (or `trusted_root`). The procedure:
/// the root chain → the timestamp and the snapshot → every targets role, pre-order → every
/// target file they list (images, attestations, vetoes) → the documents that are not targets
/// roles → `root.json` is the newest root.
fn check_tree(tree: &Tree<'_>, trusted_root: Option<&Path>, now: DateTime) -> Result<Summary> {
    let repo = &tree.dir;
    let limits = MetadataLimits::default();
    let mut summary = Summary::default();
    let mut set = load_root_chain(tree, trusted_root, now, &mut summary)?;

    let path = repo.join("timestamp.json");
    set.update_timestamp(&tree.read("timestamp.json", limits.timestamp)?)
        .map_err(Error::meta(&path))?;
    let ts = &loaded(set.timestamp(), "timestamp")?.signed;
    summary.timestamp_version = ts.version;
    let snap_name = format!("{}.snapshot.json", ts.snapshot_meta()?.version);
    set.update_snapshot(&tree.read(&snap_name, limits.snapshot)?, false)
        .map_err(Error::meta(&repo.join(&snap_name)))?;
    summary.snapshot_version = loaded(set.snapshot(), "snapshot")?.signed.version;

    let roles = load_targets_roles(tree, &mut set)?;
    summary.targets_roles = roles.len();
    check_targets(repo, &set, &roles, &mut summary)?;
    verify_extra_roles(tree, &set, &roles, &mut summary)?;

    // Checked last, so that a tree signed by keys the pinned root does not know is reported as
    // such (a threshold failure above) rather than as a mismatching file.
    let latest = repo.join("root.json");
    if tree.exists("root.json") && tree.read("root.json", limits.root)? != set.root().raw() {
        return Err(Error::refused(format!(
            "{} differs from {}.root.json, the newest root in the chain",
            latest.display(),
            summary.root_version
        )));
    }
    Ok(summary)
}

/// The first root (the tree's `1.root.json`, or `trusted_root`), then the whole root chain,
/// each version signed by its predecessor.
fn load_root_chain(
    tree: &Tree<'_>,
    trusted_root: Option<&Path>,
    now: DateTime,
    summary: &mut Summary,
) -> Result<TrustedSet> {
    let limits = MetadataLimits::default();
    let root_bytes = match trusted_root {
        Some(p) => fsutil::read_bounded(p, limits.root)?,
        None => tree.read("1.root.json", limits.root)?,
    };
    summary.pinned_root = trusted_root.is_some();
    let mut set = TrustedSet::new(&root_bytes, now, limits).map_err(|e| Error::Metadata {
        path: trusted_root.map_or_else(|| tree.dir.join("1.root.json"), Path::to_path_buf),
        source: e,
    })?;
    loop {
        let next = set.root().signed.version + 1;
        let name = format!("{next}.root.json");
        let path = tree.path(&name);
        if !tree.exists(&name) {
            break;
        }
        let bytes = tree.read(&name, limits.root)?;
        set.update_root(&bytes).map_err(Error::meta(&path))?;
    }
    summary.root_version = set.root().signed.version;
    Ok(set)
}

/// Every targets role, pre-order from the top, each delegated role loaded once (with the
/// parent that reached it first, whose delegation signs what it lists); a role delegated
/// again elsewhere must verify against that delegation too, as a client would check it.
/// (role, parent) of each, in the order loaded.
fn load_targets_roles(tree: &Tree<'_>, set: &mut TrustedSet) -> Result<Vec<(String, String)>> {
    let limits = MetadataLimits::default();
    let mut stack = vec![("targets".to_string(), "root".to_string())];
    let mut visited = BTreeSet::new();
    let mut roles: Vec<(String, String)> = Vec::new();
    while let Some((role, parent)) = stack.pop() {
        if !visited.insert(role.clone()) {
            set.verify_delegated_targets(&role, &parent)
                .map_err(|e| Error::refused(format!("{role}, as delegated by {parent}: {e}")))?;
            continue;
        }
        if visited.len() > MAX_ROLES {
            return Err(Error::refused(format!(
                "more than {MAX_ROLES} delegated roles"
            )));
        }
        let version = set
            .snapshot()
            .and_then(|s| s.signed.meta.get(&format!("{role}.json")))
            .map(|m| m.version)
            .ok_or_else(|| Error::refused(format!("{role}.json is not listed in the snapshot")))?;
        let name = format!("{version}.{role}.json");
        set.update_delegated_targets(&tree.read(&name, limits.targets)?, &role, &parent)
            .map_err(Error::meta(&tree.dir.join(&name)))?;
        if let Some(d) = &loaded(set.targets(&role), &role)?.signed.delegations {
            for r in d.roles.iter().rev() {
                stack.push((r.name.clone(), role.clone()));
            }
            // Succinct hash bins (other tools' trees): those the snapshot lists.
            if let Some(sr) = &d.succinct_roles {
                let snapshot = &loaded(set.snapshot(), "snapshot")?.signed;
                for name in snapshot.meta.keys().filter_map(|k| k.strip_suffix(".json")) {
                    if sr.is_role(name) {
                        stack.push((name.to_string(), role.clone()));
                    }
                }
            }
        }
        roles.push((role, parent));
    }
    Ok(roles)
}

/// Every target file the roles list, present with its length and hash; attestations and
/// vetoes checked against their regulator's delegation, image manifests against their
/// supplier's.
fn check_targets(
    repo: &Path,
    set: &TrustedSet,
    roles: &[(String, String)],
    summary: &mut Summary,
) -> Result<()> {
    for (role, parent) in roles {
        let t = &loaded(set.targets(role), role)?.signed;
        for (name, target) in &t.targets {
            check_target_file(repo, name, target.length, &sha256_of(&target.hashes, name)?)?;
            summary.targets += 1;
            let custom: Option<ImageTargetCustom> = target
                .custom
                .clone()
                .and_then(|c| serde_json::from_value(c).ok());
            let kind = target
                .custom
                .as_ref()
                .and_then(|c| c.get("kind"))
                .and_then(|k| k.as_str());
            if matches!(kind, Some("attestation" | "veto")) {
                check_attestation(repo, set, role, parent, name, target)?;
                if kind == Some("veto") {
                    summary.vetoes += 1;
                } else {
                    summary.attestations += 1;
                }
            }
            if let Some(c) = custom.filter(|c| c.kind == ImageKind::ImageManifest) {
                check_image(repo, set, t, role, parent, name, &c)?;
                summary.images += 1;
            }
        }
    }
    Ok(())
}

/// The snapshot-listed documents that are not targets roles: the OEM's `review` and `vehicles`
/// (with every bin and every vehicle's assignments); and the OEM's supplier pins and
/// regulators in its targets role.
fn verify_extra_roles(
    tree: &Tree<'_>,
    set: &TrustedSet,
    targets_roles: &[(String, String)],
    summary: &mut Summary,
) -> Result<()> {
    let snapshot = &loaded(set.snapshot(), "snapshot")?.signed;
    let limit = MetadataLimits::default().targets;
    for (file, meta) in &snapshot.meta {
        let Some(role) = file.strip_suffix(".json") else {
            continue;
        };
        if targets_roles.iter().any(|(r, _)| r == role) {
            continue;
        }
        let name = format!("{}.{file}", meta.version);
        let path = tree.path(&name);
        let bytes = tree.read(&name, limit)?;
        match role {
            "review" => {
                set.verify_extra_role::<Review>(
                    &bytes,
                    role,
                    Review::TYPE,
                    |d| d.expires,
                    |d| d.version,
                )
                .map_err(Error::meta(&path))?;
            }
            "vehicles" => {
                let index = set
                    .verify_extra_role::<VehicleIndex>(
                        &bytes,
                        role,
                        VehicleIndex::TYPE,
                        |d| d.expires,
                        |d| d.version,
                    )
                    .map_err(Error::meta(&path))?;
                if tree.pending.is_none() {
                    summary.vehicles += verify_vehicles(&tree.dir, set, &index.signed)?;
                }
            }
            // A retired delegation: still listed (a snapshot never drops a file) but delegated
            // by no one, so no client loads it; only its form is checked.
            _ if Envelope::parse(&name, &bytes, limit)
                .is_ok_and(|e| e.type_name() == Some(Targets::TYPE)) =>
            {
                continue;
            }
            other => {
                return Err(Error::refused(format!(
                    "{name}: unknown role {other:?} in the snapshot"
                )))
            }
        }
        summary.extra_roles.push(role.to_string());
    }
    if let Some(t) = set.targets("targets") {
        suppliers_of(&t.signed).map_err(Error::meta(&tree.path("targets.json")))?;
        regulators_of(&t.signed).map_err(Error::meta(&tree.path("targets.json")))?;
    }
    Ok(())
}

/// The whole vehicle tree the index names: every node (length, hash, the prefix it sits at,
/// depth, the locators and sealed-entry sizes of its leaves), read the way a vehicle reads its
/// own path (no entry is opened: that needs each vehicle's secret).
/// Returns the number of vehicles.
fn verify_vehicles(repo: &Path, _set: &TrustedSet, index: &VehicleIndex) -> Result<usize> {
    let bad = |e: ota_metadata::Error| Error::refused(format!("vehicle index: {e}"));
    index.check().map_err(bad)?;
    let Some(root) = &index.tree else {
        return Ok(0);
    };
    let mut n = 0;
    // Depth first, one path of siblings at a time: memory stays bounded at any fleet size.
    let mut stack: Vec<(String, NodeLink)> = vec![(String::new(), root.clone())];
    while let Some((prefix, link)) = stack.pop() {
        if prefix.len() >= vehicles::MAX_DEPTH {
            return Err(Error::refused(format!(
                "vehicle tree: node {prefix:?} is deeper than {} levels",
                vehicles::MAX_DEPTH
            )));
        }
        let path = repo.join(vehicles::node_path(&prefix, &link.sha256));
        let bytes = fsutil::read_bounded(&path, vehicles::MAX_NODE_BYTES)?;
        ota_metadata::trusted_set::check_meta(&path.display().to_string(), &link.meta(), &bytes)
            .map_err(Error::meta(&path))?;
        let node = vehicles::check_node(&bytes, &prefix).map_err(Error::meta(&path))?;
        for (d, l) in node.children.into_iter().rev() {
            stack.push((format!("{prefix}{d}"), l));
        }
        n += node.entries.len();
    }
    Ok(n)
}

/// A document the trusted set just accepted (absent only if the set's rules changed under us).
fn loaded<'a, T>(doc: Option<&'a T>, role: &str) -> Result<&'a T> {
    doc.ok_or_else(|| Error::refused(format!("internal: {role} was accepted but is not loaded")))
}

/// Stream a stored target and check its length and SHA-256.
fn check_target_file(repo: &Path, name: &str, length: u64, sha: &[u8; 32]) -> Result<Vec<u8>> {
    let path = repo
        .join("targets")
        .join(format!("{}.{name}", hex::encode(sha)));
    let f = File::open(&path).map_err(Error::io(&path))?;
    let mut hasher = Sha256::new();
    let mut small = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    let mut r = f.take(length + 1);
    loop {
        let n = r.read(&mut buf).map_err(Error::io(&path))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buf[..n]);
        // Manifests are small; keep their bytes for the checks that follow.
        if length <= 1 << 20 {
            small.extend_from_slice(&buf[..n]);
        }
    }
    if read != length {
        return Err(Error::refused(format!(
            "{}: {} bytes, the metadata says {length}",
            path.display(),
            if read > length {
                format!("more than {length}")
            } else {
                read.to_string()
            }
        )));
    }
    let got: [u8; 32] = hasher.finalize().into();
    if &got != sha {
        return Err(Error::refused(format!(
            "{}: sha256 {}, the metadata says {}",
            path.display(),
            hex::encode(got),
            hex::encode(sha)
        )));
    }
    Ok(small)
}

/// A regulator's attestation or veto: signed by the role that lists it, about the release (or
/// for a veto, the bytes) its name says.
fn check_attestation(
    repo: &Path,
    set: &TrustedSet,
    role: &str,
    parent: &str,
    name: &str,
    target: &ota_metadata::roles::TargetFile,
) -> Result<()> {
    let bytes = check_target_file(repo, name, target.length, &sha256_of(&target.hashes, name)?)?;
    let ctx = |e: ota_metadata::Error| Error::refused(format!("{role}: attestation {name}: {e}"));
    let signer = set.signer_of(role, parent).map_err(ctx)?;
    let env = Envelope::parse(name, &bytes, 1 << 20).map_err(ctx)?;
    env.verify(
        &format!("attestation {name}"),
        &signer.keyids,
        signer.threshold,
        &signer.keys,
    )
    .map_err(ctx)?;
    let a: Attestation = env.decode(name, Attestation::TYPE).map_err(ctx)?;
    if let Some(sha) = name.strip_suffix(".veto.json") {
        // A veto: a rejection or revocation of a release of the bytes its name says.
        let names_bytes = a
            .release
            .content_sha256s()
            .map_err(ctx)?
            .iter()
            .any(|c| c.eq_ignore_ascii_case(sha));
        if !names_bytes || a.verdict == ota_metadata::documents::Verdict::Approved {
            return Err(Error::refused(format!(
                "{role}: {name} is not a rejection or revocation of bytes {sha}"
            )));
        }
        return Ok(());
    }
    if name != a.release.attestation_target() {
        return Err(Error::refused(format!(
            "{role}: {name} attests release {}, not the one its name says",
            a.release.manifest_sha256
        )));
    }
    let listed = target
        .custom
        .as_ref()
        .and_then(|c| c.get("verdict"))
        .cloned();
    if listed != serde_json::to_value(a.verdict).ok() {
        return Err(Error::refused(format!(
            "{role}: {name}: verdict {:?} but the targets entry says {listed:?}",
            a.verdict
        )));
    }
    Ok(())
}

/// An image manifest target: the manifest, its image and its compact form, checked together.
fn check_image(
    repo: &Path,
    set: &TrustedSet,
    t: &Targets,
    role: &str,
    parent: &str,
    manifest_name: &str,
    c: &ImageTargetCustom,
) -> Result<()> {
    let names = ImageTargets::new(&c.uid, &c.version);
    let ctx = |e: ota_metadata::Error| {
        Error::refused(format!("{role}: image {}-{}: {e}", c.uid, c.version))
    };
    let stored = |name: &str| -> Result<Vec<u8>> {
        let target = t.targets.get(name).ok_or_else(|| {
            Error::refused(format!(
                "{role}: {manifest_name} needs {name}, which the role does not list"
            ))
        })?;
        check_target_file(repo, name, target.length, &sha256_of(&target.hashes, name)?)
    };
    let manifest = stored(manifest_name)?;
    let compact = stored(&names.compact)?;
    let image = t.targets.get(&names.image).ok_or_else(|| {
        Error::refused(format!(
            "{role}: {manifest_name} describes {}, which the role does not list",
            names.image
        ))
    })?;
    let signer = set.signer_of(role, parent).map_err(ctx)?;
    let m = verify_image_manifest(&manifest, &signer, &names.image, image, Some(&compact))
        .map_err(ctx)?;
    if m.uid != c.uid
        || m.version != c.version
        || m.release_counter != c.release_counter
        || m.hardware_ids != c.hardware_ids
    {
        return Err(Error::refused(format!(
            "{manifest_name}: manifest disagrees with its target's custom data"
        )));
    }
    for d in &m.deltas {
        check_delta(&m, d, &stored).map_err(|why| {
            Error::refused(format!(
                "{role}: image {}-{}: the delta from {}: {why}",
                c.uid, c.version, d.from_version
            ))
        })?;
    }
    Ok(())
}

/// A delta the manifest lists is listed by the same role with the manifest's length and hash,
/// and rebuilds exactly the image from its base (the role's release `from_version`, with the
/// base hash the manifest names), as an ECU applies it. An ECU would refuse a delta that does
/// not; this finds it before any vehicle downloads it.
fn check_delta(
    m: &ota_metadata::documents::ImageManifest,
    d: &ota_metadata::documents::image_manifest::DeltaEntry,
    stored: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> std::result::Result<(), String> {
    use ota_ecu::delta::{make, Encoding};
    let delta = stored(&d.target).map_err(|e| e.to_string())?;
    let listed = hex::encode(Sha256::digest(&delta));
    if delta.len() as u64 != d.length || d.hashes.get("sha256") != Some(&listed) {
        return Err(format!("{} is not what the manifest names", d.target));
    }
    let base =
        stored(&ImageTargets::new(&m.uid, &d.from_version).image).map_err(|e| e.to_string())?;
    if hex::encode(Sha256::digest(&base)) != d.from_sha256 {
        return Err("its base image is not the one the manifest names".into());
    }
    let (length, sha256) = m.plaintext().map_err(|e| e.to_string())?;
    let rebuilt = make::apply(Encoding::Delta, &base, &delta, length, 4092)
        .map_err(|e| format!("it does not apply ({e:?})"))?;
    if rebuilt.len() as u64 != length || <[u8; 32]>::from(Sha256::digest(&rebuilt)) != sha256 {
        return Err("it rebuilds other bytes than the image".into());
    }
    Ok(())
}
