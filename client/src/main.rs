//! `ota-gateway`: the vehicle gateway's updater.

use clap::{Parser, Subcommand};
use ota_client::config::{Config, ForwardConfig};
use ota_client::forward::{CanBus, CanForwarder, DirForwarder, Forwarder};
use ota_client::gateway::{summary, EcuOutcome, Gateway, GatewayError};
use ota_client::tuf::fetch::{CaRoots, HttpFetcher};
use ota_client::{out, service, stop};
use ota_metadata::DateTime;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ota-gateway",
    version,
    about = "The vehicle gateway's updater: walks the OEM's master repository, the regulators' \
             attestations and the suppliers' image repositories, verifies everything, and hands \
             each verified image to its ECU.",
    long_about = None
)]
struct Cli {
    /// The gateway's configuration (TOML).
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "/etc/ota/gateway.toml"
    )]
    config: PathBuf,
    /// Pretend the current time is TIME (YYYY-MM-DDTHH:MM:SSZ), for tests.
    #[arg(long, value_name = "TIME", hide = true)]
    now: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the factory OEM root (master_root) as the trusted root, and create the state
    /// directory.
    Init {
        /// Start over from the factory root, forgetting all trusted metadata.
        #[arg(long)]
        force: bool,
    },
    /// Show what would change: every metadata and attestation check, no image downloaded.
    Check,
    /// Walk and verify, download every image, send each into its ECU's inactive slot, and
    /// activate them all only when every ECU holds its image verified (all or nothing).
    Update,
    /// Installed versions, trusted metadata versions, last check and update.
    Status,
    /// Ask every ECU for its signed version report and write the vehicle version report
    /// (signed with vehicle_key) for the OEM (`ota-repo oem report ingest`).
    Report {
        /// Where to write the report (default: standard output, unless --send).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// POST it to `report_url` (as `run` does after each check); fails when the OEM's
        /// server does not accept it.
        #[arg(long)]
        send: bool,
    },
    /// Run as a service: `update` every `[service] interval_secs` (with random jitter, and
    /// exponential backoff after failures), POST the version report to `report_url`, one JSON
    /// line per check on stdout. SIGTERM/SIGINT stop it cleanly (exit 0).
    Run {
        /// Stop after N checks (tests).
        #[arg(long, value_name = "N", hide = true)]
        max_checks: Option<u64>,
        /// One check, then stop (the same as --max-checks 1).
        #[arg(long, hide = true)]
        once: bool,
        /// Override `[service] interval_secs` (seconds).
        #[arg(long, value_name = "SECS")]
        interval: Option<u64>,
    },
}

fn run(cli: Cli) -> Result<bool, GatewayError> {
    let mut config = Config::load(&cli.config)?;
    if let Command::Run {
        max_checks,
        once,
        interval,
    } = cli.command
    {
        if let Some(i) = interval {
            config.service.interval_secs = i.max(1);
            config.service.jitter_secs = config.service.jitter_secs.min(i);
        }
        let max = if once { Some(1) } else { max_checks };
        return serve(config, cli.now.as_deref(), max);
    }
    let now = match &cli.now {
        Some(t) => DateTime::parse(t).map_err(|e| GatewayError::Refused(format!("--now: {e}")))?,
        None => DateTime::now(),
    };
    let gw = Gateway::new(config, now)?;
    match cli.command {
        Command::Init { force } => {
            gw.init(force)?;
            out::line(format_args!(
                "trusting {} for {}",
                gw.config.master_root.display(),
                gw.config.master_url
            ));
            Ok(true)
        }
        Command::Status => {
            out::text(&gw.status()?);
            Ok(true)
        }
        Command::Check => report(gw.run(None)?),
        Command::Report { out, send } => {
            let mut fw = forwarder(&gw);
            let bytes = gw.report(fw.as_mut())?;
            if send {
                let url = gw.config.report_url.clone().ok_or_else(|| {
                    GatewayError::Refused(
                        "--send: set report_url in the configuration (where the OEM collects reports)"
                            .into(),
                    )
                })?;
                send_report(&gw.config, &url, &bytes).map_err(GatewayError::Refused)?;
                out::line(format_args!("sent the vehicle version report to {url}"));
                if out.is_none() {
                    return Ok(true);
                }
            }
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes).map_err(|source| GatewayError::State {
                        path: path.clone(),
                        source,
                    })?;
                    out::line(format_args!(
                        "wrote the vehicle version report to {}",
                        path.display()
                    ));
                }
                None => out::text(&String::from_utf8_lossy(&bytes)),
            }
            Ok(true)
        }
        Command::Update => {
            let mut fw = forwarder(&gw);
            report(gw.run(Some(fw.as_mut()))?)
        }
        Command::Run { .. } => Ok(true),
    }
}

/// The service loop of `ota-gateway run`.
fn serve(config: Config, now: Option<&str>, max_checks: Option<u64>) -> Result<bool, GatewayError> {
    ota_client::stop::install()
        .map_err(|e| GatewayError::Refused(format!("cannot handle SIGTERM: {e}")))?;
    let mut delay = service::first_delay(&config.service);
    let mut failures: u32 = 0;
    let mut checks: u64 = 0;
    loop {
        if stop::sleep(Duration::from_secs(delay)) {
            return Ok(true);
        }
        checks = checks.saturating_add(1);
        let (outcome, updated, error) = check(&config, now);
        let failed = outcome == service::Outcome::Failed;
        let report = if stop::requested() {
            None
        } else {
            upload_report(&config, now)
        };
        // A report that could not be uploaded is sent again at the next check; it does not
        // fail the check (nor back off the updates).
        failures = if failed {
            failures.saturating_add(1)
        } else {
            0
        };
        let last = max_checks.is_some_and(|m| checks >= m) || stop::requested();
        delay = service::next_delay(&config.service, failures);
        let line = service::LogLine {
            time: DateTime::now().to_string(),
            vin: &config.vin,
            check: checks,
            outcome,
            ecus_updated: updated,
            error_kind: error.as_ref().map(|(k, _)| *k),
            error: error.map(|(_, e)| e),
            report,
            stopped: stop::requested(),
            next_check_secs: delay,
        };
        out::line(format_args!("{}", line.to_line()));
        out::text("");
        if last {
            return Ok(true);
        }
    }
}

type CheckResult = (
    service::Outcome,
    Vec<String>,
    Option<(&'static str, String)>,
);

/// One `update`, summed up for the log line.
fn check(config: &Config, now: Option<&str>) -> CheckResult {
    let fail = |kind: &'static str, e: String| (service::Outcome::Failed, vec![], Some((kind, e)));
    let now = match now.map(DateTime::parse) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return fail("config", format!("--now: {e}")),
        None => DateTime::now(),
    };
    let gw = match Gateway::new(config.clone(), now) {
        Ok(g) => g,
        Err(e) => return fail(error_kind(&e), e.to_string()),
    };
    let mut fw = forwarder(&gw);
    let outcomes = match gw.run(Some(fw.as_mut())) {
        Ok(o) => o,
        Err(e) => return fail(error_kind(&e), e.to_string()),
    };
    let mut updated = Vec::new();
    let mut first_error = None;
    let mut unclean = false;
    for (serial, o) in &outcomes {
        match o {
            EcuOutcome::Updated { .. } => updated.push(serial.clone()),
            EcuOutcome::Failed(e) | EcuOutcome::FailedRecalled { error: e, .. } => {
                let kind = match e.check() {
                    Some(_) => "walk",
                    None => match e {
                        ota_client::gateway::EcuError::Forward(_) => "forward",
                        ota_client::gateway::EcuError::Activation(_) => "activation",
                        ota_client::gateway::EcuError::Staging(_) => "staging",
                        _ => "state",
                    },
                };
                first_error.get_or_insert((kind, format!("ECU {serial}: {e}")));
            }
            EcuOutcome::Reverted {
                uid,
                version,
                reason,
            } => {
                first_error.get_or_insert((
                    "reverted",
                    format!("ECU {serial}: {uid} {version} reverted: {reason}"),
                ));
            }
            EcuOutcome::HeldBack { .. } | EcuOutcome::Recalled { .. } => unclean = true,
            EcuOutcome::WouldUpdate {
                recall: Some(_), ..
            } => unclean = true,
            _ => {}
        }
    }
    if stop::requested() && first_error.is_some() {
        first_error = Some(("stopped", "stopped by a signal during the check".into()));
    }
    let outcome = if first_error.is_some() {
        service::Outcome::Failed
    } else if !updated.is_empty() {
        service::Outcome::Updated
    } else if unclean {
        service::Outcome::Ok
    } else {
        service::Outcome::NothingNew
    };
    (outcome, updated, first_error)
}

fn error_kind(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::Config(_) => "config",
        GatewayError::Tuf(_) => "metadata",
        GatewayError::Walk(_) => "walk",
        GatewayError::State { .. } => "state",
        GatewayError::Staging(_) => "staging",
        GatewayError::Refused(_) => "refused",
    }
}

/// Ask the ECUs for their reports and POST the signed vehicle report to `report_url`: None
/// when no URL is configured, else "uploaded" or why not (retried at the next check).
fn upload_report(config: &Config, now: Option<&str>) -> Option<String> {
    let url = config.report_url.as_ref()?;
    let now = match now.map(DateTime::parse) {
        Some(Ok(t)) => t,
        _ => DateTime::now(),
    };
    let result = (|| -> Result<(), String> {
        let gw = Gateway::new(config.clone(), now).map_err(|e| e.to_string())?;
        let mut fw = forwarder(&gw);
        let bytes = gw.report(fw.as_mut()).map_err(|e| e.to_string())?;
        send_report(config, url, &bytes)
    })();
    Some(match result {
        Ok(()) => "uploaded".into(),
        Err(e) => format!("failed: {e}"),
    })
}

/// POST a signed report to `url` over the configuration's TLS roots.
fn send_report(config: &Config, url: &str, bytes: &[u8]) -> Result<(), String> {
    let roots = match (&config.ca_bundle, config.system_roots) {
        (Some(p), _) => CaRoots::from_pem_file(p).map_err(|e| e.to_string())?,
        (None, true) => CaRoots::WebPki,
        (None, false) => CaRoots::None,
    };
    let http = HttpFetcher::new(&config.limits(), roots).map_err(|e| e.to_string())?;
    http.post_json(url, bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn forwarder(gw: &Gateway) -> Box<dyn Forwarder> {
    match &gw.config.forward {
        ForwardConfig::Dir { path } => Box::new(DirForwarder::new(path)),
        ForwardConfig::Udp {
            bind,
            peers,
            fd,
            compress,
        } => Box::new(
            CanForwarder::new(
                CanBus::Udp {
                    bind: *bind,
                    peers: peers.clone(),
                },
                *fd,
            )
            .compress(*compress),
        ),
        ForwardConfig::Socketcan {
            interface,
            compress,
        } => Box::new(
            CanForwarder::new(
                CanBus::SocketCan {
                    interface: interface.clone(),
                },
                false,
            )
            .compress(*compress),
        ),
    }
}

/// Print each ECU's outcome; false if any failed, was held back or runs a recalled image (so
/// scripts and fleet monitoring see it in the exit status).
fn report(outcomes: Vec<(String, EcuOutcome)>) -> Result<bool, GatewayError> {
    let mut ok = true;
    let mut held = None;
    for (serial, o) in &outcomes {
        match o {
            EcuOutcome::Failed(_)
            | EcuOutcome::FailedRecalled { .. }
            | EcuOutcome::Reverted { .. }
            | EcuOutcome::Recalled { .. }
            | EcuOutcome::WouldUpdate {
                recall: Some(_), ..
            } => {
                ok = false;
                out::err_line(format_args!("ECU {serial}: {}", summary(o)));
            }
            EcuOutcome::HeldBack { because, .. } => {
                ok = false;
                held = Some(because.clone());
                out::err_line(format_args!("ECU {serial}: {}", summary(o)));
            }
            _ => out::line(format_args!("ECU {serial}: {}", summary(o))),
        }
    }
    if let Some(because) = held {
        out::err_line(format_args!(
            "ota-gateway: update not applied: ECU {} failed, so no ECU switched (all or nothing); every ECU keeps its image",
            because.join(", ECU ")
        ));
    }
    Ok(ok)
}

fn main() {
    match run(Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            out::err_line(format_args!("ota-gateway: error: {e}"));
            std::process::exit(1);
        }
    }
}
