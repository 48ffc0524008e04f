//! Tag `artifacts`: run outputs uploaded with a SHA-256 the server checks.

use sha2::{Digest, Sha256};

use super::{Operation, WriteOperation};
use crate::client::{path, Call, Client, OCTET_STREAM};
use crate::error::{Error, Result};
use crate::model::artifacts::{Artifact, ArtifactContent};
use crate::pagination::Pager;
use crate::transport::{headers, Body, Response};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn upload_call(run_id: &str, name: &str, sha256: &str, body: Body) -> Result<Call> {
    if !is_sha256_hex(sha256) {
        return Err(Error::build("sha256 must be 64 lowercase hex characters"));
    }
    if name.is_empty() || name.len() > 255 {
        return Err(Error::build("artifact name must be 1-255 characters"));
    }
    let mut call = Call::post(path(&["runs", run_id, "artifacts"])?)
        .query("name", name)
        .query("sha256", sha256);
    call.body = body;
    call.content_type = Some(OCTET_STREAM);
    Ok(call)
}

/// Checks downloaded bytes against the server's `X-Content-SHA256`.
fn checked_content(resp: Response) -> Result<ArtifactContent> {
    let sha256 = resp.headers.get(headers::CONTENT_SHA256).map(str::to_owned);
    if let Some(expected) = &sha256 {
        let actual = hex::encode(Sha256::digest(&resp.body));
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(Error::Verification(format!(
                "artifact content hashes to {actual}, server announced {expected}"
            )));
        }
    }
    Ok(ArtifactContent {
        bytes: resp.body,
        sha256,
    })
}

impl Client {
    /// `uploadArtifact` — `POST /v1/runs/{run_id}/artifacts?name=&sha256=`.
    ///
    /// `sha256` (64 lowercase hex) must be the digest of `body`; the server hashes while it
    /// streams and keeps nothing on mismatch (`digest_mismatch`). Use [`Body::Stream`] for
    /// large files so they are read in chunks (and re-read from the start on a retry).
    pub fn upload_artifact(
        &self,
        run_id: &str,
        name: &str,
        sha256: &str,
        body: Body,
    ) -> WriteOperation<Artifact> {
        WriteOperation::json(self, upload_call(run_id, name, sha256, body))
    }

    /// Uploads in-memory bytes, computing their SHA-256.
    pub fn upload_artifact_bytes(
        &self,
        run_id: &str,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> WriteOperation<Artifact> {
        let bytes = bytes.into();
        let sha = hex::encode(Sha256::digest(&bytes));
        self.upload_artifact(run_id, name, &sha, Body::Bytes(bytes.into()))
    }

    /// `uploadArtifact` of a file, streamed (native): `send()` hashes it, then uploads it in
    /// chunks, so memory stays flat whatever its size. A file that cannot be read is an
    /// [`Error::Build`] naming the path (nothing was sent); a file that changes between the
    /// two passes fails the upload.
    #[cfg(feature = "native")]
    pub fn upload_artifact_file(
        &self,
        run_id: &str,
        name: &str,
        path: impl AsRef<std::path::Path>,
    ) -> FileUpload {
        FileUpload {
            client: self.clone(),
            run_id: run_id.to_owned(),
            name: name.to_owned(),
            path: path.as_ref().to_path_buf(),
            options: crate::RequestOptions::default(),
        }
    }

    /// `listArtifacts` — `GET /v1/runs/{run_id}/artifacts`.
    pub fn list_artifacts(&self, run_id: &str) -> Pager<Artifact> {
        Pager::new(
            self.clone(),
            path(&["runs", run_id, "artifacts"]),
            Vec::new(),
        )
    }

    /// `getArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}`.
    pub fn get_artifact(&self, run_id: &str, artifact_id: &str) -> Operation<Artifact> {
        let call = path(&["runs", run_id, "artifacts", artifact_id]).map(Call::get);
        Operation::json(self, call)
    }

    /// `downloadArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}/content`. The bytes
    /// are checked against the server's `X-Content-SHA256` ([`Error::Verification`] if they
    /// differ); compare with the artifact's recorded `sha256` for end-to-end assurance.
    pub fn download_artifact(&self, run_id: &str, artifact_id: &str) -> Operation<ArtifactContent> {
        let call = path(&["runs", run_id, "artifacts", artifact_id, "content"])
            .map(|p| Call::get(p).accept(OCTET_STREAM));
        Operation::new(self, call, checked_content)
    }
}

/// A streamed file upload ([`Client::upload_artifact_file`]): the same per-call options as a
/// [`WriteOperation`], then `.send().await`, which hashes the file and uploads it.
#[cfg(feature = "native")]
#[derive(Debug)]
#[must_use = "an operation does nothing until `.send().await`"]
pub struct FileUpload {
    client: Client,
    run_id: String,
    name: String,
    path: std::path::PathBuf,
    options: crate::RequestOptions,
}

#[cfg(feature = "native")]
impl FileUpload {
    /// The `Idempotency-Key` to send on every attempt (see
    /// [`WriteOperation::idempotency_key`]).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options.idempotency_key = Some(key.into());
        self
    }

    /// Per-attempt timeout of the upload (the client's by default).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Deadline of the whole upload, all attempts and waits (the client's by default). The
    /// hashing pass before it is not counted.
    pub fn deadline(mut self, deadline: std::time::Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// Replaces all per-call options.
    pub fn options(mut self, options: crate::RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Hashes the file, then uploads it streamed.
    pub async fn send(self) -> Result<Artifact> {
        let path = &self.path;
        let unreadable = |e: std::io::Error| Error::build(format!("{}: {e}", path.display()));
        let source = crate::native::FileSource::open(path).map_err(unreadable)?;
        let (sha, _) = crate::native::sha256_file(path).await.map_err(unreadable)?;
        self.client
            .upload_artifact(&self.run_id, &self.name, &sha, source.into_body())
            .options(self.options)
            .send()
            .await
    }
}
