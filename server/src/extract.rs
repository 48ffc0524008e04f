//! Strict request extractors: JSON bodies, query strings and path parameters whose failures
//! are problem+json with stable codes instead of axum's plain-text rejections.
//!
//! `JsonBody` enforces the contract's body rules in order: `Content-Type: application/json`
//! (415), the 1 MiB cap (413, checked on `Content-Length` first and again while reading),
//! syntax (400 `bad_request`), unknown fields (400 `unknown_field`, naming the field) and
//! types/missing fields (400 `validation_failed`).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Cap of JSON request bodies (the default; see the per-operation caps below).
pub const JSON_LIMIT: usize = 1 << 20;
/// `registerDatasetVersion`: manifests of up to 100 000 files.
pub const MANIFEST_LIMIT: usize = 64 << 20;
/// `appendMetrics`: up to 10 000 points.
pub const METRICS_LIMIT: usize = 4 << 20;
/// The largest JSON cap of any operation.
pub const MAX_JSON_LIMIT: usize = MANIFEST_LIMIT;

/// True if the Content-Type is `application/json` (parameters such as charset allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    content_type_is(headers, "application/json")
}

pub fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(want))
}

/// Reject a declared `Content-Length` above `limit` before reading anything.
pub fn check_content_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        "payload_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

/// Bodies over a cap but below this are read to the end and discarded before the 413 is sent,
/// so the client (still writing) receives the answer instead of a connection reset. Larger
/// ones are refused at once and the connection closes.
pub const DRAIN_CAP: u64 = 16 << 20;

/// Reject a declared `Content-Length` above `limit` without reading, when draining is not worth
/// it (above [`DRAIN_CAP`]).
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    check_content_length(headers, limit.max(DRAIN_CAP))
}

/// The process-wide budget for request bodies held in memory (`--max-buffered-bytes`), and how
/// long a request waits for room (`--body-stall-timeout`). Unset (unit tests): no budget.
static BODY_BUDGET: std::sync::OnceLock<(
    std::sync::Arc<tokio::sync::Semaphore>,
    usize,
    std::time::Duration,
)> = std::sync::OnceLock::new();

/// Set the body budget once, at start-up.
pub fn set_body_budget(bytes: usize, wait: std::time::Duration) {
    let bytes = bytes.clamp(1 << 20, tokio::sync::Semaphore::MAX_PERMITS);
    let _ = BODY_BUDGET.set((
        std::sync::Arc::new(tokio::sync::Semaphore::new(bytes)),
        bytes,
        wait,
    ));
}

/// Room in the body budget, held while the buffered bytes live; released on drop.
#[derive(Debug, Clone)]
pub struct BufferedBody(#[allow(dead_code)] std::sync::Arc<tokio::sync::OwnedSemaphorePermit>);

/// Take `n` bytes of the budget, waiting for room up to the configured time.
async fn reserve(n: usize) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    let Some((sem, total, wait)) = BODY_BUDGET.get() else {
        return Ok(None);
    };
    // One request never needs more than the whole budget (it then waits for all of it).
    let n = n.clamp(1, *total).min(u32::MAX as usize) as u32;
    match tokio::time::timeout(*wait, sem.clone().acquire_many_owned(n)).await {
        Ok(Ok(p)) => Ok(Some(p)),
        _ => Err(ApiError::new(
            "unavailable",
            "the server is holding as many request bodies as its memory budget allows; retry shortly",
        )
        .with_header(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"))),
    }
}

/// Read a whole body up to `limit` bytes, within the process's body budget: the declared
/// `Content-Length` (or, for a chunked body, each chunk as it arrives) is reserved before it
/// is read, and the reservation comes back with the bytes. An oversized body is drained (up
/// to [`DRAIN_CAP`]) and answered with 413.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<(bytes::Bytes, Option<BufferedBody>), ApiError> {
    use http_body_util::BodyExt;
    let mut held = match declared {
        Some(n) if n <= limit as u64 => reserve(n as usize).await?,
        _ => None,
    };
    let reserved_up_front = held.is_some();
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if crate::auth::is_body_digest_mismatch(&e) {
                ApiError::unauthenticated(e.to_string())
            } else {
                not_kept(ApiError::bad_request(format!(
                    "could not read the request body: {e}"
                )))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit as u64 {
                if !reserved_up_front {
                    if let Some(p) = reserve(data.len()).await? {
                        match held.as_mut() {
                            Some(h) => h.merge(p),
                            None => held = Some(p),
                        }
                    }
                }
                buf.extend_from_slice(&data);
            } else if total > DRAIN_CAP {
                break;
            }
        }
    }
    if total > limit as u64 {
        return Err(too_large(limit as u64));
    }
    Ok((
        buf.freeze(),
        held.map(|p| BufferedBody(std::sync::Arc::new(p))),
    ))
}

/// Header marking an error that says nothing about the request itself (the client's body was
/// cut or stalled): the idempotency middleware does not keep it as the key's answer, so a
/// retry with the key runs again. Removed before the response leaves.
pub const NOT_KEPT_MARKER: &str = "x-datapilot-internal-not-kept";

/// Mark `e` as an answer not to keep for an `Idempotency-Key` (see [`NOT_KEPT_MARKER`]).
pub fn not_kept(e: ApiError) -> ApiError {
    e.with_header(
        header::HeaderName::from_static(NOT_KEPT_MARKER),
        axum::http::HeaderValue::from_static("1"),
    )
}

/// The declared `Content-Length`, if any and valid.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Read a body that is already in memory (a `Body::from(bytes)`).
async fn read_body_unbudgeted(
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit as u64))
}

/// Map a serde_json error to the contract's codes.
pub fn json_error(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("").to_string();
        return ApiError {
            code: "unknown_field",
            detail: format!("unknown field {field:?}"),
            errors: vec![FieldError {
                field,
                message: "unknown field".into(),
            }],
            headers: Vec::new(),
        };
    }
    match e.classify() {
        serde_json::error::Category::Data => {
            let field = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .unwrap_or("body")
                .to_string();
            ApiError {
                code: "validation_failed",
                detail: msg.clone(),
                errors: vec![FieldError {
                    field,
                    message: msg,
                }],
                headers: Vec::new(),
            }
        }
        _ => ApiError::bad_request(format!("malformed JSON: {msg}")),
    }
}

/// A JSON request body of at most `LIMIT` bytes, parsed strictly by [`JsonBody::parse`].
///
/// Extraction itself never fails and reads nothing: handlers check authorization first and
/// only then parse, so a caller without the right role gets 403 whatever body it sent.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = JSON_LIMIT> {
    req: Request,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T, S: Send + Sync, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(JsonBody {
            req,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: DeserializeOwned, const LIMIT: usize> JsonBody<T, LIMIT> {
    /// Content type (415), size (413), syntax (400), unknown fields and types (400).
    pub async fn parse(self) -> Result<T, ApiError> {
        if !is_json(self.req.headers()) {
            return Err(ApiError::new(
                "unsupported_media_type",
                "the request body must be Content-Type: application/json",
            ));
        }
        check_declared_length(self.req.headers(), LIMIT as u64)?;
        // Buffered already (by the idempotency middleware, which holds its budget room in the
        // request): do not count the same bytes twice.
        let already = self.req.extensions().get::<BufferedBody>().cloned();
        let declared = declared_length(self.req.headers());
        let (bytes, _room) = if already.is_some() {
            (
                read_body_unbudgeted(self.req.into_body(), LIMIT).await?,
                already,
            )
        } else {
            read_body(self.req.into_body(), LIMIT, declared).await?
        };
        serde_json::from_slice(&bytes).map_err(json_error)
    }
}

/// A query string parsed into `T`; failures are 400 `validation_failed`.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        // serde_urlencoded decodes invalid UTF-8 to U+FFFD: refuse it instead of guessing.
        if let Some(q) = parts.uri.query() {
            if std::str::from_utf8(&percent_decode(q)).is_err() {
                return Err(ApiError::validation(
                    "query",
                    "is not valid UTF-8 once percent-decoded",
                ));
            }
        }
        axum::extract::Query::<T>::from_request_parts(parts, s)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| {
                let msg = e.body_text();
                ApiError {
                    code: "validation_failed",
                    detail: msg.clone(),
                    errors: vec![FieldError {
                        field: "query".into(),
                        message: msg,
                    }],
                    headers: Vec::new(),
                }
            })
    }
}

/// Path parameters; failures are 400 `validation_failed`.
#[derive(Debug)]
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        // Ids that cannot exist are malformed requests (400), not missing objects (404).
        let raw = axum::extract::RawPathParams::from_request_parts(parts, s)
            .await
            .map_err(|e| ApiError::validation("path", e.body_text()))?;
        for (name, value) in &raw {
            check_path_param(name, value)?;
        }
        axum::extract::Path::<T>::from_request_parts(parts, s)
            .await
            .map(|p| P(p.0))
            .map_err(|e| ApiError::validation("path", e.body_text()))
    }
}

/// Bytes of a percent-encoded query (`+` is a space), without judging their encoding.
fn percent_decode(q: &str) -> Vec<u8> {
    let b = q.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The contract's pattern for an id of `prefix` (`ds_`, `run_`, `art_`, `tok_`): 26 Crockford
/// base32 characters.
fn server_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 26
            && rest
                .bytes()
                .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c)))
    })
}

/// A path (or query) parameter against the contract's pattern for its name.
pub(crate) fn check_path_param(name: &str, value: &str) -> Result<(), ApiError> {
    let ok = match name {
        "dataset_id" => server_id(value, "ds_"),
        "run_id" => server_id(value, "run_"),
        "artifact_id" => server_id(value, "art_"),
        "token_id" => server_id(value, "tok_"),
        "digest" => value.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        }),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            name,
            format!("{value:?} does not match the pattern of a {name}"),
        ))
    }
}

/// Paging query parameters shared by every list operation.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub order: Option<String>,
}

impl PageQuery {
    pub fn to_req(&self, scope: &ListScope) -> Result<crate::store::PageReq, ApiError> {
        page_req(
            self.limit,
            self.cursor.as_deref(),
            self.order.as_deref(),
            scope,
        )
    }
}

/// What a list's cursor is bound to: the request path and every query parameter except
/// `limit` and `cursor` (so the order and the filters), hashed. A cursor handed to another
/// list, another parent resource or other filters is a 400 instead of a wrong page.
#[derive(Debug, Clone, Copy)]
pub struct ListScope(pub u32);

impl<S: Send + Sync> FromRequestParts<S> for ListScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        use sha2::{Digest, Sha256};
        // The raw (still percent-encoded) pairs: a client repeats its own query text, so
        // another spelling of the same value may count as other filters.
        let mut pairs: Vec<(&str, &str)> = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(k, _)| *k != "limit" && *k != "cursor")
            .collect();
        pairs.sort();
        let mut h = Sha256::new();
        h.update(parts.uri.path().as_bytes());
        for (k, v) in &pairs {
            // Length-prefixed, so no two parameter lists hash the same text.
            for part in [k, v] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        let d = h.finalize();
        Ok(ListScope(u32::from_be_bytes([d[0], d[1], d[2], d[3]])))
    }
}

/// Validate `limit` (1–500, default 50) and `order` (`asc`, the default, or `desc`), and
/// decode `cursor`, which must come from the same list with the same filters (`scope`).
pub fn page_req(
    limit: Option<u32>,
    cursor: Option<&str>,
    order: Option<&str>,
    scope: &ListScope,
) -> Result<crate::store::PageReq, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 500"));
    }
    let desc = match order {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::validation("order", "must be asc or desc")),
    };
    let after = match cursor {
        None => None,
        Some(c) => {
            let (key, bound) = crate::util::decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request("invalid cursor: pass back a next_cursor unchanged")
            })?;
            if bound != scope.0 {
                return Err(ApiError::bad_request(
                    "cursor from another list: a next_cursor works only with the operation, \
                     path, order and filters of the request that returned it",
                ));
            }
            Some(key)
        }
    };
    Ok(crate::store::PageReq {
        limit,
        after,
        desc,
        scope: scope.0,
    })
}
