use super::{EncryptionRecord, FileInfo, ImageRecord, Settings, CONTENT_KEYS_DIR};
use crate::error::{AddImageRefusal, Error, Result};
use crate::fsutil;
use crate::root_build::signing_keys;
use crate::workdir;
use ota_metadata::documents::compact::sign_compact;
use ota_metadata::documents::image_manifest::{DeltaEntry, Encryption};
use ota_metadata::documents::{ImageManifest, ImageTargets};
use ota_metadata::{names, sign_document, DateTime, SigningKey};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct AddImage {
    pub file: PathBuf,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
    /// "targets", or the tier-2 delegation that signs this image.
    pub role: String,
    /// Accept a release counter below an earlier release of the same uid.
    pub allow_rollback: bool,
    /// Encrypt the image under a fresh content key, in chunks of this many bytes.
    pub encrypt: Option<u32>,
    /// Earlier versions of the same uid to publish deltas from.
    pub delta_from: Vec<String>,
}

/// What `add_image` reports back: the record and any warnings for the user.
pub struct Added {
    pub record: ImageRecord,
    pub warnings: Vec<String>,
    /// The content-key file written for an encrypted image: hand it to the OEM.
    pub content_key: Option<PathBuf>,
}

/// Where `add-image --encrypt` keeps an image's content key.
pub fn content_key_path(dir: &Path, uid: &str, version: &str) -> PathBuf {
    dir.join(CONTENT_KEYS_DIR)
        .join(format!("{uid}-{version}.json"))
}

/// Store `name`'s content under its consistent-snapshot name, `targets/SHA256.NAME`.
pub fn store_target(repo: &Path, name: &str, bytes: &[u8]) -> Result<FileInfo> {
    store_target_tracked(repo, name, bytes, None)
}

/// [`store_target`], recording the file in `added` (if given) when it is new.
pub(super) fn store_target_tracked(
    repo: &Path,
    name: &str,
    bytes: &[u8],
    added: Option<&mut NewFiles>,
) -> Result<FileInfo> {
    let sha = hex::encode(Sha256::digest(bytes));
    let path = repo.join("targets").join(format!("{sha}.{name}"));
    if fsutil::write_once(&path, bytes)? {
        if let Some(added) = added {
            added.0.push(path);
        }
    }
    Ok(FileInfo {
        length: bytes.len() as u64,
        sha256: sha,
    })
}

/// Target files a command added, removed again unless it succeeds ([`NewFiles::keep`]): a
/// refused `add-image` leaves nothing behind in `targets/`.
#[derive(Default)]
pub(super) struct NewFiles(pub(super) Vec<PathBuf>);

impl NewFiles {
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for NewFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Refuse an image file that is not a regular file or is empty, without opening it: checked
/// before the working directory is locked, so a FIFO given by mistake fails at once instead
/// of blocking with the lock held.
pub fn check_image_file(path: &Path) -> Result<()> {
    if fsutil::check_regular(path)?.len() == 0 {
        return Err(Error::EmptyImage {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A reader that hashes what it reads and counts it, refusing more than `limit` bytes.
struct Counting<'a, R> {
    inner: R,
    hasher: Sha256,
    length: u64,
    limit: u64,
    src: &'a Path,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.length += n as u64;
        if self.length > self.limit {
            return Err(std::io::Error::other(format!(
                "image {} grew past the limit of {} bytes while being read",
                self.src.display(),
                self.limit
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    length: u64,
    /// Set when writing failed (a full disk): the error is then the destination's, not the
    /// input's, whatever `std::io::copy` reports it as.
    failed: bool,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        self.length += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// How `store_image` stores an image.
enum Storing<'k> {
    /// As it is.
    Plain,
    /// Encrypted under this content key, in chunks of this size (`ota_crypt::stream`).
    Encrypted(&'k ota_crypt::Key, u32),
}

/// What `store_image` stored: the target, and the plaintext when it differs (encrypted).
struct Stored {
    target: FileInfo,
    plaintext: Option<FileInfo>,
}

/// Copy the image into the targets directory while hashing it (encrypting it on the way if
/// asked), bounded by `limit`. The procedure: a regular file, not empty, within the limit →
/// copied to a temporary file outside the tree ([`copy_image`]) → synced → moved to its
/// content-addressed name, never replacing other content.
fn store_image(
    repo: &Path,
    src: &Path,
    name: &str,
    limit: u64,
    how: Storing<'_>,
    added: &mut NewFiles,
) -> Result<Stored> {
    let (f, meta) = fsutil::open_regular(src)?;
    if meta.len() == 0 {
        return Err(Error::EmptyImage {
            path: src.to_path_buf(),
        });
    }
    if meta.len() > limit {
        return Err(AddImageRefusal::TooLarge {
            path: src.to_path_buf(),
            length: meta.len(),
            limit,
        }
        .into());
    }
    let dir = repo.join("targets");
    // Staged outside the tree: a crash mid-copy leaves no partial image in it.
    let mut tmp = fsutil::temp_for(&dir)?;
    let input = Counting {
        inner: f,
        hasher: Sha256::new(),
        length: 0,
        limit,
        src,
    };
    let (length, sha, plaintext) = copy_image(input, meta.len(), &dir, tmp.as_file_mut(), how)?;
    tmp.as_file().sync_all().map_err(Error::io(&dir))?;
    let dest = dir.join(format!("{sha}.{name}"));
    // A published target is never replaced: the same content already there is kept as it is.
    match tmp.persist_noclobber(&dest) {
        Ok(_) => added.0.push(dest),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            if sha256_file(&dest)? != sha {
                return Err(fsutil::immutable(&dest));
            }
        }
        Err(e) => {
            return Err(Error::Io {
                path: dest,
                source: e.error,
            })
        }
    }
    Ok(Stored {
        target: FileInfo {
            length,
            sha256: sha,
        },
        plaintext,
    })
}

/// Copy `input` (the image at `input.src`, `len` bytes when opened) into `tmp` in `dir`, as it
/// is or encrypted: the length and SHA-256 (hex) written, and the plaintext's when encrypted.
/// A file that grows or is truncated while read is refused; a failure is named by the side
/// that failed (a full disk is the destination's).
fn copy_image(
    mut input: Counting<'_, File>,
    len: u64,
    dir: &Path,
    tmp: &mut File,
    how: Storing<'_>,
) -> Result<(u64, String, Option<FileInfo>)> {
    let src = input.src;
    let mut out = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, tmp),
        hasher: Sha256::new(),
        length: 0,
        failed: false,
    };
    let encrypted = match how {
        Storing::Plain => {
            if let Err(e) = std::io::copy(&mut input, &mut out) {
                // Name the side that failed: a full disk is the destination's.
                let at = if out.failed { dir } else { src };
                return Err(Error::io(at)(e));
            }
            false
        }
        Storing::Encrypted(key, chunk) => {
            ota_crypt::stream::encrypt(key, &mut input, len, &mut out, chunk).map_err(|e| {
                AddImageRefusal::Encrypting {
                    path: src.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            // The header names the length read at the start: a file that grew is refused.
            let mut probe = [0u8; 1];
            if input.read(&mut probe).map_err(Error::io(src))? != 0 {
                return Err(AddImageRefusal::Grew {
                    path: src.to_path_buf(),
                }
                .into());
            }
            true
        }
    };
    // A full disk: named by where the image goes (the temporary file is ours, not theirs).
    out.flush().map_err(Error::io(dir))?;
    if input.length == 0 {
        // Truncated while being read.
        return Err(Error::EmptyImage {
            path: src.to_path_buf(),
        });
    }
    let plaintext = encrypted.then(|| FileInfo {
        length: input.length,
        sha256: hex::encode(input.hasher.finalize()),
    });
    Ok((out.length, hex::encode(out.hasher.finalize()), plaintext))
}

/// SHA-256 (hex) of a file's content, streamed.
fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Sign and store the image manifest and its compact form for `m`.
pub fn write_manifests(
    repo: &Path,
    m: &ImageManifest,
    keys: &[&SigningKey],
) -> Result<(FileInfo, FileInfo)> {
    write_manifests_tracked(repo, m, keys, None)
}

fn write_manifests_tracked(
    repo: &Path,
    m: &ImageManifest,
    keys: &[&SigningKey],
    mut added: Option<&mut NewFiles>,
) -> Result<(FileInfo, FileInfo)> {
    let names = ImageTargets::new(&m.uid, &m.version);
    let json = sign_document(m, keys)?;
    let compact = sign_compact(&m.compact_body()?, keys)?;
    Ok((
        store_target_tracked(repo, &names.manifest, &json, added.as_deref_mut())?,
        store_target_tracked(repo, &names.compact, &compact, added)?,
    ))
}

/// The manifest an image record describes.
pub fn manifest_of(supplier: &str, r: &ImageRecord) -> Result<ImageManifest> {
    let sha: [u8; 32] = hex::decode(&r.image.sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            Error::refused(format!("settings: bad sha256 for {}-{}", r.uid, r.version))
        })?;
    let mut m = ImageManifest::new(
        supplier,
        &r.uid,
        &r.version,
        r.release_counter,
        r.hardware_ids.clone(),
        r.image.length,
        sha,
    )?;
    if let Some(e) = &r.encryption {
        m.encryption = Some(Encryption {
            scheme: ota_crypt::stream::SCHEME.into(),
            chunk_size: e.chunk_size,
            length: e.plaintext.length,
            hashes: BTreeMap::from([("sha256".to_string(), e.plaintext.sha256.clone())]),
        });
        m.validate()?;
    }
    if !r.deltas.is_empty() {
        m.deltas = r
            .deltas
            .iter()
            .map(|d| DeltaEntry {
                from_version: d.from_version.clone(),
                from_sha256: d.from_sha256.clone(),
                target: ImageTargets::delta(&r.uid, &r.version, &d.from_version),
                length: d.file.length,
                hashes: BTreeMap::from([("sha256".to_string(), d.file.sha256.clone())]),
            })
            .collect();
        m.validate()?;
    }
    Ok(m)
}

/// Add an image: check the request against the names rules, the images already here, the
/// release counters and the signing role; store the image (encrypted if asked) and its
/// deltas; sign its manifests; record it. Nothing stays behind in `targets/` if a step fails.
pub fn add_image(dir: &Path, mut opts: AddImage, now: DateTime) -> Result<Added> {
    let mut s = Settings::load(dir)?;
    if opts.role.is_empty() {
        opts.role = s.default_role().to_string();
    }
    let repo = workdir::repository_path(dir);
    let mut warnings = Vec::new();
    check_names(&opts)?;
    check_not_added(&s, &opts)?;
    check_release_counter(&s, &opts, &mut warnings)?;
    check_role_allows(&s, &opts)?;
    let keys = role_keys(&s, &repo, &opts.role)?;
    check_manifest_fields(&s, &opts)?;
    let key_path = content_key_path(dir, &opts.uid, &opts.version);
    if opts.encrypt.is_some() && key_path.exists() {
        return Err(AddImageRefusal::ContentKeyExists { path: key_path }.into());
    }

    let content_key = opts.encrypt.map(|_| ota_crypt::Key::generate());
    let how = match (&content_key, opts.encrypt) {
        (Some(k), Some(chunk)) => Storing::Encrypted(k, chunk),
        _ => Storing::Plain,
    };
    let names = ImageTargets::new(&opts.uid, &opts.version);
    let mut added = NewFiles::default();
    let stored = store_image(
        &repo,
        &opts.file,
        &names.image,
        s.max_image_size,
        how,
        &mut added,
    )?;
    let deltas = super::deltas::build(
        &repo,
        &s,
        &opts.uid,
        &opts.version,
        &stored.target,
        &opts.delta_from,
        &mut added,
        &mut warnings,
    )?;
    let record = unsigned_record(opts, stored, deltas, now);
    let record = sign_manifests(&repo, &s.name, record, &keys, &mut added)?;
    // The content key, before the image is recorded: an image nobody can decrypt is never
    // published.
    let content_key = match (&content_key, &record.encryption) {
        (Some(key), Some(e)) => {
            write_content_key(dir, &key_path, &record, e, key)?;
            added.0.push(key_path.clone());
            Some(key_path)
        }
        _ => None,
    };
    s.images.push(record.clone());
    s.save(dir)?;
    added.keep();
    Ok(Added {
        record,
        warnings,
        content_key,
    })
}

/// The record of an image stored (and its deltas built), its manifests not signed yet.
fn unsigned_record(
    opts: AddImage,
    stored: Stored,
    deltas: Vec<super::DeltaRecord>,
    now: DateTime,
) -> ImageRecord {
    let encryption = match (stored.plaintext, opts.encrypt) {
        (Some(plaintext), Some(chunk_size)) => Some(EncryptionRecord {
            chunk_size,
            plaintext,
        }),
        _ => None,
    };
    let unsigned = FileInfo {
        length: 0,
        sha256: String::new(),
    };
    ImageRecord {
        uid: opts.uid,
        version: opts.version,
        release_counter: opts.release_counter,
        hardware_ids: opts.hardware_ids,
        role: opts.role,
        image: stored.target,
        encryption,
        manifest: unsigned.clone(),
        compact: unsigned,
        added: now,
        deltas,
    }
}

/// The image's manifest and its compact form, signed by the role's `keys` and stored (new
/// files tracked in `added`): the record with them.
fn sign_manifests(
    repo: &Path,
    supplier: &str,
    record: ImageRecord,
    keys: &[SigningKey],
    added: &mut NewFiles,
) -> Result<ImageRecord> {
    let m = manifest_of(supplier, &record)?;
    let (manifest, compact) =
        write_manifests_tracked(repo, &m, &keys.iter().collect::<Vec<_>>(), Some(added))?;
    Ok(ImageRecord {
        manifest,
        compact,
        ..record
    })
}

/// The uid, version and hardware ids follow the naming rules; at least one hardware id, none
/// twice.
fn check_names(opts: &AddImage) -> Result<()> {
    names::check_uid(&opts.uid)?;
    names::check_image_version(&opts.version)?;
    let mut seen = BTreeSet::new();
    for h in &opts.hardware_ids {
        names::check_hardware_id(h)?;
        if !seen.insert(h) {
            return Err(AddImageRefusal::HardwareIdTwice {
                hardware_id: h.clone(),
            }
            .into());
        }
    }
    if opts.hardware_ids.is_empty() {
        return Err(AddImageRefusal::NoHardwareId.into());
    }
    Ok(())
}

/// Not already here, by uid and version or by the target names they produce.
fn check_not_added(s: &Settings, opts: &AddImage) -> Result<()> {
    let names = ImageTargets::new(&opts.uid, &opts.version);
    for img in &s.images {
        if img.uid == opts.uid && img.version == opts.version {
            return Err(AddImageRefusal::AlreadyAdded {
                uid: opts.uid.clone(),
                version: opts.version.clone(),
                added: img.added,
            }
            .into());
        }
        if ImageTargets::new(&img.uid, &img.version).image == names.image {
            return Err(AddImageRefusal::TargetNameUsed {
                uid: opts.uid.clone(),
                name: names.image,
                other_uid: img.uid.clone(),
                other_version: img.version.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// The release counter is never below an earlier release of the same uid unless asked
/// (`--allow-rollback`), and an equal one is warned about.
fn check_release_counter(s: &Settings, opts: &AddImage, warnings: &mut Vec<String>) -> Result<()> {
    let Some(prev) = s
        .images
        .iter()
        .filter(|i| i.uid == opts.uid)
        .max_by_key(|i| i.release_counter)
    else {
        return Ok(());
    };
    if opts.release_counter < prev.release_counter {
        if !opts.allow_rollback {
            return Err(AddImageRefusal::ReleaseCounterBelow {
                counter: opts.release_counter,
                previous: prev.release_counter,
                previous_uid: prev.uid.clone(),
                previous_version: prev.version.clone(),
            }
            .into());
        }
        warnings.push(format!(
            "release counter {} is below {} of version {}: only ECUs that never installed \
             that release can take this image",
            opts.release_counter, prev.release_counter, prev.version
        ));
    } else if opts.release_counter == prev.release_counter {
        warnings.push(format!(
            "release counter {} equals that of version {}: ECUs will accept either image, \
             so a compromised director could roll them back (Uptane discourages this)",
            opts.release_counter, prev.version
        ));
    }
    Ok(())
}

/// What a delegation (or this tier) allows the signing role: its hardware ids, and name
/// patterns that every target of the image (with its deltas) must match.
fn check_role_allows(s: &Settings, opts: &AddImage) -> Result<()> {
    let Some((hardware_ids, paths)) = s.restriction(&opts.role)? else {
        return Ok(());
    };
    if let Some(h) = opts.hardware_ids.iter().find(|h| !hardware_ids.contains(h)) {
        return Err(AddImageRefusal::RoleHardwareId {
            role: opts.role.clone(),
            allowed: hardware_ids.to_vec(),
            hardware_id: h.clone(),
        }
        .into());
    }
    let names = ImageTargets::new(&opts.uid, &opts.version);
    let deltas = opts
        .delta_from
        .iter()
        .map(|from| ImageTargets::delta(&opts.uid, &opts.version, from));
    let all = [names.image, names.manifest, names.compact]
        .into_iter()
        .chain(deltas);
    for n in all {
        if !paths.iter().any(|p| ota_metadata::roles::glob_match(p, &n)) {
            return Err(AddImageRefusal::RoleTargetName {
                role: opts.role.clone(),
                paths: paths.to_vec(),
                name: n,
            }
            .into());
        }
    }
    Ok(())
}

/// The keys `role` signs with here.
fn role_keys(s: &Settings, repo: &Path, role: &str) -> Result<Vec<SigningKey>> {
    let rc = s.role(role)?.clone();
    if role == "targets" {
        let root = crate::publish::read_root(repo)?;
        signing_keys(&root, "targets", &rc)
    } else {
        rc.load_keys(role)
    }
}

/// Every field of the manifest (and the encryption's chunk size) is checked before the image
/// is copied.
fn check_manifest_fields(s: &Settings, opts: &AddImage) -> Result<()> {
    ImageManifest::new(
        &s.name,
        &opts.uid,
        &opts.version,
        opts.release_counter,
        opts.hardware_ids.clone(),
        1,
        [0; 32],
    )?;
    if let Some(chunk) = opts.encrypt {
        ota_crypt::stream::Header::new(chunk, 1).map_err(|e| AddImageRefusal::ChunkSize {
            chunk,
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Write an encrypted image's content key to `path` (mode 0600): private to the supplier
/// until handed to the OEM.
fn write_content_key(
    dir: &Path,
    path: &Path,
    record: &ImageRecord,
    e: &EncryptionRecord,
    key: &ota_crypt::Key,
) -> Result<()> {
    let file = ota_crypt::content_key::ContentKey {
        uid: record.uid.clone(),
        version: record.version.clone(),
        image_sha256: hex::decode(&e.plaintext.sha256)
            .ok()
            .and_then(|v| v.try_into().ok())
            .unwrap_or_default(),
        key: key.clone(),
    };
    fsutil::private_dir(&dir.join(CONTENT_KEYS_DIR))?;
    fsutil::write_new_private(path, &file.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hardware_ids: &[&str]) -> AddImage {
        AddImage {
            file: PathBuf::from("image.bin"),
            uid: "brake".into(),
            version: "1.0".into(),
            release_counter: 1,
            hardware_ids: hardware_ids.iter().map(|h| h.to_string()).collect(),
            role: "targets".into(),
            allow_rollback: false,
            encrypt: None,
            delta_from: Vec::new(),
        }
    }

    #[test]
    fn a_hardware_id_given_twice_is_refused_naming_it() {
        let e = check_names(&request(&["ecu-a", "ecu-b", "ecu-a"])).unwrap_err();
        assert!(
            matches!(&e, Error::AddImage(r) if matches!(&**r, AddImageRefusal::HardwareIdTwice { hardware_id } if hardware_id == "ecu-a")),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "hardware id \"ecu-a\" given twice");
    }

    #[test]
    fn no_hardware_id_is_refused() {
        let e = check_names(&request(&[])).unwrap_err();
        assert!(
            matches!(&e, Error::AddImage(r) if matches!(**r, AddImageRefusal::NoHardwareId)),
            "{e:?}"
        );
    }
}
