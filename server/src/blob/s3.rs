//! Blobs in an S3-compatible bucket (Garage, MinIO) through the `object_store` crate:
//! `<prefix>sha256/<2 hex>/<64 hex>`.
//!
//! **Upload.** The body is hashed and counted as it streams in. A body that fits in one part is
//! held in memory, checked, and only then stored with a single `PUT` straight at its address
//! (an S3 `PUT` is atomic, and nothing is sent at all for a mismatch). A larger body goes as a
//! multipart upload to `<prefix>tmp/<id>`, one part at a time (memory stays at about two parts,
//! however large the blob); if the digest matches, the upload is completed, copied server-side
//! to its address and the temporary object deleted; otherwise the upload is aborted. Garage 2.5
//! ignores `If-None-Match`, so nothing here relies on a conditional put: publishing the same
//! bytes twice is harmless under content addressing.
//!
//! **Leftovers.** A cancelled upload (its future dropped because the client went away) aborts
//! the multipart upload and deletes the temporary object from a task spawned by a drop guard
//! ([`TmpUpload`]). A crash between completion and the copy leaves a temporary object, removed
//! by [`S3BlobStore::sweep`] (started by the constructor) once it is an hour old. A crash in the
//! middle of a multipart upload leaves an incomplete upload, which readers never see but which
//! holds its parts' space; `object_store` cannot list those, so the bucket needs a lifecycle
//! rule (`AbortIncompleteMultipartUpload`) or, on Garage, a periodic
//! `garage bucket cleanup-incomplete-uploads --older-than 1d BUCKET`.
//!
//! **Download.** `get` reads the object in ranged requests of [`GET_CHUNK`] (two in flight)
//! rather than as one long response: each request then finishes within the request timeout
//! however slowly the HTTP client drains the download, and memory stays bounded. The stream is
//! checked against the address like the disk store's.
//!
//! **Limits.** Parts are [`PART_SIZE_MIN`], doubling every [`PARTS_PER_SIZE`] parts, so the
//! part buffer follows the size of the upload (not the configured cap) and 10,000 parts reach
//! 4.8 TiB. The server-side copy is one `CopyObject`, which AWS and MinIO refuse above 5 GiB
//! (Garage 2.5 copies block references and has no such limit): with a `--max-artifact-bytes`
//! above 5 GiB on those stores, the upload would have to be completed at its address directly
//! instead of through the temporary key.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    PutPayloadMut, RetryConfig,
};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::{check_hex, spawn_cleanup, verifying, BlobError, BlobStore, BoxFuture, ByteStream};

/// The smallest part S3 accepts (except for the last one), and the size of the first
/// [`PARTS_PER_SIZE`] parts.
pub const PART_SIZE_MIN: u64 = 5 * 1024 * 1024;
/// Every this many parts the part size doubles, so that S3's 10,000 parts hold 4.8 TiB (S3's
/// own object limit is 5 TiB) while uploads below 5 GiB, the usual ones, keep 5 MiB parts.
/// Memory follows the size of the upload, not the configured cap.
const PARTS_PER_SIZE: u64 = 1000;
/// Parts uploading while the next one is read from the client. One keeps memory at about two
/// parts per upload (the one in flight and the one filling) and still overlaps network and
/// client; on-prem links do not need more parallelism per upload.
const PARTS_IN_FLIGHT: usize = 1;
/// Size of one ranged read of a download.
pub const GET_CHUNK: u64 = 4 * 1024 * 1024;
/// Ranged reads of a download in flight: the next chunk is fetched while one is sent.
const GET_CHUNKS_AHEAD: usize = 2;
/// Growth step of [`PutPayloadMut`]'s buffers: fewer, larger allocations than its 8 KiB.
const BUFFER_BLOCK: usize = 256 * 1024;

/// Time to establish a TCP connection to the store. On a LAN this takes under a millisecond; a
/// store that is down or unreachable must give [`BlobError::Unavailable`] in seconds, not hang.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one whole request, body included: one part upload or one [`GET_CHUNK`] read, so
/// it must cover a part on a slow link (5 MiB in 30 s is about 170 KiB/s), while a store that
/// accepts connections but never answers is still detected.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failed request (connection errors, timeouts of idempotent requests, 5xx).
/// Few: a brief blip is absorbed, a down store is reported instead of retried for minutes
/// (`object_store` defaults to 10 retries within 3 minutes).
pub const MAX_RETRIES: usize = 2;
/// No retry starts later than this after the first attempt.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Temporary objects older than this are leftovers of a crash; younger ones may belong to an
/// upload in progress (on this server or another one sharing the bucket).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// Where and how to reach the bucket. Built by [`S3Config::from_spec`]; `Debug` hides the
/// secret.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `http(s)://host:port`; `None` means AWS itself (virtual-hosted requests).
    pub endpoint: Option<String>,
    pub region: String,
    /// Key prefix without leading or trailing `/`; empty for none.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

const SPEC_HELP: &str = "s3://BUCKET?endpoint=http://HOST:PORT&region=REGION[&prefix=PREFIX]";

impl S3Config {
    /// Parse `s3://BUCKET?endpoint=URL&region=REGION[&prefix=PREFIX]` and take the credentials
    /// from `env` (`DATAPILOT_S3_ACCESS_KEY_ID` + `DATAPILOT_S3_SECRET_ACCESS_KEY`, else
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`). Credentials in the spec are refused:
    /// command lines and flags end up in process lists and logs. Error messages never repeat
    /// the spec or parameter values, in case someone put a secret there anyway.
    ///
    /// `region` is required because a wrong one only shows up later as a signature error (for
    /// Garage it is `s3_region` of `garage.toml`; MinIO's default is `us-east-1`).
    pub fn from_spec(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<S3Config, String> {
        let rest = spec
            .strip_prefix("s3://")
            .ok_or_else(|| format!("an S3 spec looks like {SPEC_HELP}"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        if bucket.contains('@') {
            return Err(format!(
                "S3 spec: credentials do not belong in the spec (it shows in process lists); \
                 set {ENV_KEY_ID} and {ENV_SECRET}"
            ));
        }
        if bucket.contains('/') {
            return Err(format!(
                "S3 spec: the spec names a bucket only; give a key prefix as prefix= ({SPEC_HELP})"
            ));
        }
        if !valid_bucket(bucket) {
            return Err(
                "S3 spec: bucket names are 3-63 characters of a-z, 0-9, '.' and '-', \
                 starting and ending with a letter or digit"
                    .into(),
            );
        }
        let (mut endpoint, mut region, mut prefix) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| {
                format!("S3 spec: parameter {k} is not valid percent-encoded UTF-8")
            })?;
            let slot = match k {
                "endpoint" => &mut endpoint,
                "region" => &mut region,
                "prefix" => &mut prefix,
                _ if looks_like_secret(k) => {
                    return Err(format!(
                        "S3 spec: credentials do not belong in the spec (it shows in process \
                         lists); set {ENV_KEY_ID} and {ENV_SECRET}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "S3 spec: unknown parameter {k:?} (known: endpoint, region, prefix)"
                    ))
                }
            };
            if slot.replace(v).is_some() {
                return Err(format!("S3 spec: parameter {k} given twice"));
            }
        }
        if let Some(ep) = &endpoint {
            let host = ep
                .strip_prefix("http://")
                .or_else(|| ep.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err("S3 spec: endpoint must be an http:// or https:// URL".into());
            }
        }
        let region = match region {
            Some(r) if !r.is_empty() => r,
            _ => {
                return Err(format!(
                    "S3 spec: region= is required (Garage: s3_region in garage.toml; \
                     MinIO: us-east-1): {SPEC_HELP}"
                ))
            }
        };
        let prefix = prefix.unwrap_or_default().trim_matches('/').to_string();
        if !prefix.is_empty() && ObjectPath::parse(&prefix).is_err() {
            return Err(
                "S3 spec: prefix must be '/'-separated names without empty, '.' or '..' parts"
                    .into(),
            );
        }
        let (access_key_id, secret_access_key) = credentials(&env)?;
        Ok(S3Config {
            bucket: bucket.to_string(),
            endpoint,
            region,
            prefix,
            access_key_id,
            secret_access_key,
        })
    }
}

const ENV_KEY_ID: &str = "DATAPILOT_S3_ACCESS_KEY_ID";
const ENV_SECRET: &str = "DATAPILOT_S3_SECRET_ACCESS_KEY";

/// The DataPilot-specific pair wins, so the server can use other keys than AWS tools in the
/// same environment; a pair is taken whole, never one half from each.
fn credentials(env: &impl Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    for (id, secret) in [
        (ENV_KEY_ID, ENV_SECRET),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ] {
        match (get(id), get(secret)) {
            (Some(i), Some(s)) => return Ok((i, s)),
            (None, None) => continue,
            _ => return Err(format!("S3 spec: set both {id} and {secret}, or neither")),
        }
    }
    Err(format!(
        "S3 spec: no credentials; set {ENV_KEY_ID} and {ENV_SECRET} \
         (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    ))
}

fn valid_bucket(b: &str) -> bool {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| ok_char(c) || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(ok_char)
        && b.bytes().last().is_some_and(ok_char)
}

fn looks_like_secret(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["key", "secret", "token", "password"]
        .iter()
        .any(|w| k.contains(w))
}

/// `%XX` decoding of a query value (`+` stays `+`: endpoints and prefixes are not form data).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Content-addressed blobs in an S3-compatible bucket. Cheap to clone (one shared client).
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    /// `""` or `"some/prefix/"`.
    prefix: String,
}

impl S3BlobStore {
    /// Build the client (no request is made). Inside a tokio runtime this also starts a
    /// background [`S3BlobStore::sweep`] of temporary objects older than [`TMP_MAX_AGE`]; its
    /// outcome is logged, so a wrong endpoint or key also shows up in the log at start.
    pub fn new(cfg: S3Config) -> Result<S3BlobStore, String> {
        let client = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        };
        // Explicit settings only: `AmazonS3Builder::from_env` would also pick up whatever
        // other AWS_* variables happen to be set. `with_client_options` replaces all client
        // options, `allow_http` included, so it must come before `with_allow_http` below.
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(ep) = &cfg.endpoint {
            // On-prem stores are addressed as host:port/bucket (no DNS per bucket), often over
            // plain HTTP on a private network.
            builder = builder
                .with_endpoint(ep)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(ep.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| format!("S3 client: {e}"))?;
        let s = S3BlobStore {
            store: Arc::new(store),
            prefix: if cfg.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", cfg.prefix)
            },
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = s.clone();
            rt.spawn(async move {
                match me.sweep(TMP_MAX_AGE).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "S3 blob store: swept stale temp objects"),
                    Err(e) => tracing::warn!("S3 blob store: sweeping temp objects failed: {e}"),
                }
            });
        }
        Ok(s)
    }

    /// [`S3Config::from_spec`] with the process environment, then [`S3BlobStore::new`].
    pub fn from_env_spec(spec: &str) -> Result<S3BlobStore, String> {
        Self::new(S3Config::from_spec(spec, |k| std::env::var(k).ok())?)
    }

    /// Delete temporary objects last modified more than `older_than` ago; returns how many.
    /// Only objects are seen: incomplete multipart uploads need the bucket's lifecycle rule
    /// (see the module documentation).
    pub async fn sweep(&self, older_than: Duration) -> Result<usize, BlobError> {
        let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now()
            .checked_sub_signed(age)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let dir = ObjectPath::from(format!("{}tmp", self.prefix));
        let mut listing = self.store.list(Some(&dir));
        let mut removed = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(map_err)?;
            if meta.last_modified > cutoff {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(removed)
    }

    fn key(&self, hex: &str) -> ObjectPath {
        ObjectPath::from(format!("{}sha256/{}/{hex}", self.prefix, &hex[..2]))
    }

    async fn put_inner(
        &self,
        expected: &str,
        mut body: ByteStream,
        max: u64,
    ) -> Result<u64, BlobError> {
        check_hex(expected)?;
        let mut upload: Option<TmpUpload> = None;
        let streamed = async {
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            let mut part = new_buffer();
            let mut part_target = part_size(0);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobError::TooLarge(max));
                }
                hasher.update(&chunk);
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let room = part_target - part.content_length() as u64;
                    let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                    // Copied rather than pushed as `Bytes`: the body's chunks may be slices of
                    // larger receive buffers, which would stay alive with them.
                    part.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if part.content_length() as u64 == part_target {
                        let full = std::mem::replace(&mut part, new_buffer()).freeze();
                        if upload.is_none() {
                            upload = Some(TmpUpload::start(self).await?);
                        }
                        let up = upload.as_mut().expect("just started");
                        up.send_part(full).await?;
                        part_target = part_size(up.sent);
                    }
                }
            }
            Ok((hex::encode(hasher.finalize()), size, part.freeze()))
        }
        .await;
        let (actual, size, last) = match streamed {
            Ok(x) => x,
            Err(e) => {
                if let Some(up) = upload {
                    up.discard().await;
                }
                return Err(e);
            }
        };
        if actual != expected {
            if let Some(up) = upload {
                up.discard().await;
            }
            return Err(BlobError::DigestMismatch { actual, size });
        }
        let dest = self.key(expected);
        match upload {
            // The whole body is in memory and verified: one atomic PUT at its address.
            None => {
                self.store.put(&dest, last).await.map_err(map_err)?;
            }
            Some(up) => up.publish(last, &dest).await?,
        }
        Ok(size)
    }

    async fn get_inner(&self, hex: &str) -> Result<Option<(u64, ByteStream)>, BlobError> {
        check_hex(hex)?;
        let key = self.key(hex);
        let size = match self.store.head(&key).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(map_err(e)),
        };
        let store = self.store.clone();
        let ranges = (0..size)
            .step_by(GET_CHUNK as usize)
            .map(move |start| start..size.min(start + GET_CHUNK));
        let chunks = futures_util::stream::iter(ranges)
            .map(move |range| {
                let (store, key) = (store.clone(), key.clone());
                async move {
                    store
                        .get_range(&key, range)
                        .await
                        .map_err(|e| map_err(e).into_io())
                }
            })
            .buffered(GET_CHUNKS_AHEAD);
        Ok(Some((size, verifying(hex, Box::pin(chunks)))))
    }
}

/// Size of the part after `sent` parts: [`PART_SIZE_MIN`], doubling every [`PARTS_PER_SIZE`]
/// parts, at most 5 GiB (S3's largest part; only reached at the 10,000th part, S3's last).
fn part_size(sent: u64) -> u64 {
    PART_SIZE_MIN << (sent / PARTS_PER_SIZE).min(10)
}

fn new_buffer() -> PutPayloadMut {
    PutPayloadMut::new().with_block_size(BUFFER_BLOCK)
}

/// A multipart upload to a temporary key, and the guard that cleans it up.
///
/// Dropped while armed (the upload future was cancelled), it spawns a task that aborts the
/// multipart upload and deletes the temporary object. The explicit paths ([`TmpUpload::discard`],
/// the end of [`TmpUpload::publish`]) use the same spawned task and wait for it, so the cleanup
/// also finishes when the caller is cancelled while waiting.
struct TmpUpload {
    store: Arc<AmazonS3>,
    tmp: ObjectPath,
    /// `Some` until the upload is completed (then only the object remains to delete).
    upload: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
    /// Parts handed to `parts` so far.
    sent: u64,
    /// A completion was attempted, so the temporary object may exist.
    may_exist: bool,
    armed: bool,
}

impl TmpUpload {
    async fn start(s: &S3BlobStore) -> Result<TmpUpload, BlobError> {
        let tmp = ObjectPath::from(format!("{}tmp/{}", s.prefix, crate::util::new_id("up_")));
        let upload = s.store.put_multipart(&tmp).await.map_err(map_err)?;
        Ok(TmpUpload {
            store: s.store.clone(),
            tmp,
            upload: Some(upload),
            parts: JoinSet::new(),
            sent: 0,
            may_exist: false,
            armed: true,
        })
    }

    /// Start uploading `part` once fewer than [`PARTS_IN_FLIGHT`] are in flight (the wait is
    /// the back-pressure on the client's body).
    async fn send_part(&mut self, part: PutPayload) -> Result<(), BlobError> {
        while self.parts.len() >= PARTS_IN_FLIGHT {
            self.join_part().await?;
        }
        let upload = self
            .upload
            .as_mut()
            .expect("upload open while sending parts");
        self.parts.spawn(upload.put_part(part));
        self.sent += 1;
        Ok(())
    }

    async fn join_part(&mut self) -> Result<(), BlobError> {
        match self.parts.join_next().await {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(map_err(e)),
            Some(Err(e)) => Err(BlobError::Io(io::Error::other(e))),
        }
    }

    /// Send the last part, complete the upload, copy the object to `dest`, then remove the
    /// temporary object (whatever happened).
    async fn publish(mut self, last: PutPayload, dest: &ObjectPath) -> Result<(), BlobError> {
        let result = async {
            if last.content_length() > 0 {
                self.send_part(last).await?;
            }
            while !self.parts.is_empty() {
                self.join_part().await?;
            }
            self.may_exist = true;
            let upload = self.upload.as_mut().expect("upload open until completed");
            upload.complete().await.map_err(map_err)?;
            self.upload = None;
            self.store.copy(&self.tmp, dest).await.map_err(map_err)
        }
        .await;
        self.discard().await;
        result
    }

    /// Abort and delete now, and wait for it.
    async fn discard(mut self) {
        if let Some(h) = self.spawn_cleanup() {
            let _ = h.await;
        }
    }

    fn spawn_cleanup(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.armed = false;
        // Stop parts still uploading: one landing after the abort could be kept by the store.
        self.parts.abort_all();
        let (store, tmp) = (self.store.clone(), self.tmp.clone());
        let upload = self.upload.take();
        let may_exist = self.may_exist;
        spawn_cleanup("S3 temp upload", async move {
            if let Some(mut up) = upload {
                // After a completion that went through but whose answer was lost, S3 says
                // NoSuchUpload here: harmless, the delete below handles that case.
                if let Err(e) = up.abort().await {
                    if !may_exist {
                        tracing::warn!(key = %tmp, "aborting a multipart upload: {e}");
                    }
                }
            }
            if may_exist {
                match store.delete(&tmp).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(key = %tmp, "deleting a temp object: {e}"),
                }
            }
        })
    }
}

impl Drop for TmpUpload {
    fn drop(&mut self) {
        if self.armed {
            self.spawn_cleanup();
        }
    }
}

/// `object_store` errors as [`BlobError`]s: a store that cannot be reached or answers with a
/// server error is [`BlobError::Unavailable`], anything else (a refused signature, a missing
/// bucket) is a fault of this server or its configuration, [`BlobError::Io`].
fn map_err(e: object_store::Error) -> BlobError {
    if unavailable(&e) {
        BlobError::Unavailable(e.to_string())
    } else {
        BlobError::Io(io::Error::other(e))
    }
}

fn unavailable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        // The error that carries the HTTP status (`client::retry::RequestError`) is private in
        // object_store 0.14, so its message is all there is to go on: "Server returned non-2xx
        // status code: 503 Service Unavailable: …", or an error body in a 200 ("Server returned
        // error response: InternalError…").
        let msg = err.to_string();
        if msg.starts_with("Server returned non-2xx status code: 5")
            || msg.starts_with("Server returned error response")
        {
            return true;
        }
        current = err.source();
    }
    false
}

impl BlobStore for S3BlobStore {
    fn shared(&self) -> bool {
        true
    }

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
        Box::pin(self.get_inner(sha256_hex))
    }

    fn delete<'a>(&'a self, sha256_hex: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            check_hex(sha256_hex)?;
            match self.store.delete(&self.key(sha256_hex)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(map_err(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const KEYS: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "GKaws"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
    ];

    #[test]
    fn parses_a_spec() {
        let c = S3Config::from_spec(
            "s3://artifacts?endpoint=http://127.0.0.1:3900&region=garage&prefix=/dp/blobs/",
            env(KEYS),
        )
        .unwrap();
        assert_eq!(c.bucket, "artifacts");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.region, "garage");
        assert_eq!(c.prefix, "dp/blobs");
        assert_eq!(c.access_key_id, "GKaws");
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug must hide the secret"
        );

        // The DataPilot pair wins over the AWS one.
        let both = [
            KEYS[0],
            KEYS[1],
            ("DATAPILOT_S3_ACCESS_KEY_ID", "GKdp"),
            ("DATAPILOT_S3_SECRET_ACCESS_KEY", "dpsecret"),
        ];
        let c = S3Config::from_spec("s3://abc?region=us-east-1", env(&both)).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("GKdp", "dpsecret")
        );
        assert_eq!(c.endpoint, None);
        assert_eq!(c.prefix, "");
    }

    #[test]
    fn refuses_bad_specs_without_echoing_them() {
        let err =
            |spec: &str, vars: &[(&str, &str)]| S3Config::from_spec(spec, env(vars)).unwrap_err();
        let r = "&region=garage";
        assert!(err(&format!("s3://GK1:s3cr3t@bucket?x=1{r}"), KEYS)
            .contains("credentials do not belong"));
        let e = err(
            &format!("s3://bucket?endpoint=http://h:1&secret_key=s3cr3t{r}"),
            KEYS,
        );
        assert!(
            e.contains("credentials do not belong") && !e.contains("s3cr3t"),
            "{e}"
        );
        assert!(err(&format!("s3://bucket?colour=red{r}"), KEYS)
            .contains("unknown parameter \"colour\""));
        assert!(err(&format!("s3://bucket/pre?x{r}"), KEYS).contains("prefix="));
        assert!(err(&format!("s3://B?{r}"), KEYS).contains("bucket names"));
        assert!(err("s3://bucket?endpoint=http://h:1", KEYS).contains("region= is required"));
        assert!(err(&format!("s3://bucket?endpoint=ftp://h{r}"), KEYS).contains("http://"));
        assert!(err(&format!("s3://bucket?region=a{r}"), KEYS).contains("twice"));
        assert!(err(&format!("s3://bucket?prefix=a//b{r}"), KEYS).contains("prefix must"));
        assert!(err(&format!("s3://bucket?x=1{r}"), &[]).contains("unknown parameter"));
        assert!(err(&format!("s3://bucket?{r}"), &[]).contains("no credentials"));
        assert!(
            err(&format!("s3://bucket?{r}"), &[("AWS_ACCESS_KEY_ID", "GK")]).contains("set both")
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%26c").as_deref(), Some("a/b&c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn part_sizes_reach_the_s3_object_limit_within_the_part_limit() {
        assert_eq!(part_size(0), PART_SIZE_MIN);
        assert_eq!(part_size(999), PART_SIZE_MIN);
        assert_eq!(part_size(1000), 2 * PART_SIZE_MIN);
        let total: u64 = (0..10_000).map(part_size).sum();
        assert!(
            total as f64 > 4.8 * (1u64 << 40) as f64,
            "10,000 parts hold only {total} bytes"
        );
        // S3's largest part is 5 GiB.
        assert!(part_size(9_999) <= 5 << 30);
    }
}
