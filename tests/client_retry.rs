//! Client behaviour against a scripted transport: retries, delays, budget, Retry-After,
//! idempotency keys, error shapes and redaction.

#[path = "client_support/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use datapilot::error::TimeoutLimit;
use datapilot::model::datasets::CreateDatasetRequest;
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::retry::{RetryConfig, DEFAULT_BASE_DELAY, DEFAULT_MAX_RETRY_AFTER};
use datapilot::transport::{TransportError, TransportErrorKind};
use datapilot::{Error, RequestOptions, Sent};

const DATASET: &str = r#"{"id":"ds_1","name":"n","description":null,"created_at":"2026-11-27T03:38:50.123Z","created_by":"tok_1"}"#;
const HEALTH: &str = r#"{"status":"ok","version":"0.1.0","tree_size":3}"#;

fn create_req() -> CreateDatasetRequest {
    CreateDatasetRequest::new("n")
}

#[test]
fn retries_retryable_statuses_then_succeeds() {
    for status in [408, 429, 502, 503, 504] {
        let (c, t, s) = client();
        t.status(status, "").status(status, "").status(200, HEALTH);
        let h = block_on(c.get_health().send()).unwrap();
        assert_eq!(h.tree_size, 3);
        assert_eq!(t.count(), 3, "status {status}");
        let delays = s.delays.borrow();
        assert_eq!(delays.len(), 2);
        // Full jitter below a doubling ceiling.
        assert!(delays[0] <= DEFAULT_BASE_DELAY);
        assert!(delays[1] <= DEFAULT_BASE_DELAY * 2);
    }
}

#[test]
fn gives_up_after_max_attempts_with_last_error() {
    let (c, t, s) = client_with(RetryConfig::default().with_max_attempts(3));
    for _ in 0..5 {
        t.status(503, &problem(503, "unavailable", "down"));
    }
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 3);
    assert_eq!(s.delays.borrow().len(), 2);
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.code(), Some("unavailable"));
    assert!(err.is_retryable());
}

#[test]
fn never_retries_other_4xx_or_500() {
    for status in [400, 401, 403, 404, 409, 413, 415, 422, 500] {
        let (c, t, s) = client();
        t.status(status, &problem(status, "some_code", "nope"));
        let err = block_on(c.create_dataset(&create_req()).send()).unwrap_err();
        assert_eq!(t.count(), 1, "status {status}");
        assert!(s.delays.borrow().is_empty());
        assert!(!err.is_retryable());
        assert_eq!(err.sent(), Sent::Yes);
    }
}

#[test]
fn retries_idempotency_in_flight_with_backoff_and_the_same_key() {
    // docs/api.md: a 409 `idempotency_in_flight` means a request with this key is still
    // running; the retry gets its answer. Before, the client gave up on it.
    let (c, t, s) = client();
    t.status(409, &problem(409, "idempotency_in_flight", "still running"))
        .status(409, &problem(409, "idempotency_in_flight", "still running"))
        .status(201, DATASET);
    block_on(c.create_dataset(&create_req()).send()).unwrap();
    assert_eq!(t.count(), 3);
    let key = t.header(0, "idempotency-key").unwrap();
    assert_eq!(t.header(2, "idempotency-key").unwrap(), key);
    let delays = s.delays.borrow();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] <= DEFAULT_BASE_DELAY && delays[1] <= DEFAULT_BASE_DELAY * 2);
}

#[test]
fn api_error_shape() {
    let (c, t, _) = client();
    t.push(Ok(response(
        422,
        &[("x-request-id", "hdr-id"), ("content-type", "application/problem+json")],
        r#"{"type":"https://animus.dev/datapilot/problems/gate_not_passed","title":"Gate not passed","status":422,"detail":"input ds_1@sha256:aa misses pii-scan","code":"gate_not_passed","request_id":"body-id","errors":[{"field":"inputs[0]","message":"missing gates"}]}"#,
    )));
    let err = block_on(c.get_health().send()).unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(api.status, 422);
    assert_eq!(api.code.as_deref(), Some("gate_not_passed"));
    assert_eq!(api.title.as_deref(), Some("Gate not passed"));
    assert_eq!(
        api.detail.as_deref(),
        Some("input ds_1@sha256:aa misses pii-scan")
    );
    assert_eq!(api.errors[0].field, "inputs[0]");
    assert_eq!(err.request_id(), Some("body-id"));
    let shown = err.to_string();
    assert!(
        shown.contains("422") && shown.contains("gate_not_passed") && shown.contains("body-id")
    );

    // Not a problem document (a proxy page): status kept, body not copied, header id used.
    let (c, t, _) = client_with(RetryConfig::disabled());
    t.push(Ok(response(
        502,
        &[("x-request-id", "proxy-1")],
        "<html>bad gateway</html>",
    )));
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.code(), None);
    assert_eq!(err.request_id(), Some("proxy-1"));
    assert!(!err.to_string().contains("html"));
}

#[test]
fn decode_error_on_bad_success_body() {
    let (c, t, _) = client();
    t.push(Ok(response(200, &[("x-request-id", "r1")], "{not json")));
    let err = block_on(c.get_health().send()).unwrap_err();
    assert!(matches!(err, Error::Decode { status: 200, .. }));
    assert_eq!(err.request_id(), Some("r1"));
    assert!(!err.is_retryable());
}

#[test]
fn same_idempotency_key_on_every_attempt_and_fresh_per_call() {
    let (c, t, _) = client();
    t.status(503, "")
        .push(Err(TransportError::new(TransportErrorKind::Io, "reset")));
    t.status(201, DATASET);
    block_on(c.create_dataset(&create_req()).send()).unwrap();
    assert_eq!(t.count(), 3);
    let key = t.header(0, "idempotency-key").unwrap();
    assert!(key.starts_with("dp-") && key.len() == 35, "{key}");
    assert_eq!(t.header(1, "idempotency-key").as_ref(), Some(&key));
    assert_eq!(t.header(2, "idempotency-key").as_ref(), Some(&key));
    assert_eq!(t.request(2).body.len(), t.request(0).body.len());

    t.status(201, DATASET);
    block_on(c.create_dataset(&create_req()).send()).unwrap();
    assert_ne!(t.header(3, "idempotency-key").unwrap(), key);
}

#[test]
fn caller_supplied_idempotency_key_is_used_and_validated() {
    let (c, t, _) = client();
    t.status(503, "").status(201, DATASET);
    let opts = RequestOptions::idempotency_key("ci-job-1234/create");
    block_on(c.create_dataset(&create_req()).options(opts.clone()).send()).unwrap();
    assert_eq!(
        t.header(0, "idempotency-key").unwrap(),
        "ci-job-1234/create"
    );
    assert_eq!(
        t.header(1, "idempotency-key").unwrap(),
        "ci-job-1234/create"
    );

    let bad = RequestOptions::idempotency_key("has space");
    let err = block_on(c.create_dataset(&create_req()).options(bad.clone()).send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    assert_eq!(err.sent(), Sent::No);
    assert_eq!(t.count(), 2, "nothing sent for an invalid key");
}

#[test]
fn reads_send_no_idempotency_key_and_standard_headers() {
    let (c, t, _) = client();
    t.status(200, HEALTH);
    block_on(c.get_health().send()).unwrap();
    let r = t.request(0);
    assert_eq!(r.url, "http://127.0.0.1:9/v1/health");
    assert_eq!(r.headers.get("idempotency-key"), None);
    assert_eq!(
        r.headers.get("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        r.headers.get("user-agent"),
        Some(concat!("datapilot-sdk-rust/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.headers.get("accept"), Some("application/json"));
    assert_eq!(r.timeout, datapilot::retry::DEFAULT_TIMEOUT);
}

#[test]
fn retry_after_seconds_and_date_are_honoured_and_capped() {
    let (c, t, s) = client();
    // Longer than both waits, so the cap (not the deadline) is what is tested here.
    let c = c.with_deadline(Duration::from_secs(120));
    t.push(Ok(response(429, &[("retry-after", "3")], "")));
    t.push(Ok(response(503, &[("retry-after", "7200")], "")));
    t.status(200, HEALTH);
    block_on(c.get_health().send()).unwrap();
    assert_eq!(
        *s.delays.borrow(),
        vec![Duration::from_secs(3), DEFAULT_MAX_RETRY_AFTER]
    );

    // HTTP-date, against the injected clock: 1994-11-06T08:49:37Z is 784111777 s.
    let t2 = Scripted::default();
    let s2 = FakeSleep {
        now: Some(784_111_772_000),
        ..FakeSleep::default()
    };
    let c2 = datapilot::Client::builder()
        .base_url("http://127.0.0.1:9")
        .transport(t2.clone())
        .sleep(s2.clone())
        .seed(1)
        .build()
        .unwrap();
    t2.push(Ok(response(
        503,
        &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
        "",
    )));
    t2.status(200, HEALTH);
    block_on(c2.get_health().send()).unwrap();
    assert_eq!(*s2.delays.borrow(), vec![Duration::from_secs(5)]);
}

#[test]
fn retry_after_on_final_error_is_reported() {
    let (c, t, _) = client_with(RetryConfig::disabled());
    t.push(Ok(response(
        429,
        &[("retry-after", "12")],
        &problem(429, "rate_limited", "slow down"),
    )));
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
    assert_eq!(err.code(), Some("rate_limited"));
}

#[test]
fn budget_exhaustion_stops_retries_across_calls() {
    // 25 tokens, 10 per retry: two retries in total, shared by clones.
    let (c, t, s) = client_with(RetryConfig::default().with_budget(25));
    let c2 = c.with_timeout(Duration::from_secs(5));
    for _ in 0..20 {
        t.status(503, "");
    }
    assert!(block_on(c.get_health().send()).is_err());
    assert_eq!(t.count(), 3, "first call: 1 + 2 retries");
    assert!(block_on(c2.get_health().send()).is_err());
    assert_eq!(t.count(), 4, "budget empty: no retry");
    assert_eq!(s.delays.borrow().len(), 2);
    assert_eq!(c.retry_budget_available(), 5);

    // Successes refill it (1 token each); after 5 the next failure may retry once again.
    for _ in 0..5 {
        t.outcomes
            .borrow_mut()
            .push_front(Ok(response(200, &[], HEALTH)));
        block_on(c.get_health().send()).unwrap();
    }
    assert_eq!(c.retry_budget_available(), 10);
    let before = t.count();
    assert!(block_on(c.get_health().send()).is_err());
    assert_eq!(t.count() - before, 2);
}

#[test]
fn transport_errors_are_retried_and_classified() {
    let (c, t, _) = client_with(RetryConfig::default().with_max_attempts(2));
    t.push(Err(TransportError::new(
        TransportErrorKind::Connect,
        "refused",
    )));
    t.push(Err(TransportError::new(
        TransportErrorKind::Connect,
        "refused",
    )));
    let err = block_on(c.get_health().send()).unwrap_err();
    assert_eq!(t.count(), 2);
    assert!(matches!(err, Error::Transport { sent: Sent::No, .. }));

    let (c, t, _) = client_with(RetryConfig::default().with_max_attempts(2));
    t.push(Err(TransportError::new(
        TransportErrorKind::Timeout,
        "slow",
    )));
    t.push(Err(TransportError::new(
        TransportErrorKind::Timeout,
        "slow",
    )));
    let err = block_on(
        c.with_timeout(Duration::from_millis(1500))
            .get_health()
            .send(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Timeout { after, limit: TimeoutLimit::Attempt, .. } if after == Duration::from_millis(1500)
    ));
    assert!(!err.deadline_exhausted());
    assert_eq!(err.sent(), Sent::Maybe);
    assert_eq!(t.request(0).timeout, Duration::from_millis(1500));

    let (c, t, _) = client_with(RetryConfig::disabled());
    t.push(Err(TransportError::new(TransportErrorKind::Io, "reset")));
    let err = block_on(c.get_health().send()).unwrap_err();
    assert!(matches!(
        err,
        Error::Transport {
            sent: Sent::Maybe,
            ..
        }
    ));
    assert_eq!(t.count(), 1);
}

#[test]
fn delays_are_deterministic_for_a_seed_and_below_ceilings() {
    let run = || {
        let (c, t, s) = client_with(RetryConfig::default().with_max_attempts(6));
        for _ in 0..6 {
            t.status(503, "");
        }
        let _ = block_on(c.get_health().send());
        let d = s.delays.borrow().clone();
        d
    };
    let a = run();
    assert_eq!(a, run());
    assert_eq!(a.len(), 5);
    for (i, d) in a.iter().enumerate() {
        assert!(*d <= DEFAULT_BASE_DELAY * (1 << i), "retry {i}: {d:?}");
    }
}

#[test]
fn invalid_input_is_rejected_before_sending() {
    let (c, t, _) = client();
    let req = AppendMetricsRequest::new(vec![MetricPoint::new("loss", 0, f64::NAN)]);
    let err = block_on(c.append_metrics("run_1", &req).send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    let err = block_on(c.get_run("..").send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    let err = block_on(
        c.upload_artifact("run_1", "a", "XYZ", Default::default())
            .send(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Build { .. }));
    assert_eq!(t.count(), 0);
}

#[test]
fn put_without_key_is_retried_only_when_it_cannot_have_been_applied() {
    use datapilot::model::policy::UpdatePolicyRequest;
    let policy = r#"{"version":2,"required_gates":[],"run_token_ttl_seconds":86400,"updated_at":"t","updated_by":"tok_1"}"#;
    let req = UpdatePolicyRequest::default();

    let (c, t, _) = client();
    t.push(Err(TransportError::new(
        TransportErrorKind::Connect,
        "refused",
    )));
    t.status(503, "").status(200, policy);
    block_on(c.update_policy(&req).send()).unwrap();
    assert_eq!(t.count(), 3);
    assert_eq!(
        t.header(0, "idempotency-key"),
        None,
        "the contract takes no key on PUT"
    );

    // A lost response or a gateway timeout may hide an applied update: not retried.
    for outcome in [
        Err(TransportError::new(TransportErrorKind::Io, "reset")),
        Ok(response(504, &[], "")),
    ] {
        let (c, t, _) = client();
        t.push(outcome);
        assert!(block_on(c.update_policy(&req).send()).is_err());
        assert_eq!(t.count(), 1);
    }
}
