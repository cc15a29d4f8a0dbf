//! Role and target names become local file names and URL path segments. Names come from
//! signed metadata, but signed is not the same as harmless (a delegated role may be named
//! `../../etc/x`), so they are percent-encoded at the one point they leave the metadata.
//!
//! The encoding is python-tuf's `urllib.parse.quote(name, "")`: ASCII letters, digits and
//! `-._~` stay, every other byte becomes `%XX`, so a role name can never carry a `/` into a
//! path. File names additionally escape a leading `.`, so that no name can be `.`, `..` or a
//! hidden file.

/// Whether `b` is an RFC 3986 unreserved character, kept as is.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encode(s: &str, keep: impl Fn(usize, u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        if keep(i, b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// One URL path segment: nothing but unreserved characters survive, `/` included.
pub fn url_segment(s: &str) -> String {
    encode(s, |_, b| unreserved(b))
}

/// A target path inside a URL: like [`url_segment`], but `/` keeps separating directories, as
/// the repository lays them out.
pub fn url_path(s: &str) -> String {
    encode(s, |_, b| unreserved(b) || b == b'/')
}

/// A single local file name for `s`: never contains `/`, never starts with `.`.
pub fn file_name(s: &str) -> String {
    encode(s, |i, b| unreserved(b) && !(i == 0 && b == b'.'))
}

/// The local metadata file of role `role`: `root.json`, `targets.json`, `tier%2F2.json`.
pub fn role_file_name(role: &str) -> String {
    format!("{}.json", file_name(role))
}

/// Whether target name `s` is a path that stays under the targets base URL, and why not if it
/// is not: it must be relative (no leading `/`), use `/` only (no `\\`, a separator on other
/// systems), and have no empty, `.` or `..` segment, written plainly or percent-encoded (in
/// case something on the way decodes the name once more). TUF target names are paths relative
/// to the targets base; a signed name is still not a harmless one.
pub fn check_target_path(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty target name");
    }
    if s.contains('\\') {
        return Err("a backslash in a target name");
    }
    if s.contains('\0') {
        return Err("a NUL byte in a target name");
    }
    for segment in s.split('/') {
        let decoded = decode(segment);
        let plain = decoded.as_deref().unwrap_or(segment);
        if segment.is_empty() {
            return Err("an absolute path or an empty path segment in a target name");
        }
        if matches!(plain, "." | "..") {
            return Err("a `.` or `..` path segment in a target name");
        }
        if plain.contains(['/', '\\']) {
            return Err("a percent-encoded `/` or `\\` in a target name");
        }
    }
    Ok(())
}

/// Undo percent-encoding (for fetchers that map URLs back to files). `None` if a `%` is not
/// followed by two hex digits or the result is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_cannot_escape_the_directory() {
        assert_eq!(role_file_name("targets"), "targets.json");
        assert_eq!(role_file_name("tier2-brakes_A.1"), "tier2-brakes_A.1.json");
        assert_eq!(role_file_name("../x"), "%2E.%2Fx.json");
        assert_eq!(role_file_name(".."), "%2E..json");
        assert_eq!(role_file_name("a/b"), "a%2Fb.json");
        assert_eq!(role_file_name("é"), "%C3%A9.json");
        assert!(!file_name("../../etc/passwd").contains('/'));
    }

    #[test]
    fn urls_keep_only_unreserved_characters() {
        assert_eq!(url_segment("tier 2/x"), "tier%202%2Fx");
        assert_eq!(url_path("dir/a b+c.bin"), "dir/a%20b%2Bc.bin");
        assert_eq!(url_path("gw-1.1.0+build.7.bin"), "gw-1.1.0%2Bbuild.7.bin");
    }

    #[test]
    fn target_paths_stay_under_the_base() {
        for ok in [
            "fw-1.0.bin",
            "a/b/fw.bin",
            "..fw",
            "fw..",
            "a/.hidden",
            "%41",
            "a%20b",
        ] {
            assert_eq!(check_target_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "a/../../x",
            "a/..",
            "./x",
            "/etc/passwd",
            "a//b",
            "a/",
            "..\\x",
            "a\\b",
            "%2e%2e/x",
            "%2E./x",
            "a/%2e",
            "a%2f..%2fb",
            "x\0",
        ] {
            assert!(check_target_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decode_inverts_encode() {
        for s in ["plain", "a b/c+d%e", "../x", "é€", ""] {
            assert_eq!(decode(&url_path(s)).as_deref(), Some(s));
            assert_eq!(decode(&file_name(s)).as_deref(), Some(s));
        }
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%+1"), None);
        assert_eq!(decode("abc%2"), None);
        assert_eq!(decode("%ff"), None);
    }
}
