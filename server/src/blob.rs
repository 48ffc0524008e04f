//! The artifact storage boundary and its on-disk, content-addressed implementation.
//!
//! A blob's name is its SHA-256, so a stored blob can never change and the same bytes are
//! kept once. An upload is streamed to a temporary file while being hashed and counted; only if
//! the digest equals the one the client declared is the file fsynced and renamed into place
//! (then the directory fsynced), so a reader never sees a partial or unverified blob and a
//! crash leaves at most a stray temp file. An S3-compatible implementation (MinIO on-prem, via
//! the `object_store` crate) would stream a multipart upload while hashing and complete it only
//! after the same check.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Why an upload was not stored.
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
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> Self {
        BlobError::Io(e)
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
    /// Open a stored blob: its size and a byte stream.
    fn get<'a>(
        &'a self,
        sha256_hex: &'a str,
    ) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, BlobError>>;
    /// Remove a blob that no artifact references (an upload whose artifact could not be
    /// recorded). Absent is fine. The caller makes sure nothing references it.
    fn delete<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
}

/// Blobs under `<data dir>/blobs/sha256/<2 hex>/<64 hex>`.
#[derive(Debug)]
pub struct DiskBlobStore {
    root: PathBuf,
}

impl DiskBlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        // Temp files of uploads cut short by a crash are garbage.
        for e in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        Ok(DiskBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn path_of(&self, hex: &str) -> PathBuf {
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    async fn put_inner(
        &self,
        expected: &str,
        mut body: ByteStream,
        max: u64,
    ) -> Result<u64, BlobError> {
        let tmp = self.root.join("tmp").join(crate::util::new_id("up_"));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let result = async {
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobError::TooLarge(max));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            let actual = hex::encode(hasher.finalize());
            if actual != expected {
                return Err(BlobError::DigestMismatch { actual, size });
            }
            file.sync_all().await?;
            Ok(size)
        }
        .await;
        drop(file);
        let size = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let dest = self.path_of(expected);
        let dir = dest.parent().expect("blob path has a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::rename(&tmp, &dest).await?;
        // The rename is durable only once the directory entry is.
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok(size)
    }
}

impl BlobStore for DiskBlobStore {
    fn put<'a>(
        &'a self,
        expected_hex: &'a str,
        body: ByteStream,
        max: u64,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(self.put_inner(expected_hex, body, max))
    }

    fn get<'a>(
        &'a self,
        sha256_hex: &'a str,
    ) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, BlobError>> {
        Box::pin(async move {
            let file = match tokio::fs::File::open(self.path_of(sha256_hex)).await {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata().await?.len();
            let stream: ByteStream = Box::pin(tokio_util::io::ReaderStream::new(file));
            Ok(Some((size, stream)))
        })
    }

    fn delete<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let path = self.path_of(sha256_hex);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let dir = path.parent().expect("blob path has a parent").to_path_buf();
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(|e| io::Error::other(e.to_string()))??;
            Ok(())
        })
    }
}
