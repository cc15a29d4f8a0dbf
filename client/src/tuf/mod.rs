//! A TUF 1.0 client for one repository, read like the specification's client workflow
//! (python-tuf's ngclient `Updater` is the model).
//!
//! - [`limits`]: every bound the client applies, in one struct.
//! - [`fetch`]: how bytes arrive — the [`Fetch`] trait, a directory fetcher and an HTTP(S) one;
//!   every fetch is bounded while it reads.
//! - [`store`]: the local metadata directory, written atomically as the exact bytes received.
//! - [`updater`]: the workflow itself: [`Updater::refresh`], [`Updater::get_targetinfo`],
//!   [`Updater::download_target`], and [`Updater::fetch_targets`] for many at once.
//! - [`encode`]: how role and target names become file names and URL path segments.
//!
//! The trust decisions themselves (signatures, thresholds, versions, expiry, hashes of
//! metafiles) are [`ota_metadata::TrustedSet`]'s; this module decides what to fetch, in what
//! order, with what bounds, and what to keep.

mod download;
pub mod encode;
mod error;
pub mod fetch;
pub mod limits;
pub mod pinned;
pub mod store;
pub mod updater;

pub use download::StreamTap;
pub use error::{Error, Result};
pub use fetch::{
    AnyFetcher, CaRoots, Counting, DirFetcher, Fetch, FetchError, HttpFetcher, MinSpeed, RangeSink,
};
pub use limits::Limits;
pub use pinned::{open_pinned, targets_url};
pub use store::MetadataStore;
pub use updater::{init_trusted_root, Fetched, Found, Updater};
