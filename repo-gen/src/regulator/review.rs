//! `regulator review`: pull the OEM's review queue, and for each image not yet judged fetch and
//! verify it from the supplier repository the OEM pinned (the gateway's own verified walk),
//! scan it, and attest the verdict.

use super::scan::{self, Rules};
use super::{write_attestation, Settings};
use crate::error::{Error, Result};
use crate::{fsutil, net};
use ota_client::decrypt::{self, DecryptError};
use ota_client::image::{find_image, VerifiedImage};
use ota_client::tuf::{
    init_trusted_root, open_pinned, targets_url, Limits, MetadataStore, Updater,
};
use ota_metadata::documents::image_manifest::MAX_MANIFEST_LEN;
use ota_metadata::documents::{suppliers_of, Finding, Release, Review, ReviewRequest, Verdict};
use ota_metadata::roles::sha256_of;
use ota_metadata::{DateTime, Envelope};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const RULES: &str = "rules.json";

pub struct ReviewOpts<'a> {
    /// The OEM master repository: URL or directory.
    pub master: &'a str,
    /// The OEM root to trust (first use; later runs continue the root chain from the cache).
    pub master_root: &'a Path,
    /// External scanner command, overriding the one in rules.json.
    pub scanner: Option<String>,
    pub ca: Option<&'a Path>,
    /// Read a supplier's repository from another URL or directory than the one the OEM pinned
    /// (a mirror, a local copy); its root is still checked against the OEM's pin.
    pub supplier_from: BTreeMap<String, String>,
    /// This regulator's decryption keys (issued by the OEM), for encrypted images.
    pub decryption_keys: Option<&'a Path>,
}

/// What happened to one review request.
pub struct Outcome {
    pub request: ReviewRequest,
    pub result: std::result::Result<Verdict, String>,
    pub findings: usize,
}

/// The regulator's rules: `rules.json` in its working directory (optional).
pub fn load_rules(dir: &Path) -> Result<Rules> {
    let path = dir.join(RULES);
    if !path.exists() {
        return Ok(Rules::default());
    }
    let bytes = fsutil::read_bounded(&path, 16 << 20)?;
    let rules: Rules = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    rules.validate()?;
    Ok(rules)
}

fn master_updater(
    dir: &Path,
    o: &ReviewOpts<'_>,
    now: DateTime,
) -> Result<Updater<ota_client::tuf::AnyFetcher>> {
    let limits = Limits::default();
    let cache = dir.join("cache").join("oem");
    if MetadataStore::new(&cache)
        .read("root", limits.metadata.root)
        .ok()
        .flatten()
        .is_none()
    {
        let bytes = fsutil::read_bounded(o.master_root, limits.metadata.root)?;
        std::fs::create_dir_all(&cache).map_err(Error::io(&cache))?;
        init_trusted_root(&cache, &bytes, &limits)?;
    }
    let url = net::location(o.master);
    let fetcher = net::fetcher(o.ca, &limits)?;
    Ok(Updater::new(
        &cache,
        &url,
        &targets_url(&url),
        fetcher,
        limits,
        now,
    )?)
}

/// Review every pending request. Each image is judged on its own: one that cannot be fetched
/// or verified gets an error in its outcome and no attestation; the others proceed.
pub fn review(dir: &Path, o: ReviewOpts<'_>, now: DateTime) -> Result<Vec<Outcome>> {
    let mut s = Settings::load(dir)?;
    let mut rules = load_rules(dir)?;
    if o.scanner.is_some() {
        rules.scanner = o.scanner.clone();
    }
    let mut master = master_updater(dir, &o, now)?;
    master.refresh()?;
    let queue =
        master.load_extra_role::<Review>("review", Review::TYPE, |r| r.expires, |r| r.version)?;
    let oem_targets = master
        .trusted()
        .targets("targets")
        .ok_or_else(|| Error::refused("OEM targets not loaded"))?;
    let suppliers = suppliers_of(&oem_targets.signed)?;
    let staging = dir.join("cache").join("staging");
    // Encrypted images are decrypted here to be scanned: the regulator's user's alone.
    crate::fsutil::private_dir(&staging)?;

    let mut outcomes = Vec::new();
    for req in &queue.signed.requests {
        let judged = judge(req, &suppliers, &rules, &staging, dir, &o, now, &s, &master);
        let outcome = match judged {
            Ok(None) => continue, // judged already; a revocation is never overturned
            Ok(Some((path, release, verdict, findings))) => {
                let n = findings.len();
                write_attestation(dir, &mut s, release, verdict, findings, None, now)?;
                let _ = std::fs::remove_file(path);
                Outcome {
                    request: req.clone(),
                    result: Ok(verdict),
                    findings: n,
                }
            }
            Err(e) => Outcome {
                request: req.clone(),
                result: Err(e.to_string()),
                findings: 0,
            },
        };
        outcomes.push(outcome);
    }
    s.save(dir)?;
    Ok(outcomes)
}

/// A judged release: the staged image, the release, the verdict and the findings.
type Judged = (PathBuf, Release, Verdict, Vec<Finding>);

/// Fetch, verify and scan the release `req` names; `None` if this regulator judged that
/// release already.
///
/// The procedure: the supplier is one the OEM pinned → its repository walked from the OEM's
/// pin → the release's manifest, which names the release (judged already: done) → the image,
/// which must be the one the OEM submitted → scanned (decrypted first, if encrypted) → bytes
/// this regulator vetoed before stay vetoed → the verdict.
#[allow(clippy::too_many_arguments)]
fn judge(
    req: &ReviewRequest,
    suppliers: &std::collections::BTreeMap<String, ota_metadata::documents::SupplierEntry>,
    rules: &Rules,
    staging: &Path,
    dir: &Path,
    o: &ReviewOpts<'_>,
    now: DateTime,
    s: &Settings,
    master: &Updater<ota_client::tuf::AnyFetcher>,
) -> Result<Option<Judged>> {
    let img = &req.image;
    let entry = suppliers.get(&img.supplier).ok_or_else(|| {
        Error::refused(format!(
            "review of {} {}: supplier {:?} is not pinned by the OEM",
            img.uid, img.version, img.supplier
        ))
    })?;
    let (mut up, url) = open_supplier(entry, &img.supplier, dir, o, now)?;
    // The manifest first: it names the release, which may have been judged already.
    let info = find_image(&mut up, &url, &img.uid, &img.version, staging)?;
    let manifest_path = Path::new(&info.name);
    let env = Envelope::parse(&info.name, &info.manifest_bytes, MAX_MANIFEST_LEN)
        .map_err(Error::meta(manifest_path))?;
    let release = Release::of(&img.supplier, &env).map_err(Error::meta(manifest_path))?;
    if s.attestations.contains_key(&release.manifest_sha256) {
        return Ok(None);
    }
    let path = up.download_target(&info.name, &info.target, staging)?;
    let v = VerifiedImage { info, path };
    check_as_submitted(req, entry, &v)?;
    // An encrypted image is scanned decrypted; one that cannot be decrypted is rejected.
    let (path, mut findings) = if v.info.manifest.encryption.is_some() {
        scan_encrypted(req, rules, o, master, v)?
    } else {
        let sha = hex::encode(sha256_of(&img.hashes, &img.target)?);
        let findings =
            scan::scan(rules, &v.path, &img.uid, &img.version, &sha).inspect_err(|_| {
                let _ = std::fs::remove_file(&v.path);
            })?;
        (v.path, findings)
    };
    findings.extend(earlier_veto(s, &release)?);
    let verdict = if findings.is_empty() {
        Verdict::Approved
    } else {
        Verdict::Rejected
    };
    Ok(Some((path, release, verdict, findings)))
}

/// The supplier's repository, walked from the OEM's pin of it (read from `--supplier-from`
/// when given: its root is still checked against the pin), refreshed; and its URL.
fn open_supplier(
    entry: &ota_metadata::documents::SupplierEntry,
    supplier: &str,
    dir: &Path,
    o: &ReviewOpts<'_>,
    now: DateTime,
) -> Result<(Updater<ota_client::tuf::AnyFetcher>, String)> {
    let limits = Limits::default();
    let cache = dir.join("cache").join("suppliers").join(supplier);
    let mut pin = entry.repository.clone();
    if let Some(from) = o.supplier_from.get(supplier) {
        pin.url = net::location(from);
    }
    let mut up = open_pinned(
        &pin,
        &format!("supplier {supplier}"),
        &cache,
        net::fetcher(o.ca, &limits)?,
        limits,
        now,
    )?;
    up.refresh()?;
    Ok((up, pin.url))
}

/// The supplier's signed manifest must say what the OEM asked to have reviewed: the same image
/// (length and hash), release counter and hardware ids, and hardware ids the supplier is
/// delegated. Otherwise the image is removed and the request refused.
fn check_as_submitted(
    req: &ReviewRequest,
    entry: &ota_metadata::documents::SupplierEntry,
    v: &VerifiedImage,
) -> Result<()> {
    let img = &req.image;
    let m = &v.info.manifest;
    if v.info.target.length != img.length
        || v.info.target.hashes.get("sha256") != img.hashes.get("sha256")
    {
        let _ = std::fs::remove_file(&v.path);
        return Err(Error::refused(format!(
            "{} {} of {}: the supplier's image ({} bytes, sha256 {:?}) is not the one the OEM submitted ({} bytes, sha256 {:?})",
            img.uid, img.version, img.supplier, v.info.target.length, v.info.target.hashes.get("sha256"), img.length, img.hashes.get("sha256")
        )));
    }
    if m.release_counter != req.release_counter || m.hardware_ids != req.hardware_ids {
        let _ = std::fs::remove_file(&v.path);
        return Err(Error::refused(format!(
            "{} {}: manifest release counter or hardware ids differ from the review request",
            img.uid, img.version
        )));
    }
    if let Some(h) = m.hardware_ids.iter().find(|h| !entry.serves(h)) {
        let _ = std::fs::remove_file(&v.path);
        return Err(Error::refused(format!(
            "{} {}: supplier {} is not delegated hardware id {h}",
            img.uid, img.version, img.supplier
        )));
    }
    Ok(())
}

/// An encrypted image, decrypted with this regulator's keys and scanned: the decrypted file
/// and the findings. An image that cannot be decrypted is a finding (rejected); keys this
/// regulator cannot read are its own problem, not the image's (refused, no verdict).
fn scan_encrypted(
    req: &ReviewRequest,
    rules: &Rules,
    o: &ReviewOpts<'_>,
    master: &Updater<ota_client::tuf::AnyFetcher>,
    v: VerifiedImage,
) -> Result<(PathBuf, Vec<Finding>)> {
    let img = &req.image;
    let m = &v.info.manifest;
    let keys_path = o.decryption_keys.ok_or_else(|| {
        let _ = std::fs::remove_file(&v.path);
        Error::refused(format!(
            "{} {} is encrypted: pass --decryption-keys FILE (issued by the OEM: `oem regulator decryption-keys`)",
            img.uid, img.version
        ))
    })?;
    let plain = v.path.with_extension("plain");
    let decrypted = (|| -> std::result::Result<(), DecryptError> {
        let keys = decrypt::load_keys(keys_path)?;
        let wraps = req.key_wraps.as_ref().ok_or(DecryptError::NoWraps)?;
        let key = decrypt::content_key(master, wraps, &keys, m)?;
        decrypt::decrypt_file(&key, &v.path, &plain, m)
    })();
    let _ = std::fs::remove_file(&v.path);
    let (_, plain_sha) = m.plaintext()?;
    match decrypted {
        Err(e @ (DecryptError::Keys { .. } | DecryptError::KeysFile { .. })) => {
            Err(Error::refused(e.to_string()))
        }
        Err(e) => {
            let finding = Finding {
                rule: super::attest::UNDECRYPTABLE.into(),
                detail: format!("the encrypted image could not be decrypted for scanning: {e}"),
                advisory: None,
            };
            Ok((plain, vec![finding]))
        }
        Ok(()) => {
            let sha = hex::encode(plain_sha);
            let findings =
                scan::scan(rules, &plain, &img.uid, &img.version, &sha).inspect_err(|_| {
                    let _ = std::fs::remove_file(&plain);
                })?;
            Ok((plain, findings))
        }
    }
}

/// A new release of bytes this regulator vetoed (revoked, or rejected) stays refused: the veto
/// follows the bytes, whatever label they come under. The finding saying so, if they were.
fn earlier_veto(s: &Settings, release: &Release) -> Result<Option<Finding>> {
    let vetoes = s.vetoes();
    let earlier = release
        .content_sha256s()?
        .iter()
        .find_map(|c| vetoes.get(&c.to_ascii_lowercase()).copied());
    Ok(earlier.map(|rec| {
        let (rule, what) = match rec.verdict {
            Verdict::Revoked => ("revoked", "revoked"),
            _ => ("rejected-before", "rejected"),
        };
        Finding {
            rule: rule.into(),
            detail: format!(
                "these bytes were {what} as {} {}: {}",
                rec.release.uid,
                rec.release.version,
                rec.reason
                    .as_deref()
                    .unwrap_or("see that attestation's findings")
            ),
            advisory: None,
        }
    }))
}
