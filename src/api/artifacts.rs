//! Tag `artifacts`: run outputs uploaded with a SHA-256 the server checks.
//!
//! Uploads and downloads are *transfers*: they have no overall deadline unless the caller sets
//! one, and an attempt is given up only when it stops moving for the stall timeout
//! ([`crate::retry::DEFAULT_STALL_TIMEOUT`], [`crate::ClientBuilder::stall_timeout`]).
//!
//! Downloads of any size stream ([`Client::download_artifact_stream`], natively also
//! [`Client::download_artifact_to_file`]): the bytes are hashed as they arrive and checked
//! against the sha256 the run recorded for the artifact. The last chunk is held back until
//! the check passed, so a reader that has seen the end of the stream has seen verified bytes,
//! and a mismatch is an [`Error::Verification`] before the end.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Operation, WriteOperation};
use crate::client::{body_error, path, Call, Client, RequestOptions, OCTET_STREAM};
use crate::error::{Error, Result};
use crate::model::artifacts::{Artifact, ArtifactContent};
use crate::pagination::Pager;
use crate::transport::{headers, Body, BoxFuture, MaybeSend, MaybeSync, Response, ResponseBody};
#[cfg(feature = "native")]
use crate::transport::{BodyError, BodySource, ChunkReader};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn upload_call(run_id: &str, name: &str, sha256: &str, body: Body) -> Result<Call> {
    if !is_sha256_hex(sha256) {
        return Err(Error::build(format!(
            "sha256 must be 64 lowercase hex characters{}",
            crate::manifest::spelling_hint(sha256, crate::manifest::Sha256Spelling::BareHex)
        )));
    }
    if name.is_empty() || name.len() > 255 {
        return Err(Error::build("artifact name must be 1-255 characters"));
    }
    let mut call = Call::post(path(&["runs", run_id, "artifacts"])?)
        .query("name", name)
        .query("sha256", sha256)
        .transfer();
    call.body = body;
    call.content_type = Some(OCTET_STREAM);
    Ok(call)
}

/// Checks downloaded bytes against the server's `X-Content-SHA256`.
fn checked_content(resp: Response) -> Result<ArtifactContent> {
    let sha256 = resp.headers.get(headers::CONTENT_SHA256).map(str::to_owned);
    if let Some(expected) = &sha256 {
        let actual = hex::encode(Sha256::digest(&resp.body));
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(Error::Verification(format!(
                "artifact content hashes to {actual}, server announced {expected}"
            )));
        }
    }
    Ok(ArtifactContent {
        bytes: resp.body,
        sha256,
    })
}

impl Client {
    /// `uploadArtifact` — `POST /v1/runs/{run_id}/artifacts?name=&sha256=`.
    ///
    /// `sha256` (64 lowercase hex) must be the digest of `body`; the server hashes while it
    /// streams and keeps nothing on mismatch (`digest_mismatch`). Use [`Body::Stream`] for
    /// large files so they are read in chunks (and re-read from the start on a retry).
    pub fn upload_artifact(
        &self,
        run_id: &str,
        name: &str,
        sha256: &str,
        body: Body,
    ) -> WriteOperation<Artifact> {
        WriteOperation::json(self, upload_call(run_id, name, sha256, body))
    }

    /// Uploads in-memory bytes, computing their SHA-256.
    pub fn upload_artifact_bytes(
        &self,
        run_id: &str,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> WriteOperation<Artifact> {
        let bytes = bytes.into();
        let sha = hex::encode(Sha256::digest(&bytes));
        self.upload_artifact(run_id, name, &sha, Body::Bytes(bytes.into()))
    }

    /// `uploadArtifact` of a file, streamed (native): `send()` hashes it, then uploads it in
    /// chunks, so memory stays flat whatever its size. A file that cannot be read is an
    /// [`Error::Build`] naming the path (nothing was sent); a file that changes between the
    /// two passes fails the upload.
    #[cfg(feature = "native")]
    pub fn upload_artifact_file(
        &self,
        run_id: &str,
        name: &str,
        path: impl AsRef<std::path::Path>,
    ) -> FileUpload {
        FileUpload {
            client: self.clone(),
            run_id: run_id.to_owned(),
            name: name.to_owned(),
            path: path.as_ref().to_path_buf(),
            options: crate::RequestOptions::default(),
            progress: None,
        }
    }

    /// `listArtifacts` — `GET /v1/runs/{run_id}/artifacts`.
    pub fn list_artifacts(&self, run_id: &str) -> Pager<Artifact> {
        Pager::new(
            self.clone(),
            path(&["runs", run_id, "artifacts"]),
            Vec::new(),
        )
    }

    /// `getArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}`.
    pub fn get_artifact(&self, run_id: &str, artifact_id: &str) -> Operation<Artifact> {
        let call = path(&["runs", run_id, "artifacts", artifact_id]).map(Call::get);
        Operation::json(self, call)
    }

    /// `downloadArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}/content`, read whole
    /// into memory: for small artifacts. The bytes are checked against the server's
    /// `X-Content-SHA256` ([`Error::Verification`] if they differ); compare with the
    /// artifact's recorded `sha256` for end-to-end assurance, or use
    /// [`Self::download_artifact_stream`], which does both and holds nothing whole.
    pub fn download_artifact(&self, run_id: &str, artifact_id: &str) -> Operation<ArtifactContent> {
        let call = content_call(run_id, artifact_id);
        Operation::new(self, call, checked_content)
    }

    /// `downloadArtifact`, streamed: `send()` reads the artifact's metadata, starts the
    /// download and returns an [`ArtifactStream`] whose chunks are checked against the
    /// recorded sha256 and size as they arrive (the last one only once the check passed).
    /// Memory stays at one chunk whatever the size.
    pub fn download_artifact_stream(
        &self,
        run_id: &str,
        artifact_id: &str,
    ) -> DownloadArtifactStream {
        DownloadArtifactStream {
            client: self.clone(),
            run_id: run_id.to_owned(),
            artifact_id: artifact_id.to_owned(),
            options: RequestOptions::default(),
            progress: None,
        }
    }

    /// Downloads an artifact into the file `path` (native): streamed into a temporary file
    /// next to it, which is renamed to `path` only once the bytes matched the recorded sha256.
    /// On any error the temporary file is removed and `path` is untouched.
    #[cfg(feature = "native")]
    pub fn download_artifact_to_file(
        &self,
        run_id: &str,
        artifact_id: &str,
        path: impl AsRef<std::path::Path>,
    ) -> DownloadToFile {
        DownloadToFile {
            download: self.download_artifact_stream(run_id, artifact_id),
            path: path.as_ref().to_path_buf(),
        }
    }
}

fn content_call(run_id: &str, artifact_id: &str) -> Result<Call> {
    path(&["runs", run_id, "artifacts", artifact_id, "content"])
        .map(|p| Call::get(p).accept(OCTET_STREAM).transfer())
}

/// Hears how a transfer progresses: `(bytes so far, total bytes)`. Any
/// `Fn(u64, u64) + Send + Sync` (on wasm32 no `Send`/`Sync`) is one.
pub trait ProgressSink: MaybeSend + MaybeSync {
    /// `bytes` of `total` moved.
    fn progress(&self, bytes: u64, total: u64);
}

impl<F: Fn(u64, u64) + MaybeSend + MaybeSync> ProgressSink for F {
    fn progress(&self, bytes: u64, total: u64) {
        self(bytes, total)
    }
}

/// A streamed download, before it starts ([`Client::download_artifact_stream`]).
#[must_use = "a download does nothing until `.send().await`"]
pub struct DownloadArtifactStream {
    client: Client,
    run_id: String,
    artifact_id: String,
    options: RequestOptions,
    progress: Option<Arc<dyn ProgressSink>>,
}

impl std::fmt::Debug for DownloadArtifactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadArtifactStream")
            .field("run_id", &self.run_id)
            .field("artifact_id", &self.artifact_id)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DownloadArtifactStream {
    /// Stall timeout (the client's by default).
    pub fn stall_timeout(mut self, stall: std::time::Duration) -> Self {
        self.options.stall_timeout = Some(stall);
        self
    }

    /// Overall deadline of the download, from the first request to the last byte (none by
    /// default).
    pub fn deadline(mut self, deadline: std::time::Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// Replaces all per-call options.
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Called with `(bytes received, total bytes)` as chunks arrive.
    pub fn on_progress(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// Reads the artifact's metadata, then starts the download: returns once the answer's
    /// head is in (retried like any read until then).
    pub async fn send(self) -> Result<ArtifactStream> {
        if self.options.idempotency_key.is_some() {
            return Err(Error::build("a download takes no Idempotency-Key"));
        }
        let meta_options = RequestOptions {
            deadline: self.options.deadline,
            ..RequestOptions::default()
        };
        let artifact = self
            .client
            .get_artifact(&self.run_id, &self.artifact_id)
            .options(meta_options)
            .send()
            .await?;
        let mut call = content_call(&self.run_id, &self.artifact_id)?;
        call.options = self.options;
        let stall = self.client.stall_timeout_for(&call.options);
        let resp = self.client.execute_streaming(call).await?;
        if let Some(announced) = resp.headers.get(headers::CONTENT_SHA256) {
            if !announced.eq_ignore_ascii_case(&artifact.sha256) {
                return Err(Error::Verification(format!(
                    "the server announced sha256 {announced} for artifact {}, which the run recorded as {}",
                    artifact.id, artifact.sha256
                )));
            }
        }
        if let Some(p) = &self.progress {
            p.progress(0, artifact.size);
        }
        Ok(ArtifactStream {
            artifact,
            body: Some(resp.body),
            hasher: Sha256::new(),
            held: None,
            received: 0,
            stall,
            progress: self.progress,
        })
    }
}

/// An artifact download in progress ([`Client::download_artifact_stream`]): read it with
/// [`Self::next_chunk`], as a [`futures_core::Stream`] ([`Self::into_stream`]) or, natively,
/// as a `tokio::io::AsyncRead` ([`Self::into_async_read`]).
///
/// The bytes are hashed as they arrive; the stream ends (`Ok(None)`) only after they matched
/// the artifact's recorded sha256 and size, and the chunk before the end is held back until
/// then. A mismatch is an [`Error::Verification`]; a body cut short (the server cuts a
/// download whose stored blob no longer matches its sha256) an [`Error::Transport`]; a body
/// that stops moving an [`Error::Timeout`] with [`crate::error::TimeoutLimit::Stall`].
/// Dropping it aborts the download.
pub struct ArtifactStream {
    artifact: Artifact,
    /// `None` once the stream ended or failed.
    body: Option<Box<dyn ResponseBody>>,
    hasher: Sha256,
    held: Option<Vec<u8>>,
    received: u64,
    stall: std::time::Duration,
    progress: Option<Arc<dyn ProgressSink>>,
}

impl std::fmt::Debug for ArtifactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStream")
            .field("artifact", &self.artifact.id)
            .field("size", &self.artifact.size)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl ArtifactStream {
    /// The artifact being downloaded (its recorded sha256 and size).
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// Bytes received so far (including the chunk held back).
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The body not read yet (the wasm layer reads a fetch body in JS, see
    /// `wasm::run::download_artifact_stream`).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn response_body(&self) -> Option<&dyn ResponseBody> {
        self.body.as_deref()
    }

    /// The stall timeout the download runs with.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn stall_timeout(&self) -> std::time::Duration {
        self.stall
    }

    /// The next chunk; `Ok(None)` once every byte arrived and matched the recorded sha256.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(self.held.take());
            };
            let chunk = match body.next_chunk().await {
                Ok(c) => c,
                Err(e) => {
                    self.fail();
                    return Err(body_error(e, self.stall));
                }
            };
            match chunk {
                Some(chunk) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.artifact.size {
                        self.fail();
                        return Err(Error::Verification(format!(
                            "artifact {} sent more than its recorded {} bytes",
                            self.artifact.id, self.artifact.size
                        )));
                    }
                    self.hasher.update(&chunk);
                    if let Some(p) = &self.progress {
                        p.progress(self.received, self.artifact.size);
                    }
                    if let Some(prev) = self.held.replace(chunk) {
                        return Ok(Some(prev));
                    }
                }
                None => {
                    self.body = None;
                    let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
                    if self.received != self.artifact.size || actual != self.artifact.sha256 {
                        self.held = None;
                        return Err(Error::Verification(format!(
                            "artifact {} arrived as {} bytes hashing to {actual}; the run recorded {} bytes with sha256 {}",
                            self.artifact.id, self.received, self.artifact.size, self.artifact.sha256
                        )));
                    }
                    // Verified: the held chunk, then the end.
                }
            }
        }
    }

    fn fail(&mut self) {
        self.body = None;
        self.held = None;
    }

    /// The chunks as a [`futures_core::Stream`] (same checks; it ends after an error).
    pub fn into_stream(self) -> ArtifactByteStream {
        ArtifactByteStream {
            state: Some(self),
            pending: None,
        }
    }

    /// The bytes as a `tokio::io::AsyncRead` (same checks; errors become `io::Error`s
    /// wrapping the [`Error`]).
    #[cfg(feature = "native")]
    pub fn into_async_read(self) -> ArtifactReader {
        ArtifactReader {
            stream: self.into_stream(),
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

type NextChunk = BoxFuture<'static, (ArtifactStream, Result<Option<Vec<u8>>>)>;

/// [`ArtifactStream::into_stream`].
#[must_use = "streams do nothing unless polled"]
pub struct ArtifactByteStream {
    state: Option<ArtifactStream>,
    pending: Option<NextChunk>,
}

impl std::fmt::Debug for ArtifactByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactByteStream").finish_non_exhaustive()
    }
}

impl futures_core::Stream for ArtifactByteStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.pending.is_none() {
            let Some(mut s) = self.state.take() else {
                return Poll::Ready(None);
            };
            self.pending = Some(Box::pin(async move {
                let r = s.next_chunk().await;
                (s, r)
            }));
        }
        let fut = self.pending.as_mut().expect("set above");
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((s, r)) => {
                self.pending = None;
                match r {
                    Ok(Some(chunk)) => {
                        self.state = Some(s);
                        Poll::Ready(Some(Ok(chunk)))
                    }
                    Ok(None) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }
}

/// [`ArtifactStream::into_async_read`].
#[cfg(feature = "native")]
#[derive(Debug)]
pub struct ArtifactReader {
    stream: ArtifactByteStream,
    chunk: Vec<u8>,
    pos: usize,
}

#[cfg(feature = "native")]
impl tokio::io::AsyncRead for ArtifactReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use futures_core::Stream;
        use std::task::Poll;
        let this = &mut *self;
        while this.pos >= this.chunk.len() {
            match std::pin::Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => {
                    let kind = match e {
                        Error::Verification(_) => std::io::ErrorKind::InvalidData,
                        Error::Timeout { .. } => std::io::ErrorKind::TimedOut,
                        _ => std::io::ErrorKind::Other,
                    };
                    return Poll::Ready(Err(std::io::Error::new(kind, e)));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    this.chunk = chunk;
                    this.pos = 0;
                }
            }
        }
        let n = buf.remaining().min(this.chunk.len() - this.pos);
        buf.put_slice(&this.chunk[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A download into a file ([`Client::download_artifact_to_file`]).
#[cfg(feature = "native")]
#[derive(Debug)]
#[must_use = "a download does nothing until `.send().await`"]
pub struct DownloadToFile {
    download: DownloadArtifactStream,
    path: std::path::PathBuf,
}

#[cfg(feature = "native")]
impl DownloadToFile {
    /// Stall timeout (the client's by default).
    pub fn stall_timeout(self, stall: std::time::Duration) -> Self {
        Self {
            download: self.download.stall_timeout(stall),
            ..self
        }
    }

    /// Overall deadline of the download (none by default).
    pub fn deadline(self, deadline: std::time::Duration) -> Self {
        Self {
            download: self.download.deadline(deadline),
            ..self
        }
    }

    /// Called with `(bytes received, total bytes)` as chunks arrive.
    pub fn on_progress(self, sink: impl ProgressSink + 'static) -> Self {
        Self {
            download: self.download.on_progress(sink),
            ..self
        }
    }

    /// Downloads into a temporary file next to the target, syncs it and renames it to the
    /// target once verified; returns the artifact's metadata.
    pub async fn send(self) -> Result<Artifact> {
        use tokio::io::AsyncWriteExt;
        let target = self.path;
        let name = target
            .file_name()
            .ok_or_else(|| Error::build(format!("{} is not a file path", target.display())))?
            .to_string_lossy()
            .into_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let temp = target.with_file_name(format!(
            ".{name}.{}-{nanos}.datapilot-part",
            std::process::id()
        ));
        let io = |e: std::io::Error| Error::build(format!("{}: {e}", temp.display()));
        let mut stream = self.download.send().await?;
        let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
        let written: Result<()> = async {
            while let Some(chunk) = stream.next_chunk().await? {
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.sync_all().await.map_err(io)?;
            Ok(())
        }
        .await;
        drop(file);
        let done = written.and_then(|()| {
            std::fs::rename(&temp, &target)
                .map_err(|e| Error::build(format!("{}: {e}", target.display())))
        });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        Ok(stream.artifact)
    }
}

/// A body source that reports how much of it was read (≈ sent: the transport reads a few
/// chunks ahead of the socket).
#[cfg(feature = "native")]
struct CountingSource {
    inner: Arc<dyn BodySource>,
    sink: Arc<dyn ProgressSink>,
}

#[cfg(feature = "native")]
impl BodySource for CountingSource {
    fn len(&self) -> Option<u64> {
        self.inner.len()
    }

    fn open(&self) -> Box<dyn ChunkReader> {
        Box::new(CountingReader {
            inner: self.inner.open(),
            sink: self.sink.clone(),
            total: self.inner.len().unwrap_or(0),
            read: 0,
        })
    }
}

#[cfg(feature = "native")]
struct CountingReader {
    inner: Box<dyn ChunkReader>,
    sink: Arc<dyn ProgressSink>,
    total: u64,
    read: u64,
}

#[cfg(feature = "native")]
impl ChunkReader for CountingReader {
    fn next_chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<Vec<u8>>, BodyError>> {
        Box::pin(async move {
            let chunk = self.inner.next_chunk().await?;
            if let Some(c) = &chunk {
                self.read += c.len() as u64;
                self.sink.progress(self.read, self.total);
            }
            Ok(chunk)
        })
    }
}

/// A streamed file upload ([`Client::upload_artifact_file`]): the same per-call options as a
/// [`WriteOperation`], then `.send().await`, which hashes the file and uploads it.
#[cfg(feature = "native")]
#[must_use = "an operation does nothing until `.send().await`"]
pub struct FileUpload {
    client: Client,
    run_id: String,
    name: String,
    path: std::path::PathBuf,
    options: crate::RequestOptions,
    progress: Option<Arc<dyn ProgressSink>>,
}

#[cfg(feature = "native")]
impl std::fmt::Debug for FileUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("run_id", &self.run_id)
            .field("name", &self.name)
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "native")]
impl FileUpload {
    /// The `Idempotency-Key` to send on every attempt (see
    /// [`WriteOperation::idempotency_key`]).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options.idempotency_key = Some(key.into());
        self
    }

    /// Time limit of each attempt (none by default: a transfer is limited by its stall
    /// timeout).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Deadline of the whole upload, all attempts and waits (none by default; the client's
    /// call deadline does not apply to transfers). The hashing pass before it is not counted.
    pub fn deadline(mut self, deadline: std::time::Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// Stall timeout of the upload (the client's by default).
    pub fn stall_timeout(mut self, stall: std::time::Duration) -> Self {
        self.options.stall_timeout = Some(stall);
        self
    }

    /// Called with `(bytes read for sending, total bytes)` as the upload goes out (after the
    /// hashing pass, which it does not report).
    pub fn on_progress(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// Replaces all per-call options.
    pub fn options(mut self, options: crate::RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Hashes the file, then uploads it streamed.
    pub async fn send(self) -> Result<Artifact> {
        let path = &self.path;
        let unreadable = |e: std::io::Error| Error::build(format!("{}: {e}", path.display()));
        let source = crate::native::FileSource::open(path).map_err(unreadable)?;
        let (sha, _) = crate::native::sha256_file(path).await.map_err(unreadable)?;
        let body = match self.progress {
            Some(sink) => Body::Stream(Arc::new(CountingSource {
                inner: Arc::new(source),
                sink,
            })),
            None => source.into_body(),
        };
        self.client
            .upload_artifact(&self.run_id, &self.name, &sha, body)
            .options(self.options)
            .send()
            .await
    }
}
