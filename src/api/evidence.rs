//! Tag `evidence`: evidence bundle export. Verify the bytes with [`crate::evidence`].

use super::Operation;
use crate::client::{path, Call, Client};
use crate::error::Result;
use crate::transport::Response;

/// Media type of an evidence bundle.
pub const ZIP: &str = "application/zip";

fn bytes(resp: Response) -> Result<Vec<u8>> {
    Ok(resp.body)
}

impl Client {
    /// `exportRunEvidence` — `GET /v1/runs/{run_id}/evidence?tree_size=`: the bundle's zip
    /// bytes, deterministic for the same run and tree size (default: current size).
    pub fn export_run_evidence(&self, run_id: &str, tree_size: Option<u64>) -> Operation<Vec<u8>> {
        let call = path(&["runs", run_id, "evidence"])
            .map(|p| Call::get(p).query_opt("tree_size", tree_size).accept(ZIP));
        Operation::new(self, call, bytes)
    }

    /// `exportDatasetVersionEvidence` —
    /// `GET /v1/datasets/{dataset_id}/versions/{digest}/evidence?tree_size=`.
    pub fn export_dataset_version_evidence(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> Operation<Vec<u8>> {
        let call = path(&["datasets", dataset_id, "versions", digest, "evidence"])
            .map(|p| Call::get(p).query_opt("tree_size", tree_size).accept(ZIP));
        Operation::new(self, call, bytes)
    }
}
