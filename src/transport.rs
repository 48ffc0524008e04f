//! The boundary between the SDK and the runtime's HTTP stack.
//!
//! The client builds [`Request`]s and interprets [`Response`]s; a [`Transport`] only moves
//! bytes. Keeping the trait this small is what lets the same client run natively (reqwest, see
//! `native`), in browsers and Node (`fetch`, in the wasm layer) and in tests (a scripted
//! transport that records requests and replays canned responses).
//!
//! **`Send` natively, not on wasm32.** A native [`crate::Client`] is `Send + Sync + Clone` and
//! its futures are `Send`, so it can live in axum state and move into `tokio::spawn`: the traits
//! require [`MaybeSend`]/[`MaybeSync`] and return [`BoxFuture`]s, which natively mean `Send`
//! and `Sync`. On `wasm32` the same names carry no bounds, because futures from `fetch` hold JS
//! values, which are `!Send`, and the browser is single-threaded anyway. Futures are boxed so
//! the traits stay object-safe (the client holds `Arc<dyn Transport>`).
//!
//! **Timeouts belong to the transport.** Every request carries its per-attempt
//! [`Request::timeout`] (already cut to what is left of the call's deadline); the transport
//! enforces it (reqwest's timeout, `AbortSignal.timeout`)
//! and reports [`TransportErrorKind::Timeout`], so a hung connection can neither block the
//! caller nor the retry loop.
//!
//! **Transfers are limited by progress, not by length.** An artifact upload or download can
//! take hours on a slow link and still be healthy, so its request also carries a
//! [`Request::stall_timeout`]: the transport fails the exchange with
//! [`TransportErrorKind::Stalled`] when no byte of the body went out (upload) or came in
//! (download, or the answer's head) for that long. Its [`Request::timeout`] is then only the
//! caller's overall deadline, or [`NO_DEADLINE`] when there is none.
//!
//! **Time is injected.** [`Sleep`] provides the backoff delay, the wall clock (for
//! `Retry-After` dates) and a monotonic clock (for the per-call deadline), because
//! `std::thread::sleep`, `Instant::now` and `SystemTime::now` do not exist on
//! `wasm32-unknown-unknown` and because tests must not actually wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future that need not be `Send` (what the wasm layer builds from JS promises).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The future the transport traits return: `Send` natively, so a client's calls can be
/// spawned on a multi-threaded runtime; on `wasm32` the same as [`LocalBoxFuture`].
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The future the transport traits return: `Send` natively, so a client's calls can be
/// spawned on a multi-threaded runtime; on `wasm32` the same as [`LocalBoxFuture`].
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = LocalBoxFuture<'a, T>;

/// `Send` natively; no bound on `wasm32` (JS values are `!Send`). See the module docs.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` natively; no bound on `wasm32` (JS values are `!Send`). See the module docs.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` natively; no bound on `wasm32`. See the module docs.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` natively; no bound on `wasm32`. See the module docs.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names the SDK sets, lowercase.
pub mod headers {
    /// `authorization`
    pub const AUTHORIZATION: &str = "authorization";
    /// `accept`
    pub const ACCEPT: &str = "accept";
    /// `content-type`
    pub const CONTENT_TYPE: &str = "content-type";
    /// `user-agent`. Browser transports must drop it: browsers set their own, and it is not
    /// in the server's CORS allowlist, so sending it would fail the preflight.
    pub const USER_AGENT: &str = "user-agent";
    /// `idempotency-key`
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// `retry-after`
    pub const RETRY_AFTER: &str = "retry-after";
    /// `x-request-id`
    pub const REQUEST_ID: &str = "x-request-id";
    /// `idempotent-replayed`
    pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
    /// `x-content-sha256`
    pub const CONTENT_SHA256: &str = "x-content-sha256";
}

/// An ordered list of headers with case-insensitive lookup. `Debug` hides `authorization`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (stored lowercase), replacing previous values.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value.into()));
    }

    /// Appends a value without removing others (for responses with repeated headers).
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The first value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All `(name, value)` pairs in order (names lowercase).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (n, v) in &self.0 {
            if n == headers::AUTHORIZATION || n.starts_with("x-datapilot-signature") {
                m.entry(n, &"<redacted>");
            } else {
                m.entry(n, v);
            }
        }
        m.finish()
    }
}

/// An error reading a streaming body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// A replayable source of a large request body (an artifact), read in chunks so it is never
/// held whole. Replayable because a retry must send the same bytes again: [`BodySource::open`]
/// starts a fresh read from the beginning each time.
pub trait BodySource: MaybeSend + MaybeSync {
    /// Total length in bytes, if known (sent as `Content-Length`).
    fn len(&self) -> Option<u64>;

    /// Whether the body is known to be empty.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Starts reading from the first byte.
    fn open(&self) -> Box<dyn ChunkReader>;
}

/// A single pass over a [`BodySource`].
pub trait ChunkReader: MaybeSend {
    /// The next chunk, or `None` at the end.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, BodyError>>;
}

/// The whole-exchange limit of a transfer whose caller set no deadline: a week, a backstop
/// only (the stall timeout is what ends a dead transfer). Below JS's largest timer delay
/// (2^31 - 1 ms, about 24.8 days), so every transport can arm it as it is.
pub const NO_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A request body.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// Bytes in memory (JSON bodies). Shared so every retry can resend them without copying.
    Bytes(Arc<[u8]>),
    /// A streamed body (artifact uploads).
    Stream(Arc<dyn BodySource>),
}

impl Body {
    /// Length in bytes, if known.
    pub fn len(&self) -> Option<u64> {
        match self {
            Self::Empty => Some(0),
            Self::Bytes(b) => Some(b.len() as u64),
            Self::Stream(s) => s.len(),
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Reads the whole body into memory (for transports that cannot stream, and tests).
    pub async fn collect(&self) -> Result<Vec<u8>, BodyError> {
        match self {
            Self::Empty => Ok(Vec::new()),
            Self::Bytes(b) => Ok(b.to_vec()),
            Self::Stream(s) => {
                let mut reader = s.open();
                let mut out = Vec::new();
                while let Some(chunk) = reader.next_chunk().await? {
                    out.extend_from_slice(&chunk);
                }
                Ok(out)
            }
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Self::Stream(s) => write!(f, "Stream({:?} bytes)", s.len()),
        }
    }
}

/// One HTTP attempt, as the client wants it sent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL, already percent-encoded.
    pub url: String,
    /// Headers (lowercase names).
    pub headers: Headers,
    /// Body.
    pub body: Body,
    /// Time limit of this attempt, which the transport must enforce: the per-attempt timeout,
    /// or what is left of the call's deadline if that is less.
    pub timeout: Duration,
    /// For transfers (artifact uploads and downloads): the longest time without progress
    /// (no body byte sent or received, no answer head) before the transport gives up with
    /// [`TransportErrorKind::Stalled`]. `None` for every other call.
    pub stall_timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Headers::new(),
            body: Body::Empty,
            timeout,
            stall_timeout: None,
        }
    }
}

/// An HTTP response, body read whole (API responses are small; bundles are bounded by the
/// server's export limits).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Headers,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response from its parts.
    pub fn new(status: u16, headers: Headers, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
        }
    }
}

/// A response whose body is read chunk by chunk ([`Transport::send_streaming`]): artifact
/// downloads, never held whole.
#[non_exhaustive]
pub struct StreamingResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Headers,
    /// The body, still to be read.
    pub body: Box<dyn ResponseBody>,
}

impl StreamingResponse {
    /// A response from its parts.
    pub fn new(status: u16, headers: Headers, body: Box<dyn ResponseBody>) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// Reads the body whole, failing if it exceeds `limit` bytes (error answers, which are
    /// small problem documents).
    pub async fn collect(mut self, limit: usize) -> Result<Response, TransportError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.body.next_chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::new(
                    TransportErrorKind::Io,
                    format!("response body larger than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response::new(self.status, self.headers, body))
    }
}

impl fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// The body of a [`StreamingResponse`]. The transport enforces the request's limits
/// ([`Request::timeout`], [`Request::stall_timeout`]) on every read; dropping it aborts the
/// exchange.
pub trait ResponseBody: MaybeSend {
    /// The next chunk (never empty), or `None` at the end.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>>;
}

/// A body already in memory, as one chunk (what [`Transport::send_streaming`] gives by default).
#[derive(Debug)]
pub struct WholeBody(Option<Vec<u8>>);

impl WholeBody {
    /// The body `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self((!bytes.is_empty()).then_some(bytes))
    }
}

impl ResponseBody for WholeBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        let chunk = self.0.take();
        Box::pin(async move { Ok(chunk) })
    }
}

/// What kind of transport failure happened; decides [`crate::Sent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Failed before any byte of the request was sent (DNS, connection refused).
    Connect,
    /// The per-attempt timeout elapsed.
    Timeout,
    /// Failed after sending may have started (reset, TLS, broken body).
    Io,
    /// A transfer made no progress for its [`Request::stall_timeout`].
    Stalled,
}

/// A transport failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What happened.
    pub kind: TransportErrorKind,
    /// Description (must not contain headers; redacted again by the client).
    pub message: String,
}

impl TransportError {
    /// A failure of `kind`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for TransportError {}

/// Sends one HTTP request. Implementations must enforce [`Request::timeout`] and must not
/// follow redirects to other origins with the `authorization` header.
pub trait Transport: MaybeSend + MaybeSync {
    /// Sends `request` and reads the whole response.
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>>;

    /// Sends `request` and returns once the answer's head is in, its body still to be read
    /// (artifact downloads). The default reads the whole body with [`Self::send`]; real
    /// transports stream it.
    fn send_streaming(
        &self,
        request: Request,
    ) -> BoxFuture<'_, Result<StreamingResponse, TransportError>> {
        Box::pin(async move {
            let r = self.send(request).await?;
            Ok(StreamingResponse::new(
                r.status,
                r.headers,
                Box::new(WholeBody::new(r.body)),
            ))
        })
    }
}

/// Timers and wall clock of the runtime.
pub trait Sleep: MaybeSend + MaybeSync {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Milliseconds since the Unix epoch, if the runtime has a clock. Used only to turn an
    /// HTTP-date `Retry-After` into a delay and to seed jitter.
    fn now_unix_millis(&self) -> Option<u64> {
        None
    }

    /// A monotonic clock: time since an arbitrary fixed origin, used to hold each call to its
    /// deadline. Implement it with a monotonic source where the runtime has one
    /// (`Instant`, `performance.now()`); the default falls back to the wall clock
    /// ([`Self::now_unix_millis`]). `None` means no clock: the client then counts only the time
    /// it knows has passed (its own waits and attempts that ran into their timeout).
    fn now(&self) -> Option<Duration> {
        self.now_unix_millis().map(Duration::from_millis)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        (**self).send(request)
    }
    fn send_streaming(
        &self,
        request: Request,
    ) -> BoxFuture<'_, Result<StreamingResponse, TransportError>> {
        (**self).send_streaming(request)
    }
}

impl<S: Sleep + ?Sized> Sleep for Arc<S> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        (**self).sleep(duration)
    }
    fn now_unix_millis(&self) -> Option<u64> {
        (**self).now_unix_millis()
    }
    fn now(&self) -> Option<Duration> {
        (**self).now()
    }
}
