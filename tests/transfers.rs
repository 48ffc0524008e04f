//! Transfers of real size against the real server (issue 10), through the native SDK:
//!
//! - a 2 GiB artifact uploaded from a file and downloaded into one (temp file, renamed once
//!   verified), with flat memory; then its blob damaged on the server's disk, and the next
//!   download fails with a typed error and leaves no file behind;
//! - a 256 MiB upload over a loopback link throttled to 3.5 MiB/s (about 73 s, longer than the
//!   old 60 s call deadline) succeeds with the client's default settings;
//! - a link that stops moving fails an upload and a download after the stall timeout with
//!   `Error::Timeout { limit: Stall }`; a link that flips one byte fails a download with
//!   `Error::Verification` and leaves no file.
//!
//! Source files are sparse (no disk, no memory); the server's copy and the downloaded copy are
//! real and removed as soon as they were checked.

#![cfg(all(not(target_arch = "wasm32"), feature = "native"))]

mod live_server;

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datapilot::error::TimeoutLimit;
use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::runs::CreateRunRequest;
use datapilot::model::DatasetVersionRef;
use datapilot::retry::{RetryConfig, DEFAULT_CALL_DEADLINE};
use datapilot::{Client, Error};
use datapilot_fault_proxy::link::{Direction, LinkConfig, SlowLink};

const ADMIN: &str = "dpt_transfersAdmin0123456789abcd";
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Peak RSS growth allowed for moving 2 GiB up and down (the SDK holds a few 1 MiB chunks).
const MAX_RSS_GROWTH: u64 = 128 * MIB;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A sparse file of `len` bytes with a few marked regions (so order and offsets matter).
fn sparse_file(path: &std::path::Path, len: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut at = 0;
    while at < len {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(format!("offset {at}").as_bytes()).unwrap();
        at += 256 * MIB + 4099;
    }
}

async fn new_run(client: &Client) -> (String, String) {
    let ds = client
        .create_dataset(&CreateDatasetRequest::new("transfers"))
        .send()
        .await
        .unwrap();
    let files = vec![datapilot::manifest::FileEntry {
        path: "a.txt".into(),
        sha256: sha256_hex(b"a"),
        size: 1,
    }];
    let manifest = datapilot::manifest::Manifest::from_entries(files).unwrap();
    let req = RegisterDatasetVersionRequest::new(
        manifest.digest().to_owned(),
        vec![FileEntry {
            path: "a.txt".into(),
            sha256: sha256_hex(b"a"),
            size: 1,
        }],
    );
    let version = client
        .register_dataset_version(&ds.id, &req)
        .send()
        .await
        .unwrap()
        .version;
    let created = client
        .create_run(&CreateRunRequest::new(
            "transfers",
            vec![DatasetVersionRef::new(&ds.id, &version.digest)],
            "4015b57a143aec5156fd1444a017a32137a3fd0f",
            format!("sha256:{}", "6105d6cc".repeat(8)),
        ))
        .send()
        .await
        .unwrap();
    (created.run.id, created.run_token.expose().to_owned())
}

/// A client of `url` with the SDK's defaults (no timeout or deadline set).
fn default_client(url: &str, token: &str) -> Client {
    Client::builder()
        .base_url(url)
        .token(token)
        .build()
        .unwrap()
}

/// The server's stored copy of the blob `sha256`.
fn blob_file(server: &live_server::Server, sha256: &str) -> std::path::PathBuf {
    let mut stack = vec![server.dir.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy() == sha256 {
                return e.path();
            }
        }
    }
    panic!("no blob {sha256} under {}", server.dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_artifact_round_trips_with_flat_memory_and_a_damaged_blob_is_refused() {
    let server = live_server::start_server_with(
        ADMIN,
        "transfers-2g",
        &["--max-artifact-bytes", &(4 * GIB).to_string()],
    );
    let admin = live_server::client(&server, ADMIN);
    let (run, token) = new_run(&admin).await;
    let client = default_client(&server.url, &token);

    let len = 2 * GIB;
    let source = server.dir.join("model-2g.bin");
    sparse_file(&source, len);
    let rss_before = peak_rss();

    let uploaded = Arc::new(AtomicU64::new(0));
    let seen = uploaded.clone();
    let artifact = client
        .upload_artifact_file(&run, "model-2g.bin", &source)
        .on_progress(move |bytes, total| {
            assert_eq!(total, 2 * GIB);
            seen.store(bytes, Ordering::Relaxed);
        })
        .send()
        .await
        .unwrap();
    assert_eq!(artifact.size, len);
    assert_eq!(
        uploaded.load(Ordering::Relaxed),
        len,
        "progress reached the end"
    );
    let (sha, _) = datapilot::native::sha256_file(&source).await.unwrap();
    assert_eq!(artifact.sha256, sha);
    std::fs::remove_file(&source).unwrap();

    let target = server.dir.join("downloaded.bin");
    let downloaded = Arc::new(AtomicU64::new(0));
    let seen = downloaded.clone();
    let got = client
        .download_artifact_to_file(&run, &artifact.id, &target)
        .on_progress(move |bytes, _| seen.store(bytes, Ordering::Relaxed))
        .send()
        .await
        .unwrap();
    assert_eq!(got.id, artifact.id);
    assert_eq!(downloaded.load(Ordering::Relaxed), len);
    let (sha_down, len_down) = datapilot::native::sha256_file(&target).await.unwrap();
    assert_eq!((sha_down.as_str(), len_down), (sha.as_str(), len));
    std::fs::remove_file(&target).unwrap();

    let growth = peak_rss().saturating_sub(rss_before);
    eprintln!(
        "peak RSS growth over a 2 GiB upload and download: {} MiB",
        growth / MIB
    );
    assert!(
        growth < MAX_RSS_GROWTH,
        "peak RSS grew by {growth} bytes moving 2 GiB (bound {MAX_RSS_GROWTH})"
    );

    // Damage the stored copy in the middle: the server cuts the download short (it checks the
    // blob while streaming), the SDK reports it, and nothing lands at the target.
    let blob = blob_file(&server, &artifact.sha256);
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.seek(SeekFrom::Start(GIB + 12345)).unwrap();
        f.write_all(b"bit rot").unwrap();
    }
    let e = client
        .download_artifact_to_file(&run, &artifact.id, &target)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Transport { .. } | Error::Verification(_)),
        "a damaged blob: {e:?}"
    );
    assert!(
        !target.exists(),
        "no file at the target after a failed download"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&server.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".datapilot-part"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The streamed form: an error, never the end of the stream.
    let mut stream = client
        .download_artifact_stream(&run, &artifact.id)
        .send()
        .await
        .unwrap();
    let outcome = loop {
        match stream.next_chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(outcome.is_err(), "a damaged blob streamed to the end");
    drop(stream);
    let _ = std::fs::remove_file(&blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_old_call_deadline_succeeds_with_default_settings() {
    let server = live_server::start_server(ADMIN, "transfers-slow");
    let admin = live_server::client(&server, ADMIN);
    let (run, token) = new_run(&admin).await;
    let upstream = server.url.strip_prefix("http://").unwrap().parse().unwrap();
    let link = SlowLink::start(
        upstream,
        LinkConfig {
            up: Direction {
                bytes_per_sec: Some(7 * MIB / 2),
                stall_after: None,
                corrupt_at: None,
            },
            down: Direction::default(),
        },
    )
    .await
    .unwrap();
    let client = default_client(&link.url(), &token);

    let source = server.dir.join("model-256m.bin");
    sparse_file(&source, 256 * MIB);
    let started = Instant::now();
    let artifact = client
        .upload_artifact_file(&run, "model-256m.bin", &source)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("256 MiB over a 3.5 MiB/s link: {took:?}");
    assert_eq!(artifact.size, 256 * MIB);
    // The point of the test: longer than the whole-call deadline every transfer used to have.
    assert!(
        took > DEFAULT_CALL_DEADLINE,
        "the link was not slow: {took:?}"
    );
    std::fs::remove_file(&source).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_times_out_and_a_corrupting_link_fails_verification() {
    let server = live_server::start_server(ADMIN, "transfers-stall");
    let admin = live_server::client(&server, ADMIN);
    let (run, token) = new_run(&admin).await;
    let upstream = server.url.strip_prefix("http://").unwrap().parse().unwrap();
    let stall = Duration::from_secs(2);
    let stalled_client = |url: &str| {
        Client::builder()
            .base_url(url)
            .token(token.as_str())
            .stall_timeout(stall)
            .retry(RetryConfig::disabled())
            .build()
            .unwrap()
    };
    let is_stall = |e: &Error| {
        matches!(
            e,
            Error::Timeout {
                limit: TimeoutLimit::Stall,
                ..
            }
        )
    };

    // Upload: the link forwards 1 MiB of the request, then nothing.
    let dead_up = SlowLink::start(
        upstream,
        LinkConfig {
            up: Direction {
                bytes_per_sec: None,
                stall_after: Some(MIB),
                corrupt_at: None,
            },
            down: Direction::default(),
        },
    )
    .await
    .unwrap();
    let source = server.dir.join("model-64m.bin");
    sparse_file(&source, 64 * MIB);
    let started = Instant::now();
    let e = stalled_client(&dead_up.url())
        .upload_artifact_file(&run, "model-64m.bin", &source)
        .send()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(is_stall(&e), "{e:?}");
    assert!(took >= stall && took < stall * 10, "{took:?}");

    // Download: the artifact is stored directly, then read over a link that passes the head
    // and 1 MiB of the body.
    let direct = default_client(&server.url, &token);
    let artifact = direct
        .upload_artifact_file(&run, "model-64m.bin", &source)
        .send()
        .await
        .unwrap();
    std::fs::remove_file(&source).unwrap();
    let dead_down = SlowLink::start(
        upstream,
        LinkConfig {
            up: Direction::default(),
            down: Direction {
                bytes_per_sec: None,
                stall_after: Some(MIB),
                corrupt_at: None,
            },
        },
    )
    .await
    .unwrap();
    let client = stalled_client(&dead_down.url());
    let started = Instant::now();
    let mut stream = client
        .download_artifact_stream(&run, &artifact.id)
        .send()
        .await
        .unwrap();
    let e = loop {
        match stream.next_chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a stalled download ended"),
            Err(e) => break e,
        }
    };
    let took = started.elapsed();
    assert!(is_stall(&e), "{e:?}");
    assert!(took >= stall && took < stall * 10, "{took:?}");
    assert!(stream.bytes_received() < artifact.size);
    drop(stream);

    // A link that flips one byte of the answer (length and framing intact): only the client's
    // own check against the recorded sha256 can see it. The file is never created.
    let corrupting = SlowLink::start(
        upstream,
        LinkConfig {
            up: Direction::default(),
            down: Direction {
                bytes_per_sec: None,
                stall_after: None,
                corrupt_at: Some(5 * MIB),
            },
        },
    )
    .await
    .unwrap();
    let client = default_client(&corrupting.url(), &token);
    let target = server.dir.join("corrupted.bin");
    let e = client
        .download_artifact_to_file(&run, &artifact.id, &target)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e:?}");
    assert!(!target.exists());

    // Slow is not stalled: a 4 MiB artifact read whole (`download_artifact`) over a 1 MiB/s
    // link takes ~4 s, four times the stall timeout, and arrives, because every chunk counts.
    let small: Vec<u8> = (0..4 * MIB as usize).map(|i| (i % 251) as u8).collect();
    let small_artifact = direct
        .upload_artifact_bytes(&run, "small.bin", small.clone())
        .send()
        .await
        .unwrap();
    let slow = SlowLink::start(
        upstream,
        LinkConfig {
            up: Direction::default(),
            down: Direction {
                bytes_per_sec: Some(MIB),
                stall_after: None,
                corrupt_at: None,
            },
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let content = Client::builder()
        .base_url(slow.url())
        .token(token.as_str())
        .stall_timeout(Duration::from_secs(1))
        .retry(RetryConfig::disabled())
        .build()
        .unwrap()
        .download_artifact(&run, &small_artifact.id)
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() > Duration::from_secs(3));
    assert_eq!(content.bytes, small);
}
