//! `ota-repo oem report serve`: collect the version reports gateways POST (`report_url` of
//! `ota-gateway run`) into the report database, on [`ota_fleet::server`] (async, bounded
//! connections, one deadline per connection, signatures verified before anything is written;
//! plain HTTP on loopback behind the TLS web server of `deploy/`).
//!
//! Never takes the working directory's lock: publishes and assignments run beside it. Prints
//! one line per request (status and reason); a closed stdout does not stop it.

use super::reports::{open, ShardInventory};
use crate::error::Result;
use ota_fleet::server::{Log, Options};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Serve {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub deadline: Duration,
    pub max_requests: Option<u64>,
}

/// Serve until killed (or `max_requests` requests).
pub fn serve(dir: &Path, s: Serve) -> Result<()> {
    // Opened (migrated, legacy state imported) here, so that errors show before listening.
    drop(open(dir)?);
    let settings = super::Settings::load(dir)?;
    let at = super::reports::location(dir, &settings);
    let inventory = Arc::new(ShardInventory::new(dir)?);
    let log: Log = Arc::new(|line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    });
    let mut opts = Options::new(s.listen);
    opts.max_connections = s.max_connections;
    opts.deadline = s.deadline;
    opts.max_requests = s.max_requests;
    let announce = log.clone();
    let shown = at.to_string();
    ota_fleet::server::serve(&at, inventory, opts, log, move |local| {
        announce(&format!("listening on http://{local} (reports to {shown})"));
    })?;
    Ok(())
}
