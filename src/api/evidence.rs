//! Tag `evidence`: evidence bundle export. Verify the bytes with [`crate::evidence`].

use crate::client::{path, Call, Client};
use crate::error::Result;

/// Media type of an evidence bundle.
pub const ZIP: &str = "application/zip";

impl Client {
    /// `exportRunEvidence` — `GET /v1/runs/{run_id}/evidence?tree_size=`: the bundle's zip
    /// bytes, deterministic for the same run and tree size (default: current size).
    pub async fn export_run_evidence(
        &self,
        run_id: &str,
        tree_size: Option<u64>,
    ) -> Result<Vec<u8>> {
        let call = Call::get(path(&["runs", run_id, "evidence"])?)
            .query_opt("tree_size", tree_size)
            .accept(ZIP);
        Ok(self.execute(call).await?.body)
    }

    /// `exportDatasetVersionEvidence` —
    /// `GET /v1/datasets/{dataset_id}/versions/{digest}/evidence?tree_size=`.
    pub async fn export_dataset_version_evidence(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> Result<Vec<u8>> {
        let call = Call::get(path(&[
            "datasets", dataset_id, "versions", digest, "evidence",
        ])?)
        .query_opt("tree_size", tree_size)
        .accept(ZIP);
        Ok(self.execute(call).await?.body)
    }
}
