//! Step 3 of the walk: what the OEM's authorized regulators say about one release.
//!
//! Fail closed: every authorized regulator's repository must be reached and verified fresh in
//! this run (its signed, unexpired listing is what proves it has not revoked the release), any
//! revocation wins, and approvals count by distinct regulator key material.

use super::error::{fail, Check, Result};
use super::{Installed, Master, Repositories};
use crate::tuf::{Fetch, Updater};
use ota_metadata::documents::{Attestation, Release, Verdict};
use ota_metadata::Envelope;

/// Bound on one attestation file.
const MAX_ATTESTATION: u64 = 1 << 20;

/// What one regulator says about a release.
enum Word {
    /// With the compact approval signatures it carries.
    Approved(Vec<ota_metadata::documents::attestation::CompactApproval>),
    Revoked(String),
    /// No attestation, a rejection, or an attestation about another release.
    NotApproved(String),
}

/// A regulator revoked a release that is installed: a recall.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    pub regulator: String,
    pub reason: String,
}

/// What every authorized regulator says about one release.
struct Asked {
    /// By regulator name, for those reached and verified fresh.
    words: Vec<(String, Word)>,
    /// Those that could not be (name, URL and why).
    unreachable: Vec<String>,
}

impl Asked {
    /// The first revocation: (regulator, reason).
    fn revocation(&self) -> Option<(&str, &str)> {
        self.words.iter().find_map(|(n, w)| match w {
            Word::Revoked(r) => Some((n.as_str(), r.as_str())),
            _ => None,
        })
    }

    /// Refuse unless every regulator answered: without a fresh signed listing from each, a
    /// revocation cannot be ruled out (an attacker may be blocking the one that revoked).
    fn all_reached(&self, master: &Master) -> Result<()> {
        if self.unreachable.is_empty() {
            return Ok(());
        }
        Err(fail(
            Check::RegulatorUnreachable,
            &master.url,
            format!(
                "no fresh, verified state of every authorized regulator, so a revocation cannot be ruled out: {}",
                self.unreachable.join("; ")
            ),
        ))
    }
}

/// Ask every authorized regulator about `release`.
fn ask_all<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    release: &Release,
) -> Result<Asked> {
    if master.regulators.regulators.is_empty() {
        return Err(fail(
            Check::NotApproved,
            &master.url,
            "the OEM authorizes no regulator",
        ));
    }
    let target = release.attestation_target();
    let mut asked = Asked {
        words: Vec::new(),
        unreachable: Vec::new(),
    };
    for (name, pin) in &master.regulators.regulators {
        let answer = repos
            .get("regulators", name, pin)
            .and_then(|up| attestation_of(up, &target, &pin.url));
        match answer {
            // A listed attestation that does not verify is as bad as no fresh state.
            Err(e) => asked
                .unreachable
                .push(format!("regulator {name} ({}): {e}", pin.url)),
            Ok(att) => asked
                .words
                .push((name.clone(), word_of(release, name, att))),
        }
    }
    Ok(asked)
}

/// The verdict of one regulator's attestation (or its absence) on `release`.
fn word_of(release: &Release, name: &str, att: Option<Attestation>) -> Word {
    let Some(att) = att else {
        return Word::NotApproved(format!("{name}: no attestation"));
    };
    if let Err(e) = att.check_release(release) {
        return Word::NotApproved(format!("{name}: {e}"));
    }
    match att.verdict {
        Verdict::Approved => Word::Approved(att.compact_approval()),
        Verdict::Rejected => Word::NotApproved(format!(
            "{name}: rejected ({} finding(s))",
            att.findings.len()
        )),
        Verdict::Revoked => Word::Revoked(att.reason.unwrap_or_default()),
    }
}

/// Step 3: every authorized regulator reached and fresh, none revoking `release`, and a
/// threshold of distinct regulators approving it. Returns the approving regulators.
pub fn check_attestations<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    release: &Release,
) -> Result<Vec<String>> {
    check_attestations_bundle(repos, master, release).map(|(names, _)| names)
}

/// [`check_attestations`], also returning the compact attestation bundle for
/// full-verification ECUs (`ota_ecu::attestation`): the compact approval signatures of the
/// approving regulators, at most four; empty when none carries one. The ECU checks them
/// against the regulator keys of its own trust document.
pub fn check_attestations_bundle<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    release: &Release,
) -> Result<(Vec<String>, Vec<u8>)> {
    let asked = ask_all(repos, master, release)?;
    if let Some((name, reason)) = asked.revocation() {
        return Err(fail(
            Check::Revoked,
            &master.regulators.regulators[name].url,
            format!(
                "regulator {name} revoked {} {} of {}: {reason}",
                release.uid, release.version, release.supplier
            ),
        ));
    }
    asked.all_reached(master)?;
    let mut approved = Vec::new();
    let mut problems = Vec::new();
    let mut compact: Vec<([u8; 32], Vec<u8>)> = Vec::new();
    for (name, w) in asked.words {
        match w {
            Word::Approved(sigs) => {
                approved.push(name);
                for a in sigs {
                    let keyid = hex::decode(&a.keyid)
                        .ok()
                        .and_then(|v| <[u8; 32]>::try_from(v).ok());
                    if let (Some(keyid), Ok(sig)) = (keyid, hex::decode(&a.sig)) {
                        if compact.len() < ota_ecu::compact_manifest::MAX_SIGNATURES
                            && !compact.iter().any(|(k, _)| *k == keyid)
                        {
                            compact.push((keyid, sig));
                        }
                    }
                }
            }
            Word::NotApproved(p) | Word::Revoked(p) => problems.push(p),
        }
    }
    let distinct = master.regulators.distinct(&approved);
    let threshold = master.regulators.threshold.max(1);
    if (distinct as u64) < u64::from(threshold) {
        if distinct < approved.len() {
            problems.push(format!(
                "{} share root keys and count as {distinct}",
                approved.join(", ")
            ));
        }
        return Err(fail(
            Check::NotApproved,
            &master.url,
            format!(
                "{distinct} of {threshold} required distinct regulator approvals for {} {} ({})",
                release.uid,
                release.version,
                problems.join("; ")
            ),
        ));
    }
    let bundle = if compact.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<([u8; 32], &[u8])> =
            compact.iter().map(|(k, s)| (*k, s.as_slice())).collect();
        ota_ecu::attestation::assemble(&refs)
    };
    Ok((approved, bundle))
}

/// Whether a regulator revoked the installed release (`None`: not revoked, or the release was
/// recorded before releases were tracked). Needs every regulator fresh, like an update.
pub fn check_recall<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    installed: &Installed,
) -> Result<Option<Recall>> {
    let Some(release) = &installed.release else {
        return Ok(None);
    };
    let asked = ask_all(repos, master, release)?;
    if let Some((regulator, reason)) = asked.revocation() {
        return Ok(Some(Recall {
            regulator: regulator.into(),
            reason: reason.into(),
        }));
    }
    asked.all_reached(master)?;
    Ok(None)
}

/// The verified attestation `target` of one regulator repository, if it lists one.
fn attestation_of<F: Fetch>(
    up: &mut Updater<F>,
    target: &str,
    url: &str,
) -> std::result::Result<Option<Attestation>, String> {
    let Some(crate::tuf::Found { info, signer, .. }) =
        up.get_targetinfo(target).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if info.length > MAX_ATTESTATION {
        return Err(format!("attestation of {} bytes", info.length));
    }
    // Kept beside the regulator's metadata: unchanged (same signed length and hash), it is not
    // fetched again, so a check with nothing new costs one timestamp per regulator.
    let dir = up.metadata_dir().join("attestations");
    let path = match up
        .find_cached_target(target, &info, &dir)
        .map_err(|e| e.to_string())?
    {
        Some(p) => p,
        None => up
            .download_target(target, &info, &dir)
            .map_err(|e| e.to_string())?,
    };
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let env = Envelope::parse(target, &bytes, MAX_ATTESTATION).map_err(|e| e.to_string())?;
    env.verify(
        &format!("attestation {target} ({url})"),
        &signer.keyids,
        signer.threshold,
        &signer.keys,
    )
    .map_err(|e| e.to_string())?;
    env.decode(target, Attestation::TYPE)
        .map(Some)
        .map_err(|e| e.to_string())
}
