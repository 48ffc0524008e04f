//! `datasets` and `gates` tags: datasets, content-addressed versions, manifests, gate results,
//! and the version's lineage.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use datapilot::manifest::{Manifest, ManifestError};

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListScope, PageQuery, MANIFEST_LIMIT, P, Q};
use crate::model::*;
use crate::validate;

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    body: JsonBody<CreateDatasetRequest>,
) -> ApiResult<(StatusCode, Json<Dataset>)> {
    p.write_catalog()?;
    let req = body.parse().await?;
    validate::dataset_name("name", &req.name)?;
    if let Some(d) = &req.description {
        validate::long_text("description", d)?;
    }
    let a = p.writer();
    let ds = st
        .store
        .create_dataset(&a, &req.name, req.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(ds)))
}

pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<String>,
) -> ApiResult<Json<Dataset>> {
    p.read_catalog()?;
    Ok(Json(st.store.get_dataset(&id).await?))
}

pub(crate) fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::DigestMismatch { .. } => ApiError::new("digest_mismatch", e.to_string()),
        ManifestError::InvalidDigest { .. } => ApiError::validation("digest", e.to_string()),
        other => ApiError::validation("files", other.to_string()),
    }
}

pub async fn register_version(
    State(st): State<AppState>,
    p: Principal,
    P(dataset_id): P<String>,
    body: JsonBody<RegisterVersionRequest, MANIFEST_LIMIT>,
) -> ApiResult<(StatusCode, Json<DatasetVersion>)> {
    p.write_catalog()?;
    let req = body.parse().await?;
    validate::digest("digest", &req.digest)?;
    if let Some(n) = &req.note {
        validate::long_text("note", n)?;
    }
    if req.files.is_empty() || req.files.len() > 100_000 {
        return Err(ApiError::validation(
            "files",
            "must list 1 to 100000 files; send a larger manifest in parts (createManifestUpload)",
        ));
    }
    for (i, f) in req.files.iter().enumerate() {
        validate::dpm_path(&format!("files[{i}].path"), &f.path, 4096)?;
        validate::safe_int(&format!("files[{i}].size"), f.size)?;
    }
    // The server never trusts the client's digest: it recomputes DPM-1 from the manifest.
    let files = req.files.into_iter().map(FileEntry::from).collect();
    let manifest = Manifest::from_entries(files).map_err(manifest_error)?;
    validate::safe_int("files", manifest.total_bytes())?;
    manifest.check_digest(&req.digest).map_err(manifest_error)?;
    let a = p.writer();
    let note = req.note;
    let (v, created) = st
        .store
        .register_version(&a, &dataset_id, manifest, note.as_deref())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)))
}

pub async fn list_versions(
    State(st): State<AppState>,
    p: Principal,
    P(dataset_id): P<String>,
    scope: ListScope,
    Q(q): Q<PageQuery>,
) -> ApiResult<Json<Page<DatasetVersion>>> {
    p.read_catalog()?;
    let pr = q.to_req(&scope)?;
    Ok(Json(page(
        pr,
        st.store.list_versions(&dataset_id, pr).await?,
    )))
}

pub async fn get_version(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
) -> ApiResult<Json<DatasetVersion>> {
    p.read_catalog()?;
    Ok(Json(st.store.get_version(&dataset_id, &digest).await?))
}

pub async fn manifest(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
) -> ApiResult<Json<crate::model::Manifest>> {
    p.read_catalog()?;
    Ok(Json(st.store.get_manifest(&dataset_id, &digest).await?))
}

pub async fn record_gate(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
    body: JsonBody<RecordGateRequest>,
) -> ApiResult<(StatusCode, Json<GateResult>)> {
    p.record_gate()?;
    let req = body.parse().await?;
    validate::gate_name("gate", &req.gate)?;
    let details = req.details.unwrap_or_default();
    validate::string_map("details", &details, 64)?;
    let a = p.writer();
    let g = st
        .store
        .record_gate(&a, &dataset_id, &digest, &req.gate, req.status, &details)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

pub async fn list_gates(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
    scope: ListScope,
    Q(q): Q<PageQuery>,
) -> ApiResult<Json<Page<GateResult>>> {
    p.read_catalog()?;
    let pr = q.to_req(&scope)?;
    Ok(Json(page(
        pr,
        st.store.list_gates(&dataset_id, &digest, pr).await?,
    )))
}

pub async fn lineage(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
) -> ApiResult<Json<datapilot::model::lineage::Lineage>> {
    p.read_catalog()?;
    Ok(Json(
        st.store.version_lineage(&dataset_id, &digest, None).await?,
    ))
}
