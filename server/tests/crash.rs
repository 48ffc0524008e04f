//! Crash safety: concurrent writers, `kill -9` at a random moment, restart on the same data
//! directory. Every write that was acknowledged (2xx received) must be there, with its audit
//! event, and the ledger after the restart must be an extension of a checkpoint fetched
//! before the crash (RFC 9162 consistency proof against both signed roots).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Acked {
    Dataset { id: String },
    Metrics { digest: String, seq: u64 },
    Artifact { id: String, sha256: String },
}

/// Durability rests on these: WAL, and `synchronous=FULL` (2) so a commit is on disk before
/// the response is sent; asserted on the store as the server opens it, writer and readers.
#[test]
fn the_store_opens_with_full_sync_and_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        datapilot_server::store::sqlite::SqliteRepo::open(&tmp.path().join("d.sqlite3")).unwrap();
    for (synchronous, journal_mode, foreign_keys) in store.connection_settings().unwrap() {
        assert_eq!(synchronous, 2, "PRAGMA synchronous must be FULL");
        assert_eq!(journal_mode, "wal");
        assert_eq!(foreign_keys, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("crash").await;
    let digest = admin.version(&ds, "c").await;
    let (run, run_token) = admin.run(&[(&ds, &digest)]).await;

    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    // Writers 0 and 2 create datasets, 1 and 3 append metrics, 4 uploads artifacts.
    for w in 0..5 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let api = if w % 2 == 0 {
            admin.clone()
        } else {
            admin.with_token(&run_token)
        };
        let run = run.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (path, content_type, body) = if w == 4 {
                    let bytes: Vec<u8> = format!("artifact {n} ").repeat(1000 + n).into_bytes();
                    let sha = sha256_hex(&bytes);
                    (format!("/v1/runs/{run}/artifacts?name=a/{n}.bin&sha256={sha}"), "application/octet-stream", bytes)
                } else if w % 2 == 0 {
                    ("/v1/datasets".to_string(), "application/json", serde_json::to_vec(&json!({ "name": format!("w{w}-{n}") })).unwrap())
                } else {
                    let points: Vec<_> = (0..50).map(|i| json!({ "name": "loss", "step": n * 100 + i, "value": 1.0 / (i + 1) as f64 })).collect();
                    (format!("/v1/runs/{run}/metrics"), "application/json", serde_json::to_vec(&json!({ "points": points })).unwrap())
                };
                let url = format!("{}{}", api.base, path);
                let req = api
                    .http
                    .post(url)
                    .header("authorization", format!("Bearer {}", api.token.as_ref().unwrap()))
                    .header("content-type", content_type)
                    .body(body)
                    .timeout(Duration::from_secs(10));
                let Ok(resp) = req.send().await else { break };
                if resp.status().as_u16() != 201 {
                    break;
                }
                // Acknowledged only once the whole response has arrived.
                let Ok(bytes) = resp.bytes().await else { break };
                let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let a = if w == 4 {
                    Acked::Artifact { id: j["id"].as_str().unwrap().to_string(), sha256: j["sha256"].as_str().unwrap().to_string() }
                } else if w % 2 == 0 {
                    Acked::Dataset { id: j["id"].as_str().unwrap().to_string() }
                } else {
                    let seq = j["audit_seq"].as_u64().unwrap();
                    Acked::Metrics { digest: j["digest"].as_str().unwrap().to_string(), seq }
                };
                acked.lock().unwrap().push(a);
            }
        }));
    }

    // A checkpoint taken while the writers run, then the kill at a random later moment.
    let r = datapilot_server::util::random_bytes::<2>();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (size_before, root_before, note_before) = checkpoint(&admin).await;
    tokio::time::sleep(Duration::from_millis(
        100 + (u16::from_le_bytes(r) % 500) as u64,
    ))
    .await;
    srv.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 4,
        "the writers made progress ({} acked)",
        acked.len()
    );

    // Restart on the same directory.
    let srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    for a in &acked {
        match a {
            Acked::Dataset { id } => {
                assert_eq!(
                    admin.get(&format!("/v1/datasets/{id}")).await.status,
                    200,
                    "dataset {id} lost"
                );
                let ev = admin
                    .get(&format!("/v1/audit/events?subject=dataset:{id}"))
                    .await
                    .json();
                assert_eq!(
                    ev["items"][0]["action"], "dataset.create",
                    "event of {id} lost"
                );
            }
            Acked::Metrics { digest, seq } => {
                let ev = admin.get(&format!("/v1/audit/events/{seq}")).await.json();
                assert_eq!(ev["action"], "metrics.append");
                assert_eq!(ev["data"]["digest"], *digest);
            }
            Acked::Artifact { id, sha256 } => {
                let d = admin
                    .get(&format!("/v1/runs/{run}/artifacts/{id}/content"))
                    .await;
                assert_eq!(d.status, 200, "artifact {id} lost");
                assert_eq!(sha256_hex(&d.body), *sha256, "artifact {id} damaged");
            }
        }
    }
    assert!(
        acked.iter().any(|a| matches!(a, Acked::Artifact { .. })),
        "the uploader made progress"
    );
    check_rows_events_and_blobs(&dir);

    // The new signed head extends the one seen before the crash.
    let (size_after, root_after, _) = checkpoint(&admin).await;
    assert!(size_after >= size_before);
    let max_seq = acked
        .iter()
        .filter_map(|a| match a {
            Acked::Metrics { seq, .. } => Some(*seq),
            Acked::Dataset { .. } | Acked::Artifact { .. } => None,
        })
        .max();
    assert!(max_seq.is_none_or(|m| size_after > m));
    let p = admin
        .get(&format!(
            "/v1/ledger/proofs/consistency?from={size_before}&to={size_after}"
        ))
        .await
        .json();
    let b64 = base64::engine::general_purpose::STANDARD;
    let proof: Vec<[u8; 32]> = p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    datapilot::merkle::verify_consistency(
        size_before,
        size_after,
        &proof,
        &root_before,
        &root_after,
    )
    .expect("post-crash ledger extends the pre-crash checkpoint");
    // The pre-crash checkpoint still verifies with the (unchanged) published key.
    let v = verifier(&admin).await;
    datapilot::checkpoint::open_checkpoint(&note_before, &[v]).unwrap();
    // And the ledger is whole: every leaf is there and hashes to the signed root.
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size_after {
        let page = admin
            .get(&format!("/v1/ledger/entries?start={start}&limit=500"))
            .await
            .json();
        for e in page["items"].as_array().unwrap() {
            leaves.push(datapilot::merkle::leaf_hash(
                &b64.decode(e["leaf"].as_str().unwrap()).unwrap(),
            ));
        }
        start = leaves.len() as u64;
    }
    assert_eq!(
        datapilot::merkle::root_from_leaf_hashes(&leaves),
        root_after
    );
    eprintln!(
        "crash test: {} acknowledged writes survived; tree {size_before} -> {size_after}",
        acked.len()
    );
}

/// Straight from the files after the crash: every stored row has its audit event (and every
/// write event its row), and every artifact's blob is there with its SHA-256 and size.
fn check_rows_events_and_blobs(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(dir.join("datapilot.sqlite3")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    // (table, audit_seq column, action, subject expression)
    let tables = [
        (
            "datasets",
            "audit_seq",
            "dataset.create",
            "'dataset:' || t.id",
        ),
        (
            "dataset_versions",
            "audit_seq",
            "dataset_version.register",
            "'dataset_version:' || t.dataset_id || '@' || t.digest",
        ),
        (
            "gate_results",
            "audit_seq",
            "gate.record",
            "'dataset_version:' || t.dataset_id || '@' || t.digest",
        ),
        ("runs", "audit_seq", "run.create", "'run:' || t.id"),
        (
            "metric_batches",
            "audit_seq",
            "metrics.append",
            "'run:' || t.run_id",
        ),
        (
            "artifacts",
            "audit_seq",
            "artifact.upload",
            "'run:' || t.run_id",
        ),
        ("tokens", "audit_seq", "token.create", "'token:' || t.id"),
    ];
    for (table, col, action, subject) in tables {
        let rows = count(&format!("SELECT COUNT(*) FROM {table}"));
        let without = count(&format!(
            "SELECT COUNT(*) FROM {table} t LEFT JOIN audit_events e
             ON e.seq = t.{col} AND e.action = '{action}' AND e.subject = {subject}
             WHERE e.seq IS NULL"
        ));
        assert_eq!(
            without, 0,
            "{table}: {without} of {rows} rows without their event"
        );
        let events = count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = '{action}'"
        ));
        assert_eq!(
            events, rows,
            "{table}: {events} {action} events for {rows} rows"
        );
    }
    let no_event = count(
        "SELECT COUNT(*) FROM runs t LEFT JOIN audit_events e ON e.seq = t.finish_seq
         AND e.action = 'run.finish' WHERE t.finish_seq IS NOT NULL AND e.seq IS NULL",
    );
    assert_eq!(no_event, 0, "finished runs without their run.finish event");
    let mut st = conn
        .prepare("SELECT id, sha256, size FROM artifacts")
        .unwrap();
    let arts: Vec<(String, String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!arts.is_empty());
    for (id, sha, size) in arts {
        let path = dir.join("blobs/sha256").join(&sha[..2]).join(&sha);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("blob of {id}: {e}"));
        assert_eq!(sha256_hex(&bytes), sha, "blob of {id} damaged");
        assert_eq!(bytes.len() as i64, size, "blob of {id} has the wrong size");
    }
}

/// The idempotency record of a write commits with the write: a process that dies right after
/// the commit (before the HTTP layer could do anything more) leaves a key that replays on the
/// retry, never an unused key that would perform the write twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_write_replays_after_a_crash_right_after_its_commit() {
    use datapilot_server::store::sqlite::SqliteRepo;
    use datapilot_server::store::{
        ActorRef, IdemKey, IdemLookup, InitParams, PageReq, Store, Writer,
    };
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("datapilot.sqlite3");
    let init = InitParams {
        origin: "datapilot.local/ledger".into(),
        verifier: "test".into(),
        bootstrap_secret_hash: "0".repeat(64),
    };
    let key = IdemKey {
        scope: "token:tok_test POST /v1/datasets".into(),
        key: "k-1".into(),
        fingerprint: "f".repeat(64),
    };
    let created = {
        let store = Store::new(Arc::new(SqliteRepo::open(&db).unwrap()));
        store.init(&init).await.unwrap();
        assert!(matches!(
            store
                .idem_lookup(&key.scope, &key.key, &key.fingerprint)
                .await
                .unwrap(),
            IdemLookup::Fresh
        ));
        let w = Writer {
            actor: ActorRef {
                kind: "token",
                id: "tok_test".into(),
                role: "engineer",
            },
            idem: Some(key.clone()),
        };
        store.create_dataset(&w, "crashy", None).await.unwrap()
        // Dropped here: the "process" dies before the middleware completes anything.
    };
    let store = Store::new(Arc::new(SqliteRepo::open(&db).unwrap()));
    assert!(!store.init(&init).await.unwrap());
    match store
        .idem_lookup(&key.scope, &key.key, &key.fingerprint)
        .await
        .unwrap()
    {
        IdemLookup::Replay(stored) => {
            assert_eq!(stored.status, 201);
            assert_eq!(stored.body, serde_json::to_vec(&created).unwrap());
            assert_eq!(stored.secret_of, None);
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    let (events, _) = store
        .list_audit(
            None,
            Some("dataset.create"),
            PageReq {
                limit: 10,
                after: None,
                desc: false,
                scope: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

/// The same over HTTP: `kill -9` right after an acknowledged keyed write, restart, retry with
/// the key: the first answer comes back and nothing is written twice.
#[tokio::test]
async fn keyed_retry_after_kill9_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let first = admin
        .post_idem("/v1/datasets", "crash-key", json!({ "name": "once" }))
        .await;
    assert_eq!(first.status, 201, "{}", first.text());
    srv.kill9();
    let srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let again = admin
        .post_idem("/v1/datasets", "crash-key", json!({ "name": "once" }))
        .await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    let ev = admin
        .get("/v1/audit/events?action=dataset.create")
        .await
        .json();
    assert_eq!(ev["items"].as_array().unwrap().len(), 1);
}
