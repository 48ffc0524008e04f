//! The whole-call deadline, against a scripted transport and a fake monotonic clock: attempt
//! timeouts cut to the time left, no wait that would end past the deadline, the error a call
//! that ran out of time returns, and what it says about whether the request was sent.

#[path = "client_support/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use datapilot::error::TimeoutLimit;
use datapilot::model::datasets::CreateDatasetRequest;
use datapilot::retry::{RetryConfig, DEFAULT_CALL_DEADLINE, DEFAULT_TIMEOUT, MIN_ATTEMPT_WINDOW};
use datapilot::transport::{BoxFuture, Sleep, TransportError, TransportErrorKind};
use datapilot::{Client, Error, RequestOptions, Sent};

const HEALTH: &str = r#"{"status":"ok","version":"0.1.0","tree_size":3}"#;
const DATASET: &str = r#"{"id":"ds_1","name":"n","description":null,"created_at":"2026-11-27T03:38:50.123Z","created_by":"tok_1"}"#;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn create_req() -> CreateDatasetRequest {
    CreateDatasetRequest::new("n")
}

fn refused() -> Result<datapilot::transport::Response, TransportError> {
    Err(TransportError::new(TransportErrorKind::Connect, "refused"))
}

#[test]
fn defaults_bound_a_hanging_call_by_the_deadline_not_attempts_times_timeout() {
    let (c, t, s) = client();
    for _ in 0..4 {
        t.timeout();
    }
    let err = block_on(c.get_health().send()).unwrap_err();
    // 4 attempts x 30 s used to be possible; the 60 s deadline allows the first attempt whole
    // and cuts the second to what is left after the wait.
    assert_eq!(t.count(), 2);
    assert_eq!(t.request(0).timeout, DEFAULT_TIMEOUT);
    let waited = s.delays.borrow()[0];
    assert_eq!(
        t.request(1).timeout,
        DEFAULT_CALL_DEADLINE - DEFAULT_TIMEOUT - waited
    );
    assert_eq!(s.elapsed(), DEFAULT_CALL_DEADLINE);
    assert!(
        matches!(
            err,
            Error::Timeout {
                after,
                sent: Sent::Maybe,
                limit: TimeoutLimit::CallDeadline
            } if after == DEFAULT_CALL_DEADLINE
        ),
        "{err:?}"
    );
    assert!(err.deadline_exhausted());
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "call deadline of 60s passed; the request may have been sent"
    );
}

#[test]
fn every_attempt_timeout_is_cut_to_the_time_left() {
    let (c, t, s) = client();
    // Slow 503s: 25 s each.
    for _ in 0..4 {
        t.push_after(secs(25), Ok(response(503, &[], "")));
    }
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 3);
    let delays = s.delays.borrow().clone();
    assert_eq!(t.request(0).timeout, DEFAULT_TIMEOUT);
    assert_eq!(t.request(1).timeout, DEFAULT_TIMEOUT);
    let left = DEFAULT_CALL_DEADLINE - secs(50) - delays[0] - delays[1];
    assert_eq!(t.request(2).timeout, left);
    // The third response would come after 25 s, past the deadline: the attempt is cut off.
    assert_eq!(s.elapsed(), DEFAULT_CALL_DEADLINE);
    assert!(matches!(
        err,
        Error::Timeout {
            limit: TimeoutLimit::CallDeadline,
            sent: Sent::Maybe,
            ..
        }
    ));
}

#[test]
fn retry_after_longer_than_the_time_left_ends_with_the_last_error_marked() {
    let (c, t, s) = client();
    let c = c.with_deadline(secs(10));
    t.push(Ok(response(
        503,
        &[("retry-after", "30")],
        &problem(503, "unavailable", "maintenance"),
    )));
    t.status(200, HEALTH);
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 1, "no retry");
    assert!(s.delays.borrow().is_empty(), "no wait started");
    // The server's answer is kept whole, and marked.
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.code(), Some("unavailable"));
    assert_eq!(err.retry_after(), Some(secs(30)));
    assert!(err.is_retryable());
    assert!(err.deadline_exhausted());
    assert!(err.api().unwrap().deadline_exhausted);
    assert!(
        err.to_string().contains("not retried") && err.to_string().contains("30s"),
        "{err}"
    );

    // Waits that fit are taken, until one does not.
    let (c, t, s) = client();
    let c = c.with_deadline(secs(8));
    t.push(Ok(response(429, &[("retry-after", "5")], "")));
    t.push(Ok(response(429, &[("retry-after", "5")], "")));
    t.status(200, HEALTH);
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 2);
    assert_eq!(*s.delays.borrow(), vec![secs(5)]);
    assert_eq!(err.status(), Some(429));
    assert!(err.deadline_exhausted());
    assert!(s.elapsed() <= secs(8));

    // The same wait with time to spare is honoured.
    let (c, t, s) = client();
    t.push(Ok(response(429, &[("retry-after", "5")], "")));
    t.status(200, HEALTH);
    block_on(c.get_health().send()).unwrap();
    assert_eq!(*s.delays.borrow(), vec![secs(5)]);
}

#[test]
fn a_backoff_that_does_not_fit_ends_with_the_transport_error_marked() {
    let (c, t, s) = client();
    let c = c.with_deadline(MIN_ATTEMPT_WINDOW / 2);
    t.push(refused()).push(refused());
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 1);
    assert!(s.delays.borrow().is_empty());
    assert!(matches!(
        err,
        Error::Transport {
            sent: Sent::No,
            deadline_exhausted: true,
            ..
        }
    ));
    assert!(err.to_string().contains("not retried"), "{err}");
    // The attempt itself only had the deadline.
    assert_eq!(t.request(0).timeout, MIN_ATTEMPT_WINDOW / 2);
}

#[test]
fn a_late_timer_that_eats_the_deadline_gives_a_deadline_timeout() {
    let t = Scripted::default();
    let s = FakeSleep {
        clock: t.clock.clone(),
        overrun: secs(5),
        ..FakeSleep::default()
    };
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(t.clone())
        .sleep(s.clone())
        .deadline(secs(2))
        .seed(3)
        .build()
        .unwrap();
    t.push(refused()).push(refused());
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 1, "no attempt after the deadline");
    // Only refused connections: nothing can have reached the server.
    assert!(matches!(
        err,
        Error::Timeout {
            sent: Sent::No,
            limit: TimeoutLimit::CallDeadline,
            ..
        }
    ));
    assert_eq!(err.sent(), Sent::No);
    assert!(err.to_string().contains("was not sent"), "{err}");
}

#[test]
fn deadline_is_configurable_per_client_and_per_call() {
    let t = Scripted::default();
    let s = FakeSleep {
        clock: t.clock.clone(),
        ..FakeSleep::default()
    };
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(t.clone())
        .sleep(s.clone())
        .deadline(secs(10))
        .seed(3)
        .build()
        .unwrap();
    t.status(200, HEALTH);
    block_on(c.get_health().send()).unwrap();
    assert_eq!(
        t.request(0).timeout,
        secs(10),
        "attempt cut to the deadline"
    );

    t.status(201, DATASET);
    let opts = RequestOptions::default().with_deadline(secs(4));
    block_on(c.create_dataset(&create_req()).options(opts.clone()).send()).unwrap();
    assert_eq!(t.request(1).timeout, secs(4), "per-call deadline wins");

    t.status(200, HEALTH);
    block_on(c.with_deadline(secs(90)).get_health().send()).unwrap();
    assert_eq!(t.request(2).timeout, DEFAULT_TIMEOUT);

    // Per-call options: a deadline shorter than the attempt timeout caps it.
    t.status(201, DATASET);
    let opts = RequestOptions::default()
        .with_timeout(secs(20))
        .with_deadline(secs(3));
    block_on(c.create_dataset(&create_req()).options(opts.clone()).send()).unwrap();
    assert_eq!(t.request(3).timeout, secs(3));
}

#[test]
fn default_deadline_never_cuts_a_longer_attempt_timeout_the_caller_asked_for() {
    let (c, t, _) = client();
    t.status(200, HEALTH);
    block_on(c.with_timeout(secs(300)).get_health().send()).unwrap();
    assert_eq!(t.request(0).timeout, secs(300));

    // With an explicit deadline, the deadline wins.
    t.status(200, HEALTH);
    block_on(
        c.with_timeout(secs(300))
            .with_deadline(secs(5))
            .get_health()
            .send(),
    )
    .unwrap();
    assert_eq!(t.request(1).timeout, secs(5));
}

#[test]
fn zero_deadline_is_rejected_before_sending() {
    let (c, t, _) = client();
    let err = block_on(c.with_deadline(Duration::ZERO).get_health().send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    let opts = RequestOptions::default().with_deadline(Duration::ZERO);
    let err = block_on(c.create_dataset(&create_req()).options(opts.clone()).send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    assert_eq!(t.count(), 0);
    let built = Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(Scripted::default())
        .sleep(FakeSleep::default())
        .deadline(Duration::ZERO)
        .build();
    assert!(matches!(built, Err(Error::Build { .. })));
}

#[test]
fn sent_covers_every_attempt_of_the_call() {
    // A reset (may have been applied) then a refused connection: still "maybe".
    let (c, t, _) = client_with(RetryConfig::default().with_max_attempts(2));
    t.push(Err(TransportError::new(TransportErrorKind::Io, "reset")));
    t.push(refused());
    let err = block_on(c.create_dataset(&create_req()).send()).unwrap_err();
    assert_eq!(t.count(), 2);
    assert_eq!(err.sent(), Sent::Maybe);

    // A 503 (not processed) then a refused connection: nothing was applied.
    let (c, t, _) = client_with(RetryConfig::default().with_max_attempts(2));
    t.status(503, "");
    t.push(refused());
    let err = block_on(c.create_dataset(&create_req()).send()).unwrap_err();
    assert_eq!(err.sent(), Sent::No);
}

/// A runtime with no clock at all.
#[derive(Clone, Default)]
struct NoClock {
    delays: Shared<Vec<Duration>>,
}

impl Sleep for NoClock {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.delays.borrow_mut().push(duration);
        Box::pin(async {})
    }
    fn now(&self) -> Option<Duration> {
        None
    }
}

#[test]
fn without_a_clock_the_deadline_counts_waits_and_timed_out_attempts() {
    let t = Scripted::default();
    let s = NoClock::default();
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(t.clone())
        .sleep(s.clone())
        .seed(3)
        .build()
        .unwrap();
    t.push(Ok(response(503, &[("retry-after", "40")], "")));
    t.push(Ok(response(503, &[("retry-after", "40")], "")));
    t.status(200, HEALTH);
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(*s.delays.borrow(), vec![secs(40)]);
    assert_eq!(t.count(), 2);
    assert_eq!(t.request(1).timeout, secs(20), "60 s minus the 40 s waited");
    assert!(err.deadline_exhausted());

    // Timed-out attempts count whole.
    let t = Scripted::default();
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(t.clone())
        .sleep(NoClock::default())
        .seed(3)
        .build()
        .unwrap();
    for _ in 0..4 {
        t.timeout();
    }
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 2);
    assert!(t.request(1).timeout < secs(30));
    assert!(matches!(
        err,
        Error::Timeout {
            limit: TimeoutLimit::CallDeadline,
            ..
        }
    ));
}

/// A runtime with only a wall clock: the default `Sleep::now` uses it.
struct WallOnly(u64);

impl Sleep for WallOnly {
    fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn now_unix_millis(&self) -> Option<u64> {
        Some(self.0)
    }
}

#[test]
fn default_monotonic_clock_falls_back_to_the_wall_clock() {
    assert_eq!(
        WallOnly(1_234_567).now(),
        Some(Duration::from_millis(1_234_567))
    );
    assert_eq!(NoClock::default().now_unix_millis(), None);
}
