//! Atomic file writes: a reader (or a web server) sees the old file or the new one, never half
//! of either.
//!
//! Temporary files are made in the working directory's scratch directory ([`SCRATCH`], beside
//! `ota-repo.json`) and renamed into place, so a crash never leaves one in the served tree;
//! the next command that locks the directory removes what a crash left ([`sweep_stale`]).
//! Only when the tree is on another file system than its working directory (a rename cannot
//! cross one) are they made beside their destination, and swept from there.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A working directory's scratch directory, for temporary files; never published.
pub const SCRATCH: &str = ".ota-repo-tmp";
/// The prefix of every temporary file this program makes.
const TMP_PREFIX: &str = ".tmp-";

/// Where a file of directory `dir` is made, and who may read it.
struct Destination {
    /// Where its temporary file is made.
    staging: PathBuf,
    /// Under a working directory's `repository/`: served by a web server, so world-readable.
    public: Option<PathBuf>,
}

/// The working directory above the (existing) directory `dir` is the nearest ancestor holding
/// a scratch directory: temporaries are made there when on the same file system (a rename
/// cannot cross one), else in `dir` itself; files under its `repository/` are published.
fn destination(dir: &Path) -> Destination {
    use std::os::unix::fs::MetadataExt;
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for a in abs.ancestors() {
        let scratch = a.join(SCRATCH);
        if let Some(m) = fs::metadata(&scratch).ok().filter(|m| m.is_dir()) {
            let tree = a.join(crate::workdir::REPOSITORY);
            let same_fs = fs::metadata(dir).is_ok_and(|d| d.dev() == m.dev());
            return Destination {
                staging: if same_fs { scratch } else { dir.to_path_buf() },
                public: abs.starts_with(&tree).then_some(tree),
            };
        }
    }
    Destination {
        staging: dir.to_path_buf(),
        public: None,
    }
}

/// Published files are world-readable (a stock nginx worker runs as `nobody`); everything
/// else this program writes (settings, state, keys) stays 0600, as temporary files are made.
pub const PUBLIC_FILE: u32 = 0o644;
pub const PUBLIC_DIR: u32 = 0o755;

/// A new temporary file from which a file of `dir` will be renamed into place, with the mode
/// the file must have: [`PUBLIC_FILE`] in a published tree (or when `public`), else 0600.
/// Creates `dir` (world-readable in a published tree, whatever the umask).
fn temp_in(dir: &Path, public: bool) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let dest = destination(dir);
    if let Some(tree) = &dest.public {
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        for d in abs.ancestors().take_while(|d| d.starts_with(tree)) {
            make_public(d, PUBLIC_DIR)?;
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(&dest.staging)
        .map_err(Error::io(&dest.staging))?;
    if public || dest.public.is_some() {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(PUBLIC_FILE))
            .map_err(Error::io(tmp.path()))?;
    }
    Ok(tmp)
}

/// Where temporary files for files of `dir` are made: the working directory's scratch
/// directory when it is on `dir`'s file system (swept by the next locked command, never
/// served), else `dir` itself (a rename cannot cross file systems).
pub fn staging_for(dir: &Path) -> PathBuf {
    destination(dir).staging
}

/// A new temporary file in `staging` ([`staging_for`]), with the prefix the sweep removes.
pub fn temp_file_in(staging: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(staging)
        .map_err(Error::io(staging))
}

/// [`temp_in`] for a file whose mode follows from where it goes.
pub fn temp_for(dir: &Path) -> Result<tempfile::NamedTempFile> {
    temp_in(dir, false)
}

/// Give `path` at least the read (and for directories, search) bits of `mode` for everyone,
/// keeping any wider mode the operator chose.
pub fn make_public(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Never through a link: the mode of whatever it points to, outside the tree, is not ours.
    let meta = fs::symlink_metadata(path).map_err(Error::io(path))?;
    if meta.file_type().is_symlink() {
        return Err(Error::refused(format!(
            "{} is a symbolic link: a published tree holds regular files and directories only",
            path.display()
        )));
    }
    let m = meta.permissions().mode();
    if m & mode != mode {
        fs::set_permissions(path, fs::Permissions::from_mode((m | mode) & 0o7777))
            .map_err(Error::io(path))?;
    }
    Ok(())
}

/// Make the files directly in `dir` world-readable (trees published by older versions were
/// 0600, which a web server answers with 403).
pub fn make_files_public(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            make_public(&e.path(), PUBLIC_FILE)?;
        }
    }
    Ok(())
}

/// Remove the temporary files a crash left in working directory `dir`: everything in its
/// scratch directory, and `.tmp-*` files in the directory, its `keys/`, and the tree's top
/// and `targets/` (where older versions made them); the whole tree when it is on another file
/// system. Best effort; run under the directory's lock, so no other command is writing them.
pub fn sweep_stale(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(entries) = fs::read_dir(dir.join(SCRATCH)) {
        for e in entries.flatten() {
            let _ = fs::remove_file(e.path());
        }
    }
    let repo = dir.join(crate::workdir::REPOSITORY);
    for d in [
        dir.to_path_buf(),
        dir.join("keys"),
        repo.clone(),
        repo.join("targets"),
    ] {
        sweep_dir(&d, false);
    }
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    if dev(&repo).is_some() && dev(&repo) != dev(dir) {
        sweep_dir(&repo, true);
    }
}

fn sweep_dir(dir: &Path, recursive: bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() && recursive => sweep_dir(&e.path(), true),
            Ok(t) if t.is_file() && e.file_name().to_string_lossy().starts_with(TMP_PREFIX) => {
                let _ = fs::remove_file(e.path());
            }
            _ => {}
        }
    }
}

/// Write `bytes` to `path` through a temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let mut tmp = temp_for(dir)?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir);
    ota_client::fault::point(|| format!("wrote {}", path.display()));
    Ok(())
}

/// Write a published file that must never change once written (a versioned metadata file, a
/// content-addressed target): web servers, CDNs and clients may hold the old copy, so a
/// different file under the same name would split the world. Writing the same bytes again is
/// a no-op; different bytes are refused. Returns whether the file was created. The file is
/// world-readable ([`PUBLIC_FILE`]).
pub fn write_once(path: &Path, bytes: &[u8]) -> Result<bool> {
    if path.exists() {
        return same_content(path, bytes).map(|()| false);
    }
    let dir = parent(path);
    let mut tmp = temp_in(dir, true)?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        // Appeared meanwhile: the same rule applies.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return same_content(path, bytes).map(|()| false)
        }
        Err(e) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e.error,
            })
        }
    }
    sync_dir(dir);
    ota_client::fault::point(|| format!("wrote {}", path.display()));
    Ok(true)
}

/// Succeeds when the file at `path` holds exactly `bytes`.
fn same_content(path: &Path, bytes: &[u8]) -> Result<()> {
    let f = File::open(path).map_err(Error::io(path))?;
    let mut have = Vec::new();
    f.take(bytes.len() as u64 + 1)
        .read_to_end(&mut have)
        .map_err(Error::io(path))?;
    if have == bytes {
        Ok(())
    } else {
        Err(immutable(path))
    }
}

/// The refusal to replace a published file with other bytes.
pub fn immutable(path: &Path) -> Error {
    Error::refused(format!(
        "{} is already published with other content; a published file is never replaced \
         (web servers, CDNs and vehicles may hold the old copy), so nothing was changed. If the \
         file was damaged, restore it from the copy your web server serves and run the command \
         again",
        path.display()
    ))
}

/// A 32-byte secret kept as 64 hex digits in a private file (mode 0600), made from the
/// operating system's random source the first time when `create` (its directory too).
pub fn secret_file(path: &Path, create: bool) -> Result<[u8; 32]> {
    if create && !path.exists() {
        let k = ota_crypt::Key::generate().0;
        let dir = parent(path);
        if !dir.exists() {
            private_dir(dir)?;
        }
        write_new_private(path, format!("{}\n", hex::encode(k)).as_bytes())?;
        return Ok(k);
    }
    narrow_secret(path)?;
    let text = read_bounded(path, 1024)?;
    let mut k = [0u8; 32];
    hex::decode_to_slice(String::from_utf8_lossy(&text).trim(), &mut k).map_err(|_| {
        Error::Config {
            path: path.to_path_buf(),
            reason: "not 64 hex digits".into(),
        }
    })?;
    Ok(k)
}

/// Make `dir` (and missing parents) a directory only its owner can enter: created with mode
/// 0700, and narrowed to 0700 when it exists with more.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io(dir))?;
    let mode = std::fs::metadata(dir)
        .map_err(Error::io(dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io(dir))?;
    }
    Ok(())
}

/// A secret file others can read (someone loosened it): narrowed to 0600, with a warning,
/// since whoever could read it may have copied it.
fn narrow_secret(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(Error::io(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io(path))?;
        crate::warn::warn(format!(
            "secret {} was readable by others (mode {:04o}); narrowed to 0600. If anyone else could log in here, treat it as leaked",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// Create `path` with mode 0600, failing if it exists (never overwrite a key).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    if path.exists() {
        return Err(Error::refused(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-key-")
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    // tempfile creates files with mode 0600 on Unix already; the key never exists with
    // wider permissions.
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist_noclobber(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir);
    Ok(())
}

/// What a file that is not a regular file is, for [`Error::NotRegularFile`].
fn kind_of(t: fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    })
}

/// Refuse an input file that is not a regular file (following symlinks), without opening it:
/// opening a FIFO blocks until a writer comes. Commands check their input files with this
/// before they take a working directory's lock.
pub fn check_regular(path: &Path) -> Result<fs::Metadata> {
    let meta = fs::metadata(path).map_err(Error::io(path))?;
    match kind_of(meta.file_type()) {
        None => Ok(meta),
        Some(kind) => Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Open a regular file for reading. The open never blocks (`O_NONBLOCK`: a FIFO put in the
/// file's place after [`check_regular`] is refused, not waited on), and what was opened is
/// checked to be a regular file.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata)> {
    open_flags(path, rustix::fs::OFlags::NONBLOCK)
}

fn open_flags(path: &Path, flags: rustix::fs::OFlags) -> Result<(File, fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(Error::io(path))?;
    let meta = f.metadata().map_err(Error::io(path))?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok((f, meta))
}

/// [`open_regular`] for a path someone else supplied (a hand-over): a symbolic link as its
/// last component is refused too, not followed.
pub fn open_untrusted(path: &Path) -> Result<(File, fs::Metadata)> {
    if fs::symlink_metadata(path)
        .map_err(Error::io(path))?
        .file_type()
        .is_symlink()
    {
        return Err(Error::refused(format!(
            "{} is a symbolic link: a hand-over holds regular files only",
            path.display()
        )));
    }
    open_flags(
        path,
        rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW,
    )
}

/// Refuse `dir` unless it is a real directory (not a symbolic link to one).
pub fn real_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(Error::io(dir))?;
    if meta.file_type().is_symlink() {
        return Err(Error::refused(format!(
            "{} is a symbolic link: a hand-over holds regular files and directories only",
            dir.display()
        )));
    }
    if !meta.is_dir() {
        return Err(Error::refused(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    Ok(())
}

/// [`read_bounded`] through [`open_untrusted`].
pub fn read_untrusted(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (f, meta) = open_untrusted(path)?;
    read_opened(path, f, &meta, limit)
}

/// Read a whole regular file, refusing one over `limit` bytes (checked before and while
/// reading).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (f, meta) = open_regular(path)?;
    read_opened(path, f, &meta, limit)
}

fn read_opened(path: &Path, f: File, meta: &fs::Metadata, limit: u64) -> Result<Vec<u8>> {
    let len = meta.len();
    if len > limit {
        return Err(Error::refused(format!(
            "{} is {len} bytes, over the limit of {limit}",
            path.display()
        )));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(Error::io(path))?;
    if out.len() as u64 > limit {
        return Err(Error::refused(format!(
            "{} grew past the limit of {limit} bytes while being read",
            path.display()
        )));
    }
    Ok(out)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Remove `path` durably (the directory synced): a step of its own for the kill tests.
pub fn remove_durably(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(Error::io(path))?;
    sync_dir(parent(path));
    ota_client::fault::point(|| format!("removed {}", path.display()));
    Ok(())
}

pub fn sync_dir(dir: &Path) {
    // Makes the rename durable; failure only weakens durability, never correctness.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Run `f` on every item on `threads` threads (the work is files and their fsyncs, which
/// overlap on the disk, so more threads than cores pay). The first error stops the threads
/// at their next item and is returned.
pub fn try_each_parallel<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if failed.lock().map_or(true, |f| f.is_some()) {
                    return;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                if let Err(e) = f(item) {
                    if let Ok(mut slot) = failed.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => Err(Error::refused("internal: a worker thread failed")),
    }
}
