//! `add-image --delta-from`: deltas that rebuild a new image from earlier releases of its uid
//! (`ota_ecu::delta`). Each is built from the stored images, applied again here exactly as an
//! ECU will apply it (a delta that would not rebuild the image is never published), and stored
//! as a target of its own that the manifest lists.

use super::add_image::{store_target_tracked, NewFiles};
use super::{DeltaRecord, FileInfo, Settings};
use crate::error::{Error, Result};
use ota_ecu::delta::{make, Encoding};
use ota_metadata::documents::ImageTargets;
use std::path::Path;

/// Largest image deltas are built for: diffing holds both images and a suffix array of the
/// old one in memory (about 10 bytes per byte), and ECUs that take deltas are small.
pub const MAX_DELTA_IMAGE: u64 = 64 << 20;

fn refused(from: &str, reason: impl Into<String>) -> Error {
    Error::Delta {
        from: from.into(),
        reason: reason.into(),
    }
}

/// A stored target's bytes, checked against its record (a damaged store is refused).
fn read_stored(repo: &Path, name: &str, info: &FileInfo, from: &str) -> Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    if info.length > MAX_DELTA_IMAGE {
        return Err(refused(
            from,
            format!(
                "{name} is {} bytes; deltas are built for images of at most {MAX_DELTA_IMAGE}",
                info.length
            ),
        ));
    }
    let path = repo.join("targets").join(format!("{}.{name}", info.sha256));
    let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
    if hex::encode(Sha256::digest(&bytes)) != info.sha256 {
        return Err(refused(
            from,
            format!("{} does not hold what was published", path.display()),
        ));
    }
    Ok(bytes)
}

/// Build, check and store the deltas to `uid` `version` (stored as `image`) from each of
/// `from`. A delta no smaller than the image is not published (a warning says so).
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    repo: &Path,
    s: &Settings,
    uid: &str,
    version: &str,
    image: &FileInfo,
    from: &[String],
    added: &mut NewFiles,
    warnings: &mut Vec<String>,
) -> Result<Vec<DeltaRecord>> {
    let mut out: Vec<DeltaRecord> = Vec::new();
    if from.is_empty() {
        return Ok(out);
    }
    let new = read_stored(repo, &ImageTargets::new(uid, version).image, image, version)?;
    for f in from {
        ota_metadata::names::check_image_version(f)?;
        if f == version || out.iter().any(|d| &d.from_version == f) {
            return Err(refused(f, "given twice, or the new version itself"));
        }
        let base = s
            .images
            .iter()
            .find(|i| i.uid == uid && &i.version == f)
            .ok_or_else(|| refused(f, format!("no release {f} of {uid} in this repository")))?;
        if base.encryption.is_some() {
            return Err(refused(
                f,
                "that release is encrypted: a delta would carry its plaintext",
            ));
        }
        let old = read_stored(repo, &ImageTargets::new(uid, f).image, &base.image, f)?;
        let delta = make::delta(&old, &new);
        // Applied as the ECU will: what it rebuilds must be the image, byte for byte.
        let rebuilt =
            make::apply(Encoding::Delta, &old, &delta, new.len() as u64, 4092).map_err(|e| {
                refused(
                    f,
                    format!("the delta does not apply ({e:?}): please report"),
                )
            })?;
        if rebuilt != new {
            return Err(refused(
                f,
                "the delta rebuilds other bytes than the image: please report",
            ));
        }
        if delta.len() as u64 >= image.length {
            warnings.push(format!(
                "the delta from {f} ({} bytes) is not smaller than the image ({} bytes): not published",
                delta.len(),
                image.length
            ));
            continue;
        }
        let name = ImageTargets::delta(uid, version, f);
        let file = store_target_tracked(repo, &name, &delta, Some(added))?;
        out.push(DeltaRecord {
            from_version: f.clone(),
            from_sha256: base.image.sha256.clone(),
            file,
        });
    }
    Ok(out)
}
