//! Observability (issue 15): `/metrics` parses with a Prometheus text-format parser
//! (`prometheus-parse`) and its counters move with traffic; liveness and readiness probes; the
//! JSON access log carries request id, principal id (never the secret), operation, status and
//! duration.

mod common;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

async fn scrape(api: &Api) -> Scrape {
    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    // The parser skips what it does not understand: hold it to every sample line being read.
    // Histogram lines fold into one sample per label set; every other line is one sample.
    let plain_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| !l.starts_with("datapilot_http_request_duration_seconds"))
        .count();
    let plain_samples = parsed
        .samples
        .iter()
        .filter(|s| {
            !s.metric
                .starts_with("datapilot_http_request_duration_seconds")
        })
        .count();
    assert!(
        parsed
            .samples
            .iter()
            .any(|s| matches!(s.value, Value::Histogram(_))),
        "the latency histogram parses as one: {text}"
    );
    assert_eq!(plain_lines, plain_samples, "unparsed lines in:\n{text}");
    parsed
}

fn find<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.samples.iter().find(|x| {
        x.metric == metric
            && labels
                .iter()
                .all(|(k, v)| x.labels.get(k).is_some_and(|got| got == *v))
    })
}

fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(s, metric, labels).map(|x| &x.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(Value::Histogram(h)) => h.last().map_or(0.0, |b| b.count),
        Some(other) => panic!("{metric}: unexpected {other:?}"),
        None => 0.0,
    }
}

const CREATE: &[(&str, &str)] = &[("operation", "POST /v1/datasets"), ("status", "201")];

#[tokio::test]
async fn metrics_parse_and_move_with_traffic() {
    let srv = Server::start_with(&["--metrics-blob-refresh", "0"]);
    let admin = srv.client(ADMIN);
    let anon = srv.anon();
    assert_eq!(anon.get("/livez").await.status, 200);
    assert_eq!(anon.get("/readyz").await.status, 200);

    let before = scrape(&anon).await;
    assert_eq!(value(&before, "datapilot_http_requests_total", CREATE), 0.0);
    for name in ["m-a", "m-b", "m-c"] {
        admin.dataset(name).await;
    }
    // One write replayed from its Idempotency-Key.
    for _ in 0..2 {
        let r = admin
            .post_idem("/v1/datasets", "metrics-key-1", json!({ "name": "m-d" }))
            .await;
        assert_eq!(r.status, 201);
    }
    let missing = admin
        .get("/v1/datasets/ds_00000000000000000000000000")
        .await;
    assert!(
        missing.status == 404 || missing.status == 400,
        "{}",
        missing.status
    );
    let nf = missing.status.to_string();
    admin.get("/v1/ledger/checkpoint").await;

    let after = scrape(&anon).await;
    // The replayed request is counted as the 201 it was answered with.
    assert_eq!(value(&after, "datapilot_http_requests_total", CREATE), 5.0);
    assert_eq!(
        value(
            &after,
            "datapilot_http_requests_total",
            &[
                ("operation", "GET /v1/datasets/:dataset_id"),
                ("status", &nf)
            ]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "datapilot_idempotent_replays_total", &[]),
        1.0
    );
    // Latency histogram: one observation per request, in the +Inf bucket.
    assert_eq!(
        value(&after, "datapilot_http_request_duration_seconds", CREATE),
        5.0
    );
    // State gauges: 2 events at start (ledger.init, bootstrap token) + 4 datasets; the
    // checkpoint just signed covers them all.
    let (size, _, _) = checkpoint(&admin).await;
    assert_eq!(size, 6);
    assert_eq!(value(&after, "datapilot_ledger_size", &[]), 6.0);
    assert_eq!(value(&after, "datapilot_ledger_checkpoint_size", &[]), 6.0);
    let age = value(&after, "datapilot_ledger_checkpoint_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert!(value(&after, "datapilot_db_pool_max_connections", &[]) >= 1.0);
    assert_eq!(
        value(
            &after,
            "datapilot_build_info",
            &[(
                "backend",
                if remote_backend() {
                    "postgres"
                } else {
                    "sqlite"
                }
            )]
        ),
        1.0
    );

    // Blob bytes follow uploads.
    let ds = admin.dataset("m-inputs").await;
    let digest = admin.version(&ds, "m-inputs").await;
    let (run, run_token) = admin.run(&[(&ds, &digest)]).await;
    let bytes = vec![7u8; 1234];
    let r = admin
        .with_token(&run_token)
        .upload(&run, "w.bin", &bytes, &sha256_hex(&bytes))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let later = scrape(&anon).await;
    assert_eq!(value(&later, "datapilot_blob_bytes", &[]), 1234.0);
    assert_eq!(value(&later, "datapilot_blobs", &[]), 1.0);
    assert!(value(&later, "datapilot_ledger_size", &[]) > 6.0);
}

#[tokio::test]
async fn idempotency_rejections_are_counted_by_reason() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let anon = srv.anon();
    let reason = |s: &Scrape, r: &str| {
        value(
            s,
            "datapilot_idempotency_rejections_total",
            &[("reason", r)],
        )
    };
    // (A request first: scrape() wants the latency histogram to have a series.)
    assert_eq!(anon.get("/livez").await.status, 200);
    let before = scrape(&anon).await;
    // Every reason is exported from the start (an alert on rate() needs the series).
    for r in ["key_reused", "in_flight", "secret_not_replayable"] {
        assert!(
            find(
                &before,
                "datapilot_idempotency_rejections_total",
                &[("reason", r)]
            )
            .is_some(),
            "{r}"
        );
        assert_eq!(reason(&before, r), 0.0);
    }
    // A key used again for another request: 422, a rejection (not a replay).
    let r = admin
        .post_idem("/v1/datasets", "rej-1", json!({ "name": "first" }))
        .await;
    assert_eq!(r.status, 201);
    for _ in 0..2 {
        let r = admin
            .post_idem("/v1/datasets", "rej-1", json!({ "name": "second" }))
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(r.json()["code"], "idempotency_key_reused");
    }
    // A retried createToken: the secret is not kept, so 409 secret_not_replayable.
    let body = json!({ "name": "ci", "role": "viewer" });
    assert_eq!(
        admin
            .post_idem("/v1/tokens", "rej-2", body.clone())
            .await
            .status,
        201
    );
    let r = admin.post_idem("/v1/tokens", "rej-2", body).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "secret_not_replayable");
    // A plain replay is not a rejection.
    let r = admin
        .post_idem("/v1/datasets", "rej-1", json!({ "name": "first" }))
        .await;
    assert_eq!(r.status, 201);

    let after = scrape(&anon).await;
    assert_eq!(reason(&after, "key_reused"), 2.0);
    assert_eq!(reason(&after, "secret_not_replayable"), 1.0);
    assert_eq!(reason(&after, "in_flight"), 0.0);
    assert_eq!(
        value(
            &after,
            "datapilot_http_requests_total",
            &[("operation", "POST /v1/datasets"), ("status", "422")]
        ),
        2.0
    );
}

#[tokio::test]
async fn db_pool_gauges_follow_the_pool() {
    let srv = Server::start();
    let anon = srv.anon();
    assert_eq!(anon.get("/livez").await.status, 200);
    let s = scrape(&anon).await;
    let max = value(&s, "datapilot_db_pool_max_connections", &[]);
    let open = value(&s, "datapilot_db_pool_connections", &[]);
    let idle = value(&s, "datapilot_db_pool_idle_connections", &[]);
    assert!(max >= 1.0, "{max}");
    // The scrape itself held a connection; it is back by the time the gauges are read.
    assert!(open >= 1.0 && open <= max, "{open} of {max}");
    assert!(idle <= open, "{idle} idle of {open}");
    assert_eq!(value(&s, "datapilot_db_pool_waiting", &[]), 0.0);
    for g in [
        "datapilot_request_slots_free",
        "datapilot_upload_slots_free",
        "datapilot_http_requests_in_flight",
    ] {
        assert!(find(&s, g, &[]).is_some(), "{g} exported");
    }
    // This very scrape is in flight while the gauges are encoded.
    assert_eq!(value(&s, "datapilot_http_requests_in_flight", &[]), 1.0);
}

#[tokio::test]
async fn rate_limit_rejections_are_counted() {
    let srv = Server::start_with(&["--rate-limit", "1", "--rate-limit-burst", "2"]);
    let admin = srv.client(ADMIN);
    let mut limited = 0;
    for _ in 0..6 {
        if admin.get("/v1/whoami").await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 3, "{limited}");
    let s = scrape(&srv.anon()).await;
    assert_eq!(
        value(&s, "datapilot_rate_limited_total", &[]),
        limited as f64
    );
    assert_eq!(
        value(
            &s,
            "datapilot_http_requests_total",
            &[("operation", "GET /v1/whoami"), ("status", "429")]
        ),
        limited as f64
    );
}

#[tokio::test]
async fn json_access_log_names_request_principal_operation_status_duration() {
    let srv = Server::start_with(&[
        "--log",
        "warn,datapilot_server::access=info",
        "--log-format",
        "json",
    ]);
    let admin = srv.client(ADMIN);
    let whoami = admin.get("/v1/whoami").await.json();
    let token_id = whoami["token_id"].as_str().unwrap().to_string();
    let r = admin
        .send(
            "POST",
            "/v1/datasets",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "req-log-test-1"),
            ],
            Some(br#"{"name":"logged"}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, 201);
    let log_path = srv.dir.with_extension("log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(!text.contains(ADMIN), "the secret must never be logged");
        if let Some(l) = text.lines().find(|l| l.contains("req-log-test-1")) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(v["request_id"], "req-log-test-1");
    assert_eq!(v["principal"], format!("token:{token_id}"));
    assert_eq!(v["operation"], "POST /v1/datasets");
    assert_eq!(v["status"], 201);
    assert!(v["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{v}");
    assert_eq!(v["level"], "INFO");
    // A request without X-Request-Id is logged under the id the server gave it (the one its
    // answer carries), so a client's report can be found in the log.
    let r = admin.get("/v1/datasets?limit=1").await;
    assert_eq!(r.status, 200);
    let given = r.header("x-request-id").expect("an id").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v: serde_json::Value = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(l) = text
            .lines()
            .find(|l| l.contains(&format!("\"request_id\":\"{given}\"")))
        {
            break serde_json::from_str(l).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{given} not in the log: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(v["operation"], "GET /v1/datasets");
    assert_eq!(v["status"], 200);
    // Without --trust-forwarded-for the header does not reach the log.
    admin
        .send(
            "GET",
            "/v1/whoami",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-request-id", "req-xff"),
            ],
            None,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let l = text
        .lines()
        .find(|l| l.contains("req-xff"))
        .expect("logged");
    let v: serde_json::Value = serde_json::from_str(l).unwrap();
    assert_eq!(v["client"], "127.0.0.1");
}

#[tokio::test]
async fn trusted_forwarded_for_names_the_client_in_the_log() {
    let srv = Server::start_with(&[
        "--log",
        "warn,datapilot_server::access=info",
        "--log-format",
        "json",
        "--trust-forwarded-for",
    ]);
    let admin = srv.client(ADMIN);
    admin
        .send(
            "GET",
            "/v1/whoami",
            &[
                // A forged first entry; the proxy appended the real one last.
                ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
                ("x-request-id", "req-xff-trusted"),
            ],
            None,
        )
        .await;
    let log_path = srv.dir.with_extension("log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(l) = text.lines().find(|l| l.contains("req-xff-trusted")) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["client"], "203.0.113.9");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
