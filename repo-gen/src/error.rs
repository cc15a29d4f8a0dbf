//! Errors of the publishers: what went wrong and on which file or object.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: ota_metadata::Error,
    },
    #[error(transparent)]
    Model(#[from] ota_metadata::Error),
    /// Fetching or verifying another party's repository.
    #[error(transparent)]
    Client(#[from] ota_client::tuf::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A role's threshold in a settings file that its keys cannot meet (or zero).
    #[error(
        "{path}: role {role}: threshold {threshold} with {keys} key(s); a threshold must be at \
         least 1 and at most the number of the role's keys"
    )]
    Threshold {
        path: PathBuf,
        role: String,
        threshold: u32,
        keys: usize,
    },
    /// Another command holds the working directory's lock.
    #[error("another ota-repo command is working in {dir}; {}", wait_hint(*.waited))]
    Locked {
        dir: PathBuf,
        /// Seconds waited (`--wait`), or `None` when the command did not wait.
        waited: Option<u64>,
    },
    /// An input file that is a FIFO, device, socket or directory: reading it could block
    /// forever or see it change, so it is refused before anything is locked or read.
    #[error("{path} is {kind}, not a regular file")]
    NotRegularFile { path: PathBuf, kind: &'static str },
    /// `add-image --delta-from` that cannot be built (which earlier version, and why).
    #[error("--delta-from {from}: {reason}")]
    Delta { from: String, reason: String },
    /// `oem assign` without exactly one of its three ways to select ECUs.
    #[error(
        "{problem}; select ECUs in one of three ways: one ECU (--vin VIN --ecu SERIAL), every \
         ECU of one vehicle the image fits (--vin VIN), or every ECU of one hardware id in the \
         whole fleet (--hardware-id ID)"
    )]
    AssignSelector { problem: &'static str },
    /// An object store (`ota-repo upload --to`) failed: which step, and the store's error.
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The store already serves a newer `timestamp.json` than the local tree's: uploading would
    /// roll clients back (another machine published and uploaded).
    #[error(
        "{store} holds timestamp version {remote}, newer than the local {local} (published from elsewhere?): uploading would roll clients back"
    )]
    StoreAhead {
        store: String,
        remote: u64,
        local: u64,
    },
    /// The store holds another tree than this one (its root chain is not this tree's): a
    /// wrong `--to`, or another party's prefix.
    #[error("{store} holds another tree: {reason}; refusing to overwrite it (check --to)")]
    StoreOtherTree { store: String, reason: String },
    /// The store already serves a versioned file of this tree with other bytes: the tree was
    /// restored from a backup or forked after that version was published.
    #[error(
        "{store} already serves {name} with other bytes than this tree's: this tree was restored from a backup or forked after that version was published, and uploading it would break every client; publish from the state that made the store's tree (or bring it back with the store's files), then upload"
    )]
    StoreForked { store: String, name: String },
    /// A file the timestamp leads to is in neither the store nor this upload: the timestamp is
    /// not sent (clients would fail on it).
    #[error("{store}: {name}, which the timestamp leads to, is not in the store; the timestamp was not sent (publish running? upload again)")]
    StoreIncomplete { store: String, name: String },
    /// A firmware image of zero bytes.
    #[error("image {path} is empty (0 bytes)")]
    EmptyImage { path: PathBuf },
    /// `oem assign` refused: an assignment vehicles would refuse, or could not follow (boxed:
    /// it carries its context, and every `Result` of the crate carries an `Error`).
    #[error(transparent)]
    Assign(Box<AssignRefusal>),
    /// `supplier add-image` refused: an image that breaks the names rules, the images already
    /// here, the release counters or what the signing role may sign.
    #[error(transparent)]
    AddImage(Box<AddImageRefusal>),
}

/// Why `oem assign` refuses an assignment, in the order it checks. Each message names the ECU
/// or release concerned and what to do instead.
#[derive(Debug, Error)]
pub enum AssignRefusal {
    /// A requirement, conflict or set name that is empty, too long or has control characters.
    #[error(
        "{:?}: a set name, uid or version is 1 to 128 characters, none a control character",
        .name.escape_default().to_string()
    )]
    RuleName { name: String },
    /// More requirements or conflicts than one assignment carries, or one named twice.
    #[error("at most {max} requirements and {max} conflicts, each uid once")]
    TooManyRules { max: usize },
    /// A supplier the OEM does not pin.
    #[error("unknown supplier {supplier:?}")]
    UnknownSupplier { supplier: String },
    /// A release the OEM never submitted for review (so never verified against the
    /// supplier's signed manifest).
    #[error(
        "{uid} {version} of supplier {supplier} has not been submitted for review; run `oem review submit` first"
    )]
    NotSubmitted {
        supplier: String,
        uid: String,
        version: String,
    },
    /// An aftermarket ECU: it receives no updates.
    #[error("ECU {serial} of {vin} is aftermarket: it receives no updates")]
    Aftermarket { vin: String, serial: String },
    /// The image is not built for the ECU's hardware id.
    #[error(
        "{uid} {version} is built for {image_hw:?}, not for ECU {serial} of {vin} (hardware id {ecu_hw})"
    )]
    WrongHardwareId {
        uid: String,
        version: String,
        image_hw: Vec<String>,
        vin: String,
        serial: String,
        ecu_hw: String,
    },
    /// `--hardware-id`: the image is not built for that hardware id.
    #[error("{uid} {version} is built for {image_hw:?}, not for hardware id {hw}")]
    NotForHardwareId {
        uid: String,
        version: String,
        image_hw: Vec<String>,
        hw: String,
    },
    /// The supplier is not delegated the hardware id: vehicles verify the image through that
    /// delegation.
    #[error("supplier {supplier} is not delegated hardware id {hw} (it serves {serves:?})")]
    NotDelegated {
        supplier: String,
        hw: String,
        serves: Vec<String>,
    },
    /// An encrypted image, and the vehicle holds no decryption keys for the hardware id.
    #[error(
        "{uid} {version} is encrypted and vehicle {vin} holds no decryption keys for hardware id {hw}: issue them with `oem vehicle decryption-keys --vin {vin} --out FILE` (--again if it holds keys already) and install the file in its gateway"
    )]
    NoDecryptionKeys {
        uid: String,
        version: String,
        vin: String,
        hw: String,
    },
    /// The ECU reported running (or having run) a higher release counter: it refuses the
    /// release, and the vehicle's other updates (all or nothing) would wait on it.
    #[error(
        "ECU {serial} of {vin} reported running {running_uid} {running_version} (release counter {running_counter}{}): it refuses {uid} {version} (release counter {counter}), and the vehicle's other updates would wait on it; assign a release at counter {highest} or above",
        highest_before(*.running_counter, *.highest)
    )]
    BelowReported {
        vin: String,
        serial: String,
        running_uid: String,
        running_version: String,
        running_counter: u64,
        /// The highest release counter the ECU reported having run.
        highest: u64,
        uid: String,
        version: String,
        counter: u64,
    },
    /// The vehicle's requirements or conflicts unmet with the assignment in place.
    #[error(
        "ECU {serial} of {vin}: {why}; the gateway would refuse its update set (assign what it needs first, or in the same --set)"
    )]
    RulesUnmet {
        vin: String,
        serial: String,
        why: String,
    },
    /// A regulator vetoes (revoked or rejected) the release: never assigned.
    #[error(
        "{reason}: vehicles refuse a vetoed release, so it is never assigned (not even with --force); assign an approved release"
    )]
    Vetoed { reason: String },
    /// `--force`, but a regulator was seen vetoing the release before.
    #[error(
        "{reason}; and a regulator was seen vetoing {release} before ({veto}): not assigned, not even with --force"
    )]
    VetoedBefore {
        reason: String,
        release: String,
        veto: String,
    },
    /// Too few approvals, or a regulator or the supplier unreachable, without `--force`.
    #[error(
        "{reason}: vehicles would refuse {uid} {version} now, and their other updates would wait on it; wait for the regulators, or --force to assign it ahead of approval"
    )]
    NotApproved {
        reason: String,
        uid: String,
        version: String,
    },
    /// The vehicles' walk of the release fails otherwise.
    #[error("{reason}: vehicles would refuse this assignment")]
    WalkRefused { reason: String },
    /// No ECU selected.
    #[error(
        "no ECU in the inventory matches; nothing assigned for {uid} {version} (ECUs are selected by --vin VIN --ecu SERIAL: one ECU, by --vin VIN: every ECU of the vehicle the image fits, or by --hardware-id ID: every ECU of that hardware id in the fleet; aftermarket ECUs never)"
    )]
    NothingMatches { uid: String, version: String },
}

impl From<AssignRefusal> for Error {
    fn from(r: AssignRefusal) -> Error {
        Error::Assign(Box::new(r))
    }
}

impl From<AddImageRefusal> for Error {
    fn from(r: AddImageRefusal) -> Error {
        Error::AddImage(Box::new(r))
    }
}

fn highest_before(running: u64, highest: u64) -> String {
    if highest > running {
        format!(", and release counter {highest} before that")
    } else {
        String::new()
    }
}

/// Why `supplier add-image` refuses an image, in the order it checks.
#[derive(Debug, Error)]
pub enum AddImageRefusal {
    #[error("hardware id {hardware_id:?} given twice")]
    HardwareIdTwice { hardware_id: String },
    #[error("give at least one --hardware-id")]
    NoHardwareId,
    /// This uid and version were added before (published images are immutable).
    #[error("image {uid} version {version} is already in the repository (added {added})")]
    AlreadyAdded {
        uid: String,
        version: String,
        added: ota_metadata::DateTime,
    },
    /// Another uid and version produce the same target name.
    #[error(
        "{uid}: target name {name} is already used by uid {other_uid} version {other_version}"
    )]
    TargetNameUsed {
        uid: String,
        name: String,
        other_uid: String,
        other_version: String,
    },
    /// A release counter below an earlier release of the uid, without `--allow-rollback`:
    /// ECUs that installed that release refuse this one.
    #[error(
        "release counter {counter} is below {previous} of {previous_uid} version {previous_version}; ECUs that installed that release will refuse this one. Pass --allow-rollback to publish it anyway"
    )]
    ReleaseCounterBelow {
        counter: u64,
        previous: u64,
        previous_uid: String,
        previous_version: String,
    },
    /// A hardware id the signing role is not delegated.
    #[error("role {role} may sign images for hardware ids {allowed:?} only, not {hardware_id:?}")]
    RoleHardwareId {
        role: String,
        allowed: Vec<String>,
        hardware_id: String,
    },
    /// A target name outside the signing role's delegated paths.
    #[error(
        "role {role} may sign target names matching {paths:?} only, not {name} (choose a --uid they match)"
    )]
    RoleTargetName {
        role: String,
        paths: Vec<String>,
        name: String,
    },
    /// An encryption chunk size the stream format does not allow.
    #[error("--chunk-size {chunk}: {reason}")]
    ChunkSize { chunk: u32, reason: String },
    /// A content key file left from an earlier attempt.
    #[error("{} already exists (from an earlier attempt?): move it away first", .path.display())]
    ContentKeyExists { path: PathBuf },
    /// An image over the repository's size limit.
    #[error(
        "image {} is {length} bytes, over this repository's limit of {limit} (see --max-image-size)",
        .path.display()
    )]
    TooLarge {
        path: PathBuf,
        length: u64,
        limit: u64,
    },
    #[error("encrypting {}: {reason}", .path.display())]
    Encrypting { path: PathBuf, reason: String },
    /// The image grew while being encrypted (the header names the length read at the start).
    #[error("image {} grew while being read", .path.display())]
    Grew { path: PathBuf },
}

fn wait_hint(waited: Option<u64>) -> String {
    match waited {
        None => "try again when it has finished, or pass --wait SECONDS to wait for it".into(),
        Some(s) => format!("it still held the lock after {s} s (--wait {s})"),
    }
}

impl Error {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn meta(path: &Path) -> impl FnOnce(ota_metadata::Error) -> Error + '_ {
        move |source| Error::Metadata {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn refused(msg: impl Into<String>) -> Error {
        Error::Refused(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed refusals print what `Error::Refused` printed before them (the CLI's tests
    /// and users match on these messages).
    #[test]
    fn a_release_counter_below_the_reported_one_reads_as_before() {
        let r = |running_counter, highest| AssignRefusal::BelowReported {
            vin: "V1".into(),
            serial: "S1".into(),
            running_uid: "brake".into(),
            running_version: "2.0".into(),
            running_counter,
            highest,
            uid: "brake".into(),
            version: "1.0".into(),
            counter: 3,
        };
        assert_eq!(
            Error::from(r(5, 7)).to_string(),
            "ECU S1 of V1 reported running brake 2.0 (release counter 5, and release counter 7 \
             before that): it refuses brake 1.0 (release counter 3), and the vehicle's other \
             updates would wait on it; assign a release at counter 7 or above"
        );
        assert_eq!(
            Error::from(r(5, 5)).to_string(),
            "ECU S1 of V1 reported running brake 2.0 (release counter 5): it refuses brake 1.0 \
             (release counter 3), and the vehicle's other updates would wait on it; assign a \
             release at counter 5 or above"
        );
    }

    #[test]
    fn a_release_counter_below_an_earlier_release_reads_as_before() {
        let e = Error::from(AddImageRefusal::ReleaseCounterBelow {
            counter: 1,
            previous: 2,
            previous_uid: "brake".into(),
            previous_version: "1.1".into(),
        });
        assert_eq!(
            e.to_string(),
            "release counter 1 is below 2 of brake version 1.1; ECUs that installed that \
             release will refuse this one. Pass --allow-rollback to publish it anyway"
        );
    }
}
