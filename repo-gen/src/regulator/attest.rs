use super::{attestation_target, AttestationRecord, Settings};
use crate::error::{Error, Result};
use crate::publish::read_root;
use crate::root_build::signing_keys;
use crate::supplier::store_target;
use crate::workdir;
use ota_metadata::documents::{Attestation, Finding, ImageRef, Verdict};
use ota_metadata::roles::{sha256_of, SPEC_VERSION};
use ota_metadata::{sign_document, DateTime};
use std::collections::BTreeMap;
use std::path::Path;

/// Sign and store an attestation, and record it in `s` (the caller saves `s`).
pub fn write_attestation(
    dir: &Path,
    s: &mut Settings,
    image: ImageRef,
    verdict: Verdict,
    findings: Vec<Finding>,
    reason: Option<String>,
    now: DateTime,
) -> Result<AttestationRecord> {
    let repo = workdir::repository_path(dir);
    let root = read_root(&repo)?;
    let keys = signing_keys(&root, "targets", &s.roles["targets"])?;
    let sha = hex::encode(sha256_of(&image.hashes, "image")?);
    let doc = Attestation {
        type_: Attestation::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        regulator: s.name.clone(),
        image: image.clone(),
        verdict,
        findings,
        issued: now,
        reason,
        extra: BTreeMap::new(),
    };
    let bytes = sign_document(&doc, &keys.iter().collect::<Vec<_>>())?;
    let file = store_target(&repo, &attestation_target(&sha), &bytes)?;
    let rec = AttestationRecord {
        image,
        verdict,
        file,
    };
    s.attestations.insert(sha, rec.clone());
    Ok(rec)
}

/// Revoke the approval of the image with hash `sha256`: a signed revocation replaces it.
pub fn revoke(dir: &Path, sha256: &str, reason: &str, now: DateTime) -> Result<AttestationRecord> {
    let mut s = Settings::load(dir)?;
    let sha = sha256.to_ascii_lowercase();
    let prev = s.attestations.get(&sha).cloned().ok_or_else(|| {
        Error::refused(format!(
            "no attestation for image {sha}: only reviewed images can be revoked"
        ))
    })?;
    if prev.verdict == Verdict::Revoked {
        return Err(Error::refused(format!("image {sha} is already revoked")));
    }
    if reason.trim().is_empty() {
        return Err(Error::refused("give a --reason for the revocation"));
    }
    let finding = Finding {
        rule: "revoked".into(),
        detail: reason.into(),
        advisory: None,
    };
    let rec = write_attestation(
        dir,
        &mut s,
        prev.image,
        Verdict::Revoked,
        vec![finding],
        Some(reason.into()),
        now,
    )?;
    s.save(dir)?;
    Ok(rec)
}
