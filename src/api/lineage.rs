//! Tag `lineage`: lineage graphs around a run or a dataset version.

use super::Operation;
use crate::client::{path, Call, Client};
use crate::model::lineage::Lineage;

impl Client {
    /// `getRunLineage` — `GET /v1/runs/{run_id}/lineage`.
    pub fn get_run_lineage(&self, run_id: &str) -> Operation<Lineage> {
        Operation::json(self, path(&["runs", run_id, "lineage"]).map(Call::get))
    }

    /// `getDatasetVersionLineage` — `GET /v1/datasets/{dataset_id}/versions/{digest}/lineage`.
    pub fn get_dataset_version_lineage(
        &self,
        dataset_id: &str,
        digest: &str,
    ) -> Operation<Lineage> {
        let call = path(&["datasets", dataset_id, "versions", digest, "lineage"]).map(Call::get);
        Operation::json(self, call)
    }
}
