//! Submitting images for regulators' review (the paper's Mm): the OEM reads the supplier's
//! published repository through the pinned root, verifies the image manifest as a vehicle
//! would, and lists the image in its signed `review` role.

use super::Settings;
use crate::error::{Error, Result};
use crate::net;
use ota_client::image::{find_image, ImageInfo};
use ota_client::tuf::{open_pinned, Limits};
use ota_metadata::documents::{ImageRef, ReviewRequest, SupplierEntry};
use ota_metadata::DateTime;
use sha2::{Digest, Sha256};
use std::path::Path;

pub struct Submit<'a> {
    pub supplier: &'a str,
    pub uid: &'a str,
    pub version: &'a str,
    /// Read the supplier's tree from here instead of its pinned URL (a local copy, a mirror).
    pub from: Option<&'a str>,
    pub ca: Option<&'a Path>,
    /// The content-key file of an encrypted image (from `supplier add-image --encrypt`).
    pub content_key: Option<&'a Path>,
}

/// Submit a supplier's release for the regulators' review. The procedure: the supplier is
/// pinned and the release not submitted already → the image manifest found and verified in the
/// supplier's repository, walked from the pin as a vehicle walks it → every hardware id it
/// names delegated to the supplier → an encrypted image's content key checked against it →
/// the request, wrapped for the regulators if encrypted → recorded.
pub fn review_submit(dir: &Path, o: Submit<'_>, now: DateTime) -> Result<ReviewRequest> {
    let mut s = Settings::load(dir)?;
    let entry = s.suppliers.get(o.supplier).ok_or_else(|| {
        Error::refused(format!(
            "unknown supplier {:?}: pin it first with `oem supplier add`",
            o.supplier
        ))
    })?;
    if s.reviews.iter().any(|r| {
        r.image.supplier == o.supplier && r.image.uid == o.uid && r.image.version == o.version
    }) {
        return Err(Error::refused(format!(
            "{} {} of {} is already submitted for review",
            o.uid, o.version, o.supplier
        )));
    }
    let info = find_release(dir, entry, &o, now)?;
    let m = &info.manifest;
    if let Some(h) = m.hardware_ids.iter().find(|h| !entry.serves(h)) {
        return Err(Error::refused(format!(
            "{} {} is built for hardware id {h}, which supplier {} is not delegated (it serves {:?})",
            o.uid, o.version, o.supplier, entry.hardware_ids
        )));
    }
    let encrypted = check_content_key(dir, &o, &info)?;
    let mut req = ReviewRequest {
        image: ImageRef {
            supplier: o.supplier.into(),
            uid: m.uid.clone(),
            version: m.version.clone(),
            target: info.name.clone(),
            length: info.target.length,
            hashes: info.target.hashes.clone(),
        },
        release_counter: m.release_counter,
        hardware_ids: m.hardware_ids.clone(),
        manifest_target: ota_metadata::documents::ImageTargets::new(o.uid, o.version).manifest,
        manifest_length: info.manifest_target.length,
        manifest_hashes: info.manifest_target.hashes.clone(),
        submitted: now,
        key_wraps: None,
        compact_sha256: Some(hex::encode(Sha256::digest(m.compact_body()?.encode()))),
    };
    // An encrypted image is wrapped for the regulators now, and for everyone entitled at
    // every publish (`broadcast::plan`).
    if encrypted {
        super::broadcast::wrap_review(dir, &crate::workdir::repository_path(dir), &mut req)?;
    }
    s.reviews.push(req.clone());
    s.save(dir)?;
    Ok(req)
}

/// The release's image manifest, found and verified in the supplier's repository walked from
/// the OEM's pin (read from `--from` when given: its root is still checked against the pin).
fn find_release(
    dir: &Path,
    entry: &SupplierEntry,
    o: &Submit<'_>,
    now: DateTime,
) -> Result<ImageInfo> {
    let mut pin = entry.repository.clone();
    if let Some(from) = o.from {
        pin.url = net::location(from);
    }
    let limits = Limits::default();
    let cache = dir.join("cache").join("suppliers").join(o.supplier);
    let mut up = open_pinned(
        &pin,
        &format!("supplier {}", o.supplier),
        &cache,
        net::fetcher(o.ca, &limits)?,
        limits,
        now,
    )?;
    up.refresh()?;
    Ok(find_image(
        &mut up,
        &pin.url,
        o.uid,
        o.version,
        &dir.join("cache").join("staging"),
    )?)
}

/// An encrypted image needs its content key (`--content-key`), and a plain one none. The key
/// is checked against the manifest first, so a key for another image is never published, then
/// kept to be wrapped for every receiver not excluded. Whether the image is encrypted.
fn check_content_key(dir: &Path, o: &Submit<'_>, info: &ImageInfo) -> Result<bool> {
    let m = &info.manifest;
    match (&m.encryption, o.content_key) {
        (None, None) => Ok(false),
        (None, Some(_)) => Err(Error::refused(format!(
            "{} {} is not encrypted: drop --content-key",
            o.uid, o.version
        ))),
        (Some(_), None) => Err(Error::refused(format!(
            "{} {} is encrypted: pass --content-key FILE, the file `supplier add-image --encrypt` wrote",
            o.uid, o.version
        ))),
        (Some(_), Some(path)) => {
            let bytes = crate::fsutil::read_bounded(path, ota_crypt::content_key::MAX_FILE as u64)?;
            let ck = ota_crypt::content_key::ContentKey::parse(&bytes).map_err(|e| {
                Error::Config {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            let (_, plain_sha) = m.plaintext()?;
            if ck.uid != m.uid || ck.version != m.version || ck.image_sha256 != plain_sha {
                return Err(Error::refused(format!(
                    "{}: the content key of {} {} (plaintext sha256 {}), not of {} {} (plaintext sha256 {})",
                    path.display(),
                    ck.uid,
                    ck.version,
                    hex::encode(ck.image_sha256),
                    m.uid,
                    m.version,
                    hex::encode(plain_sha)
                )));
            }
            let target_sha = info.target.hashes.get("sha256").cloned().unwrap_or_default();
            super::broadcast::keep_content_key(dir, &target_sha, &ck)?;
            Ok(true)
        }
    }
}
