//! Step 3 of the walk: what the OEM's authorized regulators say about one release.
//!
//! Fail closed: every authorized regulator's repository must be reached and verified fresh in
//! this run (its signed, unexpired listing is what proves it has not revoked the release).
//! Any veto wins whatever the approvals: a regulator's revocation or rejection of the release,
//! or of any release of the same bytes (listed by the regulator under the bytes' SHA-256,
//! `veto_target`), so a re-release of vetoed bytes under a new version is vetoed too, reviewed
//! or not. Approvals count by distinct key material: two regulators sharing any key of any
//! role (pinned root, current root, or the keys that signed the attestations) count once.

use super::error::{fail, Check, Result};
use super::{Installed, Master, Repositories};
use crate::tuf::{Fetch, Updater};
use ota_metadata::documents::{
    count_parties, root_material, veto_target, Attestation, Release, Verdict,
};
use ota_metadata::Envelope;
use std::collections::BTreeSet;

/// Bound on one attestation file.
const MAX_ATTESTATION: u64 = 1 << 20;

/// What one regulator says about a release.
enum Word {
    /// With the compact approval signatures it carries.
    Approved(Vec<ota_metadata::documents::attestation::CompactApproval>),
    /// A veto: this release, or a release of the same bytes, revoked.
    Revoked(String),
    /// A veto: this release, or a release of the same bytes, rejected.
    Rejected(String),
    /// No attestation, or an attestation about another release.
    NotApproved(String),
}

/// A verified attestation, and the key material of the keys whose signatures on it verified.
type Signed = (Attestation, BTreeSet<Vec<u8>>);

/// A regulator revoked a release that is installed: a recall.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    pub regulator: String,
    pub reason: String,
}

/// One regulator's answer: its word, and its identity (every key of every role of its pinned
/// and current roots).
struct Answer {
    name: String,
    word: Word,
    identity: BTreeSet<Vec<u8>>,
}

/// What every authorized regulator says about one release.
struct Asked {
    /// For those reached and verified fresh.
    answers: Vec<Answer>,
    /// Those that could not be (name, URL and why).
    unreachable: Vec<String>,
}

impl Asked {
    /// The first veto, revocations first: (check, regulator, reason).
    fn veto(&self) -> Option<(Check, &str, &str)> {
        let revoked = self.answers.iter().find_map(|a| match &a.word {
            Word::Revoked(r) => Some((Check::Revoked, a.name.as_str(), r.as_str())),
            _ => None,
        });
        revoked.or_else(|| {
            self.answers.iter().find_map(|a| match &a.word {
                Word::Rejected(r) => Some((Check::Rejected, a.name.as_str(), r.as_str())),
                _ => None,
            })
        })
    }

    /// Refuse unless every regulator answered: without a fresh signed listing from each, a
    /// veto cannot be ruled out (an attacker may be blocking the one that revoked).
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

/// Ask every authorized regulator about `release`: its attestation of the release, and its
/// vetoes on the release's bytes.
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
    let contents = release
        .content_sha256s()
        .map_err(|e| fail(Check::ImageManifest, &master.url, e))?;
    let mut asked = Asked {
        answers: Vec::new(),
        unreachable: Vec::new(),
    };
    for (name, pin) in &master.regulators.regulators {
        let now = repos.now;
        let max_lifetime = master.regulators.max_timestamp_lifetime;
        let answer = repos.get("regulators", name, pin).and_then(|up| {
            check_lifetime(up, now, max_lifetime)?;
            answer_of(up, name, pin, release, &contents)
        });
        match answer {
            // A listed attestation that does not verify is as bad as no fresh state.
            Err(e) => asked
                .unreachable
                .push(format!("regulator {name} ({}): {e}", pin.url)),
            Ok(a) => asked.answers.push(a),
        }
    }
    Ok(asked)
}

/// Refuse a regulator whose trusted timestamp runs longer than the OEM's maximum from `now`:
/// a copy replayed by the network would otherwise be accepted until its own expiry.
fn check_lifetime<F: Fetch>(
    up: &Updater<F>,
    now: ota_metadata::DateTime,
    max: Option<u64>,
) -> std::result::Result<(), String> {
    let (Some(max), Some(ts)) = (max, up.trusted().timestamp()) else {
        return Ok(());
    };
    match runs_longer(ts.signed.expires, now, max) {
        None => Ok(()),
        Some(left) => Err(format!(
            "its timestamp runs until {} ({left} s from now), longer than the {max} s the OEM allows a regulator's timestamp (a replayed copy would be accepted that long)",
            ts.signed.expires
        )),
    }
}

/// How long past `now` a timestamp expiring at `expires` runs, when that is longer than `max`
/// seconds (exactly `max` is allowed).
fn runs_longer(
    expires: ota_metadata::DateTime,
    now: ota_metadata::DateTime,
    max: u64,
) -> Option<i64> {
    let left = expires.0.saturating_sub(now.0);
    (left > i64::try_from(max).unwrap_or(i64::MAX)).then_some(left)
}

/// One regulator's answer on `release`, whose bytes hash to `contents`.
fn answer_of<F: Fetch>(
    up: &mut Updater<F>,
    name: &str,
    pin: &ota_metadata::documents::RepositoryPin,
    release: &Release,
    contents: &[String],
) -> std::result::Result<Answer, String> {
    let mut identity = pin.all_key_material();
    identity.extend(root_material(&up.trusted().root().signed));
    let mut word = match attestation_of(up, &release.attestation_target(), &pin.url)? {
        None => Word::NotApproved(format!("{name}: no attestation")),
        Some((att, signers)) => {
            // Whoever signed the attestation is part of the regulator's identity.
            identity.extend(signers);
            word_of(release, name, att)
        }
    };
    // A veto on the bytes outranks whatever the regulator said about this label of them.
    if !matches!(word, Word::Revoked(_)) {
        for sha in contents {
            if let Some((att, _)) = attestation_of(up, &veto_target(sha), &pin.url)? {
                if let Some(veto) = veto_of(name, sha, att)? {
                    if matches!(veto, Word::Revoked(_)) || !matches!(word, Word::Rejected(_)) {
                        word = veto;
                    }
                }
            }
        }
    }
    Ok(Answer {
        name: name.into(),
        word,
        identity,
    })
}

/// The verdict of one regulator's attestation on `release`.
fn word_of(release: &Release, name: &str, att: Attestation) -> Word {
    if let Err(e) = att.check_release(release) {
        return Word::NotApproved(format!("{name}: {e}"));
    }
    match att.verdict {
        Verdict::Approved => Word::Approved(att.compact_approval()),
        Verdict::Rejected => Word::Rejected(format!(
            "{} finding(s){}",
            att.findings.len(),
            first_finding(&att)
        )),
        Verdict::Revoked => Word::Revoked(att.reason.unwrap_or_default()),
    }
}

fn first_finding(att: &Attestation) -> String {
    att.findings
        .first()
        .map_or(String::new(), |f| format!(": {}: {}", f.rule, f.detail))
}

/// The veto a regulator listed under the bytes `sha`: the rejection or revocation of a
/// release of those bytes. A veto file that is not one (an approval, or about other bytes)
/// is a broken regulator repository: refused like an unverifiable one.
fn veto_of(name: &str, sha: &str, att: Attestation) -> std::result::Result<Option<Word>, String> {
    let names_bytes = att
        .release
        .content_sha256s()
        .is_ok_and(|c| c.iter().any(|c| c.eq_ignore_ascii_case(sha)));
    if !names_bytes {
        return Err(format!(
            "{name}: the veto listed for bytes {sha} is about other bytes"
        ));
    }
    let of = format!(
        "{} {} of {} (the same bytes)",
        att.release.uid, att.release.version, att.release.supplier
    );
    Ok(match att.verdict {
        Verdict::Approved => {
            return Err(format!(
                "{name}: the veto listed for bytes {sha} is an approval"
            ))
        }
        Verdict::Rejected => Some(Word::Rejected(format!(
            "rejected {of}: {} finding(s){}",
            att.findings.len(),
            first_finding(&att)
        ))),
        Verdict::Revoked => Some(Word::Revoked(format!(
            "revoked {of}: {}",
            att.reason.clone().unwrap_or_default()
        ))),
    })
}

/// Step 3: every authorized regulator reached and fresh, none vetoing `release` (revoking or
/// rejecting it or any release of its bytes), and approvals from a threshold of distinct
/// regulators, counted by key material. Returns the approving regulators and the compact
/// attestation bundle for full-verification ECUs (`ota_ecu::attestation`): the compact
/// approval signatures of the approving regulators, at most four; empty when none carries
/// one. The ECU checks them against the regulator keys of its own trust document.
pub fn check_attestations_bundle<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    release: &Release,
) -> Result<(Vec<String>, Vec<u8>)> {
    let asked = ask_all(repos, master, release)?;
    if let Some((check, name, reason)) = asked.veto() {
        let what = if check == Check::Revoked {
            "revoked"
        } else {
            "rejected"
        };
        return Err(fail(
            check,
            &master.regulators.regulators[name].url,
            format!(
                "regulator {name} {what} {} {} of {}: {reason}",
                release.uid, release.version, release.supplier
            ),
        ));
    }
    asked.all_reached(master)?;
    let mut approved = Vec::new();
    let mut identities = Vec::new();
    let mut problems = Vec::new();
    let mut bundle = CompactBundle::default();
    for a in asked.answers {
        match a.word {
            Word::Approved(sigs) => {
                approved.push(a.name);
                identities.push(a.identity);
                bundle.add(&sigs);
            }
            Word::NotApproved(p) | Word::Revoked(p) | Word::Rejected(p) => problems.push(p),
        }
    }
    let distinct = count_parties(&identities);
    let threshold = master.regulators.threshold.max(1);
    if let Some(why) = shortfall(&approved, distinct, threshold, problems) {
        return Err(fail(
            Check::NotApproved,
            &master.url,
            format!(
                "{distinct} of {threshold} required distinct regulator approvals for {} {} ({why})",
                release.uid, release.version
            ),
        ));
    }
    Ok((approved, bundle.bytes()))
}

/// Why `distinct` approving parties (of the regulators `approved`) fall short of `threshold`,
/// if they do: the regulators' problems, and which approvals share keys.
fn shortfall(
    approved: &[String],
    distinct: usize,
    threshold: u32,
    mut problems: Vec<String>,
) -> Option<String> {
    if distinct as u64 >= u64::from(threshold) {
        return None;
    }
    if distinct < approved.len() {
        problems.push(format!(
            "{} share keys and count as {distinct}",
            approved.join(", ")
        ));
    }
    Some(problems.join("; "))
}

/// The compact approval signatures collected for a full-verification ECU: at most
/// [`ota_ecu::compact_manifest::MAX_SIGNATURES`], one per key id (the ECU counts a key once
/// anyway; a second signature by it would only take a place another key could use).
#[derive(Default)]
struct CompactBundle {
    signatures: Vec<([u8; 32], Vec<u8>)>,
}

impl CompactBundle {
    /// Take one approving regulator's signatures; malformed ones (a key id that is not 32
    /// hex bytes, a signature that is not hex) are skipped: the ECU could not use them.
    fn add(&mut self, approvals: &[ota_metadata::documents::attestation::CompactApproval]) {
        for s in approvals {
            let keyid = hex::decode(&s.keyid)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok());
            let (Some(keyid), Ok(sig)) = (keyid, hex::decode(&s.sig)) else {
                continue;
            };
            let full = self.signatures.len() >= ota_ecu::compact_manifest::MAX_SIGNATURES;
            if !full && !self.signatures.iter().any(|(k, _)| *k == keyid) {
                self.signatures.push((keyid, sig));
            }
        }
    }

    /// The bundle's bytes (`ota_ecu::attestation` format), or none when no signature came.
    fn bytes(&self) -> Vec<u8> {
        if self.signatures.is_empty() {
            return Vec::new();
        }
        let refs: Vec<([u8; 32], &[u8])> = self
            .signatures
            .iter()
            .map(|(k, s)| (*k, s.as_slice()))
            .collect();
        ota_ecu::attestation::assemble(&refs)
    }
}

/// Whether a regulator vetoed the installed release since (revoked it, or revoked or rejected
/// a release of its bytes; `None`: no veto, or the release was recorded before releases were
/// tracked). Needs every regulator fresh, like an update.
pub fn check_recall<F: Fetch>(
    repos: &mut Repositories<'_, F>,
    master: &Master,
    installed: &Installed,
) -> Result<Option<Recall>> {
    let Some(release) = &installed.release else {
        return Ok(None);
    };
    let asked = ask_all(repos, master, release)?;
    if let Some((_, regulator, reason)) = asked.veto() {
        return Ok(Some(Recall {
            regulator: regulator.into(),
            reason: reason.into(),
        }));
    }
    asked.all_reached(master)?;
    Ok(None)
}

/// The verified attestation `target` of one regulator repository, if it lists one.
/// With the key material of the keys whose signatures on it verified.
fn attestation_of<F: Fetch>(
    up: &mut Updater<F>,
    target: &str,
    url: &str,
) -> std::result::Result<Option<Signed>, String> {
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
    let att = env
        .decode(target, Attestation::TYPE)
        .map_err(|e| e.to_string())?;
    Ok(Some((att, signed_by(&env, &signer))))
}

/// The key material of `signer`'s keys whose signatures on `env` verify: whoever holds them
/// spoke, whatever regulator name they are listed under.
fn signed_by(env: &Envelope, signer: &ota_metadata::trusted_set::RoleSigner) -> BTreeSet<Vec<u8>> {
    env.signatures()
        .iter()
        .filter(|s| signer.keyids.contains(&s.keyid))
        .filter_map(|s| {
            let public = signer.keys.get(&s.keyid)?.to_public(&s.keyid).ok()?;
            let sig = hex::decode(&s.sig).ok()?;
            public
                .verify(env.canonical_signed(), &sig)
                .then(|| public.identity())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_metadata::documents::attestation::CompactApproval;

    fn approval(keyid: u8, sig: &str) -> CompactApproval {
        CompactApproval {
            keyid: hex::encode([keyid; 32]),
            sig: sig.into(),
        }
    }

    #[test]
    fn a_timestamp_may_run_exactly_the_oems_maximum_and_not_a_second_more() {
        let now = ota_metadata::DateTime(1_000_000);
        let at = |s: i64| ota_metadata::DateTime(1_000_000 + s);
        assert_eq!(runs_longer(at(3600), now, 3600), None);
        assert_eq!(runs_longer(at(3599), now, 3600), None);
        assert_eq!(runs_longer(at(3601), now, 3600), Some(3601));
        // Expired already: no lifetime left to refuse (the updater refuses expiry itself).
        assert_eq!(runs_longer(at(-5), now, 0), None);
        assert_eq!(runs_longer(at(1), now, 0), Some(1));
    }

    #[test]
    fn the_bundle_keeps_one_signature_per_key_and_at_most_the_ecus_maximum() {
        let mut b = CompactBundle::default();
        assert!(b.bytes().is_empty(), "no signature, no bundle");
        b.add(&[approval(1, "aa"), approval(1, "bb"), approval(2, "cc")]);
        // The same key id from another regulator takes no second place either.
        b.add(&[approval(2, "dd")]);
        let kept: Vec<(u8, Vec<u8>)> = b
            .signatures
            .iter()
            .map(|(k, s)| (k[0], s.clone()))
            .collect();
        assert_eq!(kept, vec![(1, vec![0xaa]), (2, vec![0xcc])]);
        let max = ota_ecu::compact_manifest::MAX_SIGNATURES;
        let more: Vec<CompactApproval> = (3..3 + max as u8).map(|k| approval(k, "ee")).collect();
        b.add(&more);
        assert_eq!(b.signatures.len(), max);
        let ids: Vec<u8> = b.signatures.iter().map(|(k, _)| k[0]).collect();
        let expected: Vec<u8> = (1..=max as u8).collect();
        assert_eq!(ids, expected, "the first keys in order keep their places");
        let bytes = b.bytes();
        assert_eq!(usize::from(bytes[0]), max);
        assert_eq!(bytes.len(), 1 + (32 + 2 + 1) * max);
        assert_eq!(&bytes[1..33], &[1u8; 32]);
        assert_eq!(&bytes[33..36], &[0, 1, 0xaa]);
    }

    #[test]
    fn malformed_compact_signatures_are_skipped() {
        let mut b = CompactBundle::default();
        let short = CompactApproval {
            keyid: hex::encode([7u8; 31]),
            sig: "aa".into(),
        };
        b.add(&[short, approval(8, "not hex"), approval(9, "0102")]);
        let kept: Vec<(u8, Vec<u8>)> = b
            .signatures
            .iter()
            .map(|(k, s)| (k[0], s.clone()))
            .collect();
        assert_eq!(kept, vec![(9, vec![1, 2])]);
    }

    #[test]
    fn a_shortfall_names_the_problems_and_the_approvals_that_share_keys() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Enough distinct parties: no shortfall, whatever else was said.
        assert_eq!(
            shortfall(&names(&["a", "b"]), 2, 2, vec!["c: no attestation".into()]),
            None
        );
        assert_eq!(shortfall(&names(&["a", "b"]), 3, 2, Vec::new()), None);
        // Two approvals, one party: they share keys.
        assert_eq!(
            shortfall(&names(&["a", "b"]), 1, 2, vec!["c: no attestation".into()]).as_deref(),
            Some("c: no attestation; a, b share keys and count as 1")
        );
        // As many parties as approvals: nothing is shared, so nothing said of it.
        assert_eq!(
            shortfall(&names(&["a"]), 1, 2, vec!["c: no attestation".into()]).as_deref(),
            Some("c: no attestation")
        );
        // A threshold of 0 is taken as 1 by the caller; 0 parties fall short of 1.
        assert_eq!(shortfall(&[], 0, 1, Vec::new()).as_deref(), Some(""));
    }
}
