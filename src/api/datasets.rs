//! Tag `datasets`: datasets and their content-addressed versions.

use super::{Operation, WriteOperation};
use crate::client::{decode_json, path, Call, Client};
use crate::error::{Error, Result};
use crate::model::datasets::{
    part_fingerprint, CreateDatasetRequest, CreateManifestUploadRequest, Dataset, DatasetManifest,
    DatasetVersion, FileEntry, ManifestPart, ManifestUpload, RegisterDatasetVersionRequest,
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

    /// `listDatasetVersionFiles` — `GET /v1/datasets/{dataset_id}/versions/{digest}/files`:
    /// the manifest of a version of any size, [`DEFAULT_FILES_PAGE`] files per request (up to
    /// [`MAX_FILES_PAGE`] with [`Pager::limit`]), in path byte order.
    pub fn list_dataset_version_files(&self, dataset_id: &str, digest: &str) -> Pager<FileEntry> {
        Pager::new(
            self.clone(),
            path(&["datasets", dataset_id, "versions", digest, "files"]),
            Vec::new(),
        )
        .large_pages(MAX_FILES_PAGE, DEFAULT_FILES_PAGE)
    }

    /// `createManifestUpload` — `POST /v1/datasets/{dataset_id}/manifest-uploads`.
    pub fn create_manifest_upload(
        &self,
        dataset_id: &str,
        req: &CreateManifestUploadRequest,
    ) -> WriteOperation<ManifestUpload> {
        let call = path(&["datasets", dataset_id, "manifest-uploads"])
            .and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `getManifestUpload` — `GET /v1/datasets/{dataset_id}/manifest-uploads/{upload_id}`.
    pub fn get_manifest_upload(
        &self,
        dataset_id: &str,
        upload_id: &str,
    ) -> Operation<ManifestUpload> {
        let call = path(&["datasets", dataset_id, "manifest-uploads", upload_id]).map(Call::get);
        Operation::json(self, call)
    }

    /// `putManifestPart` — `PUT /v1/datasets/{dataset_id}/manifest-uploads/{upload_id}/parts/{part}`.
    /// Idempotent (the same part again is a no-op), so it is retried after a lost response.
    pub fn put_manifest_part(
        &self,
        dataset_id: &str,
        upload_id: &str,
        part: u32,
        files: &[FileEntry],
    ) -> Operation<ManifestPart> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            files: &'a [FileEntry],
        }
        let n = part.to_string();
        let call = path(&[
            "datasets",
            dataset_id,
            "manifest-uploads",
            upload_id,
            "parts",
            &n,
        ])
        .and_then(|p| Call::json(Method::Put, p, &Body { files }))
        .map(|mut c| {
            c.idempotent_put = true;
            c
        });
        Operation::json(self, call)
    }

    /// `commitManifestUpload` — `POST /v1/datasets/{dataset_id}/manifest-uploads/{upload_id}/commit`.
    pub fn commit_manifest_upload(
        &self,
        dataset_id: &str,
        upload_id: &str,
    ) -> WriteOperation<Registration> {
        let call = path(&[
            "datasets",
            dataset_id,
            "manifest-uploads",
            upload_id,
            "commit",
        ])
        .map(Call::post);
        WriteOperation::new(self, call, registration)
    }

    /// Registers a version of any size: in one request up to [`MAX_ONE_SHOT_FILES`] files,
    /// otherwise as a manifest upload in parts of [`DEFAULT_PART_FILES`] files (see
    /// [`PartedRegistration`]).
    pub fn register_dataset_version_in_parts(
        &self,
        dataset_id: &str,
        req: RegisterDatasetVersionRequest,
    ) -> PartedRegistration {
        PartedRegistration {
            client: self.clone(),
            dataset_id: dataset_id.to_owned(),
            req,
            part_files: DEFAULT_PART_FILES,
            resume: None,
            on_progress: None,
        }
    }
}

/// Default page of [`Client::list_dataset_version_files`].
pub const DEFAULT_FILES_PAGE: u32 = 1_000;
/// Largest page of [`Client::list_dataset_version_files`].
pub const MAX_FILES_PAGE: u32 = 10_000;
/// Most files `registerDatasetVersion` takes in one request.
pub const MAX_ONE_SHOT_FILES: usize = 100_000;
/// Files per part of a manifest upload (a part may hold up to 100 000): about 5 MB of JSON
/// for typical paths, so one lost connection costs little.
pub const DEFAULT_PART_FILES: usize = 50_000;

/// Where a parted registration stands, for progress displays. The first report carries the
/// upload id: keep it to resume ([`PartedRegistration::resume`]) if the process stops.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationProgress {
    /// The manifest upload (`None` for a one-request registration).
    pub upload_id: Option<String>,
    /// Parts the server holds.
    pub parts_done: u32,
    /// Parts in all.
    pub parts: u32,
    /// Files the server holds.
    pub files_sent: u64,
    /// Files in all.
    pub files: u64,
}

impl RegistrationProgress {
    /// The report of a registration sent in one request.
    pub fn one_request(files: usize) -> Self {
        Self {
            upload_id: None,
            parts_done: 1,
            parts: 1,
            files_sent: files as u64,
            files: files as u64,
        }
    }
}

/// A progress callback of [`register_in_parts`]: `Send + Sync` natively (so the registration's
/// future is `Send`), unbounded on wasm32 (JS callbacks are neither).
#[cfg(not(target_arch = "wasm32"))]
pub type ProgressFn<'a> = dyn Fn(&RegistrationProgress) + Send + Sync + 'a;
/// A progress callback of [`register_in_parts`]: `Send + Sync` natively (so the registration's
/// future is `Send`), unbounded on wasm32 (JS callbacks are neither).
#[cfg(target_arch = "wasm32")]
pub type ProgressFn<'a> = dyn Fn(&RegistrationProgress) + 'a;

/// The source of a parted registration's files, a part at a time, so a runtime that holds
/// them elsewhere (a JS array in the wasm layer) converts only one part at once.
pub trait PartSource: crate::transport::MaybeSync {
    /// Number of files.
    fn len(&self) -> usize;
    /// Whether there are no files.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Files `start..end`.
    fn slice(&self, start: usize, end: usize) -> Result<Vec<FileEntry>>;
}

impl PartSource for Vec<FileEntry> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn slice(&self, start: usize, end: usize) -> Result<Vec<FileEntry>> {
        Ok(self[start..end].to_vec())
    }
}

/// A registration of a version of any size ([`Client::register_dataset_version_in_parts`]).
#[must_use = "a registration does nothing until `.send().await`"]
pub struct PartedRegistration {
    client: Client,
    dataset_id: String,
    req: RegisterDatasetVersionRequest,
    part_files: usize,
    resume: Option<String>,
    on_progress: Option<Box<ProgressFn<'static>>>,
}

impl std::fmt::Debug for PartedRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartedRegistration")
            .field("dataset_id", &self.dataset_id)
            .field("files", &self.req.files.len())
            .field("part_files", &self.part_files)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl PartedRegistration {
    /// Files per part (1 to 100 000; default [`DEFAULT_PART_FILES`]). Also the threshold:
    /// a manifest of at most this many files is registered in one request.
    pub fn part_files(mut self, n: usize) -> Self {
        self.part_files = n.clamp(1, MAX_ONE_SHOT_FILES);
        self
    }

    /// Continues the manifest upload `upload_id` (from an earlier run's progress report):
    /// parts the server already holds with the same files are not sent again.
    pub fn resume(mut self, upload_id: impl Into<String>) -> Self {
        self.resume = Some(upload_id.into());
        self
    }

    /// Called after each part.
    pub fn on_progress(
        mut self,
        f: impl Fn(&RegistrationProgress) + Send + Sync + 'static,
    ) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Sends the manifest (in parts if it is large) and registers the version.
    pub async fn send(self) -> Result<Registration> {
        let report = |p: &RegistrationProgress| {
            if let Some(f) = &self.on_progress {
                f(p)
            }
        };
        register_in_parts(
            &self.client,
            &self.dataset_id,
            &self.req.digest,
            self.req.note.as_deref(),
            &self.req.files,
            self.part_files,
            self.resume.as_deref(),
            &report,
        )
        .await
    }
}

/// The parted registration, shared by the native builder and the wasm layer: one request if
/// the manifest fits in one part (and no upload is being resumed), else create (or resume)
/// an upload, send the parts the server lacks one after the other, and commit.
#[allow(clippy::too_many_arguments)]
pub async fn register_in_parts(
    client: &Client,
    dataset_id: &str,
    digest: &str,
    note: Option<&str>,
    files: &(dyn PartSource + '_),
    part_files: usize,
    resume: Option<&str>,
    report: &ProgressFn<'_>,
) -> Result<Registration> {
    let total = files.len();
    let per = part_files.clamp(1, MAX_ONE_SHOT_FILES);
    if total <= per && resume.is_none() {
        let req = RegisterDatasetVersionRequest {
            digest: digest.to_owned(),
            files: files.slice(0, total)?,
            note: note.map(str::to_owned),
        };
        let reg = client
            .register_dataset_version(dataset_id, &req)
            .send()
            .await?;
        report(&RegistrationProgress {
            upload_id: None,
            parts_done: 1,
            parts: 1,
            files_sent: total as u64,
            files: total as u64,
        });
        return Ok(reg);
    }
    let parts = u32::try_from(total.div_ceil(per))
        .map_err(|_| Error::build("too many files for one manifest upload"))?;
    if resume.is_none() {
        // Registered before: nothing to send (what the one-request form answers with 200).
        match client.get_dataset_version(dataset_id, digest).send().await {
            Ok(version) => {
                report(&RegistrationProgress {
                    upload_id: None,
                    parts_done: parts,
                    parts,
                    files_sent: total as u64,
                    files: total as u64,
                });
                return Ok(Registration {
                    version,
                    created: false,
                });
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    let upload = match resume {
        Some(id) => {
            let u = client.get_manifest_upload(dataset_id, id).send().await?;
            if u.digest != digest {
                return Err(Error::build(format!(
                    "manifest upload {id} is for {}, not {digest}",
                    u.digest
                )));
            }
            u
        }
        None => {
            let req = CreateManifestUploadRequest {
                digest: digest.to_owned(),
                note: note.map(str::to_owned),
            };
            client
                .create_manifest_upload(dataset_id, &req)
                .send()
                .await?
        }
    };
    let held: std::collections::HashMap<u32, String> = upload
        .parts
        .iter()
        .map(|p| (p.part, p.sha256.clone()))
        .collect();
    let mut progress = RegistrationProgress {
        upload_id: Some(upload.id.clone()),
        parts_done: 0,
        parts,
        files_sent: 0,
        files: total as u64,
    };
    report(&progress);
    if upload.state != "committed" {
        for n in 1..=parts {
            let start = (n as usize - 1) * per;
            let end = (start + per).min(total);
            let chunk = files.slice(start, end)?;
            let skip = held
                .get(&n)
                .is_some_and(|sha| *sha == part_fingerprint(&chunk));
            if !skip {
                client
                    .put_manifest_part(dataset_id, &upload.id, n, &chunk)
                    .send()
                    .await?;
            }
            progress.parts_done = n;
            progress.files_sent = end as u64;
            report(&progress);
        }
    }
    client
        .commit_manifest_upload(dataset_id, &upload.id)
        .send()
        .await
}
