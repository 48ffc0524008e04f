//! A database that is down or frozen, and an object store that is down: the server answers
//! `503 unavailable` with `Retry-After` and a problem+json body in bounded time, writes
//! nothing half, and serves again once they are back. PostgreSQL and Garage are real, started
//! by the test; "frozen" is `SIGSTOP` of every PostgreSQL process (connections open, no answers).

mod common;
#[path = "common/garage.rs"]
mod garage;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A 503 problem with `Retry-After`, answered within `bound`.
async fn assert_unavailable(r: Resp, took: Duration, bound: Duration) {
    r.assert_problem(503, "unavailable");
    assert!(r.header("retry-after").is_some(), "Retry-After");
    assert!(took < bound, "answered after {took:?}, bound {bound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outages_are_503s_not_hangs() {
    let pg = pg::PgCluster::start_fast();
    let mut s3 = garage::Garage::start();
    std::env::set_var("DATAPILOT_S3_ACCESS_KEY_ID", &s3.key_id);
    std::env::set_var("DATAPILOT_S3_SECRET_ACCESS_KEY", &s3.secret);
    let srv = Server::start_with(&[
        "--database",
        &pg.url(pg::DB),
        "--blobs",
        &s3.spec("faults/"),
        "--db-timeout",
        "2",
    ]);
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("before").await;
    let digest = admin.version(&ds, "v").await;
    let (run, token) = admin.run(&[(&ds, &digest)]).await;
    let rt = admin.with_token(&token);
    let (size_before, _, _) = checkpoint(&admin).await;
    let bound = Duration::from_secs(10);

    // Frozen database: reads and writes give up after the database timeout.
    pg.signal_all("STOP");
    let t = Instant::now();
    let r = admin
        .post("/v1/datasets", json!({ "name": "frozen" }))
        .await;
    assert_unavailable(r, t.elapsed(), bound).await;
    let t = Instant::now();
    let r = admin.get("/v1/health").await;
    assert_unavailable(r, t.elapsed(), bound).await;
    pg.signal_all("CONT");
    // The write that timed out may or may not have been applied (its answer said so); whatever
    // happened, the ledger is whole: dense, its root from its leaves, and the write is there
    // once or not at all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (size, root, _) = checkpoint(&admin).await;
    assert!(
        size == size_before || size == size_before + 1,
        "{size_before} -> {size}"
    );
    let entries = admin
        .get("/v1/ledger/entries?start=0&limit=200")
        .await
        .json();
    let leaves: Vec<[u8; 32]> = entries["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(size as usize)
        .map(|e| {
            use base64::Engine;
            datapilot::merkle::leaf_hash(
                &base64::engine::general_purpose::STANDARD
                    .decode(e["leaf"].as_str().unwrap())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(datapilot::merkle::root_from_leaf_hashes(&leaves), root);

    // Stopped database: refused connections are 503s too; back once it is.
    pg.stop_server();
    let t = Instant::now();
    let r = admin.post("/v1/datasets", json!({ "name": "down" })).await;
    assert_unavailable(r, t.elapsed(), bound).await;
    pg.restart_server();
    let mut back = false;
    for _ in 0..50 {
        if admin
            .post("/v1/datasets", json!({ "name": "after" }))
            .await
            .status
            == 201
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the server writes again once the database is back");

    // Object store down: an upload is a 503, and no artifact row or event is written.
    let (size_before, _, _) = checkpoint(&admin).await;
    s3.stop();
    let body = vec![3u8; 100_000];
    let t = Instant::now();
    let r = rt.upload(&run, "m.bin", &body, &sha256_hex(&body)).await;
    assert_unavailable(r, t.elapsed(), Duration::from_secs(30)).await;
    let (size_after, _, _) = checkpoint(&admin).await;
    assert_eq!(size_after, size_before, "no event for a failed upload");
    let arts = admin.get(&format!("/v1/runs/{run}/artifacts")).await.json();
    assert_eq!(arts["items"].as_array().unwrap().len(), 0);
}
