//! Tag `gates`: quality gate results of dataset versions.

use super::WriteOperation;
use crate::client::{path, Call, Client};
use crate::model::gates::{GateResult, RecordGateResultRequest};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `recordGateResult` — `POST /v1/datasets/{dataset_id}/versions/{digest}/gates`.
    pub fn record_gate_result(
        &self,
        dataset_id: &str,
        digest: &str,
        req: &RecordGateResultRequest,
    ) -> WriteOperation<GateResult> {
        let call = path(&["datasets", dataset_id, "versions", digest, "gates"])
            .and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `listGateResults` — `GET /v1/datasets/{dataset_id}/versions/{digest}/gates`.
    pub fn list_gate_results(&self, dataset_id: &str, digest: &str) -> Pager<GateResult> {
        Pager::new(
            self.clone(),
            path(&["datasets", dataset_id, "versions", digest, "gates"]),
            Vec::new(),
        )
    }
}
