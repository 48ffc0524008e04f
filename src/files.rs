//! Local files, natively: DPM-1 digests of directories, file hashes and streamed artifact
//! uploads with progress, and bounded reads of evidence bundles.
//!
//! This is what the Python package (`python/`) and Rust programs call; the npm package hashes
//! through `src/wasm/` and Node's `hashDirectory` instead, and all of them give the same id for
//! the same directory because the manifest is built by [`ManifestBuilder`] everywhere.
//!
//! # What a directory digest covers
//!
//! The rules of every client (the CLI and `hashDirectory` in Node, `hashFiles` in browsers,
//! this module), pinned in `docs/formats.md` ("Which files of a directory a version covers"):
//!
//! - every regular file below the root, at any depth, except what the dataset ignore rules
//!   leave out ([`crate::ignore`]: `.git/` by default, and the root `.datapilotignore` in
//!   gitignore syntax; [`DirOptions::ignore`] turns them off); the count is
//!   [`DirDigest::excluded`];
//! - **symbolic links** are refused by default ([`SymlinkPolicy::Refuse`], the error names the
//!   first in path order, before any byte is hashed); [`SymlinkPolicy::Follow`] hashes what
//!   links inside the root point to, [`SymlinkPolicy::FollowOutsideRoot`] also links that
//!   leave it; a loop or a dangling link to follow is an error naming it.
//!   [`SymlinkPolicy::Skip`] leaves links out (listed in [`DirDigest::skipped`]), as
//!   `find -type f` does. The root itself may be a symlink to a directory;
//! - sockets, FIFOs and devices are skipped (and listed), as `find -type f` does;
//! - paths are `/`-joined below the root and converted to NFC by the manifest builder; a name
//!   that is not UTF-8 is refused ([`DirError::NonUtf8Name`]) rather than hashed under a
//!   lossy spelling no other tool would produce;
//! - a file whose size changes between listing and hashing fails ([`DirError::Changed`]): a
//!   dataset being written to has no stable id.
//!
//! Hashing runs on [`DirOptions::threads`] threads (files are independent); progress is
//! reported on the **calling** thread, so a caller that must run its own code there (the
//! Python binding checks for signals such as Ctrl-C) can, and can stop the work by returning
//! [`ControlFlow::Break`].

use std::fs;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::manifest::{FileHasher, Manifest, ManifestBuilder, ManifestError};

/// Bytes read from a file at a time (a buffer per hashing thread).
pub const READ_CHUNK_BYTES: usize = 1 << 20;

/// A well-formed placeholder hash for checking paths before hashing.
const ZERO_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most hashing threads used by default: beyond this the disk, not the CPU, is the limit.
pub const MAX_DEFAULT_THREADS: usize = 4;

/// How often progress is reported on the calling thread while hashing.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What to do with symbolic links below the root. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SymlinkPolicy {
    /// Fail with [`DirError::Symlink`] naming the first one (in path order): the default of
    /// every client (the CLI, `hashDirectory`), so a link is never hashed by surprise.
    #[default]
    Refuse,
    /// Hash what links point to (a file's content under the link's path, a directory's files
    /// below it), when the target is inside the root (`--follow-symlinks`).
    Follow,
    /// [`SymlinkPolicy::Follow`], also for targets outside the root
    /// (`--symlinks-outside-root`: Hugging Face snapshots, DVC and git-annex caches).
    FollowOutsideRoot,
    /// Leave them out (listed in [`DirDigest::skipped`]), as `find -type f` does. No other
    /// client has this policy: its ids match the `find` recipe, not the CLI's default.
    Skip,
}

impl SymlinkPolicy {
    fn follows(self) -> bool {
        matches!(self, Self::Follow | Self::FollowOutsideRoot)
    }
}

/// Options of [`hash_directory`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DirOptions {
    /// Symbolic link policy (default [`SymlinkPolicy::Refuse`]).
    pub symlinks: SymlinkPolicy,
    /// Apply the dataset ignore rules ([`crate::ignore`]: the root `.datapilotignore`, `.git/`
    /// ignored); default `true`.
    pub ignore: bool,
    /// Hashing threads; 0 (the default) means the available parallelism, at most
    /// [`MAX_DEFAULT_THREADS`].
    pub threads: usize,
}

impl Default for DirOptions {
    fn default() -> Self {
        Self {
            symlinks: SymlinkPolicy::Refuse,
            ignore: true,
            threads: 0,
        }
    }
}

impl DirOptions {
    /// Sets the symbolic link policy.
    pub fn with_symlinks(mut self, policy: SymlinkPolicy) -> Self {
        self.symlinks = policy;
        self
    }

    /// Applies the ignore rules (`true`, the default) or hashes every file (`false`).
    pub fn with_ignore(mut self, ignore: bool) -> Self {
        self.ignore = ignore;
        self
    }

    /// Sets the number of hashing threads (0: automatic).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    fn thread_count(&self, files: usize) -> usize {
        let wanted = if self.threads == 0 {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_DEFAULT_THREADS)
        } else {
            self.threads
        };
        wanted.clamp(1, files.max(1))
    }
}

/// Why an entry was left out of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A symbolic link ([`SymlinkPolicy::Skip`]).
    Symlink,
    /// A socket, FIFO or device.
    NotRegular,
}

/// An entry below the root that is not in the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// Its `/`-joined path below the root.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// The digest of a directory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DirDigest {
    /// The manifest: `digest()`, `files()` (sorted), `total_bytes()`.
    pub manifest: Manifest,
    /// Entries left out, sorted by path (symlinks under [`SymlinkPolicy::Skip`], and special
    /// files).
    pub skipped: Vec<Skipped>,
    /// Files and directories left out by the ignore rules.
    pub excluded: u64,
}

/// Progress of [`hash_directory`], as reported to its callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirProgress {
    /// Bytes hashed so far.
    pub bytes_hashed: u64,
    /// Bytes of all files to hash (their sizes when listed).
    pub total_bytes: u64,
    /// Files finished.
    pub files_hashed: u64,
    /// Files to hash.
    pub total_files: u64,
}

/// Why a directory could not be hashed. Every variant that concerns an entry names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// Reading the file system failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The root is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The root as given.
        path: PathBuf,
    },
    /// The directory holds no regular file (a dataset version lists at least one).
    #[error("{}: no regular file to hash (a dataset version lists at least one file)", path.display())]
    Empty {
        /// The root as given.
        path: PathBuf,
    },
    /// A file or directory name is not UTF-8.
    #[error("{}: the name is not valid UTF-8 (DPM-1 paths are Unicode; rename it)", path.display())]
    NonUtf8Name {
        /// The entry.
        path: PathBuf,
    },
    /// A symbolic link was found under [`SymlinkPolicy::Refuse`].
    #[error(
        "symbolic link {path:?} in the dataset{}: symlinks are refused by default; follow them \
         (--follow-symlinks, symlinks=\"follow\") to hash what they point to, or ignore them \
         in .datapilotignore",
        target.as_ref().map(|t| format!(" (-> {})", t.display())).unwrap_or_default()
    )]
    Symlink {
        /// Its path below the root (the first in path order).
        path: String,
        /// Where it points, when readable.
        target: Option<PathBuf>,
    },
    /// A followed link points outside the root under [`SymlinkPolicy::Follow`].
    #[error(
        "symbolic link {path:?} points outside the directory (to {}); follow such links \
         explicitly (--symlinks-outside-root, symlinks=\"follow-outside-root\")",
        target.display()
    )]
    SymlinkOutsideRoot {
        /// Its path below the root.
        path: String,
        /// Its resolved target.
        target: PathBuf,
    },
    /// A followed link points to a directory above it.
    #[error("symbolic link {path:?} makes a loop (it points to a directory above it)")]
    SymlinkLoop {
        /// Its path below the root.
        path: String,
    },
    /// A link to follow points to nothing.
    #[error("symbolic link {path:?} points to nothing (a dangling link); remove it or ignore it in .datapilotignore")]
    DanglingSymlink {
        /// Its path below the root.
        path: String,
    },
    /// The ignore file cannot be used.
    #[error(transparent)]
    Ignore(#[from] crate::ignore::IgnoreError),
    /// A file changed size while it was hashed.
    #[error("{path:?}: changed while it was hashed (listed with {listed} bytes, read {read}); hash a dataset that is not being written to")]
    Changed {
        /// Its path below the root.
        path: String,
        /// Size when listed.
        listed: u64,
        /// Bytes actually read.
        read: u64,
    },
    /// A path breaks the DPM-1 rules (e.g. a backslash or newline in a name).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The progress callback asked to stop.
    #[error("hashing was cancelled")]
    Cancelled,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DirError + '_ {
    move |source| DirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One regular file to hash.
struct Listed {
    rel: String,
    abs: PathBuf,
    size: u64,
}

/// Regular files to hash, the entries left out (with their absolute paths), and how many
/// the ignore rules removed.
type Listing = (Vec<Listed>, Vec<(Skipped, PathBuf)>, u64);

/// The root's ignore rules, or `None` when they are off.
fn ignore_rules(root: &Path, on: bool) -> Result<Option<crate::ignore::IgnoreRules>, DirError> {
    if !on {
        return Ok(None);
    }
    let file = root.join(crate::ignore::IGNORE_FILE);
    match fs::read(&file) {
        Ok(bytes) => Ok(Some(crate::ignore::IgnoreRules::with_file(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Some(crate::ignore::IgnoreRules::defaults()))
        }
        Err(e) => Err(io_error(&file)(e)),
    }
}

/// Lists the regular files below `root` (depth first, explicit stack: no recursion limit)
/// and the entries left out, under `options`' ignore rules and symlink policy.
fn list(root: &Path, options: &DirOptions) -> Result<Listing, DirError> {
    let rules = ignore_rules(root, options.ignore)?;
    let ignored = |rel: &str, is_dir: bool| {
        rules.as_ref().is_some_and(|r| {
            let nfc = crate::manifest::normalize_path(rel).unwrap_or_else(|_| rel.to_owned());
            r.is_ignored(&nfc, is_dir)
        })
    };
    let root_real = fs::canonicalize(root).map_err(io_error(root))?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut links = Vec::new();
    let mut excluded = 0u64;
    // (relative path, directory, canonical paths of the directories above: the loop check)
    let mut stack = vec![(String::new(), root.to_path_buf(), vec![root_real.clone()])];
    while let Some((rel, dir, above)) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let abs = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| DirError::NonUtf8Name { path: abs.clone() })?;
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // `file_type` does not follow symlinks (d_type, else lstat).
            let ty = entry.file_type().map_err(io_error(&abs))?;
            let (mut is_dir, mut is_file, mut real) = (ty.is_dir(), ty.is_file(), None);
            if ty.is_symlink() {
                let target = fs::canonicalize(&abs).and_then(|r| fs::metadata(&r).map(|m| (r, m)));
                let Ok((target_real, meta)) = target else {
                    if ignored(&child, false) {
                        excluded += 1;
                    } else if options.symlinks.follows() {
                        return Err(DirError::DanglingSymlink { path: child });
                    } else {
                        links.push((child, abs));
                    }
                    continue;
                };
                (is_dir, is_file) = (meta.is_dir(), meta.is_file());
                if ignored(&child, is_dir) {
                    excluded += 1;
                    continue;
                }
                if !options.symlinks.follows() {
                    links.push((child, abs));
                    continue;
                }
                if options.symlinks == SymlinkPolicy::Follow && !target_real.starts_with(&root_real)
                {
                    return Err(DirError::SymlinkOutsideRoot {
                        path: child,
                        target: target_real,
                    });
                }
                real = Some(target_real);
            } else if ignored(&child, is_dir) {
                excluded += 1;
                continue;
            }
            if is_dir {
                let dir_real = real.unwrap_or_else(|| above[above.len() - 1].join(&name));
                if above.contains(&dir_real) {
                    return Err(DirError::SymlinkLoop { path: child });
                }
                let mut next = above.clone();
                next.push(dir_real);
                stack.push((child, abs, next));
            } else if is_file {
                // `metadata` follows a link to the file it points to.
                let size = fs::metadata(&abs).map_err(io_error(&abs))?.len();
                files.push(Listed {
                    rel: child,
                    abs,
                    size,
                });
            } else {
                skipped.push((
                    Skipped {
                        path: child,
                        reason: SkipReason::NotRegular,
                    },
                    abs,
                ));
            }
        }
    }
    links.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if options.symlinks == SymlinkPolicy::Refuse {
        if let Some((path, abs)) = links.first() {
            return Err(DirError::Symlink {
                path: path.clone(),
                target: fs::read_link(abs).ok(),
            });
        }
    }
    skipped.extend(links.into_iter().map(|(path, abs)| {
        (
            Skipped {
                path,
                reason: SkipReason::Symlink,
            },
            abs,
        )
    }));
    skipped.sort_by(|a, b| a.0.path.as_bytes().cmp(b.0.path.as_bytes()));
    Ok((files, skipped, excluded))
}

/// SHA-256 (hex) and length of a file, read [`READ_CHUNK_BYTES`] at a time into `buf`, adding
/// each chunk's length to `progress` and stopping early when `stop` is set.
fn hash_into(
    path: &Path,
    buf: &mut [u8],
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(String, u64), DirError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = FileHasher::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(DirError::Cancelled);
        }
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path)(e)),
        };
        hasher.update(&buf[..n]);
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(hasher.finish())
}

/// The DPM-1 digest of the directory `root` (see the module docs for what is hashed).
///
/// `on_progress` is called on the calling thread every [`PROGRESS_INTERVAL`] while files are
/// hashed and once at the end; returning [`ControlFlow::Break`] stops the hashing threads and
/// returns [`DirError::Cancelled`].
pub fn hash_directory(
    root: &Path,
    options: &DirOptions,
    mut on_progress: impl FnMut(&DirProgress) -> ControlFlow<()>,
) -> Result<DirDigest, DirError> {
    let meta = fs::metadata(root).map_err(io_error(root))?;
    if !meta.is_dir() {
        return Err(DirError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let (files, skipped, excluded) = list(root, options)?;
    if files.is_empty() {
        return Err(DirError::Empty {
            path: root.to_path_buf(),
        });
    }
    // Every path is checked (DPM-1 rules, duplicates after NFC) before any byte is read: a
    // throwaway builder does exactly the checks the real one will.
    let mut check = ManifestBuilder::new();
    for f in &files {
        check.add_file(&f.rel, ZERO_SHA256, 0)?;
    }
    drop(check);

    let total = DirProgress {
        total_bytes: files.iter().map(|f| f.size).sum(),
        total_files: files.len() as u64,
        ..DirProgress::default()
    };
    let bytes = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<DirError>> = Mutex::new(None);
    let results: Vec<Mutex<Option<(String, u64)>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let threads = options.thread_count(files.len());
    let (finished_tx, finished_rx) = mpsc::channel::<()>();

    let cancelled = std::thread::scope(|scope| {
        for _ in 0..threads {
            let finished = finished_tx.clone();
            let (files, results, bytes, done, next, stop, first_error) =
                (&files, &results, &bytes, &done, &next, &stop, &first_error);
            scope.spawn(move || {
                let _finished = finished; // dropped when this thread ends
                let mut buf = vec![0u8; READ_CHUNK_BYTES];
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let outcome = hash_into(&f.abs, &mut buf, bytes, stop).and_then(|(sha, n)| {
                        if n == f.size {
                            Ok((sha, n))
                        } else {
                            Err(DirError::Changed {
                                path: f.rel.clone(),
                                listed: f.size,
                                read: n,
                            })
                        }
                    });
                    match outcome {
                        Ok(r) => {
                            *results[i].lock().expect("result slot") = Some(r);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().expect("error slot");
                            if slot.is_none() && !matches!(e, DirError::Cancelled) {
                                *slot = Some(e);
                            }
                            break;
                        }
                    }
                }
            });
        }
        drop(finished_tx);
        // Progress on the calling thread until every worker has dropped its sender.
        let snapshot = || DirProgress {
            bytes_hashed: bytes.load(Ordering::Relaxed),
            files_hashed: done.load(Ordering::Relaxed),
            ..total
        };
        // Senders carry no message: only disconnection (every worker done) ends the wait.
        while let Err(mpsc::RecvTimeoutError::Timeout) = finished_rx.recv_timeout(PROGRESS_INTERVAL)
        {
            if on_progress(&snapshot()).is_break() {
                stop.store(true, Ordering::Relaxed);
                return true;
            }
        }
        false
    });
    if cancelled {
        return Err(DirError::Cancelled);
    }
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    if on_progress(&DirProgress {
        bytes_hashed: bytes.load(Ordering::Relaxed),
        files_hashed: done.load(Ordering::Relaxed),
        ..total
    })
    .is_break()
    {
        return Err(DirError::Cancelled);
    }
    let mut builder = ManifestBuilder::new();
    for (f, slot) in files.iter().zip(results) {
        let (sha, size) = slot
            .into_inner()
            .expect("result slot")
            .ok_or(DirError::Cancelled)?;
        builder.add_file(&f.rel, &sha, size)?;
    }
    Ok(DirDigest {
        manifest: builder.finish()?,
        skipped: skipped.into_iter().map(|(s, _)| s).collect(),
        excluded,
    })
}

/// Bytes moved by a long operation, shared with whoever reports progress (another thread or
/// task reads it while the operation runs).
#[derive(Debug, Default)]
pub struct TransferProgress {
    phase: AtomicUsize,
    bytes: AtomicU64,
    total: AtomicU64,
}

/// The phase of a [`TransferProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not started.
    Pending,
    /// Hashing the file before the upload.
    Hashing,
    /// Sending it (bytes handed to the HTTP stack; a retry starts again from 0).
    Uploading,
    /// Answered.
    Done,
}

impl TransferProgress {
    /// A fresh, shareable progress record.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `(phase, bytes, total bytes)` now.
    pub fn snapshot(&self) -> (Phase, u64, u64) {
        let phase = match self.phase.load(Ordering::Acquire) {
            1 => Phase::Hashing,
            2 => Phase::Uploading,
            3 => Phase::Done,
            _ => Phase::Pending,
        };
        (
            phase,
            self.bytes.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Enters `phase` with `total` bytes to go (the native upload's hashing and sending).
    #[cfg(feature = "native")]
    fn start(&self, phase: Phase, total: u64) {
        self.bytes.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.phase.store(
            match phase {
                Phase::Pending => 0,
                Phase::Hashing => 1,
                Phase::Uploading => 2,
                Phase::Done => 3,
            },
            Ordering::Release,
        );
    }
}

/// Reads an evidence bundle from disk, refusing one larger than `max_bytes` before reading it
/// (the verifier's own archive limit, [`crate::evidence::archive::DEFAULT_MAX_ARCHIVE_BYTES`]
/// by default, so a wrong path to a huge file cannot exhaust memory).
pub fn read_bundle_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, DirError> {
    let file = fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    if len > max_bytes {
        return Err(DirError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{len} bytes is more than an evidence bundle may have ({max_bytes})"),
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    Ok(bytes)
}

#[cfg(feature = "native")]
pub use upload::upload_file;

#[cfg(feature = "native")]
mod upload {
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;

    use super::{Phase, TransferProgress, READ_CHUNK_BYTES};
    use crate::error::{Error, Result};
    use crate::manifest::FileHasher;
    use crate::model::artifacts::Artifact;
    use crate::native::FileSource;
    use crate::transport::{Body, BodyError, BodySource, BoxFuture, ChunkReader};
    use crate::{Client, RequestOptions};

    /// A body that counts the bytes its readers hand out.
    struct Counted {
        inner: FileSource,
        progress: Arc<TransferProgress>,
    }

    impl BodySource for Counted {
        fn len(&self) -> Option<u64> {
            self.inner.len()
        }

        fn open(&self) -> Box<dyn ChunkReader> {
            // Every attempt starts again from the first byte, and so does the count.
            self.progress
                .start(Phase::Uploading, self.inner.len().unwrap_or(0));
            Box::new(CountedReader {
                inner: self.inner.open(),
                progress: self.progress.clone(),
            })
        }
    }

    struct CountedReader {
        inner: Box<dyn ChunkReader>,
        progress: Arc<TransferProgress>,
    }

    impl ChunkReader for CountedReader {
        fn next_chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<Vec<u8>>, BodyError>> {
            Box::pin(async move {
                let chunk = self.inner.next_chunk().await?;
                if let Some(c) = &chunk {
                    self.progress
                        .bytes
                        .fetch_add(c.len() as u64, Ordering::Relaxed);
                }
                Ok(chunk)
            })
        }
    }

    /// SHA-256 (hex) of a file, counting the bytes hashed in `progress`.
    async fn sha256_file(path: &Path, progress: &TransferProgress) -> std::io::Result<String> {
        let mut file = tokio::fs::File::open(path).await?;
        progress.start(Phase::Hashing, file.metadata().await?.len());
        let mut hasher = FileHasher::new();
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(hasher.finish().0);
            }
            hasher.update(&buf[..n]);
            progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// `uploadArtifact` of the file at `path` as `name`, hashed then streamed (memory stays at
    /// a few chunks whatever the size), reporting both phases in `progress`. Like
    /// [`Client::upload_artifact_file`], plus progress. Run it on a tokio runtime (file reads
    /// go through `tokio::fs`).
    pub async fn upload_file(
        client: &Client,
        run_id: &str,
        name: &str,
        path: &Path,
        options: RequestOptions,
        progress: Arc<TransferProgress>,
    ) -> Result<Artifact> {
        let unreadable = |e: std::io::Error| Error::build(format!("{}: {e}", path.display()));
        let source = FileSource::open(path).map_err(unreadable)?;
        let sha = sha256_file(path, &progress).await.map_err(unreadable)?;
        let body = Body::Stream(Arc::new(Counted {
            inner: source,
            progress: progress.clone(),
        }));
        let artifact = client
            .upload_artifact(run_id, name, &sha, body)
            .options(options)
            .send()
            .await?;
        let (_, _, total) = progress.snapshot();
        progress.start(Phase::Done, total);
        progress.bytes.store(total, Ordering::Relaxed);
        Ok(artifact)
    }
}
