//! An error code this SDK version does not know (docs/compatibility.md: the set is open) is
//! the generic API error with the code kept as text, decided by its HTTP status; an unknown
//! field in a response is ignored.

#[path = "client_support/mod.rs"]
mod common;

use common::*;
use datapilot::Error;

#[test]
fn an_unknown_problem_code_is_a_generic_api_error() {
    let (c, t, _) = client();
    t.push(Ok(response(
        418,
        &[("content-type", "application/problem+json")],
        &problem(418, "brand_new_code", "a v1.9 server refuses this"),
    )));
    let e = block_on(c.get_run("run_01JD8Y7B2C4D6E8F0G1H3J5K7M").send()).unwrap_err();
    assert!(matches!(e, Error::Api(_)), "{e:?}");
    assert_eq!(e.code(), Some("brand_new_code"));
    assert_eq!(e.status(), Some(418));
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("a v1.9 server refuses this"), "{e}");
    assert_eq!(t.count(), 1, "a 4xx with an unknown code is not retried");
}

#[test]
fn an_unknown_code_on_a_retryable_status_is_retried_like_that_status() {
    let (c, t, _) = client();
    for _ in 0..2 {
        t.push(Ok(response(
            503,
            &[("content-type", "application/problem+json")],
            &problem(503, "storage_rebalancing", "try again"),
        )));
    }
    t.status(
        200,
        r#"{"status":"ok","version":"1.9.0","tree_size":3,"brand_new_field":{"x":1}}"#,
    );
    let h = block_on(c.get_health().send()).unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!(t.count(), 3);
}
