//! `Idempotency-Key` on POST: a retried write is answered, not repeated.
//!
//! The key is scoped to the caller, the method and the path (two principals cannot collide or
//! read each other's stored responses) and bound to a fingerprint of the request: method, path with query, content type
//! and the SHA-256 of the body. For a streamed artifact upload the body is not buffered: the
//! query already carries the declared SHA-256, and a body that differs from it is refused, so
//! the fingerprint still pins the content.
//!
//! First use marks the key in flight in the database and runs the request; a response below
//! 500 is stored and later replayed byte for byte with `Idempotent-Replayed: true`. A write
//! stores its response in its own transaction, with its rows and its audit event (the key
//! travels to the store in [`IdemKey`] / [`crate::store::Writer`]), so a crash can never
//! leave a committed write whose key is released; answers of requests that wrote nothing
//! (errors below 500) are stored here afterwards. A second request with the same key while
//! the first runs gets 409 `idempotency_in_flight`; with a different request, 422
//! `idempotency_key_reused`. A 5xx, a failure to store the answer, or a crash before the
//! write committed (in-flight keys are cleared at start-up) releases the key so the client can
//! retry. Keys are kept 24 hours.
//!
//! Secrets are never kept: a success of `createToken` or `createRun` is stored without its
//! `secret` / `run_token` (plus the id of the token or run), and a retry with its key gets 409
//! `secret_not_replayable` naming that id instead of a replay, since the secret exists only in
//! the first response.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::AuthState;
use crate::error::ApiError;
use crate::extract::{check_declared_length, content_type_is, read_body, MAX_JSON_LIMIT};
use crate::store::{IdemBegin, IdemKey, StoredResponse};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// Largest response that is kept for replay (API responses are small JSON documents).
const MAX_STORED_RESPONSE: usize = 4 << 20;
/// Response headers worth replaying.
const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "x-content-sha256"];

pub async fn middleware(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match run(st, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(st: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| crate::validate::idempotency_key(k))
        .ok_or_else(|| {
            ApiError::validation("Idempotency-Key", "must be 1-255 visible ASCII characters")
        })?
        .to_string();
    // Unauthenticated requests fail in the handler; nothing to remember for them.
    let scope = match req.extensions().get::<AuthState>() {
        // The contract scopes a key to principal, method and path: the same key on another
        // operation is a different key.
        Some(AuthState::Ok(p)) => {
            format!(
                "{}:{} {} {}",
                p.actor.kind,
                p.actor.id,
                req.method(),
                req.uri().path()
            )
        }
        _ => return Ok(next.run(req).await),
    };

    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let streamed = content_type_is(&parts.headers, "application/octet-stream");
    let (body, body_hash) = if streamed {
        (body, String::from("streamed"))
    } else {
        // JSON bodies are small (capped); buffer to fingerprint, then hand the bytes on.
        // The handler's extractor applies the operation's own (possibly smaller) cap.
        check_declared_length(&parts.headers, MAX_JSON_LIMIT as u64)?;
        let bytes = read_body(body, MAX_JSON_LIMIT).await?;
        let h = hex::encode(Sha256::digest(&bytes));
        (Body::from(bytes), h)
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let fingerprint = hex::encode(Sha256::digest(
        format!("{}\n{path}\n{content_type}\n{body_hash}", parts.method).as_bytes(),
    ));
    let mut req = Request::from_parts(parts, body);

    let (s2, k2, f2) = (scope.clone(), key.clone(), fingerprint.clone());
    let op_path = req.uri().path().to_string();
    match st.db(move |s| s.idem_begin(&s2, &k2, &f2)).await? {
        IdemBegin::Proceed => {}
        IdemBegin::Replay(stored) => {
            return Ok(match &stored.secret_of {
                Some(id) => secret_not_replayable(&op_path, id),
                None => replay(stored),
            })
        }
        IdemBegin::InFlight => {
            return Err(ApiError::new(
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still being processed; retry later",
            ))
        }
        IdemBegin::Mismatch => {
            return Err(ApiError::new(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ))
        }
    }

    // The handler's store write completes the key in its own transaction (see `Writer`).
    req.extensions_mut().insert(IdemKey {
        scope: scope.clone(),
        key: key.clone(),
        fingerprint,
    });
    let resp = next.run(req).await;
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(b) => b,
        Err(e) => {
            let (s2, k2) = (scope, key);
            let _ = st.db(move |s| s.idem_abort(&s2, &k2)).await;
            return Err(ApiError::internal(format!(
                "response too large to keep: {e}"
            )));
        }
    };
    let (s2, k2) = (scope, key);
    if status.is_server_error() {
        let _ = st.db(move |s| s.idem_abort(&s2, &k2)).await;
    } else {
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|h| {
                parts
                    .headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (h.to_string(), v.to_string()))
            })
            .collect();
        match keepable(&op_path, status, &bytes) {
            Some((body, secret_of)) => {
                let stored = StoredResponse {
                    status: status.as_u16(),
                    headers,
                    body,
                    secret_of,
                };
                // A write already completed the key in its own transaction (this is then a
                // no-op); this keeps the answers of requests that wrote nothing. If keeping it
                // fails, answer anyway and release the key rather than leave it in flight.
                let (s3, k3) = (s2.clone(), k2.clone());
                if let Err(e) = st.db(move |s| s.idem_complete(&s2, &k2, &stored)).await {
                    tracing::warn!(error = %e, "could not store idempotent response; key released");
                    if let Err(e) = st.db(move |s| s.idem_abort(&s3, &k3)).await {
                        tracing::warn!(error = %e, "could not release the idempotency key");
                    }
                }
            }
            None => {
                tracing::warn!(path = %op_path, "a secret-bearing response without its id; key released");
                let _ = st.db(move |s| s.idem_abort(&s2, &k2)).await;
            }
        }
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Operations whose success carries a secret shown only once: (path, member holding the created
/// object, member holding the secret, what the object is).
const SECRET_OPS: [(&str, &str, &str, &str); 2] = [
    ("/v1/tokens", "token", "secret", "token"),
    ("/v1/runs", "run", "run_token", "run"),
];

/// What may be kept of a response: the body as is, or for a success of a secret-bearing
/// operation the body without the secret plus the created object's id. `None` if such a body
/// cannot be taken apart (then nothing is kept).
fn keepable(path: &str, status: StatusCode, body: &[u8]) -> Option<(Vec<u8>, Option<String>)> {
    let Some((_, object, secret, _)) = SECRET_OPS.iter().find(|(p, ..)| *p == path) else {
        return Some((body.to_vec(), None));
    };
    if !status.is_success() {
        return Some((body.to_vec(), None));
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get(*object)?.get("id")?.as_str()?.to_string();
    v.as_object_mut()?.remove(*secret);
    Some((serde_json::to_vec(&v).ok()?, Some(id)))
}

/// The answer to a retry of `createToken` / `createRun` whose first request succeeded.
fn secret_not_replayable(path: &str, id: &str) -> Response {
    let what = SECRET_OPS
        .iter()
        .find(|(p, ..)| *p == path)
        .map_or("object", |(.., what)| *what);
    let detail = if what == "run" {
        format!(
            "the first request with this Idempotency-Key created run {id}; its run token is shown \
             only once and is not kept, so the response cannot be replayed. Use the run token \
             from that first response, or finish run {id} and create a new run with a new key"
        )
    } else {
        format!(
            "the first request with this Idempotency-Key created {what} {id}; its secret is shown \
             only once and is not kept, so the response cannot be replayed. Use the secret from \
             that first response, or revoke {what} {id} and create a new one with a new key"
        )
    };
    let mut resp = ApiError::new("secret_not_replayable", detail).into_response();
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

fn replay(stored: StoredResponse) -> Response {
    let mut resp = Response::new(Body::from(stored.body));
    *resp.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (k, v) in stored.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}
