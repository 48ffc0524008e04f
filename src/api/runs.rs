//! Tag `runs`: runs and their lifecycle.

use super::{Operation, WriteOperation};
use crate::client::{path, Call, Client};
use crate::model::runs::{CreateRunRequest, CreatedRun, FinishRunRequest, ReissuedRunToken, Run};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `createRun` — `POST /v1/runs`. Fails with `gate_not_passed` if an input has not passed
    /// the policy's gates. The response carries the run token; act with it through
    /// [`Client::with_token`].
    pub fn create_run(&self, req: &CreateRunRequest) -> WriteOperation<CreatedRun> {
        let call = path(&["runs"]).and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `listRuns` — `GET /v1/runs`.
    pub fn list_runs(&self) -> Pager<Run> {
        Pager::new(self.clone(), path(&["runs"]), Vec::new())
    }

    /// `getRun` — `GET /v1/runs/{run_id}`.
    pub fn get_run(&self, run_id: &str) -> Operation<Run> {
        Operation::json(self, path(&["runs", run_id]).map(Call::get))
    }

    /// `reissueRunToken` — `POST /v1/runs/{run_id}/token` (engineer, admin): a new run token
    /// for a running run whose token was lost, e.g. a `createRun` whose answer never arrived
    /// (its retry gets `secret_not_replayable`). The old token stops working; audited. To
    /// close such a run instead, [`Client::finish_run`] it as failed.
    pub fn reissue_run_token(&self, run_id: &str) -> WriteOperation<ReissuedRunToken> {
        let call = path(&["runs", run_id, "token"])
            .and_then(|p| Call::json(Method::Post, p, &serde_json::json!({})));
        WriteOperation::json(self, call)
    }

    /// `finishRun` — `POST /v1/runs/{run_id}/finish`: seals the run.
    pub fn finish_run(&self, run_id: &str, req: &FinishRunRequest) -> WriteOperation<Run> {
        let call = path(&["runs", run_id, "finish"]).and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }
}
