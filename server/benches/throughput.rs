//! Throughput of the reference server on this machine, over real HTTP on 127.0.0.1:
//!
//! 1. audited writes/s: `createDataset` (one SQLite transaction + one ledger leaf + its Merkle
//!    nodes, fsynced before the response) from 1 client and from 8 concurrent clients;
//! 2. metric points/s: `appendMetrics` batches of 1 000 points from 4 concurrent clients.
//!
//! Bounded in count and time; talks only to the server it starts on 127.0.0.1.
//! Run: `CARGO_TARGET_DIR=target/server cargo bench -p datapilot-server --bench throughput`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "dpt_benchbootstrapadmin000000000001";

struct Srv(std::process::Child, String);
impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> Srv {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datapilot-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("DATAPILOT_BOOTSTRAP_TOKEN", ADMIN)
        .env("DATAPILOT_LOG", "warn")
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

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// `total` requests spread over `clients` concurrent clients; returns (ops/s, p50 ms, p99 ms).
async fn drive<F, Fut>(clients: usize, total: usize, make: F) -> (f64, f64, f64)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..total / clients {
                let t = Instant::now();
                make(c, i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    (lat.len() as f64 / secs, pct(&lat, 0.5), pct(&lat, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(&tmp.path().join("data"));
    let base = srv.1.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    println!(
        "datapilot-server throughput ({} cores, data dir on {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        tmp.path().display()
    );

    for (clients, total) in [(1usize, 300usize), (8, 2000)] {
        let (h, b) = (http.clone(), base.clone());
        let (ops, p50, p99) = drive(clients, total, move |c, i| {
            let (h, b) = (h.clone(), b.clone());
            async move {
                let (s, _) = post(
                    &h,
                    &format!("{b}/v1/datasets"),
                    ADMIN,
                    &json!({ "name": format!("bench-{clients}-{c}-{i}") }),
                )
                .await;
                assert_eq!(s, 201);
            }
        })
        .await;
        println!("audited writes (createDataset), {clients} client(s), {total} writes: {ops:.0} writes/s  p50 {p50:.2} ms  p99 {p99:.2} ms");
    }

    // A run to append metrics to.
    let (_, ds) = post(
        &http,
        &format!("{base}/v1/datasets"),
        ADMIN,
        &json!({ "name": "bench-metrics" }),
    )
    .await;
    let ds = ds["id"].as_str().unwrap().to_string();
    let files = vec![json!({ "path": "a.csv", "sha256": "0".repeat(64), "size": 1 })];
    let digest = datapilot::manifest::dataset_digest(&[datapilot::manifest::FileEntry {
        path: "a.csv".into(),
        sha256: "0".repeat(64),
        size: 1,
    }])
    .unwrap();
    let (s, _) = post(
        &http,
        &format!("{base}/v1/datasets/{ds}/versions"),
        ADMIN,
        &json!({ "digest": digest, "files": files }),
    )
    .await;
    assert_eq!(s, 201);
    let (s, run) = post(
        &http,
        &format!("{base}/v1/runs"),
        ADMIN,
        &json!({ "name": "bench", "inputs": [{ "dataset_id": ds, "digest": digest }],
        "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) }),
    )
    .await;
    assert_eq!(s, 201);
    let run_id = run["run"]["id"].as_str().unwrap().to_string();
    let token = run["run_token"].as_str().unwrap().to_string();
    const BATCH: usize = 1000;
    let (clients, batches) = (4usize, 200usize);
    let (h, b) = (http.clone(), base.clone());
    let (ops, p50, p99) = drive(clients, batches, move |c, i| {
        let (h, b, run_id, token) = (h.clone(), b.clone(), run_id.clone(), token.clone());
        async move {
            let points: Vec<Value> = (0..BATCH)
                .map(|k| json!({ "name": format!("m{}", k % 8), "step": (c * 1_000_000 + i * BATCH + k) as u64, "value": (k as f64).sin() }))
                .collect();
            let (s, _) = post(&h, &format!("{b}/v1/runs/{run_id}/metrics"), &token, &json!({ "points": points })).await;
            assert_eq!(s, 201);
        }
    })
    .await;
    println!(
        "metric points (appendMetrics), {clients} clients, {batches} batches of {BATCH}: {:.0} points/s ({ops:.1} batches/s)  p50 {p50:.1} ms  p99 {p99:.1} ms",
        ops * BATCH as f64
    );
}
