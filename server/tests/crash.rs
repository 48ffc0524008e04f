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
    for w in 0..4 {
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
                let (path, body) = if w % 2 == 0 {
                    ("/v1/datasets".to_string(), json!({ "name": format!("w{w}-{n}") }))
                } else {
                    let points: Vec<_> = (0..50).map(|i| json!({ "name": "loss", "step": n * 100 + i, "value": 1.0 / (i + 1) as f64 })).collect();
                    (format!("/v1/runs/{run}/metrics"), json!({ "points": points }))
                };
                let url = format!("{}{}", api.base, path);
                let req = api
                    .http
                    .post(url)
                    .header("authorization", format!("Bearer {}", api.token.as_ref().unwrap()))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap())
                    .timeout(Duration::from_secs(10));
                let Ok(resp) = req.send().await else { break };
                if resp.status().as_u16() != 201 {
                    break;
                }
                // Acknowledged only once the whole response has arrived.
                let Ok(bytes) = resp.bytes().await else { break };
                let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let a = if w % 2 == 0 {
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
        }
    }

    // The new signed head extends the one seen before the crash.
    let (size_after, root_after, _) = checkpoint(&admin).await;
    assert!(size_after >= size_before);
    let max_seq = acked
        .iter()
        .filter_map(|a| match a {
            Acked::Metrics { seq, .. } => Some(*seq),
            Acked::Dataset { .. } => None,
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

/// The idempotency record of a write commits with the write: a process that dies right after
/// the commit (before the HTTP layer could do anything more) leaves a key that replays on the
/// retry, never a released key that would perform the write twice.
#[test]
fn a_keyed_write_replays_after_a_crash_right_after_its_commit() {
    use datapilot_server::store::sqlite::SqliteStore;
    use datapilot_server::store::{ActorRef, IdemBegin, IdemKey, InitParams, Store, Writer};

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
        let store = SqliteStore::open(&db).unwrap();
        store.init(&init).unwrap();
        assert!(matches!(
            store
                .idem_begin(&key.scope, &key.key, &key.fingerprint)
                .unwrap(),
            IdemBegin::Proceed
        ));
        let w = Writer {
            actor: ActorRef {
                kind: "token",
                id: "tok_test".into(),
                role: "engineer",
            },
            idem: Some(key.clone()),
        };
        store.create_dataset(&w, "crashy", None).unwrap()
        // Dropped here: the "process" dies before the middleware completes anything.
    };
    // Restart: start-up clears keys still in flight; this one is not.
    let store = SqliteStore::open(&db).unwrap();
    assert!(!store.init(&init).unwrap());
    match store
        .idem_begin(&key.scope, &key.key, &key.fingerprint)
        .unwrap()
    {
        IdemBegin::Replay(stored) => {
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
            datapilot_server::store::PageReq {
                limit: 10,
                after: None,
            },
        )
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
