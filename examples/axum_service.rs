//! An axum service that records training runs in DataPilot: the shape of a Rust service that
//! uses the SDK (one `Client` in the router state, shared by every request handler and by the
//! background tasks they spawn).
//!
//! ```sh
//! DATAPILOT_URL=http://127.0.0.1:8080 DATAPILOT_TOKEN=dpt_… \
//!   cargo run --example axum_service --features native
//! curl -X POST localhost:3000/train -H 'content-type: application/json' \
//!   -d '{"dataset_id":"ds_…","digest":"sha256:…","lr":"0.01"}'
//! curl localhost:3000/runs/run_…
//! curl localhost:3000/runs
//! ```
//!
//! `POST /train` starts a DataPilot run (refused with 409 when an input has not passed its
//! gates), answers at once with the run id, and "trains" in a spawned task that logs metrics
//! and finishes the run with the run's own token. `GET /runs/{id}` and `GET /runs` read
//! through with a short per-call deadline, so a slow control plane makes this service answer
//! 504 instead of hanging its callers.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, Run};
use datapilot::model::DatasetVersionRef;
use datapilot::{Client, Error};
use futures_util::StreamExt;
use serde::Deserialize;

/// What every handler shares: one client (an `Arc` inside; clones share connections and the
/// retry budget).
#[derive(Clone)]
struct AppState {
    dp: Client,
}

#[derive(Deserialize)]
struct TrainRequest {
    dataset_id: String,
    digest: String,
    lr: String,
}

/// Reads answer within this, retries included, or the caller gets a 504.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// Maps an SDK error to this service's answer (the SDK already retried what was retryable).
fn status_of(e: &Error) -> (StatusCode, String) {
    let status = match e.status() {
        Some(404) => StatusCode::NOT_FOUND,
        Some(409) | Some(422) => StatusCode::CONFLICT,
        _ if e.is_retryable() => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    // `Display` of an SDK error never contains a token.
    (status, e.to_string())
}

async fn train(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<TrainRequest>,
) -> Result<(StatusCode, Json<Run>), (StatusCode, String)> {
    let create = CreateRunRequest::new(
        "service-train",
        vec![DatasetVersionRef::new(req.dataset_id, req.digest)],
        // A real service takes these from its build metadata.
        "4015b57a143aec5156fd1444a017a32137a3fd0f",
        format!("sha256:{}", "6105d6cc".repeat(8)),
    )
    .with_param("lr", req.lr);
    let mut op = state.dp.create_run(&create);
    // A client retrying its POST /train with the same request id must not start two runs.
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        op = op.idempotency_key(format!("train-{id}"));
    }
    let created = op.send().await.map_err(|e| status_of(&e))?;
    let run_client = state
        .dp
        .with_token(created.run_token.clone())
        .map_err(|e| status_of(&e))?;
    let run_id = created.run.id.clone();
    // The training job outlives the request: a spawned task, which needs a `Send` client.
    tokio::spawn(async move {
        let outcome = async {
            for step in 0..3u64 {
                let loss = 1.0 / (step as f64 + 1.0);
                let batch = AppendMetricsRequest::new(vec![MetricPoint::new("loss", step, loss)]);
                run_client.append_metrics(&run_id, &batch).send().await?;
            }
            run_client
                .upload_artifact_bytes(&run_id, "model.bin", b"weights".to_vec())
                .send()
                .await?;
            run_client
                .finish_run(&run_id, &FinishRunRequest::succeeded())
                .send()
                .await
        }
        .await;
        if let Err(e) = outcome {
            eprintln!("run {run_id}: {e}");
            let _ = run_client
                .finish_run(&run_id, &FinishRunRequest::failed())
                .send()
                .await;
        }
    });
    Ok((StatusCode::ACCEPTED, Json(created.run)))
}

async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, (StatusCode, String)> {
    let run = state
        .dp
        .get_run(&id)
        .deadline(READ_DEADLINE)
        .send()
        .await
        .map_err(|e| status_of(&e))?;
    Ok(Json(run))
}

/// The 100 most recent runs, read page by page through the pager's stream.
async fn list_runs(State(state): State<AppState>) -> Result<Json<Vec<Run>>, (StatusCode, String)> {
    let mut runs = Vec::new();
    let mut stream = state
        .dp
        .list_runs()
        .limit(50)
        .deadline(READ_DEADLINE)
        .into_stream()
        .take(100);
    while let Some(run) = stream.next().await {
        runs.push(run.map_err(|e| status_of(&e))?);
    }
    Ok(Json(runs))
}

/// The service's routes, separate from `main` so a test can serve them on any listener.
fn app(dp: Client) -> Router {
    Router::new()
        .route("/train", post(train))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .with_state(AppState { dp })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dp = Client::builder()
        .base_url(std::env::var("DATAPILOT_URL").map_err(|_| "set DATAPILOT_URL")?)
        .token(std::env::var("DATAPILOT_TOKEN").map_err(|_| "set DATAPILOT_TOKEN")?)
        .build()?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(dp)).await?;
    Ok(())
}
