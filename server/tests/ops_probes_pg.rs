//! Readiness vs liveness (issue 15), shown where it matters: the database goes away under a
//! running server. `/livez` keeps answering 200 (a restart would not bring the database back),
//! `/readyz` answers 503 problem+json with `Retry-After` (take the replica out of the load
//! balancer), `/metrics` still exports the request counters, and readiness comes back with the
//! database. Two outages on a throwaway PostgreSQL cluster: stopped (connections refused) and
//! frozen with SIGSTOP (connections accepted, never answered: the 3 s readiness timeout).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;

async fn ready_again(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.get("/readyz").await;
        if r.status == 200 {
            assert_eq!(r.text(), "ready\n");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_not_ready(r: &Resp, why: &str) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(r.json()["code"], "unavailable");
    assert!(
        r.json()["detail"].as_str().unwrap_or("").contains(why),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn readiness_follows_the_database_liveness_does_not() {
    let cluster = pg::PgCluster::start_fast();
    let db = cluster.fresh_db();
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_in(&tmp.path().join("data"), &["--database", &db]);
    let anon = srv.anon();
    let admin = srv.client(ADMIN);
    admin.dataset("before-the-outage").await;
    assert_eq!(anon.get("/livez").await.status, 200);
    assert_eq!(anon.get("/readyz").await.status, 200);

    // 1. The database is stopped: connections are refused.
    cluster.stop_server();
    assert_not_ready(&anon.get("/readyz").await, "the database is not available");
    let live = anon.get("/livez").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.text(), "ok\n");
    // The request counters are still exported (the state gauges are stale, and logged so).
    let m = anon.get("/metrics").await;
    assert_eq!(m.status, 200, "{}", m.text());
    assert!(
        m.text().contains(
            "datapilot_http_requests_total{operation=\"POST /v1/datasets\",status=\"201\"} 1"
        ),
        "{}",
        m.text()
    );
    cluster.restart_server();
    ready_again(&anon).await;
    admin.dataset("after-the-restart").await;

    // 2. The database hangs: connections are accepted and never answered. Readiness gives up
    // after its 3 s timeout instead of hanging the probe.
    cluster.signal_all("STOP");
    let t = Instant::now();
    let r = anon.get("/readyz").await;
    let took = t.elapsed();
    let live = anon.get("/livez").await.status;
    cluster.signal_all("CONT");
    assert_not_ready(&r, "did not answer within 3 s");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert_eq!(live, 200);
    ready_again(&anon).await;
}
