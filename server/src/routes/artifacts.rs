//! `artifacts` tag: streamed, hash-checked uploads and downloads.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::blob::BlobError;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    check_content_length, content_type_is, too_large, ListScope, PageQuery, P, Q,
};
use crate::model::{Artifact, Page};
use crate::validate;

/// Uploads in progress, per blob digest. Blobs are shared by content, so a blob written by an
/// upload whose artifact then could not be recorded (the run was finished or the name taken
/// meanwhile) is removed only if no artifact references it and no other upload of the same
/// bytes is in progress; registering an upload and that check-and-remove take the same lock,
/// so a concurrent upload of the same bytes either keeps the blob or writes it again after.
pub type Uploads = std::sync::Arc<tokio::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// One registered upload of a digest; unregisters itself when dropped (also when the client
/// goes away mid-upload and the handler is cancelled).
struct PendingUpload {
    uploads: Uploads,
    sha: String,
    registered: bool,
}

fn unregister(map: &mut std::collections::HashMap<String, usize>, sha: &str) {
    if let Some(n) = map.get_mut(sha) {
        *n -= 1;
        if *n == 0 {
            map.remove(sha);
        }
    }
}

impl PendingUpload {
    async fn register(uploads: &Uploads, sha: &str) -> Self {
        *uploads.lock().await.entry(sha.to_string()).or_default() += 1;
        PendingUpload {
            uploads: uploads.clone(),
            sha: sha.to_string(),
            registered: true,
        }
    }

    /// The artifact could not be recorded: remove the blob unless something else needs it.
    async fn discard_blob(mut self, st: &AppState) {
        let uploads = self.uploads.clone();
        // Held until the blob is gone: a new upload of the same bytes registers after.
        let mut map = uploads.lock().await;
        let others = map.get(&self.sha).copied().unwrap_or(0) > 1;
        unregister(&mut map, &self.sha);
        self.registered = false;
        if others || st.blobs.shared() {
            return;
        }
        let sha = self.sha.clone();
        match st.store.blob_referenced(&sha).await {
            Ok(false) => {
                if let Err(e) = st.blobs.delete(&self.sha).await {
                    tracing::warn!(sha256 = %self.sha, error = ?e, "could not remove an unreferenced blob");
                }
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(sha256 = %self.sha, error = %e, "could not check blob references")
            }
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let sha = std::mem::take(&mut self.sha);
        if let Ok(mut map) = self.uploads.try_lock() {
            unregister(&mut map, &sha);
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let uploads = self.uploads.clone();
            rt.spawn(async move { unregister(&mut *uploads.lock().await, &sha) });
        }
    }
}

/// Artifacts up to this size are checked against their digest before a byte is sent.
const VERIFY_BEFORE_SENDING: u64 = 16 << 20;

/// A blob store failure as an API error: an unreachable store is a 503 the client may retry.
fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Unavailable(d) => {
            tracing::warn!(error = %d, "blob store unavailable");
            ApiError::new(
                "unavailable",
                "the artifact store is unavailable; nothing was kept, retry later",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("2"))
        }
        BlobError::TooLarge(limit) => too_large(limit),
        other => ApiError::internal(format!("blob store: {other:?}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    sha256: Option<String>,
}

pub async fn upload(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    Q(q): Q<UploadQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Artifact>)> {
    p.write_run(&run_id)?;
    let name = q
        .name
        .ok_or_else(|| ApiError::validation("name", "required"))?;
    let sha = q
        .sha256
        .ok_or_else(|| ApiError::validation("sha256", "required"))?;
    validate::dpm_path("name", &name, 255)?;
    validate::sha256_hex("sha256", &sha)?;
    if !content_type_is(req.headers(), "application/octet-stream") {
        return Err(ApiError::new(
            "unsupported_media_type",
            "artifact uploads must be Content-Type: application/octet-stream",
        ));
    }
    let max = st.max_artifact_bytes;
    check_content_length(req.headers(), max)?;
    // Fail fast (sealed run, taken name) before receiving a possibly large body.
    let (r2, n2) = (run_id.clone(), name.clone());
    st.store.check_artifact_upload(&r2, &n2).await?;

    let pending = PendingUpload::register(&st.uploads, &sha).await;
    let stream = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let size = match st.blobs.put(&sha, Box::pin(stream), max).await {
        Ok(size) => size,
        Err(BlobError::DigestMismatch { actual, size }) => {
            return Err(ApiError::new(
                "digest_mismatch",
                format!("the {size} bytes received hash to {actual}, not {sha}; nothing was kept"),
            ))
        }
        Err(BlobError::TooLarge(limit)) => return Err(too_large(limit)),
        Err(BlobError::Body(e)) => {
            return Err(crate::extract::not_kept(ApiError::bad_request(format!(
                "reading the upload failed: {e}"
            ))))
        }
        Err(e) => return Err(blob_error(e)),
    };
    let a = p.writer();
    let sha2 = sha.clone();
    match st.store.add_artifact(&a, &run_id, &name, &sha2, size).await {
        Ok(art) => {
            drop(pending);
            Ok((StatusCode::CREATED, Json(art)))
        }
        Err(e) => {
            pending.discard_blob(&st).await;
            Err(e.into())
        }
    }
}

pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    scope: ListScope,
    Q(q): Q<PageQuery>,
) -> ApiResult<Json<Page<Artifact>>> {
    p.read_run(&run_id)?;
    let pr = q.to_req(&scope)?;
    Ok(Json(page(pr, st.store.list_artifacts(&run_id, pr).await?)))
}

pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    P((run_id, artifact_id)): P<(String, String)>,
) -> ApiResult<Json<Artifact>> {
    p.read_run(&run_id)?;
    Ok(Json(st.store.get_artifact(&run_id, &artifact_id).await?))
}

pub async fn download(
    State(st): State<AppState>,
    p: Principal,
    P((run_id, artifact_id)): P<(String, String)>,
) -> ApiResult<Response> {
    p.read_run(&run_id)?;
    let art = st.store.get_artifact(&run_id, &artifact_id).await?;
    // A small blob is checked whole before a byte is sent, so damage is a clean error, not a
    // 200 cut short; a large one is checked while it streams (the body then ends in an error,
    // which every client sees as a failed download) rather than read twice.
    if art.size <= VERIFY_BEFORE_SENDING {
        match st.blobs.verify(&art.sha256).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(ApiError::internal(format!(
                    "blob {} of {} is missing",
                    art.sha256, art.id
                )))
            }
            Err(BlobError::Corrupt { actual, .. }) => {
                tracing::error!(artifact = %art.id, sha256 = %art.sha256, %actual, "stored blob does not match its digest");
                return Err(ApiError::new(
                    "internal",
                    format!(
                        "the stored bytes of artifact {} no longer match its sha256 {} (they hash to {actual}); the blob store is damaged: restore it from a backup",
                        art.id, art.sha256
                    ),
                ));
            }
            Err(e) => return Err(blob_error(e)),
        }
    }
    let (size, stream) = match st.blobs.get(&art.sha256).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return Err(ApiError::internal(format!(
                "blob {} of {} is missing",
                art.sha256, art.id
            )))
        }
        Err(e) => return Err(blob_error(e)),
    };
    let base = art.name.rsplit('/').next().unwrap_or("artifact");
    // Only a conservative file name goes into the header; the full name is in the metadata.
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(
        "x-content-sha256",
        HeaderValue::from_str(&art.sha256).expect("hex is a valid header"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
