//! Dashboard query latency at scale (docs/api.md, "Dashboard queries"): the release server is
//! filled through its own API (every write audited) with DP_BENCH_RUNS runs (default 100 000)
//! and DP_BENCH_POINTS metric points (default 10 000 000, in 1 000-point batches spread over
//! the first runs), a 4-generation lineage chain among them; then each query is timed
//! DP_BENCH_ITERS times (default 200) from one client and its p50/p95/max printed:
//!
//! - latest 20 runs (`listRuns?order=desc&limit=20`);
//! - filtered lists (`listRuns?input=…&status=succeeded&order=desc&limit=20`, for a version
//!   whose runs all match and one whose runs none do; `status` + `git_commit`);
//! - 3-generation lineage (`getLineage?…&direction=downstream&depth=3`);
//! - a 5-run comparison (`compareMetrics?run_ids=5 runs&name=loss&points=200`).
//!
//! SQLite by default; with DP_BENCH_PG_URL (`postgres://…/db`, an empty database) on
//! PostgreSQL (blobs in the data directory, or DP_BENCH_S3, a blob store URL, e.g. from
//! `scripts/test-services.sh start`).
//! Bounded in count and time; talks only to the server it starts on 127.0.0.1. Not a test.
//!
//! Run: `CARGO_TARGET_DIR=target/server cargo bench -p datapilot-server --bench queries`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "dpt_benchbootstrapadmin000000000001";
const CLIENTS: usize = 8;

struct Srv(std::process::Child, String);
impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(dir: &std::path::Path) -> Srv {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datapilot-server"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("DATAPILOT_BOOTSTRAP_TOKEN", ADMIN)
        .env("DATAPILOT_LOG", "warn")
        // The bench client sends far more than a person would.
        .env("DATAPILOT_RATE_LIMIT", "0");
    if let Ok(pg) = std::env::var("DP_BENCH_PG_URL") {
        cmd.arg("--database").arg(pg);
        // Blobs do not take part in these queries: without DP_BENCH_S3 they stay in the data
        // directory, so a PostgreSQL run needs no S3 store.
        if let Ok(s3) = std::env::var("DP_BENCH_S3") {
            cmd.arg("--blobs").arg(s3);
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().trim_start_matches("listening on ").to_string();
    Srv(child, base)
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Value {
    for attempt in 0.. {
        let mut req = http
            .request(method.parse().unwrap(), url)
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
        if status < 300 {
            return v;
        }
        // 429/503 while loading: back off and retry (bounded).
        assert!(
            (status == 429 || status == 503) && attempt < 50,
            "{method} {url}: {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

fn digest_of(seed: &str) -> (String, Value) {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(seed.as_bytes()));
    let path = format!("{seed}.csv");
    let line = format!("{sha}  {path}\n");
    let d = hex::encode(sha2::Sha256::digest(line.as_bytes()));
    (
        format!("sha256:{d}"),
        json!([{ "path": path, "sha256": sha, "size": seed.len() }]),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs_n = env_num("DP_BENCH_RUNS", 100_000);
    let points_n = env_num("DP_BENCH_POINTS", 10_000_000);
    let iters = env_num("DP_BENCH_ITERS", 200);
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(&tmp.path().join("data"));
    let base = srv.1.clone();
    let http = reqwest::Client::new();
    let backend = if std::env::var("DP_BENCH_PG_URL").is_ok() {
        "postgresql"
    } else {
        "sqlite"
    };
    println!("queries bench on {backend}: {runs_n} runs, {points_n} metric points");

    // Datasets: 100 input versions, and a chain raw -> r0 -> clean -> r1 -> feat -> r2 -> model.
    let t0 = Instant::now();
    let mut inputs = Vec::new();
    for i in 0..100 {
        let ds = send(
            &http,
            "POST",
            &format!("{base}/v1/datasets"),
            ADMIN,
            Some(&json!({ "name": format!("input-{i}") })),
        )
        .await;
        let (digest, files) = digest_of(&format!("input-{i}"));
        let id = ds["id"].as_str().unwrap().to_string();
        send(
            &http,
            "POST",
            &format!("{base}/v1/datasets/{id}/versions"),
            ADMIN,
            Some(&json!({ "digest": digest, "files": files })),
        )
        .await;
        inputs.push((id, digest));
    }
    let mut chain = Vec::new();
    for name in ["raw", "clean", "feat", "model"] {
        let ds = send(
            &http,
            "POST",
            &format!("{base}/v1/datasets"),
            ADMIN,
            Some(&json!({ "name": name })),
        )
        .await;
        let (digest, files) = digest_of(name);
        let id = ds["id"].as_str().unwrap().to_string();
        send(
            &http,
            "POST",
            &format!("{base}/v1/datasets/{id}/versions"),
            ADMIN,
            Some(&json!({ "digest": digest, "files": files })),
        )
        .await;
        chain.push((id, digest));
    }
    let run_body = |name: String, (ds, digest): &(String, String), i: usize| {
        json!({ "name": name, "inputs": [{ "dataset_id": ds, "digest": digest }],
                "git_commit": format!("{:040x}", i % 1000),
                "image_digest": format!("sha256:{}", "b".repeat(64)) })
    };
    let mut chain_runs = Vec::new();
    for g in 0..3 {
        let r = send(
            &http,
            "POST",
            &format!("{base}/v1/runs"),
            ADMIN,
            Some(&run_body(format!("chain-{g}"), &chain[g], g)),
        )
        .await;
        let id = r["run"]["id"].as_str().unwrap().to_string();
        let tok = r["run_token"].as_str().unwrap().to_string();
        send(&http, "POST", &format!("{base}/v1/runs/{id}/finish"), &tok,
             Some(&json!({ "status": "succeeded", "outputs": [{ "dataset_id": chain[g + 1].0, "digest": chain[g + 1].1 }] }))).await;
        chain_runs.push(id);
    }

    // The runs, from CLIENTS concurrent clients; every 4th is finished; the first
    // points_n / 1000 get 1 000 points of `loss` each.
    let batches = points_n / 1000;
    let next = Arc::new(AtomicUsize::new(0));
    let inputs = Arc::new(inputs);
    let metric_runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, base, next, inputs, metric_runs) = (
            http.clone(),
            base.clone(),
            next.clone(),
            inputs.clone(),
            metric_runs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs_n {
                    break;
                }
                let body = json!({ "name": format!("run-{i}"), "inputs": [{ "dataset_id": inputs[i % 100].0, "digest": inputs[i % 100].1 }],
                    "git_commit": format!("{:040x}", i % 1000), "image_digest": format!("sha256:{}", "b".repeat(64)) });
                let r = send(&http, "POST", &format!("{base}/v1/runs"), ADMIN, Some(&body)).await;
                let id = r["run"]["id"].as_str().unwrap().to_string();
                let tok = r["run_token"].as_str().unwrap().to_string();
                if i < batches {
                    let points: Vec<Value> = (0..1000).map(|s| json!({ "name": "loss", "step": s, "value": 1.0 / (s + 1 + i % 7) as f64 })).collect();
                    send(&http, "POST", &format!("{base}/v1/runs/{id}/metrics"), &tok, Some(&json!({ "points": points }))).await;
                    metric_runs.lock().unwrap().push(id.clone());
                }
                if i % 4 == 0 {
                    send(&http, "POST", &format!("{base}/v1/runs/{id}/finish"), &tok, Some(&json!({ "status": "succeeded" }))).await;
                }
                if i % 10_000 == 0 {
                    eprintln!("  {i} runs ({:.0} s)", t0.elapsed().as_secs_f64());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("loaded in {:.0} s", t0.elapsed().as_secs_f64());
    let compare: Vec<String> = metric_runs
        .lock()
        .unwrap()
        .iter()
        .take(5)
        .cloned()
        .collect();

    let queries = [
        (
            "latest 20 runs",
            format!("{base}/v1/runs?order=desc&limit=20"),
        ),
        // Input i is used by the runs i, i + 100, …: every one of input 40's is finished
        // (i % 4 == 0), none of input 42's, so the second walks all of that version's runs
        // and finds nothing (the worst case of a filter).
        (
            "filtered list (input + status, newest 20 of 1 000)",
            format!(
                "{base}/v1/runs?input={}%40{}&status=succeeded&order=desc&limit=20",
                inputs[40].0,
                inputs[40].1.replace(':', "%3A")
            ),
        ),
        (
            "filtered list (input + status, 0 of 1 000 match)",
            format!(
                "{base}/v1/runs?input={}%40{}&status=succeeded&order=desc&limit=20",
                inputs[42].0,
                inputs[42].1.replace(':', "%3A")
            ),
        ),
        (
            "filtered list (status + git commit, newest 20)",
            format!(
                "{base}/v1/runs?status=running&git_commit={:040x}&order=desc&limit=20",
                7
            ),
        ),
        (
            "3-generation lineage",
            format!(
                "{base}/v1/lineage?node=dataset_version%3A{}%40{}&direction=downstream&depth=3",
                chain[0].0,
                chain[0].1.replace(':', "%3A")
            ),
        ),
        (
            "5-run metric comparison (200 points)",
            format!(
                "{base}/v1/metrics/compare?name=loss&points=200&run_ids={}",
                compare.join(",")
            ),
        ),
    ];
    println!("| query | n | p50 ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, url) in &queries {
        send(&http, "GET", url, ADMIN, None).await; // warm
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            let v = send(&http, "GET", url, ADMIN, None).await;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(!v.is_null());
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        println!(
            "| {what} | {iters} | {:.2} | {:.2} | {:.2} |",
            pct(0.5),
            pct(0.95),
            ms[ms.len() - 1]
        );
    }
    let _ = chain_runs;
}
