//! The narrow repository beneath the domain layer: transactions that run SQL and return rows.
//!
//! Business rules, ids, the audit leaf bytes and the tree arithmetic live above this boundary
//! (in [`super`]); a backend only knows how to open a read snapshot or a write transaction,
//! run a statement, return rows as [`Val`]s, and apply its numbered migrations. The domain
//! layer writes its SQL once, in the portable subset both backends accept:
//!
//! - placeholders `$1`, `$2`, … (SQLite gets them rewritten to `?1`, `?2`, …);
//! - `FOR UPDATE` only where PostgreSQL needs a row lock that SQLite's single writer already
//!   gives (the SQLite backend drops the clause);
//! - `INSERT … ON CONFLICT … DO NOTHING`, `SAVEPOINT`, `COALESCE`, `LIMIT`, no `RETURNING`.
//!
//! Integers are 64-bit everywhere (`INTEGER` in SQLite, `BIGINT` in PostgreSQL), binary
//! columns are `BLOB` / `BYTEA`, metric values `REAL` / `DOUBLE PRECISION`.

use async_trait::async_trait;

use super::{StoreError, StoreResult};

/// One SQL value, bound as a parameter or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::Int(v.into())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(v.clone())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Blob(v)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Self {
        Val::Blob(v.to_vec())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// A `u64` as a SQL integer (SQL integers are signed 64-bit).
pub fn int(field: &str, v: u64) -> StoreResult<Val> {
    i64::try_from(v)
        .map(Val::Int)
        .map_err(|_| StoreError::Invalid(field.into(), "value too large".into()))
}

/// Build a parameter list: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::store::repo::Val::from($v)),*][..] };
}
pub(crate) use params;

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>);

fn bad_column(i: usize, want: &str, got: &Val) -> StoreError {
    StoreError::Internal(format!("column {i}: expected {want}, got {got:?}"))
}

impl Row {
    fn at(&self, i: usize) -> StoreResult<&Val> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Internal(format!("row has no column {i}")))
    }
    pub fn i64(&self, i: usize) -> StoreResult<i64> {
        match self.at(i)? {
            Val::Int(v) => Ok(*v),
            v => Err(bad_column(i, "integer", v)),
        }
    }
    pub fn u64(&self, i: usize) -> StoreResult<u64> {
        let v = self.i64(i)?;
        u64::try_from(v).map_err(|_| StoreError::Internal(format!("column {i}: negative {v}")))
    }
    pub fn opt_u64(&self, i: usize) -> StoreResult<Option<u64>> {
        match self.at(i)? {
            Val::Null => Ok(None),
            _ => self.u64(i).map(Some),
        }
    }
    pub fn f64(&self, i: usize) -> StoreResult<f64> {
        match self.at(i)? {
            Val::Real(v) => Ok(*v),
            Val::Int(v) => Ok(*v as f64),
            v => Err(bad_column(i, "real", v)),
        }
    }
    pub fn text(&self, i: usize) -> StoreResult<String> {
        match self.at(i)? {
            Val::Text(v) => Ok(v.clone()),
            v => Err(bad_column(i, "text", v)),
        }
    }
    pub fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        match self.at(i)? {
            Val::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    pub fn blob(&self, i: usize) -> StoreResult<Vec<u8>> {
        match self.at(i)? {
            Val::Blob(v) => Ok(v.clone()),
            v => Err(bad_column(i, "blob", v)),
        }
    }
    pub fn opt_blob(&self, i: usize) -> StoreResult<Option<Vec<u8>>> {
        match self.at(i)? {
            Val::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }
}

/// An open transaction: a read snapshot or a write transaction. Dropped without
/// [`RepoTx::commit`], it rolls back.
#[async_trait]
pub trait RepoTx: Send {
    /// Run a statement; the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Val]) -> StoreResult<u64>;
    /// Run a query; all its rows.
    async fn query(&mut self, sql: &str, params: &[Val]) -> StoreResult<Vec<Row>>;
    /// Run one statement once per parameter row (bulk inserts: manifest files, metric points,
    /// Merkle nodes). Backends may pipeline.
    async fn execute_many(&mut self, sql: &str, rows: &[Vec<Val>]) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

impl dyn RepoTx + '_ {
    /// The first row, if any.
    pub async fn query_opt(&mut self, sql: &str, params: &[Val]) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
    /// Exactly one row.
    pub async fn query_one(&mut self, sql: &str, params: &[Val]) -> StoreResult<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("no row from {sql}")))
    }
}

/// A storage backend: SQLite ([`super::sqlite`]) or PostgreSQL ([`super::postgres`]).
#[async_trait]
pub trait Repo: Send + Sync + std::fmt::Debug {
    /// A consistent read-only snapshot.
    async fn read(&self) -> StoreResult<Box<dyn RepoTx>>;
    /// A connection for one statement, outside any transaction (an authentication or key
    /// lookup: one row, no snapshot to keep consistent). Backends without a cheaper path give
    /// a read snapshot.
    async fn read_one(&self) -> StoreResult<Box<dyn RepoTx>> {
        self.read().await
    }
    /// A write transaction. Writers are serialised by the ledger-state row lock the domain
    /// takes first (`SELECT … FROM ledger_state … FOR UPDATE`).
    async fn write(&self) -> StoreResult<Box<dyn RepoTx>>;
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// The connection pool's state now, for `/metrics`.
    fn pool_state(&self) -> Option<PoolState> {
        None
    }
}

/// A connection pool's state (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections the pool may open.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
}
