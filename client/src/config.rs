//! The gateway's configuration file (TOML): which vehicle it is, where the OEM's master
//! repository is and which root to trust for it, the CA bundle for HTTPS, where state lives,
//! the vehicle's ECUs, how to reach them, and the limits.
//!
//! ```toml
//! vin = "WDD2130421A000001"
//! master_url = "https://ota.example.com/oem/repository"
//! master_root = "/etc/ota/oem-root.json"   # factory-installed
//! ca_bundle = "/etc/ota/ca.pem"            # HTTPS trusts only these CAs
//! # system_roots = true                    # ... or, explicitly, the built-in web roots
//! state_dir = "/var/lib/ota"
//! vehicle_secret = "/etc/ota/vehicle.secret"  # `ota-repo oem vehicle secret`: finds and reads
//!                                           # this vehicle's entry in the OEM's tree
//! vehicle_key = "/etc/ota/vehicle-key.pem"  # signs the vehicle's version reports
//! report_url = "https://ota.example.com/reports"   # `ota-gateway run` POSTs version reports
//!                                                 # (HTTPS, or http:// to a loopback address)
//!
//! [forward]
//! kind = "udp"                             # CAN over UDP to ECU simulators; or
//! bind = "127.0.0.1:7000"                  # kind = "socketcan", interface = "can0"; or
//! peers = ["127.0.0.1:7001"]               # kind = "dir", path = "/var/lib/ota/ecus"
//! fd = true
//! # compress = false                       # whole images as they are (default: compressed
//!                                          # on the bus when that is smaller)
//!
//! [[ecus]]
//! serial = "BRK-0001"
//! hardware_id = "BRAKE-A"
//! address = 0x7E0                          # bus address, for the CAN forwarder
//!
//! [limits]                                 # all optional
//! max_target_size = 1073741824
//! connect_timeout_secs = 30
//! read_timeout_secs = 30
//! min_bytes_per_sec = 1024                 # averaged over each min_speed_window_secs
//! min_speed_window_secs = 10
//! max_resume_attempts = 3                  # Range requests after a broken download
//! staging_budget = 4294967296              # disk for phase one: all images of an update
//!
//! [service]                                # `ota-gateway run`, all optional
//! interval_secs = 3600                     # a check an hour ...
//! jitter_secs = 360                        # ... +- up to 6 min, uniformly random
//! retry_secs = 60                          # after a failure; doubles per failure in a row
//! max_backoff_secs = 21600                 # ... up to this
//! ```

use crate::walk::Ecu;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The longest connect or read timeout accepted (one day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcuConfig {
    pub serial: String,
    pub hardware_id: String,
    /// Bus address (CAN id) of the ECU, for forwarders that need one.
    #[serde(default)]
    pub address: Option<u32>,
}

impl EcuConfig {
    pub fn ecu(&self) -> Ecu {
        Ecu {
            serial: self.serial.clone(),
            hardware_id: self.hardware_id.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ForwardConfig {
    /// Write each verified image to `path/<serial>/`.
    Dir { path: PathBuf },
    /// CAN carried over UDP (ECU simulators): bind `bind`, send every frame to each of `peers`.
    Udp {
        bind: std::net::SocketAddr,
        peers: Vec<std::net::SocketAddr>,
        #[serde(default)]
        fd: bool,
        /// Send whole images compressed when that is smaller (default); `false` sends them
        /// as they are (an ECU whose bootloader is to be measured or tested byte for byte).
        #[serde(default = "yes")]
        compress: bool,
    },
    /// A SocketCAN interface such as `can0` (classic CAN).
    Socketcan {
        interface: String,
        #[serde(default = "yes")]
        compress: bool,
    },
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_target_size: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub read_timeout_secs: Option<u64>,
    pub max_root_rotations: Option<u32>,
    pub max_delegations: Option<usize>,
    pub min_bytes_per_sec: Option<u64>,
    pub min_speed_window_secs: Option<u64>,
    pub max_resume_attempts: Option<u32>,
    /// Disk budget of phase one, in bytes: an update whose images' signed lengths add up to
    /// more is refused before anything is downloaded (default 4 GiB).
    pub staging_budget: Option<u64>,
}

/// Whether `url` is plain HTTP to a loopback address (127.0.0.0/8, ::1, localhost).
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vin: String,
    pub master_url: String,
    /// The factory-installed OEM root.
    pub master_root: PathBuf,
    /// PEM bundle of the CAs trusted for HTTPS.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Trust the built-in web roots instead (off unless asked).
    #[serde(default)]
    pub system_roots: bool,
    pub state_dir: PathBuf,
    /// The vehicle's secret (`ota-repo oem vehicle secret`): where its entry is in the OEM's
    /// vehicle tree and the key it is sealed under.
    pub vehicle_secret: PathBuf,
    /// The vehicle's private key, signing the version reports sent to the OEM.
    #[serde(default)]
    pub vehicle_key: Option<PathBuf>,
    /// The vehicle's decryption keys for encrypted images (the file `ota-repo oem vehicle
    /// add --decryption-keys` issued, installed at the factory).
    #[serde(default)]
    pub decryption_keys: Option<PathBuf>,
    pub forward: ForwardConfig,
    pub ecus: Vec<EcuConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Where `ota-gateway run` POSTs each version report (needs `vehicle_key`).
    #[serde(default)]
    pub report_url: Option<String>,
    /// Timing of `ota-gateway run`.
    #[serde(default)]
    pub service: ServiceConfig,
}

/// `ota-gateway run`: a check every `interval_secs`, spread by a uniform random jitter of
/// ±`jitter_secs` (the first check after a uniform random delay in [0, jitter_secs]), so a
/// fleet does not hit the CDN in the same second; after a failed check, retry after
/// `retry_secs`, doubling on each failure in a row up to `max_backoff_secs` (plus jitter).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub interval_secs: u64,
    pub jitter_secs: u64,
    pub retry_secs: u64,
    pub max_backoff_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            interval_secs: 3600,
            jitter_secs: 360,
            retry_secs: 60,
            max_backoff_secs: 6 * 3600,
        }
    }
}

/// Largest configuration file read.
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Config {
    /// The vehicle's secret, read from `vehicle_secret`.
    pub fn vehicle_secret(&self) -> Result<ota_crypt::fleet::VehicleSecret, ConfigError> {
        let bad = |reason: String| ConfigError::Invalid {
            path: self.vehicle_secret.clone(),
            reason,
        };
        use std::io::Read;
        // A regular file only: a FIFO or device would block or never end.
        match std::fs::metadata(&self.vehicle_secret) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(bad("vehicle_secret: not a regular file".into())),
            Err(e) => return Err(bad(format!("vehicle_secret: {e}"))),
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&self.vehicle_secret)
            .and_then(|f| f.take(1024).read_to_end(&mut bytes))
            .map_err(|e| bad(format!("vehicle_secret: {e}")))?;
        ota_crypt::fleet::VehicleSecret::parse(&bytes).ok_or_else(|| {
            bad(
                "vehicle_secret: not 64 hex digits (the file `ota-repo oem vehicle secret` writes)"
                    .into(),
            )
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if meta.len() > MAX_CONFIG {
            return Err(bad(format!(
                "{} bytes; a configuration is at most {MAX_CONFIG}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut c: Config = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        // Relative paths are relative to the configuration file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut c.master_root),
            c.ca_bundle.as_mut(),
            Some(&mut c.state_dir),
            Some(&mut c.vehicle_secret),
            c.vehicle_key.as_mut(),
            c.decryption_keys.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let ForwardConfig::Dir { path } = &mut c.forward {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        c.validate().map_err(bad)?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        ota_metadata::names::check_vin(&self.vin).map_err(|e| e.to_string())?;
        if self.ecus.is_empty() {
            return Err("no [[ecus]] configured".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.ecus {
            ota_metadata::names::check_ecu_serial(&e.serial).map_err(|x| x.to_string())?;
            ota_metadata::names::check_hardware_id(&e.hardware_id).map_err(|x| x.to_string())?;
            if !seen.insert(&e.serial) {
                return Err(format!("ECU serial {} listed twice", e.serial));
            }
        }
        if !matches!(self.forward, ForwardConfig::Dir { .. }) {
            if let Some(e) = self.ecus.iter().find(|e| e.address.is_none()) {
                return Err(format!(
                    "ECU {} needs an address (its CAN id) for the CAN forwarder",
                    e.serial
                ));
            }
        }
        if self.ca_bundle.is_some() && self.system_roots {
            return Err("give ca_bundle or system_roots, not both".into());
        }
        let https = self.master_url.starts_with("https://");
        if https && self.ca_bundle.is_none() && !self.system_roots {
            return Err("master_url is HTTPS: set ca_bundle (or system_roots = true)".into());
        }
        if let Some(url) = &self.report_url {
            // Reports name the VIN and every ECU: never in clear beyond this machine.
            if !(url.starts_with("https://") || is_loopback_http(url)) {
                return Err(format!(
                    "report_url {url}: reports go over HTTPS only (http:// only to a loopback address)"
                ));
            }
            if self.vehicle_key.is_none() {
                return Err("report_url needs vehicle_key (reports are signed)".into());
            }
        }
        // Timeouts are added to the current instant: bounded, so no value can overflow it.
        for (name, v) in [
            ("connect_timeout_secs", self.limits.connect_timeout_secs),
            ("read_timeout_secs", self.limits.read_timeout_secs),
        ] {
            if v.is_some_and(|v| v > MAX_TIMEOUT_SECS) {
                return Err(format!(
                    "[limits] {name}: at most {MAX_TIMEOUT_SECS} (one day)"
                ));
            }
        }
        let s = &self.service;
        if s.interval_secs == 0 || s.retry_secs == 0 {
            return Err("[service] interval_secs and retry_secs must be at least 1".into());
        }
        if s.jitter_secs > s.interval_secs {
            return Err("[service] jitter_secs must not exceed interval_secs".into());
        }
        if s.max_backoff_secs < s.retry_secs {
            return Err("[service] max_backoff_secs must be at least retry_secs".into());
        }
        Ok(())
    }

    /// The disk budget of phase one (`limits.staging_budget`).
    pub fn staging_budget(&self) -> u64 {
        self.limits
            .staging_budget
            .unwrap_or(crate::staging::DEFAULT_BUDGET)
    }

    pub fn limits(&self) -> crate::tuf::Limits {
        let mut l = crate::tuf::Limits::default();
        let c = &self.limits;
        if let Some(v) = c.max_target_size {
            l.max_target_size = v;
        }
        if let Some(v) = c.connect_timeout_secs {
            l.connect_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = c.read_timeout_secs {
            l.read_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = c.max_root_rotations {
            l.max_root_rotations = v;
        }
        if let Some(v) = c.max_delegations {
            l.max_delegations = v;
        }
        if let Some(v) = c.min_bytes_per_sec {
            l.min_bytes_per_sec = v;
        }
        if let Some(v) = c.min_speed_window_secs {
            l.min_speed_window = std::time::Duration::from_secs(v);
        }
        if let Some(v) = c.max_resume_attempts {
            l.max_resume_attempts = v;
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_http, Config};

    /// The example at the top of this file is what users copy: it must load as it is (it did
    /// not, with `report_url` after the tables, until fuzzing's coverage showed its seed never
    /// got past the TOML parser).
    #[test]
    fn the_documented_example_loads() {
        let doc: Vec<&str> = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| !l.starts_with("```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, doc.join("\n")).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.vin, "WDD2130421A000001");
        assert_eq!(
            c.report_url.as_deref(),
            Some("https://ota.example.com/reports")
        );
        assert_eq!(c.ecus.len(), 1);
    }

    #[test]
    fn plain_http_reports_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080/reports",
            "http://127.9.9.9/r",
            "http://localhost:1/",
            "http://[::1]:80/r",
        ] {
            assert!(is_loopback_http(ok), "{ok}");
        }
        for no in [
            "http://10.0.0.1/r",
            "http://ota.example.com/r",
            "http://127.0.0.1.example.com/r",
            "http://user@127.0.0.1/r",
            "http://[::2]/r",
            "https://127.0.0.1/r",
        ] {
            assert!(!is_loopback_http(no), "{no}");
        }
    }
}
