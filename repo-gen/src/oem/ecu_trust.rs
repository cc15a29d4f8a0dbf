//! ECU trust documents (`ota-repo oem ecu-trust`): per hardware id, the compact, versioned
//! document an ECU holds as its trust anchor (see `ota_ecu::trust`): which supplier keys may
//! sign its images, which regulator keys must approve them, full or partial verification.
//!
//! Version N+1 is signed by the signer keys of version N (`--previous-signer-key`) and by its
//! own (`--signer-key`); the command checks the rotation rule exactly as the ECU will before it
//! writes anything. Documents are kept as `DIR/ecu-trust/<hardware-id>.<version>.bin` and
//! published as targets `ecu-trust.<hardware-id>.<version>.bin` of the OEM's (offline)
//! targets role, so a gateway fetches them through TUF and forwards the versions its ECU lacks.
//!
//! Nothing enters an ECU's trust unseen:
//! - signers are offline keys: the OEM's online keys (timestamp, snapshot, review, vehicles)
//!   and the document's own supplier and regulator keys are refused, and a new document needs
//!   two distinct signers unless the OEM asks for one;
//! - supplier keys taken from a pinned supplier's root chain (`--supplier`) that are neither
//!   in the previous document for the hardware id nor in the OEM's pin of that supplier must
//!   be confirmed by key id (`--confirm-key`): a stolen supplier root key can rotate the chain,
//!   but not carry its own targets key into ECUs through this routine command.

use super::report::public_key_file;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keystore;
use crate::net;
use ota_client::tuf::{open_pinned, Limits};
use ota_ecu::compact_manifest::{Field, MAX_SIGNATURES};
use ota_ecu::trust::{self, KeySpec, Mode, TrustBody, TrustDocument};
use ota_metadata::documents::compact::keyid_bytes;
use ota_metadata::DateTime;
use ota_metadata::{KeyId, PublicKey, SigningKey};
use rsa::traits::PublicKeyParts;
use std::path::{Path, PathBuf};

pub const DIR_NAME: &str = "ecu-trust";

/// Where the supplier keys of a trust document come from.
pub enum SupplierKeys {
    /// Public (or private) PEM files of the keys that may sign images.
    Files(Vec<PathBuf>),
    /// The targets keys (and threshold) of a pinned supplier's current root, walked from the
    /// OEM's pin through the supplier's root chain exactly as a vehicle walks it: after the
    /// supplier rotates its targets key, the next document follows without a PEM changing
    /// hands.
    Pinned {
        name: String,
        /// Read the supplier's tree here instead of its pinned URL.
        from: Option<String>,
        ca: Option<PathBuf>,
        now: DateTime,
    },
}

/// What `oem ecu-trust` is asked to issue.
pub struct EcuTrust {
    pub hardware_id: String,
    pub suppliers: SupplierKeys,
    /// Default: 1 for key files, the targets role's threshold for a pinned supplier.
    pub supplier_threshold: Option<u8>,
    pub regulator_keys: Vec<PathBuf>,
    pub regulator_threshold: u8,
    /// Full verification (supplier and regulators) instead of partial (supplier only).
    pub full: bool,
    /// Private keys of this version's signers.
    pub signer_keys: Vec<PathBuf>,
    /// Default: 2 for a new document, the previous version's otherwise.
    pub signer_threshold: Option<u8>,
    /// Key ids (hex) of supplier keys from a pinned supplier's chain that the OEM checked with
    /// the supplier out of band (`--confirm-key`).
    pub confirmed_keys: Vec<String>,
    /// Private keys of the previous version's signers (not needed for version 1).
    pub previous_signer_keys: Vec<PathBuf>,
    /// Refuse images below this release counter (a revoked release). Default: the previous
    /// version's floor, so a floor is never lowered by accident.
    pub min_release_counter: Option<u64>,
    /// Name no instruction key (format 2): for ECUs whose firmware predates instructions.
    pub legacy: bool,
}

struct Owned {
    keyid: [u8; 32],
    exponent: u32,
    modulus: Vec<u8>,
    /// The key material ([`PublicKey::identity`]).
    identity: Vec<u8>,
}

fn owned_public(path: &Path) -> Result<Owned> {
    let key = public_key_file(path)?;
    let id = key.key_id().map_err(Error::meta(path))?;
    let PublicKey::Rsa(rsa) = key.to_public(&id).map_err(Error::meta(path))? else {
        return Err(Error::refused(format!(
            "{}: ECUs verify RSA keys only",
            path.display()
        )));
    };
    owned(&id, &rsa, path)
}

fn owned(id: &KeyId, rsa: &rsa::RsaPublicKey, path: &Path) -> Result<Owned> {
    let e = rsa.e().to_bytes_be();
    if e.len() > 4 {
        return Err(Error::refused(format!(
            "{}: RSA exponent over 32 bits",
            path.display()
        )));
    }
    let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    Ok(Owned {
        keyid: keyid_bytes(id).map_err(Error::meta(path))?,
        exponent,
        modulus: rsa.n().to_bytes_be(),
        identity: PublicKey::Rsa(Box::new(rsa.clone())).identity(),
    })
}

/// The keys of every role of pinned supplier `name` that may sign images for `hardware_id`:
/// its current root's targets keys, and the keys of each tier it delegates to (tier-2,
/// tier-3, …) whose hardware ids, narrowed along the delegations, include it; with the lowest
/// of their thresholds (an ECU's document has one).
fn pinned_supplier(
    dir: &Path,
    name: &str,
    hardware_id: &str,
    from: Option<&str>,
    ca: Option<&Path>,
    now: DateTime,
) -> Result<(Vec<Owned>, u8)> {
    let settings = super::Settings::load(dir)?;
    let entry = settings
        .suppliers
        .get(name)
        .ok_or_else(|| Error::refused(format!("unknown supplier {name:?} (oem supplier add)")))?;
    let mut pin = entry.repository.clone();
    if let Some(from) = from {
        pin.url = net::location(from);
    }
    let limits = Limits::default();
    let what = format!("supplier {name}");
    let cache = dir.join("cache").join("suppliers").join(name);
    let mut up = open_pinned(&pin, &what, &cache, net::fetcher(ca, &limits)?, limits, now)?;
    up.refresh()?;
    let signers = up.signers_for_hardware_id(hardware_id)?;
    let at = Path::new(&what);
    let mut keys: Vec<Owned> = Vec::new();
    let mut threshold = u8::MAX;
    for signer in &signers {
        let t = u8::try_from(signer.threshold).map_err(|_| {
            Error::refused(format!(
                "{what}: role {} has a threshold over 255",
                signer.role
            ))
        })?;
        threshold = threshold.min(t);
        for id in &signer.keyids {
            let key = signer.keys.get(id).ok_or_else(|| {
                Error::refused(format!(
                    "{what}: role {} key {} is not listed",
                    signer.role, id.0
                ))
            })?;
            let PublicKey::Rsa(rsa) = key.to_public(id).map_err(Error::meta(at))? else {
                return Err(Error::refused(format!(
                    "{what}: role {} key {} is not RSA; ECUs verify RSA keys only",
                    signer.role, id.0
                )));
            };
            let k = owned(id, &rsa, at)?;
            if !keys.iter().any(|o| o.identity == k.identity) {
                keys.push(k);
            }
        }
    }
    if signers.len() > 1 {
        let roles: Vec<&str> = signers.iter().map(|s| s.role.as_str()).collect();
        tell!(
            "ota-repo: supplier {name}: images for {hardware_id} may be signed by roles {} (the document takes all their keys, threshold {threshold})",
            roles.join(", ")
        );
    }
    Ok((keys, threshold))
}

fn specs(keys: &[Owned]) -> Vec<KeySpec<'_>> {
    keys.iter()
        .map(|k| KeySpec {
            keyid: k.keyid,
            exponent: k.exponent,
            modulus: &k.modulus,
        })
        .collect()
}

/// Refuse supplier keys from pinned supplier `name`'s chain that the OEM has not seen: in
/// neither `held` (the previous document for this hardware id), the OEM's pin of the
/// supplier, nor `confirmed`. Tells which keys changed since `held` either way.
fn confirm_supplier_keys(
    settings: &super::Settings,
    name: &str,
    keys: &[Owned],
    held: Option<&TrustDocument>,
    confirmed: &[String],
) -> Result<()> {
    let entry = settings
        .suppliers
        .get(name)
        .ok_or_else(|| Error::refused(format!("unknown supplier {name:?} (oem supplier add)")))?;
    let pinned = entry.repository.all_key_material();
    let held_keys: Vec<(String, Vec<u8>)> = held
        .map(|d| {
            d.suppliers
                .keys
                .iter()
                .map(|k| {
                    (
                        hex::encode(k.keyid),
                        PublicKey::Rsa(Box::new(k.key.clone())).identity(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let held_version = held.map_or(0, |d| d.version);
    for k in keys {
        if held.is_some() && !held_keys.iter().any(|(_, m)| *m == k.identity) {
            tell!(
                "ota-repo: supplier {name}: key {} ({} bits) is new since trust document version {held_version}",
                hex::encode(k.keyid),
                k.modulus.len() * 8
            );
        }
    }
    for (id, m) in &held_keys {
        if !keys.iter().any(|k| k.identity == *m) {
            tell!("ota-repo: supplier {name}: key {id} of version {held_version} is dropped");
        }
    }
    let unseen: Vec<String> = keys
        .iter()
        .filter(|k| {
            !pinned.contains(&k.identity)
                && !held_keys.iter().any(|(_, m)| *m == k.identity)
                && !confirmed
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&hex::encode(k.keyid)))
        })
        .map(|k| hex::encode(k.keyid))
        .collect();
    if unseen.is_empty() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "supplier {name}'s root chain now names key(s) {} to sign this hardware id's images (its targets role, or a tier it delegates to) that neither trust document version {held_version} nor the OEM's pin of {name} holds: check them with the supplier (or the tier) out of band, then pass --confirm-key KEYID for each (or re-pin the supplier: oem supplier repin). A stolen supplier root key can rotate the chain; only the OEM's confirmation puts a key into ECUs",
        unseen.join(", ")
    )))
}

/// Refuse signer keys the OEM keeps online (timestamp, snapshot, review, vehicles: their theft
/// plus bus access would let an attacker rewrite ECU trust) and keys the document itself trusts
/// as supplier or regulator keys.
fn check_signers(dir: &Path, signers: &[Owned], others: &[&Owned]) -> Result<()> {
    let root = crate::publish::read_root(&crate::workdir::repository_path(dir))?;
    for role in super::ONLINE_ROLES {
        let Ok(rk) = root.role(role) else { continue };
        let online = ota_metadata::documents::material_of(
            rk.keyids
                .iter()
                .filter_map(|id| root.keys.get(id).map(|k| (id, k))),
        );
        if let Some(k) = signers.iter().find(|k| online.contains(&k.identity)) {
            return Err(Error::refused(format!(
                "signer key {} is the OEM's online {role} key: ECU trust documents must be signed by offline keys (its theft from the publishing host would let an attacker with bus access rewrite what ECUs trust)",
                hex::encode(k.keyid)
            )));
        }
    }
    if let Some(k) = signers
        .iter()
        .find(|k| others.iter().any(|o| o.identity == k.identity))
    {
        return Err(Error::refused(format!(
            "signer key {} is also a supplier or regulator key of the document: signers must be the OEM's own offline keys",
            hex::encode(k.keyid)
        )));
    }
    Ok(())
}

/// The versions of `hardware_id`'s documents in `DIR/ecu-trust/`, ascending.
pub fn versions(dir: &Path, hardware_id: &str) -> Result<Vec<u32>> {
    let d = dir.join(DIR_NAME);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&d)(e)),
    };
    let prefix = format!("{hardware_id}.");
    for e in entries {
        let name = e.map_err(Error::io(&d))?.file_name();
        let Some(v) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".bin"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        out.push(v);
    }
    out.sort_unstable();
    Ok(out)
}

/// Every stored document: (target name, bytes), for publishing.
pub fn all(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let d = dir.join(DIR_NAME);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&d)(e)),
    };
    for e in entries {
        let path = e.map_err(Error::io(&d))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".bin") {
            continue;
        }
        let bytes = fsutil::read_bounded(&path, ota_ecu::flash::TRUST_LEN as u64)?;
        out.push((format!("{DIR_NAME}.{name}"), bytes));
    }
    out.sort();
    Ok(out)
}

fn path_of(dir: &Path, hardware_id: &str, version: u32) -> PathBuf {
    dir.join(DIR_NAME)
        .join(format!("{hardware_id}.{version}.bin"))
}

/// How many distinct signers must sign the next version: as asked, else 2 for a new document
/// and the previous version's otherwise. Fewer distinct signer keys than that are refused; a
/// single signer is allowed when asked for, with a warning.
fn signer_threshold(t: &EcuTrust, held: Option<&TrustDocument>, signers: &[Owned]) -> Result<u8> {
    let threshold = t
        .signer_threshold
        .unwrap_or_else(|| held.map_or(2, |d| d.signers.threshold));
    let distinct: std::collections::BTreeSet<&[u8]> =
        signers.iter().map(|k| k.identity.as_slice()).collect();
    if threshold == 0 || distinct.len() < usize::from(threshold) {
        return Err(Error::refused(format!(
            "signer threshold {threshold} but {} distinct signer key(s): give at least {} --signer-key (offline keys, kept apart){}",
            distinct.len(),
            threshold.max(1),
            if t.signer_threshold.is_none() && held.is_none() {
                "; a new document needs two by default, so that one stolen key cannot sign the next (--signer-threshold 1 to accept that risk)"
            } else {
                ""
            }
        )));
    }
    if threshold < 2 {
        tell!(
            "ota-repo: warning: one signer key signs the next trust document of {}: whoever steals it with bus access decides what the ECUs trust; use two offline keys (--signer-threshold 2)",
            t.hardware_id
        );
    }
    Ok(threshold)
}

/// Issue the next version of `hardware_id`'s trust document; its version and file.
///
/// The procedure: a hardware id an ECU can hold → the version held before, if any → the
/// supplier keys (files, or a pinned supplier's chain with new keys confirmed), the floor, the
/// regulator keys → the signers (offline keys, none of the document's own) and their
/// threshold → the body, signed by this version's and the previous version's signers → the
/// ECU's own checks on the result → written. Nothing is written unless every check passed.
pub fn ecu_trust(dir: &Path, t: &EcuTrust) -> Result<(u32, PathBuf)> {
    super::Settings::load(dir)?;
    let hw = hardware_id_field(t)?;
    let previous = versions(dir, &t.hardware_id)?.last().copied();
    let version = previous.map_or(Ok(1), |v| {
        v.checked_add(1)
            .ok_or_else(|| Error::refused("trust document version exhausted"))
    })?;
    let held_doc = held_document(dir, &t.hardware_id, previous)?;
    let (suppliers, supplier_threshold) = supplier_keys(dir, t, held_doc.as_ref())?;
    // The floor is never lowered by accident: the previous version's unless given.
    let min_release_counter = t
        .min_release_counter
        .or(held_doc.as_ref().map(|d| d.min_release_counter))
        .unwrap_or(0);
    let regulators = t
        .regulator_keys
        .iter()
        .map(|p| owned_public(p))
        .collect::<Result<Vec<_>>>()?;
    let signers = load_keys(&t.signer_keys)?;
    let previous_signers = load_keys(&t.previous_signer_keys)?;
    let signer_specs = signers
        .iter()
        .zip(&t.signer_keys)
        .map(|(k, p)| owned(k.key_id(), &k.rsa_public(), p))
        .collect::<Result<Vec<_>>>()?;
    let others: Vec<&Owned> = suppliers.iter().chain(&regulators).collect();
    check_signers(dir, &signer_specs, &others)?;
    let signer_threshold = signer_threshold(t, held_doc.as_ref(), &signer_specs)?;
    let (sup, reg, sig) = (specs(&suppliers), specs(&regulators), specs(&signer_specs));
    let instruction_keys: Vec<[u8; 32]> = if t.legacy {
        Vec::new()
    } else {
        vec![super::privacy::instruction_key(dir)?
            .verifying_key()
            .to_bytes()]
    };
    let body = TrustBody {
        version,
        hardware_id: hw,
        mode: if t.full { Mode::Full } else { Mode::Partial },
        min_release_counter,
        suppliers: (&sup, supplier_threshold),
        regulators: (&reg, t.regulator_threshold),
        signers: (&sig, signer_threshold),
        instruction_keys: &instruction_keys,
    }
    .encode();
    let doc = sign_trust(&body, &signers, &previous_signers)?;
    check_as_the_ecu(t, version, previous, held_doc, &doc)?;
    let path = path_of(dir, &t.hardware_id, version);
    std::fs::create_dir_all(dir.join(DIR_NAME)).map_err(Error::io(dir))?;
    fsutil::write_once(&path, &doc)?;
    Ok((version, path))
}

/// The hardware id as the document carries it: 1 to 32 characters, and only those that are
/// safe in a file and target name.
fn hardware_id_field(t: &EcuTrust) -> Result<Field> {
    Field::new(&t.hardware_id)
        .filter(|_| {
            t.hardware_id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        })
        .ok_or_else(|| {
            Error::refused(format!(
                "hardware id {:?}: 1 to 32 of A-Z a-z 0-9 - _ .",
                t.hardware_id
            ))
        })
}

/// A trust document the ECU would refuse, with the ECU's reason.
fn ecu_refuses(e: trust::Error) -> Error {
    Error::refused(format!(
        "the new trust document would be refused by the ECU: {e}"
    ))
}

/// The document of version `previous` (the last issued), as the ECU holds it: the next
/// version must be accepted by it.
fn held_document(
    dir: &Path,
    hardware_id: &str,
    previous: Option<u32>,
) -> Result<Option<TrustDocument>> {
    let Some(v) = previous else {
        return Ok(None);
    };
    let bytes = fsutil::read_bounded(
        &path_of(dir, hardware_id, v),
        ota_ecu::flash::TRUST_LEN as u64,
    )?;
    Ok(Some(
        TrustDocument::provision(&bytes, hardware_id).map_err(ecu_refuses)?,
    ))
}

/// The supplier keys that may sign images, and their threshold: from key files (threshold 1
/// unless given), or walked from a pinned supplier's chain (its threshold unless given), whose
/// keys new to this hardware id's documents and to the OEM's pin must be confirmed.
fn supplier_keys(
    dir: &Path,
    t: &EcuTrust,
    held_doc: Option<&TrustDocument>,
) -> Result<(Vec<Owned>, u8)> {
    match &t.suppliers {
        SupplierKeys::Files(paths) => Ok((
            paths
                .iter()
                .map(|p| owned_public(p))
                .collect::<Result<Vec<_>>>()?,
            t.supplier_threshold.unwrap_or(1),
        )),
        SupplierKeys::Pinned {
            name,
            from,
            ca,
            now,
        } => {
            let (keys, threshold) = pinned_supplier(
                dir,
                name,
                &t.hardware_id,
                from.as_deref(),
                ca.as_deref(),
                *now,
            )?;
            confirm_supplier_keys(
                &super::Settings::load(dir)?,
                name,
                &keys,
                held_doc,
                &t.confirmed_keys,
            )?;
            Ok((keys, t.supplier_threshold.unwrap_or(threshold)))
        }
    }
}

fn load_keys(ps: &[PathBuf]) -> Result<Vec<SigningKey>> {
    ps.iter().map(|p| keystore::load(p)).collect()
}

/// The document: `body` signed by this version's signers, then by the previous version's that
/// are not among them (the ECU accepts a version signed by a threshold of both). Refused when
/// it would carry more signatures, or more bytes, than an ECU holds.
fn sign_trust(
    body: &[u8],
    signers: &[SigningKey],
    previous_signers: &[SigningKey],
) -> Result<Vec<u8>> {
    let mut signing: Vec<&SigningKey> = signers.iter().collect();
    for k in previous_signers {
        if !signing.iter().any(|s| s.key_id() == k.key_id()) {
            signing.push(k);
        }
    }
    if signing.len() > MAX_SIGNATURES {
        return Err(Error::refused(format!(
            "{} distinct signing keys; a trust document carries {MAX_SIGNATURES} signatures at most",
            signing.len()
        )));
    }
    let mut sigs = Vec::new();
    for k in &signing {
        sigs.push((keyid_bytes(k.key_id())?, k.sign(body)?));
    }
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    let doc = trust::assemble(body, &refs);
    if doc.len() > ota_ecu::flash::TRUST_LEN {
        return Err(Error::refused(format!(
            "the document is {} bytes; an ECU holds {} at most (fewer or smaller keys)",
            doc.len(),
            ota_ecu::flash::TRUST_LEN
        )));
    }
    Ok(doc)
}

/// Exactly the ECU's checks, before anything is written: the held version `previous` accepts
/// the new one (the rotation rule), or a first version provisions.
fn check_as_the_ecu(
    t: &EcuTrust,
    version: u32,
    previous: Option<u32>,
    held_doc: Option<TrustDocument>,
    doc: &[u8],
) -> Result<()> {
    match (held_doc, previous) {
        (Some(held), Some(v)) => {
            held.accept(doc).map_err(|e| match e {
                trust::Error::NotSignedByCurrent => Error::refused(format!(
                    "version {version} must also be signed by a threshold of version {v}'s signer keys: give them with --previous-signer-key"
                )),
                e => ecu_refuses(e),
            })?;
        }
        _ => {
            TrustDocument::provision(doc, &t.hardware_id).map_err(ecu_refuses)?;
        }
    }
    Ok(())
}
