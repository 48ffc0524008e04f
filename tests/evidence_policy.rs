//! The `policy.snapshot` check: version 1 is compared with the initial policy `ledger.init`
//! records when that event is in the proven slice, and otherwise the report says plainly what
//! was not verified; later versions need their `policy.update` event.

#[path = "evidence_support/mod.rs"]
mod common;

use common::*;
use datapilot::evidence::{checks, verify_bundle, VerificationReport};
use datapilot::model::audit::LeafEvent;
use serde_json::{json, Value};

/// The run slice of the test world without the policy update (seq 5).
const RUN_SLICE: [u64; 6] = [3, 4, 6, 7, 8, 9];

fn policy_v1(gates: &[&str], ttl: u64) -> Value {
    json!({ "version": 1, "required_gates": gates, "run_token_ttl_seconds": ttl,
            "updated_at": "2026-11-27T03:40:00.000Z", "updated_by": "system" })
}

/// The test ledger, with `ledger.init` recording `initial` as the server does (or nothing),
/// and without the policy update, so that version 1 is in force.
fn ledger_v1(initial: Option<Value>) -> Vec<LeafEvent> {
    let mut l = ledger();
    let mut data = json!({ "origin": ORIGIN, "verifier": "x" });
    if let Some(p) = initial {
        data["policy"] = p;
    }
    l[0] = event(0, "ledger.init", format!("ledger:{ORIGIN}"), data);
    l[5] = event(
        5,
        "gate.record",
        version_node(),
        json!({ "gate": "license", "status": "passed" }),
    );
    l
}

fn verify(ledger: &[LeafEvent], slice: &[u64], policy: &Value) -> VerificationReport {
    verify_bundle(
        &Parts::run_bundle_of(ledger, 10, slice, policy).zip(),
        &[verifier()],
    )
}

fn policy_check(r: &VerificationReport) -> (bool, String) {
    let c = r.check(checks::POLICY_SNAPSHOT).unwrap();
    (c.passed, c.reason.clone())
}

fn with_init(slice: &[u64]) -> Vec<u64> {
    let mut s = vec![0];
    s.extend_from_slice(slice);
    s
}

/// What `datapilot-server` writes into `ledger.init`'s `data.policy`.
fn server_initial() -> Value {
    json!({ "version": 1, "required_gates": [], "run_token_ttl_seconds": 86400 })
}

#[test]
fn version_1_is_compared_with_ledger_init_when_it_is_in_the_slice() {
    let ledger = ledger_v1(Some(server_initial()));
    let r = verify(&ledger, &with_init(&RUN_SLICE), &policy_v1(&[], 86400));
    assert!(r.ok, "{r:#?}");
    let (_, reason) = policy_check(&r);
    assert!(
        reason.contains("matches the one recorded by ledger.init (seq 0)"),
        "{reason}"
    );

    // Another gate list, another TTL: both caught.
    for policy in [policy_v1(&["pii-scan"], 86400), policy_v1(&[], 60)] {
        let r = verify(&ledger, &with_init(&RUN_SLICE), &policy);
        assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT], "{r:#?}");
        let (_, reason) = policy_check(&r);
        assert!(
            reason.contains("differs from the initial policy"),
            "{reason}"
        );
    }

    // An init event recording some other version as the initial one.
    let odd = ledger_v1(Some(
        json!({ "version": 2, "required_gates": [], "run_token_ttl_seconds": 86400 }),
    ));
    let r = verify(&odd, &with_init(&RUN_SLICE), &policy_v1(&[], 86400));
    assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT]);
}

#[test]
fn version_1_without_ledger_init_in_the_slice_says_what_was_not_verified() {
    // What the server exports: ledger.init is never in a slice.
    let ledger = ledger_v1(Some(server_initial()));
    let r = verify(&ledger, &RUN_SLICE, &policy_v1(&["anything"], 1));
    let (passed, reason) = policy_check(&r);
    assert!(passed && r.ok, "{r:#?}");
    assert!(
        reason.contains("NOT verified") && reason.contains("ledger.init"),
        "{reason}"
    );
    assert!(reason.contains("not in the proven slice"), "{reason}");

    // An init event in the slice that records no policy (an older writer).
    let bare = ledger_v1(None);
    let r = verify(&bare, &with_init(&RUN_SLICE), &policy_v1(&[], 86400));
    let (passed, reason) = policy_check(&r);
    assert!(passed, "{r:#?}");
    assert!(
        reason.contains("NOT verified") && reason.contains("records no initial policy"),
        "{reason}"
    );
}

#[test]
fn version_1_cannot_be_in_force_when_the_slice_holds_a_later_update() {
    // The normal test ledger has policy:2 at seq 5, in the slice.
    let r = verify(
        &ledger(),
        &[3, 4, 5, 6, 7, 8, 9],
        &policy_v1(&["pii-scan"], 86400),
    );
    assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT], "{r:#?}");
    let (_, reason) = policy_check(&r);
    assert!(reason.contains("policy:2 update (seq 5)"), "{reason}");
}

#[test]
fn version_0_and_unbacked_later_versions_fail() {
    let ledger = ledger_v1(Some(server_initial()));
    let mut v0 = policy_v1(&[], 86400);
    v0["version"] = json!(0);
    let r = verify(&ledger, &with_init(&RUN_SLICE), &v0);
    assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT]);
    assert!(policy_check(&r).1.contains("version 0"));

    let mut v3 = policy_v1(&[], 86400);
    v3["version"] = json!(3);
    let r = verify(&ledger, &RUN_SLICE, &v3);
    assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT]);
    assert!(policy_check(&r)
        .1
        .contains("policy:3 update event is not in the proven audit slice"));

    // The untouched version-2 bundle is backed by its event.
    let r = verify_bundle(&Parts::run_bundle().zip(), &[verifier()]);
    assert!(r.ok);
    assert_eq!(policy_check(&r).1, "policy version 2 backed by event 5");
}
