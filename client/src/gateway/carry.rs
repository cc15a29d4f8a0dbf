//! How an image reaches its ECU (issue 26): as a delta when the ECU runs a release the image's
//! manifest lists a delta from, else whole; on the bus a whole image goes packed when that is
//! smaller (the CAN forwarder decides). A delta is only transport: the ECU rebuilds the image
//! and checks it against the compact manifest before it can be activated, so anything wrong
//! with a delta (missing, refused by the ECU, a forwarder that cannot carry one) only costs
//! the full download it would have saved.

use super::{EcuError, Gateway, Planned};
use crate::fault;
use crate::forward::{Encoding, ForwardError, Forwarder, Payload, Sent};
use crate::staging::Staging;
use crate::walk::{self, download_delta, Repositories};
use ota_ecu::flasher::{self, FlashError};
use ota_ecu::uds::Nrc;
use ota_metadata::documents::image_manifest::DeltaEntry;
use std::path::PathBuf;

/// What phase one staged for one ECU: the image, or a delta to it.
pub(super) struct Staged {
    pub path: PathBuf,
    /// The delta's entry in the manifest, when `path` is a delta.
    pub delta: Option<DeltaEntry>,
}

/// How an update's image went to its ECU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    /// The release the delta started from, when a delta was downloaded.
    pub delta_from: Option<String>,
    /// Bytes downloaded: the delta's, or the image's.
    pub downloaded: u64,
    /// The image's length.
    pub image: u64,
    /// What went over the bus.
    pub sent: Sent,
}

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let saved =
            |bytes: u64| 100u64.saturating_sub(bytes.saturating_mul(100) / self.image.max(1));
        match (&self.delta_from, self.sent.encoding) {
            (Some(from), _) => write!(
                f,
                "by delta from {from}: {} bytes downloaded and sent for a {}-byte image ({}% saved)",
                self.downloaded,
                self.image,
                saved(self.sent.bytes)
            ),
            (None, Encoding::Packed) => write!(
                f,
                "compressed on the bus: {} of {} bytes ({}% saved)",
                self.sent.bytes,
                self.image,
                saved(self.sent.bytes)
            ),
            (None, _) => write!(f, "whole: {} bytes", self.sent.bytes),
        }
    }
}

/// Whether `e` refuses what the delta rebuilt rather than the release: a refusal of a data
/// block or of the transfer exit (a malformed delta, another base, or bytes that are not the
/// image: too many, too few, another hash). The gateway cannot check what a delta rebuilds
/// (it does not hold the base), so the whole image, which it verified itself, goes instead,
/// in this run; a refusal of the download request (signature, hardware id, counter, approval)
/// would refuse the whole image as well, and stands.
fn refused_the_delta(e: &ForwardError) -> bool {
    match e {
        ForwardError::Flash {
            source: FlashError::Refused { step, .. },
            ..
        } => *step != flasher::REQUEST_STEP,
        _ => e.nrc() == Some(Nrc::TransferDataSuspended),
    }
}

/// The delta `p`'s image lists from what its ECU runs (as this gateway installed it), if any.
pub(super) fn delta_for(p: &Planned<'_>, running: Option<&str>) -> Option<DeltaEntry> {
    p.image.info.manifest.delta_from(running?).cloned()
}

impl Gateway {
    /// Phase one for one ECU: its delta when there is one to take and the forwarder can carry
    /// it (staged, or downloaded and staged), else its image.
    pub(super) fn stage_payload<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        p: &Planned<'_>,
        staging: &Staging,
        carries_deltas: bool,
    ) -> std::result::Result<Staged, EcuError> {
        if let Some(d) = p.delta.as_ref().filter(|_| carries_deltas) {
            if let Some(path) = self.stage_delta(repos, m, p, d, staging) {
                return Ok(Staged {
                    path,
                    delta: Some(d.clone()),
                });
            }
        }
        Ok(Staged {
            path: self.stage_image(repos, m, p, staging)?,
            delta: None,
        })
    }

    /// The delta `d`, staged by its SHA-256: `None` (the image is fetched instead) when it
    /// cannot be had, with a warning naming why.
    fn stage_delta<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        p: &Planned<'_>,
        d: &DeltaEntry,
        staging: &Staging,
    ) -> Option<PathBuf> {
        let sha = d.hashes.get("sha256")?;
        if let Ok(Some(path)) = staging.staged(sha, d.length) {
            return Some(path);
        }
        let got =
            download_delta(repos, m, &p.a, &p.image, d, &staging.incoming()).and_then(|got| {
                staging.keep(&got, sha).map_err(|e| walk::WalkError {
                    check: walk::Check::Image,
                    repository: p.image.url.clone(),
                    reason: e.to_string(),
                })
            });
        match got {
            Ok(path) => Some(path),
            Err(e) => {
                crate::out::err_line(format_args!(
                    "ota-gateway: warning: ECU {}: the delta from {} could not be had ({e}); downloading the whole image",
                    p.ecu.serial, d.from_version
                ));
                None
            }
        }
    }

    /// Phase two for one ECU: its instruction, then what phase one staged. A delta that the
    /// forwarder cannot carry or the ECU cannot apply (it runs another image than this gateway
    /// recorded) is replaced by the image, downloaded now.
    pub(super) fn deliver<F: crate::tuf::Fetch>(
        &self,
        repos: &mut Repositories<'_, F>,
        m: &walk::Master,
        fw: &mut dyn Forwarder,
        p: &Planned<'_>,
        staged: &Staged,
        staging: &Staging,
    ) -> std::result::Result<Carried, EcuError> {
        let instruction = p.instruction();
        let manifest = &p.image.info.compact_bytes;
        if let Some(d) = &staged.delta {
            if !instruction.is_empty() {
                fw.send_instruction(p.ecu, &instruction)?;
            }
            match fw.stage_payload(p.ecu, manifest, &p.bundle, Payload::Delta(&staged.path)) {
                Ok(Some(sent)) => {
                    return Ok(Carried {
                        delta_from: Some(d.from_version.clone()),
                        downloaded: d.length,
                        image: p.length,
                        sent,
                    })
                }
                Ok(None) => {}
                Err(e) if refused_the_delta(&e) => {
                    crate::out::err_line(format_args!(
                        "ota-gateway: warning: ECU {} refused the delta from {} ({e}); sending the whole image",
                        p.ecu.serial, d.from_version
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            fault::point(|| format!("ECU {}: falling back to the whole image", p.ecu.serial));
        }
        let path = match &staged.delta {
            Some(_) => self.stage_image(repos, m, p, staging)?,
            None => staged.path.clone(),
        };
        if !instruction.is_empty() {
            fw.send_instruction(p.ecu, &instruction)?;
        }
        let sent = fw
            .stage_payload(p.ecu, manifest, &p.bundle, Payload::Image(&path))?
            .unwrap_or(Sent {
                encoding: Encoding::Plain,
                bytes: p.length,
            });
        Ok(Carried {
            delta_from: None,
            downloaded: p.length,
            image: p.length,
            sent,
        })
    }
}
