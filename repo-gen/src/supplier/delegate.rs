use super::{DelegationConfig, Settings};
use crate::error::{Error, Result};
use crate::root_build::{check_threshold, default_expiry};
use crate::workdir::RoleConfig;
use ota_metadata::roles::glob_match;
use ota_metadata::{names, Key, KeyId};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Whose keys a delegation names.
pub enum DelegateKeys {
    /// The delegate's public keys (PEM): it signs its role itself and hands it over.
    Public(Vec<PathBuf>),
    /// The delegate's private keys: this directory signs in its name (one organisation).
    Private(Vec<PathBuf>),
}

pub struct Delegate {
    pub name: String,
    pub keys: DelegateKeys,
    pub threshold: u32,
    pub hardware_ids: Vec<String>,
    /// Target-name patterns the delegate may sign; `*` (any image) when empty, with the
    /// hardware-id restriction doing the narrowing.
    pub paths: Vec<String>,
    pub terminating: bool,
    pub expires: Option<String>,
    /// Replace the keys of an existing delegation (the delegate rotated its key), keeping its
    /// images; hardware ids and paths as given.
    pub replace: bool,
}

/// Whether target-name pattern `sub` only ever matches names that `within` matches: a literal
/// name `within` matches, or `PREFIX…` under a `within` of the form `LITERAL*` whose literal
/// `PREFIX` starts with. Anything else is refused rather than guessed.
pub fn pattern_within(sub: &str, within: &str) -> bool {
    let wild = |p: &str| p.contains(['*', '?']);
    if !wild(sub) {
        return glob_match(within, sub);
    }
    match within.strip_suffix('*') {
        Some(lit) if !wild(lit) && !lit.contains('/') => {
            sub.starts_with(lit) && !sub[lit.len()..].contains('/')
        }
        _ => within == sub,
    }
}

/// The public keys in `files` (PEM: SPKI, or a private key's public half refused).
fn public_keys(files: &[PathBuf]) -> Result<BTreeMap<KeyId, Key>> {
    let mut out = BTreeMap::new();
    for f in files {
        let key = crate::keystore::public_key(f)?;
        out.insert(key.key_id()?, key);
    }
    Ok(out)
}

/// Delegate signing of images for `hardware_ids` to a tier-2 supplier (or, in a tier
/// directory, to a tier-3). Takes effect at the next `publish` (a delegate that signs for
/// itself: once its first hand-over is ingested).
///
/// The procedure: the name (new, or replaced on purpose) → the hardware ids and path patterns
/// → within this tier's own, for a tier → the expiry → the delegate's keys → recorded.
pub fn delegate(dir: &Path, opts: Delegate) -> Result<()> {
    let mut s = Settings::load(dir)?;
    check_name(&s, &opts)?;
    if opts.hardware_ids.is_empty() {
        return Err(Error::refused(
            "give at least one --hardware-id the delegate may serve",
        ));
    }
    for h in &opts.hardware_ids {
        names::check_hardware_id(h)?;
    }
    for p in &opts.paths {
        if p.is_empty() || p.contains("..") {
            return Err(Error::refused(format!("path pattern {p:?} is not allowed")));
        }
    }
    let paths = if opts.paths.is_empty() {
        vec!["*".to_string()]
    } else {
        opts.paths.clone()
    };
    if let Some(t) = &s.tier {
        check_within_tier(t, &opts.hardware_ids, &paths)?;
    }
    let expires = opts.expires.as_deref().unwrap_or(default_expiry("targets"));
    crate::workdir::parse_lifetime(expires)
        .map_err(|e| Error::refused(format!("--expires {expires}: {e}")))?;
    let (role, public_keys) = delegate_keys(&opts, expires)?;
    let config = DelegationConfig {
        name: opts.name.clone(),
        role,
        hardware_ids: opts.hardware_ids,
        paths,
        terminating: opts.terminating,
        public_keys,
    };
    match s.delegations.iter_mut().find(|d| d.name == opts.name) {
        Some(d) => *d = config,
        None => s.delegations.push(config),
    }
    s.save(dir)
}

/// The delegation's name: a role name, new (not retired either) unless `--replace`, which
/// needs an existing one; never this directory's own role.
fn check_name(s: &Settings, opts: &Delegate) -> Result<()> {
    names::check_role_name(&opts.name)?;
    let existing = s.delegation(&opts.name).is_some();
    if opts.replace && !existing {
        return Err(Error::refused(format!(
            "no delegation named {:?} to replace",
            opts.name
        )));
    }
    if !opts.replace && existing {
        return Err(Error::refused(format!(
            "delegation {:?} already exists (a delegate with new keys: --replace)",
            opts.name
        )));
    }
    if s.retired.contains(&opts.name) {
        // Clients hold the retired role's last version in their snapshot; a new role under
        // the name would start again below it and be refused as a rollback.
        return Err(Error::refused(format!(
            "delegation {:?} was removed and its name is retired (vehicles still hold its last version): choose another name",
            opts.name
        )));
    }
    if s.tier.as_ref().is_some_and(|t| t.role == opts.name) {
        return Err(Error::refused(format!(
            "{} is this directory's own role",
            opts.name
        )));
    }
    Ok(())
}

/// A tier delegates within what it was delegated: hardware ids and names narrow.
fn check_within_tier(t: &super::Tier, hardware_ids: &[String], paths: &[String]) -> Result<()> {
    if let Some(h) = hardware_ids.iter().find(|h| !t.hardware_ids.contains(h)) {
        return Err(Error::refused(format!(
            "{h} is not among the hardware ids this tier may serve ({:?}): a delegation only narrows",
            t.hardware_ids
        )));
    }
    if let Some(p) = paths
        .iter()
        .find(|p| !t.paths.iter().any(|q| pattern_within(p, q)))
    {
        return Err(Error::refused(format!(
            "path pattern {p:?} is not within this tier's patterns {:?}: a delegation only narrows (give --path)",
            t.paths
        )));
    }
    Ok(())
}

/// The delegate's role: its private keys kept here (the threshold checked against them), or
/// only its public keys (a delegate that signs for itself and hands its role over).
fn delegate_keys(opts: &Delegate, expires: &str) -> Result<(RoleConfig, BTreeMap<KeyId, Key>)> {
    match &opts.keys {
        DelegateKeys::Private(keys) => {
            let role = RoleConfig::new(keys.clone(), opts.threshold, expires)?;
            let ids: BTreeSet<_> = role
                .load_keys(&opts.name)?
                .iter()
                .map(|k| k.key_id().clone())
                .collect();
            check_threshold(&opts.name, &role, ids.len())?;
            Ok((role, BTreeMap::new()))
        }
        DelegateKeys::Public(files) => {
            let keys = public_keys(files)?;
            if opts.threshold == 0 || opts.threshold as usize > keys.len() {
                return Err(Error::refused(format!(
                    "--threshold {} with {} distinct public key(s)",
                    opts.threshold,
                    keys.len()
                )));
            }
            let role = RoleConfig {
                keys: Vec::new(),
                threshold: opts.threshold,
                expires: expires.into(),
            };
            Ok((role, keys))
        }
    }
}

/// Remove the delegation to `name` (Uptane: removing a tier-2 supplier). Its images go with
/// it only when `drop_images`; otherwise the removal is refused while it signs any. The role's
/// file stays listed, empty and delegated by no one, so clients' snapshot rules still hold,
/// and so do the files of the roles its hand-overs brought (tier-3s). Returns how many images
/// were dropped. Takes effect at the next `publish`.
pub fn undelegate(dir: &Path, name: &str, drop_images: bool) -> Result<usize> {
    let mut s = Settings::load(dir)?;
    let Some(d) = s.delegation(name) else {
        return Err(Error::refused(format!("no delegation named {name:?}")));
    };
    let external = d.external();
    let signed = s.images.iter().filter(|i| i.role == name).count();
    if signed > 0 && !drop_images {
        return Err(Error::refused(format!(
            "delegation {name} signs {signed} image(s); pass --drop-images to withdraw them with it"
        )));
    }
    if external && s.ingested.contains_key(name) && !drop_images {
        return Err(Error::refused(format!(
            "delegation {name} signs for itself and its hand-over is published; pass --drop-images to withdraw its images with it"
        )));
    }
    s.images.retain(|i| i.role != name);
    s.delegations.retain(|d| d.name != name);
    // The roles it brought in, itself first, retire with it.
    let mut gone = vec![name.to_string()];
    let mut i = 0;
    while i < gone.len() {
        let parent = gone[i].clone();
        gone.extend(
            s.ingested
                .iter()
                .filter(|(_, r)| r.parent == parent)
                .map(|(n, _)| n.clone()),
        );
        i += 1;
    }
    for g in &gone {
        if (s.ingested.remove(g).is_some() || g == name) && !s.retired.contains(g) {
            s.retired.push(g.clone());
        }
    }
    s.save(dir)?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::pattern_within;

    #[test]
    fn patterns_only_narrow() {
        assert!(pattern_within("brake-lib-*", "brake-*"));
        assert!(pattern_within("brake-lib-1.0.bin", "brake-*"));
        assert!(pattern_within("brake-*", "brake-*"));
        assert!(pattern_within("x", "*"));
        assert!(pattern_within("brake-*", "*"));
        assert!(!pattern_within("abs-*", "brake-*"));
        assert!(!pattern_within("brake*", "brake-*"));
        assert!(!pattern_within("brake-?", "brake-?x"));
        assert!(!pattern_within("a?", "a*b"));
        assert!(!pattern_within("brake-x/*", "brake-*"));
        assert!(!pattern_within("*", "brake-*"));
    }
}
