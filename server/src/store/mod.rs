//! The metadata storage boundary.
//!
//! Handlers never see SQL: they call [`Store`], whose every write method performs the write
//! *and* appends its one audit event in the same transaction, so an acknowledged write always
//! has its ledger entry and a crash never leaves one without the other. The SQLite
//! implementation ([`sqlite::SqliteStore`]) is the reference; a PostgreSQL implementation would
//! keep the same contract (one transaction per method, `SERIALIZABLE` or a ledger row lock so
//! sequence numbers stay dense) and reuse [`crate::ledger`] for the tree arithmetic.
//!
//! The trait is synchronous on purpose: SQLite is an in-process blocking library, and the
//! async handlers call it through [`crate::app::AppState::db`] (`spawn_blocking`). A network
//! database would use the same shape from a blocking pool or grow an async twin of this trait.

pub mod sqlite;

use datapilot::merkle::{Hash, MerkleError};

use crate::error::ApiError;
use crate::model::*;

/// Why a store operation failed, in terms the API maps one-to-one to problem codes.
#[derive(Debug)]
pub enum StoreError {
    NotFound(String),
    /// 409 with a conflict code (`already_exists`, `immutable`, `run_sealed`).
    Conflict(&'static str, String),
    /// 422 with a code (`gate_not_passed`, `digest_mismatch`).
    Unprocessable(&'static str, String),
    /// 400 `validation_failed` on a field.
    Invalid(String, String),
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(d) | StoreError::Internal(d) => f.write_str(d),
            StoreError::Conflict(c, d) | StoreError::Unprocessable(c, d) => write!(f, "{c}: {d}"),
            StoreError::Invalid(field, m) => write!(f, "{field}: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<MerkleError> for StoreError {
    fn from(e: MerkleError) -> Self {
        StoreError::Invalid("tree_size".into(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(d) => ApiError::not_found(d),
            StoreError::Conflict(code, d) => ApiError::new(code, d),
            StoreError::Unprocessable(code, d) => ApiError::new(code, d),
            StoreError::Invalid(field, msg) => ApiError::validation(&field, msg),
            StoreError::Internal(d) => ApiError::internal(d),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who performs a write: recorded as the audit event's actor and as `created_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRef {
    /// `token`, `run`, `gateway` or `system`.
    pub kind: &'static str,
    /// Token id, run id, gateway subject, or `system`.
    pub id: String,
    /// `viewer`, `engineer`, `auditor`, `admin`, `run` or `system`.
    pub role: &'static str,
}

impl ActorRef {
    /// The server itself (`ledger.init`, the bootstrap token).
    pub fn system() -> Self {
        ActorRef {
            kind: "system",
            id: "system".into(),
            role: "system",
        }
    }
}

/// The `Idempotency-Key` a write runs under (already marked in flight by [`Store::idem_begin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemKey {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// Who performs a write, and under which `Idempotency-Key`.
///
/// With a key, the write completes the key's record (its response, never a secret) in its own
/// transaction, together with the rows and the audit event: once the write is committed, a
/// retry with the key replays it, even after a crash, and never performs it twice.
#[derive(Debug, Clone)]
pub struct Writer {
    pub actor: ActorRef,
    pub idem: Option<IdemKey>,
}

impl Writer {
    /// A write without an `Idempotency-Key`.
    pub fn new(actor: ActorRef) -> Self {
        Writer { actor, idem: None }
    }
}

/// Keyset pagination: items after row key `after`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct PageReq {
    pub limit: u32,
    pub after: Option<i64>,
}

/// First-start parameters.
#[derive(Debug, Clone)]
pub struct InitParams {
    pub origin: String,
    pub verifier: String,
    /// Hash of the bootstrap admin secret, used only if the ledger is new.
    pub bootstrap_secret_hash: String,
}

/// An authenticated API token.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// An authenticated run token.
#[derive(Debug, Clone)]
pub struct RunTokenAuth {
    pub run_id: String,
    pub sealed: bool,
}

/// A new run, as validated by the handler.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub name: String,
    pub inputs: Vec<VersionRef>,
    pub git_commit: String,
    pub image_digest: String,
    pub params: std::collections::BTreeMap<String, String>,
    pub token_hash: String,
    /// Run token lifetime in seconds instead of the policy's (tests only).
    pub token_ttl_override: Option<u64>,
}

/// Signed-tree-head material: size, root and the time of the last event.
#[derive(Debug, Clone)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub last_time: String,
}

/// A response kept for an `Idempotency-Key`.
///
/// Never holds a secret: for `createToken` and `createRun` the body is kept without the
/// `secret` / `run_token` member and `secret_of` names the resource created (token or run id);
/// such a key is answered with 409 `secret_not_replayable` instead of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Id of the resource whose secret the first response carried (shown only once).
    pub secret_of: Option<String>,
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug)]
pub enum IdemBegin {
    /// First time: run it (the key is now marked in flight).
    Proceed,
    /// Done before with the same request: send this again.
    Replay(StoredResponse),
    /// The first request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// The metadata store. Every `&Writer` method is a write that appends exactly one audit event
/// in its own transaction, and completes the writer's `Idempotency-Key` record in that same
/// transaction.
pub trait Store: Send + Sync + 'static {
    /// Create the schema and, on a new ledger, `ledger.init`, policy v1 and the bootstrap
    /// token. Returns true if the ledger was new.
    fn init(&self, p: &InitParams) -> StoreResult<bool>;
    /// The verifier string of the key that signs this ledger, as recorded when the ledger was
    /// created; `None` for a database without a ledger yet.
    fn ledger_verifier(&self) -> StoreResult<Option<String>>;
    fn tree_size(&self) -> StoreResult<u64>;

    fn lookup_api_token(&self, secret_hash: &str, now: &str) -> StoreResult<Option<TokenAuth>>;
    fn lookup_run_token(&self, secret_hash: &str, now: &str) -> StoreResult<Option<RunTokenAuth>>;

    fn create_dataset(
        &self,
        w: &Writer,
        name: &str,
        description: Option<&str>,
    ) -> StoreResult<Dataset>;
    fn list_datasets(&self, page: PageReq) -> StoreResult<(Vec<Dataset>, Option<i64>)>;
    fn get_dataset(&self, id: &str) -> StoreResult<Dataset>;

    /// Register a verified manifest; `(version, created)`, `created == false` when the same
    /// digest was already registered in this dataset (nothing written, no event).
    fn register_version(
        &self,
        w: &Writer,
        dataset_id: &str,
        manifest: &datapilot::manifest::Manifest,
        note: Option<&str>,
    ) -> StoreResult<(DatasetVersion, bool)>;
    fn list_versions(
        &self,
        dataset_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<DatasetVersion>, Option<i64>)>;
    fn get_version(&self, dataset_id: &str, digest: &str) -> StoreResult<DatasetVersion>;
    fn get_manifest(&self, dataset_id: &str, digest: &str) -> StoreResult<Manifest>;

    fn record_gate(
        &self,
        w: &Writer,
        dataset_id: &str,
        digest: &str,
        gate: &str,
        status: GateOutcome,
        details: &std::collections::BTreeMap<String, String>,
    ) -> StoreResult<GateResult>;
    fn list_gates(
        &self,
        dataset_id: &str,
        digest: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<GateResult>, Option<i64>)>;

    fn get_policy(&self) -> StoreResult<Policy>;
    fn update_policy(&self, w: &Writer, required_gates: &[String], ttl: u64)
        -> StoreResult<Policy>;
    /// The policy in force at `tree_size` and the seq of its `policy.update` event (none for v1).
    fn policy_at(&self, tree_size: u64) -> StoreResult<(Policy, Option<u64>)>;

    /// Create a run; returns it and its token's expiry.
    fn create_run(&self, w: &Writer, r: &NewRun) -> StoreResult<(Run, String)>;
    fn list_runs(&self, page: PageReq) -> StoreResult<(Vec<Run>, Option<i64>)>;
    fn get_run(&self, id: &str) -> StoreResult<Run>;
    fn finish_run(
        &self,
        w: &Writer,
        id: &str,
        status: FinishStatus,
        outputs: &[VersionRef],
    ) -> StoreResult<Run>;

    fn append_metrics(
        &self,
        w: &Writer,
        run_id: &str,
        points: &[MetricPoint],
        digest: &str,
    ) -> StoreResult<MetricBatch>;
    fn list_metrics(
        &self,
        run_id: &str,
        name: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<MetricValue>, Option<i64>)>;

    /// Fail fast before streaming an upload: run exists, is running, name unused.
    fn check_artifact_upload(&self, run_id: &str, name: &str) -> StoreResult<()>;
    fn add_artifact(
        &self,
        w: &Writer,
        run_id: &str,
        name: &str,
        sha256: &str,
        size: u64,
    ) -> StoreResult<Artifact>;
    fn list_artifacts(
        &self,
        run_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<Artifact>, Option<i64>)>;
    fn get_artifact(&self, run_id: &str, artifact_id: &str) -> StoreResult<Artifact>;
    /// True if any artifact has this content (blobs are shared by content).
    fn blob_referenced(&self, sha256: &str) -> StoreResult<bool>;

    /// Lineage one hop around a run / a dataset version, with only the edges whose event has
    /// `seq < tree_size` (the whole current graph when `None`).
    fn run_lineage(
        &self,
        run_id: &str,
        tree_size: Option<u64>,
    ) -> StoreResult<datapilot::model::lineage::Lineage>;
    fn version_lineage(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> StoreResult<datapilot::model::lineage::Lineage>;

    fn list_audit(
        &self,
        subject: Option<&str>,
        action: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<AuditEvent>, Option<i64>)>;
    fn get_audit(&self, seq: u64) -> StoreResult<AuditEvent>;
    /// Leaf bytes of the events with one of `subjects` or one of `seqs`, with `seq < tree_size`,
    /// ascending.
    fn audit_slice(
        &self,
        subjects: &[String],
        seqs: &[u64],
        tree_size: u64,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;

    fn ledger_entries(&self, start: u64, limit: u32) -> StoreResult<Vec<LedgerEntry>>;
    /// Head of the tree at `size` (the current size when `None`).
    fn tree_head(&self, size: Option<u64>) -> StoreResult<TreeHead>;
    fn inclusion_proof(&self, seq: u64, tree_size: u64) -> StoreResult<(Hash, Vec<Hash>)>;
    fn consistency_proof(&self, from: u64, to: u64) -> StoreResult<Vec<Hash>>;

    fn create_token(
        &self,
        w: &Writer,
        name: &str,
        role: Role,
        secret_hash: &str,
        expires_at: Option<&str>,
    ) -> StoreResult<ApiToken>;
    fn list_tokens(&self, page: PageReq) -> StoreResult<(Vec<ApiToken>, Option<i64>)>;
    fn revoke_token(&self, w: &Writer, id: &str) -> StoreResult<ApiToken>;

    fn idem_begin(&self, scope: &str, key: &str, fingerprint: &str) -> StoreResult<IdemBegin>;
    /// Keep the response of a request that wrote nothing (an error below 500); a key whose
    /// write already completed it in its own transaction is left as it is.
    fn idem_complete(&self, scope: &str, key: &str, resp: &StoredResponse) -> StoreResult<()>;
    fn idem_abort(&self, scope: &str, key: &str) -> StoreResult<()>;
}
