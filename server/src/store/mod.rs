//! The domain layer: DataPilot's business rules over a narrow storage repository.
//!
//! ```text
//!   routes (HTTP)  ──►  Store (this module: rules, ids, audit leaves, tree maths, group commit)
//!                           │  SQL in the portable subset (repo.rs)
//!                    ┌──────┴───────┐
//!               sqlite.rs      postgres.rs      (Repo: transactions, rows, migrations)
//! ```
//!
//! Every write appends exactly one audit event in the same transaction as its rows, and
//! completes its `Idempotency-Key` record there too, so an acknowledged write always has its
//! ledger entry and its replayable answer, and a crash never leaves one without the others.
//! The leaf bytes an auditor hashes are built in exactly one place ([`ledger_io::append`]),
//! from the SDK's own [`datapilot::model::audit::LeafEvent`].
//!
//! Writes go through one committer task per process ([`commit`]): requests that arrive while a
//! transaction commits are applied together in the next one (each in its own savepoint, so one
//! refusal does not undo the others), and every transaction first locks the single
//! `ledger_state` row. So sequence numbers stay dense across any number of server replicas
//! sharing one PostgreSQL, and a commit's fsync is shared by all the writes in it.

pub mod commit;
pub mod key_history;
pub mod ledger_io;
pub mod lineage;
pub mod manifest_uploads;
pub mod postgres;
pub mod queries;
pub mod reads;
pub mod repo;
pub mod sqlite;
pub mod writes;

use std::sync::Arc;

use datapilot::merkle::{Hash, MerkleError};

use crate::model::*;
use repo::Repo;

/// Why a store operation failed, in terms the API maps one-to-one to problem codes.
#[derive(Debug, Clone)]
pub enum StoreError {
    NotFound(String),
    /// 409 with a conflict code (`already_exists`, `immutable`, `run_sealed`).
    Conflict(&'static str, String),
    /// 422 with a code (`gate_not_passed`, `digest_mismatch`).
    Unprocessable(&'static str, String),
    /// 400 `validation_failed` on a field.
    Invalid(String, String),
    /// The `Idempotency-Key` of this write was completed by another request meanwhile (a
    /// concurrent duplicate, possibly on another replica): nothing was written; replay its
    /// answer.
    KeyTaken,
    /// The database cannot be reached or is overloaded: 503 with `Retry-After`. Nothing was
    /// written.
    Unavailable(String),
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(d) | StoreError::Internal(d) | StoreError::Unavailable(d) => {
                f.write_str(d)
            }
            StoreError::Conflict(c, d) | StoreError::Unprocessable(c, d) => write!(f, "{c}: {d}"),
            StoreError::Invalid(field, m) => write!(f, "{field}: {m}"),
            StoreError::KeyTaken => f.write_str("the idempotency key was completed meanwhile"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<MerkleError> for StoreError {
    fn from(e: MerkleError) -> Self {
        StoreError::Invalid("tree_size".into(), e.to_string())
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

/// The `Idempotency-Key` a write runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemKey {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// Who performs a write, and under which `Idempotency-Key`.
///
/// With a key, the write records the key's answer (its response, never a secret) in its own
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

/// Keyset pagination: items after row key `after` in the list's order (ascending keys, or
/// descending with `desc`), at most `limit`. `scope` identifies the list operation and filters
/// the page's cursor is bound to (crate::extract::ListScope).
#[derive(Debug, Clone, Copy)]
pub struct PageReq {
    pub limit: u32,
    pub after: Option<i64>,
    pub desc: bool,
    pub scope: u32,
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

/// What the store knows of an `Idempotency-Key`.
#[derive(Debug)]
pub enum IdemLookup {
    /// Not used yet (or expired): run the request.
    Fresh,
    /// Done before with the same request: send this again.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// A new ledger's run token lifetime (policy v1).
pub const DEFAULT_RUN_TOKEN_TTL: u64 = 86_400;

/// How long one store operation (a read, or a write's whole batch) may take before it is
/// `Unavailable`: a database that is down or frozen gives a 503, never a hung request.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The metadata store: business rules over a [`Repo`], with group commit for writes.
#[derive(Debug, Clone)]
pub struct Store {
    repo: Arc<dyn Repo>,
    committer: commit::Committer,
    timeout: std::time::Duration,
}

impl Store {
    /// The domain over `repo`. Starts the committer task: call within a tokio runtime.
    pub fn new(repo: Arc<dyn Repo>) -> Self {
        Self::with_timeout(repo, DEFAULT_TIMEOUT)
    }

    /// Like [`Store::new`], with another operation timeout.
    pub fn with_timeout(repo: Arc<dyn Repo>, timeout: std::time::Duration) -> Self {
        let committer = commit::Committer::start(repo.clone(), timeout);
        Store {
            repo,
            committer,
            timeout,
        }
    }

    /// The backend's name (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.repo.backend()
    }

    /// The repository beneath, for the operator commands that read it whole (`verify`,
    /// `backup`) and the metrics' state gauges.
    pub fn repo(&self) -> &Arc<dyn Repo> {
        &self.repo
    }

    /// Run `f` in a read snapshot. The snapshot is ended explicitly (on PostgreSQL its
    /// connection goes straight back to the pool instead of through a deferred rollback).
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: for<'a> FnOnce(&'a mut dyn repo::RepoTx) -> commit::BoxFuture<'a, StoreResult<T>>,
    {
        self.read_with(false, f).await
    }

    /// Run the single-statement read `f` without a transaction where the backend allows it.
    async fn read_one<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: for<'a> FnOnce(&'a mut dyn repo::RepoTx) -> commit::BoxFuture<'a, StoreResult<T>>,
    {
        self.read_with(true, f).await
    }

    async fn read_with<T, F>(&self, one: bool, f: F) -> StoreResult<T>
    where
        F: for<'a> FnOnce(&'a mut dyn repo::RepoTx) -> commit::BoxFuture<'a, StoreResult<T>>,
    {
        let op = async {
            let mut tx = if one {
                self.repo.read_one().await?
            } else {
                self.repo.read().await?
            };
            let out = f(&mut *tx).await?;
            tx.commit().await?;
            Ok(out)
        };
        tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} s",
                    self.timeout.as_secs_f32()
                )))
            })
    }
}

/// `seconds since the epoch`, the idempotency records' clock.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn version_subject(dataset_id: &str, digest: &str) -> String {
    format!("dataset_version:{dataset_id}@{digest}")
}

pub(crate) fn page_out<T>(mut items: Vec<(i64, T)>, limit: u32) -> (Vec<T>, Option<i64>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more {
        items.last().map(|(k, _)| *k)
    } else {
        None
    };
    (items.into_iter().map(|(_, t)| t).collect(), next)
}
