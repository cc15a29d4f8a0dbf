//! What names may look like. Names become file names and URL path segments, and uid, version
//! and hardware id go into the fixed 32-byte fields of the compact manifest, so they are
//! restricted to a safe alphabet and a bounded length everywhere, at the point they enter.

use crate::error::{Error, Result};

/// Longest uid, version or hardware id: the width of a compact-manifest field.
pub const MAX_FIELD_LEN: usize = ota_ecu::compact_manifest::FIELD_LEN;
/// Longest role, supplier or regulator name.
pub const MAX_NAME_LEN: usize = 64;

fn check(kind: &str, s: &str, max: usize, extra: &[u8]) -> Result<()> {
    let bad = |why: String| Error::malformed(kind, format!("{s:?} {why}"));
    if s.is_empty() || s.len() > max {
        return Err(bad(format!("must be 1 to {max} bytes long")));
    }
    if s.starts_with(['.', '-']) {
        return Err(bad("must not start with '.' or '-'".into()));
    }
    // By character, not byte: the error shows what the user typed ('é', not 'Ã').
    if let Some(c) = s.chars().find(|&c| {
        !(c.is_ascii_alphanumeric()
            || "._-".contains(c)
            || (c.is_ascii() && extra.contains(&(c as u8))))
    }) {
        return Err(bad(format!(
            "contains {c:?}; use ASCII letters, digits, '.', '_', '-'{}",
            if extra.is_empty() { "" } else { ", '+'" }
        )));
    }
    Ok(())
}

/// A delegated role, supplier or regulator name.
pub fn check_role_name(s: &str) -> Result<()> {
    check("role name", s, MAX_NAME_LEN, b"")?;
    if super::roles::TOP_LEVEL_ROLES.contains(&s) {
        return Err(Error::malformed(
            "role name",
            format!("{s:?} is a top-level role"),
        ));
    }
    Ok(())
}

pub fn check_uid(s: &str) -> Result<()> {
    check("image uid", s, MAX_FIELD_LEN, b"")
}

pub fn check_image_version(s: &str) -> Result<()> {
    check("image version", s, MAX_FIELD_LEN, b"+")
}

pub fn check_hardware_id(s: &str) -> Result<()> {
    check("hardware id", s, MAX_FIELD_LEN, b"")
}

/// A vehicle identification number (or any fleet-unique vehicle id): it names a directory.
pub fn check_vin(s: &str) -> Result<()> {
    check("VIN", s, MAX_NAME_LEN, b"")
}

/// An ECU serial number.
pub fn check_ecu_serial(s: &str) -> Result<()> {
    check("ECU serial", s, MAX_NAME_LEN, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        check_uid("brake-ctl_2").unwrap();
        check_image_version("1.2.3+build.7").unwrap();
        check_hardware_id("ECU.BRAKE-01").unwrap();
        check_role_name("tier2-bosch").unwrap();
    }

    #[test]
    fn rejects_paths_empty_long_and_odd_characters() {
        assert!(check_uid("").is_err());
        assert!(check_uid("../x").is_err());
        assert!(check_uid("a/b").is_err());
        assert!(check_uid(".hidden").is_err());
        assert!(check_uid("-flag").is_err());
        assert!(check_uid("é").is_err());
        assert!(check_uid(&"x".repeat(33)).is_err());
        assert!(check_uid("a+b").is_err());
        assert!(check_role_name("targets").is_err());
        assert!(check_role_name("a b").is_err());
    }

    #[test]
    fn errors_show_the_character_as_typed() {
        let e = check_uid("café").unwrap_err().to_string();
        assert!(e.contains("'é'") && e.contains("\"café\""), "{e}");
        assert!(!e.contains('Ã'), "{e}");
    }
}
