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
//! - Streamed bodies ([`Body::Stream`]) are read into memory before sending here, because
//!   reqwest's streaming bodies must be `Send` and our chunk readers are not (they are built
//!   for JS streams). Browser and Node uploads stream; native artifact uploads are bounded by
//!   memory. This is recorded in `docs/sdk-rust.md`.
//!
//! The client is `!Send`: drive it with a current-thread runtime, `block_on` or a `LocalSet`.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::transport::{
    Body, Headers, LocalBoxFuture, Method, Request, Response, Sleep, Transport, TransportError,
    TransportErrorKind,
};

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

    async fn send_inner(&self, request: Request) -> Result<Response, TransportError> {
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
        builder = match &request.body {
            Body::Empty => builder,
            Body::Bytes(b) => builder.body(b.to_vec()),
            other => builder.body(
                other
                    .collect()
                    .await
                    .map_err(|e| TransportError::new(TransportErrorKind::Connect, e.0))?,
            ),
        };
        let resp = builder.send().await.map_err(map_error)?;
        let status = resp.status().as_u16();
        let mut headers = Headers::new();
        for (name, value) in resp.headers() {
            if let Ok(v) = value.to_str() {
                headers.append(name.as_str(), v);
            }
        }
        let body = resp.bytes().await.map_err(map_error)?;
        Ok(Response::new(status, headers, body.to_vec()))
    }
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
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(self.send_inner(request))
    }
}

/// [`Sleep`] on tokio's timer and the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
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
