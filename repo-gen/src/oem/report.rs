//! The keys that sign version reports: registering a vehicle's and its ECUs' public keys (at
//! the factory). Ingesting the reports is [`super::reports`]' (and [`ota_fleet`]'s).

use super::claims::{Claim, Owner};
use super::inventory::{claim_one, Inventory, Release};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::keys::{Key, KeyId};
use ota_metadata::SigningKey;
use std::path::Path;

/// A public key from a PEM file (public, or private of which the public half is taken).
pub fn public_key_file(path: &Path) -> Result<Key> {
    let bytes = fsutil::read_bounded(path, 64 * 1024)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::refused(format!("{}: not a PEM file", path.display())))?;
    if text.contains("PRIVATE KEY-----") {
        return Ok(SigningKey::from_pem(&text)
            .map_err(Error::meta(path))?
            .public()
            .clone());
    }
    public_key_pem(&text).map_err(|e| Error::refused(format!("{}: {e}", path.display())))
}

/// A report-signing public key from its PEM text, checked (RSA, size) and written the one way
/// the inventory holds keys, so the same key always compares equal.
pub fn public_key_pem(text: &str) -> std::result::Result<Key, String> {
    // Name what another kind of key is (the RSA parser would name RSA's own OID as the
    // unsupported one).
    if let Ok(k) = ota_metadata::keyfile::PemKey::parse(text) {
        if k.oid != ota_metadata::keyfile::RSA_OID {
            return Err(format!(
                "a {} key; version reports are signed with RSA keys",
                k.algorithm()
            ));
        }
    }
    // The key has no id yet; the parser's error names one, so only its reason is kept.
    let parsed = Key::rsa(text.to_string())
        .to_public(&KeyId(String::new()))
        .map_err(|e| match e {
            ota_metadata::Error::BadKey { reason, .. } => reason,
            other => other.to_string(),
        })?;
    match parsed {
        ota_metadata::PublicKey::Rsa(rsa) => Ok(Key::rsa(ota_metadata::signing::public_pem(&rsa)?)),
        _ => Err("only RSA keys sign version reports".into()),
    }
}

pub fn vehicle_key(dir: &Path, vin: &str, key_file: &Path) -> Result<()> {
    super::Settings::load(dir)?;
    let key = public_key_file(key_file)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    inv.vehicle(vin)?;
    let owner = Owner::vehicle(vin);
    let old = inv.vehicles.get(vin).and_then(|v| v.key.clone());
    let changed = old.as_ref() != Some(&key);
    let release = Release::load(dir, gone_key(old.as_ref(), changed, &owner))?;
    // Claimed first: a key signs for one vehicle or ECU only.
    claim_one(dir, &Claim::key(&key), &owner)?;
    if let Some(v) = inv.vehicles.get_mut(vin) {
        v.key = Some(key);
    }
    inv.save(dir)?;
    release.finish(dir)?;
    // A new key starts the vehicle's report history afresh: nothing the old key signed (a
    // report dated ahead, events numbered ahead) outlives it.
    if changed {
        super::reports::forget_vehicle(dir, vin)?;
    }
    Ok(())
}

pub fn ecu_key(dir: &Path, vin: &str, serial: &str, key_file: &Path) -> Result<()> {
    super::Settings::load(dir)?;
    let key = public_key_file(key_file)?;
    let mut inv = Inventory::load_for(dir, &[vin])?;
    let old = inv.ecu(vin, serial)?.key.clone();
    let owner = Owner::ecu(vin, serial);
    let changed = old.as_ref() != Some(&key);
    let release = Release::load(dir, gone_key(old.as_ref(), changed, &owner))?;
    claim_one(dir, &Claim::key(&key), &owner)?;
    if let Some(e) = inv
        .vehicles
        .get_mut(vin)
        .and_then(|v| v.ecus.get_mut(serial))
    {
        e.key = Some(key);
    }
    inv.save(dir)?;
    release.finish(dir)
}

/// The claim a key change gives up: the old key, if there was one and it changed.
fn gone_key(old: Option<&Key>, changed: bool, owner: &Owner) -> Vec<(Claim, Owner)> {
    old.filter(|_| changed)
        .map(|k| vec![(Claim::key(k), owner.clone())])
        .unwrap_or_default()
}
