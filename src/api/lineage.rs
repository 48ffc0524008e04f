//! Tag `lineage`: lineage graphs around a run or a dataset version.

use crate::client::{path, Call, Client};
use crate::error::Result;
use crate::model::lineage::Lineage;

impl Client {
    /// `getRunLineage` — `GET /v1/runs/{run_id}/lineage`.
    pub async fn get_run_lineage(&self, run_id: &str) -> Result<Lineage> {
        self.json(Call::get(path(&["runs", run_id, "lineage"])?))
            .await
    }

    /// `getDatasetVersionLineage` — `GET /v1/datasets/{dataset_id}/versions/{digest}/lineage`.
    pub async fn get_dataset_version_lineage(
        &self,
        dataset_id: &str,
        digest: &str,
    ) -> Result<Lineage> {
        self.json(Call::get(path(&[
            "datasets", dataset_id, "versions", digest, "lineage",
        ])?))
        .await
    }
}
