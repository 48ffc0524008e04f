//! `runs` and `metrics` tags: runs (with their run tokens), sealing, metric batches, and the
//! run's lineage.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{page_req, JsonBody, ListScope, METRICS_LIMIT, P, Q};
use crate::model::*;
use crate::store::NewRun;
use crate::util::{hash_secret, new_secret};
use crate::validate;

fn refs(field: &str, list: &[VersionRef], min: usize) -> Result<(), ApiError> {
    if list.len() < min || list.len() > 100 {
        return Err(ApiError::validation(
            field,
            format!("must have {min} to 100 entries"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, r) in list.iter().enumerate() {
        validate::digest(&format!("{field}[{i}].digest"), &r.digest)?;
        if !seen.insert(r) {
            return Err(ApiError::validation(
                &format!("{field}[{i}]"),
                "duplicate entry",
            ));
        }
    }
    Ok(())
}

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    body: JsonBody<CreateRunRequest>,
) -> ApiResult<(StatusCode, Json<CreatedRun>)> {
    p.write_catalog()?;
    let req = body.parse().await?;
    validate::label("name", &req.name)?;
    refs("inputs", &req.inputs, 1)?;
    validate::git_commit("git_commit", &req.git_commit)?;
    validate::digest("image_digest", &req.image_digest)?;
    let params = req.params.unwrap_or_default();
    validate::string_map("params", &params, 256)?;
    let secret = new_secret("dpr_");
    let new = NewRun {
        name: req.name,
        inputs: req.inputs,
        git_commit: req.git_commit,
        image_digest: req.image_digest,
        params,
        token_hash: hash_secret(&secret),
        token_ttl_override: st.run_token_ttl_override,
    };
    let a = p.writer();
    let (run, expires) = st.store.create_run(&a, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRun {
            run,
            run_token: secret,
            run_token_expires_at: expires,
        }),
    ))
}

pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<String>,
) -> ApiResult<Json<Run>> {
    p.read_run(&id)?;
    Ok(Json(st.store.get_run(&id).await?))
}

/// A new run token for a running run whose token was lost (engineer or admin; audited as
/// `run.token_reissue`). The old token stops working.
pub async fn reissue_token(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<String>,
) -> ApiResult<(StatusCode, Json<ReissuedRunToken>)> {
    p.write_catalog()?;
    let secret = new_secret("dpr_");
    let a = p.writer();
    let expires = st
        .store
        .reissue_run_token(&a, &id, &hash_secret(&secret), st.run_token_ttl_override)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ReissuedRunToken {
            run_id: id,
            run_token: secret,
            run_token_expires_at: expires,
        }),
    ))
}

pub async fn finish(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<String>,
    body: JsonBody<FinishRunRequest>,
) -> ApiResult<Json<Run>> {
    p.write_run(&id)?;
    let req = body.parse().await?;
    let outputs = req.outputs.unwrap_or_default();
    refs("outputs", &outputs, 0)?;
    let a = p.writer();
    Ok(Json(
        st.store.finish_run(&a, &id, req.status, &outputs).await?,
    ))
}

pub async fn append_metrics(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    body: JsonBody<AppendMetricsRequest, METRICS_LIMIT>,
) -> ApiResult<(StatusCode, Json<MetricBatch>)> {
    p.write_run(&run_id)?;
    let req = body.parse().await?;
    if req.points.is_empty() || req.points.len() > 10_000 {
        return Err(ApiError::validation(
            "points",
            "must have 1 to 10000 points",
        ));
    }
    for (i, pt) in req.points.iter().enumerate() {
        validate::metric_name(&format!("points[{i}].name"), &pt.name)?;
        validate::safe_int(&format!("points[{i}].step"), pt.step)?;
        if !pt.value.is_finite() {
            return Err(ApiError::validation(
                &format!("points[{i}].value"),
                "must be finite",
            ));
        }
        if let Some(t) = &pt.time {
            validate::timestamp(&format!("points[{i}].time"), t)?;
        }
    }
    // The ledger commits to the batch by digest: floats never enter a leaf.
    let digest = format!(
        "sha256:{}",
        crate::util::sha256_hex(&crate::canon::jcs(&req.points))
    );
    let a = p.writer();
    let batch = st
        .store
        .append_metrics(&a, &run_id, req.points, &digest)
        .await?;
    Ok((StatusCode::CREATED, Json(batch)))
}

#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    name: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<String>,
}

pub async fn list_metrics(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    scope: ListScope,
    Q(q): Q<MetricsQuery>,
) -> ApiResult<Json<Page<MetricValue>>> {
    p.read_run(&run_id)?;
    let pr = page_req(q.limit, q.cursor.as_deref(), q.order.as_deref(), &scope)?;
    if let Some(n) = &q.name {
        validate::metric_name("name", n)?;
    }
    Ok(Json(page(
        pr,
        st.store
            .list_metrics(&run_id, q.name.as_deref(), pr)
            .await?,
    )))
}

pub async fn lineage(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
) -> ApiResult<Json<datapilot::model::lineage::Lineage>> {
    p.read_catalog()?;
    Ok(Json(st.store.run_lineage(&run_id, None).await?))
}
