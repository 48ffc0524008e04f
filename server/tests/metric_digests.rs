//! An auditor recomputes each metric batch's digest (the `digest` of its `metrics.append`
//! ledger event: SHA-256 of the JCS of the submitted points) from what `listMetrics` returns:
//! points sent without a `time` are listed with `time: null` (the receive time is
//! `received_at`), so the listed points are exactly the hashed ones.

mod common;

use common::*;
use serde_json::{json, Map, Value};

#[tokio::test]
async fn batch_digests_are_recomputable_from_list_metrics() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    let ds = api.dataset("digests").await;
    let v = api.version(&ds, "d").await;
    let (run, token) = api.run(&[(&ds, &v)]).await;
    let run_api = api.with_token(&token);
    let batches = [
        json!([{ "name": "loss", "step": 0, "value": 0.5 },
               { "name": "loss", "step": 1, "value": 0.25, "time": "2026-11-27T04:01:02.405Z" },
               { "name": "acc", "step": 1, "value": 1e-7 }]),
        json!([{ "name": "loss", "step": 2, "value": 0.1, "time": "2026-11-27T05:00:00.000Z" }]),
    ];
    for b in &batches {
        let r = run_api
            .post(&format!("/v1/runs/{run}/metrics"), json!({ "points": b }))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let listed = api
        .get(&format!("/v1/runs/{run}/metrics?limit=500"))
        .await
        .json();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items[0]["time"].is_null(),
        "no time sent, none listed: {}",
        items[0]
    );
    assert!(items[0]["received_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(items[1]["time"], "2026-11-27T04:01:02.405Z");

    // Rebuild each batch's points array from the listing and hash it as the server did.
    let mut rebuilt: Vec<Vec<Value>> = vec![Vec::new(); 2];
    for p in items {
        let mut o = Map::new();
        for k in ["name", "step", "value"] {
            o.insert(k.into(), p[k].clone());
        }
        if !p["time"].is_null() {
            o.insert("time".into(), p["time"].clone());
        }
        rebuilt[p["batch"].as_u64().unwrap() as usize].push(Value::Object(o));
    }
    let events = api
        .get(&format!(
            "/v1/audit/events?action=metrics.append&subject=run:{run}"
        ))
        .await
        .json();
    let events = events["items"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        let b = e["data"]["batch"].as_u64().unwrap() as usize;
        let jcs = datapilot::jcs::to_canonical_vec(&rebuilt[b]).unwrap();
        assert_eq!(
            e["data"]["digest"].as_str().unwrap(),
            format!("sha256:{}", sha256_hex(&jcs)),
            "batch {b} digest recomputed from listMetrics"
        );
    }
}
