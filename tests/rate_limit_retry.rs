//! The SDK against a rate-limited reference server (`--rate-limit`): a `429 rate_limited` with
//! `Retry-After` is waited out and retried, so a loop that calls too fast slows down instead of
//! failing; with retries off the caller gets the typed error with the wait.

#![cfg(all(not(target_arch = "wasm32"), feature = "native"))]

mod live_server;

use std::time::{Duration, Instant};

use datapilot::retry::RetryConfig;
use datapilot::Client;

const ADMIN: &str = "dpt_rateLimitAdmin0123456789abcdef";

#[tokio::test]
async fn rate_limited_calls_are_retried_after_retry_after() {
    let server = live_server::start_server_with(
        ADMIN,
        "rate",
        &["--rate-limit", "2", "--rate-limit-burst", "2"],
    );
    let client = live_server::client(&server, ADMIN);
    let started = Instant::now();
    for _ in 0..4 {
        let who = client
            .who_am_i()
            .send()
            .await
            .expect("served, after waiting when limited");
        assert_eq!(who.subject, "bootstrap");
    }
    // The burst of 2 went through at once; the 3rd and 4th were refused first and retried.
    assert!(
        client.attempts_sent() > 4,
        "{} attempts",
        client.attempts_sent()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After (1 s) was honoured"
    );

    let no_retry = Client::builder()
        .base_url(&server.url)
        .token(ADMIN)
        .retry(RetryConfig::disabled())
        .build()
        .unwrap();
    let mut refused = None;
    for _ in 0..3 {
        if let Err(e) = no_retry.who_am_i().send().await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a call beyond the burst is refused");
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.code(), Some("rate_limited"));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.is_retryable());
    assert!(!e.to_string().contains(ADMIN), "no token in the message");
}
