//! Submitting images for regulators' review (the paper's Mm): the OEM reads the supplier's
//! published repository through the pinned root, verifies the image manifest as a vehicle
//! would, and lists the image in its signed `review` role.

use super::Settings;
use crate::error::{Error, Result};
use crate::net;
use ota_client::image::find_image;
use ota_client::tuf::{open_pinned, Limits};
use ota_metadata::documents::{ImageRef, ReviewRequest};
use ota_metadata::DateTime;
use std::path::Path;

pub struct Submit<'a> {
    pub supplier: &'a str,
    pub uid: &'a str,
    pub version: &'a str,
    /// Read the supplier's tree from here instead of its pinned URL (a local copy, a mirror).
    pub from: Option<&'a str>,
    pub ca: Option<&'a Path>,
}

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
    let info = find_image(
        &mut up,
        &pin.url,
        o.uid,
        o.version,
        &dir.join("cache").join("staging"),
    )?;
    let m = &info.manifest;
    if let Some(h) = m.hardware_ids.iter().find(|h| !entry.serves(h)) {
        return Err(Error::refused(format!(
            "{} {} is built for hardware id {h}, which supplier {} is not delegated (it serves {:?})",
            o.uid, o.version, o.supplier, entry.hardware_ids
        )));
    }
    let req = ReviewRequest {
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
    };
    s.reviews.push(req.clone());
    s.save(dir)?;
    Ok(req)
}
