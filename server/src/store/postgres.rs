//! The PostgreSQL backend: for teams that run DataPilot on the database they already operate,
//! with any number of stateless server replicas.
//!
//! `tokio-postgres` with a `deadpool-postgres` pool (sqlx was not an option: its SQLite driver
//! pulls a `libsqlite3-sys` that clashes with rusqlite's `links = "sqlite3"`). Every write
//! transaction locks the one `ledger_state` row first (see [`super::commit`]): a `SERIAL` log
//! index would not do, since a rolled-back insert leaves a gap and a later commit can become
//! visible before an earlier one. Immutability is enforced by triggers, as in SQLite. Reads
//! run in `REPEATABLE READ READ ONLY` snapshots, so a multi-query read (a bundle, a proof) sees
//! one state of the ledger.
//!
//! Durability rests on PostgreSQL's `synchronous_commit = on` (the default); see
//! docs/server.md for what the database must guarantee. Connections carry a statement and a
//! lock timeout, and the pool a wait timeout, so an unreachable or stuck database is a 503 with
//! `Retry-After`, never a hung request.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::repo::{Repo, RepoTx, Row, Val};
use super::{StoreError, StoreResult};

/// Connections in the pool of one replica.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection before it is a 503.
pub const POOL_WAIT: Duration = Duration::from_secs(5);
/// Connecting to the database.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest statement, and longest wait for a lock (the ledger row included).
pub const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Rows per pipelined chunk of a bulk statement that is not a plain `INSERT … VALUES`.
const PIPELINE_CHUNK: usize = 512;
/// Rows per multi-row INSERT (statements for the full chunk and the remainder are prepared
/// once per connection).
const MULTI_ROW_CHUNK: usize = 256;
/// PostgreSQL's limit of bind parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// `INSERT INTO t (…) VALUES ($1, …, $k)` split into its head (up to `VALUES`) and the row
/// template; `None` for any other statement.
fn split_values(sql: &str) -> Option<(&str, &str)> {
    if !sql.trim_start().to_ascii_uppercase().starts_with("INSERT") {
        return None;
    }
    let at = sql.find(" VALUES (")?;
    let row = sql[at + " VALUES ".len()..].trim();
    (row.starts_with('(') && row.ends_with(')') && !row[1..].contains('('))
        .then_some((&sql[..at], row))
}

/// `head VALUES (row 1), …, (row n)` with the row's `$i` renumbered per row.
fn multi_row_insert(head: &str, row: &str, width: usize, n: usize) -> String {
    let mut out = String::with_capacity(head.len() + n * row.len());
    out.push_str(head);
    out.push_str(" VALUES ");
    for r in 0..n {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        out.push_str(
            &(1..=width)
                .map(|i| format!("${}", r * width + i))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push(')');
    }
    out
}

/// Numbered migrations; the applied count is kept in `schema_version`.
fn migrations() -> Vec<String> {
    let immutable = [
        "audit_events",
        "merkle_nodes",
        "datasets",
        "dataset_versions",
        "manifest_files",
        "gate_results",
        "policies",
        "run_inputs",
        "run_outputs",
        "metric_batches",
        "metric_points",
        "artifacts",
        "checkpoints",
    ];
    let mut v1 = String::from(
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE ledger_state (id BIGINT PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL);
INSERT INTO ledger_state (id, size) VALUES (1, 0);
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY, time TEXT NOT NULL,
    actor_kind TEXT NOT NULL, actor_id TEXT NOT NULL, actor_role TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL,
    leaf BYTEA NOT NULL, leaf_hash BYTEA NOT NULL);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE TABLE merkle_nodes (
    level BIGINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE checkpoints (tree_size BIGINT PRIMARY KEY, root BYTEA NOT NULL,
    note TEXT NOT NULL, signed_at TEXT NOT NULL);
CREATE TABLE tokens (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, role TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, expires_at TEXT, revoked_at TEXT,
    audit_seq BIGINT NOT NULL);
CREATE TABLE datasets (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE, description TEXT, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, audit_seq BIGINT NOT NULL);
CREATE TABLE dataset_versions (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets (id), digest TEXT NOT NULL,
    file_count BIGINT NOT NULL, total_bytes BIGINT NOT NULL, note TEXT,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, audit_seq BIGINT NOT NULL,
    UNIQUE (dataset_id, digest));
CREATE TABLE manifest_files (
    version_n BIGINT NOT NULL REFERENCES dataset_versions (n), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, size BIGINT NOT NULL, PRIMARY KEY (version_n, path));
CREATE TABLE gate_results (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    dataset_id TEXT NOT NULL, digest TEXT NOT NULL, gate TEXT NOT NULL, status TEXT NOT NULL,
    details TEXT NOT NULL, recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL,
    audit_seq BIGINT NOT NULL);
CREATE INDEX gate_results_version ON gate_results (dataset_id, digest, gate, n);
CREATE TABLE policies (
    version BIGINT PRIMARY KEY, required_gates TEXT NOT NULL,
    run_token_ttl_seconds BIGINT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
    audit_seq BIGINT NOT NULL, update_seq BIGINT);
CREATE TABLE runs (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, status TEXT NOT NULL, inputs TEXT NOT NULL, git_commit TEXT NOT NULL,
    image_digest TEXT NOT NULL, params TEXT NOT NULL, outputs TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, finished_at TEXT,
    audit_seq BIGINT NOT NULL, finish_seq BIGINT, token_hash TEXT NOT NULL UNIQUE,
    token_expires_at TEXT NOT NULL);
CREATE TABLE run_inputs (
    run_id TEXT NOT NULL, dataset_id TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id, digest));
CREATE INDEX run_inputs_version ON run_inputs (dataset_id, digest);
CREATE TABLE run_outputs (
    run_id TEXT NOT NULL, dataset_id TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id, digest));
CREATE INDEX run_outputs_version ON run_outputs (dataset_id, digest);
CREATE TABLE metric_batches (
    run_id TEXT NOT NULL, batch BIGINT NOT NULL, count BIGINT NOT NULL, digest TEXT NOT NULL,
    created_at TEXT NOT NULL, audit_seq BIGINT NOT NULL, PRIMARY KEY (run_id, batch));
CREATE TABLE metric_points (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, run_id TEXT NOT NULL,
    batch BIGINT NOT NULL, name TEXT NOT NULL, step BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL, time TEXT);
CREATE INDEX metric_points_run ON metric_points (run_id, n);
CREATE INDEX metric_points_name ON metric_points (run_id, name, n);
CREATE TABLE artifacts (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, audit_seq BIGINT NOT NULL,
    UNIQUE (run_id, name));
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
CREATE TABLE idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
    status BIGINT, headers TEXT, body BYTEA, secret_of TEXT, created_unix BIGINT NOT NULL,
    PRIMARY KEY (scope, key));
CREATE INDEX idempotency_created ON idempotency (created_unix);

CREATE FUNCTION datapilot_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'immutable: %', TG_TABLE_NAME; END $$;
-- A run changes exactly once: running -> succeeded|failed, touching only the finish columns.
CREATE FUNCTION datapilot_runs_seal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'running' OR NEW.status NOT IN ('succeeded', 'failed')
     OR NEW.id IS DISTINCT FROM OLD.id OR NEW.name IS DISTINCT FROM OLD.name
     OR NEW.inputs IS DISTINCT FROM OLD.inputs OR NEW.git_commit IS DISTINCT FROM OLD.git_commit
     OR NEW.image_digest IS DISTINCT FROM OLD.image_digest OR NEW.params IS DISTINCT FROM OLD.params
     OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by
     OR NEW.audit_seq IS DISTINCT FROM OLD.audit_seq OR NEW.token_hash IS DISTINCT FROM OLD.token_hash
     OR NEW.token_expires_at IS DISTINCT FROM OLD.token_expires_at
     OR NEW.finished_at IS NULL OR NEW.finish_seq IS NULL THEN
    RAISE EXCEPTION 'immutable: runs (a finished run is sealed)';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER runs_seal BEFORE UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION datapilot_runs_seal();
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs FOR EACH ROW EXECUTE FUNCTION datapilot_immutable();
-- A token changes exactly once: revocation.
CREATE FUNCTION datapilot_tokens_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
     OR NEW.id IS DISTINCT FROM OLD.id OR NEW.name IS DISTINCT FROM OLD.name
     OR NEW.role IS DISTINCT FROM OLD.role OR NEW.secret_hash IS DISTINCT FROM OLD.secret_hash
     OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at OR NEW.audit_seq IS DISTINCT FROM OLD.audit_seq THEN
    RAISE EXCEPTION 'immutable: tokens (only revocation is allowed)';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tokens_revoke_only BEFORE UPDATE ON tokens FOR EACH ROW EXECUTE FUNCTION datapilot_tokens_revoke_only();
CREATE TRIGGER tokens_no_delete BEFORE DELETE ON tokens FOR EACH ROW EXECUTE FUNCTION datapilot_immutable();
-- The ledger only grows.
CREATE FUNCTION datapilot_ledger_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.size < OLD.size THEN RAISE EXCEPTION 'immutable: ledger_state (the ledger only grows)'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_state_grows BEFORE UPDATE ON ledger_state FOR EACH ROW EXECUTE FUNCTION datapilot_ledger_grows();
CREATE TRIGGER ledger_state_no_delete BEFORE DELETE ON ledger_state FOR EACH ROW EXECUTE FUNCTION datapilot_immutable();
"#,
    );
    for t in immutable {
        v1.push_str(&format!(
            "CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION datapilot_immutable();\n\
             CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION datapilot_immutable();\n"
        ));
    }
    for t in ["runs", "tokens", "ledger_state"] {
        v1.push_str(&format!(
            "CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION datapilot_immutable();\n"
        ));
    }
    let v2 = "
-- Nonces of signed gateway requests, remembered for the freshness window (replay protection).
CREATE TABLE gateway_nonces (nonce TEXT PRIMARY KEY, expires_unix BIGINT NOT NULL);
CREATE INDEX gateway_nonces_expiry ON gateway_nonces (expires_unix);
"
    .to_string();
    let v3 = "
-- A running run may get a new token (reissueRunToken, for a run whose token was lost); apart
-- from that a run changes exactly once: running -> succeeded|failed, only the finish columns.
CREATE OR REPLACE FUNCTION datapilot_runs_seal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT (
       (OLD.status = 'running' AND NEW.status = 'running'
        AND NEW.token_hash IS DISTINCT FROM OLD.token_hash AND NEW.finished_at IS NULL
        AND NEW.finish_seq IS NULL AND NEW.outputs IS NOT DISTINCT FROM OLD.outputs)
    OR (OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed')
        AND NEW.finished_at IS NOT NULL AND NEW.finish_seq IS NOT NULL
        AND NEW.token_hash IS NOT DISTINCT FROM OLD.token_hash
        AND NEW.token_expires_at IS NOT DISTINCT FROM OLD.token_expires_at))
     OR NEW.id IS DISTINCT FROM OLD.id OR NEW.name IS DISTINCT FROM OLD.name
     OR NEW.inputs IS DISTINCT FROM OLD.inputs OR NEW.git_commit IS DISTINCT FROM OLD.git_commit
     OR NEW.image_digest IS DISTINCT FROM OLD.image_digest OR NEW.params IS DISTINCT FROM OLD.params
     OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by
     OR NEW.audit_seq IS DISTINCT FROM OLD.audit_seq THEN
    RAISE EXCEPTION 'immutable: runs (a finished run is sealed)';
  END IF;
  RETURN NEW;
END $$;
"
    .to_string();
    // v4: staging for manifests registered in parts (the SQL is shared with SQLite), and
    // manifest paths compared by their bytes, as DPM-1 sorts them, whatever the database's
    // default collation (SQLite's default BINARY collation already does).
    let v4 = format!(
        "ALTER TABLE manifest_files ALTER COLUMN path TYPE TEXT COLLATE \"C\";\n{}",
        super::sqlite::MANIFEST_UPLOADS_SQL
            .replace("path TEXT NOT NULL", "path TEXT COLLATE \"C\" NOT NULL")
    );
    let v5 = super::sqlite::DASHBOARD_INDEXES_SQL.to_string();
    let v6 = format!(
        "{}CREATE TRIGGER checkpoint_cosignatures_immutable BEFORE UPDATE OR DELETE ON checkpoint_cosignatures FOR EACH ROW EXECUTE FUNCTION datapilot_immutable();\n\
         CREATE TRIGGER checkpoint_cosignatures_no_truncate BEFORE TRUNCATE ON checkpoint_cosignatures FOR EACH STATEMENT EXECUTE FUNCTION datapilot_immutable();\n",
        super::sqlite::COSIGNATURES_SQL
    );
    vec![v1, v2, v3, v4, v5, v6]
}

/// The number of migrations this build knows.
pub fn schema_version() -> usize {
    migrations().len()
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let msg = db.message();
        if msg.starts_with("immutable:") {
            return StoreError::Conflict("immutable", msg.to_string());
        }
        let code = db.code().code();
        // 08: connection exceptions, 53: insufficient resources, 57: operator intervention
        // (shutdown, statement/lock timeout as 57014 query_canceled), 55P03: lock not available.
        if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57")
            || code == "55P03"
        {
            return StoreError::Unavailable(format!("PostgreSQL: {msg}"));
        }
        return StoreError::Internal(format!("PostgreSQL: {msg} ({code})"));
    }
    if e.is_closed() || e.to_string().contains("timed out") {
        return StoreError::Unavailable(format!("PostgreSQL: {e}"));
    }
    StoreError::Internal(format!("PostgreSQL: {e}"))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg_err(e)
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Val::Null, _) => Ok(IsNull::Yes),
            (Val::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Val::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Val::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Val::Int(v), &Type::TEXT) => v.to_string().to_sql(ty, out),
            (Val::Int(v), _) => v.to_sql(ty, out),
            (Val::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Val::Real(v), _) => v.to_sql(ty, out),
            (Val::Text(v), _) => v.as_str().to_sql(ty, out),
            (Val::Blob(v), _) => v.as_slice().to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Val {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Val::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Val::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Val::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Val::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Val::Text(String::from_sql(ty, raw)?),
        })
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Val::Null)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::BYTEA
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
        )
    }
}

fn refs(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// The PostgreSQL repository.
pub struct PgRepo {
    pool: Pool,
}

impl std::fmt::Debug for PgRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRepo")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgRepo {
    /// Connect to `url` (`postgres://user@host:port/db`, libpq key/values also accepted) and
    /// apply migrations. Several replicas may start at once: migrations take an advisory lock.
    pub async fn open(url: &str, pool_size: usize) -> StoreResult<Self> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Internal(format!("database URL: {e}")))?;
        cfg.connect_timeout(CONNECT_TIMEOUT);
        cfg.keepalives(true);
        cfg.application_name("datapilot-server");
        cfg.options(format!(
            "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS} \
             -c idle_in_transaction_session_timeout=60000 -c synchronous_commit=on"
        ));
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size.max(2))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("database pool: {e}")))?;
        let repo = PgRepo { pool };
        repo.migrate().await?;
        Ok(repo)
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let c = self.conn().await?;
        c.batch_execute("BEGIN").await?;
        let r = async {
            // One replica migrates; the others wait here, then find nothing left to do.
            c.batch_execute(
                "SELECT pg_advisory_xact_lock(7277346102);
                 CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
            )
            .await?;
            let applied: i64 = c
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .await?
                .get(0);
            let all = migrations();
            if applied as usize > all.len() {
                return Err(StoreError::Internal(format!(
                    "database schema version {applied} is newer than this server ({})",
                    all.len()
                )));
            }
            for (i, sql) in all.iter().enumerate().skip(applied as usize) {
                c.batch_execute(sql).await?;
                c.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&((i + 1) as i64)],
                )
                .await?;
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) => Ok(c.batch_execute("COMMIT").await?),
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn begin(&self, sql: &str) -> StoreResult<Box<dyn RepoTx>> {
        let client = self.conn().await?;
        client.batch_execute(sql).await?;
        Ok(Box::new(PgTx {
            client: Some(client),
            open: true,
        }))
    }
}

#[async_trait]
impl Repo for PgRepo {
    async fn read(&self) -> StoreResult<Box<dyn RepoTx>> {
        self.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }
    async fn read_one(&self) -> StoreResult<Box<dyn RepoTx>> {
        // Autocommit: one round trip instead of BEGIN, the query and ROLLBACK.
        Ok(Box::new(PgTx {
            client: Some(self.conn().await?),
            open: false,
        }))
    }
    async fn write(&self) -> StoreResult<Box<dyn RepoTx>> {
        self.begin("BEGIN").await
    }
    fn backend(&self) -> &'static str {
        "postgres"
    }
    fn pool_state(&self) -> Option<super::repo::PoolState> {
        let s = self.pool.status();
        Some(super::repo::PoolState {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
        })
    }
}

/// A transaction on a pooled connection; rolled back (off the request's task) if dropped open.
struct PgTx {
    client: Option<Object>,
    /// In a transaction (else autocommit: nothing to roll back).
    open: bool,
}

impl PgTx {
    fn c(&self) -> &Object {
        self.client
            .as_ref()
            .expect("connection present until commit or drop")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.open {
            return; // back to the pool as it is
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        // Never hand a connection in an unknown state back to the pool.
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

#[async_trait]
impl RepoTx for PgTx {
    async fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64> {
        let c = self.c();
        let st = c.prepare_cached(sql).await?;
        Ok(c.execute(&st, &refs(params)).await?)
    }

    async fn query(&mut self, sql: &str, params: &[Val]) -> StoreResult<Vec<Row>> {
        let c = self.c();
        let st = c.prepare_cached(sql).await?;
        let rows = c.query(&st, &refs(params)).await?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Val>(i).map_err(pg_err))
                    .collect::<StoreResult<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    async fn execute_many(&mut self, sql: &str, rows: &[Vec<Val>]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let c = self.c();
        // An `INSERT … VALUES (…)` becomes one multi-row INSERT per chunk: a 1,000-point
        // metric batch is 4 statements, not 1,000 round trips.
        if let Some((head, row)) = split_values(sql) {
            let width = rows[0].len();
            let per = (MAX_PARAMS / width.max(1)).clamp(1, MULTI_ROW_CHUNK);
            for chunk in rows.chunks(per) {
                let stmt = multi_row_insert(head, row, width, chunk.len());
                let st = c.prepare_cached(&stmt).await?;
                let params: Vec<&(dyn ToSql + Sync)> = chunk
                    .iter()
                    .flat_map(|r| r.iter().map(|p| p as &(dyn ToSql + Sync)))
                    .collect();
                c.execute(&st, &params).await?;
            }
            return Ok(());
        }
        let st = c.prepare_cached(sql).await?;
        // Pipelined: tokio-postgres sends the queued statements without waiting for each
        // answer, so a chunk costs about one round trip.
        for chunk in rows.chunks(PIPELINE_CHUNK) {
            let params: Vec<Vec<&(dyn ToSql + Sync)>> = chunk.iter().map(|r| refs(r)).collect();
            futures_util::future::try_join_all(params.iter().map(|p| c.execute(&st, p))).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let client = self.client.take().expect("connection present until commit");
        if !self.open {
            return Ok(());
        }
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                drop(Object::take(client));
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_inserts_become_multi_row_inserts() {
        let sql = "INSERT INTO merkle_nodes (level, idx, hash) VALUES ($1, $2, $3)";
        let (head, row) = split_values(sql).unwrap();
        assert_eq!(head, "INSERT INTO merkle_nodes (level, idx, hash)");
        assert_eq!(row, "($1, $2, $3)");
        assert_eq!(
            multi_row_insert(head, row, 3, 2),
            "INSERT INTO merkle_nodes (level, idx, hash) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        assert!(split_values("UPDATE runs SET a = $1").is_none());
        assert!(split_values("INSERT INTO t (a) VALUES (lower($1))").is_none());
    }
}
