//! The SQLite backend: the reference server's zero-setup default (one file in the data dir).
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit has reached the disk before the
//! HTTP response is sent. One writer connection (SQLite allows one writer anyway; the domain's
//! group commit batches writes into its transactions); reads use a small pool of reader
//! connections that see WAL snapshots and never block the writer.
//!
//! Immutability is enforced by triggers created by the migrations: they abort any
//! `UPDATE`/`DELETE` on immutable rows (a run row may change once, from `running` to finished;
//! a token once, from active to revoked). A trigger abort surfaces as a 409 `immutable`.
//!
//! rusqlite is a blocking library: every call runs through [`blocking`], which moves other
//! tasks off the worker thread while SQLite works (`block_in_place`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;

use super::repo::{Repo, RepoTx, Row, Val};
use super::{StoreError, StoreResult};

/// Schema migrations, applied in order; the applied count is kept in `schema_version`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL,
    actor_kind TEXT NOT NULL, actor_id TEXT NOT NULL, actor_role TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL,
    leaf BLOB NOT NULL, leaf_hash BLOB NOT NULL);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE tokens (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    expires_at TEXT, revoked_at TEXT, audit_seq INTEGER NOT NULL);
CREATE TABLE datasets (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    description TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    audit_seq INTEGER NOT NULL);
CREATE TABLE dataset_versions (
    n INTEGER PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES datasets (id),
    digest TEXT NOT NULL, file_count INTEGER NOT NULL, total_bytes INTEGER NOT NULL,
    note TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL, audit_seq INTEGER NOT NULL,
    UNIQUE (dataset_id, digest));
CREATE TABLE manifest_files (
    version_n INTEGER NOT NULL REFERENCES dataset_versions (n), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (version_n, path)) WITHOUT ROWID;
CREATE TABLE gate_results (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, dataset_id TEXT NOT NULL,
    digest TEXT NOT NULL, gate TEXT NOT NULL, status TEXT NOT NULL, details TEXT NOT NULL,
    recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL, audit_seq INTEGER NOT NULL);
CREATE INDEX gate_results_version ON gate_results (dataset_id, digest, gate, n);
CREATE TABLE policies (
    version INTEGER PRIMARY KEY, required_gates TEXT NOT NULL,
    run_token_ttl_seconds INTEGER NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
    audit_seq INTEGER NOT NULL, update_seq INTEGER);
CREATE TABLE runs (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, status TEXT NOT NULL,
    inputs TEXT NOT NULL, git_commit TEXT NOT NULL, image_digest TEXT NOT NULL,
    params TEXT NOT NULL, outputs TEXT NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, finished_at TEXT, audit_seq INTEGER NOT NULL, finish_seq INTEGER,
    token_hash TEXT NOT NULL UNIQUE, token_expires_at TEXT NOT NULL);
CREATE TABLE run_inputs (
    run_id TEXT NOT NULL, dataset_id TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id, digest)) WITHOUT ROWID;
CREATE INDEX run_inputs_version ON run_inputs (dataset_id, digest);
CREATE TABLE run_outputs (
    run_id TEXT NOT NULL, dataset_id TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id, digest)) WITHOUT ROWID;
CREATE INDEX run_outputs_version ON run_outputs (dataset_id, digest);
CREATE TABLE metric_batches (
    run_id TEXT NOT NULL, batch INTEGER NOT NULL, count INTEGER NOT NULL, digest TEXT NOT NULL,
    created_at TEXT NOT NULL, audit_seq INTEGER NOT NULL, PRIMARY KEY (run_id, batch));
CREATE TABLE metric_points (
    n INTEGER PRIMARY KEY, run_id TEXT NOT NULL, batch INTEGER NOT NULL, name TEXT NOT NULL,
    step INTEGER NOT NULL, value REAL NOT NULL, time TEXT);
CREATE INDEX metric_points_run ON metric_points (run_id, n);
CREATE INDEX metric_points_name ON metric_points (run_id, name, n);
CREATE TABLE artifacts (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, run_id TEXT NOT NULL, name TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, audit_seq INTEGER NOT NULL, UNIQUE (run_id, name));
CREATE TABLE idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
    status INTEGER, headers TEXT, body BLOB, created_unix INTEGER NOT NULL,
    PRIMARY KEY (scope, key));

-- Immutable tables: no UPDATE, no DELETE, ever.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'immutable: audit_events'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'immutable: audit_events'); END;
CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes BEGIN SELECT RAISE(ABORT, 'immutable: merkle_nodes'); END;
CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes BEGIN SELECT RAISE(ABORT, 'immutable: merkle_nodes'); END;
CREATE TRIGGER datasets_no_update BEFORE UPDATE ON datasets BEGIN SELECT RAISE(ABORT, 'immutable: datasets'); END;
CREATE TRIGGER datasets_no_delete BEFORE DELETE ON datasets BEGIN SELECT RAISE(ABORT, 'immutable: datasets'); END;
CREATE TRIGGER dataset_versions_no_update BEFORE UPDATE ON dataset_versions BEGIN SELECT RAISE(ABORT, 'immutable: dataset_versions'); END;
CREATE TRIGGER dataset_versions_no_delete BEFORE DELETE ON dataset_versions BEGIN SELECT RAISE(ABORT, 'immutable: dataset_versions'); END;
CREATE TRIGGER manifest_files_no_update BEFORE UPDATE ON manifest_files BEGIN SELECT RAISE(ABORT, 'immutable: manifest_files'); END;
CREATE TRIGGER manifest_files_no_delete BEFORE DELETE ON manifest_files BEGIN SELECT RAISE(ABORT, 'immutable: manifest_files'); END;
CREATE TRIGGER gate_results_no_update BEFORE UPDATE ON gate_results BEGIN SELECT RAISE(ABORT, 'immutable: gate_results'); END;
CREATE TRIGGER gate_results_no_delete BEFORE DELETE ON gate_results BEGIN SELECT RAISE(ABORT, 'immutable: gate_results'); END;
CREATE TRIGGER policies_no_update BEFORE UPDATE ON policies BEGIN SELECT RAISE(ABORT, 'immutable: policies'); END;
CREATE TRIGGER policies_no_delete BEFORE DELETE ON policies BEGIN SELECT RAISE(ABORT, 'immutable: policies'); END;
CREATE TRIGGER run_inputs_no_update BEFORE UPDATE ON run_inputs BEGIN SELECT RAISE(ABORT, 'immutable: run_inputs'); END;
CREATE TRIGGER run_inputs_no_delete BEFORE DELETE ON run_inputs BEGIN SELECT RAISE(ABORT, 'immutable: run_inputs'); END;
CREATE TRIGGER run_outputs_no_update BEFORE UPDATE ON run_outputs BEGIN SELECT RAISE(ABORT, 'immutable: run_outputs'); END;
CREATE TRIGGER run_outputs_no_delete BEFORE DELETE ON run_outputs BEGIN SELECT RAISE(ABORT, 'immutable: run_outputs'); END;
CREATE TRIGGER metric_batches_no_update BEFORE UPDATE ON metric_batches BEGIN SELECT RAISE(ABORT, 'immutable: metric_batches'); END;
CREATE TRIGGER metric_batches_no_delete BEFORE DELETE ON metric_batches BEGIN SELECT RAISE(ABORT, 'immutable: metric_batches'); END;
CREATE TRIGGER metric_points_no_update BEFORE UPDATE ON metric_points BEGIN SELECT RAISE(ABORT, 'immutable: metric_points'); END;
CREATE TRIGGER metric_points_no_delete BEFORE DELETE ON metric_points BEGIN SELECT RAISE(ABORT, 'immutable: metric_points'); END;
CREATE TRIGGER artifacts_no_update BEFORE UPDATE ON artifacts BEGIN SELECT RAISE(ABORT, 'immutable: artifacts'); END;
CREATE TRIGGER artifacts_no_delete BEFORE DELETE ON artifacts BEGIN SELECT RAISE(ABORT, 'immutable: artifacts'); END;
-- A run changes exactly once: running -> succeeded|failed, touching only the finish columns.
CREATE TRIGGER runs_seal BEFORE UPDATE ON runs
WHEN OLD.status <> 'running' OR NEW.status NOT IN ('succeeded', 'failed')
  OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.inputs IS NOT OLD.inputs
  OR NEW.git_commit IS NOT OLD.git_commit OR NEW.image_digest IS NOT OLD.image_digest
  OR NEW.params IS NOT OLD.params OR NEW.created_at IS NOT OLD.created_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.audit_seq IS NOT OLD.audit_seq
  OR NEW.token_hash IS NOT OLD.token_hash OR NEW.token_expires_at IS NOT OLD.token_expires_at
  OR NEW.finished_at IS NULL OR NEW.finish_seq IS NULL
BEGIN SELECT RAISE(ABORT, 'immutable: runs (a finished run is sealed)'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'immutable: runs'); END;
-- A token changes exactly once: revocation.
CREATE TRIGGER tokens_revoke_only BEFORE UPDATE ON tokens
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
  OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role
  OR NEW.secret_hash IS NOT OLD.secret_hash OR NEW.created_at IS NOT OLD.created_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.expires_at IS NOT OLD.expires_at
  OR NEW.audit_seq IS NOT OLD.audit_seq
BEGIN SELECT RAISE(ABORT, 'immutable: tokens (only revocation is allowed)'); END;
CREATE TRIGGER tokens_no_delete BEFORE DELETE ON tokens BEGIN SELECT RAISE(ABORT, 'immutable: tokens'); END;
"#,
    r#"
-- Idempotency records never hold a secret: createToken / createRun keep their body without it
-- and name the created resource here. Records from before this migration may hold secrets
-- (the whole response was kept): drop them.
ALTER TABLE idempotency ADD COLUMN secret_of TEXT;
DELETE FROM idempotency WHERE scope LIKE '% POST /v1/tokens' OR scope LIKE '% POST /v1/runs'
    OR instr(CAST(body AS TEXT), 'dpt_') > 0 OR instr(CAST(body AS TEXT), 'dpr_') > 0;
"#,
    r#"
-- Whether a blob is still referenced, when an upload's artifact could not be recorded.
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
"#,
    r#"
-- The ledger's size, locked by every write transaction (the PostgreSQL backend needs the row
-- lock; here it keeps one schema for both), and only ever growing.
CREATE TABLE ledger_state (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL);
INSERT INTO ledger_state (id, size) SELECT 1, COALESCE(MAX(seq) + 1, 0) FROM audit_events;
CREATE TRIGGER ledger_state_grows BEFORE UPDATE ON ledger_state WHEN NEW.size < OLD.size
BEGIN SELECT RAISE(ABORT, 'immutable: ledger_state (the ledger only grows)'); END;
CREATE TRIGGER ledger_state_no_delete BEFORE DELETE ON ledger_state BEGIN SELECT RAISE(ABORT, 'immutable: ledger_state'); END;
-- Every checkpoint the server has signed: a size is signed with one root, ever.
CREATE TABLE checkpoints (tree_size INTEGER PRIMARY KEY, root BLOB NOT NULL,
    note TEXT NOT NULL, signed_at TEXT NOT NULL);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints BEGIN SELECT RAISE(ABORT, 'immutable: checkpoints'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN SELECT RAISE(ABORT, 'immutable: checkpoints'); END;
-- Keys are recorded only by the write they guard (or with the answer of a request that wrote
-- nothing); the in-flight marker of earlier releases is gone.
DELETE FROM idempotency WHERE state = 'in_flight';
CREATE INDEX idempotency_created ON idempotency (created_unix);
"#,
    r#"
-- Nonces of signed gateway requests, remembered for the freshness window (replay protection).
CREATE TABLE gateway_nonces (nonce TEXT PRIMARY KEY, expires_unix INTEGER NOT NULL);
CREATE INDEX gateway_nonces_expiry ON gateway_nonces (expires_unix);
"#,
    r#"
-- A running run may get a new token (reissueRunToken, for a run whose token was lost); apart
-- from that a run changes exactly once: running -> succeeded|failed, only the finish columns.
DROP TRIGGER runs_seal;
CREATE TRIGGER runs_seal BEFORE UPDATE ON runs
WHEN NOT (
  -- a token reissue: still running, only the token columns change
  (OLD.status = 'running' AND NEW.status = 'running' AND NEW.token_hash IS NOT OLD.token_hash
   AND NEW.finished_at IS NULL AND NEW.finish_seq IS NULL AND NEW.outputs IS OLD.outputs)
  OR
  -- the finish
  (OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed')
   AND NEW.finished_at IS NOT NULL AND NEW.finish_seq IS NOT NULL
   AND NEW.token_hash IS OLD.token_hash AND NEW.token_expires_at IS OLD.token_expires_at))
  OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.inputs IS NOT OLD.inputs
  OR NEW.git_commit IS NOT OLD.git_commit OR NEW.image_digest IS NOT OLD.image_digest
  OR NEW.params IS NOT OLD.params OR NEW.created_at IS NOT OLD.created_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.audit_seq IS NOT OLD.audit_seq
BEGIN SELECT RAISE(ABORT, 'immutable: runs (a finished run is sealed)'); END;
"#,
    MANIFEST_UPLOADS_SQL,
    DASHBOARD_INDEXES_SQL,
    COSIGNATURES_SQL,
    r#"
CREATE TRIGGER checkpoint_cosignatures_no_update BEFORE UPDATE ON checkpoint_cosignatures BEGIN SELECT RAISE(ABORT, 'immutable: checkpoint_cosignatures'); END;
CREATE TRIGGER checkpoint_cosignatures_no_delete BEFORE DELETE ON checkpoint_cosignatures BEGIN SELECT RAISE(ABORT, 'immutable: checkpoint_cosignatures'); END;
"#,
];

/// Witness cosignatures of published checkpoints (C2SP tlog-cosignature lines), one per witness
/// and size, insert-only: every replica serves the cosignatures any replica collected, and a
/// restart keeps them (docs/server.md, "Witnesses"). The same SQL serves both backends.
pub(crate) const COSIGNATURES_SQL: &str = r#"
CREATE TABLE checkpoint_cosignatures (
    tree_size BIGINT NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL,
    received_at TEXT NOT NULL, PRIMARY KEY (tree_size, witness));
"#;

/// Indexes behind the run list's filters (`listRuns?status=…&created_by=…`; docs/api.md,
/// "Dashboard queries"), each ending in the list's key so a filtered, ordered page is a range
/// scan. The same SQL serves both backends.
pub(crate) const DASHBOARD_INDEXES_SQL: &str = r#"
CREATE INDEX runs_status ON runs (status, n);
CREATE INDEX runs_created_by ON runs (created_by, n);
CREATE INDEX runs_git_commit ON runs (git_commit, n);
CREATE INDEX runs_image_digest ON runs (image_digest, n);
CREATE INDEX runs_created_at ON runs (created_at, n);
"#;

/// Staging for manifests registered in parts (`createManifestUpload`, `putManifestPart`,
/// `commitManifestUpload`): mutable scratch space, not evidence. Rows are copied into the
/// immutable `manifest_files` by the commit and the staging rows are then deleted; uploads
/// that are never committed expire. The same SQL serves both backends.
pub(crate) const MANIFEST_UPLOADS_SQL: &str = r#"
CREATE TABLE manifest_uploads (
    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL, digest TEXT NOT NULL, note TEXT,
    created_by TEXT NOT NULL, created_at TEXT NOT NULL, expires_unix BIGINT NOT NULL,
    committed_at TEXT);
CREATE INDEX manifest_uploads_expiry ON manifest_uploads (expires_unix);
CREATE TABLE manifest_upload_parts (
    upload_id TEXT NOT NULL, part BIGINT NOT NULL, sha256 TEXT NOT NULL,
    file_count BIGINT NOT NULL, total_bytes BIGINT NOT NULL, PRIMARY KEY (upload_id, part));
CREATE TABLE manifest_upload_files (
    upload_id TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    part BIGINT NOT NULL, PRIMARY KEY (upload_id, path));
"#;

fn sql_err(e: rusqlite::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("immutable:") {
        StoreError::Conflict("immutable", msg)
    } else if msg.contains("database is locked") || msg.contains("database is busy") {
        StoreError::Unavailable(format!("SQLite: {msg}"))
    } else {
        StoreError::Internal(format!("SQLite: {msg}"))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        sql_err(e)
    }
}

/// Run blocking SQLite work without stalling the async executor: on a multi-threaded runtime
/// the worker hands its other tasks off first; elsewhere (unit tests) it just runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The domain's portable SQL in SQLite's dialect: `$n` placeholders become `?n`, and
/// `FOR UPDATE` (a PostgreSQL row lock; SQLite's write transaction already holds the database
/// lock) is dropped.
fn dialect(sql: &str) -> String {
    sql.replace(" FOR UPDATE", "").replace('$', "?")
}

fn to_sql(v: &Val) -> SqlValue {
    match v {
        Val::Null => SqlValue::Null,
        Val::Int(i) => SqlValue::Integer(*i),
        Val::Real(f) => SqlValue::Real(*f),
        Val::Text(s) => SqlValue::Text(s.clone()),
        Val::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

fn from_sql(v: ValueRef<'_>) -> StoreResult<Val> {
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Real(f) => Val::Real(f),
        ValueRef::Text(t) => Val::Text(
            std::str::from_utf8(t)
                .map_err(|e| StoreError::Internal(format!("SQLite text is not UTF-8: {e}")))?
                .to_string(),
        ),
        ValueRef::Blob(b) => Val::Blob(b.to_vec()),
    })
}

fn run_execute(c: &Connection, sql: &str, params: &[Val]) -> StoreResult<u64> {
    let mut st = c.prepare_cached(&dialect(sql))?;
    let n = st.execute(rusqlite::params_from_iter(params.iter().map(to_sql)))?;
    Ok(n as u64)
}

fn run_query(c: &Connection, sql: &str, params: &[Val]) -> StoreResult<Vec<Row>> {
    let mut st = c.prepare_cached(&dialect(sql))?;
    let cols = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter().map(to_sql)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(cols);
        for i in 0..cols {
            vals.push(from_sql(r.get_ref(i)?)?);
        }
        out.push(Row(vals));
    }
    Ok(out)
}

fn run_many(c: &Connection, sql: &str, rows: &[Vec<Val>]) -> StoreResult<()> {
    let mut st = c.prepare_cached(&dialect(sql))?;
    for r in rows {
        st.execute(rusqlite::params_from_iter(r.iter().map(to_sql)))?;
    }
    Ok(())
}

fn open_conn(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
    // acknowledged write survives power loss, not only a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// The SQLite repository.
#[derive(Debug)]
pub struct SqliteRepo {
    path: std::path::PathBuf,
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl SqliteRepo {
    /// Open (creating if needed) the database at `path` and apply migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer = open_conn(path)?;
        migrate(&mut writer)?;
        Ok(SqliteRepo {
            path: path.to_path_buf(),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// `(synchronous, journal_mode, foreign_keys)` as in force on the writer connection and on
    /// a reader connection: what durability rests on (checked by the crash tests).
    pub fn connection_settings(&self) -> StoreResult<[(i64, String, i64); 2]> {
        fn settings(c: &Connection) -> StoreResult<(i64, String, i64)> {
            Ok((
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        }
        let writer = settings(&self.writer.blocking_lock())?;
        let reader = settings(&open_conn(&self.path)?)?;
        Ok([writer, reader])
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> StoreResult<usize> {
        let c = self.writer.blocking_lock();
        Ok(c.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }
}

/// The number of migrations this build knows.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let applied: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if applied as usize > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "database schema version {applied} is newer than this server ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [(i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[async_trait]
impl Repo for SqliteRepo {
    async fn read(&self) -> StoreResult<Box<dyn RepoTx>> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => blocking(|| open_conn(&self.path))?,
        };
        blocking(|| conn.execute_batch("BEGIN DEFERRED"))?;
        Ok(Box::new(ReadTx {
            conn: Some(conn),
            pool: self.readers.clone(),
        }))
    }

    async fn write(&self) -> StoreResult<Box<dyn RepoTx>> {
        let conn = self.writer.clone().lock_owned().await;
        blocking(|| conn.execute_batch("BEGIN IMMEDIATE"))?;
        Ok(Box::new(WriteTx { conn, open: true }))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_state(&self) -> Option<super::repo::PoolState> {
        // One writer connection plus the pooled readers (at most 8 kept; more open on demand).
        let idle_readers = self.readers.lock().unwrap_or_else(|p| p.into_inner()).len();
        let writer_idle = usize::from(self.writer.try_lock().is_ok());
        Some(super::repo::PoolState {
            max_size: 9,
            size: idle_readers + 1,
            idle: idle_readers + writer_idle,
            waiting: 0,
        })
    }
}

/// A read snapshot on a pooled reader connection.
struct ReadTx {
    conn: Option<Connection>,
    pool: Arc<Mutex<Vec<Connection>>>,
}

impl ReadTx {
    fn c(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for ReadTx {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if c.execute_batch("ROLLBACK").is_ok() {
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() < 8 {
                    pool.push(c);
                }
            }
        }
    }
}

#[async_trait]
impl RepoTx for ReadTx {
    async fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        blocking(|| run_execute(self.c(), sql, params))
    }
    async fn query(&mut self, sql: &str, params: &[Val]) -> StoreResult<Vec<Row>> {
        blocking(|| run_query(self.c(), sql, params))
    }
    async fn execute_many(&mut self, sql: &str, rows: &[Vec<Val>]) -> StoreResult<()> {
        blocking(|| run_many(self.c(), sql, rows))
    }
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        Ok(())
    }
}

/// The write transaction on the one writer connection.
struct WriteTx {
    conn: tokio::sync::OwnedMutexGuard<Connection>,
    open: bool,
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[async_trait]
impl RepoTx for WriteTx {
    async fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        blocking(|| run_execute(&self.conn, sql, params))
    }
    async fn query(&mut self, sql: &str, params: &[Val]) -> StoreResult<Vec<Row>> {
        blocking(|| run_query(&self.conn, sql, params))
    }
    async fn execute_many(&mut self, sql: &str, rows: &[Vec<Val>]) -> StoreResult<()> {
        blocking(|| run_many(&self.conn, sql, rows))
    }
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let r = blocking(|| self.conn.execute_batch("COMMIT"));
        // A failed COMMIT leaves the transaction open in SQLite; Drop rolls it back.
        if r.is_ok() {
            self.open = false;
        }
        Ok(r?)
    }
}
