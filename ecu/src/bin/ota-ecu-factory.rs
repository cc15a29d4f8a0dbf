//! `ota-ecu-factory`: the production line's last step for an ECU, as a file: write the
//! factory record (serial, hardware id, the supplier keys its bootloader trusts, and how many
//! must sign; see `ota_ecu::factory`) into the first sector of a flash image, the rest erased.
//! The emulated ECU (`ecu/qemu`, under QEMU) starts from such a file.
//!
//! ```text
//! ota-ecu-factory --serial BRK-Q1 --hardware-id BRAKE-A --supplier-key acme.pub.pem \
//!                 [--supplier-key …] [--threshold 1] [--trust BRAKE-A.1.bin] --out ota-ecu-flash.bin
//! ```
//! `--trust` adds the ECU's first trust document (`oem ecu-trust`'s file), which its
//! bootloader provisions at its first start: from then on it, not the supplier keys, decides
//! what the ECU accepts (full verification, the OEM's instructions).
//! An existing file is refused (it may hold an ECU's installed images and state).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ota-ecu-factory --serial SERIAL --hardware-id ID --supplier-key PEM [--supplier-key PEM …] [--threshold N] [--trust DOCUMENT] --out FILE";

/// One flash sector: the factory record's place.
const SECTOR: usize = 4096;

fn run(mut it: impl Iterator<Item = String>) -> Result<String, String> {
    let (mut serial, mut hw, mut keys, mut threshold, mut out) =
        (None, None, Vec::new(), 1u8, None);
    let mut trust = None;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--serial" => serial = Some(value()?),
            "--hardware-id" => hw = Some(value()?),
            "--supplier-key" => keys.push(PathBuf::from(value()?)),
            "--threshold" => {
                threshold = value()?.parse().map_err(|e| format!("--threshold: {e}"))?
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--trust" => trust = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let serial = serial.ok_or(format!("--serial is required\n{USAGE}"))?;
    let hw = hw.ok_or(format!("--hardware-id is required\n{USAGE}"))?;
    let out = out.ok_or(format!("--out is required\n{USAGE}"))?;
    if keys.is_empty() {
        return Err(format!("at least one --supplier-key\n{USAGE}"));
    }
    let keys: Vec<([u8; 32], rsa::RsaPublicKey)> = keys
        .iter()
        .map(|p| ota_ecu::sim::provision(p).map(|k| (k.keyid, k.key)))
        .collect::<Result<_, _>>()?;
    let mut record = ota_ecu::factory::build(&serial, &hw, &keys, threshold).ok_or(
        "the record cannot be made: serial and hardware id are 1 to 32 printable ASCII characters, 1 to 4 keys, a threshold from 1 to the number of keys",
    )?;
    if record.len() > SECTOR {
        return Err("the keys do not fit the factory sector".into());
    }
    record.resize(SECTOR, 0xFF);
    if let Some(path) = &trust {
        let doc = std::fs::read(path).map_err(|e| format!("--trust {}: {e}", path.display()))?;
        let area = ota_ecu::factory::trust_area(&doc).ok_or(format!(
            "--trust {}: a trust document of 1 to {} bytes",
            path.display(),
            ota_ecu::flash::TRUST_LEN
        ))?;
        record.resize(ota_ecu::factory::TRUST_AT, 0xFF);
        record.extend_from_slice(&area);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .map_err(|e| {
            format!(
                "{}: {e} (an existing flash file is never overwritten)",
                out.display()
            )
        })?;
    std::io::Write::write_all(&mut f, &record).map_err(|e| format!("{}: {e}", out.display()))?;
    f.sync_all()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "{}: factory record for ECU {serial} ({hw}), {} supplier key(s), threshold {threshold}{}",
        out.display(),
        keys.len(),
        if trust.is_some() {
            ", and its first trust document"
        } else {
            ""
        }
    ))
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ota-ecu-factory: {e}");
            ExitCode::FAILURE
        }
    }
}
