//! `ota-repo supplier delegate|undelegate|init-tier|handover|ingest|rotate-tier-key`: the
//! supply chain. A supplier delegates hardware ids to a tier-2 that either signs here (its
//! private key in this directory) or, usually, in a tier directory of its own, whose signed
//! role it hands over for the delegator to check and take in.

use super::parse_size;
use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::supplier;
use clap::Args;
use ota_metadata::DateTime;
use std::path::PathBuf;

/// `supplier delegate`.
#[derive(Args, Debug)]
pub struct DelegateArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// Name of the tier-2 delegation (its role name; ASCII letters, digits, '.', '_', '-').
    #[arg(long = "name", value_name = "NAME", alias = "to")]
    pub name: String,
    /// The delegate's public key(s) (PEM, from `ota-repo key public`): it signs its role
    /// and images itself and hands them over (`supplier handover`, `supplier ingest`);
    /// repeatable.
    #[arg(
        long = "public-key",
        value_name = "FILE",
        required_unless_present = "key"
    )]
    pub public_key: Vec<PathBuf>,
    /// The delegate's private key(s) (PEM), to sign in its name here: one organisation
    /// only. Needs --sign-here; repeatable.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "public_key",
        requires = "sign_here"
    )]
    pub key: Vec<PathBuf>,
    /// Confirm that this directory holds the delegate's private keys (--key) and signs
    /// for it.
    #[arg(long)]
    pub sign_here: bool,
    /// Replace an existing delegation's keys (the delegate rotated its key), hardware ids
    /// and patterns; its images stay.
    #[arg(long)]
    pub replace: bool,
    /// Hardware id the tier-2 supplier may sign images for; repeatable.
    #[arg(long = "hardware-id", value_name = "ID", required = true)]
    pub hardware_ids: Vec<String>,
    /// How many of its distinct keys must sign each of its documents (1 to the number of
    /// --key).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threshold: u32,
    /// Target-name pattern (`*` matches any run of characters) it may sign; repeatable.
    /// Default: `*` (its hardware ids still restrict it).
    #[arg(long = "path", value_name = "PATTERN")]
    pub paths: Vec<String>,
    /// Make the delegation terminating: targets it matches are never looked up in
    /// delegations listed after it.
    #[arg(long)]
    pub terminating: bool,
    /// Lifetime of the delegated role's metadata: a number with unit s, m, h, d or w, at
    /// most 3653d. Default: 90d.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
}

pub(super) fn delegate(a: DelegateArgs) -> Result<()> {
    let to = a.name;
    // `--sign-here` only confirms `--key` (clap requires it with it): nothing more to do.
    let external = a.key.is_empty();
    supplier::delegate(
        &a.dir,
        supplier::Delegate {
            name: to.clone(),
            keys: if external {
                supplier::DelegateKeys::Public(a.public_key)
            } else {
                supplier::DelegateKeys::Private(a.key)
            },
            threshold: a.threshold,
            hardware_ids: a.hardware_ids,
            paths: a.paths,
            terminating: a.terminating,
            expires: a.expires,
            replace: a.replace,
        },
    )?;
    if external {
        say!("delegated to {to:?}, which signs for itself: its role is published once its hand-over is taken in (`ota-repo supplier ingest`)");
    } else {
        say!("delegated to {to:?}; run `ota-repo supplier publish` to publish it");
    }
    Ok(())
}

/// `supplier undelegate`.
#[derive(Args, Debug)]
pub struct UndelegateArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// Name of the tier-2 delegation to remove.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Withdraw the images the delegation signs together with it.
    #[arg(long)]
    pub drop_images: bool,
}

pub(super) fn undelegate(a: UndelegateArgs) -> Result<()> {
    let UndelegateArgs {
        dir,
        name,
        drop_images,
    } = a;
    let n = supplier::undelegate(&dir, &name, drop_images)?;
    say!("removed delegation {name} ({n} image(s) withdrawn); run `ota-repo supplier publish` to publish it");
    Ok(())
}

/// `supplier init-tier`.
#[derive(Args, Debug)]
pub struct InitTierArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// This supplier's name (in its image manifests).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The role the delegator delegates to this supplier (its `supplier delegate --name`).
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Its private key(s) (PEM); repeatable. Give the delegator the public halves
    /// (`ota-repo key public`).
    #[arg(long, value_name = "FILE", required = true)]
    pub key: Vec<PathBuf>,
    /// How many of its distinct keys sign its role.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threshold: u32,
    /// The hardware ids the delegation allows; repeatable.
    #[arg(long = "hardware-id", value_name = "ID", required = true)]
    pub hardware_ids: Vec<String>,
    /// The target-name patterns the delegation allows; repeatable. Default: `*`.
    #[arg(long = "path", value_name = "PATTERN")]
    pub paths: Vec<String>,
    /// Lifetime of each signed hand-over of its role (at most what the delegation allows,
    /// 90d by default). Default: 60d.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Largest image accepted.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub max_image_size: u64,
}

pub(super) fn init_tier(a: InitTierArgs) -> Result<()> {
    let dir = a.dir;
    let role = a.role;
    supplier::tier::init_tier(
        &dir,
        supplier::tier::TierInit {
            name: a.name,
            role: role.clone(),
            keys: a.key,
            threshold: a.threshold,
            hardware_ids: a.hardware_ids,
            paths: a.paths,
            expires: a.expires,
            max_image_size: a.max_image_size,
        },
    )?;
    say!(
        "created tier directory {} for role {role}: add images, then `ota-repo supplier handover {} --out DIR`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// `supplier handover`.
#[derive(Args, Debug)]
pub struct HandoverArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The directory to write (new or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Sign a new version even if nothing changed (to push its expiry out).
    #[arg(long)]
    pub renew: bool,
}

pub(super) fn handover(a: HandoverArgs, now: DateTime) -> Result<()> {
    let HandoverArgs { dir, out, renew } = a;
    let h = supplier::tier::handover(&dir, &out, renew, now)?;
    say!(
        "handed over role {} version {} ({}) with {} role(s) and {} file(s) in {}",
        h.role,
        h.version,
        if h.signed { "signed now" } else { "unchanged" },
        h.roles,
        h.targets,
        out.display()
    );
    Ok(())
}

/// `supplier ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The hand-over directory.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

pub(super) fn ingest(a: IngestArgs, now: DateTime) -> Result<()> {
    let r = supplier::ingest::ingest(&a.dir, &a.from, now)?;
    for (role, version, changed) in &r.roles {
        say!(
            "took in role {role} version {version}{}",
            if *changed { "" } else { " (as before)" }
        );
    }
    say!(
        "{} new file(s); run `ota-repo supplier publish` (or `supplier handover`) to pass it on",
        r.targets
    );
    Ok(())
}

/// `supplier rotate-tier-key`.
#[derive(Args, Debug)]
pub struct RotateTierKeyArgs {
    #[arg(value_name = "DIR", help = DIR_HELP)]
    pub dir: PathBuf,
    /// The new private key(s) (PEM); repeatable.
    #[arg(long = "new-key", value_name = "FILE", required = true)]
    pub new_key: Vec<PathBuf>,
    /// How many of the new keys sign its role.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threshold: u32,
}

pub(super) fn rotate_tier_key(a: RotateTierKeyArgs) -> Result<()> {
    supplier::tier::rotate_tier_key(&a.dir, a.new_key, a.threshold)?;
    say!("rotated the tier's key: its manifests are signed again; hand over, and have the delegator run `supplier delegate --replace --public-key NEW` and ingest it");
    Ok(())
}
