//! Opening a repository another party pinned: the OEM pins each supplier's and regulator's
//! repository by URL, root version and root keys. The pinned root is fetched, checked against
//! the pin, and becomes the trusted root of a local metadata directory; from there the
//! ordinary updater walks the root chain forward.

use super::store::MetadataStore;
use super::{init_trusted_root, Error, Fetch, Limits, Result, Updater};
use ota_metadata::documents::RepositoryPin;
use ota_metadata::roles::Root;
use ota_metadata::{DateTime, Envelope};
use std::collections::BTreeSet;
use std::path::Path;

/// The targets base URL of a repository: `targets/` under its metadata URL, where every
/// publisher of this project puts them.
pub fn targets_url(metadata_url: &str) -> String {
    format!("{}/targets/", metadata_url.trim_end_matches('/'))
}

/// Whether the locally trusted root still stands for `pin`: at the pinned version it must
/// have the pinned root keys; past it, it was reached by the chain from a pinned root.
fn local_root_fits(store: &MetadataStore, pin: &RepositoryPin, limits: &Limits) -> bool {
    let Ok(Some(bytes)) = store.read("root", limits.metadata.root) else {
        return false;
    };
    let Ok(env) = Envelope::parse("root", &bytes, limits.metadata.root) else {
        return false;
    };
    let Ok(root) = env.decode::<Root>("root", Root::TYPE) else {
        return false;
    };
    let Ok(r) = root.role("root") else {
        return false;
    };
    let ids = |v: &[ota_metadata::KeyId]| v.iter().cloned().collect::<BTreeSet<_>>();
    root.version > pin.root_version
        || (root.version == pin.root_version
            && ids(&r.keyids) == ids(&pin.root.keyids)
            && r.threshold == pin.root.threshold)
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
    if !local_root_fits(&store, pin, &limits) {
        let url = format!(
            "{}/{}.root.json",
            pin.url.trim_end_matches('/'),
            pin.root_version
        );
        let bytes = fetcher.fetch(&url, limits.metadata.root)?;
        pin.check_root(what, &bytes, limits.metadata.root)
            .map_err(Error::metadata(&url))?;
        // A new trust anchor: nothing trusted under the old one may linger.
        for role in ["timestamp", "snapshot", "targets"] {
            store.remove(role).map_err(Error::store(store.path(role)))?;
        }
        std::fs::create_dir_all(metadata_dir).map_err(Error::store(metadata_dir))?;
        init_trusted_root(metadata_dir, &bytes, &limits)?;
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
