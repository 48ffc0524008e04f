//! Native transport (feature `native`): reqwest with rustls, and tokio timers.
//!
//! This is how Rust programs and the native integration tests talk to a server. It is behind a
//! feature so that the wasm build, which uses `fetch` instead, never compiles reqwest or tokio.
//!
//! Choices, and why:
//! - **No redirects.** The API never redirects; following one could send the bearer token to
//!   another origin, so a 3xx surfaces as an [`crate::Error::Api`].
//! - **rustls, webpki roots + none of the system's proxies.** On-prem installs use their own
//!   CA: pass a client built with `reqwest::Certificate`s to [`ReqwestTransport::with_client`].
//! - **Per-request timeout** from [`Request::timeout`], which bounds the whole exchange.
//! - **Stall timeout** for transfers ([`Request::stall_timeout`]): a watchdog fails the
//!   exchange when the streamed request body was not pulled, the answer's head did not come,
//!   or no body chunk arrived for that long (reqwest has only per-client read timeouts).
//!   Progress is a timestamp the pump and the body reader touch, so a healthy transfer pays
//!   one atomic store per chunk.
//! - **Streamed bodies stream.** The reader is pumped, in the same task as the request, into a
//!   channel of [`STREAM_CHUNKS_IN_FLIGHT`] chunks whose receiving end is the body reqwest
//!   sends: memory stays at a few chunks whatever the size, and the reader is never polled by
//!   reqwest's connection task (so a slow source cannot stall other requests on it).
//!   [`FileSource`] reads a file that way, and [`crate::Client::upload_artifact_file`] hashes
//!   and uploads one.
//!
//! Everything here is `Send + Sync` and every future `Send`: the client can be shared by the
//! tasks of a multi-threaded runtime.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::transport::{
    Body, BodyError, BodySource, BoxFuture, ChunkReader, Headers, Method, Request, Response,
    ResponseBody, Sleep, StreamingResponse, Transport, TransportError, TransportErrorKind,
};

/// Chunks of a streamed body read ahead of the socket.
pub const STREAM_CHUNKS_IN_FLIGHT: usize = 4;

/// Bytes [`FileSource`] reads at a time.
pub const FILE_CHUNK_BYTES: usize = 1 << 20;

/// A [`Transport`] over `reqwest`.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with the SDK's defaults (no redirects, rustls).
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::build(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// A transport over a caller-configured reqwest client (custom CA, proxy). Configure it
    /// with `redirect(Policy::none())`.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// Sends `request` and returns once the answer's head is in, with the watchdog that keeps
    /// enforcing the stall timeout on the body.
    async fn send_head(
        &self,
        request: &Request,
    ) -> Result<(reqwest::Response, Option<Watchdog>), TransportError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .client
            .request(method, &request.url)
            .timeout(request.timeout);
        for (name, value) in request.headers.iter() {
            builder = builder.header(name, value);
        }
        let watchdog = request.stall_timeout.map(Watchdog::new);
        let exchange = async {
            match &request.body {
                Body::Empty => builder.send().await,
                Body::Bytes(b) => builder.body(b.to_vec()).send().await,
                Body::Stream(source) => {
                    let (tx, rx) = mpsc::channel(STREAM_CHUNKS_IN_FLIGHT);
                    if let Some(len) = source.len() {
                        builder = builder.header(reqwest::header::CONTENT_LENGTH, len);
                    }
                    let builder = builder.body(reqwest::Body::wrap_stream(ChannelBody(rx)));
                    // Both in this task: the request (which pulls the body) and the pump (which
                    // fills it). The pump stops when the body is dropped (an early answer).
                    let (resp, ()) =
                        tokio::join!(builder.send(), pump(source.clone(), tx, watchdog.as_ref()));
                    resp
                }
            }
        };
        let resp = match &watchdog {
            Some(w) => w.guard(exchange).await?,
            None => exchange.await,
        }
        .map_err(map_error)?;
        Ok((resp, watchdog))
    }

    async fn send_inner(&self, request: Request) -> Result<Response, TransportError> {
        let (resp, watchdog) = self.send_head(&request).await?;
        let status = resp.status().as_u16();
        let headers = headers_of(&resp);
        let body = match &watchdog {
            // A transfer read whole (`download_artifact`): every chunk is progress.
            Some(w) => {
                let mut resp = resp;
                let mut body = Vec::new();
                loop {
                    w.touch();
                    match w.guard(resp.chunk()).await?.map_err(map_error)? {
                        Some(chunk) => body.extend_from_slice(&chunk),
                        None => break body,
                    }
                }
            }
            None => resp.bytes().await.map_err(map_error)?.to_vec(),
        };
        Ok(Response::new(status, headers, body))
    }

    async fn send_streaming_inner(
        &self,
        request: Request,
    ) -> Result<StreamingResponse, TransportError> {
        let (resp, _) = self.send_head(&request).await?;
        let status = resp.status().as_u16();
        let headers = headers_of(&resp);
        Ok(StreamingResponse::new(
            status,
            headers,
            Box::new(StreamedBody {
                resp,
                stall: request.stall_timeout,
            }),
        ))
    }
}

fn headers_of(resp: &reqwest::Response) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in resp.headers() {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v);
        }
    }
    headers
}

/// The body of a streamed answer: each chunk must come within the stall timeout (the
/// exchange's whole timeout still runs in reqwest).
struct StreamedBody {
    resp: reqwest::Response,
    stall: Option<Duration>,
}

impl ResponseBody for StreamedBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        Box::pin(async move {
            loop {
                let chunk = match self.stall {
                    Some(stall) => tokio::time::timeout(stall, self.resp.chunk())
                        .await
                        .map_err(|_| stalled(stall))?,
                    None => self.resp.chunk().await,
                }
                .map_err(map_error)?;
                match chunk {
                    Some(c) if c.is_empty() => continue,
                    Some(c) => return Ok(Some(c.to_vec())),
                    None => return Ok(None),
                }
            }
        })
    }
}

fn stalled(stall: Duration) -> TransportError {
    TransportError::new(
        TransportErrorKind::Stalled,
        format!("no progress for {stall:?}"),
    )
}

/// When a transfer last moved, and how long it may stand still.
struct Watchdog {
    stall: Duration,
    /// Milliseconds since `origin` of the last progress.
    last: AtomicU64,
    origin: tokio::time::Instant,
}

impl Watchdog {
    fn new(stall: Duration) -> Self {
        Self {
            stall,
            last: AtomicU64::new(0),
            origin: tokio::time::Instant::now(),
        }
    }

    /// Records progress now.
    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Runs `fut`, failing with [`TransportErrorKind::Stalled`] once no progress was recorded
    /// for the stall timeout.
    async fn guard<F: std::future::Future>(&self, fut: F) -> Result<F::Output, TransportError> {
        let watch = async {
            loop {
                let last = self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed));
                let due = last + self.stall;
                if tokio::time::Instant::now() >= due {
                    return;
                }
                tokio::time::sleep_until(due).await;
            }
        };
        tokio::select! {
            out = fut => Ok(out),
            () = watch => Err(stalled(self.stall)),
        }
    }
}

/// The receiving end of a streamed body, as the `Send` stream reqwest sends.
struct ChannelBody(mpsc::Receiver<std::result::Result<Vec<u8>, std::io::Error>>);

impl futures_core::Stream for ChannelBody {
    type Item = std::result::Result<Vec<u8>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Reads `source` from its first byte into `tx` until the end, an error (sent on, so the
/// request fails) or the body being dropped.
async fn pump(
    source: Arc<dyn BodySource>,
    tx: mpsc::Sender<std::result::Result<Vec<u8>, std::io::Error>>,
    watchdog: Option<&Watchdog>,
) {
    let mut reader = source.open();
    loop {
        let item = match reader.next_chunk().await {
            Ok(Some(chunk)) => Ok(chunk),
            Ok(None) => return,
            Err(e) => Err(std::io::Error::other(e.0)),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
        // The socket took the chunk before last (the channel had room): the upload moves.
        if let Some(w) = watchdog {
            w.touch();
        }
    }
}

/// A file as a replayable streamed body ([`Body::Stream`]): every attempt reads it again from
/// the start, [`FILE_CHUNK_BYTES`] at a time. The length is taken when it is opened; a file
/// that changes size meanwhile fails the upload (the server checks length and SHA-256).
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
}

impl FileSource {
    /// A source for the file at `path` (which must be a regular file).
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let meta = std::fs::metadata(&path)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(Self {
            path,
            len: meta.len(),
        })
    }

    /// The body for an upload.
    pub fn into_body(self) -> Body {
        Body::Stream(Arc::new(self))
    }
}

impl BodySource for FileSource {
    fn len(&self) -> Option<u64> {
        Some(self.len)
    }

    fn open(&self) -> Box<dyn ChunkReader> {
        Box::new(FileReader {
            path: self.path.clone(),
            file: None,
        })
    }
}

struct FileReader {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl ChunkReader for FileReader {
    fn next_chunk(&mut self) -> BoxFuture<'_, std::result::Result<Option<Vec<u8>>, BodyError>> {
        let Self { path, file } = self;
        Box::pin(async move {
            let io = |e: std::io::Error| BodyError(format!("{}: {e}", path.display()));
            if file.is_none() {
                *file = Some(tokio::fs::File::open(&*path).await.map_err(io)?);
            }
            let file = file.as_mut().expect("opened above");
            let mut chunk = vec![0u8; FILE_CHUNK_BYTES];
            let mut filled = 0;
            while filled < chunk.len() {
                let n = file.read(&mut chunk[filled..]).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            chunk.truncate(filled);
            Ok((filled > 0).then_some(chunk))
        })
    }
}

/// SHA-256 (lowercase hex) and length of a file, read in [`FILE_CHUNK_BYTES`] chunks.
pub async fn sha256_file(path: impl AsRef<Path>) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut file = tokio::fs::File::open(path.as_ref()).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; FILE_CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn map_error(e: reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Io
    };
    // `without_url`: URLs carry ids that are fine to log, but keep messages short and uniform.
    TransportError::new(kind, e.without_url().to_string())
}

impl Transport for ReqwestTransport {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(self.send_inner(request))
    }

    fn send_streaming(
        &self,
        request: Request,
    ) -> BoxFuture<'_, Result<StreamingResponse, TransportError>> {
        Box::pin(self.send_streaming_inner(request))
    }
}

/// [`Sleep`] on tokio's timer and the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn now_unix_millis(&self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64)
    }

    /// Tokio's monotonic clock (which a paused test runtime also pauses), from a process-wide
    /// origin.
    fn now(&self) -> Option<Duration> {
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
        Some(tokio::time::Instant::now().saturating_duration_since(origin))
    }
}
