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
    let filter = datapilot::model::audit::AuditEventFilter {
        subject: Some("run:run_1".into()),
        action: Some("run.create".into()),
    };
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
    let req = RegisterDatasetVersionRequest {
        digest: "sha256:aa".into(),
        files: vec![FileEntry {
            path: "a.txt".into(),
            sha256: "00".repeat(32),
            size: 3,
        }],
        note: None,
    };
    assert!(
        block_on(c.register_dataset_version("ds_1", &req))
            .unwrap()
            .created
    );
    assert!(
        !block_on(c.register_dataset_version("ds_1", &req))
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
    let req = RecordGateResultRequest {
        gate: "pii-scan".into(),
        status: GateOutcome::Passed,
        details: None,
    };
    let _ = block_on(c.record_gate_result("ds_1", "sha256:ab", &req));
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
    block_on(c.upload_artifact_bytes("run_1", "model/w.bin", b"abc".to_vec())).unwrap();
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
    let content = block_on(c.download_artifact("run_1", "art_1")).unwrap();
    assert_eq!(content.bytes, b"abc");
    t.push(Ok(response(200, &[("x-content-sha256", good)], "abd")));
    let err = block_on(c.download_artifact("run_1", "art_1")).unwrap_err();
    assert!(matches!(err, Error::Verification(_)));
}

#[test]
fn evidence_and_checkpoint_use_their_media_types() {
    let (c, t, _) = client();
    t.status(200, "PK")
        .status(200, "origin\n1\nAAAA\n\n— origin sig\n");
    assert_eq!(
        block_on(c.export_run_evidence("run_1", Some(5))).unwrap(),
        b"PK"
    );
    assert_eq!(
        t.request(0).url,
        "http://127.0.0.1:9/v1/runs/run_1/evidence?tree_size=5"
    );
    assert_eq!(t.request(0).headers.get("accept"), Some("application/zip"));
    assert!(block_on(c.get_checkpoint())
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
