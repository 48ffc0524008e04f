//! Process wiring: state, middleware stack, router, start-up and graceful shutdown.
//!
//! Middleware, outermost first, and why that order:
//! 1. request context: assign/echo the request id, make it available to error bodies, and on
//!    the way out turn any error that is not problem+json yet (router 404/405, a layer's 413)
//!    into one, and add `X-Request-Id` and `Cache-Control: no-store` to every response;
//! 2. metrics and the access log (`metrics::observe`): every answer counted and timed once,
//!    with its final status; then tower-http tracing: one span per request carrying the
//!    request id;
//! 3. CORS: exact origin allowlist, answered before authentication (preflights carry no token);
//! 4. the global in-flight request limit (`--max-concurrent-requests`): requests beyond it wait
//!    for a slot, so many concurrent large bodies cannot exhaust memory;
//! 5. panic catcher: a bug becomes a 500 problem, not a dropped connection;
//! 6. authentication, then the per-principal rate limit (`--rate-limit`, off by default; see
//!    `rate_limit`), then idempotency (which needs the principal to scope keys, and refuses a
//!    caller without the operation's role before buffering its body).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::{ApiError, REQUEST_ID};
pub use crate::state::AppState;
use crate::store::repo::Repo;
use crate::store::{InitParams, Store};
use crate::util::{hash_secret, new_id, new_secret};

/// What start-up did, for the caller to report.
#[derive(Debug)]
pub struct Started {
    pub state: AppState,
    /// The bootstrap secret if it was generated now (print it once).
    pub generated_bootstrap: Option<String>,
    pub new_ledger: bool,
}

/// Open the metadata repository the configuration names: PostgreSQL for `--database
/// postgres://…`, else SQLite in the data directory.
pub async fn open_repo(config: &Config) -> Result<Arc<dyn Repo>, String> {
    open_repo_at(
        &config.data_dir,
        config.database.as_deref(),
        config.db_pool_size,
    )
    .await
}

/// [`open_repo`] from its parts (the operator subcommands have no full [`Config`]).
pub async fn open_repo_at(
    data_dir: &std::path::Path,
    database: Option<&str>,
    db_pool_size: usize,
) -> Result<Arc<dyn Repo>, String> {
    match database.filter(|d| !d.is_empty()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let repo = crate::store::postgres::PgRepo::open(url, db_pool_size)
                .await
                .map_err(|e| format!("database: {e}"))?;
            Ok(Arc::new(repo))
        }
        Some(other) => Err(format!(
            "--database must be a postgres:// URL (got {:?}); leave it unset for SQLite in the data directory",
            other.split('@').next_back().unwrap_or("")
        )),
        None => {
            let path = data_dir.join("datapilot.sqlite3");
            let repo = tokio::task::spawn_blocking(move || {
                crate::store::sqlite::SqliteRepo::open(&path)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("database: {e}"))?;
            Ok(Arc::new(repo))
        }
    }
}

/// Open (or create) the data directory and everything in it.
pub async fn open(config: &Config) -> Result<Started, String> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    crate::extract::set_body_budget(
        config.max_buffered_bytes,
        std::time::Duration::from_secs(config.body_stall_timeout.max(1)),
    );
    // A database written by a newer release is refused before anything touches it.
    crate::upgrade::refuse_newer(dir, config.database.as_deref()).await?;
    let store = Store::with_timeout(
        open_repo(config).await?,
        std::time::Duration::from_secs(config.db_timeout.max(1)),
    );
    let key =
        crate::keys::open_ledger_key(&dir.join("ledger.key"), config.origin.as_deref(), &store)
            .await?;
    let blobs = crate::blob::open_blob_store(config.blobs.as_deref(), dir)
        .map_err(|e| format!("blob store: {e}"))?;

    let (secret, generated) = match &config.bootstrap_token {
        Some(s) => {
            let ok = s.len() >= 20
                && s.len() <= 200
                && s.strip_prefix("dpt_")
                    .is_some_and(|r| r.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                return Err(
                    "DATAPILOT_BOOTSTRAP_TOKEN must match ^dpt_[A-Za-z0-9]+$ (20-200 chars)".into(),
                );
            }
            (s.clone(), false)
        }
        None => (new_secret("dpt_"), true),
    };
    let new_ledger = store
        .init(&InitParams {
            origin: key.name().to_string(),
            verifier: key.verifier(),
            bootstrap_secret_hash: hash_secret(&secret),
        })
        .await
        .map_err(|e| format!("initialising the ledger: {e}"))?;
    // Never sign over a checkpoint already published (issue 12): the ledger must reach it.
    crate::checkpoint::check_published(&key, &store).await?;
    let key = if config.rotate_key {
        crate::keys::rotate(&dir.join("ledger.key"), key, &store).await?
    } else {
        key
    };
    let key = key.with_witnesses(crate::witness::Witnesses::from_config(&config.witness)?);
    // With witnesses, also what they cosigned must be reached (a restore of the whole data
    // directory rolls `ledger.checkpoint` back too; see `Witnesses::check_not_behind`).
    if !key.witnesses().is_empty() {
        if let Ok(note) = std::fs::read_to_string(key.published().path()) {
            let size = note
                .lines()
                .nth(1)
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| format!("{}: no tree size", key.published().path().display()))?;
            key.witnesses().check_not_behind(size, &note).await?;
        }
    }

    let gateway_key = match &config.gateway_hmac_key_file {
        None => None,
        Some(p) => {
            let raw = std::fs::read(p).map_err(|e| format!("gateway key {}: {e}", p.display()))?;
            let trimmed = raw.strip_suffix(b"\n").unwrap_or(&raw).to_vec();
            if trimmed.len() < 16 {
                return Err("the gateway HMAC key must be at least 16 bytes".into());
            }
            Some(Arc::from(trimmed.into_boxed_slice()))
        }
    };
    let static_dir = config.resolved_static_dir();
    let pkg_dir = static_dir.as_ref().and_then(|d| {
        let own = d.join("pkg");
        let sibling = d.join("../pkg");
        (!own.is_dir() && sibling.is_dir()).then_some(sibling)
    });
    let metrics = Arc::new(crate::metrics::Metrics::new(
        store.backend(),
        std::time::Duration::from_secs(config.metrics_blob_refresh),
    ));
    Ok(Started {
        state: AppState {
            store,
            blobs,
            key: Arc::new(key),
            gateway_key,
            max_artifact_bytes: config.max_artifact_bytes,
            static_dir,
            pkg_dir,
            request_slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests.max(1),
            )),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_uploads.max(1),
            )),
            run_token_ttl_override: config.run_token_ttl_override_seconds,
            body_stall_timeout: std::time::Duration::from_secs(config.body_stall_timeout.max(1)),
            uploads: Default::default(),
            rate_limiter: (config.rate_limit > 0).then(|| {
                Arc::new(crate::rate_limit::RateLimiter::new(
                    config.rate_limit,
                    config
                        .rate_limit_burst
                        .unwrap_or(config.rate_limit.saturating_mul(2)),
                ))
            }),
            metrics,
            trust_forwarded_for: config.trust_forwarded_for,
        },
        generated_bootstrap: (new_ledger && generated).then_some(secret),
        new_ledger,
    })
}

/// The whole HTTP application.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let mut origins = Vec::new();
    for o in cors_origins.iter().filter(|o| !o.trim().is_empty()) {
        if let Ok(v) = HeaderValue::from_str(o.trim()) {
            origins.push(v);
        }
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
            header::RETRY_AFTER,
            HeaderName::from_static("x-content-sha256"),
            header::CONTENT_DISPOSITION,
        ])
        .max_age(std::time::Duration::from_secs(600));

    let mut app = crate::routes::api()
        .route("/metrics", axum::routing::get(crate::metrics::handler))
        .route("/livez", axum::routing::get(crate::metrics::livez))
        .route("/readyz", axum::routing::get(crate::metrics::readyz));
    if let Some(pkg) = &state.pkg_dir {
        app = app.nest_service("/pkg", ServeDir::new(pkg));
    }
    app.fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), crate::idempotency::middleware))
        .layer(middleware::from_fn_with_state(state.clone(), crate::rate_limit::middleware))
        .layer(middleware::from_fn(crate::metrics::note_principal))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::authenticate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), limit_in_flight))
        .layer(middleware::from_fn_with_state(
            state.body_stall_timeout,
            crate::stall::middleware,
        ))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::observe))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// The global in-flight request limit: one slot per request until its response (and, for
/// uploads, the body it streams) is done; further requests wait for a slot.
async fn limit_in_flight(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Health answers from its own budget: a load balancer must see the server alive while
    // uploads or a burst of calls hold every slot.
    if path == "/v1/health" || path == "/livez" || path == "/readyz" || path == "/metrics" {
        return next.run(req).await;
    }
    // Uploads stream for as long as the client sends: their own slots, so slow uploads
    // cannot starve every other call (admin and reads included).
    let is_upload = req.method() == Method::POST
        && path.starts_with("/v1/runs/")
        && path.ends_with("/artifacts");
    let slots = if is_upload {
        st.upload_slots.clone()
    } else {
        st.request_slots.clone()
    };
    let Ok(_slot) = slots.acquire_owned().await else {
        return ApiError::new("unavailable", "the server is shutting down").into_response();
    };
    next.run(req).await
}

/// Unknown `/v1` routes are 404 problems; everything else is the static site, if any.
async fn fallback(State(st): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return ApiError::not_found(format!("no API operation at {path}")).into_response();
    }
    match &st.static_dir {
        Some(dir) if req.method() == Method::GET || req.method() == Method::HEAD => {
            match ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .oneshot(req)
                .await
            {
                Ok(r) => r.map(Body::new),
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        Some(_) => ApiError::new("method_not_allowed", "static files are read-only")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
            .into_response(),
        None => ApiError::not_found(format!("nothing at {path}")).into_response(),
    }
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    ok.then(|| s.to_string())
}

/// Request id, problem+json for every error, and the headers every response carries.
async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(valid_request_id)
        .unwrap_or_else(|| new_id("req_"));
    let hv = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    req.headers_mut().insert("x-request-id", hv.clone());
    let method = req.method().clone();
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;

    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if status.as_u16() >= 400 && !is_problem {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        let detail = match code {
            "method_not_allowed" => format!("method {method} is not allowed here"),
            "not_found" => "not found".to_string(),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        };
        let mut problem =
            REQUEST_ID.sync_scope(id.clone(), || ApiError::new(code, detail).into_response());
        for (k, v) in resp.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                problem.headers_mut().insert(k.clone(), v.clone());
            }
        }
        resp = problem;
    }
    let h = resp.headers_mut();
    // Internal markers between handlers and the idempotency middleware never leave.
    h.remove(crate::extract::NOT_KEPT_MARKER);
    h.remove(crate::error::KEY_TAKEN_MARKER);
    h.insert("x-request-id", hv);
    // Nothing is cacheable unless its handler says so (C2SP tiles are immutable).
    if !h.contains_key(header::CACHE_CONTROL) || status.as_u16() >= 400 {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::TOO_MANY_REQUESTS && !h.contains_key(header::RETRY_AFTER) {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Start the server and serve until SIGINT or SIGTERM.
///
/// The listener is bound before anything is created: a port in use (or any bind error) fails
/// with nothing written to the data directory, so a retry on a free port is still a first
/// start and prints the bootstrap token (issue 15).
pub async fn run(config: Config) -> Result<(), String> {
    // The TLS files are read first too: a bad certificate is a configuration error, found
    // before anything is bound or created.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", config.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let started = open(&config).await?;
    let verifier = started.state.key.verifier();
    tracing::info!(origin = %started.state.key.name(), verifier = %verifier, "ledger key");
    let app = router(started.state, &config.cors_origins);
    tracing::info!("listening on {addr}");
    // On stdout too, for scripts and tests that start the server on port 0.
    println!("listening on {scheme}://{addr}");
    eprint!(
        "{}",
        crate::admin::startup_banner(
            &format!("{scheme}://{addr}"),
            &verifier,
            started.generated_bootstrap.as_deref(),
            started.new_ledger,
            &config.data_dir,
        )
    );
    crate::serve::serve(listener, app, config.conn_limits(), tls, shutdown_signal()).await;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
