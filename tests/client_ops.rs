//! Operation plumbing against a scripted transport: URLs, bodies, pagination, registration
//! status, downloads.

#[path = "client_support/mod.rs"]
mod common;

use common::*;
use datapilot::model::datasets::{FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::gates::{GateOutcome, RecordGateResultRequest};
use datapilot::transport::Method;
use datapilot::Error;

const VERSION: &str = r#"{"dataset_id":"ds_1","digest":"sha256:aa","file_count":1,"total_bytes":3,"note":null,"created_at":"t","created_by":"tok_1","gate_status":"pending","audit_seq":4}"#;

#[test]
fn pager_walks_cursors_to_the_end() {
    let (c, t, _) = client();
    t.status(
        200,
        r#"{"items":[{"seq":0,"leaf":"AA==","leaf_hash":"h0"}],"next_cursor":"c1"}"#,
    );
    t.status(
        200,
        r#"{"items":[{"seq":1,"leaf":"AA==","leaf_hash":"h1"}],"next_cursor":"c2"}"#,
    );
    t.status(
        200,
        r#"{"items":[{"seq":2,"leaf":"AA==","leaf_hash":"h2"}],"next_cursor":null}"#,
    );
    let all = block_on(c.list_ledger_entries(Some(0)).limit(1).collect_all()).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(
        t.request(0).url,
        "http://127.0.0.1:9/v1/ledger/entries?start=0&limit=1"
    );
    // `start` only on the first page: the cursor carries the position.
    assert_eq!(
        t.request(1).url,
        "http://127.0.0.1:9/v1/ledger/entries?limit=1&cursor=c1"
    );
    assert_eq!(
        t.request(2).url,
        "http://127.0.0.1:9/v1/ledger/entries?limit=1&cursor=c2"
    );
}

#[test]
fn pager_keeps_filters_and_stops() {
    let (c, t, _) = client();
    t.status(200, r#"{"items":[],"next_cursor":"x"}"#);
    t.status(200, r#"{"items":[],"next_cursor":null}"#);
    let filter = datapilot::model::audit::AuditEventFilter::new()
        .with_subject("run:run_1")
        .with_action("run.create");
    let mut p = c.list_audit_events(&filter);
    assert!(block_on(p.next_page()).unwrap().is_some());
    assert!(block_on(p.next_page()).unwrap().is_some());
    assert!(p.is_done());
    assert!(block_on(p.next_page()).unwrap().is_none());
    assert_eq!(t.count(), 2);
    assert_eq!(
        t.request(1).url,
        "http://127.0.0.1:9/v1/audit/events?subject=run:run_1&action=run.create&cursor=x"
    );
}

#[test]
fn pager_rejects_a_repeated_cursor() {
    let (c, t, _) = client();
    t.status(200, r#"{"items":[],"next_cursor":"same"}"#);
    t.status(200, r#"{"items":[],"next_cursor":"same"}"#);
    let err = block_on(c.list_datasets().collect_all()).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }));
}

#[test]
fn register_reports_created_or_existing() {
    let (c, t, _) = client();
    t.status(201, VERSION).status(200, VERSION);
    let req = RegisterDatasetVersionRequest::new(
        "sha256:aa",
        vec![FileEntry {
            path: "a.txt".into(),
            sha256: "00".repeat(32),
            size: 3,
        }],
    );
    assert!(
        block_on(c.register_dataset_version("ds_1", &req).send())
            .unwrap()
            .created
    );
    assert!(
        !block_on(c.register_dataset_version("ds_1", &req).send())
            .unwrap()
            .created
    );
    let r = t.request(0);
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.url, "http://127.0.0.1:9/v1/datasets/ds_1/versions");
    assert_eq!(r.headers.get("content-type"), Some("application/json"));
    let body: serde_json::Value =
        serde_json::from_slice(&block_on(r.body.collect()).unwrap()).unwrap();
    // No `note: null`: the server rejects unknown or unexpected fields, so optional fields
    // are omitted.
    assert_eq!(
        body,
        serde_json::json!({"digest":"sha256:aa","files":[{"path":"a.txt","sha256":"00".repeat(32),"size":3}]})
    );
}

#[test]
fn gate_url_encodes_segments() {
    let (c, t, _) = client();
    t.status(500, "");
    let req = RecordGateResultRequest::new("pii-scan", GateOutcome::Passed);
    let _ = block_on(c.record_gate_result("ds_1", "sha256:ab", &req).send());
    assert_eq!(
        t.request(0).url,
        "http://127.0.0.1:9/v1/datasets/ds_1/versions/sha256:ab/gates"
    );
}

#[test]
fn upload_sends_raw_bytes_with_digest_query() {
    let (c, t, _) = client();
    t.status(
        201,
        r#"{"id":"art_1","run_id":"run_1","name":"model/w.bin","sha256":"x","size":3,"created_at":"t","created_by":"run_1","audit_seq":9}"#,
    );
    block_on(
        c.upload_artifact_bytes("run_1", "model/w.bin", b"abc".to_vec())
            .send(),
    )
    .unwrap();
    let r = t.request(0);
    assert_eq!(
        r.url,
        "http://127.0.0.1:9/v1/runs/run_1/artifacts?name=model%2Fw.bin&sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        r.headers.get("content-type"),
        Some("application/octet-stream")
    );
    assert!(r.headers.get("idempotency-key").is_some());
    assert_eq!(block_on(r.body.collect()).unwrap(), b"abc");
}

#[test]
fn download_checks_the_announced_digest() {
    let (c, t, _) = client();
    let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    t.push(Ok(response(200, &[("x-content-sha256", good)], "abc")));
    let content = block_on(c.download_artifact("run_1", "art_1").send()).unwrap();
    assert_eq!(content.bytes, b"abc");
    t.push(Ok(response(200, &[("x-content-sha256", good)], "abd")));
    let err = block_on(c.download_artifact("run_1", "art_1").send()).unwrap_err();
    assert!(matches!(err, Error::Verification(_)));
}

#[test]
fn evidence_and_checkpoint_use_their_media_types() {
    let (c, t, _) = client();
    t.status(200, "PK")
        .status(200, "origin\n1\nAAAA\n\n— origin sig\n");
    assert_eq!(
        block_on(c.export_run_evidence("run_1", Some(5)).send()).unwrap(),
        b"PK"
    );
    assert_eq!(
        t.request(0).url,
        "http://127.0.0.1:9/v1/runs/run_1/evidence?tree_size=5"
    );
    assert_eq!(t.request(0).headers.get("accept"), Some("application/zip"));
    assert!(block_on(c.get_checkpoint().send())
        .unwrap()
        .starts_with("origin\n"));
    assert_eq!(t.request(1).headers.get("accept"), Some("text/plain"));
}

#[test]
fn builder_requires_absolute_base_url_and_transport() {
    assert!(datapilot::Client::builder().build().is_err());
    assert!(datapilot::Client::builder()
        .base_url("/relative")
        .transport(Scripted::default())
        .sleep(FakeSleep::default())
        .build()
        .is_err());
}

/// Reads take per-call options too: the timeout and deadline reach the transport.
#[test]
fn reads_and_pages_take_per_call_options() {
    use std::time::Duration;
    let (c, t, _) = client();
    t.status(200, r#"{"status":"ok","version":"1","tree_size":0}"#);
    block_on(c.get_health().timeout(Duration::from_millis(1500)).send()).unwrap();
    assert_eq!(t.request(0).timeout, Duration::from_millis(1500));
    t.status(200, r#"{"items":[],"next_cursor":null}"#);
    block_on(
        c.list_runs()
            .timeout(Duration::from_millis(700))
            .collect_all(),
    )
    .unwrap();
    assert_eq!(t.request(1).timeout, Duration::from_millis(700));
    // A deadline shorter than the timeout cuts the attempt.
    t.status(200, r#"{"status":"ok","version":"1","tree_size":0}"#);
    block_on(c.get_health().deadline(Duration::from_millis(300)).send()).unwrap();
    assert_eq!(t.request(2).timeout, Duration::from_millis(300));
}

/// An idempotency key is a POST's: on a read or the PUT it is refused before anything is
/// sent, instead of being silently dropped.
#[test]
fn idempotency_key_only_on_posts() {
    let (c, t, _) = client();
    let keyed = datapilot::RequestOptions::idempotency_key("k-1");
    let err = block_on(c.get_run("run_1").options(keyed.clone()).send()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err}");
    let req = datapilot::model::policy::UpdatePolicyRequest::new(["schema"]);
    let err = block_on(c.update_policy(&req).options(keyed.clone()).send()).unwrap_err();
    assert!(
        err.to_string().contains("takes no Idempotency-Key"),
        "{err}"
    );
    let err = block_on(c.list_runs().options(keyed).collect_all()).unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err}");
    assert_eq!(t.count(), 0);
    t.status(
        200,
        r#"{"id":"tok_1","name":"ci","role":"engineer","created_at":"t"}"#,
    );
    block_on(
        c.revoke_token("tok_1")
            .idempotency_key("revoke-tok_1")
            .send(),
    )
    .unwrap();
    assert_eq!(
        t.header(0, "idempotency-key").as_deref(),
        Some("revoke-tok_1")
    );
}

/// `into_stream` yields items across pages, skipping empty pages, and ends after an error.
#[test]
fn pager_stream_yields_items_then_ends() {
    use futures_util::StreamExt;
    let (c, t, _) = client();
    t.status(
        200,
        r#"{"items":[{"seq":0,"leaf":"AA==","leaf_hash":"h0"},{"seq":1,"leaf":"AA==","leaf_hash":"h1"}],"next_cursor":"c1"}"#,
    );
    t.status(200, r#"{"items":[],"next_cursor":"c2"}"#);
    t.status(
        200,
        r#"{"items":[{"seq":2,"leaf":"AA==","leaf_hash":"h2"}],"next_cursor":null}"#,
    );
    let items: Vec<_> = block_on(
        c.list_ledger_entries(None)
            .into_stream()
            .collect::<Vec<_>>(),
    );
    let seqs: Vec<u64> = items.into_iter().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(t.count(), 3);

    t.status(404, &problem(404, "not_found", "no such run"));
    let mut s = c.list_artifacts("run_x").into_stream();
    assert!(matches!(block_on(s.next()), Some(Err(Error::Api(_)))));
    assert!(block_on(s.next()).is_none());
}
