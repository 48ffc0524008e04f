//! The artifact storage boundary: content-addressed blobs behind [`BlobStore`], kept in a local
//! directory ([`DiskBlobStore`]) or an S3-compatible bucket ([`S3BlobStore`]: Garage, MinIO).
//!
//! A blob's name is its SHA-256, so a stored blob can never change and the same bytes are kept
//! once. Both implementations follow the same rules:
//!
//! - **Write**: the upload is streamed to a temporary place while being hashed and counted, and
//!   is published under its content address only if the digest equals the one the client
//!   declared. A reader never sees a partial or unverified blob; publishing the same bytes twice
//!   is harmless, which is why no write-once (conditional put) support is needed from the
//!   store. An upload cut short (its future dropped because the client went away) removes its
//!   temporary data through a drop guard; what a crash leaves is swept at start-up.
//! - **Read**: the byte stream from [`BlobStore::get`] hashes what it yields and, if the bytes
//!   turn out not to match the address (bit rot, a damaged disk, someone writing into the
//!   bucket), ends with an error instead of a clean end and logs it. The check can only finish
//!   at the last byte, after the HTTP status was sent, so the response body is cut: the client
//!   sees a truncated download (less than `Content-Length`), never silently wrong bytes.
//!   [`BlobStore::verify`] checks a whole blob before anything is sent.
//!
//! [`open_blob_store`] chooses the implementation from the server's `--blobs` / `DATAPILOT_BLOBS`
//! setting. Its errors name what is wrong without a "blob store" prefix (the caller adds one).

mod disk;
mod s3;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

pub use disk::DiskBlobStore;
pub use s3::{S3BlobStore, S3Config};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Why a blob operation failed.
#[derive(Debug)]
pub enum BlobError {
    /// The bytes hash to `actual`, not the declared digest. Nothing is kept.
    DigestMismatch {
        actual: String,
        size: u64,
    },
    /// The body exceeded the size cap.
    TooLarge(u64),
    /// The client's body stream failed (disconnect, malformed chunking).
    Body(String),
    Io(io::Error),
    /// A stored blob's bytes hash to `actual`, not to its address `expected`: the storage was
    /// damaged or written behind the server's back. The bytes must not be served.
    Corrupt {
        expected: String,
        actual: String,
    },
    /// The backing store could not be reached or did not answer in time (connection refused,
    /// timeout, a 5xx after the client's retries). Transient: a 503 with `Retry-After` fits.
    Unavailable(String),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::DigestMismatch { actual, size } => {
                write!(
                    f,
                    "the {size} bytes hash to {actual}, not the declared digest"
                )
            }
            BlobError::TooLarge(max) => write!(f, "the body exceeds {max} bytes"),
            BlobError::Body(e) => write!(f, "reading the body failed: {e}"),
            BlobError::Io(e) => write!(f, "blob store: {e}"),
            BlobError::Corrupt { expected, actual } => {
                write!(
                    f,
                    "stored blob {expected} is corrupt: its bytes hash to {actual}"
                )
            }
            BlobError::Unavailable(e) => write!(f, "blob store unavailable: {e}"),
        }
    }
}

impl std::error::Error for BlobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BlobError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> Self {
        BlobError::Io(e)
    }
}

impl BlobError {
    /// Classify an error that a [`BlobStore::get`] stream ended with. The streams carry a
    /// `BlobError` inside the `io::Error` (a stream item must be an `io::Error` for the HTTP
    /// body), so a caller that reads the stream itself can still tell corruption and an
    /// unavailable store from other failures.
    pub fn from_stream_error(e: io::Error) -> BlobError {
        if !e.get_ref().is_some_and(|inner| inner.is::<BlobError>()) {
            return BlobError::Io(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<BlobError>()) {
            Some(Ok(b)) => *b,
            _ => unreachable!("checked to hold a BlobError just above"),
        }
    }

    /// Wrap for a byte stream (see [`BlobError::from_stream_error`]).
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            BlobError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// Content-addressed artifact storage.
pub trait BlobStore: Send + Sync + 'static {
    /// Store `body` if its SHA-256 is `expected_hex` and it is at most `max` bytes; returns the
    /// size.
    fn put<'a>(
        &'a self,
        expected_hex: &'a str,
        body: ByteStream,
        max: u64,
    ) -> BoxFuture<'a, Result<u64, BlobError>>;
    /// Open a stored blob: its size and a byte stream. The stream checks the bytes against
    /// `sha256_hex` as it goes and ends with an error (carrying [`BlobError::Corrupt`], see
    /// [`BlobError::from_stream_error`]) instead of a clean end if they do not match.
    fn get<'a>(
        &'a self,
        sha256_hex: &'a str,
    ) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, BlobError>>;
    /// Remove a blob that no artifact references (an upload whose artifact could not be
    /// recorded). Absent is fine. The caller makes sure nothing references it.
    fn delete<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;

    /// Read the whole blob and check that it hashes to its address: `Some(size)` if intact,
    /// `None` if absent, [`BlobError::Corrupt`] if not.
    ///
    /// This costs a full read. A download handler may call it before [`BlobStore::get`] for
    /// small blobs (a few MiB), so that a corrupt blob becomes a clean error response instead
    /// of a truncated `200`; for large ones the second read is not worth it and the check
    /// built into the `get` stream (which cuts the body) is the protection.
    /// True when other server processes (replicas) write to the same store: then no process
    /// can know that no other upload of the same bytes is about to be recorded, and a blob
    /// whose artifact could not be recorded is left in place (harmless: content-addressed)
    /// instead of deleted.
    fn shared(&self) -> bool {
        false
    }

    fn verify<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<Option<u64>, BlobError>> {
        Box::pin(async move {
            let Some((size, mut stream)) = self.get(sha256_hex).await? else {
                return Ok(None);
            };
            // The stream does the hashing; draining it is the check.
            while let Some(chunk) = stream.next().await {
                chunk.map_err(BlobError::from_stream_error)?;
            }
            Ok(Some(size))
        })
    }
}

/// Choose and open the blob store.
///
/// - `None`: a [`DiskBlobStore`] in `<data_dir>/blobs`.
/// - a plain path: a [`DiskBlobStore`] in that directory.
/// - `s3://BUCKET?endpoint=http://HOST:PORT&region=REGION[&prefix=P]`: an [`S3BlobStore`], with
///   the credentials from `DATAPILOT_S3_ACCESS_KEY_ID`/`DATAPILOT_S3_SECRET_ACCESS_KEY` or else
///   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (never from the spec: command lines show up in
///   process lists). See [`S3Config::from_spec`].
///
/// Called inside the tokio runtime, the S3 store also starts a background sweep of temporary
/// objects that crashed uploads left.
pub fn open_blob_store(spec: Option<&str>, data_dir: &Path) -> Result<Arc<dyn BlobStore>, String> {
    match spec {
        None => {
            let dir = data_dir.join("blobs");
            let store = DiskBlobStore::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(Arc::new(store))
        }
        Some("") => {
            Err("empty setting; give a directory or s3://BUCKET?endpoint=URL&region=REGION".into())
        }
        Some(s) if s.starts_with("s3://") => Ok(Arc::new(S3BlobStore::from_env_spec(s)?)),
        Some(s) if s.contains("://") => {
            let scheme = s.split("://").next().unwrap_or_default();
            Err(format!(
                "unsupported scheme {scheme:?}; give a directory or \
                 s3://BUCKET?endpoint=URL&region=REGION"
            ))
        }
        Some(dir) => {
            let store = DiskBlobStore::open(Path::new(dir)).map_err(|e| format!("{dir}: {e}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// Refuse anything but 64 lowercase hex digits before it becomes a file path or object key
/// (the handlers validate too; this keeps a bad caller from reaching outside the store).
fn check_hex(hex: &str) -> Result<(), BlobError> {
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(BlobError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a lowercase SHA-256 hex digest",
        )))
    }
}

/// Run cleanup work on the tokio runtime, detached from the caller. Used by drop guards (a
/// destructor cannot await) and by error paths that await the handle, so that the cleanup
/// finishes even if the caller is cancelled while waiting for it.
fn spawn_cleanup<F>(what: &str, work: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => Some(rt.spawn(work)),
        Err(_) => {
            // Only when dropped outside any runtime (e.g. during shutdown): the start-up sweep
            // removes what is left.
            tracing::warn!(what, "no tokio runtime to clean up an abandoned upload");
            None
        }
    }
}

/// Wrap a blob's byte stream so that it ends with [`BlobError::Corrupt`] (as an `io::Error`)
/// instead of a clean end when the bytes do not hash to `expected`. Each chunk is held back
/// until the next one arrives, and the last until the digest is checked: with a declared
/// `Content-Length`, a reader of a damaged blob never receives it whole (the response ends
/// short of its length, which every HTTP client reports as an error).
fn verifying(expected: &str, inner: ByteStream) -> ByteStream {
    Box::pin(Verifying {
        inner,
        expected: expected.to_string(),
        hasher: Some(Sha256::new()),
        seen: 0,
        held: None,
    })
}

struct Verifying {
    inner: ByteStream,
    expected: String,
    /// `None` once the stream has ended (cleanly or with an error): it yields nothing more.
    hasher: Option<Sha256>,
    seen: u64,
    /// The chunk read last, not yet passed on.
    held: Option<Bytes>,
}

impl Stream for Verifying {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(hasher) = this.hasher.as_mut() else {
                // Verified: pass on the last chunk, then end.
                return Poll::Ready(this.held.take().map(Ok));
            };
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    hasher.update(&chunk);
                    this.seen += chunk.len() as u64;
                    if let Some(prev) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(prev)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.hasher = None;
                    this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let actual = hex::encode(this.hasher.take().expect("checked above").finalize());
                    if actual == this.expected {
                        continue; // yields the held chunk, then the end
                    }
                    this.held = None;
                    tracing::error!(
                        sha256 = %this.expected,
                        actual = %actual,
                        bytes = this.seen,
                        "stored blob does not match its address; the read was cut"
                    );
                    let e = BlobError::Corrupt {
                        expected: this.expected.clone(),
                        actual,
                    };
                    return Poll::Ready(Some(Err(e.into_io())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(mut s: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn verifying_stream_passes_matching_bytes_and_cuts_others() {
        let good = hex::encode(Sha256::digest(b"hello world"));
        let (bytes, err) = drain(verifying(&good, stream_of(&[b"hello ", b"world"]))).await;
        assert_eq!(bytes, b"hello world");
        assert!(err.is_none());

        let (bytes, err) = drain(verifying(&good, stream_of(&[b"hello ", b"w0rld"]))).await;
        assert_eq!(
            bytes, b"hello ",
            "the last chunk is held back until the digest is checked, and then withheld"
        );
        match BlobError::from_stream_error(err.expect("a corrupt stream ends in an error")) {
            BlobError::Corrupt { expected, actual } => {
                assert_eq!(expected, good);
                assert_eq!(actual, hex::encode(Sha256::digest(b"hello w0rld")));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn stream_errors_keep_their_kind() {
        let e = BlobError::Unavailable("down".into()).into_io();
        assert!(matches!(
            BlobError::from_stream_error(e),
            BlobError::Unavailable(m) if m == "down"
        ));
        let plain = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert!(matches!(
            BlobError::from_stream_error(plain),
            BlobError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe
        ));
    }

    #[test]
    fn specs() {
        let dir = tempfile::tempdir().unwrap();
        open_blob_store(None, dir.path()).unwrap();
        assert!(dir.path().join("blobs/sha256").is_dir());
        let other = dir.path().join("elsewhere");
        open_blob_store(Some(other.to_str().unwrap()), dir.path()).unwrap();
        assert!(other.join("tmp").is_dir());
        let err = |s: &str| open_blob_store(Some(s), dir.path()).err().unwrap();
        assert!(err("").contains("empty"));
        assert!(err("gs://bucket").contains("unsupported scheme \"gs\""));
        // Checked before the environment is read: no credentials needed to see this.
        assert!(err("s3://Bucket?region=garage").contains("bucket names"));
    }

    #[test]
    fn hex_is_checked() {
        assert!(check_hex(&"a".repeat(64)).is_ok());
        for bad in ["", "../etc", &"A".repeat(64), &"a".repeat(63)] {
            assert!(check_hex(bad).is_err(), "{bad}");
        }
    }
}
