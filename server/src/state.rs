//! The state every handler shares. Nothing in it is correctness-relevant across replicas:
//! ledger, idempotency records and signed checkpoints live in the database; the upload
//! registry and the rate limiter are per-process (see docs/server.md, "Replicas").

use std::path::PathBuf;
use std::sync::Arc;

use crate::blob::BlobStore;
use crate::keys::LedgerKey;
use crate::store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub blobs: Arc<dyn BlobStore>,
    pub key: Arc<LedgerKey>,
    pub gateway_key: Option<Arc<[u8]>>,
    pub max_artifact_bytes: u64,
    pub static_dir: Option<PathBuf>,
    pub pkg_dir: Option<PathBuf>,
    /// Slots of the global in-flight request limit.
    pub request_slots: Arc<tokio::sync::Semaphore>,
    /// Slots of artifact uploads (apart, so slow uploads cannot starve other calls).
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// Longest silence of a request body (`--body-stall-timeout`).
    pub body_stall_timeout: std::time::Duration,
    /// Tests only (`--run-token-ttl-override-seconds`): run token lifetime instead of the
    /// policy's.
    pub run_token_ttl_override: Option<u64>,
    /// Uploads in progress per blob digest (see `routes::artifacts`).
    pub uploads: crate::routes::artifacts::Uploads,
    /// The per-principal rate limit (`--rate-limit`), if set.
    pub rate_limiter: Option<Arc<crate::rate_limit::RateLimiter>>,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `--trust-forwarded-for`: the access log takes the client address from the proxy's
    /// `X-Forwarded-For` entry (see `forwarded`).
    pub trust_forwarded_for: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("origin", &self.key.name())
            .finish_non_exhaustive()
    }
}
