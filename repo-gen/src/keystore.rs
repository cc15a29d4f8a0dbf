//! Private key files: generating, loading, and showing them.

use crate::error::{Error, Result};
use crate::fsutil;
use ota_metadata::SigningKey;
use std::path::Path;

/// Keys are small; anything bigger than this is not a key file.
const MAX_KEY_FILE: u64 = 64 * 1024;

pub fn load(path: &Path) -> Result<SigningKey> {
    let bytes = fsutil::read_bounded(path, MAX_KEY_FILE)?;
    warn_if_readable(path);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::refused(format!("{}: not a PEM text file", path.display())))?;
    SigningKey::from_pem(text).map_err(Error::meta(path))
}

pub fn generate(bits: usize, out: &Path) -> Result<SigningKey> {
    if out.exists() {
        return Err(Error::refused(format!(
            "{} already exists; refusing to overwrite it",
            out.display()
        )));
    }
    let key = SigningKey::generate(bits)?;
    fsutil::write_new_private(out, key.to_pkcs8_pem()?.as_bytes())?;
    Ok(key)
}

/// Warn when a private key file is readable by anyone but its owner.
fn warn_if_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        crate::warn::warn(format!(
            "private key {} is readable by {} (mode {mode:04o}); restrict it with `chmod 600 {}`",
            path.display(),
            if mode & 0o007 != 0 {
                "others"
            } else {
                "its group"
            },
            path.display()
        ));
    }
}

/// The public key in PEM file `path` (SPKI `PUBLIC KEY`). A private key is refused: a
/// delegator needs only the public half, and a private key handed over has left its owner.
pub fn public_key(path: &Path) -> Result<ota_metadata::Key> {
    let bytes = fsutil::read_bounded(path, MAX_KEY_FILE)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::refused(format!("{}: not a PEM text file", path.display())))?;
    let pem = ota_metadata::keyfile::PemKey::parse(text).map_err(Error::meta(path))?;
    if pem.private {
        return Err(Error::refused(format!(
            "{} is a private key: take only its public half (`ota-repo key public {} --out FILE`, run by its owner)",
            path.display(),
            path.display()
        )));
    }
    pem.public_key().map_err(Error::meta(path))
}

/// Write the public half of private key `key` to `out` (SPKI PEM; never overwriting).
pub fn export_public(key: &Path, out: &Path) -> Result<ota_metadata::Key> {
    let k = load(key)?;
    if out.exists() {
        return Err(Error::refused(format!(
            "{} already exists; refusing to overwrite it",
            out.display()
        )));
    }
    let public = k.public().clone();
    fsutil::write_atomic(out, public.keyval.public.as_bytes())?;
    Ok(public)
}
