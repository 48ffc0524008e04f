//! Metrics from a training loop (feature `native`): [`MetricsLogger`] queues points in memory
//! on the caller's thread and a background task sends them in batches.
//!
//! A training loop logs a point per step, thousands per second; one HTTP call per point would
//! cost milliseconds each and stall the loop whenever the server is slow or away. So:
//!
//! - **The caller only queues.** [`MetricsLogger::try_log`] checks the points (name rules,
//!   finite values, step range), stamps them with the wall-clock time and appends them to a
//!   bounded in-memory queue: no I/O, one short lock.
//! - **A background task sends batches** of up to [`DEFAULT_BATCH_POINTS`] points (the
//!   contract's maximum per `appendMetrics`), as soon as that many are queued or
//!   [`DEFAULT_FLUSH_INTERVAL`] after the oldest queued point, or at once when someone waits
//!   in [`MetricsLogger::flush`]. Batches go out one at a time, in logging order.
//! - **Nothing twice, nothing lost while the server is away.** Each batch gets one
//!   `Idempotency-Key` and keeps it until the server acknowledges it: a transient failure
//!   (connection refused, timeout, 408/429/502/503/504, `idempotency_in_flight`) is retried
//!   after a back-off (doubling from [`RETRY_MIN_DELAY`] up to [`LoggerConfig::retry_max_delay`]),
//!   for as long as it takes. A batch the server committed before a crash is answered from its
//!   idempotency record (kept 24 h), never appended again. Meanwhile new points keep queueing.
//! - **Bounded memory.** The queue holds at most [`LoggerConfig::queue_points`] points. When
//!   it is full, [`OnFull::Block`] (the default) makes [`MetricsLogger::try_log`] answer
//!   [`LogError::Full`] so the caller waits ([`MetricsLogger::wait_for_space`]) — the loop
//!   slows down to the server's pace instead of losing points — and [`OnFull::Drop`] drops the
//!   new points and counts them ([`LoggerStats::dropped`]).
//! - **Permanent failures stop the logger.** Any other error (401 expired run token, 409
//!   `run_sealed`, …) cannot be fixed by waiting: the logger records it, counts the queued
//!   points as abandoned and every later call returns [`LogError::Failed`] with that error.
//! - **Shutdown is explicit.** [`MetricsLogger::close`] flushes within a time limit and stops
//!   the task; what was not acknowledged by then is reported, never silently dropped.
//!
//! The task is a plain future ([`LoggerTask`]): spawn it on the runtime of your choice.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::model::metrics::{AppendMetricsRequest, MetricPoint};
use crate::Client;

/// Most points one `appendMetrics` call accepts (the contract's `maxItems`).
pub const MAX_POINTS_PER_BATCH: usize = 10_000;
/// Default queue bound, in points (about 100 bytes each with a short name).
pub const DEFAULT_QUEUE_POINTS: usize = 100_000;
/// Default (and largest) batch: the contract's maximum per `appendMetrics` call.
pub const DEFAULT_BATCH_POINTS: usize = MAX_POINTS_PER_BATCH;
/// Default longest time a point waits in the queue before its batch is sent.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// First wait before re-sending a batch after a transient failure.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(250);
/// Default longest wait between re-sends of a batch while the server is unreachable.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Longest metric name (the contract's `MetricName`).
pub const MAX_NAME_LEN: usize = 128;
/// Largest step (2^53 − 1: JSON numbers are doubles).
pub const MAX_STEP: u64 = crate::jcs::MAX_SAFE_INTEGER;

/// What [`MetricsLogger::try_log`] does when the queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFull {
    /// Refuse with [`LogError::Full`] (points handed back) so the caller can wait for space:
    /// nothing is lost, the caller slows down.
    #[default]
    Block,
    /// Drop the new points and count them in [`LoggerStats::dropped`].
    Drop,
}

/// Settings of a [`MetricsLogger`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoggerConfig {
    /// Most points queued (default [`DEFAULT_QUEUE_POINTS`]; at least one batch).
    pub queue_points: usize,
    /// Most points per batch (1–[`MAX_POINTS_PER_BATCH`], default [`DEFAULT_BATCH_POINTS`]).
    pub batch_points: usize,
    /// Longest time a point waits before its batch is sent (default
    /// [`DEFAULT_FLUSH_INTERVAL`]).
    pub flush_interval: Duration,
    /// Full-queue behaviour (default [`OnFull::Block`]).
    pub on_full: OnFull,
    /// Longest wait between re-sends while the server is unreachable (default
    /// [`DEFAULT_RETRY_MAX_DELAY`]).
    pub retry_max_delay: Duration,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self {
            queue_points: DEFAULT_QUEUE_POINTS,
            batch_points: DEFAULT_BATCH_POINTS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            on_full: OnFull::Block,
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
        }
    }
}

impl LoggerConfig {
    /// Sets the queue bound in points.
    pub fn with_queue_points(mut self, n: usize) -> Self {
        self.queue_points = n;
        self
    }

    /// Sets the batch size in points.
    pub fn with_batch_points(mut self, n: usize) -> Self {
        self.batch_points = n;
        self
    }

    /// Sets the flush interval.
    pub fn with_flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Sets the full-queue behaviour.
    pub fn with_on_full(mut self, on_full: OnFull) -> Self {
        self.on_full = on_full;
        self
    }

    /// Sets the longest wait between re-sends.
    pub fn with_retry_max_delay(mut self, d: Duration) -> Self {
        self.retry_max_delay = d;
        self
    }

    fn check(&self) -> Result<(), Error> {
        if self.batch_points == 0 || self.batch_points > MAX_POINTS_PER_BATCH {
            return Err(Error::build(format!(
                "batch_points must be 1 to {MAX_POINTS_PER_BATCH}"
            )));
        }
        if self.queue_points < self.batch_points {
            return Err(Error::build(
                "queue_points must be at least batch_points (one batch)",
            ));
        }
        if self.flush_interval.is_zero() || self.retry_max_delay.is_zero() {
            return Err(Error::build(
                "flush_interval and retry_max_delay must be positive",
            ));
        }
        Ok(())
    }
}

/// Why a point was not queued.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// A name, value or step breaks the contract's rules (nothing was queued).
    Invalid(Error),
    /// The queue is full ([`OnFull::Block`]): the points are handed back; wait with
    /// [`MetricsLogger::wait_for_space`] and try again.
    Full(Vec<(String, f64)>),
    /// The logger stopped on a permanent error (the first one).
    Failed(Arc<Error>),
    /// [`MetricsLogger::close`] was called.
    Closed,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::Full(p) => write!(
                f,
                "the metric queue is full ({} points not queued)",
                p.len()
            ),
            Self::Failed(e) => write!(f, "metric delivery stopped: {e}"),
            Self::Closed => f.write_str("the metric logger is closed"),
        }
    }
}

impl std::error::Error for LogError {}

/// Counters of a [`MetricsLogger`] (all in points unless said otherwise).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoggerStats {
    /// Queued by `try_log`.
    pub logged: u64,
    /// Acknowledged by the server.
    pub delivered: u64,
    /// Waiting in the queue or in the batch being sent.
    pub pending: u64,
    /// Not queued because the queue was full ([`OnFull::Drop`]).
    pub dropped: u64,
    /// Queued but given up: queued or in flight when a permanent error stopped the logger, or
    /// still unacknowledged when [`MetricsLogger::close`] ran out of time.
    pub abandoned: u64,
    /// Batches acknowledged.
    pub batches: u64,
    /// Re-sends after transient failures.
    pub retries: u64,
    /// The last transient failure, while it is not yet overcome (`None` once a batch goes
    /// through again).
    pub last_error: Option<Arc<Error>>,
    /// The permanent failure that stopped the logger.
    pub failed: Option<Arc<Error>>,
}

/// What [`MetricsLogger::flush`] and [`MetricsLogger::close`] found when they returned.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlushOutcome {
    /// Every point queued before the call was acknowledged by the server.
    pub complete: bool,
    /// Counters at that moment.
    pub stats: LoggerStats,
}

struct Point {
    name: String,
    step: u64,
    value: f64,
    time_ms: u64,
}

struct State {
    queue: VecDeque<Point>,
    /// When the oldest queued point was queued (for the flush interval).
    oldest_at: Option<Instant>,
    /// Points ever queued, taken into batches, acknowledged, refused when full, given up.
    /// Batches are taken and acknowledged in order, so `delivered >= n` means the first `n`
    /// queued points are on the server.
    logged: u64,
    taken: u64,
    delivered: u64,
    dropped: u64,
    abandoned: u64,
    batches: u64,
    retries: u64,
    /// Highest `logged` count a flusher waits for: the task sends at once while below it.
    flush_to: u64,
    /// Step used when the caller gives none: one after the last step logged.
    next_step: u64,
    closing: Option<Instant>,
    task_done: bool,
    last_error: Option<Arc<Error>>,
    failed: Option<Arc<Error>>,
}

struct Shared {
    client: Client,
    run_id: String,
    config: LoggerConfig,
    state: Mutex<State>,
    /// Wakes the task: first point after an empty queue, a full batch, a flush, a close.
    wake: tokio::sync::Notify,
    /// Wakes callers waiting for delivery or for space.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still consistent enough
        // to report; do not turn one panic into a cascade.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self, st: &State) -> LoggerStats {
        LoggerStats {
            logged: st.logged,
            delivered: st.delivered,
            pending: st.logged - st.delivered - st.abandoned,
            dropped: st.dropped,
            abandoned: st.abandoned,
            batches: st.batches,
            retries: st.retries,
            last_error: st.last_error.clone(),
            failed: st.failed.clone(),
        }
    }
}

/// The queue side of the logger; cheap to clone (an `Arc`). See the module docs.
#[derive(Clone)]
pub struct MetricsLogger {
    shared: Arc<Shared>,
}

impl fmt::Debug for MetricsLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("MetricsLogger")
            .field("run_id", &self.shared.run_id)
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats(&st))
            .finish()
    }
}

/// The sending side: a future that runs until [`MetricsLogger::close`] (or a permanent
/// failure). Spawn it, e.g. `tokio::spawn(task.run())`.
#[must_use = "nothing is sent unless the task runs"]
pub struct LoggerTask {
    shared: Arc<Shared>,
}

impl fmt::Debug for LoggerTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggerTask")
            .field("run_id", &self.shared.run_id)
            .finish()
    }
}

/// Checks one point against the contract: the name pattern `[A-Za-z0-9_][A-Za-z0-9_.:/-]*`
/// (1–128 characters), a finite value and a step up to 2^53 − 1.
pub fn check_point(name: &str, step: u64, value: f64) -> Result<(), Error> {
    let ok_name = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric()
                || b == b'_'
                || (i > 0 && matches!(b, b'.' | b':' | b'/' | b'-'))
        });
    if !ok_name {
        return Err(Error::build(format!(
            "metric name {:?} is invalid: 1 to {MAX_NAME_LEN} of letters, digits, '_', '.', ':', \
             '/', '-', starting with a letter, digit or '_'",
            name.chars().take(MAX_NAME_LEN + 8).collect::<String>()
        )));
    }
    if !value.is_finite() {
        return Err(Error::build(format!(
            "metric {name:?} step {step}: {value} is not a finite number"
        )));
    }
    if step > MAX_STEP {
        return Err(Error::build(format!(
            "metric {name:?}: step {step} is above 2^53 - 1"
        )));
    }
    Ok(())
}

impl MetricsLogger {
    /// A logger for the run `run_id`, acting with `client` (give it the run's token), and the
    /// task that sends for it.
    pub fn new(
        client: Client,
        run_id: impl Into<String>,
        config: LoggerConfig,
    ) -> Result<(MetricsLogger, LoggerTask), Error> {
        config.check()?;
        let run_id = run_id.into();
        if run_id.is_empty() {
            return Err(Error::build("run id must not be empty"));
        }
        let shared = Arc::new(Shared {
            client,
            run_id,
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(config.batch_points),
                oldest_at: None,
                logged: 0,
                taken: 0,
                delivered: 0,
                dropped: 0,
                abandoned: 0,
                batches: 0,
                retries: 0,
                flush_to: 0,
                next_step: 0,
                closing: None,
                task_done: false,
                last_error: None,
                failed: None,
            }),
            config,
            wake: tokio::sync::Notify::new(),
            progress: Condvar::new(),
        });
        Ok((
            MetricsLogger {
                shared: shared.clone(),
            },
            LoggerTask { shared },
        ))
    }

    /// The run the points go to.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// Queues `points` (name, value) at `step` (`None`: one after the last step logged, 0 at
    /// first), all or none. Never blocks on I/O; see [`LogError`] for the refusals.
    pub fn try_log(&self, step: Option<u64>, points: Vec<(String, f64)>) -> Result<(), LogError> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let shared = &*self.shared;
        let mut st = shared.lock();
        if let Some(e) = &st.failed {
            return Err(LogError::Failed(e.clone()));
        }
        if st.closing.is_some() {
            return Err(LogError::Closed);
        }
        let step = step.unwrap_or(st.next_step);
        for (name, value) in &points {
            check_point(name, step, *value).map_err(LogError::Invalid)?;
        }
        if points.is_empty() {
            return Ok(());
        }
        let n = points.len();
        if n > shared.config.queue_points {
            return Err(LogError::Invalid(Error::build(format!(
                "{n} points in one call is more than the queue holds ({})",
                shared.config.queue_points
            ))));
        }
        if st.queue.len() + n > shared.config.queue_points {
            return match shared.config.on_full {
                OnFull::Block => Err(LogError::Full(points)),
                OnFull::Drop => {
                    st.dropped += n as u64;
                    Ok(())
                }
            };
        }
        let was_empty = st.queue.is_empty();
        let before = st.queue.len();
        st.queue
            .extend(points.into_iter().map(|(name, value)| Point {
                name,
                step,
                value,
                time_ms,
            }));
        st.logged += n as u64;
        st.next_step = step.saturating_add(1);
        let batch = shared.config.batch_points;
        // Wake the task only when it has something new to do (a wake-up is a syscall; most
        // calls need none): the queue was empty (start the flush timer), or a batch filled.
        let crossed = before < batch && st.queue.len() >= batch;
        if was_empty {
            st.oldest_at = Some(Instant::now());
        }
        drop(st);
        if was_empty || crossed {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Waits up to `timeout` for room for `n` points; whether there is room now (or the
    /// logger stopped, so `try_log` will answer at once).
    pub fn wait_for_space(&self, n: usize, timeout: Duration) -> bool {
        let shared = &*self.shared;
        let st = shared.lock();
        let (st, _) = shared
            .progress
            .wait_timeout_while(st, timeout, |st| {
                st.failed.is_none()
                    && st.closing.is_none()
                    && st.queue.len() + n > shared.config.queue_points
            })
            .unwrap_or_else(|p| p.into_inner());
        st.failed.is_some()
            || st.closing.is_some()
            || st.queue.len() + n <= shared.config.queue_points
    }

    /// Asks the task to send everything logged so far now, and waits up to `timeout` for the
    /// server to acknowledge it. Returns early (incomplete) if the logger fails. A flush that
    /// times out changes nothing: the points stay queued and are still sent.
    pub fn flush(&self, timeout: Duration) -> FlushOutcome {
        let shared = &*self.shared;
        let mut st = shared.lock();
        let target = st.logged;
        st.flush_to = st.flush_to.max(target);
        drop(st);
        shared.wake.notify_one();
        let st = shared.lock();
        let (st, _) = shared
            .progress
            .wait_timeout_while(st, timeout, |st| {
                st.delivered < target && st.failed.is_none() && !st.task_done
            })
            .unwrap_or_else(|p| p.into_inner());
        FlushOutcome {
            complete: st.delivered >= target,
            stats: shared.stats(&st),
        }
    }

    /// Stops accepting points, sends what is queued within `timeout` and ends the task.
    /// Points not acknowledged by then are counted as abandoned and the outcome is incomplete.
    /// Calling it again waits again (up to the first call's limit).
    pub fn close(&self, timeout: Duration) -> FlushOutcome {
        let shared = &*self.shared;
        let mut st = shared.lock();
        let target = st.logged;
        if st.closing.is_none() {
            st.closing = Some(Instant::now() + timeout);
        }
        st.flush_to = st.flush_to.max(target);
        drop(st);
        shared.wake.notify_one();
        let st = shared.lock();
        let (st, _) = shared
            .progress
            .wait_timeout_while(st, timeout, |st| !st.task_done)
            .unwrap_or_else(|p| p.into_inner());
        FlushOutcome {
            complete: st.delivered >= target,
            stats: shared.stats(&st),
        }
    }

    /// Counters now.
    pub fn stats(&self) -> LoggerStats {
        let st = self.shared.lock();
        self.shared.stats(&st)
    }
}

impl Drop for LoggerTask {
    fn drop(&mut self) {
        // However the task ends (finished, or its runtime shut down), waiters must not hang.
        let mut st = self.shared.lock();
        st.task_done = true;
        drop(st);
        self.shared.progress.notify_all();
    }
}

/// Formats Unix milliseconds as the contract's `Timestamp`: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Whether waiting and sending the same batch again can succeed.
fn transient(e: &Error) -> bool {
    e.is_retryable() || e.code() == Some("idempotency_in_flight")
}

enum Next {
    Batch(Vec<Point>),
    Wait(Option<Duration>),
    Stop,
}

impl LoggerTask {
    /// Sends batches until the logger is closed and drained, or fails.
    pub async fn run(self) {
        let shared = self.shared.clone();
        loop {
            let next = {
                let mut st = shared.lock();
                next_step(&shared.config, &mut st)
            };
            match next {
                Next::Batch(points) => self.deliver(points).await,
                Next::Wait(Some(d)) => {
                    let _ = tokio::time::timeout(d, shared.wake.notified()).await;
                }
                Next::Wait(None) => shared.wake.notified().await,
                Next::Stop => return,
            }
        }
    }

    async fn deliver(&self, points: Vec<Point>) {
        let shared = &*self.shared;
        let n = points.len() as u64;
        let request = AppendMetricsRequest::new(
            points
                .into_iter()
                .map(|p| {
                    MetricPoint::new(p.name, p.step, p.value).with_time(rfc3339_millis(p.time_ms))
                })
                .collect(),
        );
        // One key for this batch, however many times it is sent: a batch the server already
        // committed is answered from its record instead of being appended again.
        let key = shared.client.new_idempotency_key();
        let mut delay = RETRY_MIN_DELAY;
        loop {
            let result = shared
                .client
                .append_metrics(&shared.run_id, &request)
                .idempotency_key(key.clone())
                .send()
                .await;
            let wait = match result {
                Ok(_) => {
                    let mut st = shared.lock();
                    st.delivered += n;
                    st.batches += 1;
                    st.last_error = None;
                    None
                }
                Err(e) if transient(&e) => {
                    let mut st = shared.lock();
                    st.retries += 1;
                    st.last_error = Some(Arc::new(e));
                    match st.closing {
                        // Closing and out of time: give the batch up, counted.
                        Some(deadline) if deadline <= Instant::now() => {
                            st.abandoned += n;
                            None
                        }
                        Some(deadline) => Some(delay.min(deadline - Instant::now())),
                        None => Some(delay),
                    }
                }
                Err(e) => {
                    let mut st = shared.lock();
                    let queued = st.queue.len() as u64;
                    st.queue.clear();
                    st.oldest_at = None;
                    st.abandoned += n + queued;
                    st.failed = Some(Arc::new(e));
                    None
                }
            };
            shared.progress.notify_all();
            let Some(wait) = wait else { return };
            // A close shortens the wait (its deadline bounds the retries).
            let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
            delay = (delay * 2).min(shared.config.retry_max_delay);
        }
    }
}

/// What the task does next, decided under the lock.
fn next_step(config: &LoggerConfig, st: &mut State) -> Next {
    if st.failed.is_some() {
        return Next::Stop;
    }
    let len = st.queue.len();
    if let Some(deadline) = st.closing {
        if len == 0 {
            return Next::Stop;
        }
        if Instant::now() >= deadline {
            // Out of time: what is still queued is given up, counted.
            st.abandoned += len as u64;
            st.queue.clear();
            return Next::Stop;
        }
    }
    if len == 0 {
        return Next::Wait(None);
    }
    let age = st.oldest_at.map_or(Duration::ZERO, |t| t.elapsed());
    let due = len >= config.batch_points
        || st.flush_to > st.taken
        || st.closing.is_some()
        || age >= config.flush_interval;
    if !due {
        return Next::Wait(Some(config.flush_interval - age));
    }
    let take = len.min(config.batch_points);
    let batch: Vec<Point> = st.queue.drain(..take).collect();
    st.taken += take as u64;
    // What is left was queued after the batch's points; its timer starts now.
    st.oldest_at = (!st.queue.is_empty()).then(Instant::now);
    Next::Batch(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(1_795_750_730_123),
            "2026-11-27T03:38:50.123Z"
        );
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn point_rules() {
        assert!(check_point("train/loss", 0, 0.5).is_ok());
        assert!(check_point("_x:y.z-1", MAX_STEP, -1e300).is_ok());
        assert!(check_point(&"a".repeat(128), 1, 1.0).is_ok());
        for bad in ["", "/loss", ".x", "-x", "a b", "é", &"a".repeat(129)] {
            assert!(check_point(bad, 0, 1.0).is_err(), "{bad:?}");
        }
        assert!(check_point("x", 0, f64::NAN).is_err());
        assert!(check_point("x", 0, f64::INFINITY).is_err());
        assert!(check_point("x", MAX_STEP + 1, 1.0).is_err());
    }
}
