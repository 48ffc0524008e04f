//! Native artifact uploads stream: a file goes up in chunks (`upload_artifact_file`) and
//! arrives intact on the real server; a streamed body is not read ahead of the socket.

#![cfg(all(not(target_arch = "wasm32"), feature = "native"))]

mod live_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::runs::CreateRunRequest;
use datapilot::model::DatasetVersionRef;
use datapilot::native::{FileSource, FILE_CHUNK_BYTES};
use datapilot::retry::RetryConfig;
use datapilot::transport::{Body, BodyError, BodySource, BoxFuture, ChunkReader};
use datapilot::Client;
use sha2::Digest;

const ADMIN: &str = "dpt_nativeUploadAdmin0123456789ab";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A run to attach artifacts to (the default policy requires no gate).
async fn new_run(client: &Client) -> String {
    let ds = client
        .create_dataset(&CreateDatasetRequest::new("uploads"))
        .send()
        .await
        .unwrap();
    let entry = datapilot::manifest::FileEntry {
        path: "a.txt".into(),
        sha256: sha256_hex(b"a"),
        size: 1,
    };
    let manifest = datapilot::manifest::Manifest::from_entries(vec![entry]).unwrap();
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
    let run = client
        .create_run(&CreateRunRequest::new(
            "upload",
            vec![DatasetVersionRef::new(&ds.id, &version.digest)],
            "4015b57a143aec5156fd1444a017a32137a3fd0f",
            format!("sha256:{}", "6105d6cc".repeat(8)),
        ))
        .send()
        .await
        .unwrap();
    run.run.id
}

#[tokio::test]
async fn a_file_is_uploaded_in_chunks_and_arrives_intact() {
    let server = live_server::start_server(ADMIN, "upload");
    let client = live_server::client(&server, ADMIN);
    let run = new_run(&client).await;

    // 20 MiB and 5 bytes: not a multiple of the chunk size.
    let bytes: Vec<u8> = (0..(20 * FILE_CHUNK_BYTES + 5))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let path = server.dir.join("model.bin");
    std::fs::write(&path, &bytes).unwrap();
    let artifact = client
        .upload_artifact_file(&run, "model.bin", &path)
        .send()
        .await
        .unwrap();
    assert_eq!(artifact.size, bytes.len() as u64);
    assert_eq!(artifact.sha256, sha256_hex(&bytes));
    let back = client
        .download_artifact(&run, &artifact.id)
        .send()
        .await
        .unwrap();
    assert!(back.bytes == bytes, "downloaded bytes differ");

    // A missing file is refused before anything is sent, with the path in the message.
    let missing = server.dir.join("nope.bin");
    let err = client
        .upload_artifact_file(&run, "nope.bin", &missing)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, datapilot::Error::Build { .. }), "{err}");
    assert!(err.to_string().contains("nope.bin"), "{err}");
    assert!(
        FileSource::open(&server.dir).is_err(),
        "a directory is not a file"
    );
}

/// 64 chunks of 1 MiB made on demand, counting how many were made.
struct CountingSource {
    made: Arc<AtomicUsize>,
}

const CHUNKS: usize = 64;

impl BodySource for CountingSource {
    fn len(&self) -> Option<u64> {
        Some((CHUNKS * FILE_CHUNK_BYTES) as u64)
    }

    fn open(&self) -> Box<dyn ChunkReader> {
        Box::new(CountingReader {
            made: self.made.clone(),
        })
    }
}

struct CountingReader {
    made: Arc<AtomicUsize>,
}

impl ChunkReader for CountingReader {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, BodyError>> {
        Box::pin(async move {
            if self.made.load(Ordering::SeqCst) == CHUNKS {
                return Ok(None);
            }
            self.made.fetch_add(1, Ordering::SeqCst);
            Ok(Some(vec![7u8; FILE_CHUNK_BYTES]))
        })
    }
}

/// The transport streams: when the receiving end has read the first MiB, only a few chunks
/// have been made (channel and socket buffers), not all 64. A local socket stands in for the
/// server so the test controls when bytes are read.
#[tokio::test(flavor = "current_thread")]
async fn a_streamed_body_is_not_read_ahead_of_the_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let made = Arc::new(AtomicUsize::new(0));
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .token(ADMIN)
        .retry(RetryConfig::disabled())
        .build()
        .unwrap();
    let body = Body::Stream(Arc::new(CountingSource { made: made.clone() }));
    let sha = "0".repeat(64);
    let upload = client
        .upload_artifact("run_x", "big.bin", &sha, body)
        .send();
    let receiver = async {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut received = 0usize;
        while received < 2 * FILE_CHUNK_BYTES {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            received += n;
        }
        let made_when_read = made.load(Ordering::SeqCst);
        // Answer without reading the rest, as a server refusing a body does.
        let problem = r#"{"type":"about:blank","title":"Bad","status":400,"detail":"test","code":"bad_request","request_id":"req_t"}"#;
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            problem.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(problem.as_bytes()).await.unwrap();
        sock.shutdown().await.unwrap();
        made_when_read
    };
    let (result, made_when_read) = tokio::join!(upload, receiver);
    assert!(
        made_when_read < CHUNKS / 2,
        "{made_when_read} of {CHUNKS} chunks were read before the receiver had 2 MiB"
    );
    assert!(result.is_err(), "the refused upload is an error");
}
