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
//! A key costs no commit of its own. The middleware first looks the key up (a read): a key
//! answered before with the same request is replayed byte for byte with
//! `Idempotent-Replayed: true`; with a different request it is 422 `idempotency_key_reused`.
//! Otherwise the request runs with the key attached ([`IdemKey`] / [`crate::store::Writer`]),
//! and its store write records the answer in the write's own transaction, with its rows and its
//! audit event: a keyed write is one commit, and a crash can never leave a committed write
//! whose key would run it again. Two requests with one key at once (on one replica or two)
//! both run, but only one write can record the key: the other is undone in its savepoint and
//! answered with the winner's response. Answers of requests that wrote nothing (errors below
//! 500) are stored afterwards; a 5xx, or a crash before the commit, leaves the key unused so
//! the client can retry. Keys are kept 24 hours.
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
use crate::error::{ApiError, KEY_TAKEN_MARKER};
use crate::extract::{
    check_declared_length, declared_length, read_body, JSON_LIMIT, MANIFEST_LIMIT, METRICS_LIMIT,
    NOT_KEPT_MARKER,
};
use crate::metrics::IdempotencyRejection;
use crate::store::{IdemKey, IdemLookup, StoredResponse};

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
    let mut buffered = None;
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
            let (bytes, room) = read_body(body, cap, declared_length(&parts.headers)).await?;
            if let Some(room) = room {
                buffered = Some(room);
            }
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
    if let Some(room) = buffered {
        req.extensions_mut().insert(room);
    }

    let op_path = req.uri().path().to_string();
    match st.store.idem_lookup(&scope, &key, &fingerprint).await? {
        IdemLookup::Fresh => {}
        IdemLookup::Replay(stored) => return Ok(answer(&st, &op_path, stored)),
        IdemLookup::Mismatch => return Err(key_reused(&st)),
    }

    // The handler's store write records the key in its own transaction (see `Writer`).
    let idem = IdemKey {
        scope,
        key,
        fingerprint,
    };
    req.extensions_mut().insert(idem.clone());
    let mut resp = next.run(req).await;
    if resp.headers_mut().remove(KEY_TAKEN_MARKER).is_some() {
        // A concurrent request with the same key (perhaps on another replica) completed first
        // and this write was undone: answer with what that request got.
        return match st
            .store
            .idem_lookup(&idem.scope, &idem.key, &idem.fingerprint)
            .await?
        {
            IdemLookup::Replay(stored) => Ok(answer(&st, &op_path, stored)),
            IdemLookup::Mismatch => Err(key_reused(&st)),
            // The winner's answer is not readable (yet): the 409 idempotency_in_flight the
            // handler gave, which the client retries.
            IdemLookup::Fresh => {
                st.metrics
                    .idempotency_rejected(IdempotencyRejection::InFlight);
                Ok(resp)
            }
        };
    }
    // The client's body was cut or stalled: that says nothing about the request, so the key
    // stays unused and a retry runs again.
    if resp.headers_mut().remove(NOT_KEPT_MARKER).is_some() {
        return Ok(resp);
    }
    let status = resp.status();
    // A success was recorded by its write, in the write's own transaction; a 5xx recorded
    // nothing, so a retry runs again.
    if status.is_success() || status.is_server_error() {
        return Ok(resp);
    }
    // A refusal (4xx) wrote nothing: keep its answer so a retry gets the same one.
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(b) => b,
        Err(e) => {
            return Err(ApiError::internal(format!(
                "response too large to keep: {e}"
            )))
        }
    };
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
    let stored = StoredResponse {
        status: status.as_u16(),
        headers,
        body: bytes.to_vec(),
        secret_of: None,
    };
    if let Err(e) = st.store.idem_store(&idem, &stored).await {
        // Answer anyway: the key stays unused, so a retry runs the request again.
        tracing::warn!(error = %e, "could not store an idempotent refusal");
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The stored answer of a key: a replay, or for a secret-bearing success the refusal that says
/// the secret is not kept.
fn answer(st: &AppState, path: &str, stored: StoredResponse) -> Response {
    match &stored.secret_of {
        Some(id) => {
            st.metrics
                .idempotency_rejected(IdempotencyRejection::SecretNotReplayable);
            secret_not_replayable(path, id)
        }
        None => replay(stored),
    }
}

fn key_reused(st: &AppState) -> ApiError {
    st.metrics
        .idempotency_rejected(IdempotencyRejection::KeyReused);
    ApiError::new(
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different request",
    )
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
        ["", "v1", "datasets", _, "manifest-uploads"]
        | ["", "v1", "datasets", _, "manifest-uploads", _, "commit"] => {
            (Access::WriteCatalog, BodyCap::Json(JSON_LIMIT))
        }
        ["", "v1", "datasets", _, "versions", _, "gates"] => {
            (Access::RecordGate, BodyCap::Json(JSON_LIMIT))
        }
        ["", "v1", "runs"] => (Access::WriteCatalog, BodyCap::Json(JSON_LIMIT)),
        ["", "v1", "runs", _, "token"] => (Access::WriteCatalog, BodyCap::Json(JSON_LIMIT)),
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

/// The answer to a retry of `createToken` / `createRun` whose first request succeeded.
fn secret_not_replayable(path: &str, id: &str) -> Response {
    let what = SECRET_OPS
        .iter()
        .find(|(p, ..)| *p == path)
        .map_or("object", |(.., what)| *what);
    let detail = if path.ends_with("/token") {
        format!(
            "the first request with this Idempotency-Key issued a new token for run {id}; it is \
             shown only once and is not kept. Use the token from that first response, or \
             reissue it again with a new key"
        )
    } else if what == "run" {
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
