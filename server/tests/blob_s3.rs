//! The blob stores against real storage: `S3BlobStore` against a real Garage 2.5 server (one
//! per test, see `common/garage.rs`), `DiskBlobStore` in a temp dir.
//!
//! What is checked: round trips (including a 20 MiB blob spanning several multipart parts,
//! with the process's peak memory measured in a child process), that a rejected or cancelled
//! upload leaves no object and no unfinished multipart upload, that a blob changed behind the
//! store's back makes the download stream end in an error, and that a stopped store gives
//! `BlobError::Unavailable` quickly.

#[path = "common/garage.rs"]
mod garage;

use std::io;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datapilot_server::blob::{
    BlobError, BlobStore, ByteStream, DiskBlobStore, S3BlobStore, S3Config,
};
use futures_util::StreamExt;
use garage::Garage;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
/// Chunk size of the generated request bodies (about what hyper hands over).
const BODY_CHUNK: usize = 64 * 1024;
/// Upload cap for the tests that do not test the cap.
const NO_CAP: u64 = 1 << 40;
/// How long cleanup that runs in the background (after a cancelled upload) may take.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Deterministic, incompressible-looking bytes: `len` bytes of the stream for `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A body of `len` pattern bytes made chunk by chunk as it is read (never all in memory), and
/// its SHA-256.
fn lazy_body(seed: u64, len: usize) -> (ByteStream, String) {
    let mut h = Sha256::new();
    for (i, start) in (0..len).step_by(BODY_CHUNK).enumerate() {
        h.update(pattern(seed + i as u64, BODY_CHUNK.min(len - start)));
    }
    let stream = futures_util::stream::iter((0..len).step_by(BODY_CHUNK).enumerate()).map(
        move |(i, start)| {
            Ok(Bytes::from(pattern(
                seed + i as u64,
                BODY_CHUNK.min(len - start),
            )))
        },
    );
    (Box::pin(stream), hex::encode(h.finalize()))
}

fn body_of(data: &[u8]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(BODY_CHUNK)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// `len` bytes, then `end`: an error, or never another item (a client that stalls and is then
/// given up on). `consumed` fires once all bytes were taken by the store.
fn body_then(
    len: usize,
    end: Option<io::Error>,
    consumed: tokio::sync::oneshot::Sender<()>,
) -> ByteStream {
    let (data, _) = lazy_body(7, len);
    let mut consumed = Some(consumed);
    let mut end = end;
    let tail = futures_util::stream::poll_fn(move |_| {
        if let Some(tx) = consumed.take() {
            let _ = tx.send(());
        }
        match end.take() {
            Some(e) => std::task::Poll::Ready(Some(Err(e))),
            None => std::task::Poll::Pending,
        }
    });
    Box::pin(data.chain(tail))
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Drain a download: the SHA-256 of what came, its length, the largest chunk, and the error it
/// ended with, if any.
async fn drain(mut s: ByteStream) -> (String, u64, usize, Option<io::Error>) {
    let (mut h, mut n, mut biggest) = (Sha256::new(), 0u64, 0usize);
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => {
                h.update(&b);
                n += b.len() as u64;
                biggest = biggest.max(b.len());
            }
            Err(e) => return (hex::encode(h.finalize()), n, biggest, Some(e)),
        }
    }
    (hex::encode(h.finalize()), n, biggest, None)
}

fn config(g: &Garage, prefix: &str) -> S3Config {
    let (id, secret) = (g.key_id.clone(), g.secret.clone());
    S3Config::from_spec(&g.spec(prefix), move |k| match k {
        "DATAPILOT_S3_ACCESS_KEY_ID" => Some(id.clone()),
        "DATAPILOT_S3_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    })
    .expect("spec")
}

/// The store under `prefix`, once Garage answers S3 requests (its port opens a moment before
/// the default bucket and key exist).
async fn open(g: &Garage, prefix: &str) -> S3BlobStore {
    let store = S3BlobStore::new(config(g, prefix)).expect("S3BlobStore::new");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.get(&"0".repeat(64)).await {
            Ok(None) => return store,
            Ok(Some(_)) => panic!("an empty bucket has a blob"),
            Err(e) if Instant::now() > deadline => {
                panic!("garage never became ready: {e}\n{}", g.log_tail(30))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A plain client on the same bucket, to look and tamper behind the store's back.
fn raw(g: &Garage) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&g.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region(&g.region)
        .with_bucket_name(&g.bucket)
        .with_access_key_id(&g.key_id)
        .with_secret_access_key(&g.secret)
        .build()
        .expect("raw client")
}

async fn keys(raw: &AmazonS3, prefix: &str) -> Vec<String> {
    let p = ObjectPath::from(prefix);
    let mut out: Vec<String> = raw
        .list(Some(&p))
        .map(|m| m.expect("list").location.to_string())
        .collect()
        .await;
    out.sort();
    out
}

fn blob_key(prefix: &str, hex: &str) -> String {
    format!("{prefix}/sha256/{}/{hex}", &hex[..2])
}

/// Wait until nothing is under `prefix` and Garage has no unfinished multipart upload: what a
/// rejected or cancelled upload must come to.
async fn assert_nothing_left(g: &Garage, raw: &AmazonS3, prefix: &str, what: &str) {
    let deadline = Instant::now() + CLEANUP_WAIT;
    loop {
        let left = keys(raw, prefix).await;
        let unfinished = g.unfinished_multipart_uploads();
        if left.is_empty() && unfinished == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after {CLEANUP_WAIT:?} still {left:?} and {unfinished} unfinished multipart uploads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// S3BlobStore against Garage

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trips_small_empty_and_multipart_blobs() {
    let g = Garage::start();
    let store = open(&g, "t/blobs").await;
    let raw = raw(&g);

    // Small (one PUT straight at the address) and empty.
    let small = pattern(1, 1000);
    let small_hex = sha_hex(&small);
    assert_eq!(
        store
            .put(&small_hex, body_of(&small), NO_CAP)
            .await
            .unwrap(),
        1000
    );
    let empty_hex = sha_hex(b"");
    assert_eq!(
        store.put(&empty_hex, body_of(b""), NO_CAP).await.unwrap(),
        0
    );

    // 20 MiB: four 5 MiB parts, generated as the store reads.
    let len = 20 * MIB;
    let (body, big_hex) = lazy_body(100, len);
    assert_eq!(store.put(&big_hex, body, NO_CAP).await.unwrap(), len as u64);

    assert_eq!(
        keys(&raw, "t").await,
        {
            let mut k = vec![
                blob_key("t/blobs", &small_hex),
                blob_key("t/blobs", &empty_hex),
                blob_key("t/blobs", &big_hex),
            ];
            k.sort();
            k
        },
        "only the three blobs, at their addresses; no temporary object left"
    );
    assert_eq!(g.unfinished_multipart_uploads(), 0);

    let (size, s) = store.get(&small_hex).await.unwrap().expect("small blob");
    assert_eq!(size, 1000);
    let (h, n, _, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!((h, n), (small_hex.clone(), 1000));

    let (size, s) = store.get(&empty_hex).await.unwrap().expect("empty blob");
    assert_eq!(size, 0);
    let (h, n, _, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!((h, n), (empty_hex.clone(), 0));

    let (size, s) = store.get(&big_hex).await.unwrap().expect("big blob");
    assert_eq!(size, len as u64);
    let (h, n, biggest, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!((h, n), (big_hex.clone(), len as u64));
    assert!(
        biggest <= 4 * MIB,
        "downloads come in bounded chunks, got one of {biggest}"
    );

    assert_eq!(store.verify(&big_hex).await.unwrap(), Some(len as u64));
    assert_eq!(store.verify(&"1".repeat(64)).await.unwrap(), None);

    // Uploading the same bytes again is fine (content addressing: same key, same bytes).
    let (body, again) = lazy_body(100, len);
    assert_eq!(again, big_hex);
    assert_eq!(store.put(&big_hex, body, NO_CAP).await.unwrap(), len as u64);
    assert_eq!(keys(&raw, "t/blobs/tmp").await, Vec::<String>::new());

    store.delete(&big_hex).await.unwrap();
    store.delete(&big_hex).await.unwrap(); // absent is fine
    assert!(store.get(&big_hex).await.unwrap().is_none());
}

/// The 20 MiB upload and download in a fresh process (the child test below), whose peak RSS
/// must grow by less than the blob: the store streams, it never holds the whole blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_and_download_memory_is_bounded() {
    let g = Garage::start();
    drop(open(&g, "mem").await);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_memory_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DATAPILOT_PROBE_SPEC", g.spec("mem"))
        .env("DATAPILOT_S3_ACCESS_KEY_ID", &g.key_id)
        .env("DATAPILOT_S3_SECRET_ACCESS_KEY", &g.secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grew: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("probe: peak rss grew by KiB "))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no probe line in:\n{stdout}"));
    println!("child: {stdout}");
    assert!(
        grew < 20 * 1024,
        "peak RSS grew by {grew} KiB for a 20 MiB blob: the store buffered it whole"
    );
}

/// Run by `s3_upload_and_download_memory_is_bounded` in a child process (alone, so that the
/// peak RSS is this test's); ignored otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by s3_upload_and_download_memory_is_bounded in a child process"]
async fn child_memory_probe() {
    let spec = std::env::var("DATAPILOT_PROBE_SPEC").expect("run by the parent test");
    let store = S3BlobStore::from_env_spec(&spec).unwrap();
    assert!(store.get(&"0".repeat(64)).await.unwrap().is_none());
    let before = peak_rss_kib();
    let len = 20 * MIB;
    let (body, hex) = lazy_body(200, len);
    assert_eq!(store.put(&hex, body, NO_CAP).await.unwrap(), len as u64);
    let after_put = peak_rss_kib();
    let (_, s) = store.get(&hex).await.unwrap().unwrap();
    let (h, n, _, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!((h, n), (hex, len as u64));
    let after_get = peak_rss_kib();
    println!(
        "\nprobe: peak rss grew by KiB {} (put {}, get {})",
        after_get - before,
        after_put - before,
        after_get - after_put
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_rejected_uploads_leave_nothing() {
    let g = Garage::start();
    let store = open(&g, "rej").await;
    let raw = raw(&g);
    let wrong = "ab".repeat(32);

    // Digest mismatch, small (never sent) and multipart (aborted).
    for len in [1000, 12 * MIB] {
        let (body, actual) = lazy_body(3, len);
        match store.put(&wrong, body, NO_CAP).await {
            Err(BlobError::DigestMismatch { actual: a, size }) => {
                assert_eq!((a, size), (actual, len as u64));
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        assert_nothing_left(&g, &raw, "rej", &format!("digest mismatch of {len} bytes")).await;
    }

    // Over the cap after two parts went out.
    let (body, hex) = lazy_body(4, 12 * MIB);
    match store.put(&hex, body, 11 * MIB as u64).await {
        Err(BlobError::TooLarge(max)) => assert_eq!(max, 11 * MIB as u64),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_nothing_left(&g, &raw, "rej", "too large").await;

    // The client's body fails after two parts.
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let body = body_then(11 * MIB, Some(io::Error::other("client reset")), tx);
    match store.put(&wrong, body, NO_CAP).await {
        Err(BlobError::Body(m)) => assert!(m.contains("client reset"), "{m}"),
        other => panic!("expected Body, got {other:?}"),
    }
    assert_nothing_left(&g, &raw, "rej", "body error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_cancelled_upload_leaves_nothing() {
    let g = Garage::start();
    let store = open(&g, "cancel").await;
    let raw = raw(&g);

    // 11 MiB arrive (two parts sent, a third filling), then the client stalls and the request
    // is given up on: the put future is dropped mid-stream.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let body = body_then(11 * MIB, None, tx);
    let hex = "cd".repeat(32);
    tokio::select! {
        r = store.put(&hex, body, NO_CAP) => panic!("a stalled upload finished: {r:?}"),
        _ = async {
            rx.await.unwrap();
            // Let the part uploads get under way: there is something to clean up.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(g.unfinished_multipart_uploads(), 1);
        } => {}
    }
    assert_nothing_left(&g, &raw, "cancel", "cancelled upload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_corrupt_object_cuts_the_download() {
    let g = Garage::start();
    let store = open(&g, "rot").await;
    let raw = raw(&g);

    for (len, tampered) in [
        (9 * MIB, pattern(99, 9 * MIB)), // same size, other bytes (three ranged reads)
        (1000, pattern(98, 999)),        // one byte short
    ] {
        let data = pattern(5, len);
        let hex = sha_hex(&data);
        store.put(&hex, body_of(&data), NO_CAP).await.unwrap();
        assert_eq!(store.verify(&hex).await.unwrap(), Some(len as u64));

        // Overwritten behind the store's back.
        let key = ObjectPath::from(blob_key("rot", &hex));
        raw.put(&key, Bytes::from(tampered.clone()).into())
            .await
            .unwrap();

        let (size, s) = store.get(&hex).await.unwrap().expect("still there");
        assert_eq!(size, tampered.len() as u64);
        let (_, n, _, err) = drain(s).await;
        assert!(
            n < tampered.len() as u64,
            "the last chunk and the clean end are withheld: {n} bytes passed"
        );
        match BlobError::from_stream_error(err.expect("the stream must end in an error")) {
            BlobError::Corrupt { expected, actual } => {
                assert_eq!(expected, hex);
                assert_eq!(actual, sha_hex(&tampered));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        match store.verify(&hex).await {
            Err(BlobError::Corrupt { expected, .. }) => assert_eq!(expected, hex),
            other => panic!("expected Corrupt from verify, got {other:?}"),
        }

        // Uploading the right bytes again repairs it.
        store.put(&hex, body_of(&data), NO_CAP).await.unwrap();
        assert_eq!(store.verify(&hex).await.unwrap(), Some(len as u64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sweep_removes_only_old_temp_objects() {
    let g = Garage::start();
    let raw = raw(&g);
    // A leftover of a crash between completing an upload and publishing it.
    let leftover = ObjectPath::from("sw/tmp/up_LEFTOVER");
    raw.put(&leftover, Bytes::from_static(b"partial").into())
        .await
        .unwrap();
    let blob = pattern(6, 100);
    let hex = sha_hex(&blob);

    // The constructor's background sweep keeps it: it is younger than an hour.
    let store = open(&g, "sw").await;
    store.put(&hex, body_of(&blob), NO_CAP).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.sweep(Duration::from_secs(3600)).await.unwrap(), 0);
    assert!(keys(&raw, "sw/tmp").await.contains(&leftover.to_string()));

    // Counted as old, it goes; blobs are never touched.
    assert_eq!(store.sweep(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(keys(&raw, "sw").await, vec![blob_key("sw", &hex)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_stopped_store_is_unavailable_quickly() {
    let mut g = Garage::start();
    let store = open(&g, "down").await;
    let data = pattern(8, 1000);
    let hex = sha_hex(&data);
    store.put(&hex, body_of(&data), NO_CAP).await.unwrap();
    g.stop();

    let bound = Duration::from_secs(10);
    let t = Instant::now();
    let r = store.get(&hex).await;
    assert!(
        matches!(r, Err(BlobError::Unavailable(_))),
        "get: {:?}",
        r.map(|o| o.map(|x| x.0))
    );
    let t_get = t.elapsed();

    let t = Instant::now();
    let r = store.put(&hex, body_of(&data), NO_CAP).await;
    assert!(
        matches!(r, Err(BlobError::Unavailable(_))),
        "small put: {r:?}"
    );
    let t_small = t.elapsed();

    let t = Instant::now();
    let (body, big) = lazy_body(9, 6 * MIB);
    let r = store.put(&big, body, NO_CAP).await;
    assert!(
        matches!(r, Err(BlobError::Unavailable(_))),
        "multipart put: {r:?}"
    );
    let t_big = t.elapsed();

    let t = Instant::now();
    let r = store.verify(&hex).await;
    assert!(matches!(r, Err(BlobError::Unavailable(_))), "verify: {r:?}");
    let r = store.delete(&hex).await;
    assert!(matches!(r, Err(BlobError::Unavailable(_))), "delete: {r:?}");
    let t_rest = t.elapsed();

    println!("unavailable after: get {t_get:?}, put {t_small:?}, multipart {t_big:?}, verify+delete {t_rest:?}");
    for (what, took) in [
        ("get", t_get),
        ("put", t_small),
        ("multipart put", t_big),
        ("verify+delete", t_rest),
    ] {
        assert!(took < bound, "{what} took {took:?} to report a down store");
    }
}

// ---------------------------------------------------------------------------------------------
// DiskBlobStore

fn tmp_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cancelled_upload_removes_its_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskBlobStore::open(dir.path()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let body = body_then(3 * MIB, None, tx);
    let hex = "ef".repeat(32);
    tokio::select! {
        r = store.put(&hex, body, NO_CAP) => panic!("a stalled upload finished: {r:?}"),
        _ = async {
            rx.await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        } => {}
    }
    let deadline = Instant::now() + CLEANUP_WAIT;
    while !tmp_files(dir.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "temp file left: {:?}",
            tmp_files(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get(&hex).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_corrupt_blob_cuts_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskBlobStore::open(dir.path()).unwrap();
    let data = pattern(10, 300_000);
    let hex = sha_hex(&data);
    store.put(&hex, body_of(&data), NO_CAP).await.unwrap();
    assert_eq!(store.verify(&hex).await.unwrap(), Some(300_000));
    let (_, s) = store.get(&hex).await.unwrap().unwrap();
    let (h, _, _, err) = drain(s).await;
    assert!(err.is_none());
    assert_eq!(h, hex);

    // One flipped bit on disk.
    let path = dir.path().join("sha256").join(&hex[..2]).join(&hex);
    let mut bad = data.clone();
    bad[123_456] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();

    let (size, s) = store.get(&hex).await.unwrap().unwrap();
    assert_eq!(size, 300_000);
    let (_, n, _, err) = drain(s).await;
    assert!(n < 300_000, "the last chunk is withheld: {n} bytes passed");
    match BlobError::from_stream_error(err.expect("the stream must end in an error")) {
        BlobError::Corrupt { expected, actual } => {
            assert_eq!(expected, hex);
            assert_eq!(actual, sha_hex(&bad));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.verify(&hex).await,
        Err(BlobError::Corrupt { .. })
    ));
    assert!(tmp_files(dir.path()).is_empty());
}
