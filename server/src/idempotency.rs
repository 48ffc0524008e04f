//! `Idempotency-Key` on POST: a retried write is answered, not repeated.
//!
//! The key is scoped to the caller, the method and the path (two principals cannot collide or
//! read each other's stored responses) and bound to a fingerprint of the request: method, path
//! with query, content type and the SHA-256 of the body. Before a byte of the body is read the
//! caller is authorized for the operation (a 403 costs no buffering), and the body is then
//! buffered only up to the operation's own cap (1, 4 or 64 MiB). For a streamed artifact upload
//! the body is not buffered at all: the query already carries the declared SHA-256, and a body
//! that differs from it is refused, so the fingerprint still pins the content.
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
use crate::auth::{AuthState, Principal};
use crate::error::ApiError;
use crate::extract::{check_declared_length, read_body, JSON_LIMIT, MANIFEST_LIMIT, METRICS_LIMIT};
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
    // Unauthenticated requests fail in the handler (before it reads the body); nothing to
    // remember for them. Unknown routes are the router's 404/405.
    let (Some(AuthState::Ok(p)), Some(op)) = (
        req.extensions().get::<AuthState>(),
        post_operation(req.uri().path()),
    ) else {
        return Ok(next.run(req).await);
    };
    // Authorize before reading a byte: a caller without the role gets its 403 without the
    // server buffering (up to 64 MiB of) a body it would refuse anyway.
    op.authorize(p)?;
    // The contract scopes a key to principal, method and path: the same key on another
    // operation is a different key.
    let scope = format!(
        "{}:{} {} {}",
        p.actor.kind,
        p.actor.id,
        req.method(),
        req.uri().path()
    );

    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (body, body_hash) = match op.body {
        BodyCap::Streamed => (body, String::from("streamed")),
        BodyCap::Json(cap) => {
            // Buffer to fingerprint, then hand the bytes on, under the operation's own cap
            // (1, 4 or 64 MiB): a larger body is a 413 here, as it would be in the handler.
            check_declared_length(&parts.headers, cap as u64)?;
            let bytes = read_body(body, cap).await?;
            let h = hex::encode(Sha256::digest(&bytes));
            (Body::from(bytes), h)
        }
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

/// How the body of a POST operation is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyCap {
    /// JSON up to this many bytes (the contract's per-operation cap).
    Json(usize),
    /// Streamed to the blob store (artifact uploads): never buffered here.
    Streamed,
}

/// Who may call a POST operation, checked before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// engineer, admin
    WriteCatalog,
    /// engineer, auditor, admin
    RecordGate,
    /// engineer, admin, or the run token of this run
    WriteRun(String),
    /// admin
    Admin,
}

/// A POST operation, as far as the middleware must know it before reading the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PostOp {
    access: Access,
    body: BodyCap,
}

impl PostOp {
    /// The same rules as the handlers' own checks (the [`Principal`] methods), which stay in
    /// place: this only makes the refusal come before the body is buffered.
    fn authorize(&self, p: &Principal) -> Result<(), ApiError> {
        match &self.access {
            Access::WriteCatalog => p.write_catalog(),
            Access::RecordGate => p.record_gate(),
            Access::WriteRun(run_id) => p.write_run(run_id),
            Access::Admin => p.admin(),
        }
    }
}

/// The POST operation at `path` (see `crate::routes::api`), if any.
fn post_operation(path: &str) -> Option<PostOp> {
    let seg: Vec<&str> = path.split('/').collect();
    let (access, body) = match seg.as_slice() {
        ["", "v1", "datasets"] => (Access::WriteCatalog, BodyCap::Json(JSON_LIMIT)),
        ["", "v1", "datasets", _, "versions"] => {
            (Access::WriteCatalog, BodyCap::Json(MANIFEST_LIMIT))
        }
        ["", "v1", "datasets", _, "versions", _, "gates"] => {
            (Access::RecordGate, BodyCap::Json(JSON_LIMIT))
        }
        ["", "v1", "runs"] => (Access::WriteCatalog, BodyCap::Json(JSON_LIMIT)),
        ["", "v1", "runs", run, "finish"] => {
            (Access::WriteRun(run.to_string()), BodyCap::Json(JSON_LIMIT))
        }
        ["", "v1", "runs", run, "metrics"] => (
            Access::WriteRun(run.to_string()),
            BodyCap::Json(METRICS_LIMIT),
        ),
        ["", "v1", "runs", run, "artifacts"] => {
            (Access::WriteRun(run.to_string()), BodyCap::Streamed)
        }
        ["", "v1", "tokens"] | ["", "v1", "tokens", _, "revoke"] => {
            (Access::Admin, BodyCap::Json(JSON_LIMIT))
        }
        _ => return None,
    };
    Some(PostOp { access, body })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_post_route_has_its_access_and_cap() {
        let ds = "/v1/datasets/ds_1";
        let v = format!("{ds}/versions/sha256:{}", "a".repeat(64));
        let run = |r: &str| Access::WriteRun(r.to_string());
        let cases = [
            (
                "/v1/datasets".to_string(),
                Access::WriteCatalog,
                BodyCap::Json(1 << 20),
            ),
            (
                format!("{ds}/versions"),
                Access::WriteCatalog,
                BodyCap::Json(64 << 20),
            ),
            (
                format!("{v}/gates"),
                Access::RecordGate,
                BodyCap::Json(1 << 20),
            ),
            (
                "/v1/runs".into(),
                Access::WriteCatalog,
                BodyCap::Json(1 << 20),
            ),
            (
                "/v1/runs/r1/finish".into(),
                run("r1"),
                BodyCap::Json(1 << 20),
            ),
            (
                "/v1/runs/r1/metrics".into(),
                run("r1"),
                BodyCap::Json(4 << 20),
            ),
            ("/v1/runs/r1/artifacts".into(), run("r1"), BodyCap::Streamed),
            ("/v1/tokens".into(), Access::Admin, BodyCap::Json(1 << 20)),
            (
                "/v1/tokens/t1/revoke".into(),
                Access::Admin,
                BodyCap::Json(1 << 20),
            ),
        ];
        for (path, access, body) in cases {
            assert_eq!(
                post_operation(&path),
                Some(PostOp { access, body }),
                "{path}"
            );
        }
        for path in [
            "/v1/whoami",
            "/v1/datasets/x",
            "/v1/runs/r1",
            "/v1/nope",
            "/",
            "/v1/runs/r1/finish/x",
        ] {
            assert_eq!(post_operation(path), None, "{path}");
        }
    }
}
