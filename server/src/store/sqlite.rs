//! The SQLite implementation of [`Store`]: the reference server's metadata and ledger.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit has reached the disk before the
//! HTTP response is sent. One writer connection behind a mutex serialises writes (SQLite allows
//! one writer anyway, and serialising keeps ledger sequence numbers dense without retries);
//! reads use a small pool of reader connections that see WAL snapshots and never block writes.
//!
//! Immutability is enforced twice: the code never updates immutable rows, and triggers created
//! by the migrations abort any `UPDATE`/`DELETE` on them (a run row may change once, from
//! `running` to finished; a token once, from active to revoked). A trigger abort surfaces as a
//! 409 `immutable`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use datapilot::merkle::{leaf_hash, Hash};
use datapilot::model::lineage::{EdgeKind, Lineage, LineageEdge, LineageNode, NodeKind};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{json, Value};

use super::*;
use crate::canon::jcs;
use crate::ledger::{nodes_for_append, subtree_hash, NodeSource};
use crate::util::{self, b64, new_id, now_str};

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
];

/// `tokens` columns read by authentication: id, name, role, expires_at, revoked_at.
type TokenRow = (String, String, String, Option<String>, Option<String>);
/// `idempotency` columns: fingerprint, state, status, headers, body, secret_of.
type IdemRow = (
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
);

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
const DEFAULT_RUN_TOKEN_TTL: u64 = 86_400;

fn sql_err(e: rusqlite::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("immutable:") {
        StoreError::Conflict("immutable", msg)
    } else {
        StoreError::Internal(msg)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        sql_err(e)
    }
}

fn to_i64(field: &str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(field.into(), "value too large".into()))
}

/// SQLite metadata store.
#[derive(Debug)]
pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn open_conn(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
    // acknowledged write survives power loss, not only a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Read nodes inside a transaction.
struct TxNodes<'a>(&'a Connection);

impl NodeSource for TxNodes<'_> {
    type Error = StoreError;
    fn node(&mut self, level: u32, index: u64) -> StoreResult<Hash> {
        let v: Vec<u8> = self
            .0
            .query_row(
                "SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx = ?2",
                params![level, to_i64("index", index)?],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::Internal(format!("missing merkle node {level}/{index}")))?;
        v.try_into()
            .map_err(|_| StoreError::Internal("bad merkle node length".into()))
    }
}

/// Sequence number and time of the next event.
fn next_event(tx: &Connection) -> StoreResult<(u64, String)> {
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events",
        [],
        |r| r.get(0),
    )?;
    Ok((seq as u64, now_str()))
}

/// Append the audit event `seq` (from [`next_event`]) and its Merkle nodes.
fn write_event(
    tx: &Connection,
    seq: u64,
    time: &str,
    a: &ActorRef,
    action: &str,
    subject: &str,
    data: Value,
) -> StoreResult<()> {
    let leaf = json!({
        "v": 1, "seq": seq, "time": time,
        "actor": { "kind": a.kind, "id": a.id, "role": a.role },
        "action": action, "subject": subject, "data": data,
    });
    let bytes = jcs(&leaf);
    let lh = leaf_hash(&bytes);
    tx.execute(
        "INSERT INTO audit_events (seq, time, actor_kind, actor_id, actor_role, action, subject,
         data, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            seq as i64,
            time,
            a.kind,
            a.id,
            a.role,
            action,
            subject,
            String::from_utf8_lossy(&jcs(&data)),
            bytes,
            lh.to_vec()
        ],
    )?;
    let nodes = nodes_for_append(&mut TxNodes(tx), seq, lh)?;
    let mut ins =
        tx.prepare_cached("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (level, idx, hash) in nodes {
        ins.execute(params![level, idx as i64, hash.to_vec()])?;
    }
    Ok(())
}

/// Complete the writer's `Idempotency-Key` record inside the write's transaction, so that the
/// write, its audit event and its replayable response commit (or vanish) together: a crash
/// after the commit leaves a key that replays, never one that is released and repeats the
/// write. `secret_of` names the token or run whose secret the real response carries; the
/// secret itself never reaches the store.
fn idem_record<T: serde::Serialize>(
    tx: &Connection,
    w: &Writer,
    status: u16,
    body: &T,
    secret_of: Option<&str>,
) -> StoreResult<()> {
    let Some(k) = &w.idem else {
        return Ok(());
    };
    let body = serde_json::to_vec(body).map_err(|e| StoreError::Internal(e.to_string()))?;
    let headers = serde_json::to_string(&[("content-type", "application/json")])
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    tx.execute(
        "INSERT INTO idempotency (scope, key, fingerprint, state, status, headers, body, secret_of, created_unix)
         VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (scope, key) DO UPDATE SET state = 'done', status = excluded.status,
             headers = excluded.headers, body = excluded.body, secret_of = excluded.secret_of
         WHERE idempotency.fingerprint = excluded.fingerprint AND idempotency.state = 'in_flight'",
        params![k.scope, k.key, k.fingerprint, status as i64, headers, body, secret_of, unix_now()],
    )?;
    Ok(())
}

fn version_subject(dataset_id: &str, digest: &str) -> String {
    format!("dataset_version:{dataset_id}@{digest}")
}

fn page_out<T>(mut items: Vec<(i64, T)>, limit: u32) -> (Vec<T>, Option<i64>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more {
        items.last().map(|(k, _)| *k)
    } else {
        None
    };
    (items.into_iter().map(|(_, t)| t).collect(), next)
}

fn row_dataset(r: &rusqlite::Row) -> rusqlite::Result<(i64, Dataset)> {
    Ok((
        r.get(0)?,
        Dataset {
            id: r.get(1)?,
            name: r.get(2)?,
            description: r.get(3)?,
            created_at: r.get(4)?,
            created_by: r.get(5)?,
        },
    ))
}
const DATASET_COLS: &str = "n, id, name, description, created_at, created_by";

const VERSION_COLS: &str =
    "n, dataset_id, digest, file_count, total_bytes, note, created_at, created_by, audit_seq";

fn row_version(r: &rusqlite::Row) -> rusqlite::Result<(i64, DatasetVersion)> {
    Ok((
        r.get(0)?,
        DatasetVersion {
            dataset_id: r.get(1)?,
            digest: r.get(2)?,
            file_count: r.get::<_, i64>(3)? as u64,
            total_bytes: r.get::<_, i64>(4)? as u64,
            note: r.get(5)?,
            created_at: r.get(6)?,
            created_by: r.get(7)?,
            gate_status: "pending",
            audit_seq: r.get::<_, i64>(8)? as u64,
        },
    ))
}

const GATE_COLS: &str =
    "n, id, dataset_id, digest, gate, status, details, recorded_at, recorded_by, audit_seq";

fn row_gate(r: &rusqlite::Row) -> rusqlite::Result<(i64, GateResult)> {
    let status: String = r.get(5)?;
    let details: String = r.get(6)?;
    Ok((
        r.get(0)?,
        GateResult {
            id: r.get(1)?,
            dataset_id: r.get(2)?,
            digest: r.get(3)?,
            gate: r.get(4)?,
            status: if status == "passed" {
                GateOutcome::Passed
            } else {
                GateOutcome::Failed
            },
            details: serde_json::from_str(&details).unwrap_or_default(),
            recorded_at: r.get(7)?,
            recorded_by: r.get(8)?,
            audit_seq: r.get::<_, i64>(9)? as u64,
        },
    ))
}

const POLICY_COLS: &str =
    "version, required_gates, run_token_ttl_seconds, updated_at, updated_by, COALESCE(update_seq, audit_seq)";

fn row_policy(r: &rusqlite::Row) -> rusqlite::Result<(Policy, Option<u64>)> {
    let gates: String = r.get(1)?;
    Ok((
        Policy {
            version: r.get::<_, i64>(0)? as u64,
            required_gates: serde_json::from_str(&gates).unwrap_or_default(),
            run_token_ttl_seconds: r.get::<_, i64>(2)? as u64,
            updated_at: r.get(3)?,
            updated_by: r.get(4)?,
        },
        r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
    ))
}

const RUN_COLS: &str = "n, id, name, status, inputs, git_commit, image_digest, params, outputs,
    created_at, created_by, finished_at, audit_seq, finish_seq";

struct RunRow {
    run: Run,
    finish_seq: Option<u64>,
}

fn row_run(r: &rusqlite::Row) -> rusqlite::Result<(i64, RunRow)> {
    let inputs: String = r.get(4)?;
    let params: String = r.get(7)?;
    let outputs: String = r.get(8)?;
    Ok((
        r.get(0)?,
        RunRow {
            run: Run {
                id: r.get(1)?,
                name: r.get(2)?,
                status: r.get(3)?,
                inputs: serde_json::from_str(&inputs).unwrap_or_default(),
                git_commit: r.get(5)?,
                image_digest: r.get(6)?,
                params: serde_json::from_str(&params).unwrap_or_default(),
                outputs: serde_json::from_str(&outputs).unwrap_or_default(),
                created_at: r.get(9)?,
                created_by: r.get(10)?,
                finished_at: r.get(11)?,
                audit_seq: r.get::<_, i64>(12)? as u64,
            },
            finish_seq: r.get::<_, Option<i64>>(13)?.map(|s| s as u64),
        },
    ))
}

const ARTIFACT_COLS: &str = "n, id, run_id, name, sha256, size, created_at, created_by, audit_seq";

fn row_artifact(r: &rusqlite::Row) -> rusqlite::Result<(i64, Artifact)> {
    Ok((
        r.get(0)?,
        Artifact {
            id: r.get(1)?,
            run_id: r.get(2)?,
            name: r.get(3)?,
            sha256: r.get(4)?,
            size: r.get::<_, i64>(5)? as u64,
            created_at: r.get(6)?,
            created_by: r.get(7)?,
            audit_seq: r.get::<_, i64>(8)? as u64,
        },
    ))
}

const TOKEN_COLS: &str = "n, id, name, role, created_at, expires_at, revoked_at";

fn row_token(r: &rusqlite::Row) -> rusqlite::Result<(i64, ApiToken)> {
    let role: String = r.get(3)?;
    Ok((
        r.get(0)?,
        ApiToken {
            id: r.get(1)?,
            name: r.get(2)?,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
            revoked_at: r.get(6)?,
        },
    ))
}

const AUDIT_COLS: &str =
    "seq, time, actor_kind, actor_id, actor_role, action, subject, data, leaf_hash";

fn row_audit(r: &rusqlite::Row) -> rusqlite::Result<(i64, AuditEvent)> {
    let data: String = r.get(7)?;
    let lh: Vec<u8> = r.get(8)?;
    Ok((
        r.get(0)?,
        AuditEvent {
            seq: r.get::<_, i64>(0)? as u64,
            time: r.get(1)?,
            actor: json!({ "kind": r.get::<_, String>(2)?, "id": r.get::<_, String>(3)?,
                           "role": r.get::<_, String>(4)? }),
            action: r.get(5)?,
            subject: r.get(6)?,
            data: serde_json::from_str(&data).unwrap_or(Value::Null),
            leaf_hash: b64(&lh),
        },
    ))
}

fn current_policy(c: &Connection) -> StoreResult<Policy> {
    let (p, _) = c.query_row(
        &format!("SELECT {POLICY_COLS} FROM policies ORDER BY version DESC LIMIT 1"),
        [],
        row_policy,
    )?;
    Ok(p)
}

/// The latest result of each gate for a version.
fn latest_gates(
    c: &Connection,
    dataset_id: &str,
    digest: &str,
) -> StoreResult<BTreeMap<String, String>> {
    let mut st = c.prepare_cached(
        "SELECT gate, status FROM gate_results WHERE n IN (
             SELECT MAX(n) FROM gate_results WHERE dataset_id = ?1 AND digest = ?2 GROUP BY gate)",
    )?;
    let rows = st.query_map(params![dataset_id, digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `passed` when the latest result of every required gate passed, `failed` if any required
/// gate's latest failed, else `pending`; plus the required gates not passed.
fn gate_status(
    latest: &BTreeMap<String, String>,
    required: &[String],
) -> (&'static str, Vec<String>) {
    let missing: Vec<String> = required
        .iter()
        .filter(|g| latest.get(*g).map(String::as_str) != Some("passed"))
        .cloned()
        .collect();
    let status = if missing.is_empty() {
        "passed"
    } else if required
        .iter()
        .any(|g| latest.get(g).map(String::as_str) == Some("failed"))
    {
        "failed"
    } else {
        "pending"
    };
    (status, missing)
}

fn with_gate_status(
    c: &Connection,
    mut v: DatasetVersion,
    policy: &Policy,
) -> StoreResult<DatasetVersion> {
    let latest = latest_gates(c, &v.dataset_id, &v.digest)?;
    v.gate_status = gate_status(&latest, &policy.required_gates).0;
    Ok(v)
}

fn find_version(
    c: &Connection,
    dataset_id: &str,
    digest: &str,
) -> StoreResult<Option<(i64, DatasetVersion)>> {
    Ok(c.query_row(
        &format!(
            "SELECT {VERSION_COLS} FROM dataset_versions WHERE dataset_id = ?1 AND digest = ?2"
        ),
        params![dataset_id, digest],
        row_version,
    )
    .optional()?)
}

fn find_run(c: &Connection, id: &str) -> StoreResult<RunRow> {
    c.query_row(
        &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
        params![id],
        row_run,
    )
    .optional()?
    .map(|(_, r)| r)
    .ok_or_else(|| StoreError::NotFound(format!("run {id} not found")))
}

fn running_run(c: &Connection, id: &str) -> StoreResult<RunRow> {
    let r = find_run(c, id)?;
    if r.run.status != "running" {
        return Err(StoreError::Conflict(
            "run_sealed",
            format!("run {id} is finished ({}) and sealed", r.run.status),
        ));
    }
    Ok(r)
}

fn require_dataset(c: &Connection, id: &str) -> StoreResult<()> {
    let found: Option<i64> = c
        .query_row("SELECT n FROM datasets WHERE id = ?1", params![id], |r| {
            r.get(0)
        })
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("dataset {id} not found")))
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and apply migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut writer = open_conn(path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
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
        let writer = settings(&self.writer.lock().unwrap_or_else(|p| p.into_inner()))?;
        let reader = self.read(|tx| settings(tx))?;
        Ok([writer, reader])
    }

    /// Run `f` in an immediate (write-locking) transaction on the writer connection.
    fn write<T>(&self, f: impl FnOnce(&Transaction) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Run `f` in a read transaction (one consistent WAL snapshot) on a pooled reader.
    fn read<T>(&self, f: impl FnOnce(&Transaction) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let out = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx);
            let _ = tx.rollback();
            out
        };
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    fn size_in(c: &Connection) -> StoreResult<u64> {
        let n: i64 = c.query_row(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn check_size(c: &Connection, tree_size: Option<u64>) -> StoreResult<u64> {
        let cur = Self::size_in(c)?;
        match tree_size {
            None => Ok(cur),
            Some(0) => Err(StoreError::Invalid(
                "tree_size".into(),
                "must be at least 1".into(),
            )),
            Some(s) if s > cur => Err(StoreError::Invalid(
                "tree_size".into(),
                format!("the ledger has only {cur} entries"),
            )),
            Some(s) => Ok(s),
        }
    }
}

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
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![(i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The recorded verifier: `meta.verifier`, else (ledgers created before it was kept there) the
/// `verifier` of the `ledger.init` event; `None` without a ledger.
fn ledger_verifier_in(c: &Connection) -> StoreResult<Option<String>> {
    let meta: Option<String> = c
        .query_row("SELECT value FROM meta WHERE key = 'verifier'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if meta.is_some() {
        return Ok(meta);
    }
    let data: Option<String> = c
        .query_row(
            "SELECT data FROM audit_events WHERE seq = 0 AND action = 'ledger.init'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(data.and_then(|d| {
        serde_json::from_str::<Value>(&d)
            .ok()?
            .get("verifier")?
            .as_str()
            .map(String::from)
    }))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store for SqliteStore {
    fn init(&self, p: &InitParams) -> StoreResult<bool> {
        self.write(|tx| {
            // Leftover in-flight keys belong to requests that died with the previous process.
            tx.execute("DELETE FROM idempotency WHERE state = 'in_flight' OR created_unix < ?1",
                params![unix_now() - IDEMPOTENCY_TTL_SECS])?;
            if Self::size_in(tx)? > 0 {
                let origin: Option<String> = tx
                    .query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| r.get(0))
                    .optional()?;
                if let Some(o) = origin {
                    if o != p.origin {
                        return Err(StoreError::Internal(format!(
                            "this ledger's origin is {o:?}, not {:?}; the origin cannot change",
                            p.origin
                        )));
                    }
                }
                // The key that signs this ledger never changes (the caller checked it against
                // the recorded verifier); ledgers created before it was kept in `meta` get it
                // from their `ledger.init` event.
                match ledger_verifier_in(tx)? {
                    Some(v) if v != p.verifier => {
                        return Err(StoreError::Internal(format!(
                            "this ledger is signed by {v}, not by {}; restore its ledger.key",
                            p.verifier
                        )))
                    }
                    _ => {}
                }
                tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('verifier', ?1)", params![p.verifier])?;
                return Ok(false);
            }
            let sys = ActorRef::system();
            let (seq, time) = next_event(tx)?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('origin', ?1)", params![p.origin])?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('verifier', ?1)", params![p.verifier])?;
            tx.execute(
                "INSERT INTO policies (version, required_gates, run_token_ttl_seconds, updated_at,
                 updated_by, audit_seq, update_seq) VALUES (1, '[]', ?1, ?2, ?3, ?4, NULL)",
                params![DEFAULT_RUN_TOKEN_TTL as i64, time, sys.id, seq as i64],
            )?;
            write_event(tx, seq, &time, &sys, "ledger.init", &format!("ledger:{}", p.origin), json!({
                "origin": p.origin,
                "verifier": p.verifier,
                "policy": { "version": 1, "required_gates": [], "run_token_ttl_seconds": DEFAULT_RUN_TOKEN_TTL },
            }))?;
            // The bootstrap admin token, audited like any other token.
            let (seq, time) = next_event(tx)?;
            let id = new_id("tok_");
            tx.execute(
                "INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, audit_seq)
                 VALUES (?1, 'bootstrap', 'admin', ?2, ?3, ?4, ?5)",
                params![id, p.bootstrap_secret_hash, time, sys.id, seq as i64],
            )?;
            write_event(tx, seq, &time, &sys, "token.create", &format!("token:{id}"), json!({
                "token_id": id, "name": "bootstrap", "role": "admin", "expires_at": null,
            }))?;
            Ok(true)
        })
    }

    fn ledger_verifier(&self) -> StoreResult<Option<String>> {
        self.read(|tx| ledger_verifier_in(tx))
    }

    fn tree_size(&self) -> StoreResult<u64> {
        self.read(|tx| Self::size_in(tx))
    }

    fn lookup_api_token(&self, secret_hash: &str, now: &str) -> StoreResult<Option<TokenAuth>> {
        self.read(|tx| {
            let row: Option<TokenRow> = tx
                .query_row(
                    "SELECT id, name, role, expires_at, revoked_at FROM tokens WHERE secret_hash = ?1",
                    params![secret_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            Ok(row.and_then(|(id, name, role, exp, revoked)| {
                // Timestamps share one fixed-width UTC format, so text order is time order.
                let expired = exp.is_some_and(|e| e.as_str() <= now);
                if revoked.is_some() || expired {
                    return None;
                }
                Some(TokenAuth { id, name, role: Role::parse(&role)? })
            }))
        })
    }

    fn lookup_run_token(&self, secret_hash: &str, now: &str) -> StoreResult<Option<RunTokenAuth>> {
        self.read(|tx| {
            let row: Option<(String, String, String)> = tx
                .query_row(
                    "SELECT id, status, token_expires_at FROM runs WHERE token_hash = ?1",
                    params![secret_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(row.and_then(|(run_id, status, exp)| {
                (exp.as_str() > now).then_some(RunTokenAuth {
                    run_id,
                    sealed: status != "running",
                })
            }))
        })
    }

    fn create_dataset(
        &self,
        w: &Writer,
        name: &str,
        description: Option<&str>,
    ) -> StoreResult<Dataset> {
        let a = &w.actor;
        self.write(|tx| {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT id FROM datasets WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = exists {
                return Err(StoreError::Conflict(
                    "already_exists",
                    format!("a dataset named {name:?} exists ({id})"),
                ));
            }
            let (seq, time) = next_event(tx)?;
            let id = new_id("ds_");
            tx.execute(
                "INSERT INTO datasets (id, name, description, created_at, created_by, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, name, description, time, a.id, seq as i64],
            )?;
            write_event(
                tx,
                seq,
                &time,
                a,
                "dataset.create",
                &format!("dataset:{id}"),
                json!({ "dataset_id": id, "name": name, "description": description }),
            )?;
            let ds = Dataset {
                id,
                name: name.into(),
                description: description.map(Into::into),
                created_at: time,
                created_by: a.id.clone(),
            };
            idem_record(tx, w, 201, &ds, None)?;
            Ok(ds)
        })
    }

    fn list_datasets(&self, page: PageReq) -> StoreResult<(Vec<Dataset>, Option<i64>)> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {DATASET_COLS} FROM datasets WHERE n > ?1 ORDER BY n LIMIT ?2"
            ))?;
            let rows = st
                .query_map(
                    params![page.after.unwrap_or(0), page.limit + 1],
                    row_dataset,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn get_dataset(&self, id: &str) -> StoreResult<Dataset> {
        self.read(|tx| {
            tx.query_row(
                &format!("SELECT {DATASET_COLS} FROM datasets WHERE id = ?1"),
                params![id],
                row_dataset,
            )
            .optional()?
            .map(|(_, d)| d)
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id} not found")))
        })
    }

    fn register_version(
        &self,
        w: &Writer,
        dataset_id: &str,
        manifest: &datapilot::manifest::Manifest,
        note: Option<&str>,
    ) -> StoreResult<(DatasetVersion, bool)> {
        let a = &w.actor;
        let total = to_i64("files", manifest.total_bytes())?;
        self.write(|tx| {
            require_dataset(tx, dataset_id)?;
            let policy = current_policy(tx)?;
            let digest = manifest.digest();
            if let Some((_, v)) = find_version(tx, dataset_id, digest)? {
                let v = with_gate_status(tx, v, &policy)?;
                idem_record(tx, w, 200, &v, None)?;
                return Ok((v, false));
            }
            let (seq, time) = next_event(tx)?;
            tx.execute(
                "INSERT INTO dataset_versions (dataset_id, digest, file_count, total_bytes, note,
                 created_at, created_by, audit_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![dataset_id, digest, manifest.len() as i64, total, note, time, a.id, seq as i64],
            )?;
            let vn = tx.last_insert_rowid();
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO manifest_files (version_n, path, sha256, size) VALUES (?1, ?2, ?3, ?4)")?;
                for f in manifest.files() {
                    ins.execute(params![vn, f.path, f.sha256, to_i64("files.size", f.size)?])?;
                }
            }
            write_event(tx, seq, &time, a, "dataset_version.register", &version_subject(dataset_id, digest),
                json!({ "dataset_id": dataset_id, "digest": digest, "file_count": manifest.len(),
                        "total_bytes": manifest.total_bytes(), "note": note }))?;
            let v = DatasetVersion {
                dataset_id: dataset_id.into(), digest: digest.into(), file_count: manifest.len() as u64,
                total_bytes: manifest.total_bytes(), note: note.map(Into::into), created_at: time,
                created_by: a.id.clone(), gate_status: "pending", audit_seq: seq,
            };
            let v = with_gate_status(tx, v, &policy)?;
            idem_record(tx, w, 201, &v, None)?;
            Ok((v, true))
        })
    }

    fn list_versions(
        &self,
        dataset_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<DatasetVersion>, Option<i64>)> {
        self.read(|tx| {
            require_dataset(tx, dataset_id)?;
            let policy = current_policy(tx)?;
            let rows = {
                let mut st = tx.prepare_cached(&format!(
                    "SELECT {VERSION_COLS} FROM dataset_versions WHERE dataset_id = ?1 AND n > ?2 ORDER BY n LIMIT ?3"))?;
                let rows = st.query_map(params![dataset_id, page.after.unwrap_or(0), page.limit + 1], row_version)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let (items, next) = page_out(rows, page.limit);
            let items = items.into_iter().map(|v| with_gate_status(tx, v, &policy)).collect::<StoreResult<_>>()?;
            Ok((items, next))
        })
    }

    fn get_version(&self, dataset_id: &str, digest: &str) -> StoreResult<DatasetVersion> {
        self.read(|tx| {
            require_dataset(tx, dataset_id)?;
            let policy = current_policy(tx)?;
            let (_, v) = find_version(tx, dataset_id, digest)?.ok_or_else(|| {
                StoreError::NotFound(format!("version {digest} of {dataset_id} not found"))
            })?;
            with_gate_status(tx, v, &policy)
        })
    }

    fn get_manifest(&self, dataset_id: &str, digest: &str) -> StoreResult<Manifest> {
        self.read(|tx| {
            require_dataset(tx, dataset_id)?;
            let (n, _) = find_version(tx, dataset_id, digest)?.ok_or_else(|| {
                StoreError::NotFound(format!("version {digest} of {dataset_id} not found"))
            })?;
            let mut st = tx.prepare_cached(
                "SELECT path, sha256, size FROM manifest_files WHERE version_n = ?1 ORDER BY path",
            )?;
            let files = st
                .query_map(params![n], |r| {
                    Ok(FileEntry {
                        path: r.get(0)?,
                        sha256: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Manifest {
                digest: digest.into(),
                files,
            })
        })
    }

    fn record_gate(
        &self,
        w: &Writer,
        dataset_id: &str,
        digest: &str,
        gate: &str,
        status: GateOutcome,
        details: &BTreeMap<String, String>,
    ) -> StoreResult<GateResult> {
        let a = &w.actor;
        self.write(|tx| {
            require_dataset(tx, dataset_id)?;
            find_version(tx, dataset_id, digest)?
                .ok_or_else(|| StoreError::NotFound(format!("version {digest} of {dataset_id} not found")))?;
            let (seq, time) = next_event(tx)?;
            let id = new_id("gr_");
            tx.execute(
                "INSERT INTO gate_results (id, dataset_id, digest, gate, status, details, recorded_at,
                 recorded_by, audit_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, dataset_id, digest, gate, status.as_str(),
                        serde_json::to_string(details).unwrap_or_default(), time, a.id, seq as i64],
            )?;
            write_event(tx, seq, &time, a, "gate.record", &version_subject(dataset_id, digest),
                json!({ "gate_result_id": id, "gate": gate, "status": status.as_str(), "details": details }))?;
            let g = GateResult {
                id, dataset_id: dataset_id.into(), digest: digest.into(), gate: gate.into(), status,
                details: details.clone(), recorded_at: time, recorded_by: a.id.clone(), audit_seq: seq,
            };
            idem_record(tx, w, 201, &g, None)?;
            Ok(g)
        })
    }

    fn list_gates(
        &self,
        dataset_id: &str,
        digest: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<GateResult>, Option<i64>)> {
        self.read(|tx| {
            require_dataset(tx, dataset_id)?;
            find_version(tx, dataset_id, digest)?
                .ok_or_else(|| StoreError::NotFound(format!("version {digest} of {dataset_id} not found")))?;
            let mut st = tx.prepare_cached(&format!(
                "SELECT {GATE_COLS} FROM gate_results WHERE dataset_id = ?1 AND digest = ?2 AND n > ?3 ORDER BY n LIMIT ?4"))?;
            let rows = st.query_map(params![dataset_id, digest, page.after.unwrap_or(0), page.limit + 1], row_gate)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn get_policy(&self) -> StoreResult<Policy> {
        self.read(|tx| current_policy(tx))
    }

    fn update_policy(
        &self,
        w: &Writer,
        required_gates: &[String],
        ttl: u64,
    ) -> StoreResult<Policy> {
        let a = &w.actor;
        self.write(|tx| {
            let cur = current_policy(tx)?;
            let version = cur.version + 1;
            let (seq, time) = next_event(tx)?;
            tx.execute(
                "INSERT INTO policies (version, required_gates, run_token_ttl_seconds, updated_at,
                 updated_by, audit_seq, update_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![version as i64, serde_json::to_string(required_gates).unwrap_or_default(),
                        to_i64("run_token_ttl_seconds", ttl)?, time, a.id, seq as i64],
            )?;
            write_event(tx, seq, &time, a, "policy.update", &format!("policy:{version}"),
                json!({ "version": version, "required_gates": required_gates, "run_token_ttl_seconds": ttl }))?;
            let p = Policy { version, required_gates: required_gates.to_vec(), run_token_ttl_seconds: ttl, updated_at: time, updated_by: a.id.clone() };
            idem_record(tx, w, 200, &p, None)?;
            Ok(p)
        })
    }

    fn policy_at(&self, tree_size: u64) -> StoreResult<(Policy, Option<u64>)> {
        self.read(|tx| {
            Ok(tx.query_row(
                &format!("SELECT {POLICY_COLS} FROM policies WHERE audit_seq < ?1 ORDER BY version DESC LIMIT 1"),
                params![tree_size as i64],
                row_policy,
            )?)
        })
    }

    fn create_run(&self, w: &Writer, r: &NewRun) -> StoreResult<(Run, String)> {
        let a = &w.actor;
        self.write(|tx| {
            let policy = current_policy(tx)?;
            for (i, input) in r.inputs.iter().enumerate() {
                if find_version(tx, &input.dataset_id, &input.digest)?.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "inputs[{i}]: version {} of dataset {} not found", input.digest, input.dataset_id)));
                }
                let latest = latest_gates(tx, &input.dataset_id, &input.digest)?;
                let (_, missing) = gate_status(&latest, &policy.required_gates);
                if !missing.is_empty() {
                    return Err(StoreError::Unprocessable("gate_not_passed", format!(
                        "inputs[{i}]: dataset version {}@{} has not passed the required gates: {} (policy version {})",
                        input.dataset_id, input.digest, missing.join(", "), policy.version)));
                }
            }
            let (seq, time) = next_event(tx)?;
            let id = new_id("run_");
            let expires = util::fmt_time(
                util::now() + chrono::Duration::seconds(r.token_ttl_override.unwrap_or(policy.run_token_ttl_seconds).min(i64::MAX as u64 / 1000) as i64),
            );
            let inputs = serde_json::to_string(&r.inputs).unwrap_or_default();
            let params_s = serde_json::to_string(&r.params).unwrap_or_default();
            tx.execute(
                "INSERT INTO runs (id, name, status, inputs, git_commit, image_digest, params, outputs,
                 created_at, created_by, audit_seq, token_hash, token_expires_at)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, '[]', ?7, ?8, ?9, ?10, ?11)",
                params![id, r.name, inputs, r.git_commit, r.image_digest, params_s, time, a.id, seq as i64, r.token_hash, expires],
            )?;
            for input in &r.inputs {
                tx.execute("INSERT INTO run_inputs (run_id, dataset_id, digest) VALUES (?1, ?2, ?3)",
                    params![id, input.dataset_id, input.digest])?;
            }
            write_event(tx, seq, &time, a, "run.create", &format!("run:{id}"), json!({
                "run_id": id, "name": r.name, "inputs": r.inputs, "git_commit": r.git_commit,
                "image_digest": r.image_digest, "params": r.params, "policy_version": policy.version,
                "run_token_expires_at": expires,
            }))?;
            let run = Run {
                id, name: r.name.clone(), status: "running".into(), inputs: r.inputs.clone(),
                git_commit: r.git_commit.clone(), image_digest: r.image_digest.clone(), params: r.params.clone(),
                outputs: vec![], created_at: time, created_by: a.id.clone(), finished_at: None, audit_seq: seq,
            };
            // The run token exists only in the handler's response: keep the rest, and the run id.
            idem_record(tx, w, 201, &json!({ "run": run, "run_token_expires_at": expires }), Some(&run.id))?;
            Ok((run, expires))
        })
    }

    fn list_runs(&self, page: PageReq) -> StoreResult<(Vec<Run>, Option<i64>)> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE n > ?1 ORDER BY n LIMIT ?2"
            ))?;
            let rows = st
                .query_map(params![page.after.unwrap_or(0), page.limit + 1], row_run)?
                .map(|r| r.map(|(n, rr)| (n, rr.run)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn get_run(&self, id: &str) -> StoreResult<Run> {
        self.read(|tx| find_run(tx, id).map(|r| r.run))
    }

    fn finish_run(
        &self,
        w: &Writer,
        id: &str,
        status: FinishStatus,
        outputs: &[VersionRef],
    ) -> StoreResult<Run> {
        let a = &w.actor;
        self.write(|tx| {
            let mut run = running_run(tx, id)?.run;
            for (i, o) in outputs.iter().enumerate() {
                if find_version(tx, &o.dataset_id, &o.digest)?.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "outputs[{i}]: version {} of dataset {} not found", o.digest, o.dataset_id)));
                }
            }
            let (seq, time) = next_event(tx)?;
            tx.execute(
                "UPDATE runs SET status = ?1, outputs = ?2, finished_at = ?3, finish_seq = ?4 WHERE id = ?5",
                params![status.as_str(), serde_json::to_string(outputs).unwrap_or_default(), time, seq as i64, id],
            )?;
            for o in outputs {
                tx.execute("INSERT INTO run_outputs (run_id, dataset_id, digest) VALUES (?1, ?2, ?3)",
                    params![id, o.dataset_id, o.digest])?;
            }
            write_event(tx, seq, &time, a, "run.finish", &format!("run:{id}"),
                json!({ "run_id": id, "status": status.as_str(), "outputs": outputs }))?;
            run.status = status.as_str().into();
            run.outputs = outputs.to_vec();
            run.finished_at = Some(time);
            idem_record(tx, w, 200, &run, None)?;
            Ok(run)
        })
    }

    fn append_metrics(
        &self,
        w: &Writer,
        run_id: &str,
        points: &[MetricPoint],
        digest: &str,
    ) -> StoreResult<MetricBatch> {
        let a = &w.actor;
        self.write(|tx| {
            running_run(tx, run_id)?;
            let batch: i64 = tx.query_row(
                "SELECT COALESCE(MAX(batch) + 1, 0) FROM metric_batches WHERE run_id = ?1", params![run_id], |r| r.get(0))?;
            let (seq, time) = next_event(tx)?;
            tx.execute(
                "INSERT INTO metric_batches (run_id, batch, count, digest, created_at, audit_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run_id, batch, points.len() as i64, digest, time, seq as i64],
            )?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO metric_points (run_id, batch, name, step, value, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
                for p in points {
                    // A point without a time gets the receive time, so listed points always have one
                    // (the digest covers the points as submitted).
                    let t = p.time.as_deref().unwrap_or(&time);
                    ins.execute(params![run_id, batch, p.name, to_i64("points.step", p.step)?, p.value, t])?;
                }
            }
            write_event(tx, seq, &time, a, "metrics.append", &format!("run:{run_id}"),
                json!({ "run_id": run_id, "batch": batch, "count": points.len(), "digest": digest }))?;
            let b = MetricBatch { run_id: run_id.into(), batch: batch as u64, count: points.len() as u64, digest: digest.into(), audit_seq: seq };
            idem_record(tx, w, 201, &b, None)?;
            Ok(b)
        })
    }

    fn list_metrics(
        &self,
        run_id: &str,
        name: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<MetricValue>, Option<i64>)> {
        self.read(|tx| {
            find_run(tx, run_id)?;
            let sql = if name.is_some() {
                "SELECT n, name, step, value, time, batch FROM metric_points WHERE run_id = ?1 AND name = ?4 AND n > ?2 ORDER BY n LIMIT ?3"
            } else {
                "SELECT n, name, step, value, time, batch FROM metric_points WHERE run_id = ?1 AND n > ?2 AND ?4 IS NULL ORDER BY n LIMIT ?3"
            };
            let mut st = tx.prepare_cached(sql)?;
            let rows = st.query_map(params![run_id, page.after.unwrap_or(0), page.limit + 1, name], |r| {
                Ok((r.get::<_, i64>(0)?, MetricValue {
                    name: r.get(1)?, step: r.get::<_, i64>(2)? as u64, value: r.get(3)?, time: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    batch: r.get::<_, i64>(5)? as u64,
                }))
            })?.collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn blob_referenced(&self, sha256: &str) -> StoreResult<bool> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT 1 FROM artifacts WHERE sha256 = ?1 LIMIT 1",
                    params![sha256],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }

    fn check_artifact_upload(&self, run_id: &str, name: &str) -> StoreResult<()> {
        self.read(|tx| {
            running_run(tx, run_id)?;
            artifact_name_free(tx, run_id, name)
        })
    }

    fn add_artifact(
        &self,
        w: &Writer,
        run_id: &str,
        name: &str,
        sha256: &str,
        size: u64,
    ) -> StoreResult<Artifact> {
        let a = &w.actor;
        self.write(|tx| {
            running_run(tx, run_id)?;
            artifact_name_free(tx, run_id, name)?;
            let (seq, time) = next_event(tx)?;
            let id = new_id("art_");
            tx.execute(
                "INSERT INTO artifacts (id, run_id, name, sha256, size, created_at, created_by, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, run_id, name, sha256, to_i64("size", size)?, time, a.id, seq as i64],
            )?;
            write_event(tx, seq, &time, a, "artifact.upload", &format!("run:{run_id}"),
                json!({ "run_id": run_id, "artifact_id": id, "name": name, "sha256": sha256, "size": size }))?;
            let art = Artifact { id, run_id: run_id.into(), name: name.into(), sha256: sha256.into(), size, created_at: time, created_by: a.id.clone(), audit_seq: seq };
            idem_record(tx, w, 201, &art, None)?;
            Ok(art)
        })
    }

    fn list_artifacts(
        &self,
        run_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<Artifact>, Option<i64>)> {
        self.read(|tx| {
            find_run(tx, run_id)?;
            let mut st = tx.prepare_cached(&format!(
                "SELECT {ARTIFACT_COLS} FROM artifacts WHERE run_id = ?1 AND n > ?2 ORDER BY n LIMIT ?3"))?;
            let rows = st.query_map(params![run_id, page.after.unwrap_or(0), page.limit + 1], row_artifact)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn get_artifact(&self, run_id: &str, artifact_id: &str) -> StoreResult<Artifact> {
        self.read(|tx| {
            tx.query_row(
                &format!("SELECT {ARTIFACT_COLS} FROM artifacts WHERE run_id = ?1 AND id = ?2"),
                params![run_id, artifact_id],
                row_artifact,
            )
            .optional()?
            .map(|(_, a)| a)
            .ok_or_else(|| {
                StoreError::NotFound(format!("artifact {artifact_id} of run {run_id} not found"))
            })
        })
    }

    fn run_lineage(&self, run_id: &str, tree_size: Option<u64>) -> StoreResult<Lineage> {
        self.read(|tx| {
            let size = Self::check_size(tx, tree_size)?;
            let rr = find_run(tx, run_id)?;
            if rr.run.audit_seq >= size {
                return Err(StoreError::NotFound(format!(
                    "run {run_id} did not exist at tree size {size}"
                )));
            }
            let mut g = Graph::default();
            g.add_run(tx, &rr, size, None)?;
            g.finish(tx)
        })
    }

    fn version_lineage(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> StoreResult<Lineage> {
        self.read(|tx| {
            let size = Self::check_size(tx, tree_size)?;
            require_dataset(tx, dataset_id)?;
            let (_, v) = find_version(tx, dataset_id, digest)?.ok_or_else(|| {
                StoreError::NotFound(format!("version {digest} of {dataset_id} not found"))
            })?;
            if v.audit_seq >= size {
                return Err(StoreError::NotFound(format!(
                    "version {digest} did not exist at tree size {size}"
                )));
            }
            let mut g = Graph::default();
            g.versions
                .insert((dataset_id.to_string(), digest.to_string()));
            let run_ids: BTreeSet<String> = {
                let mut st = tx.prepare_cached(
                    "SELECT run_id FROM run_inputs WHERE dataset_id = ?1 AND digest = ?2
                     UNION SELECT run_id FROM run_outputs WHERE dataset_id = ?1 AND digest = ?2",
                )?;
                let ids = st
                    .query_map(params![dataset_id, digest], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                ids
            };
            for id in run_ids {
                let rr = find_run(tx, &id)?;
                if rr.run.audit_seq >= size {
                    continue;
                }
                // A run that only produced this version (as output) counts once its finish is in.
                let used = rr
                    .run
                    .inputs
                    .iter()
                    .any(|i| i.dataset_id == dataset_id && i.digest == digest);
                let produced = rr.finish_seq.is_some_and(|s| s < size)
                    && rr
                        .run
                        .outputs
                        .iter()
                        .any(|o| o.dataset_id == dataset_id && o.digest == digest);
                if used || produced {
                    // Its other inputs are two hops away from the version: not included.
                    g.add_run(tx, &rr, size, Some((dataset_id, digest)))?;
                }
            }
            g.finish(tx)
        })
    }

    fn list_audit(
        &self,
        subject: Option<&str>,
        action: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<AuditEvent>, Option<i64>)> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit_events WHERE seq > ?1 AND (?2 IS NULL OR subject = ?2)
                 AND (?3 IS NULL OR action = ?3) ORDER BY seq LIMIT ?4"))?;
            let rows = st.query_map(params![page.after.unwrap_or(-1), subject, action, page.limit + 1], row_audit)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn get_audit(&self, seq: u64) -> StoreResult<AuditEvent> {
        self.read(|tx| {
            tx.query_row(
                &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE seq = ?1"),
                params![to_i64("seq", seq)?],
                row_audit,
            )
            .optional()?
            .map(|(_, e)| e)
            .ok_or_else(|| StoreError::NotFound(format!("audit event {seq} not found")))
        })
    }

    fn audit_slice(
        &self,
        subjects: &[String],
        seqs: &[u64],
        tree_size: u64,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.read(|tx| {
            let mut out = BTreeMap::new();
            let mut by_subject = tx.prepare_cached(
                "SELECT seq, leaf FROM audit_events WHERE subject = ?1 AND seq < ?2",
            )?;
            for s in subjects {
                for row in by_subject.query_map(params![s, tree_size as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })? {
                    let (seq, leaf) = row?;
                    out.insert(seq as u64, leaf);
                }
            }
            let mut by_seq =
                tx.prepare_cached("SELECT leaf FROM audit_events WHERE seq = ?1 AND seq < ?2")?;
            for &seq in seqs {
                if let Some(leaf) = by_seq
                    .query_row(params![seq as i64, tree_size as i64], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .optional()?
                {
                    out.insert(seq, leaf);
                }
            }
            Ok(out.into_iter().collect())
        })
    }

    fn ledger_entries(&self, start: u64, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|tx| {
            let mut st = tx.prepare_cached("SELECT seq, leaf, leaf_hash FROM audit_events WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
            let rows = st.query_map(params![to_i64("start", start)?, limit], |r| {
                Ok(LedgerEntry { seq: r.get::<_, i64>(0)? as u64, leaf: b64(&r.get::<_, Vec<u8>>(1)?), leaf_hash: b64(&r.get::<_, Vec<u8>>(2)?) })
            })?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn tree_head(&self, size: Option<u64>) -> StoreResult<TreeHead> {
        self.read(|tx| {
            let size = Self::check_size(tx, size)?;
            let root = subtree_hash(&mut TxNodes(tx), 0, size)?;
            let last_time: String = tx.query_row(
                "SELECT time FROM audit_events WHERE seq = ?1",
                params![size as i64 - 1],
                |r| r.get(0),
            )?;
            Ok(TreeHead {
                size,
                root,
                last_time,
            })
        })
    }

    fn inclusion_proof(&self, seq: u64, tree_size: u64) -> StoreResult<(Hash, Vec<Hash>)> {
        self.read(|tx| {
            let size = Self::check_size(tx, Some(tree_size))?;
            if seq >= size {
                return Err(StoreError::Invalid(
                    "seq".into(),
                    format!("must be below tree_size {size}"),
                ));
            }
            let mut nodes = TxNodes(tx);
            let leaf = nodes.node(0, seq)?;
            let proof = datapilot::merkle::try_inclusion_proof_with(seq, size, |s, e| {
                subtree_hash(&mut nodes, s, e)
            })?;
            Ok((leaf, proof))
        })
    }

    fn consistency_proof(&self, from: u64, to: u64) -> StoreResult<Vec<Hash>> {
        self.read(|tx| {
            let to = Self::check_size(tx, Some(to))?;
            if from == 0 || from > to {
                return Err(StoreError::Invalid(
                    "from".into(),
                    format!("must be in 1..={to}"),
                ));
            }
            let mut nodes = TxNodes(tx);
            datapilot::merkle::try_consistency_proof_with(from, to, |s, e| {
                subtree_hash(&mut nodes, s, e)
            })
        })
    }

    fn create_token(
        &self,
        w: &Writer,
        name: &str,
        role: Role,
        secret_hash: &str,
        expires_at: Option<&str>,
    ) -> StoreResult<ApiToken> {
        let a = &w.actor;
        self.write(|tx| {
            let (seq, time) = next_event(tx)?;
            let id = new_id("tok_");
            tx.execute(
                "INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, expires_at, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, name, role.as_str(), secret_hash, time, a.id, expires_at, seq as i64],
            )?;
            write_event(tx, seq, &time, a, "token.create", &format!("token:{id}"),
                json!({ "token_id": id, "name": name, "role": role.as_str(), "expires_at": expires_at }))?;
            let token = ApiToken { id, name: name.into(), role, created_at: time, expires_at: expires_at.map(Into::into), revoked_at: None };
            // The secret exists only in the handler's response: keep the rest, and the token id.
            idem_record(tx, w, 201, &json!({ "token": token }), Some(&token.id))?;
            Ok(token)
        })
    }

    fn list_tokens(&self, page: PageReq) -> StoreResult<(Vec<ApiToken>, Option<i64>)> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE n > ?1 ORDER BY n LIMIT ?2"
            ))?;
            let rows = st
                .query_map(params![page.after.unwrap_or(0), page.limit + 1], row_token)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page_out(rows, page.limit))
        })
    }

    fn revoke_token(&self, w: &Writer, id: &str) -> StoreResult<ApiToken> {
        let a = &w.actor;
        self.write(|tx| {
            let (_, mut tok) = tx
                .query_row(
                    &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
                    params![id],
                    row_token,
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("token {id} not found")))?;
            if tok.revoked_at.is_some() {
                return Err(StoreError::Conflict(
                    "immutable",
                    format!("token {id} is already revoked"),
                ));
            }
            let (seq, time) = next_event(tx)?;
            tx.execute(
                "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2",
                params![time, id],
            )?;
            write_event(
                tx,
                seq,
                &time,
                a,
                "token.revoke",
                &format!("token:{id}"),
                json!({ "token_id": id }),
            )?;
            tok.revoked_at = Some(time);
            idem_record(tx, w, 200, &tok, None)?;
            Ok(tok)
        })
    }

    fn idem_begin(&self, scope: &str, key: &str, fingerprint: &str) -> StoreResult<IdemBegin> {
        self.write(|tx| {
            let now = unix_now();
            tx.execute("DELETE FROM idempotency WHERE scope = ?1 AND key = ?2 AND created_unix < ?3",
                params![scope, key, now - IDEMPOTENCY_TTL_SECS])?;
            let row: Option<IdemRow> = tx
                .query_row("SELECT fingerprint, state, status, headers, body, secret_of FROM idempotency WHERE scope = ?1 AND key = ?2",
                    params![scope, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .optional()?;
            Ok(match row {
                None => {
                    tx.execute("INSERT INTO idempotency (scope, key, fingerprint, state, created_unix) VALUES (?1, ?2, ?3, 'in_flight', ?4)",
                        params![scope, key, fingerprint, now])?;
                    IdemBegin::Proceed
                }
                Some((fp, ..)) if fp != fingerprint => IdemBegin::Mismatch,
                Some((_, state, ..)) if state == "in_flight" => IdemBegin::InFlight,
                Some((_, _, status, headers, body, secret_of)) => IdemBegin::Replay(StoredResponse {
                    status: status.unwrap_or(200) as u16,
                    headers: headers.and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default(),
                    body: body.unwrap_or_default(),
                    secret_of,
                }),
            })
        })
    }

    fn idem_complete(&self, scope: &str, key: &str, resp: &StoredResponse) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute("UPDATE idempotency SET state = 'done', status = ?3, headers = ?4, body = ?5, secret_of = ?6 WHERE scope = ?1 AND key = ?2 AND state = 'in_flight'",
                params![scope, key, resp.status as i64, serde_json::to_string(&resp.headers).unwrap_or_default(), resp.body, resp.secret_of])?;
            Ok(())
        })
    }

    fn idem_abort(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2 AND state = 'in_flight'",
                params![scope, key],
            )?;
            Ok(())
        })
    }
}

fn artifact_name_free(c: &Connection, run_id: &str, name: &str) -> StoreResult<()> {
    let exists: Option<String> = c
        .query_row(
            "SELECT id FROM artifacts WHERE run_id = ?1 AND name = ?2",
            params![run_id, name],
            |r| r.get(0),
        )
        .optional()?;
    match exists {
        Some(id) => Err(StoreError::Conflict(
            "already_exists",
            format!("run {run_id} already has an artifact named {name:?} ({id})"),
        )),
        None => Ok(()),
    }
}

/// Builds a lineage graph; nodes are collected as keys and labelled at the end.
#[derive(Default)]
struct Graph {
    versions: BTreeSet<(String, String)>,
    nodes: BTreeMap<String, (NodeKind, String)>,
    edges: BTreeSet<(String, String, String, u64)>,
}

impl Graph {
    /// A run with its commit, image, artifacts and outputs, only edges whose event is below
    /// `size`. Its `input` edges: all of them for a run scope (`only_input` = `None`); for a
    /// version scope only the one from that version (`Some((dataset_id, digest))`), whatever
    /// else happens to be in the graph, so the bundle does not depend on the order runs are added.
    fn add_run(
        &mut self,
        c: &Connection,
        rr: &RunRow,
        size: u64,
        only_input: Option<(&str, &str)>,
    ) -> StoreResult<()> {
        let run = &rr.run;
        let rn = format!("run:{}", run.id);
        self.nodes
            .insert(rn.clone(), (NodeKind::Run, run.name.clone()));
        let seq = run.audit_seq;
        let commit = format!("git_commit:{}", run.git_commit);
        self.nodes.insert(
            commit.clone(),
            (NodeKind::GitCommit, run.git_commit[..12].to_string()),
        );
        self.edges
            .insert((rn.clone(), commit, "built_from".into(), seq));
        let image = format!("image:{}", run.image_digest);
        self.nodes.insert(
            image.clone(),
            (NodeKind::Image, run.image_digest[..19].to_string()),
        );
        self.edges
            .insert((rn.clone(), image, "executed_in".into(), seq));
        for i in &run.inputs {
            let wanted = match only_input {
                None => true,
                Some((ds, digest)) => i.dataset_id == ds && i.digest == digest,
            };
            if wanted {
                self.versions
                    .insert((i.dataset_id.clone(), i.digest.clone()));
                self.edges.insert((
                    version_subject(&i.dataset_id, &i.digest),
                    rn.clone(),
                    "input".into(),
                    seq,
                ));
            }
        }
        if let Some(fs) = rr.finish_seq.filter(|s| *s < size) {
            for o in &run.outputs {
                self.versions
                    .insert((o.dataset_id.clone(), o.digest.clone()));
                self.edges.insert((
                    rn.clone(),
                    version_subject(&o.dataset_id, &o.digest),
                    "produced".into(),
                    fs,
                ));
            }
        }
        let mut st = c.prepare_cached(
            "SELECT id, name, audit_seq FROM artifacts WHERE run_id = ?1 AND audit_seq < ?2",
        )?;
        let arts = st
            .query_map(params![run.id, size as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (id, name, aseq) in arts {
            let an = format!("artifact:{id}");
            self.nodes.insert(an.clone(), (NodeKind::Artifact, name));
            self.edges
                .insert((rn.clone(), an, "produced".into(), aseq as u64));
        }
        Ok(())
    }

    fn finish(mut self, c: &Connection) -> StoreResult<Lineage> {
        for (ds, digest) in std::mem::take(&mut self.versions) {
            let name: String = c
                .query_row(
                    "SELECT name FROM datasets WHERE id = ?1",
                    params![ds],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or_else(|| ds.clone());
            let short = &digest[..digest.len().min(19)];
            self.nodes.insert(
                version_subject(&ds, &digest),
                (NodeKind::DatasetVersion, format!("{name}@{short}")),
            );
        }
        let mut lineage = Lineage {
            nodes: self
                .nodes
                .into_iter()
                .map(|(id, (kind, label))| LineageNode { id, kind, label })
                .collect(),
            edges: self
                .edges
                .into_iter()
                .map(|(from, to, kind, seq)| LineageEdge {
                    from,
                    to,
                    kind: kind.parse::<EdgeKind>().unwrap_or_else(|e| match e {}),
                    seq,
                })
                .collect(),
        };
        lineage.sort();
        Ok(lineage)
    }
}
