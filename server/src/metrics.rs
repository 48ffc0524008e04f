//! Observability: Prometheus metrics at `/metrics`, liveness and readiness probes, and the
//! one-line-per-request access log (text or JSON, `--log-format`).
//!
//! Request metrics are counted by [`observe`], a middleware just inside the request-context
//! layer, so every answer is counted once with its final status, including the ones the
//! middleware stack gives on its own (401, 429, 413, idempotent replays). Operations are named
//! by their route template (`POST /v1/datasets/:dataset_id/versions`), never by the concrete
//! path, so label sets stay bounded whatever clients send; anything that matched no route is
//! `static` (the demo site) or `unmatched`.
//!
//! State gauges are read from the database when scraped: the ledger size and newest checkpoint
//! (one indexed row each) every time, the blob totals (an aggregate over all artifacts) at most
//! every `--metrics-blob-refresh` seconds, so frequent scrapes do not each scan the artifacts;
//! the connection-pool gauges are read live.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::app::AppState;
use crate::auth::AuthState;
use crate::error::ApiError;
use crate::store::repo::Repo;
use crate::store::StoreResult;

/// How long a readiness probe waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a request with an `Idempotency-Key` was refused instead of run or replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdempotencyRejection {
    /// 422 `idempotency_key_reused`: the key was used for a different request.
    KeyReused,
    /// 409 `idempotency_in_flight`: another request with the key won the race; retry.
    InFlight,
    /// 409 `secret_not_replayable`: the first answer carried a secret that is not kept.
    SecretNotReplayable,
}

impl IdempotencyRejection {
    const ALL: [IdempotencyRejection; 3] = [
        IdempotencyRejection::KeyReused,
        IdempotencyRejection::InFlight,
        IdempotencyRejection::SecretNotReplayable,
    ];
    fn label(self) -> &'static str {
        match self {
            IdempotencyRejection::KeyReused => "key_reused",
            IdempotencyRejection::InFlight => "in_flight",
            IdempotencyRejection::SecretNotReplayable => "secret_not_replayable",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    backend: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    replays: Counter,
    idempotency_rejections: Family<ReasonLabels, Counter>,
    rate_limited: Counter,
    in_flight: Gauge,
    ledger_size: Gauge,
    checkpoint_size: Gauge,
    checkpoint_age: GaugeF,
    blob_bytes: Gauge,
    blobs: Gauge,
    pool_max: Gauge,
    pool_open: Gauge,
    pool_idle: Gauge,
    pool_waiting: Gauge,
    request_slots_free: Gauge,
    upload_slots_free: Gauge,
    /// When the blob totals were last read, and how long they are reused.
    blob_snapshot: Mutex<Option<Instant>>,
    blob_ttl: Duration,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// `blob_ttl`: how long the blob totals are reused between scrapes.
    pub fn new(backend: &str, blob_ttl: Duration) -> Self {
        let mut r = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "datapilot_http_requests",
            "HTTP requests answered, by operation (route template) and status",
            requests.clone(),
        );
        // 1 ms .. ~33 s.
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        r.register(
            "datapilot_http_request_duration_seconds",
            "Time from request to response headers, by operation and status",
            latency.clone(),
        );
        let replays = Counter::default();
        r.register(
            "datapilot_idempotent_replays",
            "Requests answered by replaying the stored response of their Idempotency-Key",
            replays.clone(),
        );
        let idempotency_rejections = Family::<ReasonLabels, Counter>::default();
        // Every reason from the start, at 0: an alert on rate() needs the series to exist.
        for reason in IdempotencyRejection::ALL {
            let _ = idempotency_rejections.get_or_create(&ReasonLabels {
                reason: reason.label(),
            });
        }
        r.register(
            "datapilot_idempotency_rejections",
            "Requests with an Idempotency-Key refused instead of run or replayed, by reason \
             (key_reused 422, in_flight 409, secret_not_replayable 409)",
            idempotency_rejections.clone(),
        );
        let rate_limited = Counter::default();
        r.register(
            "datapilot_rate_limited",
            "Requests refused with 429 by the per-principal rate limit",
            rate_limited.clone(),
        );
        let in_flight = Gauge::default();
        r.register(
            "datapilot_http_requests_in_flight",
            "Requests being served now",
            in_flight.clone(),
        );
        let ledger_size = Gauge::default();
        r.register(
            "datapilot_ledger_size",
            "Entries in the audit ledger",
            ledger_size.clone(),
        );
        let checkpoint_size = Gauge::default();
        r.register(
            "datapilot_ledger_checkpoint_size",
            "Tree size of the newest signed checkpoint (0: none yet)",
            checkpoint_size.clone(),
        );
        let checkpoint_age = GaugeF::default();
        r.register(
            "datapilot_ledger_checkpoint_age_seconds",
            "Seconds since the newest checkpoint was signed (-1: none yet)",
            checkpoint_age.clone(),
        );
        let blob_bytes = Gauge::default();
        r.register(
            "datapilot_blob_bytes",
            "Bytes of the distinct blobs artifacts refer to",
            blob_bytes.clone(),
        );
        let blobs = Gauge::default();
        r.register(
            "datapilot_blobs",
            "Distinct blobs artifacts refer to",
            blobs.clone(),
        );
        let pool_max = Gauge::default();
        r.register(
            "datapilot_db_pool_max_connections",
            "Database connections the pool may open",
            pool_max.clone(),
        );
        let pool_open = Gauge::default();
        r.register(
            "datapilot_db_pool_connections",
            "Database connections open now",
            pool_open.clone(),
        );
        let pool_idle = Gauge::default();
        r.register(
            "datapilot_db_pool_idle_connections",
            "Open database connections not in use",
            pool_idle.clone(),
        );
        let pool_waiting = Gauge::default();
        r.register(
            "datapilot_db_pool_waiting",
            "Tasks waiting for a database connection",
            pool_waiting.clone(),
        );
        let request_slots_free = Gauge::default();
        r.register(
            "datapilot_request_slots_free",
            "Free slots of --max-concurrent-requests",
            request_slots_free.clone(),
        );
        let upload_slots_free = Gauge::default();
        r.register(
            "datapilot_upload_slots_free",
            "Free slots of --max-concurrent-uploads",
            upload_slots_free.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                backend: backend.into(),
            })
            .set(1);
        r.register(
            "datapilot_build_info",
            "Always 1: the server version and storage backend",
            build,
        );
        Metrics {
            registry: r,
            requests,
            latency,
            replays,
            idempotency_rejections,
            rate_limited,
            in_flight,
            ledger_size,
            checkpoint_size,
            checkpoint_age,
            blob_bytes,
            blobs,
            pool_max,
            pool_open,
            pool_idle,
            pool_waiting,
            request_slots_free,
            upload_slots_free,
            blob_snapshot: Mutex::new(None),
            blob_ttl,
        }
    }

    fn record(&self, operation: &str, status: StatusCode, elapsed: Duration, replayed: bool) {
        let labels = RequestLabels {
            operation: operation.to_string(),
            status: status.as_u16().to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if replayed {
            self.replays.inc();
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited.inc();
        }
    }

    /// Count a request with an `Idempotency-Key` that was refused (the idempotency middleware
    /// knows why; the status alone does not tell a reused key from a validation error).
    pub fn idempotency_rejected(&self, why: IdempotencyRejection) {
        self.idempotency_rejections
            .get_or_create(&ReasonLabels {
                reason: why.label(),
            })
            .inc();
    }

    /// Refresh the gauges read from the database (the blob totals only when older than
    /// their time to live).
    async fn refresh(&self, st: &AppState) -> Result<(), String> {
        let blobs_due = self
            .blob_snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() >= self.blob_ttl);
        let s = snapshot(st.store.repo().as_ref(), blobs_due)
            .await
            .map_err(|e| e.to_string())?;
        self.ledger_size.set(s.ledger_size as i64);
        self.checkpoint_size.set(s.checkpoint_size as i64);
        self.checkpoint_age.set(
            s.checkpoint_signed_at
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| (chrono::Utc::now() - t.to_utc()).num_milliseconds() as f64 / 1000.0)
                .unwrap_or(-1.0),
        );
        if let Some((blobs, bytes)) = s.blobs {
            self.blobs.set(blobs as i64);
            self.blob_bytes.set(bytes as i64);
            *self.blob_snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        Ok(())
    }
}

/// What the state gauges show.
struct Snapshot {
    ledger_size: u64,
    checkpoint_size: u64,
    checkpoint_signed_at: Option<String>,
    /// Distinct blobs and their bytes, when read this time.
    blobs: Option<(u64, u64)>,
}

async fn snapshot(repo: &dyn Repo, with_blobs: bool) -> StoreResult<Snapshot> {
    let mut tx = repo.read().await?;
    let ledger_size = crate::store::ledger_io::size(&mut *tx).await?;
    let cp = tx
        .query_opt(
            "SELECT tree_size, signed_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
            &[],
        )
        .await?;
    let (checkpoint_size, checkpoint_signed_at) = match cp {
        Some(r) => (r.u64(0)?, Some(r.text(1)?)),
        None => (0, None),
    };
    let blobs = if with_blobs {
        // Distinct blobs: the same bytes uploaded as several artifacts are stored once.
        let b = tx
            .query_one(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM
                 (SELECT sha256, MAX(size) AS size FROM artifacts GROUP BY sha256) AS b",
                &[],
            )
            .await?;
        Some((b.u64(0)?, b.u64(1)?))
    } else {
        None
    };
    tx.commit().await?;
    Ok(Snapshot {
        ledger_size,
        checkpoint_size,
        checkpoint_signed_at,
        blobs,
    })
}

/// Who made a request, as the access log names it: filled in just inside authentication.
#[derive(Clone, Default)]
struct PrincipalSlot(Arc<OnceLock<String>>);

/// Middleware (outer): count, time and log every request.
pub async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let m = st.metrics.clone();
    let operation = match req.extensions().get::<MatchedPath>() {
        // `{dataset_id}` written `:dataset_id`: braces inside label values are valid but trip
        // some exposition parsers and dashboards' label matchers.
        Some(p) => format!(
            "{} {}",
            req.method(),
            p.as_str().replace('{', ":").replace('}', "")
        ),
        None if req.uri().path().starts_with("/v1") => "unmatched".to_string(),
        None => "static".to_string(),
    };
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let slot = PrincipalSlot::default();
    req.extensions_mut().insert(slot.clone());
    let client = crate::forwarded::client_addr(&st, &req);
    m.in_flight.inc();
    let resp = next.run(req).await;
    m.in_flight.dec();
    let elapsed = start.elapsed();
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes() == b"true");
    m.record(&operation, status, elapsed, replayed);
    tracing::info!(
        target: "datapilot_server::access",
        request_id = %request_id,
        principal = slot.0.get().map(String::as_str).unwrap_or("anonymous"),
        operation = %operation,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        replayed,
        client = %client,
        "request"
    );
    resp
}

/// Middleware (just inside authentication): note the principal for the access log. The id is
/// the audit actor's (`token:tok_…`, `run:run_…`, `gateway:alice@corp`), never a secret.
pub async fn note_principal(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(AuthState::Ok(p))) = (
        req.extensions().get::<PrincipalSlot>(),
        req.extensions().get::<AuthState>(),
    ) {
        let _ = slot.0.set(format!("{}:{}", p.actor.kind, p.actor.id));
    }
    next.run(req).await
}

/// `GET /metrics`: the Prometheus text exposition format (0.0.4).
pub async fn handler(State(st): State<AppState>) -> Response {
    let m = &st.metrics;
    if let Err(e) = m.refresh(&st).await {
        // Request metrics still matter most when the database is down: export them, and say
        // in the log why the state gauges are stale.
        tracing::warn!(error = %e, "metrics: the database gauges could not be read");
    }
    if let Some(p) = st.store.repo().pool_state() {
        m.pool_max.set(p.max_size as i64);
        m.pool_open.set(p.size as i64);
        m.pool_idle.set(p.idle as i64);
        m.pool_waiting.set(p.waiting as i64);
    }
    m.request_slots_free
        .set(st.request_slots.available_permits() as i64);
    m.upload_slots_free
        .set(st.upload_slots.available_permits() as i64);
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut body, &m.registry) {
        return ApiError::internal(e).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

/// `GET /livez`: the process answers (nothing else is checked: a restart would not help a
/// database that is down).
pub async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: the database answers within [`READY_TIMEOUT`]; else 503, so a load
/// balancer sends traffic elsewhere.
pub async fn readyz(State(st): State<AppState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, st.store.tree_size()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => ApiError::new("unavailable", format!("the database is not available: {e}"))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            .into_response(),
        Err(_) => ApiError::new(
            "unavailable",
            format!(
                "the database did not answer within {} s",
                READY_TIMEOUT.as_secs()
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
        .into_response(),
    }
}
