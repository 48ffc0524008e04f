//! Audited, durable, keyed writes on each storage configuration (issue 9's matrix):
//! SQLite; PostgreSQL with 1 replica; PostgreSQL with 2 replicas (clients alternate between
//! them, as behind a round-robin gateway). PostgreSQL runs with `fsync` and
//! `synchronous_commit` on, like SQLite's `synchronous=FULL`: every acknowledged write is on disk.
//!
//! Workloads: `createRun` without and with an `Idempotency-Key`, `appendMetrics` of 100 and
//! 1,000 points (keyed, as every SDK call is), at 1, 8 and 32 concurrent clients. For each cell:
//! writes/s, p50/p99 latency, and where the time goes: server and PostgreSQL CPU (from
//! /proc), and on PostgreSQL the WAL fsyncs per write (`pg_stat_wal.wal_sync`), which shows
//! how many writes group commit puts behind one fsync.
//!
//! Bounded in count and time; talks only to the processes it starts on 127.0.0.1.
//! Run: `CARGO_TARGET_DIR=target/server cargo bench -p datapilot-server --bench storage`
//! (`DP_BENCH_CONFIGS=sqlite,pg1,pg2` and `DP_BENCH_CLIENTS=1,8,32` pick a subset).

#[path = "../tests/common/garage.rs"]
mod garage;
#[path = "../tests/common/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "dpt_benchbootstrapadmin000000000001";

struct Srv(Child, String);
impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, args: &[String]) -> Srv {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datapilot-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
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
    assert!(
        base.starts_with("http://"),
        "server did not start: {line:?}"
    );
    Srv(child, base)
}

/// CPU seconds (user + system) of `pid` and, with `children`, of its direct children.
fn cpu_secs(pid: u32, children: bool) -> f64 {
    fn one(pid: &str) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
    let mut total = one(&pid.to_string());
    if children {
        if let Ok(out) = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
        {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                total += one(p);
            }
        }
    }
    total
}

fn postmaster_pid(c: &pg::PgCluster) -> u32 {
    let s = std::fs::read_to_string(c.dir().join("data/postmaster.pid")).unwrap();
    s.lines().next().unwrap().trim().parse().unwrap()
}

fn wal_syncs(c: &pg::PgCluster) -> u64 {
    c.psql(pg::DB, "SELECT wal_sync FROM pg_stat_wal")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[derive(Clone, Copy, Debug)]
enum Work {
    CreateRun { keyed: bool },
    Metrics { points: usize },
}

impl Work {
    fn label(&self) -> String {
        match self {
            Work::CreateRun { keyed: false } => "createRun, no key".into(),
            Work::CreateRun { keyed: true } => "createRun, keyed".into(),
            Work::Metrics { points } => format!("appendMetrics {points} pts, keyed"),
        }
    }
    /// Writes per client in one cell.
    fn per_client(&self, clients: usize) -> usize {
        let total = match self {
            Work::CreateRun { .. } => 3000,
            Work::Metrics { points: 100 } => 1500,
            Work::Metrics { .. } => 300,
        };
        (total / clients)
            .max(if clients == 1 { 300 } else { 20 })
            .min(total)
    }
}

struct Fixture {
    ds: String,
    digest: String,
    /// One run (id, token) per client, for metrics.
    runs: Vec<(String, String)>,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut rb = http
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(k) = key {
        rb = rb.header("idempotency-key", k);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn run_body(f: &Fixture, n: usize) -> Value {
    json!({ "name": format!("bench-{n}"), "inputs": [{ "dataset_id": f.ds, "digest": f.digest }],
            "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) })
}

async fn fixture(http: &reqwest::Client, base: &str, clients: usize) -> Fixture {
    let (s, ds) = post(
        http,
        &format!("{base}/v1/datasets"),
        ADMIN,
        None,
        &json!({ "name": format!("bench-{clients}") }),
    )
    .await;
    assert_eq!(s, 201, "{ds}");
    let ds = ds["id"].as_str().unwrap().to_string();
    let entry = datapilot::manifest::FileEntry {
        path: "a.csv".into(),
        sha256: "0".repeat(64),
        size: 1,
    };
    let digest = datapilot::manifest::dataset_digest(std::slice::from_ref(&entry)).unwrap();
    let (s, _) = post(
        http,
        &format!("{base}/v1/datasets/{ds}/versions"),
        ADMIN,
        None,
        &json!({ "digest": digest, "files": [{ "path": "a.csv", "sha256": "0".repeat(64), "size": 1 }] }),
    )
    .await;
    assert_eq!(s, 201);
    let mut f = Fixture {
        ds,
        digest,
        runs: Vec::new(),
    };
    for c in 0..clients {
        let (s, run) = post(
            http,
            &format!("{base}/v1/runs"),
            ADMIN,
            None,
            &run_body(&f, 1_000_000 + c),
        )
        .await;
        assert_eq!(s, 201, "{run}");
        f.runs.push((
            run["run"]["id"].as_str().unwrap().to_string(),
            run["run_token"].as_str().unwrap().to_string(),
        ));
    }
    f
}

/// One cell: `clients` concurrent clients, client `c` on `bases[c % len]`.
async fn cell(
    http: &reqwest::Client,
    bases: &[String],
    f: Arc<Fixture>,
    work: Work,
    clients: usize,
    seq: Arc<AtomicUsize>,
) -> (usize, f64, f64, f64) {
    let per = work.per_client(clients);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, f, seq) = (
            http.clone(),
            bases[c % bases.len()].clone(),
            f.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let key = format!("bench-{n}");
                let t = Instant::now();
                let (s, body) = match work {
                    Work::CreateRun { keyed } => {
                        post(&http, &format!("{base}/v1/runs"), ADMIN, keyed.then_some(key.as_str()), &run_body(&f, n)).await
                    }
                    Work::Metrics { points } => {
                        let (run, token) = &f.runs[c];
                        let pts: Vec<Value> = (0..points)
                            .map(|k| json!({ "name": format!("m{}", k % 8), "step": (i * points + k) as u64, "value": (k as f64).sin() }))
                            .collect();
                        post(&http, &format!("{base}/v1/runs/{run}/metrics"), token, Some(&key), &json!({ "points": pts })).await
                    }
                };
                assert_eq!(s, 201, "{body}");
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
    (
        lat.len(),
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
    )
}

fn list_env(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let configs = list_env("DP_BENCH_CONFIGS", "sqlite,pg1,pg2");
    let clients_list: Vec<usize> = list_env("DP_BENCH_CLIENTS", "1,8,32")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let works = [
        Work::CreateRun { keyed: false },
        Work::CreateRun { keyed: true },
        Work::Metrics { points: 100 },
        Work::Metrics { points: 1000 },
    ];
    println!(
        "datapilot-server storage matrix ({} cores); PostgreSQL fsync=on synchronous_commit=on",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| storage | workload | clients | writes | writes/s | p50 ms | p99 ms | server CPU | PostgreSQL CPU | writes per WAL fsync |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for config in &configs {
        let tmp = tempfile::tempdir().unwrap();
        let (cluster, s3) = if config == "sqlite" {
            (None, None)
        } else {
            let s3 = garage::Garage::start();
            std::env::set_var("DATAPILOT_S3_ACCESS_KEY_ID", &s3.key_id);
            std::env::set_var("DATAPILOT_S3_SECRET_ACCESS_KEY", &s3.secret);
            (Some(pg::PgCluster::start()), Some(s3))
        };
        let replicas = if config == "pg2" { 2 } else { 1 };
        let mut servers = Vec::new();
        for r in 0..replicas {
            let dir = tmp.path().join(format!("r{r}"));
            let mut args = Vec::new();
            if let (Some(c), Some(s3)) = (&cluster, &s3) {
                args = vec![
                    "--database".into(),
                    c.url(pg::DB),
                    "--blobs".into(),
                    s3.spec("bench/"),
                ];
                if r > 0 {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::copy(tmp.path().join("r0/ledger.key"), dir.join("ledger.key"))
                        .unwrap();
                }
            }
            servers.push(start(&dir, &args));
        }
        let bases: Vec<String> = servers.iter().map(|s| s.1.clone()).collect();
        let seq = Arc::new(AtomicUsize::new(0));
        for &clients in &clients_list {
            let f = Arc::new(fixture(&http, &bases[0], clients).await);
            for work in works {
                let cpu0: f64 = servers.iter().map(|s| cpu_secs(s.0.id(), false)).sum();
                let pg0 = cluster
                    .as_ref()
                    .map(|c| (cpu_secs(postmaster_pid(c), true), wal_syncs(c)));
                let t0 = Instant::now();
                let (n, ops, p50, p99) =
                    cell(&http, &bases, f.clone(), work, clients, seq.clone()).await;
                let wall = t0.elapsed().as_secs_f64();
                let cpu = servers
                    .iter()
                    .map(|s| cpu_secs(s.0.id(), false))
                    .sum::<f64>()
                    - cpu0;
                let (pg_cpu, per_sync) = match (&cluster, pg0) {
                    (Some(c), Some((cpu_before, syncs_before))) => {
                        let syncs = wal_syncs(c).saturating_sub(syncs_before).max(1);
                        (
                            format!(
                                "{:.0} %",
                                100.0 * (cpu_secs(postmaster_pid(c), true) - cpu_before) / wall
                            ),
                            format!("{:.1}", n as f64 / syncs as f64),
                        )
                    }
                    _ => ("—".into(), "—".into()),
                };
                println!(
                    "| {config} | {} | {clients} | {n} | {ops:.0} | {p50:.2} | {p99:.2} | {:.0} % | {pg_cpu} | {per_sync} |",
                    work.label(),
                    100.0 * cpu / wall
                );
            }
        }
        drop(servers);
    }
}
