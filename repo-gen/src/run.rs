//! Dispatch of parsed commands, and what each prints.

use crate::cli::{
    Cli, Command, EcuCommand, OemCommand, OemRegulatorCommand, OemReviewCommand,
    OemSupplierCommand, ReportCommand, VehicleCommand,
};
use crate::commands::{print_report, role_options, rotate};
use crate::error::{Error, Result};
use crate::{fsutil, oem, verify};
use ota_metadata::DateTime;
use std::path::Path;

pub fn run(cli: Cli) -> Result<()> {
    let now = match &cli.now {
        Some(t) => DateTime::parse(t)?,
        None => DateTime::now(),
    };
    match cli.command {
        Command::Key(k) => crate::commands::key::run(k),
        Command::Supplier { wait, command } => {
            crate::commands::supplier::run(command, wait.wait, now)
        }
        Command::Oem { wait, command } => oem_cmd(command, wait.wait, now),
        Command::Regulator { wait, command } => {
            crate::commands::regulator::run(command, wait.wait, now)
        }
        Command::Upload {
            dir,
            to,
            prune,
            jobs,
            short_max_age,
            dry_run,
            wait,
        } => {
            // Also when the tree is named by its path: a publish must not change it mid-upload.
            let workdir = crate::upload::working_dir_of(&dir);
            let _lock = crate::workdir::lock_waiting(&workdir, wait.wait)?;
            let r = crate::upload::upload(
                &dir,
                &crate::upload::UploadOpts {
                    to,
                    prune,
                    jobs,
                    short_max_age,
                    dry_run,
                    s3_config: Vec::new(),
                },
            )?;
            let verb = if dry_run { "would send" } else { "sent" };
            say!(
                "{verb} {} object(s), {} bytes, to {}; {} already there{}",
                r.sent,
                r.bytes,
                r.destination,
                r.already,
                if prune {
                    format!("; pruned {}", r.pruned)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Verify { dir, root } => {
            let s = verify::verify(&dir, root.as_deref(), now)?;
            let extra = if s.attestations > 0 {
                format!(", {} attestation(s), {} veto(es)", s.attestations, s.vetoes)
            } else if s.extra_roles.is_empty() {
                String::new()
            } else {
                format!(
                    ", roles {} and {} vehicle(s)",
                    s.extra_roles.join(", "),
                    s.vehicles
                )
            };
            say!(
                "OK {}: root v{}, timestamp v{}, snapshot v{}, {} targets role(s), {} target(s), {} image(s){extra} verified{}",
                verify::tree_dir(&dir).display(),
                s.root_version,
                s.timestamp_version,
                s.snapshot_version,
                s.targets_roles,
                s.targets,
                s.images,
                if s.pinned_root { "" } else { " (trusting the tree's own 1.root.json; pass --root to pin one)" }
            );
            Ok(())
        }
    }
}

/// A vehicle's receiver leaves, for messages: `receiver 3 of hw:BRAKE-A, …`.
fn receivers<'a>(leaves: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    leaves
        .into_iter()
        .map(|(g, l)| format!("receiver {l} of {g}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn oem_dir(cmd: &OemCommand) -> Option<&Path> {
    Some(match cmd {
        OemCommand::Init { .. } => return None,
        OemCommand::Supplier(
            OemSupplierCommand::Add { dir, .. }
            | OemSupplierCommand::Remove { dir, .. }
            | OemSupplierCommand::Replace { dir, .. }
            | OemSupplierCommand::Repin(crate::cli::RepinArgs { dir, .. }),
        ) => dir,
        OemCommand::Regulator(
            OemRegulatorCommand::Add { dir, .. }
            | OemRegulatorCommand::DecryptionKeys { dir, .. }
            | OemRegulatorCommand::Remove { dir, .. }
            | OemRegulatorCommand::Threshold { dir, .. }
            | OemRegulatorCommand::MaxAge { dir, .. }
            | OemRegulatorCommand::Repin(crate::cli::RepinArgs { dir, .. }),
        ) => dir,
        OemCommand::Vehicle(
            VehicleCommand::Add { dir, .. }
            | VehicleCommand::Import { dir, .. }
            | VehicleCommand::Remove { dir, .. }
            | VehicleCommand::Key { dir, .. }
            | VehicleCommand::DecryptionKeys { dir, .. }
            | VehicleCommand::Secret { dir, .. }
            | VehicleCommand::RevokeKeys { dir, .. },
        ) => dir,
        // The report database orders reports and flags: no lock, so reports never wait for
        // (or delay) a publish.
        OemCommand::Report(
            ReportCommand::Ingest { .. }
            | ReportCommand::Flags { .. }
            | ReportCommand::Clear { .. }
            | ReportCommand::Events { .. }
            | ReportCommand::Serve { .. },
        ) => return None,
        OemCommand::Report(ReportCommand::Database { dir, .. }) => dir,
        // Reads of the report database.
        OemCommand::Fleet(_) => return None,
        OemCommand::Rollout(cmd) => cmd.dir(),
        OemCommand::Ecu(
            EcuCommand::Add { dir, .. }
            | EcuCommand::Key { dir, .. }
            | EcuCommand::Remove { dir, .. }
            | EcuCommand::Replace { dir, .. },
        ) => dir,
        OemCommand::Review(OemReviewCommand::Submit { dir, .. }) => dir,
        OemCommand::Assign { dir, .. }
        | OemCommand::EcuTrust { dir, .. }
        | OemCommand::Repair { dir, .. }
        | OemCommand::Publish { dir, .. }
        | OemCommand::RotateKey(crate::cli::RotateArgs { dir, .. }) => dir,
    })
}

/// Which ECUs `oem assign` is for, from its selector flags: exactly one of its three modes.
fn assign_target(
    vin: Option<String>,
    ecu: Option<String>,
    hardware_id: Option<String>,
) -> Result<oem::AssignTarget> {
    let problem = match (vin, ecu, hardware_id) {
        (Some(vin), serial, None) => return Ok(oem::AssignTarget::Vehicle { vin, serial }),
        (None, None, Some(h)) => return Ok(oem::AssignTarget::HardwareId(h)),
        (None, None, None) => "no ECUs selected",
        (None, Some(_), None) => "--ecu needs the --vin of its vehicle",
        (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
            "--hardware-id selects ECUs across the fleet and cannot be combined with --vin or --ecu"
        }
    };
    Err(Error::AssignSelector { problem })
}

fn oem_cmd(cmd: OemCommand, wait: Option<u64>, now: DateTime) -> Result<()> {
    let _lock = match oem_dir(&cmd) {
        Some(dir) => crate::workdir::lock_waiting(dir, wait)?,
        None => None,
    };
    let publish_hint = "run `ota-repo oem publish` to publish it";
    match cmd {
        OemCommand::Init {
            dir,
            keys,
            vehicle_bins,
        } => {
            let mut roles = role_options(&keys.common)?;
            for (role, files) in [
                ("review", &keys.review_key),
                ("vehicles", &keys.vehicles_key),
            ] {
                if !files.is_empty() {
                    roles.role_keys.insert(role.into(), files.clone());
                }
            }
            oem::init(&dir, &roles, vehicle_bins, now)?;
            say!("created OEM master repository in {}", dir.display());
        }
        OemCommand::Supplier(OemSupplierCommand::Add {
            dir,
            name,
            root,
            url,
            hardware_ids,
        }) => {
            oem::supplier_add(&dir, &name, &root, &url, &hardware_ids)?;
            say!("pinned supplier {name} ({url}) for {hardware_ids:?}; {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Remove { dir, name }) => {
            let n = oem::supplier_remove(&dir, &name)?;
            say!("removed supplier {name}; withdrew {n} assignment(s); {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Replace { dir, name, with }) => {
            let n = oem::supplier_replace(&dir, &name, &with)?;
            say!("{with} now serves {name}'s hardware ids; withdrew {n} assignment(s) to reassign; {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Repin(crate::cli::RepinArgs {
            dir,
            name,
            root,
            url,
        })) => {
            oem::supplier_repin(&dir, &name, &root, url.as_deref())?;
            say!(
                "re-pinned supplier {name} to {}; {publish_hint}",
                root.display()
            );
        }
        OemCommand::Regulator(OemRegulatorCommand::Repin(crate::cli::RepinArgs {
            dir,
            name,
            root,
            url,
        })) => {
            oem::regulator_repin(&dir, &name, &root, url.as_deref())?;
            say!(
                "re-pinned regulator {name} to {}; {publish_hint}",
                root.display()
            );
        }
        OemCommand::Regulator(OemRegulatorCommand::Add {
            dir,
            name,
            root,
            url,
        }) => {
            oem::regulator_add(&dir, &name, &root, &url)?;
            say!("authorized regulator {name} ({url}); {publish_hint}");
        }
        OemCommand::Regulator(OemRegulatorCommand::Remove { dir, name }) => {
            oem::regulator_remove(&dir, &name)?;
            say!("removed regulator {name}; {publish_hint}");
        }
        OemCommand::Regulator(OemRegulatorCommand::MaxAge { dir, max_age }) => {
            let age = (max_age != "none").then_some(max_age.as_str());
            oem::regulator_max_age(&dir, age)?;
            match age {
                Some(a) => say!(
                    "vehicles will refuse a regulator whose timestamp runs longer than {a}; {publish_hint}"
                ),
                None => say!("no bound on regulator timestamps beyond their expiry; {publish_hint}"),
            }
        }
        OemCommand::Regulator(OemRegulatorCommand::Threshold {
            dir,
            threshold,
            threshold_positional,
        }) => {
            // clap requires one of the two.
            let k = threshold.or(threshold_positional).unwrap_or(0);
            oem::regulator_threshold(&dir, k)?;
            say!("images now need {k} distinct regulator approval(s); {publish_hint}");
        }
        OemCommand::Vehicle(VehicleCommand::Add {
            dir,
            vin,
            ecus,
            aftermarket,
            decryption_keys,
            secret,
        }) => {
            oem::vehicle_add(&dir, &vin, &ecus, &aftermarket)?;
            say!(
                "added vehicle {vin} with {} ECU(s)",
                ecus.len() + aftermarket.len()
            );
            if let Some(out) = secret {
                oem::privacy::issue_vehicle_secret(&dir, &vin, &out)?;
                say!(
                    "  its secret in {}: install it in its gateway (vehicle_secret)",
                    out.display()
                );
            }
            if let Some(out) = decryption_keys {
                let leaves =
                    oem::broadcast::vehicle_keys(&dir, &vin, &out, oem::broadcast::Reissue::No)?;
                say!(
                    "  decryption keys ({}) in {}: install them in its gateway",
                    receivers(&leaves),
                    out.display()
                );
            }
        }
        OemCommand::Vehicle(VehicleCommand::Secret { dir, vin, out }) => {
            oem::privacy::issue_vehicle_secret(&dir, &vin, &out)?;
            say!(
                "wrote the secret of vehicle {vin} to {}: install it in its gateway (vehicle_secret)",
                out.display()
            );
        }
        OemCommand::Vehicle(VehicleCommand::Import { dir, file }) => {
            let r = oem::import::import_file(&dir, &file)?;
            say!(
                "imported {} vehicle(s); {} already in the inventory with the same ECUs; keys added to {}; {publish_hint}",
                r.added,
                r.unchanged,
                r.keyed
            );
        }
        OemCommand::Vehicle(VehicleCommand::Remove { dir, vin }) => {
            oem::vehicle_remove(&dir, &vin, now)?;
            say!("removed vehicle {vin}; {publish_hint} (its assignments are withdrawn)");
        }
        OemCommand::Vehicle(VehicleCommand::DecryptionKeys {
            dir,
            vin,
            out,
            replace,
            again,
        }) => {
            use oem::broadcast::Reissue;
            let how = match (replace, again) {
                (true, _) => Reissue::Replace,
                (_, true) => Reissue::Again,
                _ => Reissue::No,
            };
            let leaves = oem::broadcast::vehicle_keys(&dir, &vin, &out, how)?;
            say!(
                "wrote the decryption keys of vehicle {vin} ({}) to {}: install them in its gateway",
                receivers(&leaves),
                out.display()
            );
            if replace {
                say!("  the old unit's keys open nothing wrapped from the next publish on; {publish_hint}");
            }
        }
        OemCommand::Vehicle(VehicleCommand::RevokeKeys { dir, vin }) => {
            let leaves = oem::broadcast::vehicle_revoke_keys(&dir, &vin)?;
            say!(
                "vehicle {vin} ({}) is excluded from every encrypted image wrapped from the next publish on; {publish_hint}. What it decrypted before, and wraps of earlier publishes someone kept, stay open to its keys",
                receivers(leaves.iter().map(|(g, l)| (g, l)))
            );
        }
        OemCommand::Regulator(OemRegulatorCommand::DecryptionKeys { dir, name, out }) => {
            let leaf = oem::broadcast::regulator_keys(&dir, &name, &out)?;
            say!(
                "wrote the decryption keys of regulator {name} (receiver {leaf}) to {}",
                out.display()
            );
        }
        OemCommand::Ecu(EcuCommand::Add {
            dir,
            vin,
            ecu,
            aftermarket,
        }) => {
            oem::ecu_add(&dir, &vin, &ecu, aftermarket)?;
            say!(
                "added ECU {ecu} to {vin}{}",
                if aftermarket {
                    " (aftermarket: never updated)"
                } else {
                    ""
                }
            );
        }
        OemCommand::Vehicle(VehicleCommand::Key { dir, vin, key }) => {
            oem::vehicle_key(&dir, &vin, &key)?;
            say!("registered the key of vehicle {vin}");
        }
        OemCommand::Ecu(EcuCommand::Key {
            dir,
            vin,
            ecu: serial,
            key,
        }) => {
            oem::ecu_key(&dir, &vin, &serial, &key)?;
            say!("registered the key of ECU {serial} of {vin}");
        }
        OemCommand::Report(cmd) => report_cmd(cmd)?,
        OemCommand::Fleet(cmd) => crate::commands::fleet::run(cmd)?,
        OemCommand::Rollout(cmd) => crate::commands::rollout::run(cmd, now)?,
        OemCommand::Ecu(EcuCommand::Remove {
            dir,
            vin,
            ecu: serial,
        }) => {
            let withdrawn = oem::ecu_remove(&dir, &vin, &serial)?;
            say!(
                "removed ECU {serial} from {vin}{}",
                if withdrawn {
                    "; withdrew its assignment"
                } else {
                    ""
                }
            );
        }
        OemCommand::Ecu(EcuCommand::Replace {
            dir,
            vin,
            ecu: serial,
            with,
        }) => {
            let carried = oem::ecu_replace(&dir, &vin, &serial, &with)?;
            say!(
                "replaced ECU {serial} of {vin} by {with}{}",
                if carried {
                    "; its assignment carries over"
                } else {
                    "; assign an image to it"
                }
            );
        }
        OemCommand::Review(OemReviewCommand::Submit {
            dir,
            supplier,
            uid,
            version,
            from,
            ca,
            content_key,
        }) => {
            let r = oem::review_submit(
                &dir,
                oem::Submit {
                    supplier: &supplier,
                    uid: &uid,
                    version: &version,
                    from: from.as_deref(),
                    ca: ca.as_deref(),
                    content_key: content_key.as_deref(),
                },
                now,
            )?;
            if r.key_wraps.is_some() {
                say!(
                    "  encrypted: the content key is kept in DIR/{}; every publish wraps it for the regulators and the vehicles with an ECU of {:?}, less the excluded",
                    oem::broadcast::CONTENT_KEYS,
                    r.hardware_ids
                );
            }
            say!(
                "submitted {} {} of {supplier} for review ({} bytes, sha256 {}); {publish_hint}",
                r.image.uid,
                r.image.version,
                r.image.length,
                r.image.hashes.get("sha256").map_or("?", String::as_str)
            );
        }
        OemCommand::Assign {
            dir,
            vin,
            ecu,
            hardware_id,
            supplier,
            uid,
            version,
            force,
            ca,
            set,
            needs,
            conflicts_with,
        } => {
            let target = assign_target(vin, ecu, hardware_id)?;
            let done = oem::assign(
                &dir,
                oem::Assign {
                    target,
                    supplier,
                    uid: uid.clone(),
                    version: version.clone(),
                    approval: oem::Approval::Ask { ca, force, now },
                    rules: oem::Rules {
                        set,
                        requires: needs,
                        conflicts: conflicts_with,
                    },
                },
            )?;
            if let Some(why) = &done.forced {
                crate::warn::warn(format!(
                    "assigned with --force although {why}: vehicles hold {uid} {version} (and the rest of their update) until the regulators approve it"
                ));
            } else {
                say!("approved by {}", done.approved_by.join(", "));
            }
            for (v, s) in &done.ecus {
                say!("assigned {uid} {version} to {v}/{s}");
            }
            say!("{} ECU(s); {publish_hint}", done.ecus.len());
        }
        OemCommand::EcuTrust {
            dir,
            hardware_id,
            supplier_keys,
            supplier,
            from,
            ca,
            supplier_threshold,
            regulator_keys,
            regulator_threshold,
            full,
            signer_keys,
            signer_threshold,
            previous_signer_keys,
            min_release_counter,
            confirm_keys,
            legacy,
        } => {
            let suppliers = match supplier {
                Some(name) => oem::ecu_trust::SupplierKeys::Pinned {
                    name,
                    from,
                    ca,
                    now,
                },
                None => oem::ecu_trust::SupplierKeys::Files(supplier_keys),
            };
            let (version, path) = oem::ecu_trust(
                &dir,
                &oem::EcuTrust {
                    hardware_id: hardware_id.clone(),
                    suppliers,
                    supplier_threshold,
                    regulator_keys,
                    regulator_threshold,
                    full,
                    signer_keys,
                    signer_threshold,
                    confirmed_keys: confirm_keys,
                    previous_signer_keys,
                    min_release_counter,
                    legacy,
                },
            )?;
            say!(
                "trust document version {version} for {hardware_id}: {}; publish to send it to the vehicles",
                path.display()
            );
        }
        OemCommand::Repair { dir, from, ca } => {
            let repo = crate::workdir::repository_path(&dir);
            let n = oem::fleet::repair_from(&repo, &from, ca.as_deref())?;
            say!("{n} vehicle-tree node(s) brought back from {from}; every node now matches its hash");
        }
        OemCommand::Publish { dir, force } => {
            let r = oem::publish(&dir, now, force)?;
            say!(
                "published {}",
                crate::workdir::repository_path(&dir).display()
            );
            for w in &r.withdrawn {
                tell!("ota-repo: warning: assignment of {w} withdrawn: the ECU, its hardware id or its supplier is no longer valid");
            }
            say!(
                "  wrote assignments of {} vehicle(s), {} tree node(s)",
                r.vehicles_written,
                r.fleet.nodes_written
            );
            print_report(&r.roles);
        }
        OemCommand::RotateKey(args) => {
            // A key a vehicle or ECU signs its reports with never becomes one of the OEM's.
            oem::claims::refuse_registered(&args.dir, &args.new_key)?;
            rotate(args, now, crate::rotation::rotate::<oem::Settings>)?;
        }
    }
    Ok(())
}

use crate::commands::fleet::printable;

fn report_cmd(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Serve {
            dir,
            listen,
            max_connections,
            deadline,
            max_requests,
        } => oem::serve::serve(
            &dir,
            oem::serve::Serve {
                listen,
                max_connections,
                deadline: std::time::Duration::from_secs(deadline.max(1)),
                max_requests,
            },
        )?,
        ReportCommand::Flags { dir } => {
            for f in oem::flags(&dir)? {
                println!(
                    "{} {} (first {}, last {}, {} time(s)): {}",
                    f.vin,
                    f.serial,
                    f.first_seen,
                    f.last_seen,
                    f.times,
                    printable(&f.reason)
                );
            }
        }
        ReportCommand::Clear { dir, vin, ecu } => {
            for f in oem::clear_flags(&dir, &vin, ecu.as_deref())? {
                say!(
                    "cleared the flag of ECU {} of {}: {}",
                    f.serial,
                    f.vin,
                    printable(&f.reason)
                );
            }
        }
        ReportCommand::Events { dir, vin, json } => {
            let events = oem::reports::events(&dir, &vin)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&events)
                        .map_err(|e| Error::refused(e.to_string()))?
                );
            } else {
                for e in events {
                    println!(
                        "{} #{} {} {} {} {}{}{}",
                        e.at,
                        e.seq,
                        e.serial,
                        e.outcome.as_str(),
                        e.uid,
                        e.version,
                        if e.code.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", e.code)
                        },
                        if e.update.is_empty() {
                            String::new()
                        } else {
                            format!(" update {}", e.update)
                        },
                    );
                }
            }
        }
        ReportCommand::Database { dir, set, default } => {
            let at = if set.is_some() || default {
                let at = oem::reports::set_database(&dir, set.as_deref())?;
                say!(
                    "reports are kept in {at} (schema version {})",
                    ota_fleet::schema::VERSION
                );
                at
            } else {
                let s = oem::Settings::load(&dir)?;
                oem::reports::location(&dir, &s)
            };
            println!("{at}");
        }
        ReportCommand::Ingest { dir, file } => ingest_cmd(&dir, &file)?,
    }
    Ok(())
}

fn ingest_cmd(dir: &Path, file: &Path) -> Result<()> {
    fsutil::check_regular(file)?;
    let ota_fleet::Applied::Ingested {
        accepted,
        flagged,
        recalls,
        new_events,
    } = oem::ingest(dir, file)?
    else {
        say!("already ingested: the same report as the last one (nothing changed)");
        return Ok(());
    };
    say!("accepted the reports of {accepted} ECU(s); {new_events} new event(s)");
    for c in &recalls {
        tell!(
            "ota-repo: RECALL: ECU {} runs {} {}, revoked by regulator {}: {} (assign an approved image)",
            printable(&c.serial), printable(&c.uid), printable(&c.version), printable(&c.regulator), printable(&c.reason)
        );
    }
    for f in &flagged {
        tell!(
            "ota-repo: FLAGGED ECU {}: {}",
            printable(&f.serial),
            printable(&f.reason)
        );
    }
    if !flagged.is_empty() {
        return Err(Error::refused(format!(
            "{} ECU(s) flagged for the out-of-band replacement process (`ota-repo oem report flags`)",
            flagged.len()
        )));
    }
    Ok(())
}
