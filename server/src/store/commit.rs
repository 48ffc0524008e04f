//! Group commit: one committer task per process applies writes in shared transactions.
//!
//! A write is a closure over a [`WriteCtx`]. The committer takes the first waiting write, then
//! every other write already queued (up to [`MAX_BATCH`]), opens one transaction, locks the
//! ledger-state row (`FOR UPDATE`: writers on other replicas wait here, which is what keeps
//! sequence numbers dense), and runs each write in a savepoint of its own: a write that is
//! refused (a conflict, a gate not passed) rolls back to its savepoint, and the sequence number
//! it would have taken goes to the next write. One commit, one fsync, for the whole batch; then
//! every caller gets its own result. Under light load a batch is one write, so latency is one
//! transaction; under load, throughput grows with the batch instead of queueing on fsync.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::repo::{int, params, Repo, RepoTx};
use super::{StoreError, StoreResult};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Writes applied in one transaction at most.
pub const MAX_BATCH: usize = 64;
/// Writes waiting for the committer at most; callers beyond wait to enqueue.
const QUEUE: usize = 1024;

/// A write transaction with the ledger-state row locked.
pub struct WriteCtx {
    pub tx: Box<dyn RepoTx>,
    /// The ledger's size so far in this transaction: the next event's sequence number.
    pub size: u64,
    /// Merkle nodes known in this transaction (read for an append, or appended): later appends
    /// of the batch find their left siblings here instead of in the database.
    pub(crate) nodes: std::collections::HashMap<(u32, u64), datapilot::merkle::Hash>,
    /// Audit event and Merkle node rows appended in this transaction, inserted together (one
    /// multi-row statement each) when the batch commits: nothing reads them before.
    pub(crate) pending_events: Vec<Vec<super::repo::Val>>,
    pub(crate) pending_nodes: Vec<Vec<super::repo::Val>>,
    /// Node keys added to `nodes` by the write in progress (undone if it fails).
    pub(crate) added_nodes: Vec<(u32, u64)>,
}

/// Where a write started, to undo what it appended if it fails.
struct Mark {
    size: u64,
    events: usize,
    nodes: usize,
}

impl WriteCtx {
    fn mark(&mut self) -> Mark {
        self.added_nodes.clear();
        Mark {
            size: self.size,
            events: self.pending_events.len(),
            nodes: self.pending_nodes.len(),
        }
    }

    fn undo(&mut self, m: Mark) {
        self.size = m.size;
        self.pending_events.truncate(m.events);
        self.pending_nodes.truncate(m.nodes);
        for k in self.added_nodes.drain(..) {
            self.nodes.remove(&k);
        }
    }
}

impl std::fmt::Debug for WriteCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteCtx")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

type AnyOut = Box<dyn Any + Send>;
type Job = Box<dyn for<'a> FnOnce(&'a mut WriteCtx) -> BoxFuture<'a, StoreResult<AnyOut>> + Send>;
type Queued = (Job, oneshot::Sender<StoreResult<AnyOut>>);

/// The handle writes are queued through.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Queued>,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Start the committer task over `repo`; it ends when the last handle is dropped.
    pub fn start(repo: Arc<dyn Repo>, timeout: std::time::Duration) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(repo, rx, timeout));
        Committer { queue, timeout }
    }

    /// Apply `f` in a write transaction (shared with other queued writes) and commit.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut WriteCtx) -> BoxFuture<'a, StoreResult<T>> + Send + 'static,
    {
        let job: Job = Box::new(move |cx| {
            let fut = f(cx);
            Box::pin(async move { fut.await.map(|v| Box::new(v) as AnyOut) })
        });
        let (reply, answer) = oneshot::channel();
        // Waiting in the queue counts too: behind a stuck database the queue fills, and a
        // writer must still get its 503 in bounded time.
        let waited = tokio::time::timeout(2 * self.timeout, async {
            self.queue
                .send((job, reply))
                .await
                .map_err(|_| StoreError::Unavailable("the server is shutting down".into()))?;
            answer
                .await
                .map_err(|_| StoreError::Internal("the committer dropped a write".into()))?
        })
        .await;
        let out = waited.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the database is not keeping up; the write may or may not have been applied".into(),
            ))
        })?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Internal("write result of an unexpected type".into()))
    }
}

async fn run(repo: Arc<dyn Repo>, mut rx: mpsc::Receiver<Queued>, timeout: std::time::Duration) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<Job>, Vec<_>) = batch.into_iter().unzip();
        let n = jobs.len();
        // A database that stops answering must not hold every writer: the batch is abandoned
        // (its transaction is rolled back if it was not committed; if the COMMIT itself was
        // sent, its outcome is unknown, which the 503 says: a retry with the same
        // Idempotency-Key replays or performs it once).
        let results = match tokio::time::timeout(timeout, run_batch(&*repo, jobs)).await {
            Ok(r) => r,
            Err(_) => {
                let e = StoreError::Unavailable(format!(
                    "the database did not commit within {} s; the write may or may not have been applied",
                    timeout.as_secs_f32()
                ));
                (0..n).map(|_| Err(e.clone())).collect()
            }
        };
        for (reply, r) in replies.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }
}

async fn run_batch(repo: &dyn Repo, batch: Vec<Job>) -> Vec<StoreResult<AnyOut>> {
    let mut cx = match begin(repo).await {
        Ok(cx) => cx,
        Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
    };
    let start = cx.size;
    let savepoints = batch.len() > 1;
    let mut results = Vec::with_capacity(batch.len());
    let mut broken: Option<StoreError> = None;
    for job in batch {
        if let Some(e) = &broken {
            results.push(Err(e.clone()));
            continue;
        }
        if savepoints {
            if let Err(e) = cx.tx.execute("SAVEPOINT w", &[]).await {
                broken = Some(e.clone());
                results.push(Err(e));
                continue;
            }
        }
        let before = cx.mark();
        let r = AssertUnwindSafe(job(&mut cx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("a write panicked".into())));
        if savepoints {
            let undo = if r.is_ok() {
                cx.tx.execute("RELEASE SAVEPOINT w", &[]).await
            } else {
                cx.undo(before);
                match cx.tx.execute("ROLLBACK TO SAVEPOINT w", &[]).await {
                    Ok(_) => cx.tx.execute("RELEASE SAVEPOINT w", &[]).await,
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = undo {
                broken = Some(e);
            }
        }
        results.push(r);
    }
    // A broken transaction commits nothing: every write in it fails, none is acknowledged.
    let committed = match broken {
        Some(e) => Err(e),
        None if results.iter().all(|r| r.is_err()) => Ok(()), // nothing to keep: roll back
        None => finish(cx, start).await,
    };
    results
        .into_iter()
        .map(|r| match (&committed, r) {
            (Err(e), Ok(_)) => Err(e.clone()),
            (_, r) => r,
        })
        .collect()
}

async fn begin(repo: &dyn Repo) -> StoreResult<WriteCtx> {
    let mut tx = repo.write().await?;
    let size = tx
        .query_one("SELECT size FROM ledger_state WHERE id = 1 FOR UPDATE", &[])
        .await?
        .u64(0)?;
    Ok(WriteCtx {
        tx,
        size,
        nodes: Default::default(),
        pending_events: Vec::new(),
        pending_nodes: Vec::new(),
        added_nodes: Vec::new(),
    })
}

async fn finish(mut cx: WriteCtx, start: u64) -> StoreResult<()> {
    cx.flush_appends().await?;
    if cx.size != start {
        cx.tx
            .execute(
                "UPDATE ledger_state SET size = $1 WHERE id = 1",
                params![int("size", cx.size)?],
            )
            .await?;
    }
    cx.tx.commit().await
}
