//! DPM-1 digests of data that is never held whole: `File`, `Blob`, `FileList`, dropped
//! directories, and the `DigestBuilder` class the Node entry feeds with `node:crypto` hashes.
//!
//! A `Blob` is read in slices (`blob.slice(a, b).arrayBuffer()`, 4 MiB by default) and each
//! slice is hashed by the core's [`FileHasher`] (sha2 at `opt-level = 3`) while the next slice
//! is already being read, so at most two chunks are in memory at a time. Progress callbacks
//! receive `{ bytesHashed, totalBytes, filesHashed, totalFiles, path }` after every chunk.
//! The manifest itself is built by the core's [`ManifestBuilder`] (NFC paths, DPM-1 rules,
//! duplicates rejected), so the browser, Node and native paths give one digest.

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::client::rejecting;
use super::error::{invalid_argument, verification_failed};
use super::{opt, signal, to_js};
use crate::manifest::{normalize_path, FileHasher, ManifestBuilder};
use crate::model::datasets::FileEntry;

/// Bytes copied from a slice into wasm memory and hashed at a time (stays in cache).
const PIECE: u32 = 64 << 10;

/// Slice reads of a `Blob` kept in flight while hashing.
const READ_AHEAD: usize = 2;

/// Default slice size for reading blobs.
pub(crate) const DEFAULT_CHUNK: f64 = (4 << 20) as f64;

/// The result of hashing a dataset: its DPM-1 id and manifest, ready for
/// `registerDatasetVersion({ digest, files })`.
#[derive(Debug, Serialize, tsify::Tsify)]
pub struct DatasetDigest {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Every file, sorted by path bytes.
    pub files: Vec<FileEntry>,
    /// Sum of the file sizes.
    pub total_bytes: u64,
    /// Files and folders left out by the ignore rules (`.git/`, `.datapilotignore`); set by
    /// `hashFiles` and the Node `hashDirectory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub excluded: Option<u64>,
}

/// The SHA-256 and size of one blob.
#[derive(Debug, Serialize, tsify::Tsify)]
pub struct BlobHash {
    /// 64 lowercase hex.
    pub sha256: String,
    /// Bytes hashed.
    pub size: u64,
}

fn manifest_out(b: ManifestBuilder, excluded: Option<u64>) -> Result<JsValue, JsValue> {
    let m = b.finish().map_err(|e| invalid_argument(&e.to_string()))?;
    let total_bytes = m.total_bytes();
    let digest = m.digest().to_owned();
    let files = m
        .into_files()
        .into_iter()
        .map(|f| FileEntry {
            path: f.path,
            sha256: f.sha256,
            size: f.size,
        })
        .collect();
    to_js(&DatasetDigest {
        digest,
        files,
        total_bytes,
        excluded,
    })
}

/// Reads `[start, end)` of `blob`.
pub(crate) async fn read_slice(
    blob: &web_sys::Blob,
    start: f64,
    end: f64,
) -> Result<Uint8Array, JsValue> {
    let part = blob.slice_with_f64_and_f64(start, end)?;
    let buf = JsFuture::from(part.array_buffer()).await?;
    Ok(Uint8Array::new(&buf))
}

/// Progress and cancellation shared by the hashing loops.
pub(crate) struct Progress {
    callback: Option<js_sys::Function>,
    /// Report as an upload's `{ phase: "hashing", bytes, totalBytes }` instead.
    upload: bool,
    signal: Option<web_sys::AbortSignal>,
    chunk: f64,
    pub bytes: f64,
    pub total_bytes: f64,
    pub files: u32,
    pub total_files: u32,
}

impl Progress {
    pub(crate) fn from_options(options: &JsValue) -> Result<Self, JsValue> {
        let cb = opt(options, "onProgress");
        let callback = if cb.is_undefined() || cb.is_null() {
            None
        } else {
            Some(
                cb.dyn_into::<js_sys::Function>()
                    .map_err(|_| invalid_argument("onProgress must be a function"))?,
            )
        };
        let chunk = match opt(options, "chunkSize").as_f64() {
            Some(c) if c >= 1024.0 && c <= (256 << 20) as f64 => c.floor(),
            Some(_) => return Err(invalid_argument("chunkSize must be 1 KiB to 256 MiB")),
            None => DEFAULT_CHUNK,
        };
        Ok(Self {
            callback,
            upload: false,
            signal: signal::signal_from(&opt(options, "signal"))?,
            chunk,
            bytes: 0.0,
            total_bytes: 0.0,
            files: 0,
            total_files: 0,
        })
    }

    /// Progress of the hashing phase of an artifact upload.
    pub(crate) fn for_upload(on_progress: &JsValue) -> Self {
        Self {
            callback: on_progress.dyn_ref::<js_sys::Function>().cloned(),
            upload: true,
            signal: None,
            chunk: DEFAULT_CHUNK,
            bytes: 0.0,
            total_bytes: 0.0,
            files: 0,
            total_files: 0,
        }
    }

    fn check_abort(&self) -> Result<(), JsValue> {
        match &self.signal {
            Some(s) if s.aborted() => Err(s.reason()),
            _ => Ok(()),
        }
    }

    fn report(&self, path: &str) -> Result<(), JsValue> {
        if let Some(cb) = &self.callback {
            let o = Object::new();
            if self.upload {
                let _ = Reflect::set(&o, &"phase".into(), &"hashing".into());
                let _ = Reflect::set(&o, &"bytes".into(), &self.bytes.into());
                let _ = Reflect::set(&o, &"totalBytes".into(), &self.total_bytes.into());
                cb.call1(&JsValue::NULL, &o)?;
                return Ok(());
            }
            let _ = Reflect::set(&o, &"bytesHashed".into(), &self.bytes.into());
            let _ = Reflect::set(&o, &"totalBytes".into(), &self.total_bytes.into());
            let _ = Reflect::set(&o, &"filesHashed".into(), &self.files.into());
            let _ = Reflect::set(&o, &"totalFiles".into(), &self.total_files.into());
            let _ = Reflect::set(&o, &"path".into(), &path.into());
            cb.call1(&JsValue::NULL, &o)?;
        }
        Ok(())
    }

    /// Hashes `blob` in slices, reading the next slice while hashing the current one.
    pub(crate) async fn hash_blob(
        &mut self,
        blob: &web_sys::Blob,
        path: &str,
    ) -> Result<(String, u64), JsValue> {
        let size = blob.size();
        let mut hasher = FileHasher::new();
        let mut buf: Vec<u8> = Vec::new();
        let read = |start: f64| -> Result<JsFuture, JsValue> {
            let end = (start + self.chunk).min(size);
            Ok(JsFuture::from(
                blob.slice_with_f64_and_f64(start, end)?.array_buffer(),
            ))
        };
        // Up to READ_AHEAD slice reads in flight: the runtime reads (from disk, or copies in a
        // worker thread in Node) while the current slice is hashed.
        let mut requested = 0.0;
        let mut pending = std::collections::VecDeque::new();
        while pending.len() < READ_AHEAD && requested < size {
            pending.push_back(read(requested)?);
            requested = (requested + self.chunk).min(size);
        }
        while let Some(slice) = pending.pop_front() {
            self.check_abort()?;
            let array = Uint8Array::new(&slice.await?);
            let len = array.length() as usize;
            if len == 0 {
                return Err(verification_failed(&format!(
                    "{path}: file changed while reading"
                )));
            }
            if requested < size {
                pending.push_back(read(requested)?);
                requested = (requested + self.chunk).min(size);
            }
            // Copied into wasm memory in cache-sized pieces and hashed right away, so the hash
            // reads bytes still in cache instead of a cold 4 MiB copy.
            buf.resize(PIECE as usize, 0);
            let mut at = 0u32;
            while (at as usize) < len {
                let end = (at + PIECE).min(len as u32);
                let n = (end - at) as usize;
                array.subarray(at, end).copy_to(&mut buf[..n]);
                hasher.update(&buf[..n]);
                at = end;
            }
            self.bytes += len as f64;
            self.report(path)?;
        }
        let (sha, n) = hasher.finish();
        if n as f64 != size {
            return Err(verification_failed(&format!(
                "{path}: file changed while reading"
            )));
        }
        Ok((sha, n))
    }
}

/// `hashBlob(blob, options?)`: the SHA-256 of a `Blob`/`File`, streamed in chunks.
#[wasm_bindgen(js_name = hashBlob, unchecked_return_type = "BlobHash")]
pub async fn hash_blob(
    #[wasm_bindgen(unchecked_param_type = "Blob")] blob: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "HashOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let blob: web_sys::Blob = blob
        .dyn_into()
        .map_err(|_| invalid_argument("hashBlob expects a Blob or File"))?;
    let mut p = Progress::from_options(&options)?;
    p.total_bytes = blob.size();
    p.total_files = 1;
    let (sha256, size) = p.hash_blob(&blob, "").await?;
    p.files = 1;
    to_js(&BlobHash { sha256, size })
}

/// `sha256Hex(bytes)`: the SHA-256 of bytes in memory, as 64 lowercase hex.
#[wasm_bindgen(js_name = sha256Hex)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = FileHasher::new();
    h.update(bytes);
    h.finish().0
}

/// The path a `File` gets in a manifest: its `webkitRelativePath` below the chosen directory
/// (the first segment is the directory's own name), else its name.
fn file_path(blob: &JsValue) -> Result<String, JsValue> {
    let rel = opt(blob, "webkitRelativePath")
        .as_string()
        .unwrap_or_default();
    if !rel.is_empty() {
        return Ok(match rel.split_once('/') {
            Some((_, rest)) => rest.to_owned(),
            None => rel,
        });
    }
    opt(blob, "name")
        .as_string()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_argument("a Blob without a name needs { path, file }"))
}

/// `(path, blob)` pairs from a `FileList`, an array of `File`s or of `{ path, file }`.
fn collect_inputs(files: &JsValue) -> Result<Vec<(String, web_sys::Blob)>, JsValue> {
    let iter = js_sys::try_iter(files)?
        .ok_or_else(|| invalid_argument("expected a FileList or an array"))?;
    let mut out = Vec::new();
    for item in iter {
        let item = item?;
        if item.is_instance_of::<web_sys::Blob>() {
            let path = file_path(&item)?;
            out.push((path, item.unchecked_into()));
        } else {
            let path = opt(&item, "path")
                .as_string()
                .ok_or_else(|| invalid_argument("each entry needs a string path"))?;
            let file = opt(&item, "file")
                .dyn_into::<web_sys::Blob>()
                .map_err(|_| invalid_argument("each entry needs a Blob file"))?;
            out.push((path, file));
        }
    }
    Ok(out)
}

/// `hashFiles(files, options?)`: the DPM-1 digest of a `FileList` (e.g. from
/// `<input type="file" webkitdirectory>`), an array of `File`s or of `{ path, file }`.
#[wasm_bindgen(js_name = hashFiles, unchecked_return_type = "DatasetDigest")]
pub async fn hash_files(
    #[wasm_bindgen(unchecked_param_type = "FileList | Iterable<File | DatasetFile>")]
    files: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "HashOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let mut inputs = collect_inputs(&files)?;
    // The dataset's ignore file (at the root of the pick) and `.git/`, as every client applies
    // them (`crate::ignore`), unless `ignore: false`.
    let excluded = if opt(&options, "ignore").as_bool() != Some(false) {
        let rules = picked_ignore_rules(&inputs).await?;
        let before = inputs.len();
        inputs.retain(|(path, _)| {
            let nfc = normalize_path(path).unwrap_or_else(|_| path.clone());
            !rules.excludes(&nfc)
        });
        before - inputs.len()
    } else {
        0
    };
    if inputs.is_empty() {
        return Err(invalid_argument(if excluded > 0 {
            "nothing to hash: every file is excluded by .datapilotignore or the default rules (.git/)"
        } else {
            "nothing to hash: no files were given (an empty folder has no DPM-1 id)"
        }));
    }
    let mut p = Progress::from_options(&options)?;
    p.total_files = inputs.len() as u32;
    p.total_bytes = inputs.iter().map(|(_, b)| b.size()).sum();
    let mut builder = ManifestBuilder::new();
    // Check every path before reading any byte.
    let mut normalized = Vec::with_capacity(inputs.len());
    for (path, _) in &inputs {
        normalized.push(normalize_path(path).map_err(|e| invalid_argument(&e.to_string()))?);
    }
    // Small files are read many at a time: one `Blob` made of up to BATCH_FILES of them, read
    // with one `arrayBuffer()`. In Chromium each read is a round trip to the browser process
    // (about a millisecond), which dominated folders of small files; the batch's bytes are
    // then cut by the files' sizes. Larger files are read in slices, one at a time.
    let mut i = 0;
    let mut next_batch: Option<(usize, usize, JsFuture)> = None;
    while i < inputs.len() {
        p.check_abort()?;
        let batch = match next_batch.take() {
            Some(b) if b.0 == i => Some(b),
            _ => small_batch(&inputs, i)?,
        };
        let Some((start, end, read)) = batch else {
            let (sha, size) = p.hash_blob(&inputs[i].1, &normalized[i]).await?;
            builder
                .add_file(&normalized[i], &sha, size)
                .map_err(|e| invalid_argument(&e.to_string()))?;
            p.files += 1;
            p.report(&normalized[i])?;
            i += 1;
            continue;
        };
        // The next batch is read while this one is hashed.
        next_batch = small_batch(&inputs, end)?;
        let bytes = Uint8Array::new(&read.await?).to_vec();
        let mut at = 0usize;
        for k in start..end {
            let size = inputs[k].1.size() as usize;
            let Some(file) = bytes.get(at..at + size) else {
                return Err(verification_failed(&format!(
                    "{}: file changed while reading",
                    normalized[k]
                )));
            };
            at += size;
            let mut h = FileHasher::new();
            h.update(file);
            let (sha, size) = h.finish();
            builder
                .add_file(&normalized[k], &sha, size)
                .map_err(|e| invalid_argument(&e.to_string()))?;
            p.bytes += size as f64;
            p.files += 1;
        }
        if at != bytes.len() {
            return Err(verification_failed(&format!(
                "{}: files changed while reading",
                normalized[end - 1]
            )));
        }
        p.report(&normalized[end - 1])?;
        i = end;
    }
    manifest_out(builder, Some(excluded as u64))
}

/// Files up to this size are read in batches by `hashFiles`.
const BATCH_FILE_BYTES: f64 = (256 << 10) as f64;
/// Most files in one batch read.
const BATCH_FILES: usize = 1024;
/// Most bytes in one batch read.
const BATCH_BYTES: f64 = (8 << 20) as f64;

/// The read of the small files from `start` on (until a large file or a limit), as
/// `(start, end, arrayBuffer())`; `None` when the file at `start` is not small.
fn small_batch(
    inputs: &[(String, web_sys::Blob)],
    start: usize,
) -> Result<Option<(usize, usize, JsFuture)>, JsValue> {
    let parts = Array::new();
    let mut bytes = 0.0;
    let mut end = start;
    while end < inputs.len() && end - start < BATCH_FILES {
        let size = inputs[end].1.size();
        if size > BATCH_FILE_BYTES || (end > start && bytes + size > BATCH_BYTES) {
            break;
        }
        parts.push(&inputs[end].1);
        bytes += size;
        end += 1;
    }
    if end == start {
        return Ok(None);
    }
    let blob = web_sys::Blob::new_with_blob_sequence(&parts)?;
    Ok(Some((start, end, JsFuture::from(blob.array_buffer()))))
}

/// The rules of the root `.datapilotignore` among the picked files, or the defaults.
async fn picked_ignore_rules(
    inputs: &[(String, web_sys::Blob)],
) -> Result<crate::ignore::IgnoreRules, JsValue> {
    let Some((_, blob)) = inputs
        .iter()
        .find(|(path, _)| path == crate::ignore::IGNORE_FILE)
    else {
        return Ok(crate::ignore::IgnoreRules::defaults());
    };
    if blob.size() > crate::ignore::MAX_IGNORE_FILE_BYTES as f64 {
        return Err(invalid_argument(
            &crate::ignore::IgnoreError::TooLarge.to_string(),
        ));
    }
    let buf = JsFuture::from(blob.array_buffer()).await?;
    let bytes = Uint8Array::new(&buf).to_vec();
    crate::ignore::IgnoreRules::with_file(&bytes).map_err(|e| invalid_argument(&e.to_string()))
}

// ---- IgnoreRules -----------------------------------------------------------------------------

/// A dataset's ignore rules (`.datapilotignore`, gitignore syntax, `.git/` ignored by
/// default): what the Node `hashDirectory` walk and `hashFiles` leave out. See
/// `docs/formats.md`.
#[wasm_bindgen(js_name = IgnoreRules)]
#[derive(Debug)]
pub struct JsIgnoreRules(crate::ignore::IgnoreRules);

#[wasm_bindgen(js_class = IgnoreRules)]
impl JsIgnoreRules {
    /// The default rules only (a directory without an ignore file).
    pub fn defaults() -> JsIgnoreRules {
        JsIgnoreRules(crate::ignore::IgnoreRules::defaults())
    }

    /// The defaults followed by the lines of an ignore file's bytes.
    #[wasm_bindgen(js_name = fromFile)]
    pub fn from_file(bytes: &[u8]) -> Result<JsIgnoreRules, JsValue> {
        crate::ignore::IgnoreRules::with_file(bytes)
            .map(JsIgnoreRules)
            .map_err(|e| invalid_argument(&e.to_string()))
    }

    /// Whether `path` (relative, `/`-separated, NFC) is ignored on its own: what a walk asks
    /// before entering a directory or hashing a file.
    #[wasm_bindgen(js_name = isIgnored)]
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        self.0.is_ignored(path, is_dir)
    }

    /// Whether `path` or a directory above it is ignored (for a flat list of files).
    pub fn excludes(&self, path: &str) -> bool {
        self.0.excludes(path)
    }
}

// ---- dropped directories ----------------------------------------------------------------------

async fn read_entries(reader: &web_sys::FileSystemDirectoryReader) -> Result<Array, JsValue> {
    let mut failed = None;
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if let Err(e) = reader.read_entries_with_callback_and_callback(&resolve, &reject) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

async fn entry_file(entry: &web_sys::FileSystemFileEntry) -> Result<web_sys::File, JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        entry.file_with_callback_and_callback(&resolve, &reject);
    });
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

async fn walk(
    root: web_sys::FileSystemEntry,
    prefix: String,
    out: &mut Vec<(String, web_sys::File)>,
) -> Result<(), JsValue> {
    // Depth-first with an explicit stack (no recursive async fn).
    let mut stack = vec![(root, prefix)];
    while let Some((entry, path)) = stack.pop() {
        if entry.is_file() {
            let file = entry_file(entry.unchecked_ref()).await?;
            out.push((path, file));
        } else if entry.is_directory() {
            let dir: &web_sys::FileSystemDirectoryEntry = entry.unchecked_ref();
            let reader = dir.create_reader();
            // readEntries returns batches until an empty one.
            loop {
                let batch = read_entries(&reader).await?;
                if batch.length() == 0 {
                    break;
                }
                for child in batch.iter() {
                    let child: web_sys::FileSystemEntry = child.unchecked_into();
                    let name = child.name();
                    let child_path = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((child, child_path));
                }
            }
        }
    }
    Ok(())
}

/// `filesFromDataTransfer(dataTransfer)`: the files of a drop, with paths. Call it
/// synchronously inside the `drop` handler (the browser empties the items afterwards); await
/// it later. One dropped directory gives paths relative to it; several items give paths that
/// start with each item's name.
#[wasm_bindgen(js_name = filesFromDataTransfer, unchecked_return_type = "Promise<DatasetFile[]>")]
pub fn files_from_data_transfer(
    #[wasm_bindgen(unchecked_param_type = "DataTransfer | DataTransferItemList")] data: JsValue,
) -> Result<js_sys::Promise, JsValue> {
    rejecting((|| {
        let items: web_sys::DataTransferItemList = match data.dyn_ref::<web_sys::DataTransfer>() {
            Some(dt) => dt.items(),
            None => data
                .dyn_into()
                .map_err(|_| invalid_argument("expected a DataTransfer or DataTransferItemList"))?,
        };
        // Entries must be taken now, while the drop event is being dispatched.
        let mut entries = Vec::new();
        for i in 0..items.length() {
            let Some(item) = items.get(i) else { continue };
            if item.kind() != "file" {
                continue;
            }
            if let Some(entry) = item.webkit_get_as_entry()? {
                entries.push(entry);
            }
        }
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let single_dir = entries.len() == 1 && entries[0].is_directory();
            let mut files = Vec::new();
            for entry in entries {
                let prefix = if single_dir {
                    String::new()
                } else {
                    entry.name()
                };
                walk(entry, prefix, &mut files).await?;
            }
            let out = Array::new();
            for (path, file) in files {
                let o = Object::new();
                Reflect::set(&o, &"path".into(), &path.into())?;
                Reflect::set(&o, &"file".into(), &file)?;
                out.push(&o);
            }
            Ok(out.into())
        }))
    })())
}

// ---- DigestBuilder ---------------------------------------------------------------------------

#[wasm_bindgen(typescript_custom_section)]
const TS_PACKED_DIGEST: &str = r#"
/** `DigestBuilder#finishPacked()`: the manifest in DPM-1 order, packed (see there). */
export interface PackedDatasetDigest {
  digest: string;
  total_bytes: number;
  /** The NFC paths joined by NUL. */
  paths: string;
  /** 64 lowercase hex per file. */
  sha256s: string;
  sizes: Float64Array;
}
"#;

/// Builds a DPM-1 digest file by file: from hashes computed elsewhere (`addFile`, what the
/// Node entry does with `node:crypto`) or from bytes streamed in (`beginFile`, `update`,
/// `endFile`). Paths are normalised to NFC and checked when added.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct DigestBuilder {
    builder: ManifestBuilder,
    pending: Option<(String, FileHasher)>,
}

#[wasm_bindgen]
impl DigestBuilder {
    /// An empty builder.
    #[wasm_bindgen(constructor)]
    pub fn new() -> DigestBuilder {
        DigestBuilder::default()
    }

    /// Adds a file whose SHA-256 (64 hex) and size are already known.
    #[wasm_bindgen(js_name = addFile)]
    pub fn add_file(&mut self, path: &str, sha256: &str, size: f64) -> Result<(), JsValue> {
        if !(size >= 0.0 && size.fract() == 0.0 && size <= crate::jcs::MAX_SAFE_INTEGER as f64) {
            return Err(invalid_argument("size must be a non-negative safe integer"));
        }
        self.builder
            .add_file(path, sha256, size as u64)
            .map_err(|e| invalid_argument(&e.to_string()))
    }

    /// Adds many files at once, for large directories: `paths` joined by NUL (`\0`, which no
    /// file path holds), their SHA-256s as one string of 64 hex each, and their sizes. The same
    /// checks as `addFile`; one call instead of one per file (the wasm boundary, not the
    /// checks, was most of `addFile`'s cost on 150,000 small files).
    #[wasm_bindgen(js_name = addFiles)]
    pub fn add_files(&mut self, paths: &str, sha256s: &str, sizes: &[f64]) -> Result<(), JsValue> {
        if sizes.is_empty() {
            return if paths.is_empty() && sha256s.is_empty() {
                Ok(())
            } else {
                Err(invalid_argument(
                    "addFiles: paths and sha256s given without sizes",
                ))
            };
        }
        if sha256s.len() != 64 * sizes.len() {
            return Err(invalid_argument(&format!(
                "addFiles: {} sizes need {} sha256 characters, got {}",
                sizes.len(),
                64 * sizes.len(),
                sha256s.len()
            )));
        }
        let count = paths.bytes().filter(|&b| b == 0).count() + 1;
        if count != sizes.len() {
            return Err(invalid_argument(&format!(
                "addFiles: {count} paths for {} sizes",
                sizes.len()
            )));
        }
        // All or nothing: a file refused half-way takes the call's earlier files out again.
        let mut added = Vec::with_capacity(count);
        for (i, path) in paths.split('\0').enumerate() {
            if let Err(e) = self.add_file(path, &sha256s[64 * i..64 * i + 64], sizes[i]) {
                for p in added {
                    self.builder.remove_file(p);
                }
                return Err(e);
            }
            added.push(path);
        }
        Ok(())
    }

    /// `finish()` in the packed form `addFiles` takes, for large directories:
    /// `{ digest, total_bytes, paths, sha256s, sizes }` with the files in DPM-1 order, `paths`
    /// NFC and joined by NUL, `sha256s` 64 hex each, `sizes` a `Float64Array`. Building the
    /// entry objects in JS from these is several times faster than `finish()` returning them.
    #[wasm_bindgen(js_name = finishPacked, unchecked_return_type = "PackedDatasetDigest")]
    pub fn finish_packed(&mut self) -> Result<JsValue, JsValue> {
        if self.pending.is_some() {
            return Err(invalid_argument("endFile() the current file first"));
        }
        let m = std::mem::take(&mut self.builder)
            .finish()
            .map_err(|e| invalid_argument(&e.to_string()))?;
        let files = m.files();
        let mut paths = String::with_capacity(files.iter().map(|f| f.path.len() + 1).sum());
        let mut sha256s = String::with_capacity(64 * files.len());
        let mut sizes = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            if i > 0 {
                paths.push('\0');
            }
            paths.push_str(&f.path);
            sha256s.push_str(&f.sha256);
            sizes.push(f.size as f64);
        }
        let out = Object::new();
        Reflect::set(&out, &"digest".into(), &m.digest().into())?;
        Reflect::set(
            &out,
            &"total_bytes".into(),
            &(m.total_bytes() as f64).into(),
        )?;
        Reflect::set(&out, &"paths".into(), &paths.into())?;
        Reflect::set(&out, &"sha256s".into(), &sha256s.into())?;
        Reflect::set(
            &out,
            &"sizes".into(),
            &js_sys::Float64Array::from(sizes.as_slice()).into(),
        )?;
        Ok(out.into())
    }

    /// Starts streaming a file's bytes (the path is checked now).
    #[wasm_bindgen(js_name = beginFile)]
    pub fn begin_file(&mut self, path: &str) -> Result<(), JsValue> {
        if self.pending.is_some() {
            return Err(invalid_argument("endFile() the previous file first"));
        }
        let path = normalize_path(path).map_err(|e| invalid_argument(&e.to_string()))?;
        self.pending = Some((path, FileHasher::new()));
        Ok(())
    }

    /// Feeds the next chunk of the current file.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        match &mut self.pending {
            Some((_, h)) => {
                h.update(chunk);
                Ok(())
            }
            None => Err(invalid_argument("beginFile() first")),
        }
    }

    /// Finishes the current file and returns its entry.
    #[wasm_bindgen(js_name = endFile, unchecked_return_type = "FileEntry")]
    pub fn end_file(&mut self) -> Result<JsValue, JsValue> {
        let (path, h) = self
            .pending
            .take()
            .ok_or_else(|| invalid_argument("beginFile() first"))?;
        let (sha256, size) = h.finish();
        self.builder
            .add_file(&path, &sha256, size)
            .map_err(|e| invalid_argument(&e.to_string()))?;
        to_js(&FileEntry { path, sha256, size })
    }

    /// Files added so far.
    #[wasm_bindgen(getter, js_name = fileCount)]
    pub fn file_count(&self) -> u32 {
        self.builder.len() as u32
    }

    /// The digest and manifest (at least one file). The builder can be used again after.
    #[wasm_bindgen(unchecked_return_type = "DatasetDigest")]
    pub fn finish(&mut self) -> Result<JsValue, JsValue> {
        if self.pending.is_some() {
            return Err(invalid_argument("endFile() the current file first"));
        }
        manifest_out(std::mem::take(&mut self.builder), None)
    }
}
