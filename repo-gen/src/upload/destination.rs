//! Where `ota-repo upload --to` sends a tree: an S3-compatible bucket (`s3://bucket/prefix`),
//! or a directory (`file:///path` or a plain path), both through `object_store`.
//!
//! S3 settings come from the usual AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` for a non-AWS store) and, for what the environment leaves out, from
//! `~/.aws/credentials` and `~/.aws/config` (profile `AWS_PROFILE`, else `default`).

use crate::error::{Error, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// An opened destination.
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    /// Where the tree goes inside the store.
    pub prefix: StorePath,
    /// Whether objects carry their own `Cache-Control` and `Content-Type` (a bucket does; a
    /// directory is served by a web server with `deploy/nginx/`'s rules instead).
    pub attributes: bool,
    /// What to call it in messages.
    pub display: String,
}

/// `[section]` -> key -> value of an AWS INI file (`~/.aws/credentials`, `~/.aws/config`).
fn ini(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().trim_start_matches("profile ").to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// Settings from `~/.aws/` for the profile, as `object_store` keys.
fn from_aws_files() -> Vec<(AmazonS3ConfigKey, String)> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut out = Vec::new();
    for file in ["config", "credentials"] {
        let sections = ini(&home.join(".aws").join(file));
        let Some(s) = sections.get(&profile) else {
            continue;
        };
        for (k, v) in s {
            let key = match k.as_str() {
                "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
                "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
                "aws_session_token" => AmazonS3ConfigKey::Token,
                "region" => AmazonS3ConfigKey::Region,
                "endpoint_url" => AmazonS3ConfigKey::Endpoint,
                _ => continue,
            };
            out.push((key, v.clone()));
        }
    }
    out
}

/// Open `to`. `extra` are S3 settings over the environment's (`AWS_ENDPOINT_URL`-style names,
/// for callers that do not go through the environment).
pub fn open(to: &str, extra: &[(String, String)]) -> Result<Destination> {
    if let Some(rest) = to.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::refused(format!("--to {to}: no bucket named")));
        }
        // The files first, the environment over them.
        let mut b = AmazonS3Builder::new();
        for (k, v) in from_aws_files() {
            b = b.with_config(k, v);
        }
        for (k, v) in std::env::vars().chain(extra.iter().cloned()) {
            let k = k.to_ascii_lowercase();
            // AWS_ENDPOINT_URL is the standard name; object_store knows it as aws_endpoint.
            let k = if k == "aws_endpoint_url" {
                "aws_endpoint".into()
            } else {
                k
            };
            if k.starts_with("aws_") {
                if let Ok(key) = AmazonS3ConfigKey::from_str(&k) {
                    b = b.with_config(key, v);
                }
            }
        }
        if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
            b = b.with_region("us-east-1");
        }
        // A plain-HTTP endpoint (a local S3-compatible server) is allowed when named so.
        if b.get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
        {
            b = b.with_allow_http(true);
        }
        let store = b
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| Error::Store {
                what: format!("--to {to}"),
                source: Box::new(e),
            })?;
        let prefix = StorePath::parse(prefix.trim_matches('/'))
            .map_err(|e| Error::refused(format!("--to {to}: {e}")))?;
        return Ok(Destination {
            store: Arc::new(store),
            prefix,
            attributes: true,
            display: to.into(),
        });
    }
    let dir = match to.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if to.contains("://") => {
            return Err(Error::refused(format!(
                "--to {to}: unsupported; give s3://BUCKET/PREFIX, file:///PATH or a directory"
            )))
        }
        None => PathBuf::from(to),
    };
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| Error::Store {
        what: format!("--to {to}"),
        source: Box::new(e),
    })?;
    Ok(Destination {
        store: Arc::new(store),
        prefix: StorePath::default(),
        attributes: false,
        display: dir.display().to_string(),
    })
}
