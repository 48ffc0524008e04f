//! The DataPilot API client: configuration, authentication, the retry loop and the
//! request/response plumbing shared by every operation.
//!
//! A [`Client`] is cheap to clone (it is an `Arc` plus per-view settings): clones share the
//! transport, the retry budget and the jitter generator, so one budget limits retries across
//! everything a process does against one server. [`Client::with_token`] and
//! [`Client::with_timeout`] make such views, e.g. to act with a run's token. Natively the
//! client is `Send + Sync` and its calls are `Send` futures: keep one in axum state and share
//! it across `tokio::spawn`ed tasks (see [`crate::transport`] for why wasm32 differs).
//!
//! Each operation is a method (grouped by contract tag in [`crate::api`]) that returns a
//! builder ([`crate::api::Operation`], [`crate::api::WriteOperation`], [`crate::Pager`]):
//! per-call options are set on it and `.send().await` runs it. A call:
//!
//! 1. builds the URL from the validated absolute base URL and percent-encoded path segments;
//! 2. for writes, picks one `Idempotency-Key` (the caller's, or a fresh random one) that is
//!    sent unchanged on every attempt, so a retry after a lost response cannot apply the write
//!    twice;
//! 3. runs attempts through the [`crate::transport::Transport`] under the
//!    [`crate::retry::RetryConfig`] rules, all within one deadline for the whole call
//!    ([`DEFAULT_CALL_DEADLINE`]): each attempt's timeout is the per-attempt timeout or the time
//!    left, whichever is less, and no wait is started that would end past the deadline;
//! 4. decodes a 2xx body, or turns anything else into an [`crate::Error`] (problem+json into
//!    [`crate::error::ApiError`]).
//!
//! Tokens live only in memory, inside [`crate::Secret`], and are redacted from `Debug`.
//!
//! Generated idempotency keys are 128 bits of SHA-256 in counter mode over a 256-bit secret
//! drawn, natively, from the OS random source (through std's `RandomState`, whose keys the
//! standard library takes from the OS). They cannot be predicted from keys seen before, unlike
//! the jitter generator's output. [`ClientBuilder::seed`] / [`ClientBuilder::seed_bytes`]
//! replace the secret (tests; the wasm layer, which draws it from `crypto.getRandomValues`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{redact, ApiError, Error, FieldError, Result, Sent, TimeoutLimit};
pub use crate::retry::DEFAULT_CALL_DEADLINE;
use crate::retry::{
    parse_retry_after, Jitter, RetryBudget, RetryConfig, DEFAULT_STALL_TIMEOUT, DEFAULT_TIMEOUT,
    MIN_ATTEMPT_WINDOW,
};
use crate::secret::Secret;
use crate::transport::{
    headers, Body, Headers, Method, Request, Response, Sleep, StreamingResponse, Transport,
    TransportError, TransportErrorKind, NO_DEADLINE,
};

/// The SDK's `User-Agent`: `datapilot-sdk-rust/<crate version>`.
pub const USER_AGENT: &str = concat!("datapilot-sdk-rust/", env!("CARGO_PKG_VERSION"));

/// Content type of JSON request bodies.
pub const JSON: &str = "application/json";
/// Content type of raw uploads.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Longest accepted `Idempotency-Key` (the contract allows 1–255 visible ASCII characters).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Characters escaped in a path segment: everything but unreserved characters and `:`/`@`,
/// which are legal in segments and appear in digests (`sha256:…`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// Characters escaped in a query component.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Per-call options. Every operation's builder also has a setter for each
/// ([`crate::api::Operation::timeout`], ...); this struct carries them around whole
/// ([`crate::api::Operation::options`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// The `Idempotency-Key` to send with a POST; a fresh random key when `None`. Supply your
    /// own to make a write safe to repeat across process restarts (e.g. derive it from a CI
    /// job id). Refused (a [`Error::Build`]) on operations that take none (reads, the PUT).
    pub idempotency_key: Option<String>,
    /// Per-attempt timeout for this call; the client's when `None`.
    pub timeout: Option<Duration>,
    /// Deadline of this whole call (all attempts and waits); the client's when `None`. For
    /// transfers (artifact uploads and downloads) the client's deadline does not apply: they
    /// have none unless this sets one, and are limited by [`Self::stall_timeout`] instead.
    pub deadline: Option<Duration>,
    /// Transfers only: the longest time without progress before an attempt is given up; the
    /// client's ([`ClientBuilder::stall_timeout`]) when `None`. Ignored by other calls.
    pub stall_timeout: Option<Duration>,
}

impl RequestOptions {
    /// Options with this idempotency key.
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        Self {
            idempotency_key: Some(key.into()),
            ..Self::default()
        }
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the deadline of the whole call.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the stall timeout of a transfer.
    pub fn with_stall_timeout(mut self, stall: Duration) -> Self {
        self.stall_timeout = Some(stall);
        self
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: Option<String>,
    token: Option<Secret>,
    timeout: Duration,
    deadline: Option<Duration>,
    stall_timeout: Duration,
    retry: RetryConfig,
    user_agent: String,
    transport: Option<Arc<dyn Transport>>,
    sleep: Option<Arc<dyn Sleep>>,
    seed: Option<[u8; 32]>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: None,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            deadline: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            retry: RetryConfig::default(),
            user_agent: USER_AGENT.to_owned(),
            transport: None,
            sleep: None,
            seed: None,
        }
    }
}

impl ClientBuilder {
    /// The server's absolute root URL (`https://datapilot.corp.example`, optionally with a path
    /// prefix); the client appends `/v1/…`. Required.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// A bearer secret: an API token (`dpt_…`) or a run token (`dpr_…`).
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Per-attempt timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Deadline of every call, all attempts and waits included (default
    /// [`DEFAULT_CALL_DEADLINE`], or the per-attempt timeout if that is longer).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Stall timeout of transfers (artifact uploads and downloads; default
    /// [`DEFAULT_STALL_TIMEOUT`]): an attempt that sends or receives nothing for this long is
    /// given up (and retried like a timeout). Transfers have no overall deadline unless the
    /// call sets one ([`RequestOptions::deadline`]); the per-attempt timeout and the call
    /// deadline above do not apply to them.
    pub fn stall_timeout(mut self, stall: Duration) -> Self {
        self.stall_timeout = stall;
        self
    }

    /// Retry settings (default [`RetryConfig::default`]).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Appends a product token to the `User-Agent` (`datapilot-sdk-rust/x.y.z <suffix>`), e.g.
    /// the CLI's or the wasm package's name.
    pub fn user_agent_suffix(mut self, suffix: &str) -> Self {
        self.user_agent = format!("{USER_AGENT} {suffix}");
        self
    }

    /// The HTTP transport. Required unless the `native` feature provides the default.
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The timers and clocks ([`Sleep`]: waits, the wall clock for `Retry-After` dates and the
    /// monotonic clock for deadlines). Required unless the `native` feature provides the
    /// default.
    pub fn sleep(mut self, sleep: impl Sleep + 'static) -> Self {
        self.sleep = Some(Arc::new(sleep));
        self
    }

    /// Seed for backoff jitter and generated idempotency keys, replacing the OS random
    /// source: for tests (a constant makes keys and delays reproducible). Only 64 bits: prefer
    /// [`Self::seed_bytes`] for a real random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"datapilot client seed v1\0");
        h.update(seed.to_le_bytes());
        self.seed = Some(h.finalize().into());
        self
    }

    /// A 256-bit seed for backoff jitter and generated idempotency keys, replacing the OS
    /// random source: e.g. 32 bytes of `crypto.getRandomValues` where the runtime has no OS
    /// source std can reach (`wasm32-unknown-unknown`).
    pub fn seed_bytes(mut self, seed: [u8; 32]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the configuration and builds the client.
    // On wasm32 the transport and clock are JS objects, neither Send nor Sync; the Arc is
    // shared by clones within the one JS thread, so it is Send + Sync natively only.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn build(self) -> Result<Client> {
        let base_url = validate_base_url(
            self.base_url
                .as_deref()
                .ok_or_else(|| Error::build("base URL is required"))?,
        )?;
        if self.timeout.is_zero() {
            return Err(Error::build("timeout must be positive"));
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return Err(Error::build("deadline must be positive"));
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::build("stall timeout must be positive"));
        }
        if let Some(token) = &self.token {
            validate_token(token)?;
        }
        let transport = match self.transport {
            Some(t) => t,
            None => default_transport()?,
        };
        let sleep = match self.sleep {
            Some(s) => s,
            None => default_sleep()?,
        };
        let seed = self
            .seed
            .unwrap_or_else(|| os_seed(sleep.now_unix_millis()));
        let max_attempts = self.retry.max_attempts.max(1);
        let retry = RetryConfig {
            max_attempts,
            ..self.retry
        };
        Ok(Client {
            inner: Arc::new(Inner {
                budget: RetryBudget::new(retry.budget),
                base_url,
                transport,
                sleep,
                retry,
                jitter: Jitter::new(derive_u64(&seed, b"jitter")),
                keys: KeyGenerator::new(&seed),
                user_agent: self.user_agent,
                attempts: AtomicU64::new(0),
            }),
            token: self.token.map(Arc::new),
            timeout: self.timeout,
            deadline: self.deadline,
            stall_timeout: self.stall_timeout,
        })
    }
}

#[cfg(feature = "native")]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(crate::native::ReqwestTransport::new()?))
}

#[cfg(not(feature = "native"))]
fn default_transport() -> Result<Arc<dyn Transport>> {
    Err(Error::build(
        "no transport configured (enable the `native` feature or call ClientBuilder::transport)",
    ))
}

#[cfg(feature = "native")]
fn default_sleep() -> Result<Arc<dyn Sleep>> {
    Ok(Arc::new(crate::native::TokioSleep))
}

#[cfg(not(feature = "native"))]
fn default_sleep() -> Result<Arc<dyn Sleep>> {
    Err(Error::build(
        "no timer configured (enable the `native` feature or call ClientBuilder::sleep)",
    ))
}

/// A 256-bit seed from the OS random source, without a `getrandom` dependency: std's
/// `RandomState` takes 128-bit SipHash keys from the OS (`getrandom(2)`, `BCryptGenRandom`,
/// `SecRandomCopyRandom`…) once per thread and makes each new instance's keys distinct, so
/// hashing through a few fresh instances yields output no one without those keys can predict.
/// The clock and a heap address are mixed in too; they only add variation where std has no OS
/// source (`wasm32-unknown-unknown`, where the wasm layer passes a seed instead).
fn os_seed(now: Option<u64>) -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let probe = Box::new(0u8);
    let mut seed = Sha256::new();
    seed.update(b"datapilot client seed v1\0");
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        seed.update(h.finish().to_le_bytes());
    }
    seed.update(now.unwrap_or(0).to_le_bytes());
    seed.update((&*probe as *const u8 as usize).to_le_bytes());
    seed.finalize().into()
}

/// 64 bits derived from `seed` for one purpose (domain-separated, so the jitter generator,
/// whose output reveals its state, says nothing about the key generator's secret).
fn derive_u64(seed: &[u8; 32], purpose: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(purpose);
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Idempotency keys: `dp-` and the first 128 bits, in hex, of SHA-256(secret ‖ counter).
/// SHA-256 in counter mode under a 256-bit secret: seeing any number of keys does not help
/// predict the next one (unlike xorshift, whose output reveals its state).
struct KeyGenerator {
    secret: [u8; 32],
    counter: AtomicU64,
}

impl KeyGenerator {
    fn new(seed: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(b"idempotency keys");
        Self {
            secret: h.finalize().into(),
            counter: AtomicU64::new(0),
        }
    }

    fn next_key(&self) -> String {
        // fetch_add wraps on overflow; distinct threads always get distinct counters.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(n.to_le_bytes());
        format!("dp-{}", hex::encode(&h.finalize()[..16]))
    }
}

fn validate_base_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Error::build("base URL must be absolute http:// or https://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::build("base URL must not contain whitespace"));
    }
    if url.contains(['?', '#']) {
        return Err(Error::build("base URL must not have a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        // Credentials in URLs end up in logs and error messages; use a token instead.
        return Err(Error::build("base URL must not contain credentials"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // IPv6 literal: `[addr]` or `[addr]:port`.
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::build("base URL has an unterminated IPv6 host"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| Error::build("base URL has an invalid port"))?,
                    ),
                ),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(Error::build("base URL has no host"));
    }
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| Error::build("base URL has an invalid port"))?;
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn validate_token(token: &Secret) -> Result<()> {
    let t = token.expose();
    if t.is_empty() {
        return Err(Error::build(
            "token is empty (expected an API token dpt_… or a run token dpr_…)",
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        // Never echo the token itself.
        return Err(Error::build("token must be non-empty visible ASCII"));
    }
    Ok(())
}

fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::build(
            "idempotency key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(())
}

struct Inner {
    base_url: String,
    transport: Arc<dyn Transport>,
    sleep: Arc<dyn Sleep>,
    retry: RetryConfig,
    budget: RetryBudget,
    jitter: Jitter,
    keys: KeyGenerator,
    user_agent: String,
    /// Attempts sent over the client's life (observability and tests).
    attempts: AtomicU64,
}

// What a tokio service needs (axum state, `tokio::spawn`), checked at compile time. Not on
// wasm32, where the transport holds JS values (see `crate::transport`).
#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    const fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Client>();
};

/// A DataPilot API client. See the module docs.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    token: Option<Arc<Secret>>,
    timeout: Duration,
    /// `None`: [`DEFAULT_CALL_DEADLINE`], or the call's attempt timeout if that is longer.
    deadline: Option<Duration>,
    /// Stall timeout of transfers.
    stall_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("stall_timeout", &self.stall_timeout)
            .field("retry", &self.inner.retry)
            .field("retry_budget", &self.inner.budget.available())
            .field("user_agent", &self.inner.user_agent)
            .finish_non_exhaustive()
    }
}

/// A fully described API call, before retries.
pub(crate) struct Call {
    pub method: Method,
    /// Path below the base URL, starting with `/v1/`, already encoded.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    pub content_type: Option<&'static str>,
    pub accept: &'static str,
    pub options: RequestOptions,
    /// An artifact upload or download: limited by the stall timeout and the caller's own
    /// deadline, not by the per-attempt timeout and the default call deadline.
    pub transfer: bool,
    /// A PUT the contract makes idempotent (`putManifestPart`: the same part again is a
    /// no-op), so it is retried after a lost response like a GET.
    pub idempotent_put: bool,
}

impl Call {
    pub fn get(path: String) -> Self {
        Self {
            method: Method::Get,
            path,
            query: Vec::new(),
            body: Body::Empty,
            content_type: None,
            accept: JSON,
            options: RequestOptions::default(),
            transfer: false,
            idempotent_put: false,
        }
    }

    /// A POST without a body.
    pub fn post(path: String) -> Self {
        Self {
            method: Method::Post,
            ..Self::get(path)
        }
    }

    pub fn json<B: Serialize + ?Sized>(method: Method, path: String, body: &B) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::build(format!("request body does not serialize: {e}")))?;
        Ok(Self {
            method,
            path,
            query: Vec::new(),
            body: Body::Bytes(bytes.into()),
            content_type: Some(JSON),
            accept: JSON,
            options: RequestOptions::default(),
            transfer: false,
            idempotent_put: false,
        })
    }

    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = accept;
        self
    }

    /// Marks the call as a transfer (see [`Call::transfer`]).
    pub fn transfer(mut self) -> Self {
        self.transfer = true;
        self
    }
}

/// Joins path segments under `/v1`, percent-encoding each one. Empty, `.` and `..` segments
/// are refused: URL normalisation would turn them into a different endpoint.
pub(crate) fn path(segments: &[&str]) -> Result<String> {
    let mut p = String::from("/v1");
    for s in segments {
        if s.is_empty() || *s == "." || *s == ".." {
            return Err(Error::build(format!("invalid path segment {s:?}")));
        }
        p.push('/');
        p.extend(utf8_percent_encode(s, SEGMENT));
    }
    Ok(p)
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The validated base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// A view of this client that authenticates with `token` (e.g. a run token), sharing the
    /// transport and retry budget.
    pub fn with_token(&self, token: impl Into<Secret>) -> Result<Self> {
        let token = token.into();
        validate_token(&token)?;
        Ok(Self {
            token: Some(Arc::new(token)),
            ..self.clone()
        })
    }

    /// A view of this client with another per-attempt timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// A view of this client with another deadline per call (all attempts and waits).
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// A view of this client with another stall timeout for transfers.
    pub fn with_stall_timeout(&self, stall: Duration) -> Self {
        Self {
            stall_timeout: stall,
            ..self.clone()
        }
    }

    /// The stall timeout a transfer with these options gets.
    pub(crate) fn stall_timeout_for(&self, options: &RequestOptions) -> Duration {
        options.stall_timeout.unwrap_or(self.stall_timeout)
    }

    /// Retry budget tokens left (see [`crate::retry::RetryBudget`]).
    pub fn retry_budget_available(&self) -> u32 {
        self.inner.budget.available()
    }

    /// HTTP attempts this client (and its clones) has sent.
    pub fn attempts_sent(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }

    /// A fresh random idempotency key: `dp-` and 32 hex characters (128 bits, unpredictable;
    /// see the module docs).
    pub fn new_idempotency_key(&self) -> String {
        self.inner.keys.next_key()
    }

    fn url(&self, call: &Call) -> String {
        let mut url = format!("{}{}", self.inner.base_url, call.path);
        for (i, (name, value)) in call.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, QUERY));
        }
        url
    }

    /// Runs `call` with retries, within its deadline, and returns the 2xx response.
    pub(crate) async fn execute(&self, call: Call) -> Result<Response> {
        match self.run(call, false).await? {
            Answer::Whole(resp) => Ok(resp),
            Answer::Streaming(s) => s.collect(usize::MAX).await.map_err(transport_error),
        }
    }

    /// Runs `call` with retries until a 2xx answer's head is in, and returns it with its body
    /// still to be read (artifact downloads). Only getting the head is retried.
    pub(crate) async fn execute_streaming(&self, call: Call) -> Result<StreamingResponse> {
        match self.run(call, true).await? {
            Answer::Streaming(s) => Ok(s),
            Answer::Whole(_) => unreachable!("a streaming call answers with a stream"),
        }
    }

    async fn run(&self, call: Call, streaming: bool) -> Result<Answer> {
        let (timeout, deadline, stall) = if call.transfer {
            // A transfer is as long as its file: no attempt timeout and no deadline unless the
            // caller sets them, only the stall timeout.
            let stall = self.stall_timeout_for(&call.options);
            if stall.is_zero() {
                return Err(Error::build("stall timeout must be positive"));
            }
            let timeout = call.options.timeout.unwrap_or(NO_DEADLINE);
            let deadline = call.options.deadline.unwrap_or(NO_DEADLINE.max(timeout));
            (timeout, deadline, Some(stall))
        } else {
            let timeout = call.options.timeout.unwrap_or(self.timeout);
            let deadline = call
                .options
                .deadline
                .or(self.deadline)
                .unwrap_or_else(|| DEFAULT_CALL_DEADLINE.max(timeout));
            (timeout, deadline, None)
        };
        if timeout.is_zero() {
            return Err(Error::build("timeout must be positive"));
        }
        if deadline.is_zero() {
            return Err(Error::build("deadline must be positive"));
        }
        let mut hdrs = Headers::new();
        hdrs.set(headers::ACCEPT, call.accept);
        hdrs.set(headers::USER_AGENT, self.inner.user_agent.clone());
        if let Some(ct) = call.content_type {
            hdrs.set(headers::CONTENT_TYPE, ct);
        }
        // GETs are naturally safe to repeat, POSTs are made safe by the key; a PUT (only
        // `updatePolicy`, which takes no key) is retried only when it cannot have been applied.
        let replay_safe = matches!(call.method, Method::Get | Method::Post) || call.idempotent_put;
        if call.method == Method::Post {
            // One key per logical call, chosen before the first attempt and reused on every
            // retry: that is what makes retrying a write safe.
            let key = match &call.options.idempotency_key {
                Some(k) => {
                    validate_idempotency_key(k)?;
                    k.clone()
                }
                None => self.new_idempotency_key(),
            };
            hdrs.set(headers::IDEMPOTENCY_KEY, key);
        }
        if let Some(token) = &self.token {
            hdrs.set(headers::AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let url = self.url(&call);
        let retry = &self.inner.retry;
        let mut clock = CallClock::start(&*self.inner.sleep, deadline);
        let mut retries = 0u32;
        // Whether an attempt so far may have taken effect on the server: decides what a later
        // error that left nothing behind (a refused connection) reports as `sent`.
        let mut maybe_applied = false;
        loop {
            let left = clock.left();
            if left.is_zero() {
                // The wait before this retry overran (a late timer): no time for the attempt.
                return Err(deadline_timeout(deadline, maybe_applied));
            }
            let attempt_timeout = timeout.min(left);
            let request = Request {
                method: call.method,
                url: url.clone(),
                headers: hdrs.clone(),
                body: call.body.clone(),
                timeout: attempt_timeout,
                stall_timeout: stall,
            };
            self.inner.attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = if streaming {
                match self.inner.transport.send_streaming(request).await {
                    Ok(s) if (200..300).contains(&s.status) => Ok(Answer::Streaming(s)),
                    // An error answer is a small problem document.
                    Ok(s) => s.collect(MAX_ERROR_BODY).await.map(Answer::Whole),
                    Err(e) => Err(e),
                }
            } else {
                self.inner.transport.send(request).await.map(Answer::Whole)
            };
            let err = match outcome {
                Ok(Answer::Whole(resp)) if !(200..300).contains(&resp.status) => {
                    api_error(&resp, self.inner.sleep.now_unix_millis())
                }
                Ok(answer) => {
                    self.inner.budget.deposit();
                    return Ok(answer);
                }
                Err(e) if e.kind == TransportErrorKind::Stalled => stalled(stall),
                Err(e) if e.kind == TransportErrorKind::Timeout => {
                    clock.count(attempt_timeout);
                    if attempt_timeout < timeout {
                        // This attempt had only what was left of the deadline, and used it up.
                        return Err(deadline_timeout(deadline, true));
                    }
                    Error::Timeout {
                        after: attempt_timeout,
                        sent: Sent::Maybe,
                        limit: TimeoutLimit::Attempt,
                    }
                }
                Err(e) => transport_error(e),
            };
            let harmless = cannot_have_been_applied(&err);
            maybe_applied |= !harmless;
            let err = account_earlier_attempts(err, maybe_applied);
            if !err.is_retryable() || (!replay_safe && !harmless) {
                if err.sent() == Sent::Yes {
                    // The server is answering; let the budget recover.
                    self.inner.budget.deposit();
                }
                return Err(err);
            }
            if retries + 1 >= retry.max_attempts {
                return Err(err);
            }
            let delay = retry.delay(retries + 1, err.retry_after(), &self.inner.jitter);
            // No wait that would end past the deadline, or leave too little for the attempt.
            if delay.saturating_add(MIN_ATTEMPT_WINDOW) > clock.left() {
                return Err(mark_deadline_exhausted(err, deadline, maybe_applied));
            }
            if !self.inner.budget.try_withdraw() {
                return Err(err);
            }
            retries += 1;
            self.inner.sleep.sleep(delay).await;
            clock.count(delay);
        }
    }

    /// Runs `call` and decodes a JSON body.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.execute(call).await?;
        decode_json(&resp)
    }
}

pub(crate) fn decode_json<T: DeserializeOwned>(resp: &Response) -> Result<T> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        Error::decode(
            resp.status,
            e,
            resp.headers.get(headers::REQUEST_ID).map(str::to_owned),
        )
    })
}

/// What an attempt brought back: a whole response, or a 2xx head with its body to read.
enum Answer {
    Whole(Response),
    Streaming(StreamingResponse),
}

/// Largest error body read from a streamed answer (problem documents are small).
const MAX_ERROR_BODY: usize = 1 << 20;

/// A transfer that made no progress for `stall`.
fn stalled(stall: Option<Duration>) -> Error {
    Error::Timeout {
        after: stall.unwrap_or_default(),
        sent: Sent::Maybe,
        limit: TimeoutLimit::Stall,
    }
}

/// An error reading a streamed body after its head came in (nothing is retried then).
pub(crate) fn body_error(e: TransportError, stall: Duration) -> Error {
    match e.kind {
        TransportErrorKind::Stalled => stalled(Some(stall)),
        _ => transport_error(e),
    }
}

/// Whether a failed attempt certainly left no effect: nothing was sent, or the server said it
/// did not process the request (408 timeout reading it, 429 rate limit, 503 unavailable, 409
/// `idempotency_in_flight`: another request with the key is the one that runs).
fn cannot_have_been_applied(err: &Error) -> bool {
    err.sent() == Sent::No
        || matches!(err.status(), Some(408 | 429 | 503))
        || err.api().is_some_and(ApiError::is_in_flight)
}

/// A transport failure other than a timeout.
fn transport_error(e: TransportError) -> Error {
    Error::Transport {
        sent: match e.kind {
            TransportErrorKind::Connect => Sent::No,
            _ => Sent::Maybe,
        },
        message: redact(&e.message),
        deadline_exhausted: false,
    }
}

/// An error that left nothing behind on its own (a refused connection) still reports
/// [`Sent::Maybe`] when an earlier attempt of the same call may have taken effect.
fn account_earlier_attempts(err: Error, maybe_applied: bool) -> Error {
    match err {
        Error::Transport {
            sent: Sent::No,
            message,
            deadline_exhausted,
        } if maybe_applied => Error::Transport {
            sent: Sent::Maybe,
            message,
            deadline_exhausted,
        },
        other => other,
    }
}

/// The call's deadline passed.
fn deadline_timeout(deadline: Duration, maybe_applied: bool) -> Error {
    Error::Timeout {
        after: deadline,
        sent: if maybe_applied { Sent::Maybe } else { Sent::No },
        limit: TimeoutLimit::CallDeadline,
    }
}

/// The call ends with `err` because its deadline leaves no time for another attempt: the error
/// is kept (status, code, `Retry-After` stay readable) and marked; an attempt's timeout becomes
/// the deadline's.
fn mark_deadline_exhausted(err: Error, deadline: Duration, maybe_applied: bool) -> Error {
    match err {
        Error::Api(mut api) => {
            api.deadline_exhausted = true;
            Error::Api(api)
        }
        Error::Transport { sent, message, .. } => Error::Transport {
            sent,
            message,
            deadline_exhausted: true,
        },
        Error::Timeout { .. } => deadline_timeout(deadline, maybe_applied),
        other => other,
    }
}

/// Time spent by one call, against its deadline.
///
/// With a clock ([`Sleep::now`]) the elapsed time is measured; it is never taken to be less
/// than the time the call knows it spent (its waits and the attempts that ran into their
/// timeout), which also covers a runtime with no clock and a wall clock stepped backwards.
struct CallClock<'a> {
    sleep: &'a dyn Sleep,
    start: Option<Duration>,
    deadline: Duration,
    counted: Duration,
}

impl<'a> CallClock<'a> {
    fn start(sleep: &'a dyn Sleep, deadline: Duration) -> Self {
        Self {
            sleep,
            start: sleep.now(),
            deadline,
            counted: Duration::ZERO,
        }
    }

    /// Records time known to have passed.
    fn count(&mut self, spent: Duration) {
        self.counted = self.counted.saturating_add(spent);
    }

    fn elapsed(&self) -> Duration {
        let measured = match (self.start, self.sleep.now()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => Duration::ZERO,
        };
        measured.max(self.counted)
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_sub(self.elapsed())
    }
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// Turns a non-2xx response into [`Error::Api`]. Bodies that are not problem documents (a
/// proxy's HTML page) are not copied into the error: they can be large and say nothing stable.
pub(crate) fn api_error(resp: &Response, now_unix_millis: Option<u64>) -> Error {
    let problem: Option<Problem> = serde_json::from_slice(&resp.body).ok();
    let header_id = resp.headers.get(headers::REQUEST_ID).map(str::to_owned);
    let retry_after = resp
        .headers
        .get(headers::RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, now_unix_millis));
    let (code, title, detail, errors, body_id) = match problem {
        Some(p) => (p.code, p.title, p.detail, p.errors, p.request_id),
        None => (None, None, None, Vec::new(), None),
    };
    let clean = |s: Option<String>| s.map(|s| redact(&s));
    Error::Api(Box::new(ApiError {
        status: resp.status,
        code,
        title: clean(title),
        detail: clean(detail),
        errors: errors
            .into_iter()
            .map(|f| FieldError {
                field: f.field,
                message: redact(&f.message),
            })
            .collect(),
        request_id: body_id.or(header_id),
        retry_after,
        deadline_exhausted: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_validation() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://dp.example/",
            "https://dp.example/prefix",
            "http://[::1]:9000",
            "http://localhost",
        ] {
            assert!(validate_base_url(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            validate_base_url("https://dp.example/").unwrap(),
            "https://dp.example"
        );
        for bad in [
            "",
            "dp.example",
            "/v1",
            "ftp://x",
            "http://",
            "http://:80",
            "http://u:p@host",
            "http://host?x=1",
            "http://host#f",
            "http://host:99999",
            "http://ho st",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            path(&["datasets", "ds_1", "versions", "sha256:ab"]).unwrap(),
            "/v1/datasets/ds_1/versions/sha256:ab"
        );
        assert_eq!(
            path(&["runs", "../x y/z"]).unwrap(),
            "/v1/runs/..%2Fx%20y%2Fz"
        );
        assert!(path(&["runs", ".."]).is_err());
        assert!(path(&["runs", ""]).is_err());
    }

    #[test]
    fn idempotency_key_rules() {
        assert!(validate_idempotency_key("abc-123").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }
}
