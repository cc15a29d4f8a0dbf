//! `ota-repo oem supplier …`: the suppliers the OEM pins (root keys, URL, hardware ids).

use super::{RepinArgs, PUBLISH_HINT};
use crate::cli::DIR_HELP;
use crate::error::Result;
use crate::oem;
use clap::Subcommand;
use std::path::{Path, PathBuf};

pub const OEM_SUPPLIER_EXAMPLES: &str = "Examples:
  ota-repo oem supplier add oem --name acme --root acme-1.root.json \\
      --url https://acme.example/repo --hardware-id 'BRAKE-*' --hardware-id 'ABS-*'
  ota-repo oem supplier repin oem --name acme --root acme-new-1.root.json   # after a key theft
  ota-repo oem supplier replace oem --name acme --with bosch   # bosch takes over acme's ids
  ota-repo oem supplier remove oem --name bosch";

#[derive(Subcommand, Debug)]
pub enum OemSupplierCommand {
    /// Pin a supplier's repository: its root keys and threshold, URL, and hardware ids.
    Add {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The supplier's root.json (it must verify).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// Base URL of the supplier's published tree (the directory holding timestamp.json):
        /// an http(s):// or file:// URL, or an absolute path.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Hardware id (pattern, `*` matches any run of characters) the supplier may serve;
        /// repeatable.
        #[arg(long = "hardware-id", value_name = "PATTERN", required = true)]
        hardware_ids: Vec<String>,
    },
    /// Remove a supplier and withdraw every vehicle assignment of its images.
    Remove {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Hand a supplier's hardware ids to another (already added) supplier and remove it.
    Replace {
        #[arg(value_name = "DIR", help = DIR_HELP)]
        dir: PathBuf,
        /// The supplier to remove, by the OEM's name for it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The supplier (already added, by name) that takes over its hardware ids.
        #[arg(long = "with", value_name = "NEW")]
        with: String,
    },
    /// Re-pin a supplier to a new root (recovery from a stolen root key): vehicles drop what
    /// they walked under the old pin and start again from this root. Hardware ids and
    /// assignments stay.
    Repin(RepinArgs),
}

impl OemSupplierCommand {
    pub(super) fn dir(&self) -> &Path {
        match self {
            OemSupplierCommand::Add { dir, .. }
            | OemSupplierCommand::Remove { dir, .. }
            | OemSupplierCommand::Replace { dir, .. }
            | OemSupplierCommand::Repin(RepinArgs { dir, .. }) => dir,
        }
    }
}

pub fn run(cmd: OemSupplierCommand) -> Result<()> {
    match cmd {
        OemSupplierCommand::Add {
            dir,
            name,
            root,
            url,
            hardware_ids,
        } => {
            oem::supplier_add(&dir, &name, &root, &url, &hardware_ids)?;
            say!("pinned supplier {name} ({url}) for {hardware_ids:?}; {PUBLISH_HINT}");
        }
        OemSupplierCommand::Remove { dir, name } => {
            let n = oem::supplier_remove(&dir, &name)?;
            say!("removed supplier {name}; withdrew {n} assignment(s); {PUBLISH_HINT}");
        }
        OemSupplierCommand::Replace { dir, name, with } => {
            let n = oem::supplier_replace(&dir, &name, &with)?;
            say!("{with} now serves {name}'s hardware ids; withdrew {n} assignment(s) to reassign; {PUBLISH_HINT}");
        }
        OemSupplierCommand::Repin(RepinArgs {
            dir,
            name,
            root,
            url,
        }) => {
            oem::supplier_repin(&dir, &name, &root, url.as_deref())?;
            say!(
                "re-pinned supplier {name} to {}; {PUBLISH_HINT}",
                root.display()
            );
        }
    }
    Ok(())
}
