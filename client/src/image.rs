//! Fetching one image from a supplier's repository and verifying it completely: the one
//! implementation the gateway (before forwarding to an ECU) and the regulator (before scanning)
//! both use.
//!
//! The image, its JSON manifest and its compact manifest must all be listed by the same role;
//! the manifest must be signed by that role's keys, describe exactly the listed image and stay
//! within the role's hardware ids; the compact form must say the same and carry the same
//! role's signatures; and the image bytes must have the signed length and SHA-256.

use crate::tuf::{Error, Fetch, Found, Result, Updater};
use ota_metadata::documents::image_manifest::{verify_image_manifest, MAX_MANIFEST_LEN};
use ota_metadata::documents::{ImageManifest, ImageTargets};
use ota_metadata::roles::TargetFile;
use std::path::{Path, PathBuf};

/// An image's verified manifests: everything about it except its bytes. When the manifest
/// says the image is encrypted (`manifest.encryption`), `target` is the ciphertext and the
/// reader needs the content key ([`crate::decrypt`]) before anything goes to an ECU or a
/// scanner.
#[derive(Debug)]
pub struct ImageInfo {
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    /// The compact manifest, to hand to the ECU.
    pub compact_bytes: Vec<u8>,
    /// The image's target name and entry as the repository signed it.
    pub name: String,
    pub target: TargetFile,
    /// The JSON manifest's target entry.
    pub manifest_target: TargetFile,
    /// The targets role that lists it.
    pub role: String,
}

/// An image whose every byte and every claim has been checked.
#[derive(Debug)]
pub struct VerifiedImage {
    pub info: ImageInfo,
    /// The image, in the staging directory.
    pub path: PathBuf,
}

fn image_error(repository: &str, target: &str, source: ota_metadata::Error) -> Error {
    Error::BadTarget {
        repository: repository.into(),
        target: target.into(),
        reason: source.to_string(),
    }
}

/// Find `uid` `version` in the (refreshed) supplier repository behind `updater`, download and
/// verify its manifests (through `staging`), and the image itself.
pub fn fetch_image<F: Fetch>(
    updater: &mut Updater<F>,
    repository: &str,
    uid: &str,
    version: &str,
    staging: &Path,
) -> Result<VerifiedImage> {
    let info = find_image(updater, repository, uid, version, staging)?;
    // Only now, with the manifest verified, is the (large) image worth downloading.
    let path = updater.download_target(&info.name, &info.target, staging)?;
    Ok(VerifiedImage { info, path })
}

/// The image, its JSON manifest and its compact manifest, each as the repository lists it
/// (looked up in that order), all three listed by the same role: the manifests are checked
/// against that role's keys, so a manifest listed elsewhere could speak for an image it does
/// not own. Returns the image's entry (with its role and signer) and the two manifests'.
fn listed_together<F: Fetch>(
    updater: &mut Updater<F>,
    repository: &str,
    names: &ImageTargets,
) -> Result<(Found, TargetFile, TargetFile)> {
    let mut lookup = |name: &str| -> Result<Found> {
        updater
            .get_targetinfo(name)?
            .ok_or_else(|| Error::BadTarget {
                repository: repository.into(),
                target: name.into(),
                reason: "no role of the repository lists it".into(),
            })
    };
    let image = lookup(&names.image)?;
    let Found {
        info: manifest_info,
        role: manifest_role,
        ..
    } = lookup(&names.manifest)?;
    let Found {
        info: compact_info,
        role: compact_role,
        ..
    } = lookup(&names.compact)?;
    let role = &image.role;
    if &manifest_role != role || &compact_role != role {
        return Err(Error::BadTarget {
            repository: repository.into(),
            target: names.manifest.clone(),
            reason: format!(
                "image listed by {role} but its manifests by {manifest_role} and {compact_role}"
            ),
        });
    }
    Ok((image, manifest_info, compact_info))
}

/// Neither manifest is signed longer than a manifest may be ([`MAX_MANIFEST_LEN`]): both are
/// read whole into memory.
fn manifests_small(
    repository: &str,
    names: &ImageTargets,
    manifest_info: &TargetFile,
    compact_info: &TargetFile,
) -> Result<()> {
    for (name, info) in [
        (&names.manifest, manifest_info),
        (&names.compact, compact_info),
    ] {
        if info.length > MAX_MANIFEST_LEN {
            return Err(Error::BadTarget {
                repository: repository.into(),
                target: name.clone(),
                reason: format!(
                    "{} bytes, more than a manifest may be ({MAX_MANIFEST_LEN})",
                    info.length
                ),
            });
        }
    }
    Ok(())
}

/// Both manifests, downloaded through `staging` (each checked against its signed length and
/// hashes by the updater), read into memory and their staged copies removed.
fn download_manifests<F: Fetch>(
    updater: &mut Updater<F>,
    names: &ImageTargets,
    manifest_info: &TargetFile,
    compact_info: &TargetFile,
    staging: &Path,
) -> Result<(Vec<u8>, Vec<u8>)> {
    std::fs::create_dir_all(staging).map_err(Error::store(staging))?;
    let read = |p: &Path| std::fs::read(p).map_err(Error::store(p));
    let manifest_path = updater.download_target(&names.manifest, manifest_info, staging)?;
    let manifest_bytes = read(&manifest_path)?;
    let compact_path = updater.download_target(&names.compact, compact_info, staging)?;
    let compact_bytes = read(&compact_path)?;
    let _ = std::fs::remove_file(&manifest_path);
    let _ = std::fs::remove_file(&compact_path);
    Ok((manifest_bytes, compact_bytes))
}

/// Find `uid` `version` in the (refreshed) supplier repository behind `updater`, and download
/// (through `staging`) and verify its manifests; the image itself is not downloaded.
pub fn find_image<F: Fetch>(
    updater: &mut Updater<F>,
    repository: &str,
    uid: &str,
    version: &str,
    staging: &Path,
) -> Result<ImageInfo> {
    let names = ImageTargets::new(uid, version);
    let (
        Found {
            info: image,
            role,
            signer,
        },
        manifest_info,
        compact_info,
    ) = listed_together(updater, repository, &names)?;
    manifests_small(repository, &names, &manifest_info, &compact_info)?;
    let (manifest_bytes, compact_bytes) =
        download_manifests(updater, &names, &manifest_info, &compact_info, staging)?;

    let manifest = verify_image_manifest(
        &manifest_bytes,
        &signer,
        &names.image,
        &image,
        Some(&compact_bytes),
    )
    .map_err(|e| image_error(repository, &names.manifest, e))?;
    if manifest.uid != uid || manifest.version != version {
        return Err(Error::BadTarget {
            repository: repository.into(),
            target: names.manifest,
            reason: format!(
                "describes {} {}, not {uid} {version}",
                manifest.uid, manifest.version
            ),
        });
    }
    Ok(ImageInfo {
        manifest,
        manifest_bytes,
        compact_bytes,
        name: names.image,
        target: image,
        manifest_target: manifest_info,
        role,
    })
}
