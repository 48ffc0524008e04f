//! Per-principal request rate limit (`--rate-limit`, off by default).
//!
//! A token bucket per authenticated principal (API token, run token or gateway subject): it
//! holds up to `burst` requests and refills at `rate` per second; a request finding it empty is
//! answered `429 rate_limited` with `Retry-After` (whole seconds until a request fits again),
//! before its body is read. The SDK retries such answers after `Retry-After`, so a CI script
//! that loops too fast slows down instead of failing.
//!
//! It runs after authentication (the bucket is the principal's, so one runaway job cannot
//! starve the others) and before idempotency (a replay is a request too). Unauthenticated
//! requests are not counted: they are refused by authentication anyway. Buckets idle long
//! enough to be full again are dropped, so memory follows the active principals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::{AuthState, Principal};
use crate::error::ApiError;

/// How many buckets may exist before idle (full) ones are swept.
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by principal.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second on average, `burst` at once (both at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket at `now`; `Err` gives the seconds to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// The bucket a principal draws from.
fn bucket_key(p: &Principal) -> String {
    match (&p.token_id, &p.run_id) {
        (Some(token), _) => format!("token:{token}"),
        (None, Some(run)) => format!("run:{run}"),
        (None, None) => format!("subject:{}", p.subject),
    }
}

/// The middleware: refuses a principal's request when its bucket is empty.
pub async fn middleware(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let (Some(limiter), Some(AuthState::Ok(p))) =
        (&st.rate_limiter, req.extensions().get::<AuthState>())
    {
        if let Err(secs) = limiter.check(&bucket_key(p), Instant::now()) {
            return ApiError::new(
                "rate_limited",
                format!("rate limit exceeded; retry after {secs} seconds"),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Ok(()));
        }
        assert_eq!(l.check("a", t0), Err(1), "empty: retry after a second");
        // Another principal has its own bucket.
        assert_eq!(l.check("b", t0), Ok(()));
        // Half a second refills one request at 2/s.
        assert_eq!(l.check("a", t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(l.check("a", t0 + Duration::from_millis(500)), Err(1));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check("a", later), Ok(()));
        }
        assert!(l.check("a", later).is_err());
    }

    #[test]
    fn retry_after_covers_the_wait() {
        let l = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Ok(()));
        assert_eq!(l.check("a", t0), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_millis(999)), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_millis(1999)), Ok(()));
    }

    #[test]
    fn idle_buckets_are_swept() {
        let l = RateLimiter::new(1000, 1);
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            assert_eq!(l.check(&format!("p{i}"), t0), Ok(()));
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(l.check("new", later), Ok(()));
        assert_eq!(
            l.buckets.lock().unwrap().len(),
            1,
            "full buckets were dropped"
        );
    }
}
