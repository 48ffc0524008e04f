//! The SDK's one error type.
//!
//! Every failure answers the question a caller must ask before doing anything else: **could
//! the request have taken effect?** [`Error::sent`] says so ([`Sent::No`] for input that was
//! rejected before anything left the process, [`Sent::Maybe`] for a connection that broke or
//! timed out mid-flight, [`Sent::Yes`] when the server answered). For a call that made several
//! attempts it covers all of them: a refused connection after an earlier attempt broke
//! mid-flight is still [`Sent::Maybe`]. Writes carry an `Idempotency-Key`, so repeating a
//! `Maybe` write with the same key is safe.
//!
//! A call that ran out of time says so: [`Error::Timeout`] names the limit it hit
//! ([`TimeoutLimit`]), and a retryable error the call's deadline did not leave time to retry is
//! returned with [`Error::deadline_exhausted`] set.
//!
//! API errors are RFC 9457 problem documents: [`ApiError`] keeps the stable `code`, the HTTP
//! status, title, detail, field errors, the request id (for the server's logs) and any
//! `Retry-After`. [`Error::is_retryable`] is the exact rule the client's own retry loop uses.
//!
//! Tokens never appear here: the client never copies headers into errors, and text that came
//! from elsewhere (server details, transport messages) passes through [`redact`] first.

use std::time::Duration;

use serde::Deserialize;

/// Whether a failed request may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// Nothing was sent (invalid input, connection refused before any byte).
    No,
    /// Unknown: the request may have been received and even applied.
    Maybe,
    /// The server answered.
    Yes,
}

/// A problem+json field error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct FieldError {
    /// JSON path of the offending field.
    #[serde(default)]
    pub field: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

/// An error response from the server (RFC 9457 problem details).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable problem code (`not_found`, `gate_not_passed`…); `None` when the response was not
    /// a DataPilot problem document (e.g. a proxy's HTML error page).
    pub code: Option<String>,
    /// Short summary.
    pub title: Option<String>,
    /// Human explanation of this occurrence.
    pub detail: Option<String>,
    /// Per-field validation errors.
    pub errors: Vec<FieldError>,
    /// The request id to quote to operators (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The server's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// The call ended with this (retryable) error because its deadline left no time for the
    /// wait before another attempt, e.g. a `Retry-After` longer than the time left.
    pub deadline_exhausted: bool,
}

impl ApiError {
    /// A `409` [`IDEMPOTENCY_IN_FLIGHT`]: another request with this key has not finished.
    pub fn is_in_flight(&self) -> bool {
        self.status == 409 && self.code.as_deref() == Some(IDEMPOTENCY_IN_FLIGHT)
    }
}

/// Which time limit a [`Error::Timeout`] ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutLimit {
    /// One attempt's timeout ([`crate::ClientBuilder::timeout`]).
    Attempt,
    /// The whole call's deadline ([`crate::ClientBuilder::deadline`]), across attempts and
    /// waits.
    CallDeadline,
    /// A transfer (artifact upload or download) made no progress for its stall timeout
    /// ([`crate::ClientBuilder::stall_timeout`], [`crate::retry::DEFAULT_STALL_TIMEOUT`]).
    Stall,
}

/// Every way an SDK call can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call was rejected before sending: bad input or configuration.
    #[error("invalid request: {message}")]
    Build {
        /// What is wrong.
        message: String,
    },
    /// The transport failed (DNS, connect, reset, TLS).
    #[error(
        "transport error ({sent:?} sent): {message}{}",
        deadline_note(*.deadline_exhausted, None)
    )]
    Transport {
        /// Whether the request may have reached the server (over every attempt of the call).
        sent: Sent,
        /// Transport's description, redacted.
        message: String,
        /// The call ended with this error because its deadline left no time for another
        /// attempt.
        deadline_exhausted: bool,
    },
    /// No response in time: one attempt ran into its timeout (and no retry followed), or the
    /// call's deadline passed.
    #[error("{}", format_timeout(*.after, *.sent, *.limit))]
    Timeout {
        /// The limit that elapsed: the attempt's timeout or the call's deadline.
        after: Duration,
        /// Whether the request may have reached the server (over every attempt of the call):
        /// [`Sent::Maybe`] when an attempt was cut off in flight, [`Sent::No`] when no attempt
        /// can have had an effect.
        sent: Sent,
        /// Which limit it was.
        limit: TimeoutLimit,
    },
    /// The server answered with an error status.
    #[error("{}", format_api(.0))]
    Api(Box<ApiError>),
    /// The server answered with a success status but the body could not be decoded.
    #[error("could not decode response (HTTP {status}): {message}")]
    Decode {
        /// HTTP status of the response.
        status: u16,
        /// What failed to parse.
        message: String,
        /// Request id of the response, if any.
        request_id: Option<String>,
    },
    /// A cryptographic or integrity check failed (downloaded content, proofs, checkpoints).
    #[error("verification failed: {0}")]
    Verification(String),
}

fn deadline_note(exhausted: bool, retry_after: Option<Duration>) -> String {
    match (exhausted, retry_after) {
        (false, _) => String::new(),
        (true, Some(after)) => format!(
            " (not retried: the server asked to wait {after:?}, longer than the call's deadline leaves)"
        ),
        (true, None) => " (not retried: the call's deadline leaves no time for another attempt)".into(),
    }
}

fn format_timeout(after: Duration, sent: Sent, limit: TimeoutLimit) -> String {
    let sent = match sent {
        Sent::No => "the request was not sent",
        _ => "the request may have been sent",
    };
    match limit {
        TimeoutLimit::CallDeadline => format!("call deadline of {after:?} passed; {sent}"),
        TimeoutLimit::Stall => format!("transfer stalled: no progress for {after:?}; {sent}"),
        _ => format!("attempt timed out after {after:?}; {sent}"),
    }
}

fn format_api(e: &ApiError) -> String {
    let mut s = format!("HTTP {}", e.status);
    if let Some(code) = &e.code {
        s.push(' ');
        s.push_str(code);
    }
    if let Some(text) = e.detail.as_ref().or(e.title.as_ref()) {
        s.push_str(": ");
        s.push_str(text);
    }
    if let Some(id) = &e.request_id {
        s.push_str(" (request id ");
        s.push_str(id);
        s.push(')');
    }
    s.push_str(&deadline_note(e.deadline_exhausted, e.retry_after));
    s
}

/// Statuses worth retrying: the request was not processed, or the server asked to come back.
pub const RETRYABLE_STATUSES: [u16; 5] = [408, 429, 502, 503, 504];

/// The one `409` worth retrying: a request with the same `Idempotency-Key` is still running (or
/// its answer is not readable yet), so this one did nothing; a retry gets that request's answer
/// (docs/api.md, "Idempotency"). Other 409s (`already_exists`, `run_sealed`, ...) are final.
pub const IDEMPOTENCY_IN_FLIGHT: &str = "idempotency_in_flight";

impl Error {
    pub(crate) fn build(message: impl Into<String>) -> Self {
        Self::Build {
            message: message.into(),
        }
    }

    pub(crate) fn decode(
        status: u16,
        message: impl std::fmt::Display,
        request_id: Option<String>,
    ) -> Self {
        Self::Decode {
            status,
            message: redact(&message.to_string()),
            request_id,
        }
    }

    /// Whether the request may have reached the server.
    pub fn sent(&self) -> Sent {
        match self {
            Self::Build { .. } => Sent::No,
            Self::Transport { sent, .. } => *sent,
            Self::Timeout { sent, .. } => *sent,
            Self::Api(_) | Self::Decode { .. } => Sent::Yes,
            // Verification happens on a response the server sent.
            Self::Verification(_) => Sent::Yes,
        }
    }

    /// Whether repeating the same call (with the same idempotency key) could succeed:
    /// transport failures, timeouts, HTTP 408, 429, 502, 503, 504 and `409`
    /// [`IDEMPOTENCY_IN_FLIGHT`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Api(api) => RETRYABLE_STATUSES.contains(&api.status) || api.is_in_flight(),
            _ => false,
        }
    }

    /// HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.status),
            Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stable problem code (`not_found`, `run_sealed`…), for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.code.as_deref(),
            _ => None,
        }
    }

    /// Request id of the failed response, when the server answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.request_id.as_deref(),
            Self::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(api) => api.retry_after,
            _ => None,
        }
    }

    /// Whether the call gave up because of its deadline: a [`TimeoutLimit::CallDeadline`]
    /// timeout, or a retryable error that was not retried because the deadline left no time
    /// for the wait (e.g. a `Retry-After` longer than the time left).
    pub fn deadline_exhausted(&self) -> bool {
        match self {
            Self::Timeout { limit, .. } => *limit == TimeoutLimit::CallDeadline,
            Self::Transport {
                deadline_exhausted, ..
            } => *deadline_exhausted,
            Self::Api(api) => api.deadline_exhausted,
            _ => false,
        }
    }

    /// The problem details, for API errors.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Replaces anything shaped like a DataPilot secret (`dpt_…`, `dpr_…`) or a bearer credential
/// in `text` with a redaction marker. Applied to every string that came from outside the SDK
/// before it is stored in an [`Error`], as defence in depth: a proxy or transport error message
/// could echo a header.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["dpt_", "dpr_", "Bearer ", "bearer "]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min_by_key(|(i, _)| *i);
        let Some((i, prefix)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        out.push_str(prefix);
        let after = &rest[i + prefix.len()..];
        let secret_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.~+/=".contains(c)))
            .unwrap_or(after.len());
        if secret_len > 0 {
            out.push_str("<redacted>");
        }
        rest = &after[secret_len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_secrets() {
        assert_eq!(
            redact("bad token dpt_ABCDEF234567 and Bearer xyz.abc, ok"),
            "bad token dpt_<redacted> and Bearer <redacted>, ok"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("dpr_"), "dpr_");
    }

    #[test]
    fn retryable_statuses() {
        for status in [400, 401, 403, 404, 409, 413, 422, 500] {
            let e = Error::Api(Box::new(ApiError {
                status,
                code: None,
                title: None,
                detail: None,
                errors: vec![],
                request_id: None,
                retry_after: None,
                deadline_exhausted: false,
            }));
            assert!(!e.is_retryable(), "{status}");
            assert_eq!(e.sent(), Sent::Yes);
        }
        let attempt = Error::Timeout {
            after: Duration::from_secs(1),
            sent: Sent::Maybe,
            limit: TimeoutLimit::Attempt,
        };
        assert!(attempt.is_retryable());
        assert!(!attempt.deadline_exhausted());
        assert_eq!(attempt.sent(), Sent::Maybe);
        let deadline = Error::Timeout {
            after: Duration::from_secs(60),
            sent: Sent::No,
            limit: TimeoutLimit::CallDeadline,
        };
        assert!(deadline.deadline_exhausted());
        assert_eq!(deadline.sent(), Sent::No);
        assert_eq!(
            deadline.to_string(),
            "call deadline of 60s passed; the request was not sent"
        );
        assert_eq!(
            attempt.to_string(),
            "attempt timed out after 1s; the request may have been sent"
        );
        assert!(!Error::build("x").is_retryable());
        assert_eq!(Error::build("x").sent(), Sent::No);
    }

    #[test]
    fn only_the_in_flight_409_is_retryable() {
        let conflict = |code: &str| {
            Error::Api(Box::new(ApiError {
                status: 409,
                code: Some(code.to_owned()),
                title: None,
                detail: None,
                errors: vec![],
                request_id: None,
                retry_after: None,
                deadline_exhausted: false,
            }))
        };
        assert!(conflict(IDEMPOTENCY_IN_FLIGHT).is_retryable());
        for code in [
            "already_exists",
            "run_sealed",
            "immutable",
            "secret_not_replayable",
        ] {
            assert!(!conflict(code).is_retryable(), "{code}");
        }
    }
}
