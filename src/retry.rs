//! When and how long to wait before repeating a failed request.
//!
//! The rules:
//!
//! - **What is retried.** Only failures where the request certainly or probably did not take
//!   effect, or the server asked to come back: transport errors, timeouts, HTTP 408, 429, 502,
//!   503, 504 and `409 idempotency_in_flight` (another request with the same key is still
//!   running; the retry gets its answer) ([`crate::Error::is_retryable`]). Never other 4xx (the
//!   request is wrong) nor 500 (the server failed processing it; repeating rarely helps and may
//!   amplify an outage).
//!   Writes are safe to repeat because the client sends the same `Idempotency-Key` on every
//!   attempt.
//! - **How long to wait.** Capped exponential backoff with *full jitter*
//!   (`delay = uniform(0, min(max_delay, base_delay * 2^(retry-1))`), which spreads clients that
//!   failed together so they do not retry together. A `Retry-After` header (seconds or
//!   HTTP-date) replaces the computed delay, capped at [`RetryConfig::max_retry_after`] so a
//!   misconfigured server cannot park a caller for hours.
//! - **How long overall.** Every call has a deadline ([`DEFAULT_CALL_DEADLINE`], configurable
//!   per client and per call) covering all its attempts and waits: an attempt's timeout is cut
//!   to the time left, and a wait (backoff or `Retry-After`) that would end past the deadline
//!   is not started; the call then ends with the last error, marked
//!   [`crate::Error::deadline_exhausted`].
//! - **How often overall.** A per-call cap ([`RetryConfig::max_attempts`]) and a
//!   client-wide [`RetryBudget`]: a token bucket where every retry costs
//!   [`RETRY_COST`] tokens and every success refunds [`SUCCESS_REFUND`]. During an outage the
//!   bucket drains and the client stops multiplying its load by `max_attempts`; once requests
//!   succeed again it refills.
//!
//! Jitter comes from a small xorshift generator ([`Jitter`]), so tests are deterministic and the
//! wasm build needs no `getrandom`. Jitter needs spread, not secrecy; idempotency keys, which
//! need unpredictability, come from a separate generator (see [`crate::client`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Attempts per call, including the first.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Backoff base: the first retry waits up to this long.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(200);
/// Backoff cap for a single wait.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured; longer values are cut to this.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Stall timeout of a transfer (artifact upload or download): an attempt that sends or
/// receives no byte for this long (or, its body sent, waits this long for the answer) is
/// given up, and retried like a timed-out attempt. Transfers have no overall deadline by
/// default: a 4 GiB model on a slow link may take an hour and is healthy as long as it moves.
/// A minute, because after the last byte of an upload the server still syncs the file to disk
/// (or completes the object store upload) before it answers.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of a whole call: every attempt and every wait between attempts. An attempt's
/// timeout is cut to what is left of it, and no wait starts that would end past it. When the
/// caller sets a per-attempt timeout longer than this but no deadline, the deadline is that
/// timeout instead (a call may always spend one full attempt).
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(60);
/// A retry is started only if at least this much of the call's deadline is left once its
/// wait is over: an attempt with less time than this would rarely finish, and a write cut off
/// mid-flight leaves its outcome unknown.
pub const MIN_ATTEMPT_WINDOW: Duration = Duration::from_millis(100);
/// Capacity of the retry budget, in tokens.
pub const DEFAULT_RETRY_BUDGET: u32 = 100;
/// Tokens one retry costs (a full bucket allows this many retries in a burst: 100 / 10 = 10).
pub const RETRY_COST: u32 = 10;
/// Tokens one successful call returns to the bucket.
pub const SUCCESS_REFUND: u32 = 1;

/// Retry settings of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts per call including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Backoff base.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
    /// Cap on an honoured `Retry-After`.
    pub max_retry_after: Duration,
    /// Retry budget capacity in tokens (0 disables retries).
    pub budget: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            budget: DEFAULT_RETRY_BUDGET,
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn disabled() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the attempts per call (at least 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the backoff base and cap.
    pub fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    /// Sets the `Retry-After` cap.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Sets the budget capacity.
    pub fn with_budget(mut self, tokens: u32) -> Self {
        self.budget = tokens;
        self
    }

    /// The upper bound of the jittered wait before retry number `retry` (1-based):
    /// `min(max_delay, base_delay * 2^(retry-1))`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The wait before retry number `retry` (1-based): the server's `Retry-After` (capped) if
    /// given, else a full-jitter draw below [`Self::backoff_ceiling`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: &Jitter) -> Duration {
        match retry_after {
            Some(after) => after.min(self.max_retry_after),
            None => {
                let ceiling = self.backoff_ceiling(retry).as_nanos() as u64;
                Duration::from_nanos(jitter.below(ceiling.saturating_add(1)))
            }
        }
    }
}

/// A client-wide token bucket limiting retries (see the module docs). Atomic, because a
/// native client and its clones are shared across threads; the bucket is advisory (it bounds
/// retry load), so relaxed ordering is enough.
#[derive(Debug)]
pub struct RetryBudget {
    capacity: u32,
    tokens: AtomicU32,
}

impl RetryBudget {
    /// A full bucket of `capacity` tokens.
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            tokens: AtomicU32::new(capacity),
        }
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// Takes [`RETRY_COST`] tokens if there are enough; `false` means "do not retry".
    pub fn try_withdraw(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(RETRY_COST)
            })
            .is_ok()
    }

    /// Returns the success refund, up to capacity.
    pub fn deposit(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(SUCCESS_REFUND).min(self.capacity))
            });
    }
}

/// xorshift64* generator for backoff jitter. Not cryptographic (its output reveals its
/// state): it only needs to decorrelate clients. Never used for idempotency keys. The state
/// is atomic so clones of a client on several threads can share it; two threads that race on
/// one step may draw the same value, which costs some spread and nothing else.
#[derive(Debug)]
pub struct Jitter {
    state: AtomicU64,
}

impl Jitter {
    /// A generator from `seed` (any value; zero is remapped, xorshift must not be zero).
    pub fn new(seed: u64) -> Self {
        // SplitMix64 finaliser spreads low-entropy seeds (a clock) over all bits.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            state: AtomicU64::new(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z }),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .expect("the update always returns Some");
        step(prev).wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (0 when `n == 0`).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift range reduction: unbiased enough for jitter, no division loop.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date turned into a delay using
/// `now_unix_millis` (a date without a clock, or in the past, gives zero).
pub fn parse_retry_after(value: &str, now_unix_millis: Option<u64>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Overlong numbers saturate: the cap applies later anyway.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let at = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    let now = now_unix_millis?;
    Some(Duration::from_millis(at.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let c = RetryConfig::default();
        assert_eq!(c.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(c.backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(c.backoff_ceiling(3), Duration::from_millis(800));
        assert_eq!(c.backoff_ceiling(10), DEFAULT_MAX_DELAY);
        assert_eq!(c.backoff_ceiling(100), DEFAULT_MAX_DELAY);
    }

    #[test]
    fn full_jitter_stays_below_ceiling_and_spreads() {
        let c = RetryConfig::default();
        let j = Jitter::new(7);
        let draws: Vec<Duration> = (0..1000).map(|_| c.delay(3, None, &j)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(800)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(700)));
    }

    #[test]
    fn retry_after_replaces_backoff_and_is_capped() {
        let c = RetryConfig::default();
        let j = Jitter::new(1);
        assert_eq!(
            c.delay(1, Some(Duration::from_secs(3)), &j),
            Duration::from_secs(3)
        );
        assert_eq!(
            c.delay(1, Some(Duration::from_secs(3600)), &j),
            DEFAULT_MAX_RETRY_AFTER
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(parse_retry_after("5", None), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 ", None), Some(Duration::ZERO));
        // 1994-11-06T08:49:37Z = 784111777 s.
        let now = 784_111_777_000 - 2_000;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", Some(now)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", None),
            None
        );
        assert_eq!(parse_retry_after("soon", Some(0)), None);
        assert_eq!(parse_retry_after("-1", None), None);
    }

    #[test]
    fn budget_drains_and_refills() {
        let b = RetryBudget::new(25);
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        assert_eq!(b.available(), 5);
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.try_withdraw());
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(b.available(), 25);
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let a = Jitter::new(42);
        let b = Jitter::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Jitter::new(1).next_u64(), Jitter::new(2).next_u64());
        assert_eq!(a.below(0), 0);
    }
}
