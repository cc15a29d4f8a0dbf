//! `ota-tuf-conformance`: the client side of the public tuf-conformance contract
//! (`CLIENT-CLI.md` in theupdateframework/tuf-conformance), on top of [`ota_client::tuf`]:
//!
//! ```text
//! BIN --metadata-dir D init TRUSTED_ROOT
//! BIN --metadata-url U --metadata-dir D refresh
//! BIN --metadata-url U --metadata-dir D --target-name T [--target-name T2 …] \
//!     --target-dir TD --target-base-url TU download
//! ```
//!
//! Flags go before the subcommand, as the contract writes them (clap global arguments, so they
//! are accepted after it too). Exit status 0 when the command succeeded fully, 1 on any
//! failure, argument errors included (clap's own status for those is 2). Everything TUF is
//! [`Updater`]'s: this file parses arguments, picks a fetcher and reports.
//!
//! - `init` installs TRUSTED_ROOT as `D/root.json` (exact bytes) once it is signed by a threshold
//!   of its own root keys; it makes no request. Other files in `D` are left alone: every local
//!   file is verified against the trusted root before it is used.
//! - `refresh` runs the TUF client workflow (root chain, timestamp, snapshot, top-level
//!   targets). `D` holds unversioned names (`root.json`, `timestamp.json`, …, delegated roles
//!   percent-encoded) with the exact bytes served, written atomically.
//! - `download` refreshes, then looks the targets up through the delegation graph, in order;
//!   then, for each target found, skips it when `TD` already holds a file with the signed
//!   length and SHA-256, else downloads it (length-bounded, hashed while streaming, renamed
//!   into place only once verified), up to `Limits::download_concurrency` targets at once over
//!   reused connections. The first failure stops the run: a target not found stops the
//!   lookups (those before it are still fetched, none after it); a failed download stops
//!   further downloads from starting (those in flight finish), and the error reported is that
//!   of the first failed target in the order given. A target is stored in `TD` under its
//!   percent-encoded path (`a/b.txt` is `TD/a%2Fb.txt`), as python-tuf's conformance client
//!   does, so a re-download replaces the same file.
//!
//! `OTA_TUF_DOWNLOAD_CONCURRENCY` (1 to 64) sets how many targets are downloaded at once.
//!
//! URLs may be `http://`, `https://` (Mozilla's roots), `file:///abs/path` or a plain path.
//! The clock is read once per run with [`DateTime::now`] (`SystemTime::now`), so `faketime`
//! (LD_PRELOAD) moves it.

use clap::{Parser, Subcommand};
use ota_client::tuf::{self, AnyFetcher, CaRoots, HttpFetcher, Limits, Updater};
use ota_metadata::roles::TargetFile;
use ota_metadata::DateTime;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How many targets `download` fetches at once, when set (1 to 64; anything else is ignored
/// and the default of [`Limits::download_concurrency`] applies). The gateway benchmark sweeps
/// it to show how the default was chosen.
pub const CONCURRENCY_VAR: &str = "OTA_TUF_DOWNLOAD_CONCURRENCY";

/// The tuf-conformance client: a TUF 1.0 client over one repository.
///
/// Exit status: 0 on success, 1 on any failure.
#[derive(Debug, Parser)]
#[command(name = "ota-tuf-conformance", version)]
pub struct Cli {
    /// Directory of trusted metadata: root.json, timestamp.json, snapshot.json, targets.json
    /// and delegated roles, under unversioned names.
    #[arg(long, global = true, value_name = "DIR")]
    pub metadata_dir: Option<PathBuf>,
    /// Base URL of the repository's metadata (http://, https://, file:// or a path).
    #[arg(long, global = true, value_name = "URL")]
    pub metadata_url: Option<String>,
    /// Target path to download; repeat for several (looked up in the order given, then
    /// downloaded several at once).
    #[arg(long = "target-name", global = true, value_name = "TARGET")]
    pub target_names: Vec<String>,
    /// Directory downloaded targets are stored in.
    #[arg(long, global = true, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets.
    #[arg(long, global = true, value_name = "URL")]
    pub target_base_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install TRUSTED_ROOT as the trusted root.json (no network request).
    Init {
        /// A root.json file, installed byte for byte.
        trusted_root: PathBuf,
    },
    /// Update the trusted metadata from the repository.
    Refresh,
    /// Refresh, then download each --target-name into --target-dir.
    Download,
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Tuf(#[from] tuf::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("target {target:?}: no trusted targets role lists it")]
    TargetNotFound { target: String },
}

fn required<'a, T: ?Sized>(v: Option<&'a T>, flag: &str, cmd: &str) -> Result<&'a T, CliError> {
    v.ok_or_else(|| CliError::Usage(format!("{cmd} needs {flag}")))
}

/// Read at most `limit` bytes of `path`; a longer file is refused.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, CliError> {
    let io_err = |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > limit {
        return Err(CliError::Usage(format!(
            "{}: larger than the {limit}-byte root limit",
            path.display()
        )));
    }
    Ok(bytes)
}

fn init(dir: &Path, trusted_root: &Path, limits: &Limits) -> Result<String, CliError> {
    let bytes = read_bounded(trusted_root, limits.metadata.root)?;
    tuf::init_trusted_root(dir, &bytes, limits)?;
    Ok(format!(
        "installed {} as {}",
        trusted_root.display(),
        dir.join("root.json").display()
    ))
}

fn updater(
    dir: &Path,
    metadata_url: &str,
    targets_url: &str,
    limits: &Limits,
) -> Result<Updater<AnyFetcher>, CliError> {
    let http = HttpFetcher::new(limits, CaRoots::WebPki).map_err(tuf::Error::from)?;
    Ok(Updater::new(
        dir,
        metadata_url,
        targets_url,
        AnyFetcher::new(http),
        limits.clone(),
        DateTime::now(),
    )?)
}

fn versions(u: &Updater<AnyFetcher>) -> String {
    let t = u.trusted();
    let v = |o: Option<u64>| o.map_or_else(|| "-".to_string(), |v| v.to_string());
    format!(
        "root v{}, timestamp v{}, snapshot v{}, targets v{}",
        t.root().signed.version,
        v(t.timestamp().map(|x| x.signed.version)),
        v(t.snapshot().map(|x| x.signed.version)),
        v(t.targets("targets").map(|x| x.signed.version)),
    )
}

/// Run one command, reporting each step on `out` as it is done (so a failed run still shows
/// how far it got).
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let limits = limits_from_env();
    let name = match cli.command {
        Command::Init { .. } => "init",
        Command::Refresh => "refresh",
        Command::Download => "download",
    };
    // Progress output is a courtesy: a closed stdout is no reason to fail the run.
    let mut say = |line: String| {
        let _ = writeln!(out, "ota-tuf-conformance: {line}");
    };
    let dir = required(cli.metadata_dir.as_deref(), "--metadata-dir", name)?;
    match &cli.command {
        Command::Init { trusted_root } => say(init(dir, trusted_root, &limits)?),
        Command::Refresh => {
            let url = required(cli.metadata_url.as_deref(), "--metadata-url", name)?;
            // A refresh touches no target; the targets URL only has to be well formed.
            let mut u = updater(dir, url, &tuf::targets_url(url), &limits)?;
            u.refresh()?;
            say(format!("refreshed: {}", versions(&u)));
        }
        Command::Download => download(cli, dir, name, &limits, &mut say)?,
    }
    Ok(())
}

/// The default limits, but for [`CONCURRENCY_VAR`] when it is set to 1 to 64.
fn limits_from_env() -> Limits {
    let mut limits = Limits::default();
    if let Some(n) = std::env::var(CONCURRENCY_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
    {
        limits.download_concurrency = n;
    }
    limits
}

/// `download`: its arguments checked, the metadata refreshed, every target looked up and the
/// ones found fetched ([`look_up`]), each reported as reused or downloaded; then the failed
/// lookup's error, if one failed.
fn download(
    cli: &Cli,
    dir: &Path,
    name: &str,
    limits: &Limits,
    say: &mut dyn FnMut(String),
) -> Result<(), CliError> {
    let url = required(cli.metadata_url.as_deref(), "--metadata-url", name)?;
    let target_dir = required(cli.target_dir.as_deref(), "--target-dir", name)?;
    let base = required(cli.target_base_url.as_deref(), "--target-base-url", name)?;
    if cli.target_names.is_empty() {
        return Err(CliError::Usage(
            "download needs at least one --target-name".into(),
        ));
    }
    let mut u = updater(dir, url, base, limits)?;
    u.refresh()?;
    say(format!("refreshed: {}", versions(&u)));
    let (found, lookup_failed) = look_up(&mut u, &cli.target_names);
    let wanted: Vec<(&str, &TargetFile)> = found.iter().map(|(t, info, _)| (*t, info)).collect();
    let fetched = u.fetch_targets(&wanted, target_dir)?;
    for ((target, _, role), f) in found.iter().zip(&fetched) {
        say(match f {
            tuf::Fetched::Cached(path) => format!(
                "{target} (listed by {role}): {} already holds it, not downloaded",
                path.display()
            ),
            tuf::Fetched::Downloaded(path) => format!(
                "{target} (listed by {role}): downloaded to {}",
                path.display()
            ),
        });
    }
    if let Some(e) = lookup_failed {
        return Err(e);
    }
    Ok(())
}

/// Every lookup first, in order (they may fetch delegated roles), then the targets
/// themselves, several at once (Limits::download_concurrency). A failed lookup stops the
/// lookups; the targets found before it are still fetched, as they would have been one after
/// another, and then the lookup's error is reported. Returns the targets found (name, entry,
/// listing role) and the failed lookup's error.
#[allow(clippy::type_complexity)]
fn look_up<'n>(
    u: &mut Updater<AnyFetcher>,
    names: &'n [String],
) -> (Vec<(&'n str, TargetFile, String)>, Option<CliError>) {
    let mut found = Vec::with_capacity(names.len());
    let mut lookup_failed = None;
    for target in names {
        match u.get_targetinfo(target) {
            Ok(Some(tuf::Found { info, role, .. })) => found.push((target.as_str(), info, role)),
            Ok(None) => {
                lookup_failed = Some(CliError::TargetNotFound {
                    target: target.clone(),
                });
                break;
            }
            Err(e) => {
                lookup_failed = Some(e.into());
                break;
            }
        }
    }
    (found, lookup_failed)
}

/// Parse `args` (program name first), run, report on stdout/stderr, and return the exit
/// status: 0 on success (and for --help/--version), 1 on any failure.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; every other parse error is a
            // failure of the run, status 1 (not clap's 2).
            let _ = e.print();
            return if e.exit_code() == 0 { 0 } else { 1 };
        }
    };
    match run(&cli, &mut io::stdout().lock()) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "ota-tuf-conformance: error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bin").chain(args.iter().copied()))
    }

    #[test]
    fn flags_before_the_subcommand_and_repeated_targets() {
        let cli = parse(&[
            "--metadata-url",
            "http://h/m/",
            "--metadata-dir",
            "/d",
            "--target-name",
            "a",
            "--target-name",
            "b/c",
            "--target-dir",
            "/t",
            "--target-base-url",
            "http://h/t/",
            "download",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Download));
        assert_eq!(cli.target_names, ["a", "b/c"]);
        assert_eq!(cli.metadata_dir.as_deref(), Some(Path::new("/d")));
        let cli = parse(&["--metadata-dir", "/d", "init", "/r.json"]).unwrap();
        assert!(
            matches!(cli.command, Command::Init { ref trusted_root } if trusted_root == Path::new("/r.json"))
        );
    }

    #[test]
    fn argument_errors_are_failures_and_help_is_not() {
        // main_with_args maps a nonzero clap status to 1 and keeps 0 for help and version.
        for bad in [
            &["--bogus", "refresh"][..],
            &["--metadata-dir", "/d"],
            &["frobnicate"],
            &["--target-name"],
        ] {
            assert_ne!(parse(bad).unwrap_err().exit_code(), 0, "{bad:?}");
        }
        for ok in ["--help", "--version"] {
            assert_eq!(parse(&[ok]).unwrap_err().exit_code(), 0, "{ok}");
        }
    }

    #[test]
    fn missing_flags_are_usage_errors() {
        let cli = parse(&["refresh"]).unwrap();
        assert!(
            matches!(run(&cli, &mut io::sink()), Err(CliError::Usage(m)) if m.contains("--metadata-dir"))
        );
        let cli = parse(&["--metadata-dir", "/nonexistent", "refresh"]).unwrap();
        assert!(
            matches!(run(&cli, &mut io::sink()), Err(CliError::Usage(m)) if m.contains("--metadata-url"))
        );
        let cli = parse(&[
            "--metadata-dir",
            "/nonexistent",
            "--metadata-url",
            "/x",
            "--target-dir",
            "/t",
            "--target-base-url",
            "/x/targets",
            "download",
        ])
        .unwrap();
        assert!(
            matches!(run(&cli, &mut io::sink()), Err(CliError::Usage(m)) if m.contains("--target-name"))
        );
    }

    #[test]
    fn init_refuses_an_unreadable_or_oversized_root() {
        let tmp = tempfile::tempdir().unwrap();
        let tmp = tmp.path();
        let big = tmp.join("big.json");
        std::fs::write(&big, vec![b' '; 600_000]).unwrap();
        let limits = Limits::default();
        assert!(init(&tmp.join("meta"), &big, &limits).is_err());
        assert!(init(&tmp.join("meta"), &tmp.join("missing.json"), &limits).is_err());
        std::fs::write(tmp.join("junk.json"), b"{not json").unwrap();
        assert!(init(&tmp.join("meta"), &tmp.join("junk.json"), &limits).is_err());
        assert!(!tmp.join("meta").join("root.json").exists());
    }
}
