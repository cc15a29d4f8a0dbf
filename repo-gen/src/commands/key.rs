//! `ota-repo key …`: generate signing keys and inspect them. Works on files only: no working
//! directory, so no lock.

use crate::error::{Error, Result};
use crate::{fsutil, keystore};
use clap::Subcommand;
use ota_metadata::keyfile::{self, PemKey};
use ota_metadata::SigningKey;
use std::path::{Path, PathBuf};

pub const KEY_EXAMPLES: &str = "Examples:
  ota-repo key generate --out acme-root.pem           # RSA-3072, PKCS#8 PEM, mode 0600
  ota-repo key generate --bits 4096 --out oem-root.pem
  ota-repo key show acme-root.pem                     # key id, type, size, public key
  ota-repo key show acme-root.pem | head -1           # just the key id
  ota-repo key public bosch.pem --out bosch.pub.pem   # the public half, to hand to a delegator";

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate an RSA private key (PKCS#8 PEM, file mode 0600). Never overwrites a file.
    Generate {
        /// Modulus size in bits: a multiple of 8 from 2048 to 4096.
        #[arg(long, value_name = "BITS", default_value_t = 3072)]
        bits: usize,
        /// Where to write the private key (must not exist yet).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a key's id, type and size, and its public key. Reads private or public PEM files
    /// of RSA, Ed25519 or ECDSA P-256 keys (ota-repo signs with RSA; the others it verifies).
    Show {
        /// The PEM file: PKCS#8 or PKCS#1 private key, or SPKI public key.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write the public half of a private key (SPKI PEM): what a delegator needs
    /// (`supplier delegate --public-key`). Never overwrites a file.
    Public {
        /// The private key (PEM).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the public key (must not exist yet).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { bits, out } => {
            let k = keystore::generate(bits, &out)?;
            say!(
                "wrote {} ({} bits, key id {})",
                out.display(),
                k.bits(),
                k.key_id()
            );
            Ok(())
        }
        KeyCommand::Public { file, out } => {
            let k = keystore::export_public(&file, &out)?;
            say!("wrote the public key {} to {}", k.key_id()?, out.display());
            Ok(())
        }
        KeyCommand::Show { file } => show(&file),
    }
}

/// `key show`: any PEM key file, private or public, of any algorithm the client verifies.
fn show(file: &Path) -> Result<()> {
    let bytes = fsutil::read_bounded(file, 64 * 1024)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::refused(format!("{}: not a PEM text file", file.display())))?;
    let pem = PemKey::parse(&text).map_err(Error::meta(file))?;
    let key = if pem.private && pem.oid == keyfile::RSA_OID {
        // Checked as signing would check it (size, consistency).
        SigningKey::from_pem(&text)
            .map_err(Error::meta(file))?
            .public()
            .clone()
    } else {
        pem.public_key().map_err(Error::meta(file))?
    };
    let id = key.key_id()?;
    let parsed = key.to_public(&id).map_err(Error::meta(file))?;
    say!("key id:  {id}");
    say!(
        "type:    {} / {} ({}, {} bits, {} key file)",
        key.keytype,
        key.scheme,
        pem.algorithm(),
        parsed.bits(),
        if pem.private { "private" } else { "public" }
    );
    if pem.oid != keyfile::RSA_OID {
        say!("         (verification only: ota-repo signs with RSA keys)");
    }
    say!("{}", key.keyval.public.trim_end());
    Ok(())
}
