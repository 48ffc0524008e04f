//! Tag `runs`: runs and their lifecycle.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::Result;
use crate::model::runs::{CreateRunRequest, CreatedRun, FinishRunRequest, Run};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `createRun` — `POST /v1/runs`. Fails with `gate_not_passed` if an input has not passed
    /// the policy's gates. The response carries the run token; act with it through
    /// [`Client::with_token`].
    pub async fn create_run(&self, req: &CreateRunRequest) -> Result<CreatedRun> {
        self.create_run_with(req, &RequestOptions::default()).await
    }

    /// `createRun` with per-call options.
    pub async fn create_run_with(
        &self,
        req: &CreateRunRequest,
        opts: &RequestOptions,
    ) -> Result<CreatedRun> {
        self.json(Call::json(Method::Post, path(&["runs"])?, req, opts)?)
            .await
    }

    /// `listRuns` — `GET /v1/runs`.
    pub fn list_runs(&self) -> Pager<Run> {
        Pager::new(self.clone(), "/v1/runs".to_owned(), Vec::new())
    }

    /// `getRun` — `GET /v1/runs/{run_id}`.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.json(Call::get(path(&["runs", run_id])?)).await
    }

    /// `finishRun` — `POST /v1/runs/{run_id}/finish`: seals the run.
    pub async fn finish_run(&self, run_id: &str, req: &FinishRunRequest) -> Result<Run> {
        self.finish_run_with(run_id, req, &RequestOptions::default())
            .await
    }

    /// `finishRun` with per-call options.
    pub async fn finish_run_with(
        &self,
        run_id: &str,
        req: &FinishRunRequest,
        opts: &RequestOptions,
    ) -> Result<Run> {
        let p = path(&["runs", run_id, "finish"])?;
        self.json(Call::json(Method::Post, p, req, opts)?).await
    }
}
