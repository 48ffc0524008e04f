//! One method on [`crate::Client`] per operation of the contract, grouped by OpenAPI tag (one
//! file per tag). The method name is the `operationId` in snake_case.
//!
//! Every method returns a builder and sends nothing until it is run:
//!
//! - reads (and the one PUT, `updatePolicy`) return an [`Operation`]: set per-call options
//!   ([`Operation::timeout`], [`Operation::deadline`], [`Operation::options`]), then
//!   `.send().await`;
//! - POSTs return a [`WriteOperation`], which also takes an
//!   [`WriteOperation::idempotency_key`] (without one, a fresh key is generated per call and
//!   reused on that call's retries);
//! - lists return a [`crate::Pager`] (per-page options, `next_page`, `collect_all`,
//!   `into_stream`).
//!
//! Arguments are checked and request bodies serialized when the method is called; a problem
//! there is returned by `send()` as an [`crate::Error::Build`] (nothing was sent), so every
//! method has the same shape whatever its arguments. Builders own a clone of the client (an
//! `Arc`), so `tokio::spawn(client.get_run(&id).send())` works natively.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::client::{decode_json, Call, Client, RequestOptions};
use crate::error::{Error, Result};
use crate::transport::{Method, Response};

mod artifacts;
mod audit;
mod datasets;
mod evidence;
mod gates;
mod ledger;
mod lineage;
mod metrics;
mod policy;
mod queries;
mod runs;
mod system;
mod tokens;

pub use artifacts::{ArtifactByteStream, ArtifactStream, DownloadArtifactStream, ProgressSink};
#[cfg(feature = "native")]
pub use artifacts::{ArtifactReader, DownloadToFile, FileUpload};
pub use datasets::{
    register_in_parts, PartSource, PartedRegistration, RegistrationProgress, DEFAULT_FILES_PAGE,
    DEFAULT_PART_FILES, MAX_FILES_PAGE, MAX_ONE_SHOT_FILES,
};
pub use queries::MAX_COMPARE_RUNS;

/// Turns the 2xx response of an operation into its result.
type Decode<T> = fn(Response) -> Result<T>;

fn json_body<T: DeserializeOwned>(resp: Response) -> Result<T> {
    decode_json(&resp)
}

/// One API call, ready to send: set per-call options, then `.send().await`. Returned by the
/// client's read methods and by `update_policy`. See the [module docs](self).
#[must_use = "an operation does nothing until `.send().await`"]
pub struct Operation<T> {
    client: Client,
    call: Result<Call>,
    options: RequestOptions,
    decode: Decode<T>,
}

impl<T> fmt::Debug for Operation<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Operation");
        match &self.call {
            Ok(call) => d.field("method", &call.method).field("path", &call.path),
            Err(e) => d.field("error", e),
        };
        d.field("options", &self.options).finish_non_exhaustive()
    }
}

impl<T> Operation<T> {
    pub(crate) fn new(client: &Client, call: Result<Call>, decode: Decode<T>) -> Self {
        Self {
            client: client.clone(),
            call,
            options: RequestOptions::default(),
            decode,
        }
    }

    /// Per-attempt timeout of this call (the client's by default).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Deadline of this whole call, all attempts and waits (the client's by default).
    pub fn deadline(mut self, deadline: std::time::Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// Stall timeout of this call if it is a transfer (artifact upload or download; the
    /// client's by default, [`crate::retry::DEFAULT_STALL_TIMEOUT`]); ignored by other calls.
    pub fn stall_timeout(mut self, stall: std::time::Duration) -> Self {
        self.options.stall_timeout = Some(stall);
        self
    }

    /// Replaces all per-call options. An idempotency key in them is refused by `send()` unless
    /// the operation is a POST.
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends the call (with retries, within its deadline) and decodes the answer.
    pub async fn send(self) -> Result<T> {
        let mut call = self.call?;
        if self.options.idempotency_key.is_some() && call.method != Method::Post {
            return Err(Error::build(format!(
                "{} {} takes no Idempotency-Key",
                call.method, call.path
            )));
        }
        call.options = self.options;
        let resp = self.client.execute(call).await?;
        (self.decode)(resp)
    }
}

impl<T: DeserializeOwned> Operation<T> {
    pub(crate) fn json(client: &Client, call: Result<Call>) -> Self {
        Self::new(client, call, json_body::<T>)
    }
}

/// A write (POST): an [`Operation`] that also takes an `Idempotency-Key`. See the
/// [module docs](self).
#[must_use = "an operation does nothing until `.send().await`"]
#[derive(Debug)]
pub struct WriteOperation<T>(Operation<T>);

impl<T> WriteOperation<T> {
    pub(crate) fn new(client: &Client, call: Result<Call>, decode: Decode<T>) -> Self {
        Self(Operation::new(client, call, decode))
    }

    /// The `Idempotency-Key` to send on every attempt (1-255 visible ASCII). Derive it from
    /// something stable, e.g. a CI job id, to make the write safe to repeat across process
    /// restarts; by default a fresh random key is used per call.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.0.options.idempotency_key = Some(key.into());
        self
    }

    /// Per-attempt timeout of this call (the client's by default).
    pub fn timeout(self, timeout: std::time::Duration) -> Self {
        Self(self.0.timeout(timeout))
    }

    /// Deadline of this whole call, all attempts and waits (the client's by default).
    pub fn deadline(self, deadline: std::time::Duration) -> Self {
        Self(self.0.deadline(deadline))
    }

    /// Stall timeout of this call if it is a transfer (artifact upload; the client's by
    /// default); ignored by other calls.
    pub fn stall_timeout(self, stall: std::time::Duration) -> Self {
        Self(self.0.stall_timeout(stall))
    }

    /// Replaces all per-call options.
    pub fn options(self, options: RequestOptions) -> Self {
        Self(self.0.options(options))
    }

    /// Sends the call (with retries under one idempotency key, within its deadline) and
    /// decodes the answer.
    pub async fn send(self) -> Result<T> {
        self.0.send().await
    }
}

impl<T: DeserializeOwned> WriteOperation<T> {
    pub(crate) fn json(client: &Client, call: Result<Call>) -> Self {
        Self::new(client, call, json_body::<T>)
    }
}
