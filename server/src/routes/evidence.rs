//! `evidence` tag: signed evidence bundles for a run or a dataset version. A read: not
//! audited, and deterministic for the same scope and tree size.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::evidence::{build, BundleScope};
use crate::extract::{P, Q};

#[derive(Debug, Deserialize)]
pub struct EvidenceQuery {
    tree_size: Option<u64>,
}

async fn export(st: AppState, scope: BundleScope, tree_size: Option<u64>) -> ApiResult<Response> {
    let bundle = build(&st.store, &st.key, &scope, tree_size).await?;
    let mut resp = Body::from(bundle.bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", bundle.file_name))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub async fn run_bundle(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    Q(q): Q<EvidenceQuery>,
) -> ApiResult<Response> {
    p.evidence()?;
    export(st, BundleScope::Run(run_id), q.tree_size).await
}

pub async fn version_bundle(
    State(st): State<AppState>,
    p: Principal,
    P((dataset_id, digest)): P<(String, String)>,
    Q(q): Q<EvidenceQuery>,
) -> ApiResult<Response> {
    p.evidence()?;
    export(st, BundleScope::Version { dataset_id, digest }, q.tree_size).await
}
