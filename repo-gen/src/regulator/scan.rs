//! Scanning an image before attesting it: a list of known-vulnerable builds (by uid and
//! version range, or by SHA-256, with advisory ids), byte-pattern rules for backdoor markers
//! streamed over the file, and optionally an external scanner command.

use crate::error::{Error, Result};
use ota_metadata::documents::Finding;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// A known-vulnerable build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerable {
    pub advisory: String,
    /// Match by uid and version range (`versions`), or by exact image hash (`sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Comma-separated constraints, each `<V`, `<=V`, `>V`, `>=V` or `=V` (all must hold);
    /// absent means every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A byte pattern whose presence is a finding (a backdoor marker, a hard-coded credential).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern {
    pub name: String,
    /// The bytes to find, as text ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// ... or as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
}

/// The scanning rules of a regulator (`rules.json` in its working directory).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    #[serde(default)]
    pub vulnerable: Vec<Vulnerable>,
    #[serde(default)]
    pub patterns: Vec<Pattern>,
    /// External scanner, `{}` replaced by the image path; exit 0 = clean, 1 = findings
    /// (its output is the detail), anything else = the scan failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
}

/// Longest pattern accepted: bounds the overlap kept between chunks.
const MAX_PATTERN: usize = 4096;

impl Rules {
    /// Built-in markers that have no business in production firmware.
    pub fn builtin_patterns() -> Vec<Pattern> {
        let p = |name: &str, text: &str| Pattern {
            name: name.into(),
            text: Some(text.into()),
            hex: None,
            advisory: None,
        };
        vec![
            p("embedded-private-key", "-----BEGIN RSA PRIVATE KEY-----"),
            p(
                "embedded-private-key",
                "-----BEGIN OPENSSH PRIVATE KEY-----",
            ),
            p("embedded-private-key", "-----BEGIN EC PRIVATE KEY-----"),
            p("passwordless-root", "root::0:0:"),
            p("debug-shell", "telnetd -l /bin/sh"),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        for p in &self.patterns {
            let b = p.bytes()?;
            if b.is_empty() || b.len() > MAX_PATTERN {
                return Err(Error::refused(format!(
                    "pattern {}: 1 to {MAX_PATTERN} bytes",
                    p.name
                )));
            }
        }
        for v in &self.vulnerable {
            if v.uid.is_none() && v.sha256.is_none() {
                return Err(Error::refused(format!(
                    "vulnerable entry {}: give uid (and versions) or sha256",
                    v.advisory
                )));
            }
            if let Some(r) = &v.versions {
                parse_constraints(r)?;
            }
        }
        Ok(())
    }
}

impl Pattern {
    fn bytes(&self) -> Result<Vec<u8>> {
        match (&self.text, &self.hex) {
            (Some(t), None) => Ok(t.as_bytes().to_vec()),
            (None, Some(h)) => {
                hex::decode(h).map_err(|e| Error::refused(format!("pattern {}: {e}", self.name)))
            }
            _ => Err(Error::refused(format!(
                "pattern {}: give exactly one of text and hex",
                self.name
            ))),
        }
    }
}

/// Compare versions part by part (split on `.`, `-`, `+`): numbers numerically, else as text.
pub fn cmp_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| {
        s.split(['.', '-', '+'])
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (
            pa.get(i).map_or("0", String::as_str),
            pb.get(i).map_or("0", String::as_str),
        );
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn parse_constraints(spec: &str) -> Result<Vec<(&str, &str)>> {
    spec.split(',')
        .map(str::trim)
        .map(|c| {
            for op in ["<=", ">=", "<", ">", "="] {
                if let Some(v) = c.strip_prefix(op) {
                    if !v.trim().is_empty() {
                        return Ok((op, v.trim()));
                    }
                }
            }
            Err(Error::refused(format!(
                "version constraint {c:?}: use <V, <=V, >V, >=V or =V"
            )))
        })
        .collect()
}

fn version_matches(version: &str, spec: &str) -> Result<bool> {
    for (op, v) in parse_constraints(spec)? {
        let o = cmp_versions(version, v);
        let ok = match op {
            "<" => o == Ordering::Less,
            "<=" => o != Ordering::Greater,
            ">" => o == Ordering::Greater,
            ">=" => o != Ordering::Less,
            _ => o == Ordering::Equal,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Scan one image. `sha256` is the verified hash of `path`.
pub fn scan(
    rules: &Rules,
    path: &Path,
    uid: &str,
    version: &str,
    sha256: &str,
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for v in &rules.vulnerable {
        let by_hash = v
            .sha256
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(sha256));
        let by_version = v.uid.as_deref() == Some(uid)
            && match &v.versions {
                Some(spec) => version_matches(version, spec)?,
                None => true,
            };
        if by_hash || by_version {
            findings.push(Finding {
                rule: "known-vulnerable".into(),
                detail: format!("{uid} {version} is listed as vulnerable"),
                advisory: Some(v.advisory.clone()),
            });
        }
    }
    let mut patterns = Rules::builtin_patterns();
    patterns.extend(rules.patterns.iter().cloned());
    for (p, offset) in find_patterns(path, &patterns)? {
        findings.push(Finding {
            rule: p.name.clone(),
            detail: format!("marker found at byte offset {offset}"),
            advisory: p.advisory.clone(),
        });
    }
    if let Some(cmd) = &rules.scanner {
        findings.extend(external(cmd, path)?);
    }
    Ok(findings)
}

/// Stream the file once, keeping `longest - 1` bytes of overlap so a marker split across two
/// reads is still found. Returns each matching pattern with its first offset.
fn find_patterns<'p>(path: &Path, patterns: &'p [Pattern]) -> Result<Vec<(&'p Pattern, u64)>> {
    let needles: Vec<(&Pattern, Vec<u8>)> = patterns
        .iter()
        .map(|p| Ok((p, p.bytes()?)))
        .collect::<Result<_>>()?;
    let finders: Vec<_> = needles
        .iter()
        .map(|(p, b)| (*p, memchr::memmem::Finder::new(b), b.len()))
        .collect();
    let keep = needles
        .iter()
        .map(|(_, b)| b.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1);
    let mut found: Vec<Option<u64>> = vec![None; finders.len()];
    let mut f = File::open(path).map_err(Error::io(path))?;
    let mut buf: Vec<u8> = Vec::with_capacity((1 << 20) + keep);
    let mut base: u64 = 0; // file offset of buf[0]
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut chunk).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        for (i, (_, finder, _)) in finders.iter().enumerate() {
            if found[i].is_none() {
                if let Some(at) = finder.find(&buf) {
                    found[i] = Some(base + at as u64);
                }
            }
        }
        let drop = buf.len().saturating_sub(keep);
        buf.drain(..drop);
        base += drop as u64;
    }
    Ok(finders
        .iter()
        .zip(found)
        .filter_map(|((p, _, _), at)| at.map(|a| (*p, a)))
        .collect())
}

/// Run the external scanner on `path`.
fn external(cmd: &str, path: &Path) -> Result<Vec<Finding>> {
    let quoted = format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
    let line = if cmd.contains("{}") {
        cmd.replace("{}", &quoted)
    } else {
        format!("{cmd} {quoted}")
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .map_err(|e| Error::refused(format!("scanner {cmd:?} could not run: {e}")))?;
    // The output goes into a published attestation: name the image, not the local path.
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = String::from_utf8_lossy(&out.stdout)
        .replace(&path.display().to_string(), &name)
        .trim()
        .chars()
        .take(2000)
        .collect::<String>();
    match out.status.code() {
        Some(0) => Ok(Vec::new()),
        Some(1) => Ok(vec![Finding {
            rule: "external-scanner".into(),
            detail: text,
            advisory: None,
        }]),
        code => Err(Error::refused(format!(
            "scanner {cmd:?} failed (exit {code:?}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(cmp_versions("1.10.0", "1.9.9"), Ordering::Greater);
        assert_eq!(cmp_versions("1.2", "1.2.0"), Ordering::Equal);
        assert!(version_matches("1.4.2", ">=1.0,<1.5").unwrap());
        assert!(!version_matches("1.5.0", ">=1.0,<1.5").unwrap());
        assert!(version_matches("2.0", "=2.0.0").unwrap());
        assert!(parse_constraints("~1.0").is_err());
    }

    #[test]
    fn patterns_are_found_across_chunk_boundaries() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut data = vec![0u8; (1 << 20) - 5];
        data.extend_from_slice(b"root::0:0:xyz");
        data.extend(vec![1u8; 1000]);
        f.write_all(&data).unwrap();
        let builtin = Rules::builtin_patterns();
        let hits = find_patterns(f.path(), &builtin).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0.name, "passwordless-root");
        assert_eq!(hits[0].1, (1 << 20) - 5);
        let clean = tempfile::NamedTempFile::new().unwrap();
        assert!(find_patterns(clean.path(), &Rules::builtin_patterns())
            .unwrap()
            .is_empty());
    }
}
