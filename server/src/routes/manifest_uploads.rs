//! `datasets` tag, continued: dataset versions of any size. A manifest too large for one
//! request is sent in parts and committed (`createManifestUpload`, `putManifestPart`,
//! `getManifestUpload`, `commitManifestUpload`), and any manifest is read a page at a time
//! (`listDatasetVersionFiles`). The rules are in [`crate::store::manifest_uploads`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use datapilot::manifest::Manifest;
use serde::Deserialize;

use super::datasets::manifest_error;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, MANIFEST_LIMIT, P, Q};
use crate::model::*;
use crate::store::manifest_uploads::{
    ManifestPart, ManifestUpload, MAX_FILES_PAGE, MAX_PARTS, MAX_PART_FILES,
};
use crate::validate;

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    P(dataset_id): P<String>,
    body: JsonBody<CreateManifestUploadRequest>,
) -> ApiResult<(StatusCode, Json<ManifestUpload>)> {
    p.write_catalog()?;
    let req = body.parse().await?;
    validate::digest("digest", &req.digest)?;
    if let Some(n) = &req.note {
        validate::long_text("note", n)?;
    }
    let u = st
        .store
        .create_manifest_upload(&p.writer(), &dataset_id, &req.digest, req.note.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(u)))
}

pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, upload_id)): P<(String, String)>,
) -> ApiResult<Json<ManifestUpload>> {
    p.write_catalog()?;
    let a = p.writer().actor;
    Ok(Json(
        st.store
            .get_manifest_upload(&a, &dataset_id, &upload_id)
            .await?,
    ))
}

pub async fn put_part(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, upload_id, part)): P<(String, String, String)>,
    body: JsonBody<PutManifestPartRequest, MANIFEST_LIMIT>,
) -> ApiResult<(StatusCode, Json<ManifestPart>)> {
    p.write_catalog()?;
    let part = part
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            ApiError::validation("part", format!("must be an integer from 1 to {MAX_PARTS}"))
        })?;
    let req = body.parse().await?;
    if req.files.is_empty() || req.files.len() > MAX_PART_FILES {
        return Err(ApiError::validation(
            "files",
            format!("a part lists 1 to {MAX_PART_FILES} files"),
        ));
    }
    for (i, f) in req.files.iter().enumerate() {
        validate::dpm_path(&format!("files[{i}].path"), &f.path, 4096)?;
        validate::safe_int(&format!("files[{i}].size"), f.size)?;
    }
    // Checks paths and hashes, sorts by path bytes and refuses a path listed twice.
    let files = req.files.into_iter().map(FileEntry::from).collect();
    let files = Manifest::from_entries(files)
        .map_err(manifest_error)?
        .into_files();
    let a = p.writer().actor;
    let (out, stored) = st
        .store
        .put_manifest_part(&a, &dataset_id, &upload_id, part, files)
        .await?;
    let status = if stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
}

pub async fn commit(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, upload_id)): P<(String, String)>,
) -> ApiResult<(StatusCode, Json<DatasetVersion>)> {
    p.write_catalog()?;
    let w = p.writer();
    let upload = st
        .store
        .get_manifest_upload(&w.actor, &dataset_id, &upload_id)
        .await?;
    let totals = if upload.state == "committed" {
        // Answered from the version it registered (its staging rows may be gone already).
        crate::store::manifest_uploads::StagedTotals {
            file_count: 0,
            total_bytes: 0,
        }
    } else {
        // The server never trusts the client's digest: DPM-1 over everything staged.
        let (computed, totals) = st
            .store
            .staged_digest(&w.actor, &dataset_id, &upload_id)
            .await?;
        if totals.file_count == 0 {
            return Err(ApiError::validation(
                "files",
                "a manifest must list at least one file: the upload has no parts",
            ));
        }
        validate::safe_int("files", totals.total_bytes)?;
        if computed != upload.digest {
            return Err(manifest_error(
                datapilot::manifest::ManifestError::DigestMismatch {
                    claimed: upload.digest.clone(),
                    computed,
                },
            ));
        }
        totals
    };
    let (v, created) = st
        .store
        .commit_manifest_upload(&w, &dataset_id, &upload_id, totals)
        .await?;
    if upload.state != "committed" {
        let store = st.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.drop_staged_rows(&upload_id).await {
                tracing::warn!(upload = %upload_id, error = %e, "staged manifest rows not deleted yet; the next upload's sweep retries");
            }
        });
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A files cursor is the last path of the page, opaque to clients.
fn encode_path_cursor(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p{path}"))
}

fn decode_path_cursor(c: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix('p')
        .map(str::to_owned)
}

/// Default page of `listDatasetVersionFiles`.
pub const DEFAULT_FILES_PAGE: u32 = 1_000;

pub async fn list_files(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
    Q(q): Q<FilesQuery>,
) -> ApiResult<Json<Page<FileEntry>>> {
    p.read_catalog()?;
    let limit = q.limit.unwrap_or(DEFAULT_FILES_PAGE);
    if !(1..=MAX_FILES_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_FILES_PAGE}"),
        ));
    }
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(decode_path_cursor(c).ok_or_else(|| {
            ApiError::bad_request("invalid cursor: pass back a next_cursor unchanged")
        })?),
    };
    let (items, next) = st
        .store
        .list_version_files(&dataset_id, &digest, after, limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.as_deref().map(encode_path_cursor),
    }))
}
