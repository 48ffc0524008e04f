//! Faults and hostile clients against the real server (issue 11's findings 1-4): cut and
//! abandoned requests never leave an `Idempotency-Key` unusable or temporary data behind, slow
//! or silent clients are timed out, connections are capped, and buffered bodies stay within the
//! memory budget however many are half-sent.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(srv: &Server) -> String {
    srv.base.trim_start_matches("http://").to_string()
}

/// Open a raw connection and send a request head (and `body`), without finishing the body.
async fn partial(srv: &Server, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr(srv)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    s
}

fn upload_head(srv: &Server, run: &str, name: &str, sha: &str, len: usize, key: &str) -> String {
    format!(
        "POST /v1/runs/{run}/artifacts?name={name}&sha256={sha} HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {ADMIN}\r\nContent-Type: application/octet-stream\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {len}\r\n\r\n",
        addr(srv)
    )
}

async fn running_run(admin: &Api, tag: &str) -> String {
    let ds = admin.dataset(tag).await;
    let digest = admin.version(&ds, tag).await;
    admin.run(&[(&ds, &digest)]).await.0
}

/// Finding 1: an upload cut mid-body, and requests whose client left before the answer, leave
/// their keys usable: the retry with the same key succeeds (before: a 400 replayed for 24 h, or
/// 409 in flight until restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_and_abandoned_requests_leave_their_keys_usable() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let run = running_run(&admin, "cut").await;
    let body: Vec<u8> = (0..2 << 20).map(|i| (i % 253) as u8).collect();
    let sha = sha256_hex(&body);
    // Cut after 1 MiB.
    let s = partial(
        &srv,
        &upload_head(&srv, &run, "cut.bin", &sha, body.len(), "cut-1"),
        &body[..1 << 20],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = admin
        .send(
            "POST",
            &format!("/v1/runs/{run}/artifacts?name=cut.bin&sha256={sha}"),
            &[
                ("content-type", "application/octet-stream"),
                ("idempotency-key", "cut-1"),
            ],
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "the retry after a cut upload: {}", r.text());
    // Whole requests whose client closes without reading the answer.
    for i in 0..10 {
        let b = vec![i as u8; 1000];
        let h = sha256_hex(&b);
        let s = partial(
            &srv,
            &upload_head(
                &srv,
                &run,
                &format!("a{i}.bin"),
                &h,
                b.len(),
                &format!("ab-{i}"),
            ),
            &b,
        )
        .await;
        drop(s);
        let js = serde_json::to_vec(&json!({ "name": format!("abandoned-{i}") })).unwrap();
        let head = format!(
            "POST /v1/datasets HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: ds-{i}\r\nContent-Length: {}\r\n\r\n",
            addr(&srv),
            js.len()
        );
        drop(partial(&srv, &head, &js).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..10 {
        let b = vec![i as u8; 1000];
        let r = admin
            .send(
                "POST",
                &format!(
                    "/v1/runs/{run}/artifacts?name=a{i}.bin&sha256={}",
                    sha256_hex(&b)
                ),
                &[
                    ("content-type", "application/octet-stream"),
                    ("idempotency-key", &format!("ab-{i}")),
                ],
                Some(b.clone()),
            )
            .await;
        assert_eq!(r.status, 201, "upload retry {i}: {}", r.text());
        let r = admin
            .post_idem(
                "/v1/datasets",
                &format!("ds-{i}"),
                json!({ "name": format!("abandoned-{i}") }),
            )
            .await;
        assert_eq!(r.status, 201, "dataset retry {i}: {}", r.text());
    }
    // Nothing twice.
    let arts = admin
        .get(&format!("/v1/runs/{run}/artifacts?limit=100"))
        .await
        .json();
    assert_eq!(arts["items"].as_array().unwrap().len(), 11);
    let ev = admin
        .get("/v1/audit/events?action=dataset.create&limit=100")
        .await
        .json();
    assert_eq!(ev["items"].as_array().unwrap().len(), 10 + 1);
}

/// Finding 2: cancelled uploads leave nothing in `blobs/tmp/` (before: 598 MiB until restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_uploads_leave_no_temporary_data() {
    if skip_on_remote("reads the local blob directory") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let run = running_run(&admin, "tmp").await;
    let chunk = vec![7u8; 1 << 20];
    let mut socks = Vec::new();
    for i in 0..6 {
        let mut s = partial(
            &srv,
            &upload_head(
                &srv,
                &run,
                &format!("c{i}.bin"),
                &"0".repeat(64),
                16 << 20,
                &format!("c{i}"),
            ),
            &[],
        )
        .await;
        for _ in 0..8 {
            s.write_all(&chunk).await.unwrap();
        }
        socks.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tmp = srv.dir.join("blobs/tmp");
    let held: u64 = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(held > 0, "the uploads were in progress");
    drop(socks);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} temp files left after the clients went away",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Finding 3: a connection that never finishes its headers is closed after `--header-timeout`;
/// a body that stops arriving fails after `--body-stall-timeout`; connections per address are
/// capped (before: held forever, until `Too many open files`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_cut_off() {
    let srv = Server::start_with(&[
        "--header-timeout",
        "1",
        "--body-stall-timeout",
        "1",
        "--max-connections-per-ip",
        "8",
    ]);
    let admin = srv.client(ADMIN);
    // Slow headers.
    let mut s = partial(&srv, "GET /v1/health HTTP/1.1\r\nHost: x\r\n", b"").await;
    let t = Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the server closes a connection whose headers never finish")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(4));
    // A stalled body: one byte, then silence.
    let run = running_run(&admin, "stall").await;
    let mut s = partial(
        &srv,
        &upload_head(&srv, &run, "s.bin", &"0".repeat(64), 1000, "st-1"),
        b"x",
    )
    .await;
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("a stalled upload is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no data received"), "{answer}");
    // The stalled key was not kept: the real upload with it works.
    let b = vec![1u8; 1000];
    let r = admin
        .send(
            "POST",
            &format!(
                "/v1/runs/{run}/artifacts?name=s.bin&sha256={}",
                sha256_hex(&b)
            ),
            &[
                ("content-type", "application/octet-stream"),
                ("idempotency-key", "st-1"),
            ],
            Some(b),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Per-address cap: 8 idle connections held, the 9th is closed at once.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr(&srv)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr(&srv)).await.unwrap();
    let _ = extra
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let n = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf))
        .await
        .expect("the extra connection is closed")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "the connection over the cap was served: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(held);
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Finding 4: twelve half-sent 48 MiB manifests keep the server's peak RSS within the body
/// budget (64 MiB here) plus its baseline (before: 8 -> 772 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_large_bodies_stay_within_the_memory_budget() {
    let srv = Server::start_with(&["--max-buffered-bytes", &(64u64 << 20).to_string()]);
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("mem").await;
    let base = peak_rss_kib(srv.child.id());
    let declared = 48usize << 20;
    let sent = 40usize << 20;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let a = addr(&srv);
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&a).await.unwrap();
            let head = format!(
                "POST /v1/datasets/{ds}/versions HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {ADMIN}\r\n\
                 Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b' '; 1 << 20];
            // Writes block once the server stops reading (it waits for budget room): bounded.
            let _ = tokio::time::timeout(Duration::from_secs(6), async {
                for _ in 0..sent >> 20 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(s);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak_rss_kib(srv.child.id());
    let grew_mib = (peak.saturating_sub(base)) / 1024;
    eprintln!(
        "peak RSS grew by {grew_mib} MiB (baseline {} MiB)",
        base / 1024
    );
    assert!(
        grew_mib < 64 + 48,
        "peak RSS grew by {grew_mib} MiB with a 64 MiB body budget"
    );
    // Still serving.
    assert_eq!(admin.get("/v1/health").await.status, 200);
}

/// Everything a raw connection gets back until the server closes it.
async fn raw_exchange(srv: &Server, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr(srv)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

/// Finding 6: every error is problem+json with a request id, the HTTP codec's own included;
/// invalid UTF-8 in a query, duplicate keys in JSON maps and ids that break their pattern are
/// 400 `validation_failed` (before: empty bodies, U+FFFD, last key wins, 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_problem_and_malformed_input_is_refused() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    for (request, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (
            b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"
                .to_vec(),
            "400",
        ),
        (
            [b"GET /".as_slice(), &[b'a'; 70_000], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat(),
            "414",
        ),
    ] {
        let answer = raw_exchange(&srv, &request).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/problem+json"), "{answer}");
        assert!(lower.contains("x-request-id: req_"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["status"].to_string(), status);
        assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
    }
    // Invalid UTF-8 once percent-decoded.
    admin
        .get("/v1/audit/events?subject=run:%FF%FE")
        .await
        .assert_problem(400, "validation_failed");
    // Duplicate keys inside JSON maps.
    let ds = admin.dataset("dups").await;
    let digest = admin.version(&ds, "d").await;
    let body = format!(
        r#"{{"name":"t","inputs":[{{"dataset_id":"{ds}","digest":"{digest}"}}],"git_commit":"{}","image_digest":"sha256:{}","params":{{"lr":"0.1","lr":"9"}}}}"#,
        "a".repeat(40),
        "b".repeat(64)
    );
    let r = admin
        .send(
            "POST",
            "/v1/runs",
            &[("content-type", "application/json")],
            Some(body.into_bytes()),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    assert!(r.text().contains("duplicate key"), "{}", r.text());
    let r = admin
        .send(
            "POST",
            &format!("/v1/datasets/{ds}/versions/{digest}/gates"),
            &[("content-type", "application/json")],
            Some(br#"{"gate":"g","status":"passed","details":{"a":"1","a":"2"}}"#.to_vec()),
        )
        .await;
    r.assert_problem(400, "validation_failed");
    // Ids that break their pattern.
    for path in [
        "/v1/runs/nope".to_string(),
        "/v1/datasets/ds_short".to_string(),
        format!("/v1/datasets/{ds}/versions/sha256:XYZ"),
        "/v1/runs/run_01M8XPHYHJZYEN9D2W0Y78MK9U/artifacts".to_string(),
    ] {
        admin
            .get(&path)
            .await
            .assert_problem(400, "validation_failed");
    }
    // A well-formed id that does not exist is still 404.
    admin
        .get("/v1/runs/run_01M8XPHYHJZYEN9D2W0Y78MK94")
        .await
        .assert_problem(404, "not_found");
}

/// Finding 7: a run whose `createRun` answer was lost (its retry gets `secret_not_replayable`)
/// is not stuck: an engineer issues a new run token (audited; the old one stops working), or
/// finishes it as failed; its evidence bundle still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_run_can_get_a_new_token_or_be_failed() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let eng = admin.with_token(&admin.token("engineer").await);
    let viewer = admin.with_token(&admin.token("viewer").await);
    let ds = eng.dataset("orphans").await;
    let digest = eng.version(&ds, "o").await;
    let body = json!({ "name": "lost", "inputs": [{ "dataset_id": ds, "digest": digest }],
        "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) });
    let first = eng.post_idem("/v1/runs", "lost-1", body.clone()).await;
    assert_eq!(first.status, 201);
    let old_token = first.json()["run_token"].as_str().unwrap().to_string();
    // The answer is "lost": the retry cannot give the token again.
    let retry = eng.post_idem("/v1/runs", "lost-1", body.clone()).await;
    retry.assert_problem(409, "secret_not_replayable");
    let run = first.json()["run"]["id"].as_str().unwrap().to_string();
    assert!(retry.text().contains(&run));
    // A viewer may not; an engineer may.
    viewer
        .post(&format!("/v1/runs/{run}/token"), json!({}))
        .await
        .assert_problem(403, "forbidden");
    let r = eng
        .send("POST", &format!("/v1/runs/{run}/token"), &[], None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let new_token = r.json()["run_token"].as_str().unwrap().to_string();
    assert!(new_token.starts_with("dpr_") && new_token != old_token);
    let points = json!({ "points": [{ "name": "loss", "step": 1, "value": 0.5 }] });
    assert_eq!(
        admin
            .with_token(&new_token)
            .post(&format!("/v1/runs/{run}/metrics"), points.clone())
            .await
            .status,
        201
    );
    admin
        .with_token(&old_token)
        .post(&format!("/v1/runs/{run}/metrics"), points)
        .await
        .assert_problem(401, "unauthenticated");
    let ev = admin
        .get(&format!(
            "/v1/audit/events?subject=run:{run}&action=run.token_reissue"
        ))
        .await
        .json();
    assert_eq!(ev["items"].as_array().unwrap().len(), 1);
    assert!(
        !ev.to_string().contains(&new_token),
        "the token is never audited"
    );
    // The second orphan: finished as failed by an engineer; no token needed.
    let second = eng.post("/v1/runs", body).await.json();
    let run2 = second["run"]["id"].as_str().unwrap().to_string();
    let fin = eng
        .post(
            &format!("/v1/runs/{run2}/finish"),
            json!({ "status": "failed" }),
        )
        .await;
    assert_eq!(fin.status, 200, "{}", fin.text());
    eng.send("POST", &format!("/v1/runs/{run2}/token"), &[], None)
        .await
        .assert_problem(409, "run_sealed");
    // Bundles with the reissue event in their audit slice verify.
    let v = verifier(&admin).await;
    let bundle = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(bundle.status, 200);
    let report = datapilot::evidence::verify_bundle(&bundle.body, &[v]);
    assert!(report.ok, "{report:?}");
}

/// A blob whose stored bytes no longer match its digest is refused on download with a clear
/// error (small: before a byte is sent; large: the body is cut, never completed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blobs_are_refused_on_download() {
    if skip_on_remote("damages a file in the local blob directory") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let run = running_run(&admin, "rot").await;
    let small = b"small weights".to_vec();
    let large: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 249) as u8).collect();
    let mut ids = Vec::new();
    for (name, bytes) in [("small.bin", &small), ("large.bin", &large)] {
        let r = admin.upload(&run, name, bytes, &sha256_hex(bytes)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let sha = sha256_hex(bytes);
        let path = srv.dir.join("blobs/sha256").join(&sha[..2]).join(&sha);
        let mut damaged = std::fs::read(&path).unwrap();
        damaged[3] ^= 1;
        std::fs::write(&path, damaged).unwrap();
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let r = admin
        .get(&format!("/v1/runs/{run}/artifacts/{}/content", ids[0]))
        .await;
    r.assert_problem(500, "internal");
    assert!(r.text().contains("no longer match"), "{}", r.text());
    // The large one: headers went out, then the body is cut.
    let url = format!("{}/v1/runs/{run}/artifacts/{}/content", srv.base, ids[1]);
    let resp = reqwest::Client::new()
        .get(url)
        .header("authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await;
    assert!(
        body.is_err() || body.unwrap().len() < large.len(),
        "a damaged large blob was served whole"
    );
}
