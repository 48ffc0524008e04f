//! Dashboard queries over real HTTP: `order=asc|desc` on the lists and cursors bound to the
//! list (operation, path, order and filters) that made them. Runs on SQLite in cargo-test and
//! again on PostgreSQL in the server-postgres-s3 stage.

mod common;

use common::*;
use serde_json::Value;

fn names(r: &Resp, field: &str) -> Vec<String> {
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

/// Every item of a list walked page by page with `limit`, following `next_cursor`.
async fn walk(api: &Api, path: &str, limit: u32, field: &str) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = api.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        out.extend(names(&r, field));
        match r.json()["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn lists_order_newest_first_and_cursors_stay_with_their_list() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    let mut datasets = Vec::new();
    for i in 0..5 {
        datasets.push(api.dataset(&format!("set-{i}")).await);
    }
    let ds = &datasets[0];
    let digest = api.version(ds, "v1").await;
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(api.run(&[(ds, &digest)]).await.0);
    }

    // Datasets and runs: ascending by default and with order=asc, descending with order=desc,
    // page by page (limit 2: three pages) as well as in one page.
    let mut rev = datasets.clone();
    rev.reverse();
    assert_eq!(walk(&api, "/v1/datasets", 2, "id").await, datasets);
    assert_eq!(
        walk(&api, "/v1/datasets?order=asc", 2, "id").await,
        datasets
    );
    assert_eq!(walk(&api, "/v1/datasets?order=desc", 2, "id").await, rev);
    let mut rev_runs = runs.clone();
    rev_runs.reverse();
    assert_eq!(walk(&api, "/v1/runs?order=desc", 2, "id").await, rev_runs);
    assert_eq!(walk(&api, "/v1/runs?order=desc", 500, "id").await, rev_runs);
    assert_eq!(walk(&api, "/v1/runs", 2, "id").await, runs);
    let latest = api.get("/v1/runs?order=desc&limit=1").await;
    assert_eq!(names(&latest, "id"), vec![runs[4].clone()]);

    // The audit list and a run's metrics take the same parameter.
    let asc = walk(&api, "/v1/audit/events", 3, "action").await;
    let mut desc = walk(&api, "/v1/audit/events?order=desc", 3, "action").await;
    desc.reverse();
    assert_eq!(asc, desc);
    assert!(asc.len() > 10, "{asc:?}");

    // A bad order is a validation error.
    api.get("/v1/runs?order=newest")
        .await
        .assert_problem(400, "validation_failed");

    // Cursor misuse: a cursor works only with the request that made it.
    let first = api.get("/v1/runs?order=desc&limit=2").await;
    let cursor = first.json()["next_cursor"].as_str().unwrap().to_string();
    let ok = api
        .get(&format!("/v1/runs?order=desc&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(names(&ok, "id"), vec![runs[2].clone(), runs[1].clone()]);
    // The limit may change between pages.
    let ok = api
        .get(&format!("/v1/runs?order=desc&limit=5&cursor={cursor}"))
        .await;
    assert_eq!(names(&ok, "id"), rev_runs[2..].to_vec());
    for misuse in [
        // another order
        format!("/v1/runs?cursor={cursor}"),
        format!("/v1/runs?order=asc&cursor={cursor}"),
        // another list
        format!("/v1/datasets?order=desc&cursor={cursor}"),
        format!("/v1/tokens?order=desc&cursor={cursor}"),
        format!("/v1/audit/events?order=desc&cursor={cursor}"),
        // another parent resource
        format!("/v1/runs/{}/metrics?order=desc&cursor={cursor}", runs[0]),
        // other filters
        format!("/v1/audit/events?order=desc&action=run.create&cursor={cursor}"),
    ] {
        let r = api.get(&misuse).await;
        r.assert_problem(400, "bad_request");
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("cursor"),
            "{misuse}: {}",
            r.text()
        );
    }
    // A filtered list's cursor works with the same filter only.
    let filtered = api
        .get("/v1/audit/events?action=run.create&limit=2&order=desc")
        .await;
    let fc = filtered.json()["next_cursor"].as_str().unwrap().to_string();
    let next = api
        .get(&format!(
            "/v1/audit/events?action=run.create&limit=2&order=desc&cursor={fc}"
        ))
        .await;
    assert_eq!(next.status, 200, "{}", next.text());
    let all: Vec<Value> = next.json()["items"].as_array().unwrap().clone();
    assert!(all.iter().all(|e| e["action"] == "run.create"));
    api.get(&format!("/v1/audit/events?limit=2&order=desc&cursor={fc}"))
        .await
        .assert_problem(400, "bad_request");
    // The ledger's entries list (position by `start` on the first page) keeps working and
    // refuses the other lists' cursors.
    let led = api.get("/v1/ledger/entries?limit=2").await;
    let lc = led.json()["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(
        api.get(&format!("/v1/ledger/entries?limit=2&cursor={lc}"))
            .await
            .status,
        200
    );
    api.get(&format!("/v1/ledger/entries?cursor={cursor}"))
        .await
        .assert_problem(400, "bad_request");
    api.get(&format!("/v1/runs?cursor={lc}"))
        .await
        .assert_problem(400, "bad_request");
}
