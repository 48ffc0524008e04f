//! DPM-1: the content address of a dataset version.
//!
//! A dataset version is a set of regular files. Its id is
//! `sha256:<hex>`, where `<hex>` is the SHA-256 of one line per file,
//!
//! ```text
//! <sha256 of the file, 64 lowercase hex><two spaces><path>\n
//! ```
//!
//! with the lines sorted by the path's UTF-8 bytes. That is exactly what
//! `sha256sum` prints for each file, so the id of a directory can be reproduced
//! with coreutils alone (the pinned spec, with a worked example, is in
//! `docs/formats.md`):
//!
//! ```sh
//! cd DIR && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
//! ```
//!
//! It is also byte-identical to Go's `dirhash.Hash1` as used by in-toto.
//!
//! Paths are what make a digest ambiguous, so they are constrained: relative,
//! `/`-separated, Unicode NFC, at most 4096 characters, no empty, `.` or `..`
//! segment, no NUL, no newline (`\n` or `\r`), no backslash and no duplicates.
//! Newlines and backslashes are excluded because `sha256sum` escapes them (its
//! output would no longer be the line above); NFC is required because macOS and
//! Linux spell the same name with different bytes, and the same dataset must get
//! the same id everywhere.
//!
//! The two sides use this module differently:
//!
//! - **Client** (browser, Node, native): streams each file through a
//!   [`FileHasher`] in chunks (never holding the file whole, reporting progress
//!   from [`FileHasher::bytes_hashed`]) and collects the results in a
//!   [`ManifestBuilder`], which converts paths to NFC with [`normalize_path`].
//! - **Server**: receives `{ digest, files: [{ path, sha256, size }] }`, rebuilds it
//!   with [`Manifest::from_entries`], which accepts only already-canonical input
//!   ([`validate_path`]), and compares the recomputed [`Manifest::digest`].
//!
//! A manifest must list at least one file: for an empty directory the coreutils
//! pipeline above hashes `sha256sum`'s output for empty standard input rather
//! than nothing, so an empty dataset would have no agreed id.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
#[cfg(not(target_arch = "wasm32"))]
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// The prefix of every DPM-1 dataset version id.
pub const DIGEST_PREFIX: &str = "sha256:";

/// Longest path accepted, in Unicode characters (the API contract's limit).
pub const MAX_PATH_CHARS: usize = 4096;

/// One regular file of a dataset version, as carried on the wire
/// (`{ "path", "sha256", "size" }`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Unknown fields are rejected, as everywhere in the API.
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct FileEntry {
    /// Relative, `/`-separated, NFC path (see the module docs for the rules).
    pub path: String,
    /// SHA-256 of the file's bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// Size of the file in bytes. Not part of the digest; reported as
    /// [`Manifest::total_bytes`] and checked by whoever has the bytes.
    pub size: u64,
}

/// Why a path is not a valid DPM-1 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path is the empty string.
    Empty,
    /// The path starts with `/` (it must be relative).
    Absolute,
    /// Two consecutive slashes or a trailing slash.
    EmptySegment,
    /// A `.` segment.
    DotSegment,
    /// A `..` segment.
    DotDotSegment,
    /// A NUL character.
    Nul,
    /// A `\n` or `\r` character (`sha256sum` would escape the line).
    Newline,
    /// A backslash (`sha256sum` would escape the line; also a Windows separator).
    Backslash,
    /// The path is not in Unicode Normalization Form C.
    NotNfc,
    /// The path is longer than [`MAX_PATH_CHARS`] characters.
    TooLong,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "the path is empty",
            PathProblem::Absolute => "the path must be relative (it starts with '/')",
            PathProblem::EmptySegment => "the path has an empty segment ('//' or a trailing '/')",
            PathProblem::DotSegment => "the path has a '.' segment",
            PathProblem::DotDotSegment => "the path has a '..' segment",
            PathProblem::Nul => "the path contains a NUL character",
            PathProblem::Newline => "the path contains a newline ('\\n' or '\\r')",
            PathProblem::Backslash => "the path contains a backslash",
            PathProblem::NotNfc => "the path is not in Unicode NFC",
            PathProblem::TooLong => "the path is longer than 4096 characters",
        })
    }
}

/// Errors building or checking a DPM-1 manifest. Every variant that concerns a
/// file names its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A path breaks the DPM-1 path rules.
    #[error("invalid path {path:?}: {problem}")]
    InvalidPath {
        /// The offending path, as given.
        path: String,
        /// Which rule it breaks.
        problem: PathProblem,
    },
    /// The same path (after NFC normalisation on the client side) is listed twice.
    #[error("duplicate path {path:?}")]
    DuplicatePath {
        /// The path listed more than once.
        path: String,
    },
    /// A file's `sha256` is not 64 hex digits (lowercase, on the strict server side).
    #[error(
        "file {path:?}: sha256 must be 64 lowercase hex digits, got {value:?}{}",
        spelling_hint(value, Sha256Spelling::BareHex)
    )]
    InvalidSha256 {
        /// The file whose hash is malformed.
        path: String,
        /// The malformed value (truncated to 80 characters).
        value: String,
    },
    /// The sum of the file sizes does not fit in 64 bits.
    #[error("file {path:?}: total size of the manifest overflows 64 bits")]
    SizeOverflow {
        /// The file at which the running total overflowed.
        path: String,
    },
    /// The manifest lists no file.
    #[error("a manifest must list at least one file")]
    NoFiles,
    /// A dataset version id is not `sha256:` followed by 64 lowercase hex digits.
    #[error(
        "invalid dataset digest {value:?}: expected \"sha256:\" and 64 lowercase hex digits{}",
        spelling_hint(value, Sha256Spelling::Prefixed)
    )]
    InvalidDigest {
        /// The malformed value (truncated to 80 characters).
        value: String,
    },
    /// The digest a client claimed is not the one the files give.
    #[error("digest mismatch: the manifest gives {computed} but {claimed} was claimed")]
    DigestMismatch {
        /// The claimed id.
        claimed: String,
        /// The id recomputed from the files.
        computed: String,
    },
}

/// Converts a client-side path to NFC and checks the DPM-1 rules.
///
/// Use it on names coming from a file system or a browser `File` (whose
/// `webkitRelativePath` may be NFD on macOS). The server uses the stricter
/// [`validate_path`] instead, so that one dataset cannot be submitted under two
/// spellings.
pub fn normalize_path(raw: &str) -> Result<String, ManifestError> {
    let nfc = to_nfc(raw);
    check_rules(&nfc).map_err(|problem| ManifestError::InvalidPath {
        path: raw.to_owned(),
        problem,
    })?;
    Ok(nfc)
}

/// Checks that `path` is already a canonical DPM-1 path (valid and NFC).
pub fn validate_path(path: &str) -> Result<(), ManifestError> {
    let invalid = |problem| ManifestError::InvalidPath {
        path: path.to_owned(),
        problem,
    };
    check_rules(path).map_err(invalid)?;
    if !is_nfc(path) {
        return Err(invalid(PathProblem::NotNfc));
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
fn to_nfc(raw: &str) -> String {
    match is_nfc_quick(raw.chars()) {
        IsNormalized::Yes => raw.to_owned(),
        _ => raw.nfc().collect(),
    }
}

// On wasm32 the host's `String.prototype.normalize` does NFC, so the build ships no Unicode
// tables (see `crate::wasm::nfc`).
#[cfg(target_arch = "wasm32")]
fn to_nfc(raw: &str) -> String {
    crate::wasm::nfc::to_nfc(raw).into_owned()
}

#[cfg(target_arch = "wasm32")]
fn is_nfc(s: &str) -> bool {
    crate::wasm::nfc::is_nfc(s)
}

#[cfg(not(target_arch = "wasm32"))]
fn is_nfc(s: &str) -> bool {
    match is_nfc_quick(s.chars()) {
        IsNormalized::Yes => true,
        IsNormalized::No => false,
        // The quick check is inconclusive for some characters: compare with
        // the full normalisation.
        IsNormalized::Maybe => s.chars().eq(s.nfc()),
    }
}

/// The path rules other than NFC, in the order a user would want them reported.
fn check_rules(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() > MAX_PATH_CHARS && path.chars().count() > MAX_PATH_CHARS {
        return Err(PathProblem::TooLong);
    }
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '\0' | '\n' | '\r' | '\\'))
    {
        return Err(match c {
            '\0' => PathProblem::Nul,
            '\\' => PathProblem::Backslash,
            _ => PathProblem::Newline,
        });
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathProblem::EmptySegment),
            "." => return Err(PathProblem::DotSegment),
            ".." => return Err(PathProblem::DotDotSegment),
            _ => {}
        }
    }
    Ok(())
}

fn truncated(value: &str) -> String {
    value.chars().take(80).collect()
}

fn is_lower_hex64(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The two spellings of a SHA-256 value in the contract (docs/compatibility.md, "SHA-256
/// spellings"): the name says the spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha256Spelling {
    /// Fields, parameters and headers named `sha256`: 64 lowercase hex, no prefix.
    BareHex,
    /// Fields named `digest` or `*_digest`: `sha256:<64 lowercase hex>`.
    Prefixed,
}

/// A hint to append to an error about a malformed SHA-256 when `value` is well formed in the
/// *other* spelling (the mistake a caller makes when copying an artifact's `sha256` into a
/// `digest` field or back); empty otherwise. It begins with a space.
pub fn spelling_hint(value: &str, expected: Sha256Spelling) -> &'static str {
    match expected {
        Sha256Spelling::BareHex
            if value.strip_prefix(DIGEST_PREFIX).is_some_and(is_lower_hex64) =>
        {
            " (drop the \"sha256:\" prefix: a value named sha256 is bare hex; see docs/compatibility.md)"
        }
        Sha256Spelling::Prefixed if is_lower_hex64(value) => {
            " (add the \"sha256:\" prefix: a digest names its algorithm; see docs/compatibility.md)"
        }
        _ => "",
    }
}

/// Checks that `value` has the shape of a dataset version id:
/// `sha256:` followed by 64 lowercase hex digits.
pub fn validate_digest(value: &str) -> Result<(), ManifestError> {
    match value.strip_prefix(DIGEST_PREFIX) {
        Some(hex) if is_lower_hex64(hex) => Ok(()),
        _ => Err(ManifestError::InvalidDigest {
            value: truncated(value),
        }),
    }
}

/// The fingerprint of one part of a manifest upload (`putManifestPart`): the SHA-256 of the
/// lines `<sha256>  <size>  <path>\n` of `files`, which must be sorted by path bytes. Unlike
/// the DPM-1 id it covers sizes too, because it tells whether two parts are the same request.
pub fn part_fingerprint<'a>(files: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> String {
    let mut h = Sha256::new();
    for (path, sha256, size) in files {
        h.update(sha256.as_bytes());
        h.update(b"  ");
        h.update(size.to_string().as_bytes());
        h.update(b"  ");
        h.update(path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Incremental SHA-256 of one file, fed in chunks of any size.
///
/// ```
/// use datapilot::manifest::FileHasher;
/// let mut h = FileHasher::new();
/// h.update(b"hello ");
/// h.update(b"world\n");
/// let (hex, size) = h.finish();
/// assert_eq!(hex, "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447");
/// assert_eq!(size, 12);
/// ```
#[derive(Clone, Default)]
pub struct FileHasher {
    hasher: Sha256,
    size: u64,
}

impl fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileHasher")
            .field("bytes_hashed", &self.size)
            .finish_non_exhaustive()
    }
}

impl FileHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        // A file cannot exceed u64::MAX bytes in practice; saturate rather than
        // wrap so a pathological caller gets a visibly wrong size, not a small one.
        self.size = self.size.saturating_add(chunk.len() as u64);
    }

    /// Bytes fed so far (for progress reporting).
    pub fn bytes_hashed(&self) -> u64 {
        self.size
    }

    /// The file's SHA-256 as 64 lowercase hex digits, and its size in bytes.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.size)
    }
}

/// Collects the files of a dataset version on the client, in any order.
///
/// Paths are normalised with [`normalize_path`]; duplicates (also those that
/// only differ by Unicode normalisation) are rejected when added.
#[derive(Debug, Clone, Default)]
pub struct ManifestBuilder {
    files: BTreeMap<String, (String, u64)>,
}

impl ManifestBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of files added so far.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file was added yet.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Adds a file whose hash is already known. `sha256_hex` may be upper or
    /// lower case (it is stored lowercase).
    pub fn add_file(
        &mut self,
        path: &str,
        sha256_hex: &str,
        size: u64,
    ) -> Result<(), ManifestError> {
        let path = self.check_new_path(path)?;
        let sha = sha256_hex.to_ascii_lowercase();
        if !is_lower_hex64(&sha) {
            return Err(ManifestError::InvalidSha256 {
                path,
                value: truncated(sha256_hex),
            });
        }
        self.files.insert(path, (sha, size));
        Ok(())
    }

    /// Starts streaming a file: the path is checked now, so a bad or duplicate
    /// name fails before any byte is read. Feed the returned [`PendingFile`] and
    /// call [`PendingFile::finish`] to add it.
    pub fn begin_file(&mut self, path: &str) -> Result<PendingFile<'_>, ManifestError> {
        let path = self.check_new_path(path)?;
        Ok(PendingFile {
            builder: self,
            path,
            hasher: FileHasher::new(),
        })
    }

    fn check_new_path(&self, raw: &str) -> Result<String, ManifestError> {
        let path = normalize_path(raw)?;
        if self.files.contains_key(&path) {
            return Err(ManifestError::DuplicatePath { path });
        }
        Ok(path)
    }

    /// Takes a file added with `add_file` out again (by the path given there); a no-op for a
    /// path that was not added.
    pub fn remove_file(&mut self, path: &str) {
        if let Ok(p) = normalize_path(path) {
            self.files.remove(&p);
        }
    }

    /// The finished manifest (fails if no file was added).
    pub fn finish(self) -> Result<Manifest, ManifestError> {
        let files = self
            .files
            .into_iter()
            .map(|(path, (sha256, size))| FileEntry { path, sha256, size })
            .collect();
        // Everything was checked on the way in; from_sorted only sums and hashes.
        Manifest::from_sorted(files)
    }
}

/// A file being streamed into a [`ManifestBuilder`].
#[derive(Debug)]
pub struct PendingFile<'a> {
    builder: &'a mut ManifestBuilder,
    path: String,
    hasher: FileHasher,
}

impl PendingFile<'_> {
    /// The normalised path this file will be recorded under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Feeds the next chunk of the file.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// Bytes fed so far (for progress reporting).
    pub fn bytes_hashed(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// Adds the file to the builder and returns its entry.
    pub fn finish(self) -> FileEntry {
        let (sha256, size) = self.hasher.finish();
        self.builder
            .files
            .insert(self.path.clone(), (sha256.clone(), size));
        FileEntry {
            path: self.path,
            sha256,
            size,
        }
    }
}

/// A validated dataset version manifest: its files sorted by path bytes, and
/// its DPM-1 id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    files: Vec<FileEntry>,
    digest: String,
    total_bytes: u64,
}

impl Manifest {
    /// Builds a manifest from entries in any order, strictly: paths must
    /// already be canonical ([`validate_path`]), hashes lowercase hex, no path
    /// twice. This is what the server runs on a submitted manifest.
    pub fn from_entries(mut entries: Vec<FileEntry>) -> Result<Manifest, ManifestError> {
        for entry in &entries {
            validate_path(&entry.path)?;
            if !is_lower_hex64(&entry.sha256) {
                return Err(ManifestError::InvalidSha256 {
                    path: entry.path.clone(),
                    value: truncated(&entry.sha256),
                });
            }
        }
        // `str`'s ordering is the ordering of its UTF-8 bytes, as DPM-1 requires.
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        if let Some(pair) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(ManifestError::DuplicatePath {
                path: pair[0].path.clone(),
            });
        }
        Manifest::from_sorted(entries)
    }

    /// `files` must be valid, sorted and without duplicates.
    fn from_sorted(files: Vec<FileEntry>) -> Result<Manifest, ManifestError> {
        if files.is_empty() {
            return Err(ManifestError::NoFiles);
        }
        let mut total_bytes: u64 = 0;
        let mut hasher = Sha256::new();
        for f in &files {
            total_bytes =
                total_bytes
                    .checked_add(f.size)
                    .ok_or_else(|| ManifestError::SizeOverflow {
                        path: f.path.clone(),
                    })?;
            hash_line(&mut hasher, f);
        }
        let digest = format!("{DIGEST_PREFIX}{}", hex::encode(hasher.finalize()));
        Ok(Manifest {
            files,
            digest,
            total_bytes,
        })
    }

    /// The files, sorted by the UTF-8 bytes of their paths.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Consumes the manifest, returning its sorted files.
    pub fn into_files(self) -> Vec<FileEntry> {
        self.files
    }

    /// The dataset version id, `sha256:<64 lowercase hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Always false: a manifest has at least one file. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The exact bytes whose SHA-256 is the digest (the `sha256sum` listing),
    /// for audits and debugging.
    pub fn digest_input(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            out.push_str(&f.sha256);
            out.push_str("  ");
            out.push_str(&f.path);
            out.push('\n');
        }
        out
    }

    /// Compares a claimed id with the recomputed one (the server's check
    /// before registering a version).
    pub fn check_digest(&self, claimed: &str) -> Result<(), ManifestError> {
        validate_digest(claimed)?;
        if claimed != self.digest {
            return Err(ManifestError::DigestMismatch {
                claimed: claimed.to_owned(),
                computed: self.digest.clone(),
            });
        }
        Ok(())
    }
}

fn hash_line(hasher: &mut Sha256, f: &FileEntry) {
    hasher.update(f.sha256.as_bytes());
    hasher.update(b"  ");
    hasher.update(f.path.as_bytes());
    hasher.update(b"\n");
}

/// The DPM-1 id of a set of files given in any order, with the strict checks
/// of [`Manifest::from_entries`].
pub fn dataset_digest(entries: &[FileEntry]) -> Result<String, ManifestError> {
    Manifest::from_entries(entries.to_vec()).map(|m| m.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_sha256_in_the_other_spelling_gets_a_hint() {
        let prefixed = format!("{DIGEST_PREFIX}{EMPTY_SHA}");
        assert!(spelling_hint(&prefixed, Sha256Spelling::BareHex).contains("drop the"));
        assert!(spelling_hint(EMPTY_SHA, Sha256Spelling::Prefixed).contains("add the"));
        // Right spelling, or not a SHA-256 at all: nothing to hint.
        assert_eq!(spelling_hint(EMPTY_SHA, Sha256Spelling::BareHex), "");
        assert_eq!(spelling_hint(&prefixed, Sha256Spelling::Prefixed), "");
        assert_eq!(spelling_hint("xyz", Sha256Spelling::Prefixed), "");
        assert_eq!(
            spelling_hint(&EMPTY_SHA.to_uppercase(), Sha256Spelling::Prefixed),
            ""
        );
        let e = validate_digest(EMPTY_SHA).unwrap_err().to_string();
        assert!(e.contains("add the \"sha256:\" prefix"), "{e}");
    }

    fn entry(path: &str, content: &[u8]) -> FileEntry {
        let mut h = FileHasher::new();
        h.update(content);
        let (sha256, size) = h.finish();
        FileEntry {
            path: path.to_owned(),
            sha256,
            size,
        }
    }

    fn problem(path: &str) -> PathProblem {
        match validate_path(path) {
            Err(ManifestError::InvalidPath { problem, path: p }) => {
                assert_eq!(p, path);
                problem
            }
            other => panic!("{path:?}: expected InvalidPath, got {other:?}"),
        }
    }

    #[test]
    fn path_rules() {
        for ok in [
            "a",
            "a/b/c.csv",
            ".hidden",
            "dir/.hidden",
            "..a",
            "a..",
            "...",
            "with space/x y.txt",
            "données/é.csv",
            "a:b*?\"<>|",
        ] {
            validate_path(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            assert_eq!(normalize_path(ok).unwrap(), ok);
        }
        assert_eq!(problem(""), PathProblem::Empty);
        assert_eq!(problem("/a"), PathProblem::Absolute);
        assert_eq!(problem("a//b"), PathProblem::EmptySegment);
        assert_eq!(problem("a/"), PathProblem::EmptySegment);
        assert_eq!(problem("./a"), PathProblem::DotSegment);
        assert_eq!(problem("a/./b"), PathProblem::DotSegment);
        assert_eq!(problem("."), PathProblem::DotSegment);
        assert_eq!(problem("../a"), PathProblem::DotDotSegment);
        assert_eq!(problem("a/.."), PathProblem::DotDotSegment);
        assert_eq!(problem("a\0b"), PathProblem::Nul);
        assert_eq!(problem("a\nb"), PathProblem::Newline);
        assert_eq!(problem("a\rb"), PathProblem::Newline);
        assert_eq!(problem("a\\b"), PathProblem::Backslash);
        assert_eq!(problem("e\u{301}.csv"), PathProblem::NotNfc);
        assert_eq!(
            problem(&"é".repeat(MAX_PATH_CHARS + 1)),
            PathProblem::TooLong
        );
        validate_path(&"é".repeat(MAX_PATH_CHARS)).unwrap();
    }

    #[test]
    fn normalize_converts_to_nfc() {
        let nfd = "donne\u{301}es/e\u{301}.csv";
        assert_eq!(normalize_path(nfd).unwrap(), "données/é.csv");
        // Hangul and singleton decompositions too.
        assert_eq!(normalize_path("\u{1100}\u{1161}").unwrap(), "\u{AC00}");
        assert_eq!(normalize_path("\u{212B}").unwrap(), "\u{C5}");
        // Invalid stays invalid after normalisation, and the error names the raw path.
        assert_eq!(
            normalize_path("e\u{301}/../x"),
            Err(ManifestError::InvalidPath {
                path: "e\u{301}/../x".into(),
                problem: PathProblem::DotDotSegment
            })
        );
    }

    #[test]
    fn file_hasher_chunking_is_irrelevant() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = FileHasher::new();
        whole.update(&data);
        let mut chunked = FileHasher::new();
        for c in data.chunks(333) {
            chunked.update(c);
        }
        chunked.update(&[]);
        assert_eq!(chunked.bytes_hashed(), 10_000);
        assert_eq!(whole.finish(), chunked.finish());
        assert_eq!(FileHasher::new().finish(), (EMPTY_SHA.to_owned(), 0));
    }

    #[test]
    fn digest_matches_sha256sum_listing() {
        // sha256sum of "hello\n" and of "".
        let m =
            Manifest::from_entries(vec![entry("b/x", b""), entry("a.txt", b"hello\n")]).unwrap();
        let listing = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  a.txt\n\
                       e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b/x\n";
        assert_eq!(m.digest_input(), listing);
        let want = format!("sha256:{}", hex::encode(Sha256::digest(listing.as_bytes())));
        assert_eq!(m.digest(), want);
        assert_eq!(m.total_bytes(), 6);
        assert_eq!(m.files()[0].path, "a.txt");
        assert_eq!(dataset_digest(m.files()).unwrap(), want);
        m.check_digest(&want).unwrap();
    }

    #[test]
    fn sort_is_by_utf8_bytes() {
        // 'B' (0x42) < '_' (0x5f) < 'a' (0x61) < 'é' (0xc3 0xa9); "a" < "a/b" < "a0".
        let names = ["é", "a0", "a/b", "a", "_", "B"];
        let m =
            Manifest::from_entries(names.iter().map(|n| entry(n, n.as_bytes())).collect()).unwrap();
        let got: Vec<&str> = m.files().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(got, ["B", "_", "a", "a/b", "a0", "é"]);
    }

    #[test]
    fn builder_equals_from_entries_in_any_order() {
        let entries = vec![
            entry("z", b"1"),
            entry("données/é.csv", b"2"),
            entry("a/b", b"3"),
        ];
        let strict = Manifest::from_entries(entries.clone()).unwrap();
        let mut rev = entries.clone();
        rev.reverse();
        assert_eq!(Manifest::from_entries(rev).unwrap(), strict);

        let mut b = ManifestBuilder::new();
        for e in entries.iter().rev() {
            // Feed NFD paths and uppercase hex: the builder canonicalises both.
            // (spelt out: on wasm32 the normalisation tables are the host's, not a crate's).
            let nfd = e.path.replace('\u{e9}', "e\u{301}");
            b.add_file(&nfd, &e.sha256.to_uppercase(), e.size).unwrap();
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.finish().unwrap(), strict);
    }

    #[test]
    fn builder_streaming() {
        let mut b = ManifestBuilder::new();
        let mut p = b.begin_file("e\u{301}.csv").unwrap();
        assert_eq!(p.path(), "é.csv");
        p.update(b"hel");
        p.update(b"lo\n");
        assert_eq!(p.bytes_hashed(), 6);
        let e = p.finish();
        assert_eq!(e, entry("é.csv", b"hello\n"));
        assert!(matches!(
            b.begin_file("é.csv"),
            Err(ManifestError::DuplicatePath { .. })
        ));
        let m = b.finish().unwrap();
        assert_eq!(m.files(), [e]);
    }

    #[test]
    fn builder_rejections() {
        let mut b = ManifestBuilder::new();
        b.add_file("é", EMPTY_SHA, 0).unwrap();
        assert_eq!(
            b.add_file("e\u{301}", EMPTY_SHA, 0),
            Err(ManifestError::DuplicatePath { path: "é".into() })
        );
        assert!(matches!(
            b.add_file("x", "abc", 0),
            Err(ManifestError::InvalidSha256 { path, .. }) if path == "x"
        ));
        assert!(matches!(
            b.add_file("x", &"g".repeat(64), 0),
            Err(ManifestError::InvalidSha256 { .. })
        ));
        assert!(matches!(
            b.add_file("../x", EMPTY_SHA, 0),
            Err(ManifestError::InvalidPath { .. })
        ));
        assert_eq!(ManifestBuilder::new().finish(), Err(ManifestError::NoFiles));
    }

    #[test]
    fn strict_rejections() {
        let good = entry("a", b"");
        let mut upper = good.clone();
        upper.sha256 = upper.sha256.to_uppercase();
        assert!(matches!(
            Manifest::from_entries(vec![upper]),
            Err(ManifestError::InvalidSha256 { .. })
        ));
        let nfd = entry("e\u{301}", b"");
        assert!(matches!(
            Manifest::from_entries(vec![nfd]),
            Err(ManifestError::InvalidPath {
                problem: PathProblem::NotNfc,
                ..
            })
        ));
        assert_eq!(
            Manifest::from_entries(vec![good.clone(), entry("b", b""), good.clone()]),
            Err(ManifestError::DuplicatePath { path: "a".into() })
        );
        assert_eq!(Manifest::from_entries(vec![]), Err(ManifestError::NoFiles));
        let mut big = entry("b", b"");
        big.size = u64::MAX;
        let mut one = good.clone();
        one.size = 1;
        assert_eq!(
            Manifest::from_entries(vec![one, big]),
            Err(ManifestError::SizeOverflow { path: "b".into() })
        );
    }

    #[test]
    fn digest_checks() {
        let m = Manifest::from_entries(vec![entry("a", b"x")]).unwrap();
        assert!(matches!(
            m.check_digest("sha256:00"),
            Err(ManifestError::InvalidDigest { .. })
        ));
        let other = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            m.check_digest(&other),
            Err(ManifestError::DigestMismatch { .. })
        ));
        assert!(validate_digest(&m.digest().to_uppercase()).is_err());
        validate_digest(m.digest()).unwrap();
    }

    #[test]
    fn serde_shape() {
        let e = entry("a", b"");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"path":"a","sha256":"{EMPTY_SHA}","size":0}}"#)
        );
        let back: FileEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
