//! Step 2 and step 4 of the walk: the image manifest from the supplier the OEM pinned, every
//! field checked against the assignment and the ECU; later, the image bytes.

use super::error::{fail, Check, Result};
use super::{Ecu, Installed, Master, Repositories};
use crate::image::{find_image, ImageInfo};
use crate::tuf::Fetch;
use ota_metadata::documents::image_manifest::DeltaEntry;
use ota_metadata::documents::{EcuAssignment, ImageManifest, Release, SupplierEntry};
use ota_metadata::Envelope;
use std::path::{Path, PathBuf};

/// An image whose manifests were verified and agree with the assignment and the ECU; its
/// bytes are not fetched yet.
#[derive(Debug)]
pub struct CheckedImage {
    pub info: ImageInfo,
    /// The release the manifest describes: what regulators must have attested.
    pub release: Release,
    /// The supplier repository's URL.
    pub url: String,
}

/// The OEM's pin of the supplier `a` names.
fn pinned_supplier<'m>(master: &'m Master, a: &EcuAssignment) -> Result<&'m SupplierEntry> {
    master.suppliers.get(&a.supplier).ok_or_else(|| {
        fail(
            Check::SupplierDelegation,
            &master.url,
            format!("supplier {:?} is not pinned by the OEM", a.supplier),
        )
    })
}

/// Check the assigned image's manifest in the supplier's repository (nothing large is
/// downloaded): the supplier pinned for this hardware id, the manifest signed by the role that
/// lists the image, every field equal to the assignment, the hardware id the ECU's, and the
/// release counter not below the installed one.
pub fn check_image<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    ecu: &Ecu,
    a: &EcuAssignment,
    installed: Option<&Installed>,
    staging: &Path,
) -> Result<CheckedImage> {
    let entry = pinned_supplier(master, a)?;
    let url = entry.repository.url.clone();
    check_delegation(master, entry, ecu, a)?;
    let up = repos
        .get("suppliers", &a.supplier, &entry.repository)
        .map_err(|e| fail(Check::SupplierMetadata, &url, e))?;
    let info = find_image(up, &url, &a.uid, &a.version, staging)
        .map_err(|e| fail(Check::ImageManifest, &url, e))?;
    signed_as_assigned(&url, &info, a)?;
    fits_ecu(&url, &info.manifest, ecu, installed)?;
    let envelope = Envelope::parse(
        &info.name,
        &info.manifest_bytes,
        info.manifest_bytes.len() as u64,
    )
    .map_err(|e| fail(Check::ImageManifest, &url, e))?;
    let release =
        Release::of(&a.supplier, &envelope).map_err(|e| fail(Check::ImageManifest, &url, e))?;
    Ok(CheckedImage { info, release, url })
}

/// Before the supplier's repository is read: the OEM delegates the ECU's hardware id to the
/// supplier it pinned, and the assignment is for that hardware id (an assignment for other
/// hardware is the OEM's error, whatever the supplier signed).
fn check_delegation(
    master: &Master,
    entry: &SupplierEntry,
    ecu: &Ecu,
    a: &EcuAssignment,
) -> Result<()> {
    if !entry.serves(&ecu.hardware_id) {
        return Err(fail(
            Check::SupplierDelegation,
            &master.url,
            format!(
                "supplier {} is not delegated hardware id {}",
                a.supplier, ecu.hardware_id
            ),
        ));
    }
    if a.hardware_id != ecu.hardware_id {
        return Err(fail(
            Check::HardwareId,
            &master.url,
            format!(
                "assignment is for {}, ECU {} is {}",
                a.hardware_id, ecu.serial, ecu.hardware_id
            ),
        ));
    }
    Ok(())
}

/// The supplier signed what the OEM assigned: uid, version, length (the manifest's and its
/// target's), SHA-256 and release counter each equal, checked in that order; the first
/// difference is the error.
fn signed_as_assigned(url: &str, info: &ImageInfo, a: &EcuAssignment) -> Result<()> {
    let m = &info.manifest;
    let mismatch = |field: &str, signed: String, assigned: String| {
        fail(
            Check::ImageManifest,
            url,
            format!("{field}: the supplier signed {signed}, the OEM assigned {assigned}"),
        )
    };
    if m.uid != a.uid {
        return Err(mismatch("uid", m.uid.clone(), a.uid.clone()));
    }
    if m.version != a.version {
        return Err(mismatch("version", m.version.clone(), a.version.clone()));
    }
    if m.length != a.length || info.target.length != a.length {
        return Err(mismatch(
            "length",
            m.length.to_string(),
            a.length.to_string(),
        ));
    }
    if m.hashes.get("sha256") != a.hashes.get("sha256") {
        return Err(mismatch(
            "sha256",
            format!("{:?}", m.hashes.get("sha256")),
            format!("{:?}", a.hashes.get("sha256")),
        ));
    }
    if m.release_counter != a.release_counter {
        return Err(mismatch(
            "release counter",
            m.release_counter.to_string(),
            a.release_counter.to_string(),
        ));
    }
    Ok(())
}

/// The image is for this ECU: built for its hardware id, and not a rollback (its release
/// counter not below the installed image's).
fn fits_ecu(url: &str, m: &ImageManifest, ecu: &Ecu, installed: Option<&Installed>) -> Result<()> {
    if !m.hardware_ids.contains(&ecu.hardware_id) {
        return Err(fail(
            Check::HardwareId,
            url,
            format!(
                "{} {} is built for {:?}, not {}",
                m.uid, m.version, m.hardware_ids, ecu.hardware_id
            ),
        ));
    }
    if let Some(i) = installed {
        if m.release_counter < i.release_counter {
            return Err(fail(
                Check::ReleaseCounter,
                url,
                format!(
                    "{} {} has release counter {}, below the installed {} ({} {})",
                    m.uid, m.version, m.release_counter, i.release_counter, i.uid, i.version
                ),
            ));
        }
    }
    Ok(())
}

/// Step 4: download the checked image into `staging`, bounded by its signed length and hashed
/// while it streams (resuming a broken transfer), shown to `tap` (a decryptor) as it comes.
pub fn download_image<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    a: &EcuAssignment,
    image: &CheckedImage,
    staging: &Path,
    tap: Option<&mut dyn crate::tuf::StreamTap>,
) -> Result<PathBuf> {
    let entry = pinned_supplier(master, a)?;
    let up = repos
        .get("suppliers", &a.supplier, &entry.repository)
        .map_err(|e| fail(Check::SupplierMetadata, &image.url, e))?;
    up.download_target_tapped(&image.info.name, &image.info.target, staging, tap)
        .map_err(|e| fail(Check::Image, &image.url, e))
}

/// Step 4 by delta: download the delta `d` that the checked image's (signed) manifest lists,
/// into `staging`. The delta must be listed by the role that lists the image, with exactly the
/// length and SHA-256 the manifest names; it is bounded by that length and hashed while it
/// streams, like the image. What it rebuilds is checked by the ECU against the manifest.
pub fn download_delta<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    a: &EcuAssignment,
    image: &CheckedImage,
    d: &DeltaEntry,
    staging: &Path,
) -> Result<PathBuf> {
    let entry = pinned_supplier(master, a)?;
    let up = repos
        .get("suppliers", &a.supplier, &entry.repository)
        .map_err(|e| fail(Check::SupplierMetadata, &image.url, e))?;
    let bad = |reason: String| fail(Check::Image, &image.url, format!("{}: {reason}", d.target));
    let found = up
        .get_targetinfo(&d.target)
        .map_err(|e| fail(Check::Image, &image.url, e))?
        .ok_or_else(|| bad("listed by the manifest, but by no role of the repository".into()))?;
    if found.role != image.info.role {
        return Err(bad(format!(
            "listed by {}, the image by {}",
            found.role, image.info.role
        )));
    }
    if found.info.length != d.length || found.info.hashes.get("sha256") != d.hashes.get("sha256") {
        return Err(bad("its target entry and the manifest disagree".into()));
    }
    up.download_target(&d.target, &found.info, staging)
        .map_err(|e| fail(Check::Image, &image.url, e))
}
