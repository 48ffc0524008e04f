//! Dashboard queries (tags `runs`, `datasets`, `artifacts`, `lineage`, `metrics`): the run
//! list's filters, a dataset by name, artifacts by content, lineage several generations deep,
//! metric summaries and comparisons. Validation here; the queries are in store/queries.rs.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_path_param as check, page_req, ListScope, P, Q};
use crate::model::*;
use crate::store::queries::{LineageStart, LineageWalk, RunQuery};
use crate::validate;

/// Most runs one `compareMetrics` call takes.
pub const COMPARE_MAX_RUNS: usize = 10;
/// Most buckets of a summarised series.
pub const SUMMARY_MAX_POINTS: u32 = 2000;
/// Deepest lineage walk, in run generations.
pub const LINEAGE_MAX_DEPTH: u32 = 10;

/// `ds_…@sha256:…` into its two parts, validated.
fn version_ref(field: &str, s: &str) -> Result<(String, String), ApiError> {
    let (ds, digest) = s
        .split_once('@')
        .ok_or_else(|| ApiError::validation(field, "must be <dataset_id>@<digest>"))?;
    check("dataset_id", ds).map_err(|_| ApiError::validation(field, "has no valid dataset id"))?;
    check("digest", digest).map_err(|_| ApiError::validation(field, "has no valid digest"))?;
    Ok((ds.to_string(), digest.to_string()))
}

#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<String>,
    input: Option<String>,
    output: Option<String>,
    status: Option<String>,
    created_by: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    git_commit: Option<String>,
    image_digest: Option<String>,
}

/// `listRuns` with its filters.
pub async fn list_runs(
    State(st): State<AppState>,
    p: Principal,
    scope: ListScope,
    Q(q): Q<RunsQuery>,
) -> ApiResult<Json<Page<Run>>> {
    p.read_catalog()?;
    let pr = page_req(q.limit, q.cursor.as_deref(), q.order.as_deref(), &scope)?;
    let time = |field: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
        v.as_deref()
            .map(|t| {
                crate::util::parse_time(t)
                    .ok_or_else(|| ApiError::validation(field, "must be an RFC 3339 time"))
            })
            .transpose()
    };
    if let Some(s) = &q.status {
        if !["running", "succeeded", "failed"].contains(&s.as_str()) {
            return Err(ApiError::validation(
                "status",
                "must be running, succeeded or failed",
            ));
        }
    }
    if let Some(c) = &q.git_commit {
        validate::git_commit("git_commit", c)?;
    }
    if let Some(d) = &q.image_digest {
        validate::digest("image_digest", d)?;
    }
    if let Some(c) = &q.created_by {
        check("token_id", c)
            .map_err(|_| ApiError::validation("created_by", "must be a token id"))?;
    }
    let rq = RunQuery {
        input: q
            .input
            .as_deref()
            .map(|v| version_ref("input", v))
            .transpose()?,
        output: q
            .output
            .as_deref()
            .map(|v| version_ref("output", v))
            .transpose()?,
        status: q.status,
        created_by: q.created_by,
        created_after: time("created_after", &q.created_after)?,
        created_before: time("created_before", &q.created_before)?,
        git_commit: q.git_commit,
        image_digest: q.image_digest,
    };
    Ok(Json(page(pr, st.store.list_runs_where(rq, pr).await?)))
}

#[derive(Debug, Deserialize)]
pub struct DatasetsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<String>,
    name: Option<String>,
}

/// `listDatasets`, or with `name` the one dataset of that name (a page of zero or one).
pub async fn list_datasets(
    State(st): State<AppState>,
    p: Principal,
    scope: ListScope,
    Q(q): Q<DatasetsQuery>,
) -> ApiResult<Json<Page<Dataset>>> {
    p.read_catalog()?;
    let pr = page_req(q.limit, q.cursor.as_deref(), q.order.as_deref(), &scope)?;
    match &q.name {
        Some(name) => {
            validate::dataset_name("name", name)?;
            if q.cursor.is_some() {
                return Err(ApiError::bad_request(
                    "a name lookup is one page: it takes no cursor",
                ));
            }
            Ok(Json(Page {
                items: st.store.dataset_by_name(name).await?,
                next_cursor: None,
            }))
        }
        None => Ok(Json(page(pr, st.store.list_datasets(pr).await?))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ArtifactsQuery {
    sha256: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<String>,
}

/// `findArtifacts`: artifacts with this content across every run ("which run produced this
/// file?").
pub async fn find_artifacts(
    State(st): State<AppState>,
    p: Principal,
    scope: ListScope,
    Q(q): Q<ArtifactsQuery>,
) -> ApiResult<Json<Page<Artifact>>> {
    p.read_catalog()?;
    let pr = page_req(q.limit, q.cursor.as_deref(), q.order.as_deref(), &scope)?;
    let sha = q
        .sha256
        .ok_or_else(|| ApiError::validation("sha256", "is required"))?;
    validate::sha256_hex("sha256", &sha)?;
    Ok(Json(page(
        pr,
        st.store.artifacts_by_sha256(&sha, pr).await?,
    )))
}

#[derive(Debug, Deserialize)]
pub struct LineageQuery {
    node: Option<String>,
    direction: Option<String>,
    depth: Option<u32>,
}

/// `getLineage`: the graph `depth` run generations up, down or both ways from a run
/// (`run:<id>`) or a dataset version (`dataset_version:<dataset_id>@<digest>`).
pub async fn lineage(
    State(st): State<AppState>,
    p: Principal,
    Q(q): Q<LineageQuery>,
) -> ApiResult<Json<datapilot::model::lineage::Lineage>> {
    p.read_catalog()?;
    let node = q
        .node
        .ok_or_else(|| ApiError::validation("node", "is required"))?;
    let start = if let Some(id) = node.strip_prefix("run:") {
        check("run_id", id).map_err(|_| ApiError::validation("node", "has no valid run id"))?;
        LineageStart::Run(id.to_string())
    } else if let Some(v) = node.strip_prefix("dataset_version:") {
        let (ds, digest) = version_ref("node", v)?;
        LineageStart::Version(ds, digest)
    } else {
        return Err(ApiError::validation(
            "node",
            "must be run:<run_id> or dataset_version:<dataset_id>@<digest>",
        ));
    };
    let (upstream, downstream) = match q.direction.as_deref().unwrap_or("both") {
        "upstream" => (true, false),
        "downstream" => (false, true),
        "both" => (true, true),
        _ => {
            return Err(ApiError::validation(
                "direction",
                "must be upstream, downstream or both",
            ))
        }
    };
    let depth = q.depth.unwrap_or(1);
    if !(1..=LINEAGE_MAX_DEPTH).contains(&depth) {
        return Err(ApiError::validation(
            "depth",
            format!("must be between 1 and {LINEAGE_MAX_DEPTH}"),
        ));
    }
    Ok(Json(
        st.store
            .lineage_walk(LineageWalk {
                start,
                upstream,
                downstream,
                depth,
            })
            .await?,
    ))
}

fn points(v: Option<u32>) -> Result<u32, ApiError> {
    let n = v.unwrap_or(200);
    if !(1..=SUMMARY_MAX_POINTS).contains(&n) {
        return Err(ApiError::validation(
            "points",
            format!("must be between 1 and {SUMMARY_MAX_POINTS}"),
        ));
    }
    Ok(n)
}

#[derive(Debug, Deserialize)]
pub struct SummaryQuery {
    name: Option<String>,
    points: Option<u32>,
}

/// `getMetricSummary`: every metric of a run (or `name`), with count, last, min, max and a
/// series of at most `points` buckets.
pub async fn metric_summary(
    State(st): State<AppState>,
    p: Principal,
    P(run_id): P<String>,
    Q(q): Q<SummaryQuery>,
) -> ApiResult<Json<datapilot::model::queries::RunMetricSummary>> {
    p.read_run(&run_id)?;
    if let Some(n) = &q.name {
        validate::metric_name("name", n)?;
    }
    let n = points(q.points)?;
    Ok(Json(
        st.store
            .metric_summary(&run_id, q.name.as_deref(), n)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    run_ids: Option<String>,
    name: Option<String>,
    points: Option<u32>,
}

/// `compareMetrics`: one metric across up to [`COMPARE_MAX_RUNS`] runs.
pub async fn compare(
    State(st): State<AppState>,
    p: Principal,
    Q(q): Q<CompareQuery>,
) -> ApiResult<Json<datapilot::model::queries::MetricComparison>> {
    p.read_catalog()?;
    let ids: Vec<String> = q
        .run_ids
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect();
    // An empty segment (",run_…") is an invalid id below, as the contract's pattern has it.
    if q.run_ids.is_none() || ids.len() > COMPARE_MAX_RUNS {
        return Err(ApiError::validation(
            "run_ids",
            format!("must list 1 to {COMPARE_MAX_RUNS} comma-separated run ids"),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        check("run_id", id)
            .map_err(|_| ApiError::validation("run_ids", "lists an invalid run id"))?;
        if ids[..i].contains(id) {
            return Err(ApiError::validation("run_ids", "lists a run twice"));
        }
    }
    let name = q
        .name
        .ok_or_else(|| ApiError::validation("name", "is required"))?;
    validate::metric_name("name", &name)?;
    let n = points(q.points)?;
    Ok(Json(datapilot::model::queries::MetricComparison {
        runs: st.store.compare_metric(ids, &name, n).await?,
        name,
    }))
}
