//! The `/v1` operations, one file per OpenAPI tag. Each handler states its authorization
//! first (through [`crate::auth::Principal`]), validates its input, then makes one store call.

pub mod artifacts;
pub mod audit;
pub mod datasets;
pub mod evidence;
pub mod ledger;
pub mod manifest_uploads;
pub mod policy;
pub mod queries;
pub mod runs;
pub mod system;
pub mod tokens;

use axum::routing::{get, post, put};
use axum::Router;

use crate::app::AppState;
use crate::model::Page;
use crate::util::encode_cursor;

/// Build a page from store output.
/// A page of a list; its cursor is bound to the request's list scope (`req.scope`).
pub fn page<T>(req: crate::store::PageReq, (items, next): (Vec<T>, Option<i64>)) -> Page<T> {
    Page {
        items,
        next_cursor: next.map(|k| encode_cursor(k, req.scope)),
    }
}

pub fn api() -> Router<AppState> {
    let v = "/v1/datasets/{dataset_id}/versions/{digest}";
    Router::new()
        .route("/v1/health", get(system::health))
        .route("/v1/whoami", get(system::whoami))
        .route("/v1/keys", get(system::keys))
        .route(
            "/v1/datasets",
            post(datasets::create).get(queries::list_datasets),
        )
        .route("/v1/datasets/{dataset_id}", get(datasets::get))
        .route(
            "/v1/datasets/{dataset_id}/versions",
            post(datasets::register_version).get(datasets::list_versions),
        )
        .route(v, get(datasets::get_version))
        .route(&format!("{v}/manifest"), get(datasets::manifest))
        .route(&format!("{v}/files"), get(manifest_uploads::list_files))
        .route(
            "/v1/datasets/{dataset_id}/manifest-uploads",
            post(manifest_uploads::create),
        )
        .route(
            "/v1/datasets/{dataset_id}/manifest-uploads/{upload_id}",
            get(manifest_uploads::get),
        )
        .route(
            "/v1/datasets/{dataset_id}/manifest-uploads/{upload_id}/parts/{part}",
            put(manifest_uploads::put_part),
        )
        .route(
            "/v1/datasets/{dataset_id}/manifest-uploads/{upload_id}/commit",
            post(manifest_uploads::commit),
        )
        .route(
            &format!("{v}/gates"),
            post(datasets::record_gate).get(datasets::list_gates),
        )
        .route(&format!("{v}/lineage"), get(datasets::lineage))
        .route(&format!("{v}/evidence"), get(evidence::version_bundle))
        .route("/v1/policy", get(policy::get).put(policy::update))
        .route("/v1/runs", post(runs::create).get(queries::list_runs))
        .route("/v1/runs/{run_id}", get(runs::get))
        .route("/v1/runs/{run_id}/finish", post(runs::finish))
        .route("/v1/runs/{run_id}/token", post(runs::reissue_token))
        .route(
            "/v1/runs/{run_id}/metrics",
            post(runs::append_metrics).get(runs::list_metrics),
        )
        .route(
            "/v1/runs/{run_id}/artifacts",
            post(artifacts::upload).get(artifacts::list),
        )
        .route(
            "/v1/runs/{run_id}/artifacts/{artifact_id}",
            get(artifacts::get),
        )
        .route(
            "/v1/runs/{run_id}/artifacts/{artifact_id}/content",
            get(artifacts::download),
        )
        .route("/v1/runs/{run_id}/lineage", get(runs::lineage))
        .route(
            "/v1/runs/{run_id}/metrics/summary",
            get(queries::metric_summary),
        )
        .route("/v1/metrics/compare", get(queries::compare))
        .route("/v1/artifacts", get(queries::find_artifacts))
        .route("/v1/lineage", get(queries::lineage))
        .route("/v1/runs/{run_id}/evidence", get(evidence::run_bundle))
        .route("/v1/audit/events", get(audit::list))
        .route("/v1/audit/events/{seq}", get(audit::get))
        .route("/v1/ledger/checkpoint", get(ledger::checkpoint))
        .route("/v1/ledger/entries", get(ledger::entries))
        .route("/v1/ledger/proofs/inclusion", get(ledger::inclusion))
        .route("/v1/ledger/proofs/consistency", get(ledger::consistency))
        // The ledger as C2SP tlog-tiles, with the server root as the log prefix (issue 12).
        .route("/checkpoint", get(ledger::tlog_checkpoint))
        .route("/tile/{*rest}", get(ledger::tile))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{token_id}/revoke", post(tokens::revoke))
}
