//! Authentication (who is calling) and authorization (may they do this, to this object).
//!
//! Two mutually exclusive modes:
//! - **Bearer tokens** (default): `Authorization: Bearer dpt_…` is an API token with a role;
//!   `dpr_…` is a run token, which acts only on its own run and expires per the policy's
//!   `run_token_ttl_seconds`. Secrets are looked up by their SHA-256, never stored.
//! - **Gateway mode** (`--gateway-hmac-key-file`): a trusted reverse proxy authenticates users
//!   and asserts identity in `X-DataPilot-Subject`, `-Role`, `-Timestamp` (unix seconds) and
//!   `-Signature` = hex HMAC-SHA256 over
//!   `subject\nrole\ntimestamp\nMETHOD\npath?query\nsha256hex(body)`, the body digest being
//!   sent in `X-DataPilot-Content-SHA256` (absent: the digest of an empty body) and checked
//!   against the body as it is read. Anything unsigned, forged, replayed onto another query or
//!   body, or more than 60 s from the server clock is refused, and bearer tokens are ignored,
//!   so a client that bypasses the gateway gets nothing.
//!
//! The middleware only resolves the caller; each handler states what it needs through the
//! [`Principal`] methods, which is where per-object rules live (a run token on another run is
//! a 403, not a 404, so it cannot probe but also does not look like a missing route).

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::model::Role;
use crate::store::{ActorRef, IdemKey, Writer};
use crate::util::{hash_secret, now_str};

/// Freshness window of gateway signatures.
pub const GATEWAY_WINDOW_SECS: i64 = 60;

/// Gateway header carrying the lowercase hex SHA-256 of the request body (signed).
pub const CONTENT_SHA256_HEADER: &str = "x-datapilot-content-sha256";

/// SHA-256 of the empty body: the signed digest when `X-DataPilot-Content-SHA256` is absent.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The body of a gateway request does not hash to its signed `X-DataPilot-Content-SHA256`.
/// Raised by the body stream at its end; readers turn it into a 401.
#[derive(Debug)]
pub struct BodyDigestMismatch;

impl std::fmt::Display for BodyDigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body does not match the signed X-DataPilot-Content-SHA256")
    }
}

impl std::error::Error for BodyDigestMismatch {}

/// True if a body read failed because of [`BodyDigestMismatch`].
pub fn is_body_digest_mismatch(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyDigestMismatch>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `body`, failing at its end with [`BodyDigestMismatch`] unless it hashes to `expected`.
fn verified_body(body: Body, expected: [u8; 32]) -> Body {
    let stream = body.into_data_stream();
    let checked = futures_util::stream::unfold(
        (stream, Some(Sha256::new())),
        move |(mut stream, hasher)| async move {
            let mut hasher = hasher?;
            match stream.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    Some((Ok(chunk), (stream, Some(hasher))))
                }
                Some(Err(e)) => Some((Err(axum::BoxError::from(e)), (stream, None))),
                None if hasher.finalize()[..] == expected[..] => None,
                None => Some((
                    Err(axum::BoxError::from(BodyDigestMismatch)),
                    (stream, None),
                )),
            }
        },
    );
    Body::from_stream(checked)
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Audit actor; its role is the API role or `run`.
    pub actor: ActorRef,
    /// The API role; `None` for run tokens, which have no role beyond their run.
    pub role: Option<Role>,
    /// Token name, run id or gateway subject (what `whoami` reports).
    pub subject: String,
    pub token_id: Option<String>,
    /// Set for run tokens: the only run this principal may touch.
    pub run_id: Option<String>,
    /// The request's `Idempotency-Key`, once the idempotency middleware has marked it in
    /// flight: the write completes it in its own transaction.
    pub idem: Option<IdemKey>,
}

/// Result of authentication, stored in request extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub enum AuthState {
    Anonymous,
    Invalid(String),
    /// The credentials could not be checked (the database is down): that error, not a 401.
    Failed(ApiError),
    Ok(Principal),
}

impl Principal {
    /// This caller as the writer of a store write (audit actor and `Idempotency-Key`).
    pub fn writer(&self) -> Writer {
        Writer {
            actor: self.actor.clone(),
            idem: self.idem.clone(),
        }
    }

    fn is_run(&self) -> bool {
        self.run_id.is_some()
    }

    fn role_in(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if self.is_run() {
            return Err(ApiError::forbidden(format!("a run token cannot {what}")));
        }
        match self.role {
            Some(r) if roles.contains(&r) => Ok(()),
            _ => Err(ApiError::forbidden(format!(
                "role {} cannot {what}",
                self.actor.role
            ))),
        }
    }

    /// Any API-token role (viewer, engineer, auditor, admin): policy and ledger reads. Run
    /// tokens are refused here too: they act only on their own run.
    pub fn any_role(&self) -> Result<(), ApiError> {
        self.read_catalog()
    }

    /// Read datasets, versions, gates, runs and lineage: every role, not run tokens.
    pub fn read_catalog(&self) -> Result<(), ApiError> {
        self.role_in(
            &[Role::Viewer, Role::Engineer, Role::Auditor, Role::Admin],
            "read the catalog",
        )
    }

    /// Read one run and its metrics/artifacts/lineage: every role, or that run's own token.
    pub fn read_run(&self, run_id: &str) -> Result<(), ApiError> {
        match &self.run_id {
            Some(own) if own == run_id => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "a run token can only access its own run",
            )),
            None => self.read_catalog(),
        }
    }

    /// Create datasets, register versions, create runs: engineer, admin.
    pub fn write_catalog(&self) -> Result<(), ApiError> {
        self.role_in(&[Role::Engineer, Role::Admin], "write datasets or runs")
    }

    /// Record gate results: engineer, auditor, admin.
    pub fn record_gate(&self) -> Result<(), ApiError> {
        self.role_in(
            &[Role::Engineer, Role::Auditor, Role::Admin],
            "record gate results",
        )
    }

    /// Write to a run (metrics, artifacts, finish): engineer, admin, or the run's own token.
    pub fn write_run(&self, run_id: &str) -> Result<(), ApiError> {
        match &self.run_id {
            Some(own) if own == run_id => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "a run token can only write to its own run",
            )),
            None => self.role_in(&[Role::Engineer, Role::Admin], "write to runs"),
        }
    }

    /// Audit events: auditor, admin.
    pub fn audit(&self) -> Result<(), ApiError> {
        self.role_in(&[Role::Auditor, Role::Admin], "read the audit trail")
    }

    /// Evidence export: engineer, auditor, admin.
    pub fn evidence(&self) -> Result<(), ApiError> {
        self.role_in(
            &[Role::Engineer, Role::Auditor, Role::Admin],
            "export evidence",
        )
    }

    /// Policy updates and tokens: admin.
    pub fn admin(&self) -> Result<(), ApiError> {
        self.role_in(&[Role::Admin], "administer policy or tokens")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Ok(p)) => {
                let mut p = p.clone();
                p.idem = parts.extensions.get::<IdemKey>().cloned();
                Ok(p)
            }
            Some(AuthState::Invalid(why)) => Err(ApiError::unauthenticated(why.clone())),
            Some(AuthState::Failed(e)) => Err(e.clone()),
            _ => Err(ApiError::unauthenticated("authentication required")),
        }
    }
}

/// Middleware: resolve the caller and store an [`AuthState`] in the request extensions.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let state = match &st.gateway_key {
        Some(key) => {
            let (mut state, body_digest) = gateway_auth(key, &req);
            if let AuthState::Ok(_) = state {
                // A verified, fresh signature is still refused if its nonce was seen: the
                // database remembers nonces for the freshness window, for every replica.
                let nonce = header(&req, "x-datapilot-nonce").unwrap_or_default();
                let until = chrono::Utc::now().timestamp() + 2 * GATEWAY_WINDOW_SECS;
                match st.store.claim_nonce(nonce, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        state = AuthState::Invalid(
                            "replayed gateway request: this X-DataPilot-Nonce was used before"
                                .into(),
                        )
                    }
                    Err(e) => state = AuthState::Failed(e.into()),
                }
            }
            if let Some(digest) = body_digest {
                // The signature covers the declared digest; now hold the body to it.
                let (parts, body) = req.into_parts();
                req = Request::from_parts(parts, verified_body(body, digest));
            }
            state
        }
        None => match bearer_secret(&req) {
            Ok(None) => AuthState::Anonymous,
            Ok(Some(secret)) => bearer_auth(&st, secret).await,
            Err(why) => AuthState::Invalid(why.into()),
        },
    };
    req.extensions_mut().insert(state);
    next.run(req).await
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What a gateway signs for one request (see docs/server.md, "Gateway mode").
#[derive(Debug, Clone, Copy)]
pub struct GatewayRequest<'a> {
    pub subject: &'a str,
    pub role: &'a str,
    /// Unix seconds.
    pub timestamp: &'a str,
    /// A value never used before by this gateway (16-128 of `A-Z a-z 0-9 . _ ~ -`): the server
    /// remembers it for the freshness window, so an exact copy of a signed request is refused.
    pub nonce: &'a str,
    pub method: &'a str,
    /// Exactly as on the request line (just the path when there is no query).
    pub path_and_query: &'a str,
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: &'a str,
    /// The request's `Idempotency-Key`, empty when it has none: signed, so it cannot be
    /// changed or added on the way.
    pub idempotency_key: &'a str,
}

impl GatewayRequest<'_> {
    /// The signed message: the fields in this order, one per line.
    pub fn message(&self) -> String {
        format!(
            "datapilot-gateway-v2\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.subject,
            self.role,
            self.timestamp,
            self.nonce,
            self.method,
            self.path_and_query,
            self.body_sha256,
            self.idempotency_key
        )
    }
}

/// A gateway nonce: 16-128 characters of `A-Z a-z 0-9 . _ ~ -`.
fn valid_nonce(n: &str) -> bool {
    (16..=128).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// Hex HMAC-SHA256 of a gateway message (used by tests and by gateways written in Rust).
pub fn gateway_signature(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `sha256` query parameter of an artifact upload (`POST /v1/runs/{id}/artifacts`).
fn upload_declared_sha256(req: &Request) -> Option<&str> {
    let seg: Vec<&str> = req.uri().path().split('/').collect();
    if req.method() != axum::http::Method::POST
        || !matches!(seg.as_slice(), ["", "v1", "runs", _, "artifacts"])
    {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("sha256="))
}

/// Authenticate a gateway request. On success also the body digest the body must be checked
/// against while it is read (`None`: nothing to check, see the upload case).
fn gateway_auth(key: &[u8], req: &Request) -> (AuthState, Option<[u8; 32]>) {
    let invalid = |why: &str| (AuthState::Invalid(why.into()), None);
    let subject = header(req, "x-datapilot-subject");
    let role = header(req, "x-datapilot-role");
    let ts = header(req, "x-datapilot-timestamp");
    let nonce = header(req, "x-datapilot-nonce");
    let sig = header(req, "x-datapilot-signature");
    let (subject, role, ts, nonce, sig) = match (subject, role, ts, nonce, sig) {
        (None, None, None, None, None) => return (AuthState::Anonymous, None),
        (Some(a), Some(b), Some(c), Some(n), Some(d)) => (a, b, c, n, d),
        _ => return invalid("incomplete gateway identity headers"),
    };
    if !valid_nonce(nonce) {
        return invalid("X-DataPilot-Nonce must be 16-128 characters of A-Z a-z 0-9 . _ ~ -");
    }
    let idempotency_key = match req.headers().get(crate::idempotency::HEADER) {
        None => "",
        Some(v) => match v.to_str() {
            Ok(k) => k,
            Err(_) => return invalid("Idempotency-Key must be visible ASCII"),
        },
    };
    let Ok(sig_bytes) = hex::decode(sig) else {
        return invalid("malformed gateway signature");
    };
    let digest_hex = match req.headers().get(CONTENT_SHA256_HEADER) {
        None => EMPTY_SHA256,
        Some(v) => match v.to_str() {
            Ok(d) if d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                d
            }
            _ => return invalid("X-DataPilot-Content-SHA256 must be 64 lowercase hex digits"),
        },
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |p| p.as_str());
    let msg = GatewayRequest {
        subject,
        role,
        timestamp: ts,
        nonce,
        method: req.method().as_str(),
        path_and_query,
        body_sha256: digest_hex,
        idempotency_key,
    }
    .message();
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg.as_bytes());
    // Constant-time comparison: no timing oracle on the signature.
    if mac.verify_slice(&sig_bytes).is_err() {
        return invalid("gateway signature does not verify");
    }
    // An upload's body is already bound by the signed query: its `sha256` parameter, which the
    // blob store checks while streaming (422 `digest_mismatch`). The signed digest must be
    // that same value; the body is then not hashed a second time.
    let check_body = match upload_declared_sha256(req) {
        Some(declared) if declared == digest_hex => None,
        Some(_) => {
            return invalid(
                "for an artifact upload X-DataPilot-Content-SHA256 must equal the sha256 query parameter",
            )
        }
        None => {
            let mut d = [0u8; 32];
            hex::decode_to_slice(digest_hex, &mut d).expect("validated as 64 hex digits");
            Some(d)
        }
    };
    match gateway_identity(subject, role, ts) {
        state @ AuthState::Ok(_) => (state, check_body),
        other => (other, None),
    }
}

/// The identity a verified gateway request asserts, once its freshness is checked.
fn gateway_identity(subject: &str, role: &str, ts: &str) -> AuthState {
    let invalid = AuthState::Invalid;
    let Ok(ts) = ts.parse::<i64>() else {
        return invalid("malformed gateway timestamp".into());
    };
    let skew = chrono::Utc::now().timestamp() - ts;
    if skew.abs() > GATEWAY_WINDOW_SECS {
        return invalid(format!(
            "gateway timestamp outside the {GATEWAY_WINDOW_SECS} s freshness window"
        ));
    }
    let Some(role) = Role::parse(role) else {
        return invalid("unknown gateway role".into());
    };
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return invalid("invalid gateway subject".into());
    }
    let p = Principal {
        actor: ActorRef {
            kind: "gateway",
            id: subject.to_string(),
            role: role.as_str(),
        },
        role: Some(role),
        subject: subject.to_string(),
        token_id: None,
        run_id: None,
        idem: None,
    };
    AuthState::Ok(p)
}

/// The bearer secret of a request, if it has an Authorization header.
fn bearer_secret(req: &Request) -> Result<Option<String>, &'static str> {
    let Some(value) = req.headers().get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
        .map(Some)
        .ok_or("the Authorization header must be `Bearer <token>`")
}

async fn bearer_auth(st: &AppState, secret: String) -> AuthState {
    let hash = hash_secret(&secret);
    let now = now_str();
    let is_run = secret.starts_with("dpr_");
    let found: Result<Option<Principal>, ApiError> = async {
        if is_run {
            Ok(st
                .store
                .lookup_run_token(&hash, &now)
                .await?
                .map(|r| Principal {
                    actor: ActorRef {
                        kind: "run",
                        id: r.run_id.clone(),
                        role: "run",
                    },
                    role: None,
                    subject: r.run_id.clone(),
                    token_id: None,
                    run_id: Some(r.run_id),
                    idem: None,
                }))
        } else {
            Ok(st
                .store
                .lookup_api_token(&hash, &now)
                .await?
                .map(|t| Principal {
                    actor: ActorRef {
                        kind: "token",
                        id: t.id.clone(),
                        role: t.role.as_str(),
                    },
                    role: Some(t.role),
                    subject: t.name,
                    token_id: Some(t.id),
                    run_id: None,
                    idem: None,
                }))
        }
    }
    .await;
    match found {
        Ok(Some(p)) => AuthState::Ok(p),
        Ok(None) => AuthState::Invalid("unknown, expired or revoked token".into()),
        Err(e) => AuthState::Failed(e),
    }
}
