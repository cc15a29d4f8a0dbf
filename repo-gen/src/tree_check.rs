//! What a published tree may hold: regular files and directories, and no private key or secret.
//!
//! Publish makes the tree world-readable (a web server reads it) and upload sends all of it, so
//! a private key an operator left in `repository/` would be served to the world, and a symbolic
//! link would let either reach outside the tree (the mode of a directory elsewhere changed, or
//! an image the metadata lists silently missing from the store). Both are refused, naming the
//! file, before anything is written or sent.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::upload::plan::{self, Kind};
use std::path::Path;

/// The marks of a PEM private key (PKCS#1, PKCS#8, SEC1, OpenSSH, encrypted).
const PRIVATE_KEY_MARKS: [&[u8]; 2] = [b"PRIVATE KEY-----", b"BEGIN OPENSSH PRIVATE"];

/// Bound on a file read to look for a key (files of unknown names only: metadata and images
/// have names of their own and are not read here).
const MAX_SCANNED: u64 = 64 << 20;

fn holds_private_key(bytes: &[u8]) -> bool {
    PRIVATE_KEY_MARKS
        .iter()
        .any(|m| bytes.windows(m.len()).any(|w| w == *m))
        || is_secret_file(bytes)
}

/// A 32-byte secret as this project keeps one (the fleet secret, a vehicle's secret, the
/// broadcast secret): 64 hex digits and white space, nothing else. No published file is that.
fn is_secret_file(bytes: &[u8]) -> bool {
    let t = bytes.trim_ascii();
    t.len() == 64 && t.iter().all(u8::is_ascii_hexdigit)
}

/// Refuse a tree at `repo` that holds a symbolic link anywhere, or a file of a name no
/// publisher writes (not metadata, not content-addressed) that holds a private key.
pub fn check_tree(repo: &Path) -> Result<()> {
    fn walk(base: &Path, dir: &Path) -> Result<()> {
        for e in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let e = e.map_err(Error::io(dir))?;
            let path = e.path();
            let t = e.file_type().map_err(Error::io(&path))?;
            if t.is_symlink() {
                return Err(Error::refused(format!(
                    "{} is a symbolic link: a published tree holds regular files and directories only (publish and upload would reach outside the tree); replace it with the file",
                    path.display()
                )));
            }
            if t.is_dir() {
                walk(base, &path)?;
                continue;
            }
            let name = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || plan::kind(&name) != Kind::Other {
                continue;
            }
            let bytes = fsutil::read_bounded(&path, MAX_SCANNED).unwrap_or_default();
            if holds_private_key(&bytes) {
                return Err(Error::refused(format!(
                    "{} holds a private key or secret: remove it from the tree (publishing makes the tree world-readable, and upload would serve it)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
    match std::fs::symlink_metadata(repo) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::refused(format!(
            "{} is a symbolic link: publish into the directory itself",
            repo.display()
        ))),
        Ok(_) => walk(repo, repo),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(repo)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::holds_private_key;

    #[test]
    fn secrets_are_recognised() {
        let hex = "ab".repeat(32);
        assert!(holds_private_key(format!("{hex}\n").as_bytes()));
        assert!(holds_private_key(format!("  {hex}\r\n").as_bytes()));
        assert!(!holds_private_key(format!("{hex}{hex}").as_bytes()));
        assert!(!holds_private_key(b"{\"sha256\": \"ab\"}"));
    }

    #[test]
    fn private_keys_are_recognised() {
        assert!(holds_private_key(b"x\n-----BEGIN PRIVATE KEY-----\nMII"));
        assert!(holds_private_key(b"-----BEGIN RSA PRIVATE KEY-----"));
        assert!(holds_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(!holds_private_key(b"-----BEGIN PUBLIC KEY-----"));
    }
}
