//! Dispatch of parsed commands, and what each prints.

use crate::cli::{
    Cli, Command, EcuCommand, KeyCommand, OemCommand, OemRegulatorCommand, OemReviewCommand,
    OemSupplierCommand, RegulatorCommand, ReportCommand, RoleKeyArgs, SupplierCommand,
    VehicleCommand,
};
use crate::error::{Error, Result};
use crate::publish::Report;
use crate::{fsutil, keystore, oem, regulator, supplier, verify};
use ota_metadata::{DateTime, Key, SigningKey};
use std::collections::BTreeMap;
use std::path::Path;

pub fn run(cli: Cli) -> Result<()> {
    let now = match &cli.now {
        Some(t) => DateTime::parse(t)?,
        None => DateTime::now(),
    };
    match cli.command {
        Command::Key(k) => key(k),
        Command::Supplier(s) => supplier_cmd(s, now),
        Command::Oem(o) => oem_cmd(o, now),
        Command::Regulator(r) => regulator_cmd(r, now),
        Command::Verify { dir, root } => {
            let s = verify::verify(&dir, root.as_deref(), now)?;
            let extra = if s.attestations > 0 {
                format!(", {} attestation(s)", s.attestations)
            } else if s.extra_roles.is_empty() {
                String::new()
            } else {
                format!(
                    ", roles {} and {} vehicle(s)",
                    s.extra_roles.join(", "),
                    s.vehicles
                )
            };
            println!(
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

fn key(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { bits, out } => {
            let k = keystore::generate(bits, &out)?;
            println!(
                "wrote {} ({} bits, key id {})",
                out.display(),
                k.bits(),
                k.key_id()
            );
            Ok(())
        }
        KeyCommand::Show { file } => {
            let bytes = fsutil::read_bounded(&file, 64 * 1024)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::refused(format!("{}: not a PEM text file", file.display())))?;
            let (key, kind) = if text.contains("PUBLIC KEY-----") {
                (public_only(&file, &text)?, "public")
            } else {
                let k = SigningKey::from_pem(&text).map_err(Error::meta(&file))?;
                (k.public().clone(), "private")
            };
            let id = key.key_id()?;
            println!("key id:  {id}");
            println!(
                "type:    {} / {} ({kind} key file)",
                key.keytype, key.scheme
            );
            print!("{}", key.keyval.public);
            Ok(())
        }
    }
}

/// The key object for a public-key PEM file, normalised as this project writes it.
fn public_only(file: &Path, text: &str) -> Result<Key> {
    use rsa_pem::*;
    let k = Key::rsa(text.to_string());
    let parsed = k
        .to_public(&ota_metadata::KeyId(file.display().to_string()))
        .map_err(Error::meta(file))?;
    Ok(Key::rsa(normalise(&parsed).map_err(|e| {
        Error::refused(format!("{}: {e}", file.display()))
    })?))
}

mod rsa_pem {
    /// Re-encode a public key as SPKI PEM with LF endings, as keys generated here are listed.
    pub fn normalise(k: &ota_metadata::PublicKey) -> Result<String, String> {
        match k {
            ota_metadata::PublicKey::Rsa(rsa) => ota_metadata::signing::public_pem(rsa),
            _ => Err("only RSA keys can be shown".into()),
        }
    }
}

fn role_options(k: &RoleKeyArgs) -> Result<supplier::RoleOptions> {
    let mut keys = BTreeMap::new();
    for (role, files) in [
        ("root", &k.root_key),
        ("targets", &k.targets_key),
        ("snapshot", &k.snapshot_key),
        ("timestamp", &k.timestamp_key),
    ] {
        if !files.is_empty() {
            keys.insert(role.to_string(), files.clone());
        }
    }
    let mut thresholds = BTreeMap::new();
    for (role, v) in &k.threshold {
        let n: u32 = v
            .parse()
            .map_err(|_| Error::refused(format!("--threshold {role}={v}: not a number")))?;
        thresholds.insert(role.clone(), n);
    }
    Ok(supplier::RoleOptions {
        role_keys: keys,
        default_keys: k.key.clone(),
        thresholds,
        expires: k.expires.iter().cloned().collect(),
    })
}

/// A fresh key for `role` in `DIR/keys/`, named after the role and the time.
fn generate_role_key(dir: &Path, role: &str, now: DateTime) -> Result<std::path::PathBuf> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(Error::io(&keys))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io(&keys))?;
    }
    let stamp: String = now
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let path = keys.join(format!("{role}-{stamp}.pem"));
    let k = keystore::generate(3072, &path)?;
    println!(
        "generated {} (key id {}) for {role}",
        path.display(),
        k.key_id()
    );
    Ok(path)
}

type RotateFn = fn(&Path, &str, Vec<std::path::PathBuf>, Option<u32>, DateTime) -> Result<Report>;

/// `rotate-key` of any publisher: generate the new key when none is given, rotate, report.
fn rotate(mut a: crate::cli::RotateArgs, now: DateTime, rotate_key: RotateFn) -> Result<()> {
    if a.new_key.is_empty() {
        a.new_key.push(generate_role_key(&a.dir, &a.role, now)?);
    }
    let r = rotate_key(&a.dir, &a.role, a.new_key, a.threshold, now)?;
    println!("rotated the keys of {}", a.role);
    print_report(&r);
    Ok(())
}

fn print_report(r: &Report) {
    for w in &r.warnings {
        eprintln!("ota-repo: warning: {w}");
    }
    for (role, v) in &r.signed {
        println!("  signed {role} v{v}");
    }
    for (role, v) in &r.kept {
        println!("  kept   {role} v{v} (unchanged)");
    }
}

fn supplier_cmd(cmd: SupplierCommand, now: DateTime) -> Result<()> {
    // Commands that change a working directory hold its lock until they return.
    let _lock = match &cmd {
        SupplierCommand::Init { .. } => None,
        SupplierCommand::AddImage { dir, .. }
        | SupplierCommand::Delegate { dir, .. }
        | SupplierCommand::Undelegate { dir, .. }
        | SupplierCommand::Publish { dir, .. }
        | SupplierCommand::RotateKey(crate::cli::RotateArgs { dir, .. }) => {
            crate::workdir::lock(dir)?
        }
    };
    match cmd {
        SupplierCommand::Init {
            dir,
            name,
            keys,
            max_image_size,
        } => {
            let roles = role_options(&keys)?;
            supplier::init(
                &dir,
                supplier::Init {
                    name: name.clone(),
                    roles,
                    max_image_size,
                },
                now,
            )?;
            println!("created supplier repository {name:?} in {}", dir.display());
            println!(
                "  serve {} with any web server",
                crate::workdir::repository_path(&dir).display()
            );
            Ok(())
        }
        SupplierCommand::AddImage {
            dir,
            file,
            uid,
            version,
            release_counter,
            hardware_ids,
            role,
            allow_rollback,
        } => {
            let added = supplier::add_image(
                &dir,
                supplier::AddImage {
                    file,
                    uid,
                    version,
                    release_counter,
                    hardware_ids,
                    role,
                    allow_rollback,
                },
                now,
            )?;
            for w in &added.warnings {
                eprintln!("ota-repo: warning: {w}");
            }
            let r = &added.record;
            println!(
                "added {} {} (release counter {}, {} bytes, sha256 {}) signed by {}; run `ota-repo supplier publish` to publish it",
                r.uid, r.version, r.release_counter, r.image.length, r.image.sha256, r.role
            );
            Ok(())
        }
        SupplierCommand::Delegate {
            dir,
            to,
            key,
            hardware_ids,
            threshold,
            paths,
            terminating,
            expires,
        } => {
            supplier::delegate(
                &dir,
                supplier::Delegate {
                    name: to.clone(),
                    keys: key,
                    threshold,
                    hardware_ids,
                    paths,
                    terminating,
                    expires,
                },
            )?;
            println!("delegated to {to:?}; run `ota-repo supplier publish` to publish it");
            Ok(())
        }
        SupplierCommand::Undelegate {
            dir,
            name,
            drop_images,
        } => {
            let n = supplier::undelegate(&dir, &name, drop_images)?;
            println!("removed delegation {name} ({n} image(s) withdrawn); run `ota-repo supplier publish` to publish it");
            Ok(())
        }
        SupplierCommand::Publish { dir, force } => {
            let r = supplier::publish(&dir, now, force)?;
            println!(
                "published {}",
                crate::workdir::repository_path(&dir).display()
            );
            print_report(&r);
            Ok(())
        }
        SupplierCommand::RotateKey(args) => {
            rotate(args, now, crate::rotation::rotate::<supplier::Settings>)?;
            Ok(())
        }
    }
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
            | OemRegulatorCommand::Remove { dir, .. }
            | OemRegulatorCommand::Threshold { dir, .. }
            | OemRegulatorCommand::Repin(crate::cli::RepinArgs { dir, .. }),
        ) => dir,
        OemCommand::Vehicle(VehicleCommand::Add { dir, .. } | VehicleCommand::Key { dir, .. }) => {
            dir
        }
        OemCommand::Report(ReportCommand::Ingest { dir, .. }) => dir,
        OemCommand::Ecu(
            EcuCommand::Add { dir, .. }
            | EcuCommand::Key { dir, .. }
            | EcuCommand::Remove { dir, .. }
            | EcuCommand::Replace { dir, .. },
        ) => dir,
        OemCommand::Review(OemReviewCommand::Submit { dir, .. }) => dir,
        OemCommand::Assign { dir, .. }
        | OemCommand::Publish { dir, .. }
        | OemCommand::RotateKey(crate::cli::RotateArgs { dir, .. }) => dir,
    })
}

/// The three ways `oem assign` selects ECUs, named in its errors.
const ASSIGN_MODES: &str = "say which ECUs: --vin VIN --serial SERIAL (one ECU), --vin VIN (every ECU of the vehicle the image fits) or --hardware-id ID (every ECU of that hardware id in the fleet)";

fn oem_cmd(cmd: OemCommand, now: DateTime) -> Result<()> {
    let _lock = match oem_dir(&cmd) {
        Some(dir) => crate::workdir::lock(dir)?,
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
            println!("created OEM master repository in {}", dir.display());
        }
        OemCommand::Supplier(OemSupplierCommand::Add {
            dir,
            name,
            root,
            url,
            hardware_ids,
        }) => {
            oem::supplier_add(&dir, &name, &root, &url, &hardware_ids)?;
            println!("pinned supplier {name} ({url}) for {hardware_ids:?}; {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Remove { dir, name }) => {
            let n = oem::supplier_remove(&dir, &name)?;
            println!("removed supplier {name}; withdrew {n} assignment(s); {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Replace { dir, name, with }) => {
            let n = oem::supplier_replace(&dir, &name, &with)?;
            println!("{with} now serves {name}'s hardware ids; withdrew {n} assignment(s) to reassign; {publish_hint}");
        }
        OemCommand::Supplier(OemSupplierCommand::Repin(crate::cli::RepinArgs {
            dir,
            name,
            root,
            url,
        })) => {
            oem::supplier_repin(&dir, &name, &root, url.as_deref())?;
            println!(
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
            println!(
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
            println!("authorized regulator {name} ({url}); {publish_hint}");
        }
        OemCommand::Regulator(OemRegulatorCommand::Remove { dir, name }) => {
            oem::regulator_remove(&dir, &name)?;
            println!("removed regulator {name}; {publish_hint}");
        }
        OemCommand::Regulator(OemRegulatorCommand::Threshold { dir, required: k }) => {
            oem::regulator_threshold(&dir, k)?;
            println!("images now need {k} distinct regulator approval(s); {publish_hint}");
        }
        OemCommand::Vehicle(VehicleCommand::Add {
            dir,
            vin,
            ecus,
            aftermarket,
        }) => {
            oem::vehicle_add(&dir, &vin, &ecus, &aftermarket)?;
            println!(
                "added vehicle {vin} with {} ECU(s)",
                ecus.len() + aftermarket.len()
            );
        }
        OemCommand::Ecu(EcuCommand::Add {
            dir,
            vin,
            ecu,
            aftermarket,
        }) => {
            oem::ecu_add(&dir, &vin, &ecu, aftermarket)?;
            println!(
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
            println!("registered the key of vehicle {vin}");
        }
        OemCommand::Ecu(EcuCommand::Key {
            dir,
            vin,
            serial,
            key,
        }) => {
            oem::ecu_key(&dir, &vin, &serial, &key)?;
            println!("registered the key of ECU {serial} of {vin}");
        }
        OemCommand::Report(ReportCommand::Ingest { dir, file }) => {
            let r = oem::ingest(&dir, &file)?;
            for s in &r.accepted {
                println!("accepted the report of ECU {s}");
            }
            for c in &r.recalls {
                eprintln!(
                    "ota-repo: RECALL: ECU {} runs {} {}, revoked by regulator {}: {} (assign an approved image)",
                    c.serial, c.uid, c.version, c.regulator, c.reason
                );
            }
            for f in &r.flagged {
                eprintln!(
                    "ota-repo: FLAGGED ECU {} of {}: {}",
                    f.serial, f.vin, f.reason
                );
            }
            if !r.flagged.is_empty() {
                return Err(Error::refused(format!(
                    "{} ECU(s) flagged for the out-of-band replacement process (listed in {})",
                    r.flagged.len(),
                    dir.join(oem::FLAGGED).display()
                )));
            }
        }
        OemCommand::Ecu(EcuCommand::Remove { dir, vin, serial }) => {
            let withdrawn = oem::ecu_remove(&dir, &vin, &serial)?;
            println!(
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
            serial,
            with,
        }) => {
            let carried = oem::ecu_replace(&dir, &vin, &serial, &with)?;
            println!(
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
        }) => {
            let r = oem::review_submit(
                &dir,
                oem::Submit {
                    supplier: &supplier,
                    uid: &uid,
                    version: &version,
                    from: from.as_deref(),
                    ca: ca.as_deref(),
                },
                now,
            )?;
            println!(
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
            serial,
            hardware_id,
            supplier,
            uid,
            version,
        } => {
            let target = match (vin, hardware_id) {
                (Some(vin), _) => oem::AssignTarget::Vehicle { vin, serial },
                (None, Some(h)) => oem::AssignTarget::HardwareId(h),
                (None, None) => return Err(Error::refused(ASSIGN_MODES)),
            };
            let done = oem::assign(
                &dir,
                oem::Assign {
                    target,
                    supplier,
                    uid: uid.clone(),
                    version: version.clone(),
                },
            )?;
            for (v, s) in &done {
                println!("assigned {uid} {version} to {v}/{s}");
            }
            println!("{} ECU(s); {publish_hint}", done.len());
        }
        OemCommand::Publish { dir, force } => {
            let r = oem::publish(&dir, now, force)?;
            println!(
                "published {}",
                crate::workdir::repository_path(&dir).display()
            );
            for w in &r.withdrawn {
                eprintln!("ota-repo: warning: assignment of {w} withdrawn: the ECU, its hardware id or its supplier is no longer valid");
            }
            println!(
                "  wrote assignments of {} vehicle(s), {} tree node(s)",
                r.vehicles_written, r.fleet.nodes_written
            );
            print_report(&r.roles);
        }
        OemCommand::RotateKey(args) => {
            rotate(args, now, crate::rotation::rotate::<oem::Settings>)?;
        }
    }
    Ok(())
}

fn regulator_cmd(cmd: RegulatorCommand, now: DateTime) -> Result<()> {
    let _lock = match &cmd {
        RegulatorCommand::Init { .. } => None,
        RegulatorCommand::Review { dir, .. }
        | RegulatorCommand::Revoke { dir, .. }
        | RegulatorCommand::Publish { dir, .. }
        | RegulatorCommand::RotateKey(crate::cli::RotateArgs { dir, .. }) => {
            crate::workdir::lock(dir)?
        }
    };
    match cmd {
        RegulatorCommand::Init { dir, name, keys } => {
            regulator::init(&dir, &name, &role_options(&keys)?, now)?;
            println!(
                "created attestation repository of regulator {name:?} in {}",
                dir.display()
            );
        }
        RegulatorCommand::Review {
            dir,
            master,
            master_root,
            scanner,
            ca,
            supplier_from,
        } => {
            let outcomes = regulator::review(
                &dir,
                regulator::ReviewOpts {
                    master: &master,
                    master_root: &master_root,
                    scanner,
                    ca: ca.as_deref(),
                    supplier_from: supplier_from.into_iter().collect(),
                },
                now,
            )?;
            let mut failed = 0;
            for o in &outcomes {
                let img = &o.request.image;
                match &o.result {
                    Ok(v) => println!(
                        "{:?}: {} {} of {} ({} finding(s))",
                        v, img.uid, img.version, img.supplier, o.findings
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("ota-repo: error: not attested: {e}");
                    }
                }
            }
            println!(
                "{} image(s) reviewed; run `ota-repo regulator publish` to publish the verdicts",
                outcomes.len() - failed
            );
            if failed > 0 {
                return Err(Error::refused(format!(
                    "{failed} image(s) could not be reviewed"
                )));
            }
        }
        RegulatorCommand::Revoke { dir, image, reason } => {
            for r in regulator::revoke(&dir, &image, &reason, now)? {
                println!(
                    "revoked {} {} of {} (release counter {})",
                    r.release.uid, r.release.version, r.release.supplier, r.release.release_counter
                );
            }
            println!("run `ota-repo regulator publish` to publish the revocation");
        }
        RegulatorCommand::Publish { dir, force } => {
            let r = regulator::publish(&dir, now, force)?;
            println!(
                "published {}",
                crate::workdir::repository_path(&dir).display()
            );
            print_report(&r);
        }
        RegulatorCommand::RotateKey(args) => {
            rotate(args, now, crate::rotation::rotate::<regulator::Settings>)?;
        }
    }
    Ok(())
}
