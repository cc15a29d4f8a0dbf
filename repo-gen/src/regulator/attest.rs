use super::{AttestationRecord, Settings};
use crate::error::{Error, Result};
use crate::publish::read_root;
use crate::root_build::signing_keys;
use crate::supplier::store_target;
use crate::workdir;
use ota_metadata::documents::{veto_target, Attestation, Finding, Release, Verdict};
use ota_metadata::roles::SPEC_VERSION;
use ota_metadata::{sign_document, DateTime};
use std::collections::BTreeMap;
use std::path::Path;

/// Sign and store the attestation of `release`, and record it in `s` (the caller saves `s`).
pub fn write_attestation(
    dir: &Path,
    s: &mut Settings,
    release: Release,
    verdict: Verdict,
    findings: Vec<Finding>,
    reason: Option<String>,
    now: DateTime,
) -> Result<AttestationRecord> {
    let repo = workdir::repository_path(dir);
    let root = read_root(&repo)?;
    let keys = signing_keys(&root, "targets", &s.roles["targets"])?;
    let mut extra = BTreeMap::new();
    if verdict == Verdict::Approved {
        extra.insert(
            ota_metadata::documents::attestation::COMPACT_APPROVAL_FIELD.to_string(),
            compact_approval(&release, &keys)?,
        );
    }
    let doc = Attestation {
        type_: Attestation::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        regulator: s.name.clone(),
        release: release.clone(),
        verdict,
        findings,
        issued: now,
        reason: reason.clone(),
        extra,
    };
    let vetoes = vetoed_bytes(&release, verdict, &doc.findings)?;
    let bytes = sign_document(&doc, &keys.iter().collect::<Vec<_>>())?;
    let file = store_target(&repo, &release.attestation_target(), &bytes)?;
    for sha in &vetoes {
        store_target(&repo, &veto_target(sha), &bytes)?;
    }
    let rec = AttestationRecord {
        release,
        verdict,
        reason,
        file,
        vetoes,
    };
    s.attestations
        .insert(rec.release.manifest_sha256.clone(), rec.clone());
    Ok(rec)
}

/// The bytes a verdict on `release` vetoes: none for an approval; for a rejection or a
/// revocation, the image's SHA-256 and, for an encrypted image, its plaintext's, unless the
/// regulator could not decrypt it (then it never saw the plaintext, and vetoing the hash the
/// supplier merely claims would let a supplier veto someone else's image).
fn vetoed_bytes(release: &Release, verdict: Verdict, findings: &[Finding]) -> Result<Vec<String>> {
    let undecryptable = findings.iter().any(|f| f.rule == UNDECRYPTABLE);
    Ok(match verdict {
        Verdict::Approved => Vec::new(),
        Verdict::Rejected if undecryptable => vec![release.image_sha256()?],
        _ => release.content_sha256s()?,
    })
}

/// The finding of an encrypted image the regulator could not decrypt.
pub const UNDECRYPTABLE: &str = "undecryptable";

/// The compact approval of `release` for full-verification ECUs: each key's signature over
/// `ota_ecu::attestation::message` of the release's compact manifest body (rebuilt from the
/// release's fields exactly as the supplier built it, with the plaintext's length and hash
/// for an encrypted image).
fn compact_approval(
    release: &Release,
    keys: &[ota_metadata::SigningKey],
) -> Result<serde_json::Value> {
    // The ECU verifies what it receives, the plaintext of an encrypted image: the approval
    // is over the compact body it rebuilds, with the plaintext's length and hash.
    let (length, sha) = release
        .received()
        .map_err(|e| Error::refused(format!("the release: {e}")))?;
    let m = ota_metadata::documents::ImageManifest::new(
        &release.supplier,
        &release.uid,
        &release.version,
        release.release_counter,
        release.hardware_ids.clone(),
        length,
        sha,
    )?;
    let msg = ota_ecu::attestation::message(&m.compact_body()?.encode());
    let mut out = Vec::new();
    for k in keys {
        out.push(ota_metadata::documents::attestation::CompactApproval {
            keyid: k.key_id().0.clone(),
            sig: hex::encode(k.sign(&msg)?),
        });
    }
    serde_json::to_value(out).map_err(|e| Error::refused(e.to_string()))
}

/// Revoke `sha256`: the hash of an image (every release of those bytes is revoked) or of one
/// release's manifest (that release). A signed revocation replaces each approval; returns
/// the revocations written.
pub fn revoke(
    dir: &Path,
    sha256: &str,
    reason: &str,
    now: DateTime,
) -> Result<Vec<AttestationRecord>> {
    let mut s = Settings::load(dir)?;
    let sha = sha256.to_ascii_lowercase();
    if reason.trim().is_empty() {
        return Err(Error::refused("give a --reason for the revocation"));
    }
    let matching: Vec<AttestationRecord> = s
        .attestations
        .values()
        .filter(|r| {
            r.release.manifest_sha256 == sha
                || r.release
                    .hashes
                    .get("sha256")
                    .map(|h| h.to_ascii_lowercase())
                    == Some(sha.clone())
        })
        .cloned()
        .collect();
    if matching.is_empty() {
        return Err(Error::refused(format!(
            "no attestation for image or release {sha}: only reviewed images can be revoked"
        )));
    }
    let pending: Vec<AttestationRecord> = matching
        .into_iter()
        .filter(|r| r.verdict != Verdict::Revoked)
        .collect();
    if pending.is_empty() {
        return Err(Error::refused(format!("{sha} is already revoked")));
    }
    let mut out = Vec::new();
    for prev in pending {
        let finding = Finding {
            rule: "revoked".into(),
            detail: reason.into(),
            advisory: None,
        };
        out.push(write_attestation(
            dir,
            &mut s,
            prev.release,
            Verdict::Revoked,
            vec![finding],
            Some(reason.into()),
            now,
        )?);
    }
    s.save(dir)?;
    Ok(out)
}
