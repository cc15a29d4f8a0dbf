//! Adding, removing and replacing suppliers (Uptane's exceptional operations).

use super::{store, Settings};
use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::documents::{verified_root, RepositoryPin, SupplierEntry};
use ota_metadata::{names, MetadataLimits};
use std::path::Path;

fn check_pattern(p: &str) -> Result<()> {
    let plain: String = p.chars().filter(|c| !matches!(c, '*' | '?')).collect();
    if plain.is_empty() {
        return Ok(());
    }
    names::check_hardware_id(&plain).map_err(|_| {
        Error::refused(format!(
            "hardware id pattern {p:?}: use letters, digits, '.', '_', '-', '*', '?'"
        ))
    })
}

pub fn check_url(url: &str) -> Result<()> {
    let ok = url.starts_with("https://")
        || url.starts_with("http://")
        || url.starts_with("file://")
        || url.starts_with('/');
    if !ok || url.chars().any(char::is_whitespace) {
        return Err(Error::refused(format!(
            "{url:?} is not an http(s):// or file:// URL or an absolute path"
        )));
    }
    Ok(())
}

/// The pin of the repository at `url` whose root is `root_file` (it must verify); `what`
/// names it in errors ("supplier acme").
pub(super) fn pin_from_file(what: &str, root_file: &Path, url: &str) -> Result<RepositoryPin> {
    check_url(url)?;
    let limit = MetadataLimits::default().root;
    let bytes = fsutil::read_bounded(root_file, limit)?;
    let root = verified_root(
        &format!("{what} root {}", root_file.display()),
        &bytes,
        limit,
    )?;
    Ok(RepositoryPin::pin(&root, url)?)
}

/// Pin a supplier: its root (which must verify), URL, and the hardware ids it may serve.
pub fn supplier_add(
    dir: &Path,
    name: &str,
    root_file: &Path,
    url: &str,
    hardware_ids: &[String],
) -> Result<()> {
    let mut s = Settings::load(dir)?;
    names::check_role_name(name)?;
    if s.suppliers.contains_key(name) {
        return Err(Error::refused(format!(
            "supplier {name} already exists (remove or replace it)"
        )));
    }
    if hardware_ids.is_empty() {
        return Err(Error::refused(
            "give at least one --hardware-id the supplier may serve",
        ));
    }
    for p in hardware_ids {
        check_pattern(p)?;
    }
    let repository = pin_from_file(&format!("supplier {name}"), root_file, url)?;
    s.suppliers.insert(
        name.into(),
        SupplierEntry {
            repository,
            hardware_ids: hardware_ids.to_vec(),
        },
    );
    s.save(dir)
}

/// Re-pin supplier `name` to a new root (and URL), keeping its hardware ids and assignments:
/// after its root keys were stolen and it recovered with new keys, vehicles drop whatever they
/// walked under the old pin (an attacker's root chain included) and start again from this one.
pub fn supplier_repin(dir: &Path, name: &str, root_file: &Path, url: Option<&str>) -> Result<()> {
    let mut s = Settings::load(dir)?;
    let entry = s
        .suppliers
        .get_mut(name)
        .ok_or_else(|| Error::refused(format!("unknown supplier {name:?}")))?;
    let url = url.unwrap_or(&entry.repository.url).to_string();
    entry.repository = pin_from_file(&format!("supplier {name}"), root_file, &url)?;
    s.save(dir)
}

/// Withdraw every assignment of `supplier`'s images; returns how many.
fn withdraw(dir: &Path, supplier: &str) -> Result<usize> {
    // Shard by shard: memory stays bounded at any fleet size.
    store::migrate(dir)?;
    let mut n = 0;
    for shard in store::shard_files(dir, store::ASSIGNMENTS_DIR)? {
        let vins: Vec<String> =
            store::read_shard::<serde_json::Value>(dir, store::ASSIGNMENTS_DIR, &shard)?
                .0
                .into_keys()
                .collect();
        let Some(first) = vins.first() else { continue };
        let mut a = super::Assignments::load_for(dir, &[first])?;
        for ecus in a.vehicles.values_mut() {
            let before = ecus.len();
            ecus.retain(|_, e| e.supplier != supplier);
            n += before - ecus.len();
        }
        a.save(dir)?;
    }
    Ok(n)
}

/// Remove a supplier and withdraw every vehicle assignment of its images (returns how many).
pub fn supplier_remove(dir: &Path, name: &str) -> Result<usize> {
    let mut s = Settings::load(dir)?;
    if s.suppliers.remove(name).is_none() {
        return Err(Error::refused(format!("unknown supplier {name:?}")));
    }
    s.reviews.retain(|r| r.image.supplier != name);
    let n = withdraw(dir, name)?;
    s.save(dir)?;
    Ok(n)
}

/// Hand `old`'s hardware ids to `new` (already added), remove `old`, and withdraw `old`'s
/// assignments so they can be reassigned to `new`'s images. Returns the withdrawn count.
pub fn supplier_replace(dir: &Path, old: &str, new: &str) -> Result<usize> {
    let mut s = Settings::load(dir)?;
    let old_entry = s
        .suppliers
        .remove(old)
        .ok_or_else(|| Error::refused(format!("unknown supplier {old:?}")))?;
    let n_entry = s.suppliers.get_mut(new).ok_or_else(|| {
        Error::refused(format!(
            "unknown supplier {new:?}: add it with `oem supplier add` first"
        ))
    })?;
    for h in old_entry.hardware_ids {
        if !n_entry.hardware_ids.contains(&h) {
            n_entry.hardware_ids.push(h);
        }
    }
    s.reviews.retain(|r| r.image.supplier != old);
    let n = withdraw(dir, old)?;
    s.save(dir)?;
    Ok(n)
}
