//! Command-line interface of `ota-repo`: the top level and the argument types several command
//! groups share. Each group's own arguments are beside the code that runs them, in
//! [`crate::commands`]; the work itself is in the library modules.
//!
//! One naming scheme throughout (old spellings still parse, hidden):
//! - the working directory is always the first positional, `DIR`;
//! - the thing a command adds, removes or changes (supplier, regulator, tier-2 delegation) is
//!   `--name NAME` (was `delegate --to`);
//! - an ECU is always `--ecu`: `SERIAL` to select one, `SERIAL:HARDWARE_ID` to describe a new
//!   one (was `--serial` in `oem assign` and `oem ecu remove|key|replace`);
//! - a threshold is always the flag `--threshold` (was `oem regulator threshold DIR K`, then
//!   `--required K`);
//! - every command that changes DIR takes `--wait SECONDS` (on its group, global).

use crate::commands::key::{KeyCommand, KEY_EXAMPLES};
use crate::commands::oem::{OemCommand, OEM_EXAMPLES};
use crate::commands::regulator::{RegulatorCommand, REGULATOR_EXAMPLES};
use crate::commands::supplier::{SupplierCommand, SUPPLIER_EXAMPLES};
use crate::commands::upload::{UploadArgs, UPLOAD_EXAMPLES};
use crate::commands::verify::VerifyArgs;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ota-repo",
    version,
    about = "Publish the signed static trees of a vehicle OTA system: supplier image repositories, \
             the OEM master repository and regulator attestation repositories.",
    long_about = "Publish the signed static trees of a vehicle OTA system.\n\n\
        Each working directory holds ota-repo.json (settings, never published) and repository/, \
        a static tree of TUF metadata and targets that any web server or CDN can serve.\n\n\
        A supplier's first steps:\n  \
          ota-repo key generate --out acme-root.pem      # offline\n  \
          ota-repo key generate --out acme-online.pem\n  \
          ota-repo supplier init acme --name acme --root-key acme-root.pem --key acme-online.pem\n  \
          ota-repo supplier add-image acme --file brake.bin --uid brake-fw --version 1.0.0 \\\n      \
            --release-counter 1 --hardware-id BRAKE-ECU-A\n  \
          ota-repo supplier publish acme\n  \
          ota-repo verify acme",
    after_help = "Run `ota-repo COMMAND --help` for a command's options and examples."
)]
pub struct Cli {
    /// Pretend the current time is TIME (YYYY-MM-DDTHH:MM:SSZ), for reproducible trees and tests.
    #[arg(long, global = true, value_name = "TIME", hide = true)]
    pub now: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--wait`, on every command group whose commands lock their working directory.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct WaitArgs {
    /// When another ota-repo command is working in DIR, wait up to SECONDS for it to finish
    /// instead of failing at once (for publishes from cron). Default: do not wait.
    #[arg(long, value_name = "SECONDS", global = true)]
    pub wait: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate and inspect signing keys.
    #[command(subcommand, after_help = KEY_EXAMPLES)]
    Key(KeyCommand),
    /// A supplier's image repository: images, image manifests, tier-2 delegations.
    #[command(after_help = SUPPLIER_EXAMPLES)]
    Supplier {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: SupplierCommand,
    },
    /// The OEM's master repository: suppliers, regulators, inventory, review, assignments.
    #[command(after_help = OEM_EXAMPLES)]
    Oem {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: OemCommand,
    },
    /// A regulator's attestation repository: review, scan and attest images; revoke.
    #[command(after_help = REGULATOR_EXAMPLES)]
    Regulator {
        #[command(flatten)]
        wait: WaitArgs,
        #[command(subcommand)]
        command: RegulatorCommand,
    },
    /// Send a published tree (supplier, OEM or regulator) to object storage or a directory, in
    /// the order that keeps it whole for clients: images and versioned metadata first,
    /// root.json, then timestamp.json alone and last. Only what the store lacks is sent (names
    /// and sizes; written-once files never change). Objects carry their cache rules:
    /// timestamp.json and root.json --short-max-age, everything else immutable for a year. A
    /// failed or killed upload leaves the store serving the previous version; run it again.
    #[command(after_help = UPLOAD_EXAMPLES)]
    Upload(UploadArgs),
    /// Check a whole published tree: root chain, signatures, versions, expiry, every target's
    /// length and hash, and every image manifest and its compact form (and that each delta it
    /// lists rebuilds its image).
    Verify(VerifyArgs),
}

/// `ROLE=VALUE` pairs.
pub(crate) fn role_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(r, v)| (r.trim().to_string(), v.trim().to_string()))
        .filter(|(r, v)| !r.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{s:?}: expected ROLE=VALUE, e.g. timestamp=1d"))
}

#[derive(Args, Debug)]
pub struct RoleKeyArgs {
    /// Private key (PEM) for every role not given its own key below; repeat for several keys.
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Root key(s) (PEM); repeatable. Default: --key. Keep root keys offline.
    #[arg(long, value_name = "FILE")]
    pub root_key: Vec<PathBuf>,
    /// Targets key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub targets_key: Vec<PathBuf>,
    /// Snapshot key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub snapshot_key: Vec<PathBuf>,
    /// Timestamp key(s) (PEM); repeatable. Default: --key.
    #[arg(long, value_name = "FILE")]
    pub timestamp_key: Vec<PathBuf>,
    /// Signature threshold of a role, e.g. root=2: how many of its distinct keys must sign
    /// (1 to its number of keys); repeatable. Default: 1 for every role.
    #[arg(long, value_name = "ROLE=N", value_parser = role_value)]
    pub threshold: Vec<(String, String)>,
    /// Lifetime of a role's signed documents, a number with unit s, m, h, d or w, e.g.
    /// timestamp=6h; repeatable, at most 3653d. Defaults: root=365d targets=90d snapshot=7d
    /// timestamp=1d (OEM review and vehicles: 90d).
    #[arg(long, value_name = "ROLE=DURATION", value_parser = role_value)]
    pub expires: Vec<(String, String)>,
}

/// The working directory argument every publisher command takes first.
pub(crate) const DIR_HELP: &str =
    "Working directory: holds ota-repo.json (settings, never published) and repository/ (the tree to serve)";

/// `rotate-key`, the same for every publisher.
#[derive(Args, Debug)]
pub struct RotateArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The role whose keys are replaced (root, targets, snapshot, timestamp, a tier-2
    /// delegation; for the OEM also review and vehicles).
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// The new private key(s) (PEM) of the role; repeatable. Default: a new RSA-3072 key
    /// generated in DIR/keys/ (mode 0600); move it offline if it is a root key.
    #[arg(long, value_name = "FILE")]
    pub new_key: Vec<PathBuf>,
    /// New signature threshold of the role: how many of its distinct keys must sign (1 to
    /// the number of new keys). Default: unchanged.
    #[arg(long, value_name = "N")]
    pub threshold: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every argument of every subcommand, with the path to it, that has no help text; every
    /// subcommand without an `about`; every command group without examples.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        if cmd.has_subcommands() && path != "ota-repo" {
            let examples = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !examples.starts_with("Examples") {
                out.push(format!("{path} (a command group without examples)"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                out.push(format!("{path} {} (no about)", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_of_every_subcommand_says_what_it_means() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        undocumented(&cmd, "ota-repo", &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    /// The command lines of an Examples section: continuation lines joined, comments
    /// dropped, split into words as a shell would (single quotes only, as the examples use).
    pub(crate) fn example_commands(help: &str) -> Vec<Vec<String>> {
        let mut lines: Vec<String> = Vec::new();
        let mut continued = false;
        for l in help.lines().skip(1) {
            let l = l.trim();
            if continued {
                lines.last_mut().unwrap().push_str(l);
            } else if l.starts_with("ota-repo ") {
                lines.push(l.to_string());
            }
            continued = l.ends_with('\\');
            if continued {
                let last = lines.last_mut().unwrap();
                last.pop();
            }
        }
        lines
            .iter()
            .map(|line| {
                let (mut words, mut word, mut quoted, mut has) =
                    (Vec::new(), String::new(), false, false);
                for c in line.chars() {
                    match c {
                        '\'' => {
                            quoted = !quoted;
                            has = true;
                        }
                        '#' if !quoted && !has => break,
                        ' ' if !quoted => {
                            if has {
                                words.push(std::mem::take(&mut word));
                                has = false;
                            }
                        }
                        '|' if !quoted => break,
                        c => {
                            word.push(c);
                            has = true;
                        }
                    }
                }
                if has {
                    words.push(word);
                }
                words
            })
            .collect()
    }

    /// Every command group, with its path, and its examples.
    fn groups(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name());
            if sub.has_subcommands() {
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                out.push((p.clone(), help));
                groups(sub, &p, out);
            }
        }
    }

    #[test]
    fn every_command_group_shows_examples_that_parse() {
        let mut all = Vec::new();
        groups(&Cli::command(), "ota-repo", &mut all);
        let names: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        for g in [
            "ota-repo key",
            "ota-repo supplier",
            "ota-repo oem",
            "ota-repo regulator",
        ] {
            assert!(names.contains(&g), "{names:?}");
        }
        for (group, help) in &all {
            assert!(help.starts_with("Examples"), "{group}: {help:?}");
            let cmds = example_commands(help);
            assert!(!cmds.is_empty(), "{group}: no example");
            for words in cmds {
                let line = words.join(" ");
                // Each example is a command of this group (or the verify that ends a workflow).
                assert!(
                    line.starts_with(&format!("{group} ")) || line.starts_with("ota-repo verify "),
                    "{group}: {line}"
                );
                // Written with today's flags: hidden old spellings do not count.
                for old in ["--serial", "--required", "--to "] {
                    assert!(!line.contains(old), "{group}: old spelling {old}: {line}");
                }
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("{group}: example does not parse: {line}\n{e}");
                }
            }
        }
    }

    #[test]
    fn old_spellings_still_parse() {
        for line in [
            "ota-repo supplier delegate d --to t2 --key k --sign-here --hardware-id H",
            "ota-repo oem assign d --vin V --serial S --supplier a --uid u --version 1",
            "ota-repo oem ecu remove d --vin V --serial S",
            "ota-repo oem ecu key d --vin V --serial S --key k",
            "ota-repo oem ecu replace d --vin V --serial S --with T:H",
            "ota-repo oem regulator threshold d --required 2",
            "ota-repo oem regulator threshold d 2",
        ] {
            let words: Vec<&str> = line.split(' ').collect();
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("{line}: {e}");
            }
        }
        // The old spellings stay out of the help.
        let mut help = Vec::new();
        Cli::command()
            .find_subcommand_mut("oem")
            .unwrap()
            .find_subcommand_mut("assign")
            .unwrap()
            .write_long_help(&mut help)
            .unwrap();
        let help = String::from_utf8(help).unwrap();
        assert!(
            help.contains("--ecu <SERIAL>") && !help.contains("--serial"),
            "{help}"
        );
    }
}
