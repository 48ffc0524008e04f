//! Tag `datasets`: datasets and their content-addressed versions.

use super::{Operation, WriteOperation};
use crate::client::{decode_json, path, Call, Client};
use crate::error::Result;
use crate::model::datasets::{
    CreateDatasetRequest, Dataset, DatasetManifest, DatasetVersion, RegisterDatasetVersionRequest,
    Registration,
};
use crate::pagination::Pager;
use crate::transport::{Method, Response};

fn registration(resp: Response) -> Result<Registration> {
    let version: DatasetVersion = decode_json(&resp)?;
    Ok(Registration {
        version,
        // 201: this call created the version; 200: it was registered before.
        created: resp.status == 201,
    })
}

impl Client {
    /// `createDataset` — `POST /v1/datasets`.
    pub fn create_dataset(&self, req: &CreateDatasetRequest) -> WriteOperation<Dataset> {
        let call = path(&["datasets"]).and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `listDatasets` — `GET /v1/datasets`.
    pub fn list_datasets(&self) -> Pager<Dataset> {
        Pager::new(self.clone(), path(&["datasets"]), Vec::new())
    }

    /// `getDataset` — `GET /v1/datasets/{dataset_id}`.
    pub fn get_dataset(&self, dataset_id: &str) -> Operation<Dataset> {
        Operation::json(self, path(&["datasets", dataset_id]).map(Call::get))
    }

    /// `registerDatasetVersion` — `POST /v1/datasets/{dataset_id}/versions`. Registering an
    /// already registered digest returns the existing version with `created == false`.
    pub fn register_dataset_version(
        &self,
        dataset_id: &str,
        req: &RegisterDatasetVersionRequest,
    ) -> WriteOperation<Registration> {
        let call = path(&["datasets", dataset_id, "versions"])
            .and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::new(self, call, registration)
    }

    /// `listDatasetVersions` — `GET /v1/datasets/{dataset_id}/versions`.
    pub fn list_dataset_versions(&self, dataset_id: &str) -> Pager<DatasetVersion> {
        Pager::new(
            self.clone(),
            path(&["datasets", dataset_id, "versions"]),
            Vec::new(),
        )
    }

    /// `getDatasetVersion` — `GET /v1/datasets/{dataset_id}/versions/{digest}`.
    pub fn get_dataset_version(&self, dataset_id: &str, digest: &str) -> Operation<DatasetVersion> {
        let call = path(&["datasets", dataset_id, "versions", digest]).map(Call::get);
        Operation::json(self, call)
    }

    /// `getDatasetVersionManifest` — `GET /v1/datasets/{dataset_id}/versions/{digest}/manifest`.
    pub fn get_dataset_version_manifest(
        &self,
        dataset_id: &str,
        digest: &str,
    ) -> Operation<DatasetManifest> {
        let call = path(&["datasets", dataset_id, "versions", digest, "manifest"]).map(Call::get);
        Operation::json(self, call)
    }
}
