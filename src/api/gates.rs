//! Tag `gates`: quality gate results of dataset versions.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::Result;
use crate::model::gates::{GateResult, RecordGateResultRequest};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `recordGateResult` — `POST /v1/datasets/{dataset_id}/versions/{digest}/gates`.
    pub async fn record_gate_result(
        &self,
        dataset_id: &str,
        digest: &str,
        req: &RecordGateResultRequest,
    ) -> Result<GateResult> {
        self.record_gate_result_with(dataset_id, digest, req, &RequestOptions::default())
            .await
    }

    /// `recordGateResult` with per-call options.
    pub async fn record_gate_result_with(
        &self,
        dataset_id: &str,
        digest: &str,
        req: &RecordGateResultRequest,
        opts: &RequestOptions,
    ) -> Result<GateResult> {
        let p = path(&["datasets", dataset_id, "versions", digest, "gates"])?;
        self.json(Call::json(Method::Post, p, req, opts)?).await
    }

    /// `listGateResults` — `GET /v1/datasets/{dataset_id}/versions/{digest}/gates`.
    pub fn list_gate_results(&self, dataset_id: &str, digest: &str) -> Result<Pager<GateResult>> {
        Ok(Pager::new(
            self.clone(),
            path(&["datasets", dataset_id, "versions", digest, "gates"])?,
            Vec::new(),
        ))
    }
}
