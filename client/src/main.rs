//! `ota-gateway`: the vehicle gateway's updater.

use clap::{Parser, Subcommand};
use ota_client::config::{Config, ForwardConfig};
use ota_client::forward::{CanBus, CanForwarder, DirForwarder, Forwarder};
use ota_client::gateway::{summary, EcuOutcome, Gateway, GatewayError};
use ota_metadata::DateTime;
use std::path::PathBuf;

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
        /// Where to write the report (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<bool, GatewayError> {
    let config = Config::load(&cli.config)?;
    let now = match &cli.now {
        Some(t) => DateTime::parse(t).map_err(|e| GatewayError::Refused(format!("--now: {e}")))?,
        None => DateTime::now(),
    };
    let gw = Gateway::new(config, now)?;
    match cli.command {
        Command::Init { force } => {
            gw.init(force)?;
            println!(
                "trusting {} for {}",
                gw.config.master_root.display(),
                gw.config.master_url
            );
            Ok(true)
        }
        Command::Status => {
            print!("{}", gw.status()?);
            Ok(true)
        }
        Command::Check => report(gw.run(None)?),
        Command::Report { out } => {
            let mut fw = forwarder(&gw);
            let bytes = gw.report(fw.as_mut())?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes).map_err(|source| GatewayError::State {
                        path: path.clone(),
                        source,
                    })?;
                    println!("wrote the vehicle version report to {}", path.display());
                }
                None => print!("{}", String::from_utf8_lossy(&bytes)),
            }
            Ok(true)
        }
        Command::Update => {
            let mut fw = forwarder(&gw);
            report(gw.run(Some(fw.as_mut()))?)
        }
    }
}

fn forwarder(gw: &Gateway) -> Box<dyn Forwarder> {
    match &gw.config.forward {
        ForwardConfig::Dir { path } => Box::new(DirForwarder::new(path)),
        ForwardConfig::Udp { bind, peers, fd } => Box::new(CanForwarder::new(
            CanBus::Udp {
                bind: *bind,
                peers: peers.clone(),
            },
            *fd,
        )),
        ForwardConfig::Socketcan { interface } => Box::new(CanForwarder::new(
            CanBus::SocketCan {
                interface: interface.clone(),
            },
            false,
        )),
    }
}

/// Print each ECU's outcome; false if any failed, was held back or runs a recalled image (so
/// scripts and fleet monitoring see it in the exit status).
fn report(outcomes: Vec<(String, EcuOutcome)>) -> Result<bool, GatewayError> {
    let mut ok = true;
    let mut held = None;
    for (serial, o) in &outcomes {
        match o {
            EcuOutcome::Failed(_) | EcuOutcome::Recalled { .. } => {
                ok = false;
                eprintln!("ECU {serial}: {}", summary(o));
            }
            EcuOutcome::HeldBack { because, .. } => {
                ok = false;
                held = Some(because.clone());
                eprintln!("ECU {serial}: {}", summary(o));
            }
            _ => println!("ECU {serial}: {}", summary(o)),
        }
    }
    if let Some(because) = held {
        eprintln!(
            "ota-gateway: update not applied: ECU {} failed, so no ECU switched (all or nothing); every ECU keeps its image",
            because.join(", ECU ")
        );
    }
    Ok(ok)
}

fn main() {
    match run(Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("ota-gateway: error: {e}");
            std::process::exit(1);
        }
    }
}
