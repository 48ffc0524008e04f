//! RFC 9457 problem details: the one error shape of the API.
//!
//! Every error the server sends, whether raised by a handler, by an extractor (bad JSON, wrong
//! content type, oversized body) or by the router itself (unknown route, wrong method), is an
//! `application/problem+json` document with a stable machine-readable `code` and the request id
//! of the request that caused it. Clients branch on `code`, never on `title` or `detail`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, set by the request-context middleware so that an
    /// error built deep inside a handler can name its request without threading it through.
    pub static REQUEST_ID: String;
}

/// The id of the request this task is serving, or `""` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|r| r.clone()).unwrap_or_default()
}

/// Base of the `type` URI of every problem.
pub const PROBLEM_BASE: &str = "https://animus.dev/datapilot/problems/";

/// One invalid field of a request, for `validation_failed` and `unknown_field`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An API error: a stable code plus a human detail. The HTTP status and title follow from the
/// code, so the same code can never be sent with two different statuses.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra response headers (`Allow` on 405, `Retry-After` on 503).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The stable code table of the plan: code → (status, title).
pub fn code_info(code: &str) -> (StatusCode, &'static str) {
    match code {
        "bad_request" => (StatusCode::BAD_REQUEST, "Bad request"),
        "validation_failed" => (StatusCode::BAD_REQUEST, "Validation failed"),
        "unknown_field" => (StatusCode::BAD_REQUEST, "Unknown field"),
        "unauthenticated" => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
        "forbidden" => (StatusCode::FORBIDDEN, "Forbidden"),
        "not_found" => (StatusCode::NOT_FOUND, "Not found"),
        "method_not_allowed" => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        "already_exists" => (StatusCode::CONFLICT, "Already exists"),
        "immutable" => (StatusCode::CONFLICT, "Immutable"),
        "run_sealed" => (StatusCode::CONFLICT, "Run sealed"),
        "idempotency_in_flight" => (StatusCode::CONFLICT, "Idempotent request in flight"),
        "secret_not_replayable" => (StatusCode::CONFLICT, "Secret not replayable"),
        "precondition_failed" => (StatusCode::PRECONDITION_FAILED, "Precondition failed"),
        "payload_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
        "unsupported_media_type" => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
        "digest_mismatch" => (StatusCode::UNPROCESSABLE_ENTITY, "Digest mismatch"),
        "gate_not_passed" => (StatusCode::UNPROCESSABLE_ENTITY, "Quality gate not passed"),
        "idempotency_key_reused" => (StatusCode::UNPROCESSABLE_ENTITY, "Idempotency key reused"),
        "manifest_too_large" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Manifest too large for one response",
        ),
        "rate_limited" => (StatusCode::TOO_MANY_REQUESTS, "Rate limited"),
        "request_timeout" => (StatusCode::REQUEST_TIMEOUT, "Request timeout"),
        "uri_too_long" => (StatusCode::URI_TOO_LONG, "URI too long"),
        "headers_too_large" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request header fields too large",
        ),
        "unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    }
}

impl ApiError {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new("bad_request", detail)
    }
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            code: "validation_failed",
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.to_string(),
                message,
            }],
            headers: Vec::new(),
        }
    }
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new("unauthenticated", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new("forbidden", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new("not_found", detail)
    }
    /// A server fault. The cause is logged, never sent: it may hold paths or SQL.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            "internal",
            "internal server error; see the server log for this request id",
        )
    }
    pub fn status(&self) -> StatusCode {
        code_info(self.code).0
    }
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    request_id: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title) = code_info(self.code);
        // The contract caps `detail` at 4096 characters and field errors at 1024.
        let detail = clip(&self.detail, 4000);
        let errors: Vec<FieldError> = self
            .errors
            .iter()
            .take(100)
            .map(|e| FieldError {
                field: clip(&e.field, 1000),
                message: clip(&e.message, 1000),
            })
            .collect();
        let problem = Problem {
            type_: format!("{PROBLEM_BASE}{}", self.code),
            title,
            status: status.as_u16(),
            detail: &detail,
            code: self.code,
            request_id: current_request_id(),
            errors: &errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// At most `max` characters, never empty (the contract requires a non-empty detail).
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Header a handler's error carries when its write lost the race for its `Idempotency-Key`
/// (`StoreError::KeyTaken`): the idempotency middleware removes it and replays the winner's
/// answer. Never sent to a client.
pub const KEY_TAKEN_MARKER: &str = "x-datapilot-internal-key-taken";

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(d) => ApiError::not_found(d),
            StoreError::Conflict(code, d) => ApiError::new(code, d),
            StoreError::Unprocessable(code, d) => ApiError::new(code, d),
            StoreError::Invalid(field, msg) => ApiError::validation(&field, msg),
            StoreError::KeyTaken => ApiError::new(
                "idempotency_in_flight",
                "another request with this Idempotency-Key completed meanwhile; retry to get its answer",
            )
            .with_header(
                header::HeaderName::from_static(KEY_TAKEN_MARKER),
                HeaderValue::from_static("1"),
            ),
            StoreError::Unavailable(d) => {
                tracing::warn!(error = %d, "storage unavailable");
                ApiError::new(
                    "unavailable",
                    "the database is unavailable or overloaded; nothing was written, retry later",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("2"))
            }
            StoreError::Internal(d) => ApiError::internal(d),
        }
    }
}
