//! Trust documents reach the ECUs before anything else of a run: a revoked key or a raised
//! release-counter floor must be in an ECU before a gateway that may be compromised later
//! talks to it, and before any activation (a roll-forward included) of a release it refuses.
//!
//! Every ECU is asked which version it holds, at every run with a forwarder (one UDS read;
//! nothing more when it holds the newest): a number kept on the gateway's disk is a record for
//! `status`, never a reason to skip an ECU, so a tampered or lost state directory cannot keep a
//! revoked key or a raised floor out of an ECU.

use super::{EcuError, Gateway};
use crate::config::EcuConfig;
use crate::forward::Forwarder;
use crate::state::GatewayState;
use crate::tuf::{Fetch, Updater};
use crate::walk;
use std::collections::BTreeMap;

impl Gateway {
    /// Forward the OEM's newer trust documents to every ECU: each is asked which version it
    /// holds and sent the newer ones. Records the versions they hold; returns the ECUs that
    /// could not be brought up to date, with why.
    pub(super) fn forward_floors<F: Fetch>(
        &self,
        master: &mut Updater<F>,
        fw: &mut dyn Forwarder,
        state: &mut GatewayState,
    ) -> BTreeMap<String, EcuError> {
        let mut failed = BTreeMap::new();
        for ecu in &self.config.ecus {
            match self.forward_trust(master, fw, ecu) {
                Ok(Some(v)) => {
                    state.trust_versions.insert(ecu.serial.clone(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    failed.insert(ecu.serial.clone(), e);
                }
            }
        }
        failed
    }

    /// Bring `ecu`'s trust document up to the newest the OEM publishes for its hardware id:
    /// versions held+1, held+2, … (targets `ecu-trust.<hardware-id>.<version>.bin` of the
    /// master's targets role, fetched and checked through TUF), each sent in turn, as a TUF
    /// client walks a root chain; the ECU checks each against the one before. Returns the
    /// version the ECU holds afterwards. Nothing for an ECU that holds none (provisioned with
    /// supplier keys only: the bus cannot give it a first anchor) or a forwarder without
    /// trust documents (`None`).
    pub(super) fn forward_trust<F: Fetch>(
        &self,
        master: &mut Updater<F>,
        fw: &mut dyn Forwarder,
        ecu: &EcuConfig,
    ) -> std::result::Result<Option<u32>, EcuError> {
        let Some(mut held) = fw.trust_version(ecu)? else {
            return Ok(None);
        };
        if held == 0 {
            return Ok(Some(0));
        }
        let dir = self.config.state_dir.join("ecu-trust");
        let fail = |reason: String| walk::WalkError {
            check: walk::Check::OemMetadata,
            repository: self.config.master_url.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir)?;
        // A bound on the chain walked in one run, as on a root chain.
        for _ in 0..1024 {
            let Some(next) = held.checked_add(1) else {
                break;
            };
            let name = ota_ecu::trust::target_name(&ecu.hardware_id, next);
            let found = master
                .get_targetinfo(&name)
                .map_err(|e| fail(format!("{name}: {e}")))?;
            let Some(found) = found else {
                break;
            };
            let path = master
                .download_target(&name, &found.info, &dir)
                .map_err(|e| fail(format!("{name}: {e}")))?;
            let doc = std::fs::read(&path)?;
            let _ = std::fs::remove_file(&path);
            let now = fw.send_trust(ecu, &doc)?;
            if now != next {
                return Err(fail(format!(
                    "{name}: the ECU holds trust document version {now} after it, not {next}"
                ))
                .into());
            }
            held = now;
        }
        Ok(Some(held))
    }
}
