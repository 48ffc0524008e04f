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

/// Finishes `run` (with its token) as succeeded, producing `outputs` (`(dataset_id, digest)`).
async fn finish(api: &Api, token: &str, run: &str, outputs: &[(&str, &str)]) {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|(d, g)| serde_json::json!({ "dataset_id": d, "digest": g }))
        .collect();
    let r = api
        .with_token(token)
        .post(
            &format!("/v1/runs/{run}/finish"),
            serde_json::json!({ "status": "succeeded", "outputs": outputs }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A run on `inputs` with a commit and image of its own.
async fn run_with(api: &Api, inputs: &[(&str, &str)], commit: char) -> (String, String) {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(d, g)| serde_json::json!({ "dataset_id": d, "digest": g }))
        .collect();
    let r = api
        .post(
            "/v1/runs",
            serde_json::json!({ "name": format!("run-{commit}"), "inputs": inputs,
                "git_commit": commit.to_string().repeat(40),
                "image_digest": format!("sha256:{}", commit.to_string().repeat(64)) }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    (
        j["run"]["id"].as_str().unwrap().to_string(),
        j["run_token"].as_str().unwrap().to_string(),
    )
}

fn ids(r: &Resp) -> Vec<String> {
    names(r, "id")
}

#[tokio::test]
async fn run_filters_dataset_by_name_artifacts_by_content() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let eng_secret = admin.token("engineer").await;
    let eng = srv.client(&eng_secret);
    let eng_id = eng.get("/v1/whoami").await.json()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = admin.dataset("raw").await;
    let v1 = admin.version(&raw, "raw-1").await;
    let v2 = admin.version(&raw, "raw-2").await;
    let clean = admin.dataset("clean").await;
    let c1 = admin.version(&clean, "clean-1").await;

    let (a, ta) = run_with(&admin, &[(&raw, &v1)], 'a').await;
    let (b, _) = run_with(&eng, &[(&raw, &v2)], 'b').await;
    // created_at has millisecond precision: the next run is created strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (c, tc) = run_with(&eng, &[(&raw, &v1), (&clean, &c1)], 'c').await;
    finish(&admin, &ta, &a, &[(&clean, &c1)]).await;
    finish(&admin, &tc, &c, &[]).await;
    let created_c = admin.get(&format!("/v1/runs/{c}")).await.json()["created_at"]
        .as_str()
        .unwrap()
        .to_string();

    let q = |s: String| {
        let admin = admin.clone();
        async move { ids(&admin.get(&s).await) }
    };
    let enc = |s: &str| s.replace(':', "%3A").replace('@', "%40");
    assert_eq!(
        q(format!("/v1/runs?input={}", enc(&format!("{raw}@{v1}")))).await,
        vec![a.clone(), c.clone()]
    );
    assert_eq!(
        q(format!(
            "/v1/runs?input={}&order=desc",
            enc(&format!("{raw}@{v1}"))
        ))
        .await,
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?output={}", enc(&format!("{clean}@{c1}")))).await,
        vec![a.clone()]
    );
    // Filters combined (the version filters drive the query: each path once).
    assert_eq!(
        q(format!(
            "/v1/runs?input={}&output={}",
            enc(&format!("{raw}@{v1}")),
            enc(&format!("{clean}@{c1}"))
        ))
        .await,
        vec![a.clone()]
    );
    assert_eq!(
        q(format!(
            "/v1/runs?input={}&status=succeeded&created_by={eng_id}&order=desc",
            enc(&format!("{raw}@{v1}"))
        ))
        .await,
        vec![c.clone()]
    );
    assert_eq!(
        q(format!(
            "/v1/runs?output={}&status=running",
            enc(&format!("{clean}@{c1}"))
        ))
        .await,
        Vec::<String>::new()
    );
    assert_eq!(q("/v1/runs?status=running".into()).await, vec![b.clone()]);
    assert_eq!(
        q("/v1/runs?status=succeeded".into()).await,
        vec![a.clone(), c.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?created_by={eng_id}")).await,
        vec![b.clone(), c.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?created_by={eng_id}&status=running")).await,
        vec![b.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?git_commit={}", "b".repeat(40))).await,
        vec![b.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?image_digest=sha256%3A{}", "c".repeat(64))).await,
        vec![c.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?created_after={}", enc(&created_c))).await,
        vec![c.clone()]
    );
    assert_eq!(
        q(format!("/v1/runs?created_before={}", enc(&created_c))).await,
        vec![a.clone(), b.clone()]
    );
    assert!(q("/v1/runs?created_after=2999-01-01T00%3A00%3A00Z".into())
        .await
        .is_empty());
    for bad in [
        "/v1/runs?status=done",
        "/v1/runs?input=nope",
        "/v1/runs?created_after=yesterday",
        "/v1/runs?git_commit=xyz",
        "/v1/runs?image_digest=abc",
    ] {
        admin
            .get(bad)
            .await
            .assert_problem(400, "validation_failed");
    }
    // An image digest in bare hex (the artifact spelling): refused, with a hint naming the fix.
    let bare = admin
        .get(&format!("/v1/runs?image_digest={}", "c".repeat(64)))
        .await;
    bare.assert_problem(400, "validation_failed");
    let detail = bare.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("add the \"sha256:\" prefix"), "{detail}");
    // A filtered page's cursor works with the same filter only.
    let p1 = admin
        .get(&format!(
            "/v1/runs?input={}&limit=1",
            enc(&format!("{raw}@{v1}"))
        ))
        .await;
    let cur = p1.json()["next_cursor"].as_str().unwrap().to_string();
    let p2 = admin
        .get(&format!(
            "/v1/runs?input={}&limit=1&cursor={cur}",
            enc(&format!("{raw}@{v1}"))
        ))
        .await;
    assert_eq!(ids(&p2), vec![c.clone()]);
    admin
        .get(&format!("/v1/runs?status=running&limit=1&cursor={cur}"))
        .await
        .assert_problem(400, "bad_request");

    // A dataset by name: one page of zero or one.
    let by = admin.get("/v1/datasets?name=clean").await;
    assert_eq!(ids(&by), vec![clean.clone()]);
    assert!(by.json()["next_cursor"].is_null());
    assert!(ids(&admin.get("/v1/datasets?name=nothing").await).is_empty());
    admin
        .get("/v1/datasets?name=")
        .await
        .assert_problem(400, "validation_failed");

    // Artifacts by content, across runs: which run produced this file?
    let bytes = b"model weights";
    let sha = sha256_hex(bytes);
    let (d, td) = run_with(&admin, &[(&raw, &v1)], 'd').await;
    for (run, token) in [(&b, None), (&d, Some(&td))] {
        let api = match token {
            Some(t) => admin.with_token(t),
            None => admin.clone(),
        };
        let r = api.upload(run, "weights.bin", bytes, &sha).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let found = admin.get(&format!("/v1/artifacts?sha256={sha}")).await;
    assert_eq!(found.status, 200, "{}", found.text());
    let runs: Vec<String> = found.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs, vec![b.clone(), d.clone()]);
    let desc = admin
        .get(&format!("/v1/artifacts?sha256={sha}&order=desc&limit=1"))
        .await;
    assert_eq!(desc.json()["items"][0]["run_id"], d.as_str());
    assert!(ids(&admin
        .get(&format!("/v1/artifacts?sha256={}", "0".repeat(64)))
        .await)
    .is_empty());
    admin
        .get("/v1/artifacts?sha256=xyz")
        .await
        .assert_problem(400, "validation_failed");
    // The digest spelling where bare hex is wanted: refused, with a hint naming the fix.
    let wrong = admin
        .get(&format!("/v1/artifacts?sha256=sha256:{sha}"))
        .await;
    wrong.assert_problem(400, "validation_failed");
    let detail = wrong.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("drop the \"sha256:\" prefix"), "{detail}");
    admin
        .get("/v1/artifacts")
        .await
        .assert_problem(400, "validation_failed");
}

fn node_ids(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = r.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .filter(|id| id.starts_with("run:"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn lineage_walks_generations_up_and_down() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    // raw@v0 -> r1 -> mid@v1 -> r2 -> feat@v2 -> r3 -> model@v3; r_side also uses mid@v1.
    let mut ds = Vec::new();
    let mut vs = Vec::new();
    for name in ["raw", "mid", "feat", "model"] {
        let d = api.dataset(name).await;
        vs.push(api.version(&d, name).await);
        ds.push(d);
    }
    let mut runs = Vec::new();
    for g in 0..3 {
        let (r, t) = run_with(&api, &[(&ds[g], &vs[g])], (b'a' + g as u8) as char).await;
        finish(&api, &t, &r, &[(&ds[g + 1], &vs[g + 1])]).await;
        runs.push(r);
    }
    let (side, _) = run_with(&api, &[(&ds[1], &vs[1])], 'f').await;
    let v = |i: usize| {
        format!(
            "dataset_version%3A{}%40{}",
            ds[i],
            vs[i].replace(':', "%3A")
        )
    };
    let lin = |q: String| {
        let api = api.clone();
        async move {
            let r = api.get(&format!("/v1/lineage?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let run = |i: usize| format!("run:{}", runs[i]);
    // Downstream from raw: 1, 2, 3 generations.
    assert_eq!(
        node_ids(&lin(format!("node={}&direction=downstream&depth=1", v(0))).await),
        vec![run(0)]
    );
    assert_eq!(
        node_ids(&lin(format!("node={}&direction=downstream&depth=2", v(0))).await),
        sorted(vec![run(0), run(1), format!("run:{side}")])
    );
    let full = lin(format!("node={}&direction=downstream&depth=3", v(0))).await;
    assert_eq!(
        node_ids(&full),
        sorted(vec![run(0), run(1), run(2), format!("run:{side}")])
    );
    // The model version is in the 3-generation graph, with the edge that produced it.
    let model = format!("dataset_version:{}@{}", ds[3], vs[3]);
    assert!(full.json()["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["to"] == model.as_str() && e["kind"] == "produced"));
    // Upstream from the model: r3, r2, r1 by depth, never the side branch.
    assert_eq!(
        node_ids(&lin(format!("node={}&direction=upstream&depth=1", v(3))).await),
        vec![run(2)]
    );
    assert_eq!(
        node_ids(&lin(format!("node={}&direction=upstream&depth=3", v(3))).await),
        sorted(vec![run(0), run(1), run(2)])
    );
    // From the middle run both ways, one generation each side.
    assert_eq!(
        node_ids(&lin(format!("node=run:{}&direction=both&depth=2", runs[1])).await),
        sorted(vec![run(0), run(1), run(2)])
    );
    assert_eq!(
        node_ids(&lin(format!("node=run:{}&depth=1", runs[1])).await),
        vec![run(1)]
    );
    for bad in [
        "node=run:x&depth=0".to_string(),
        "node=run:x&depth=11".to_string(),
        format!("node={}&direction=sideways", v(0)),
        "node=nope".to_string(),
        "depth=2".to_string(),
    ] {
        api.get(&format!("/v1/lineage?{bad}"))
            .await
            .assert_problem(400, "validation_failed");
    }
    api.get("/v1/lineage?node=run:run_00000000000000000000000000")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn metric_summaries_and_comparisons() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    let d = api.dataset("m").await;
    let v = api.version(&d, "m").await;
    let mut runs = Vec::new();
    for k in 0..3u64 {
        let (r, t) = api.run(&[(&d, &v)]).await;
        // loss: 1000 points, 1/(step+1) scaled by the run; acc on run 0 only.
        let points: Vec<Value> = (0..1000u64)
            .map(|s| serde_json::json!({ "name": "loss", "step": s, "value": (k + 1) as f64 / (s + 1) as f64 }))
            .collect();
        let r2 = api
            .with_token(&t)
            .post(
                &format!("/v1/runs/{r}/metrics"),
                serde_json::json!({ "points": points }),
            )
            .await;
        assert_eq!(r2.status, 201, "{}", r2.text());
        if k == 0 {
            let r3 = api
                .with_token(&t)
                .post(
                    &format!("/v1/runs/{r}/metrics"),
                    serde_json::json!({ "points": [{ "name": "acc", "step": 7, "value": 0.5 }] }),
                )
                .await;
            assert_eq!(r3.status, 201);
        }
        runs.push(r);
    }
    let s = api
        .get(&format!("/v1/runs/{}/metrics/summary?points=100", runs[0]))
        .await;
    assert_eq!(s.status, 200, "{}", s.text());
    let j = s.json();
    assert_eq!(j["run_id"], runs[0].as_str());
    let metrics = j["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2);
    assert_eq!(metrics[0]["name"], "acc");
    assert_eq!(metrics[0]["count"], 1);
    assert_eq!(metrics[0]["series"].as_array().unwrap().len(), 1);
    let loss = &metrics[1];
    assert_eq!(loss["count"], 1000);
    assert_eq!(loss["last_step"], 999);
    assert_eq!(loss["last"], 1.0 / 1000.0);
    assert_eq!(loss["max"], 1.0);
    assert_eq!(loss["min"], 1.0 / 1000.0);
    let series = loss["series"].as_array().unwrap();
    assert_eq!(series.len(), 100);
    // Buckets of ten points: the first holds steps 0..=9.
    assert_eq!(series[0]["step"], 9);
    assert_eq!(series[0]["max"], 1.0);
    assert_eq!(series[0]["min"], 0.1);
    assert_eq!(series[99]["step"], 999);
    let mean: f64 = (0..10).map(|s| 1.0 / (s + 1) as f64).sum::<f64>() / 10.0;
    assert!((series[0]["value"].as_f64().unwrap() - mean).abs() < 1e-12);
    // Fewer points than buckets: every point.
    let one = api
        .get(&format!(
            "/v1/runs/{}/metrics/summary?name=loss&points=2000",
            runs[1]
        ))
        .await;
    let one = one.json();
    assert_eq!(one["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(one["metrics"][0]["series"].as_array().unwrap().len(), 1000);
    assert_eq!(one["metrics"][0]["series"][5]["value"], 2.0 / 6.0);

    // Compare: one metric across runs, in the order asked; a run without it has no metrics.
    let cmp = api
        .get(&format!(
            "/v1/metrics/compare?name=loss&points=10&run_ids={},{},{}",
            runs[2], runs[0], runs[1]
        ))
        .await;
    assert_eq!(cmp.status, 200, "{}", cmp.text());
    let c = cmp.json();
    assert_eq!(c["name"], "loss");
    let order: Vec<&str> = c["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![runs[2].as_str(), runs[0].as_str(), runs[1].as_str()]
    );
    assert_eq!(c["runs"][0]["metrics"][0]["max"], 3.0);
    assert_eq!(
        c["runs"][0]["metrics"][0]["series"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let acc = api
        .get(&format!(
            "/v1/metrics/compare?name=acc&run_ids={},{}",
            runs[0], runs[1]
        ))
        .await
        .json();
    assert_eq!(acc["runs"][0]["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(acc["runs"][1]["metrics"].as_array().unwrap().len(), 0);
    let eleven = vec![runs[0].clone(); 11].join(",");
    for bad in [
        format!("/v1/metrics/compare?name=loss&run_ids={eleven}"),
        format!(
            "/v1/metrics/compare?name=loss&run_ids={},{}",
            runs[0], runs[0]
        ),
        "/v1/metrics/compare?name=loss".to_string(),
        format!("/v1/metrics/compare?run_ids={}", runs[0]),
        format!("/v1/runs/{}/metrics/summary?points=0", runs[0]),
        format!("/v1/runs/{}/metrics/summary?points=2001", runs[0]),
    ] {
        api.get(&bad).await.assert_problem(400, "validation_failed");
    }
}

#[tokio::test]
async fn policy_updates_are_conditional_with_if_match() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    let cur = api.get("/v1/policy").await;
    assert_eq!(cur.status, 200);
    let v = cur.json()["version"].as_u64().unwrap();
    assert_eq!(cur.header("etag"), Some(format!("\"{v}\"").as_str()));
    let body = serde_json::to_vec(&serde_json::json!({ "required_gates": ["schema"] })).unwrap();
    let put = |tag: Option<String>| {
        let api = api.clone();
        let body = body.clone();
        async move {
            let mut h = vec![("content-type", "application/json")];
            let tag = tag.unwrap_or_default();
            if !tag.is_empty() {
                h.push(("if-match", tag.as_str()));
            }
            api.send("PUT", "/v1/policy", &h, Some(body)).await
        }
    };
    // The current tag: updated, with the new tag.
    let ok = put(Some(format!("\"{v}\""))).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["version"], v + 1);
    assert_eq!(ok.header("etag"), Some(format!("\"{}\"", v + 1).as_str()));
    // The old tag again (a lost update): 412, nothing written.
    let stale = put(Some(format!("\"{v}\""))).await;
    stale.assert_problem(412, "precondition_failed");
    assert!(stale.json()["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("version {}", v + 1)));
    assert_eq!(api.get("/v1/policy").await.json()["version"], v + 1);
    for bad in ["W/\"1\"", "\"x\"", "abc"] {
        put(Some(bad.to_string()))
            .await
            .assert_problem(412, "precondition_failed");
    }
    // `*` and no header: unconditional, as before.
    assert_eq!(put(Some("*".into())).await.status, 200);
    let last = put(None).await;
    assert_eq!(last.status, 200);
    assert_eq!(last.json()["version"], v + 3);
}

/// `report.html` of an evidence bundle draws the metric curves of the lineage's runs, cut at the
/// bundle's tree size like the rest of the bundle: a batch logged after that size is not in an
/// export at that size, and exporting twice gives the same bytes.
#[tokio::test]
async fn evidence_report_draws_metric_curves_at_its_tree_size() {
    let srv = Server::start();
    let api = srv.client(ADMIN);
    let ds = api.dataset("curves").await;
    let v = api.version(&ds, "curves").await;
    let (run, token) = api.run(&[(&ds, &v)]).await;
    let run_api = api.with_token(&token);
    let batch = |points: Value| {
        let (run_api, run) = (run_api.clone(), run.clone());
        async move {
            let r = run_api
                .post(
                    &format!("/v1/runs/{run}/metrics"),
                    serde_json::json!({ "points": points }),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
        }
    };
    batch(serde_json::json!([
        { "name": "loss", "step": 0, "value": 1.0 },
        { "name": "loss", "step": 1, "value": 0.5 },
        { "name": "loss", "step": 2, "value": 0.25 },
        { "name": "acc", "step": 2, "value": 0.75 }
    ]))
    .await;
    let (size_one, _, _) = checkpoint(&api).await;
    batch(serde_json::json!([{ "name": "loss", "step": 3, "value": 0.125 }])).await;

    let report = |q: String| {
        let api = api.clone();
        let run = run.clone();
        async move {
            let r = api.get(&format!("/v1/runs/{run}/evidence{q}")).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let zip = datapilot::evidence::Archive::read(&r.body, &Default::default()).unwrap();
            String::from_utf8(zip.get("report.html").unwrap().to_vec()).unwrap()
        }
    };
    let now = report(String::new()).await;
    assert!(now.contains("<h2>Metrics</h2>"), "{now}");
    assert_eq!(
        now.matches("<figure class=\"metric\">").count(),
        2,
        "one chart per metric"
    );
    assert!(
        now.contains("aria-label=\"Metric loss: 1 run(s), steps 0 to 3"),
        "{now}"
    );
    assert!(
        now.contains("aria-label=\"Metric acc: 1 run(s), steps 2 to 3"),
        "a single point: {now}"
    );
    assert!(
        now.contains("<td>loss</td><td>4</td><td>0.125 (3)</td>"),
        "{now}"
    );
    assert!(!now.contains("<script"));

    // At the size before the second batch: three loss points, steps 0 to 2.
    let then = report(format!("?tree_size={size_one}")).await;
    assert!(
        then.contains("aria-label=\"Metric loss: 1 run(s), steps 0 to 2"),
        "{then}"
    );
    assert!(
        then.contains("<td>loss</td><td>3</td><td>0.25 (2)</td>"),
        "{then}"
    );
    assert_eq!(
        then,
        report(format!("?tree_size={size_one}")).await,
        "deterministic"
    );

    // A dataset version's bundle draws the runs around it.
    let vb = api
        .get(&format!("/v1/datasets/{ds}/versions/{v}/evidence"))
        .await;
    assert_eq!(vb.status, 200, "{}", vb.text());
    let zip = datapilot::evidence::Archive::read(&vb.body, &Default::default()).unwrap();
    let html = String::from_utf8(zip.get("report.html").unwrap().to_vec()).unwrap();
    assert!(html.contains(&format!("<code>{run}</code>")), "{html}");
}
