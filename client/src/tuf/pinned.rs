//! Opening a repository another party pinned: the OEM pins each supplier's and regulator's
//! repository by URL, root version and root keys. The pinned root is fetched, checked against
//! the pin, and becomes the trusted root of a local metadata directory, with the pin recorded
//! beside it; from there the ordinary updater walks the root chain forward. When the pin
//! changes, the directory starts again from the new pin.

use super::store::MetadataStore;
use super::{init_trusted_root, Error, Fetch, Limits, Result, Updater};
use ota_metadata::documents::RepositoryPin;
use ota_metadata::DateTime;
use std::path::Path;

/// The targets base URL of a repository: `targets/` under its metadata URL, where every
/// publisher of this project puts them.
pub fn targets_url(metadata_url: &str) -> String {
    format!("{}/targets/", metadata_url.trim_end_matches('/'))
}

/// Bound on the stored pin.
const MAX_PIN: u64 = 1 << 20;

/// Whether the locally trusted root descends from `pin`: it must exist, and the pin its chain
/// started from (stored beside it) must be the same trust (root version, keys, threshold) as
/// `pin`. When the OEM re-pins a repository (a stolen root key, a replaced supplier), whatever
/// was walked under the old pin, including an attacker's root chain, is dropped and the walk
/// starts again from the new pin. A new URL alone (a mirror) keeps the local state.
fn local_root_descends(store: &MetadataStore, pin: &RepositoryPin, limits: &Limits) -> bool {
    let root = store.read("root", limits.metadata.root).ok().flatten();
    let stored = store
        .read_pin(MAX_PIN)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<RepositoryPin>(&b).ok());
    match (root, stored) {
        (Some(_), Some(stored)) => stored.same_trust(pin),
        _ => false,
    }
}

/// An updater for the repository `pin` describes, with its metadata kept in `metadata_dir`.
/// Call `refresh` on it next.
pub fn open_pinned<F: Fetch>(
    pin: &RepositoryPin,
    what: &str,
    metadata_dir: &Path,
    fetcher: F,
    limits: Limits,
    now: DateTime,
) -> Result<Updater<F>> {
    let store = MetadataStore::new(metadata_dir);
    if !local_root_descends(&store, pin, &limits) {
        let url = format!(
            "{}/{}.root.json",
            pin.url.trim_end_matches('/'),
            pin.root_version
        );
        let bytes = fetcher.fetch(&url, limits.metadata.root)?;
        pin.check_root(what, &bytes, limits.metadata.root)
            .map_err(Error::metadata(&url))?;
        // A new trust anchor: nothing trusted under the old one may linger, delegated roles
        // included (the directory is emptied, then the pinned root and the pin written).
        if metadata_dir.exists() {
            std::fs::remove_dir_all(metadata_dir).map_err(Error::store(metadata_dir))?;
        }
        std::fs::create_dir_all(metadata_dir).map_err(Error::store(metadata_dir))?;
        init_trusted_root(metadata_dir, &bytes, &limits)?;
        let pin_bytes = serde_json::to_vec(pin).map_err(|e| Error::Internal(e.to_string()))?;
        store
            .write_pin(&pin_bytes)
            .map_err(Error::store(metadata_dir))?;
    }
    Updater::new(
        metadata_dir,
        &pin.url,
        &targets_url(&pin.url),
        fetcher,
        limits,
        now,
    )
}
