//! Blobs in a local directory: `<root>/sha256/<2 hex>/<64 hex>`.
//!
//! An upload is streamed to `<root>/tmp/` while being hashed and counted; only if the digest
//! equals the declared one is the file fsynced and renamed into place (then the directory
//! fsynced), so a reader never sees a partial or unverified blob. A crash leaves at most a stray
//! temp file, removed by [`DiskBlobStore::open`]; a cancelled upload removes its own (see
//! [`TmpFile`]).

use std::io;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{check_hex, spawn_cleanup, verifying, BlobError, BlobStore, BoxFuture, ByteStream};

/// Read buffer of a download stream: large enough that a big blob is not thousands of tiny
/// chunks (`ReaderStream`'s default is 4 KiB), small enough to not matter per connection.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes gathered before each write of an upload's temp file.
const WRITE_BUFFER: usize = 1 << 20;

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
        check_hex(expected)?;
        let tmp = TmpFile(Some(self.root.join("tmp").join(crate::util::new_id("up_"))));
        // Body frames are as small as the client's chunks (a chunked upload from curl or
        // Node's fetch arrives in frames of 16-64 KiB), and each write to a tokio file is a
        // round trip to the blocking pool: gathered into 1 MiB writes, a chunked 4 GiB upload
        // went from 174 to ~500 MiB/s, as fast as one with Content-Length (BENCHMARKS.md).
        let mut file = tokio::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            tokio::fs::File::create(tmp.path()).await?,
        );
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
            file.flush().await?;
            file.get_ref().sync_all().await?;
            Ok(size)
        }
        .await;
        drop(file);
        let size = match result {
            Ok(s) => s,
            Err(e) => {
                tmp.remove().await;
                return Err(e);
            }
        };
        let dest = self.path_of(expected);
        let dir = dest.parent().expect("blob path has a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::rename(tmp.path(), &dest).await?;
        // From here on the temp name no longer exists. (Cancelled during the rename, the guard
        // may race it; either the rename or the removal wins, and the caller is gone anyway.)
        tmp.disarm();
        // The rename is durable only once the directory entry is.
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok(size)
    }
}

/// The temp file of an upload in progress. If the upload future is dropped (the client went
/// away mid-body), the destructor removes the file on the blocking pool; otherwise it would sit
/// in `tmp/` until the next start.
struct TmpFile(Option<PathBuf>);

impl TmpFile {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("temp file not yet disarmed")
    }

    fn disarm(mut self) {
        self.0 = None;
    }

    /// Remove it now and wait. The removal is a blocking-pool task, so it completes even if
    /// this future is dropped halfway.
    async fn remove(mut self) {
        if let Some(p) = self.0.take() {
            if let Some(h) = spawn_remove(p) {
                let _ = h.await;
            }
        }
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            spawn_remove(p);
        }
    }
}

fn spawn_remove(p: PathBuf) -> Option<tokio::task::JoinHandle<()>> {
    spawn_cleanup("disk temp file", async move {
        match tokio::fs::remove_file(&p).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %p.display(), "removing an upload's temp file: {e}"),
        }
    })
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
            check_hex(sha256_hex)?;
            let file = match tokio::fs::File::open(self.path_of(sha256_hex)).await {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let size = file.metadata().await?.len();
            let raw: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file, READ_CHUNK,
            ));
            Ok(Some((size, verifying(sha256_hex, raw))))
        })
    }

    fn delete<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            check_hex(sha256_hex)?;
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
