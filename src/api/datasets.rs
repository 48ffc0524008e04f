//! Tag `datasets`: datasets and their content-addressed versions.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::Result;
use crate::model::datasets::{
    CreateDatasetRequest, Dataset, DatasetManifest, DatasetVersion, RegisterDatasetVersionRequest,
    Registration,
};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `createDataset` — `POST /v1/datasets`.
    pub async fn create_dataset(&self, req: &CreateDatasetRequest) -> Result<Dataset> {
        self.create_dataset_with(req, &RequestOptions::default())
            .await
    }

    /// `createDataset` with per-call options.
    pub async fn create_dataset_with(
        &self,
        req: &CreateDatasetRequest,
        opts: &RequestOptions,
    ) -> Result<Dataset> {
        self.json(Call::json(Method::Post, path(&["datasets"])?, req, opts)?)
            .await
    }

    /// `listDatasets` — `GET /v1/datasets`.
    pub fn list_datasets(&self) -> Pager<Dataset> {
        Pager::new(self.clone(), "/v1/datasets".to_owned(), Vec::new())
    }

    /// `getDataset` — `GET /v1/datasets/{dataset_id}`.
    pub async fn get_dataset(&self, dataset_id: &str) -> Result<Dataset> {
        self.json(Call::get(path(&["datasets", dataset_id])?)).await
    }

    /// `registerDatasetVersion` — `POST /v1/datasets/{dataset_id}/versions`. Registering an
    /// already registered digest returns the existing version with `created == false`.
    pub async fn register_dataset_version(
        &self,
        dataset_id: &str,
        req: &RegisterDatasetVersionRequest,
    ) -> Result<Registration> {
        self.register_dataset_version_with(dataset_id, req, &RequestOptions::default())
            .await
    }

    /// `registerDatasetVersion` with per-call options.
    pub async fn register_dataset_version_with(
        &self,
        dataset_id: &str,
        req: &RegisterDatasetVersionRequest,
        opts: &RequestOptions,
    ) -> Result<Registration> {
        let call = Call::json(
            Method::Post,
            path(&["datasets", dataset_id, "versions"])?,
            req,
            opts,
        )?;
        let resp = self.execute(call).await?;
        let version: DatasetVersion = crate::client::decode_json(&resp)?;
        Ok(Registration {
            version,
            created: resp.status == 201,
        })
    }

    /// `listDatasetVersions` — `GET /v1/datasets/{dataset_id}/versions`.
    pub fn list_dataset_versions(&self, dataset_id: &str) -> Result<Pager<DatasetVersion>> {
        Ok(Pager::new(
            self.clone(),
            path(&["datasets", dataset_id, "versions"])?,
            Vec::new(),
        ))
    }

    /// `getDatasetVersion` — `GET /v1/datasets/{dataset_id}/versions/{digest}`.
    pub async fn get_dataset_version(
        &self,
        dataset_id: &str,
        digest: &str,
    ) -> Result<DatasetVersion> {
        self.json(Call::get(path(&[
            "datasets", dataset_id, "versions", digest,
        ])?))
        .await
    }

    /// `getDatasetVersionManifest` — `GET /v1/datasets/{dataset_id}/versions/{digest}/manifest`.
    pub async fn get_dataset_version_manifest(
        &self,
        dataset_id: &str,
        digest: &str,
    ) -> Result<DatasetManifest> {
        self.json(Call::get(path(&[
            "datasets", dataset_id, "versions", digest, "manifest",
        ])?))
        .await
    }
}
