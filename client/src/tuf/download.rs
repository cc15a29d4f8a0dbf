//! Downloading one target: fetched under its consistent-snapshot name, bounded by its signed
//! length, hashed while it streams into a staging file next to its destination, and renamed
//! into place only once length and SHA-256 match. On any failure the staging file is removed,
//! so the destination directory holds verified files and nothing else.
//!
//! A transfer that breaks off after some bytes arrived (the connection dropped or was reset,
//! a read timed out, or the body simply ended short of the signed length) is resumed from the
//! staged length with [`Fetch::fetch_range_into`], at most `max_resume_attempts` times, each
//! attempt having to bring at least one byte. The staging sink appends when the server
//! honours the range and starts again from zero (truncating the file and resetting the
//! hasher) when it sends the whole file, so the hash always covers exactly the staged bytes,
//! and the signed length bounds the file across every attempt.
//!
//! # Durability
//! A downloaded target is *not* fsynced, neither the file nor the directory after the
//! rename (that was two fsyncs per target, most of the time of a cold fetch of many small
//! targets). Nothing depends on a target surviving a power cut: whoever reads one again
//! re-hashes it first ([`is_cached`], `Staging::staged`), so after a power cut a target is
//! either intact and reused, or missing, short or zeroed and fetched again from the
//! repository. The rename still makes a target appear whole or not at all to a running
//! process. What must survive a power cut is fsynced where it is written: trusted metadata
//! (`store.rs`: it is the client's only memory of versions, the defence against rollback),
//! the gateway's journal and state, and, once per update rather than once per image, the
//! staged images a committed update may need again (`Staging::sync`).

use super::encode;
use super::error::{Error, Result};
use super::fetch::{Fetch, FetchError, RangeSink};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// The path a target is fetched from, relative to the targets base URL. With consistent
/// snapshots `dir/name` is stored as `dir/SHA256.name` (the TUF specification's layout; the
/// project's own names are flat, so this is `SHA256.name`).
pub(crate) fn remote_path(target: &str, sha_hex: &str, consistent: bool) -> String {
    if !consistent {
        return encode::url_path(target);
    }
    match target.rsplit_once('/') {
        Some((dir, base)) => format!(
            "{}/{sha_hex}.{}",
            encode::url_path(dir),
            encode::url_segment(base)
        ),
        None => format!("{sha_hex}.{}", encode::url_segment(target)),
    }
}

/// The digests a target must have: every hash its metadata lists that the client supports
/// (SHA-256 and SHA-512), all of them checked, as python-tuf does. Other algorithms listed
/// beside them are ignored; an entry none of whose hashes is supported is refused, never
/// passed unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetDigest {
    sha256: Option<[u8; 32]>,
    sha512: Option<Vec<u8>>,
}

impl TargetDigest {
    /// A target with this SHA-256 only.
    #[cfg(test)]
    pub(crate) fn sha256(d: [u8; 32]) -> Self {
        TargetDigest {
            sha256: Some(d),
            sha512: None,
        }
    }

    /// The digests to check from a target's `hashes`, or why there is none usable.
    pub(crate) fn from_hashes(
        hashes: &ota_metadata::roles::Hashes,
    ) -> std::result::Result<Self, String> {
        let decode = |alg: &str, len: usize| -> std::result::Result<Option<Vec<u8>>, String> {
            hashes
                .get(alg)
                .map(|h| {
                    hex::decode(h)
                        .ok()
                        .filter(|d| d.len() == len)
                        .ok_or_else(|| format!("{alg} hash {h:?} is not {len} bytes of hex"))
                })
                .transpose()
        };
        let sha256 = decode("sha256", 32)?.map(|d| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&d);
            a
        });
        let sha512 = decode("sha512", 64)?;
        if sha256.is_none() && sha512.is_none() {
            return Err("lists neither a sha256 nor a sha512 hash".into());
        }
        Ok(TargetDigest { sha256, sha512 })
    }

    /// The digest a consistent-snapshot target name starts with: SHA-256 if listed.
    pub(crate) fn hex(&self) -> String {
        match (&self.sha256, &self.sha512) {
            (Some(d), _) => hex::encode(d),
            (None, Some(d)) => hex::encode(d),
            (None, None) => String::new(),
        }
    }

    fn hasher(&self) -> Hasher {
        Hasher {
            sha256: self.sha256.map(|_| Sha256::new()),
            sha512: self.sha512.as_ref().map(|_| sha2::Sha512::new()),
        }
    }

    /// Whether every listed digest matches.
    fn matches(&self, found: &Found) -> bool {
        self.sha256.map(|d| d.to_vec()) == found.sha256
            && self.sha512.as_ref() == found.sha512.as_ref()
    }
}

/// What a download hashed to, for each algorithm its metadata lists.
#[derive(Clone, Debug, Default)]
struct Found {
    sha256: Option<Vec<u8>>,
    sha512: Option<Vec<u8>>,
}

impl Found {
    fn hex(&self) -> String {
        match (&self.sha256, &self.sha512) {
            (Some(d), _) => hex::encode(d),
            (None, Some(d)) => hex::encode(d),
            (None, None) => String::new(),
        }
    }
}

/// The running hashes of a download, of the algorithms its metadata lists.
#[derive(Clone)]
struct Hasher {
    sha256: Option<Sha256>,
    sha512: Option<sha2::Sha512>,
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }
    fn finalize(self) -> Found {
        Found {
            sha256: self.sha256.map(|h| h.finalize().to_vec()),
            sha512: self.sha512.map(|h| h.finalize().to_vec()),
        }
    }
    fn reset(&mut self) {
        if let Some(h) = &mut self.sha256 {
            *h = Sha256::new();
        }
        if let Some(h) = &mut self.sha512 {
            *h = sha2::Sha512::new();
        }
    }
}

/// Sees a target's bytes in order while they are staged, before the target's hash can be
/// checked (a decryptor releasing each authenticated chunk, say). Whatever it makes of them
/// must not be trusted until the download succeeded; the bytes of a resumed download are
/// replayed to it from the start of the file, and it is told when the staged bytes are thrown
/// away.
pub trait StreamTap {
    /// Forget everything seen: the download starts again from byte 0.
    fn restart(&mut self) -> io::Result<()>;
    /// The next bytes of the target. An error stops the download.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Whether the tap keeps what it is shown, in a form from which [`StreamTap::resume`]
    /// gives the target's bytes back. Then the download stages nothing of its own: the tap's
    /// output is the only copy (a decryptor keeps the plaintext, not the ciphertext too).
    fn keeps(&self) -> bool {
        false
    }
    /// For a tap that [`keeps`](StreamTap::keeps): continue where an earlier attempt
    /// stopped, showing `held` the target's bytes it vouches for, in order from byte 0 (the
    /// download hashes them), and returning how many; or start afresh and return 0. Called
    /// instead of [`StreamTap::restart`] when a download begins.
    fn resume(&mut self, held: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let _ = held;
        self.restart().map(|()| 0)
    }
}

/// Where the download's bytes go when a tap keeps them: nowhere (the hash and the tap see them).
struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Discard {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Ok(0)
    }
}

impl SetLen for Discard {
    fn set_len(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that hashes and counts what passes through, and refuses to accept more than
/// `limit` bytes whatever the fetcher does.
struct Hashing<'t, W> {
    inner: W,
    tap: Option<&'t mut dyn StreamTap>,
    hasher: Hasher,
    /// Bytes held (and hashed), from the start of the file.
    written: u64,
    limit: u64,
    /// Bytes written since the download loop last set this to 0 (progress of one attempt).
    fresh: u64,
}

impl<W> Hashing<'_, W> {
    #[cfg(test)]
    fn new(inner: W, limit: u64) -> Self {
        Self::with(
            inner,
            limit,
            Hasher {
                sha256: Some(Sha256::new()),
                sha512: None,
            },
        )
    }

    fn with(inner: W, limit: u64, hasher: Hasher) -> Self {
        Hashing {
            inner,
            tap: None,
            hasher,
            written: 0,
            limit,
            fresh: 0,
        }
    }
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if crate::stop::requested() {
            // Not ErrorKind::Interrupted: write_all would retry that.
            return Err(io::Error::other("stopped (SIGTERM)"));
        }
        let next = self.written.saturating_add(buf.len() as u64);
        if next > self.limit {
            return Err(io::Error::other(format!(
                "more than the signed length of {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        let part = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("write overran"))?;
        self.hasher.update(part);
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.write(part)?;
        }
        self.written = self.written.saturating_add(n as u64);
        self.fresh = self.fresh.saturating_add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The staging file: appends when a fetch resumes where it stands, starts over from zero when
/// a fetch says it got the whole file, and refuses any other offset.
impl<F: Write + Seek + SetLen> RangeSink for Hashing<'_, F> {
    fn start_at(&mut self, offset: u64) -> io::Result<()> {
        if offset == self.written {
            return Ok(());
        }
        if offset != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the fetch continues at byte {offset}, but {} bytes are staged",
                    self.written
                ),
            ));
        }
        self.inner.set_len(0)?;
        self.inner.seek(SeekFrom::Start(0))?;
        self.hasher.reset();
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.restart()?;
        }
        self.written = 0;
        Ok(())
    }
}

/// Truncation, for the staging sink (a file; a cursor in tests).
trait SetLen {
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl SetLen for &mut File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl SetLen for io::Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.get_mut().truncate(len);
        Ok(())
    }
}

/// How one attempt of a download broke off.
enum Broken {
    /// The body ended cleanly, short of the signed length.
    Short,
    /// The connection dropped, was reset, or a read timed out.
    Interrupted(FetchError),
}

/// Stream `url` into `sink` until it holds `length` bytes, resuming a broken transfer at most
/// `max_resumes` times (each attempt must bring at least one byte). Returns how many resumes
/// it took. Whether the bytes are the right ones is the caller's check.
fn fetch_resuming<S: Write + Seek + SetLen>(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    max_resumes: u32,
    sink: &mut Hashing<'_, S>,
) -> Result<u32> {
    let mut resumes: u32 = 0;
    loop {
        sink.fresh = 0;
        let result = fetcher.fetch_range_into(url, sink.written, length, sink);
        let complete = sink.written == length;
        let broken = match result {
            Ok(_) if complete => return Ok(resumes),
            Ok(_) => Broken::Short,
            // Every byte arrived before the connection broke: the hash decides.
            Err(e) if e.is_interrupted() && complete => return Ok(resumes),
            Err(e) if e.is_interrupted() => Broken::Interrupted(e),
            Err(e) => return Err(e.into()),
        };
        if sink.fresh > 0 && resumes < max_resumes && !crate::stop::requested() {
            resumes = resumes.saturating_add(1);
            continue;
        }
        return match broken {
            Broken::Interrupted(e) if !e.is_premature_end() => Err(e.into()),
            Broken::Short | Broken::Interrupted(_) => Err(Error::TargetLength {
                target: target.into(),
                url: url.into(),
                found: sink.written,
                expected: length,
            }),
        };
    }
}

/// Fetch `url` into `dest` if, and only if, it is exactly `length` bytes with digest `sha`,
/// resuming a broken transfer at most `max_resumes` times. With a tap that keeps the bytes,
/// into the tap alone (`dest` is not written).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch_verified(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    sha: &TargetDigest,
    dest: &Path,
    max_resumes: u32,
    tap: Option<&mut dyn StreamTap>,
) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(Error::store(dir))?;
    // The partial download of `dest`: kept when the download is stopped (SIGTERM), so the next
    // run resumes it with a Range request; removed on every other failure.
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(".partial-{name}"));
    let tap = match tap {
        Some(tap) if tap.keeps() => {
            // The tap's output is the only copy: nothing staged here, nothing renamed.
            let _ = std::fs::remove_file(&partial);
            return fetch_into_tap(fetcher, url, target, length, sha, max_resumes, tap);
        }
        tap => tap,
    };
    let result = fetch_into_partial(
        fetcher,
        url,
        target,
        length,
        sha,
        &partial,
        max_resumes,
        tap,
    );
    if let Err(e) = result {
        if !crate::stop::requested() {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e);
    }
    // No fsync of the file, nor of the directory after the rename: see "Durability" in the
    // module documentation.
    std::fs::rename(&partial, dest).map_err(Error::store(dest))?;
    Ok(())
}

/// What a tap's failure is to the download of `url`.
fn tap_error(url: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |source| {
        Error::Fetch(FetchError::Write {
            url: url.into(),
            source,
        })
    }
}

/// Download into a tap that keeps the bytes ([`StreamTap::keeps`]), continuing after those it
/// vouches for (hashed first), and check length and hash.
fn fetch_into_tap(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    sha: &TargetDigest,
    max_resumes: u32,
    tap: &mut dyn StreamTap,
) -> Result<()> {
    let tap_err = tap_error(url);
    let mut hasher = sha.hasher();
    let mut shown = 0u64;
    let held = tap
        .resume(&mut |b| {
            shown = shown.saturating_add(b.len() as u64);
            hasher.update(b)
        })
        .map_err(&tap_err)?;
    if held != shown || held > length {
        // Not what it showed, or more than the signed length: nothing of it can be trusted.
        hasher.reset();
        shown = 0;
        tap.restart().map_err(&tap_err)?;
    }
    let mut sink = Hashing::with(Discard, length, hasher);
    sink.written = shown;
    sink.tap = Some(tap);
    check_download(fetcher, url, target, length, sha, max_resumes, sink)
}

/// Fetch what `sink` does not hold yet, then check the length and hash of all it holds.
fn check_download<S: Write + Seek + SetLen>(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    sha: &TargetDigest,
    max_resumes: u32,
    mut sink: Hashing<'_, S>,
) -> Result<()> {
    if sink.written < length {
        fetch_resuming(fetcher, url, target, length, max_resumes, &mut sink)?;
    }
    // Our own count, not the fetcher's word for it.
    let written = sink.written;
    let digest = sink.hasher.finalize();
    if written != length {
        return Err(Error::TargetLength {
            target: target.into(),
            url: url.into(),
            found: written,
            expected: length,
        });
    }
    if !sha.matches(&digest) {
        return Err(Error::TargetHash {
            target: target.into(),
            url: url.into(),
            found: digest.hex(),
            expected: sha.hex(),
        });
    }
    Ok(())
}

/// Download into `partial`, continuing after the bytes it already holds (hashed, and replayed
/// to `tap`, first), and check length and hash.
#[allow(clippy::too_many_arguments)]
fn fetch_into_partial(
    fetcher: &impl Fetch,
    url: &str,
    target: &str,
    length: u64,
    sha: &TargetDigest,
    partial: &Path,
    max_resumes: u32,
    mut tap: Option<&mut dyn StreamTap>,
) -> Result<()> {
    let tap_err = tap_error(url);
    if let Some(t) = tap.as_deref_mut() {
        t.restart().map_err(&tap_err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // Not truncated on open, nor with set_len(0) when empty: ext4 flushes a file that
        // was truncated to zero and rewritten when it is closed (`auto_da_alloc`), which would
        // cost a write-out per target.
        .truncate(false)
        .open(partial)
        .map_err(Error::store(partial))?;
    let held = file.metadata().map_err(Error::store(partial))?.len();
    let mut hasher = sha.hasher();
    let mut written = 0u64;
    if held > length {
        file.set_len(0).map_err(Error::store(partial))?;
    } else if held > 0 {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reader = io::Read::take(&mut file, held);
        loop {
            let n = io::Read::read(&mut reader, &mut buf).map_err(Error::store(partial))?;
            let Some(part) = buf.get(..n).filter(|_| n > 0) else {
                break;
            };
            hasher.update(part);
            if let Some(t) = tap.as_deref_mut() {
                t.write(part).map_err(&tap_err)?;
            }
            written = written.saturating_add(n as u64);
        }
    }
    file.seek(SeekFrom::Start(written))
        .map_err(Error::store(partial))?;
    let mut sink = Hashing::with(&mut file, length, hasher);
    sink.written = written;
    sink.tap = tap;
    check_download(fetcher, url, target, length, sha, max_resumes, sink)
}

/// Whether `path` already holds exactly `length` bytes with digest `sha`.
pub(crate) fn is_cached(path: &Path, length: u64, sha: &TargetDigest) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::store(path)(e)),
    };
    let meta = file.metadata().map_err(Error::store(path))?;
    if !meta.is_file() || meta.len() != length {
        return Ok(false);
    }
    let mut sink = Hashing::with(io::sink(), length, sha.hasher());
    let copied = super::fetch::copy_bounded(
        &path.display().to_string(),
        file,
        length,
        &mut sink,
        |source| FetchError::Io {
            url: path.display().to_string(),
            source,
        },
    );
    match copied {
        Ok(n) if n == length => Ok(sha.matches(&sink.hasher.finalize())),
        Ok(_) | Err(FetchError::TooLarge { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_snapshot_names() {
        let sha = "ab12";
        assert_eq!(remote_path("fw-1.0.bin", sha, true), "ab12.fw-1.0.bin");
        assert_eq!(remote_path("a/b/fw.bin", sha, true), "a/b/ab12.fw.bin");
        assert_eq!(remote_path("a/b/fw.bin", sha, false), "a/b/fw.bin");
        assert_eq!(remote_path("fw 1+2.bin", sha, true), "ab12.fw%201%2B2.bin");
    }

    /// What a [`Scripted`] fetcher does on one call.
    #[derive(Clone, Debug)]
    enum Step {
        /// Honour the range: send `n` bytes from the offset asked for, then fail with `fail`
        /// (or end cleanly).
        Range(usize, Option<io::ErrorKind>),
        /// Ignore the range: send `n` bytes from the start of the file, then fail or end.
        Whole(usize, Option<io::ErrorKind>),
        /// Claim the body starts at this offset.
        StartAt(u64),
        /// Fail before any byte.
        Fail(fn() -> FetchError),
    }

    /// A fetcher that plays a script over `file` and records the offsets asked for.
    struct Scripted {
        file: Vec<u8>,
        steps: std::cell::RefCell<std::collections::VecDeque<Step>>,
        asked: std::cell::RefCell<Vec<u64>>,
    }

    impl Scripted {
        fn new(file: &[u8], steps: &[Step]) -> Self {
            Scripted {
                file: file.to_vec(),
                steps: std::cell::RefCell::new(steps.iter().cloned().collect()),
                asked: Default::default(),
            }
        }
    }

    impl Fetch for Scripted {
        fn fetch_into(&self, _: &str, _: u64, _: &mut dyn Write) -> Result<u64, FetchError> {
            unreachable!("downloads use fetch_range_into")
        }
        fn fetch_range_into(
            &self,
            url: &str,
            offset: u64,
            _max_len: u64,
            sink: &mut dyn RangeSink,
        ) -> Result<u64, FetchError> {
            self.asked.borrow_mut().push(offset);
            let step = self
                .steps
                .borrow_mut()
                .pop_front()
                .expect("script too short");
            let write = |e| FetchError::Write {
                url: url.into(),
                source: e,
            };
            let (start, n, fail) = match step {
                Step::Range(n, fail) => (offset as usize, n, fail),
                Step::Whole(n, fail) => (0, n, fail),
                Step::StartAt(at) => (at as usize, 1, None),
                Step::Fail(e) => return Err(e()),
            };
            sink.start_at(start as u64).map_err(write)?;
            let end = start.saturating_add(n).min(self.file.len());
            sink.write_all(&self.file[start..end]).map_err(write)?;
            match fail {
                Some(kind) => Err(FetchError::Io {
                    url: url.into(),
                    source: kind.into(),
                }),
                None => Ok((end - start) as u64),
            }
        }
    }

    const EOF: Option<io::ErrorKind> = Some(io::ErrorKind::UnexpectedEof);
    const RESET: Option<io::ErrorKind> = Some(io::ErrorKind::ConnectionReset);

    /// A tap that keeps what it is shown.
    #[derive(Default)]
    struct Recorder(Vec<u8>);

    impl StreamTap for Recorder {
        fn restart(&mut self) -> io::Result<()> {
            self.0.clear();
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Run the resume loop over a 5000-byte file: the result, the offsets asked for, and
    /// whether what is staged (and what a tap saw) is the file with its right hash.
    fn run(max: u32, steps: &[Step]) -> (Result<u32>, Vec<u64>, bool) {
        let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = Scripted::new(&file, steps);
        let mut tap = Recorder::default();
        let mut sink = Hashing::new(io::Cursor::new(Vec::new()), file.len() as u64);
        sink.tap = Some(&mut tap);
        let r = fetch_resuming(&f, "u", "t", file.len() as u64, max, &mut sink);
        let digest: [u8; 32] = sink
            .hasher
            .clone()
            .finalize()
            .sha256
            .unwrap()
            .try_into()
            .unwrap();
        let good = sink.inner.get_ref() == &file
            && digest == <[u8; 32]>::from(Sha256::digest(&file))
            && sink.written == file.len() as u64;
        drop(sink);
        let good = good && tap.0 == file;
        let asked = f.asked.borrow().clone();
        assert!(f.steps.borrow().is_empty(), "every step used");
        (r, asked, good)
    }

    /// A tap that keeps the bytes (as the decrypting tap keeps plaintext): an earlier
    /// attempt left `kept`; `claim` is what its `resume` says it showed.
    struct Keeper {
        kept: Vec<u8>,
        claim: Option<u64>,
    }

    impl StreamTap for Keeper {
        fn restart(&mut self) -> io::Result<()> {
            self.kept.clear();
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.kept.extend_from_slice(bytes);
            Ok(())
        }
        fn keeps(&self) -> bool {
            true
        }
        fn resume(&mut self, held: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
            held(&self.kept);
            Ok(self.claim.unwrap_or(self.kept.len() as u64))
        }
    }

    /// A download into a [`Keeper`] that holds `kept`: the result, the offsets asked for, and
    /// whether the tap ends up with the file.
    fn run_kept(kept: &[u8], claim: Option<u64>, steps: &[Step]) -> (Result<()>, Vec<u64>, bool) {
        let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sha = TargetDigest::sha256(Sha256::digest(&file).into());
        let f = Scripted::new(&file, steps);
        let mut tap = Keeper {
            kept: kept.to_vec(),
            claim,
        };
        let r = fetch_into_tap(&f, "u", "t", file.len() as u64, &sha, 3, &mut tap);
        let asked = f.asked.borrow().clone();
        (r, asked, tap.kept == file)
    }

    #[test]
    fn a_tap_that_keeps_the_bytes_is_resumed_from_what_it_holds() {
        let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        // Nothing held; a break on the way is resumed.
        let (r, asked, good) = run_kept(
            &[],
            None,
            &[Step::Range(3000, EOF), Step::Range(9999, None)],
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((asked, good), (vec![0, 3000], true));
        // 2000 bytes held: hashed, and only the rest asked for.
        let (r, asked, good) = run_kept(&file[..2000], None, &[Step::Range(9999, None)]);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((asked, good), (vec![2000], true));
        // The server ignores the range: the tap starts over with the whole file.
        let (r, asked, good) = run_kept(&file[..2000], None, &[Step::Whole(9999, None)]);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((asked, good), (vec![2000], true));
        // A held byte changed since: the target's hash refuses the whole.
        let mut changed = file[..2000].to_vec();
        changed[1234] ^= 1;
        let (r, asked, _) = run_kept(&changed, None, &[Step::Range(9999, None)]);
        assert!(matches!(r, Err(Error::TargetHash { .. })), "{r:?}");
        assert_eq!(asked, [2000]);
        // A tap that claims other than it showed, or more than the signed length, is
        // restarted from zero.
        let (r, asked, good) = run_kept(&file[..2000], Some(2500), &[Step::Range(9999, None)]);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((asked, good), (vec![0], true));
        let mut long = file.clone();
        long.push(0);
        let (r, asked, good) = run_kept(&long, None, &[Step::Range(9999, None)]);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((asked, good), (vec![0], true));
    }

    #[test]
    fn a_dropped_connection_is_resumed_where_it_broke() {
        let (r, asked, good) = run(3, &[Step::Range(3000, EOF), Step::Range(9999, None)]);
        assert_eq!((r.unwrap(), asked, good), (1, vec![0, 3000], true));
        // A reset or a clean but short end likewise; a second break resumes again.
        let (r, asked, good) = run(
            3,
            &[
                Step::Range(1000, RESET),
                Step::Range(1500, None),
                Step::Range(9999, None),
            ],
        );
        assert_eq!((r.unwrap(), asked, good), (2, vec![0, 1000, 2500], true));
    }

    #[test]
    fn a_server_that_ignores_the_range_restarts_from_zero() {
        let (r, asked, good) = run(3, &[Step::Range(3000, EOF), Step::Whole(9999, None)]);
        assert_eq!((r.unwrap(), asked, good), (1, vec![0, 3000], true));
        // Restarted and broken again: the next range starts from what the restart staged.
        let (r, asked, good) = run(
            3,
            &[
                Step::Range(3000, EOF),
                Step::Whole(1000, RESET),
                Step::Range(9999, None),
            ],
        );
        assert_eq!((r.unwrap(), asked, good), (2, vec![0, 3000, 1000], true));
    }

    #[test]
    fn resuming_is_bounded_and_needs_progress() {
        let steps = vec![Step::Range(1000, EOF); 4];
        let (r, asked, good) = run(3, &steps);
        assert!(
            matches!(
                r,
                Err(Error::TargetLength {
                    found: 4000,
                    expected: 5000,
                    ..
                })
            ),
            "{r:?}"
        );
        assert_eq!((asked, good), (vec![0, 1000, 2000, 3000], false));
        // Never resumed at all with 0 attempts.
        let (r, asked, _) = run(0, &[Step::Range(1000, EOF)]);
        assert!(matches!(r, Err(Error::TargetLength { found: 1000, .. })));
        assert_eq!(asked, [0]);
        // An attempt that brings nothing ends it, attempts left or not; a reset is reported
        // as such.
        let (r, asked, _) = run(3, &[Step::Range(1000, EOF), Step::Range(0, RESET)]);
        assert!(
            matches!(&r, Err(Error::Fetch(FetchError::Io { source, .. })) if source.kind() == io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
        assert_eq!(asked, [0, 1000]);
        // Nothing at all: not retried.
        let (r, asked, _) = run(3, &[Step::Range(0, RESET)]);
        assert!(r.is_err());
        assert_eq!(asked, [0]);
    }

    #[test]
    fn only_broken_transfers_are_resumed() {
        fn slow() -> FetchError {
            FetchError::TooSlow {
                url: "u".into(),
                bytes: 1,
                secs: 1.0,
                min: 10,
            }
        }
        fn timeout() -> FetchError {
            FetchError::Timeout {
                url: "u".into(),
                what: "per read".into(),
            }
        }
        fn http() -> FetchError {
            FetchError::Http {
                url: "u".into(),
                status: 416,
            }
        }
        for e in [slow as fn() -> FetchError, http] {
            let (r, asked, _) = run(3, &[Step::Range(1000, EOF), Step::Fail(e)]);
            assert!(matches!(r, Err(Error::Fetch(_))), "{r:?}");
            assert_eq!(asked, [0, 1000]);
        }
        // A timeout after progress is resumed; at the end it is reported as a timeout.
        let (r, asked, _) = run(1, &[Step::Range(1000, EOF), Step::Fail(timeout)]);
        assert!(
            matches!(r, Err(Error::Fetch(FetchError::Timeout { .. }))),
            "{r:?}"
        );
        assert_eq!(asked, [0, 1000]);
        // Every byte arrived before the connection broke: done, the hash decides.
        let (r, _, good) = run(3, &[Step::Range(5000, RESET)]);
        assert_eq!((r.unwrap(), good), (0, true));
    }

    #[test]
    fn the_staging_sink_refuses_a_start_it_does_not_hold() {
        let (r, asked, _) = run(3, &[Step::Range(1000, EOF), Step::StartAt(999)]);
        assert!(
            matches!(&r, Err(Error::Fetch(FetchError::Write { source, .. })) if source.kind() == io::ErrorKind::InvalidInput),
            "{r:?}"
        );
        assert_eq!(asked, [0, 1000]);
        let mut s = Hashing::new(io::Cursor::new(Vec::new()), 10);
        s.start_at(0).unwrap();
        s.write_all(b"abcdef").unwrap();
        s.start_at(6).unwrap();
        s.write_all(b"gh").unwrap();
        assert!(s.start_at(3).is_err());
        assert!(s.write_all(b"ijk").is_err(), "past the limit");
        s.start_at(0).unwrap();
        assert_eq!((s.written, s.inner.get_ref().len()), (0, 0));
        s.write_all(b"xy").unwrap();
        assert_eq!(s.inner.get_ref(), b"xy");
        let digest: [u8; 32] = s.hasher.finalize().sha256.unwrap().try_into().unwrap();
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(b"xy")));
    }

    #[test]
    fn the_sink_refuses_bytes_past_the_limit() {
        let mut out = Vec::new();
        let mut s = Hashing::new(&mut out, 4);
        s.write_all(b"abcd").unwrap();
        assert!(s.write_all(b"e").is_err());
        assert_eq!(s.written, 4);
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn every_supported_hash_is_taken_others_ignored_none_refused() {
        use std::collections::BTreeMap;
        let h = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(a, v)| (a.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let s256 = hex::encode([1u8; 32]);
        let s512 = hex::encode([2u8; 64]);
        assert_eq!(
            TargetDigest::from_hashes(&h(&[
                ("sha256", s256.clone()),
                ("sha512", s512.clone()),
                ("blake2b", "00".into())
            ])),
            Ok(TargetDigest {
                sha256: Some([1; 32]),
                sha512: Some(vec![2; 64])
            })
        );
        assert_eq!(
            TargetDigest::from_hashes(&h(&[("sha512", s512.clone())])),
            Ok(TargetDigest {
                sha256: None,
                sha512: Some(vec![2; 64])
            })
        );
        assert!(TargetDigest::from_hashes(&h(&[("md5", "00".into())])).is_err());
        assert!(
            TargetDigest::from_hashes(&h(&[("sha512", s256.clone())])).is_err(),
            "wrong length"
        );
        assert!(TargetDigest::from_hashes(&h(&[("sha256", "zz".into())])).is_err());
        // A malformed second hash is not skipped because the first is fine.
        assert!(
            TargetDigest::from_hashes(&h(&[("sha256", s256), ("sha512", "zz".into())])).is_err()
        );
    }

    #[test]
    fn a_correct_sha256_with_a_wrong_sha512_is_refused() {
        use sha2::Sha512;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"both hashes").unwrap();
        let f = crate::tuf::DirFetcher::new();
        let url = src.display().to_string();
        let right = TargetDigest {
            sha256: Some(Sha256::digest(b"both hashes").into()),
            sha512: Some(Sha512::digest(b"both hashes").to_vec()),
        };
        let dest = dir.path().join("out/ok.bin");
        fetch_verified(&f, &url, "t.bin", 11, &right, &dest, 0, None).unwrap();
        let wrong = TargetDigest {
            sha512: Some(vec![0; 64]),
            ..right
        };
        let dest = dir.path().join("out/bad.bin");
        assert!(matches!(
            fetch_verified(&f, &url, "t.bin", 11, &wrong, &dest, 0, None),
            Err(Error::TargetHash { .. })
        ));
        assert!(!dest.exists());
        assert!(!is_cached(&src, 11, &wrong).unwrap());
    }

    #[test]
    fn a_sha512_only_target_downloads_and_a_wrong_one_is_refused() {
        use sha2::Sha512;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"sha512 only").unwrap();
        let good = TargetDigest {
            sha256: None,
            sha512: Some(Sha512::digest(b"sha512 only").to_vec()),
        };
        let dest = dir.path().join("out/t.bin");
        let f = crate::tuf::DirFetcher::new();
        let url = src.display().to_string();
        fetch_verified(&f, &url, "t.bin", 11, &good, &dest, 0, None).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"sha512 only");
        assert!(is_cached(&dest, 11, &good).unwrap());
        let bad = TargetDigest {
            sha256: None,
            sha512: Some(vec![0; 64]),
        };
        let dest2 = dir.path().join("out/u.bin");
        assert!(matches!(
            fetch_verified(&f, &url, "u.bin", 11, &bad, &dest2, 0, None),
            Err(Error::TargetHash { .. })
        ));
        assert!(!dest2.exists());
    }

    #[test]
    fn a_tap_sees_a_resumed_download_from_its_first_byte() {
        let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.bin");
        // A stopped run left the first 2000 bytes; the server sends the rest.
        std::fs::write(dir.path().join(".partial-t.bin"), &file[..2000]).unwrap();
        let f = Scripted::new(&file, &[Step::Range(5000, None)]);
        let sha = TargetDigest::sha256(Sha256::digest(&file).into());
        let mut tap = Recorder(b"stale".to_vec());
        fetch_verified(&f, "u", "t.bin", 5000, &sha, &dest, 0, Some(&mut tap)).unwrap();
        assert_eq!(*f.asked.borrow(), vec![2000]);
        assert_eq!(
            tap.0, file,
            "the tap must see the held bytes, then the new ones"
        );
    }

    #[test]
    fn a_tap_that_fails_stops_the_download() {
        struct Refuse;
        impl StreamTap for Refuse {
            fn restart(&mut self) -> io::Result<()> {
                Ok(())
            }
            fn write(&mut self, _: &[u8]) -> io::Result<()> {
                Err(io::Error::other("chunk 0 does not authenticate"))
            }
        }
        let file = vec![7u8; 100];
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.bin");
        let f = Scripted::new(&file, &[Step::Range(100, None)]);
        let sha = TargetDigest::sha256(Sha256::digest(&file).into());
        assert!(fetch_verified(&f, "u", "t.bin", 100, &sha, &dest, 0, Some(&mut Refuse)).is_err());
        assert!(!dest.exists());
        assert!(!dir.path().join(".partial-t.bin").exists());
    }
}
