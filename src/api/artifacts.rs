//! Tag `artifacts`: run outputs uploaded with a SHA-256 the server checks.

use sha2::{Digest, Sha256};

use crate::client::{path, Call, Client, RequestOptions, OCTET_STREAM};
use crate::error::{Error, Result};
use crate::model::artifacts::{Artifact, ArtifactContent};
use crate::pagination::Pager;
use crate::transport::{headers, Body, Method};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Client {
    /// `uploadArtifact` — `POST /v1/runs/{run_id}/artifacts?name=&sha256=`.
    ///
    /// `sha256` (64 lowercase hex) must be the digest of `body`; the server hashes while it
    /// streams and keeps nothing on mismatch (`digest_mismatch`). Use [`Body::Stream`] for
    /// large files so they are read in chunks (and re-read from the start on a retry).
    pub async fn upload_artifact(
        &self,
        run_id: &str,
        name: &str,
        sha256: &str,
        body: Body,
    ) -> Result<Artifact> {
        self.upload_artifact_with(run_id, name, sha256, body, &RequestOptions::default())
            .await
    }

    /// `uploadArtifact` with per-call options.
    pub async fn upload_artifact_with(
        &self,
        run_id: &str,
        name: &str,
        sha256: &str,
        body: Body,
        opts: &RequestOptions,
    ) -> Result<Artifact> {
        if !is_sha256_hex(sha256) {
            return Err(Error::build("sha256 must be 64 lowercase hex characters"));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(Error::build("artifact name must be 1-255 characters"));
        }
        let mut call = Call::get(path(&["runs", run_id, "artifacts"])?)
            .query("name", name)
            .query("sha256", sha256);
        call.method = Method::Post;
        call.body = body;
        call.content_type = Some(OCTET_STREAM);
        call.options = opts.clone();
        self.json(call).await
    }

    /// Uploads in-memory bytes, computing their SHA-256.
    pub async fn upload_artifact_bytes(
        &self,
        run_id: &str,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<Artifact> {
        let bytes = bytes.into();
        let sha = hex::encode(Sha256::digest(&bytes));
        self.upload_artifact(run_id, name, &sha, Body::Bytes(bytes.into()))
            .await
    }

    /// `uploadArtifact` of a file, streamed (native): hashes it, then uploads it in chunks, so
    /// memory stays flat whatever its size. Reading the file is a [`Error::Build`] (nothing was
    /// sent); a file that changes between the two passes fails the upload.
    #[cfg(feature = "native")]
    pub async fn upload_artifact_file(
        &self,
        run_id: &str,
        name: &str,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Artifact> {
        let path = path.as_ref();
        let unreadable = |e: std::io::Error| Error::build(format!("{}: {e}", path.display()));
        let source = crate::native::FileSource::open(path).map_err(unreadable)?;
        let (sha, _) = crate::native::sha256_file(path).await.map_err(unreadable)?;
        self.upload_artifact(run_id, name, &sha, source.into_body())
            .await
    }

    /// `listArtifacts` — `GET /v1/runs/{run_id}/artifacts`.
    pub fn list_artifacts(&self, run_id: &str) -> Result<Pager<Artifact>> {
        Ok(Pager::new(
            self.clone(),
            path(&["runs", run_id, "artifacts"])?,
            Vec::new(),
        ))
    }

    /// `getArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}`.
    pub async fn get_artifact(&self, run_id: &str, artifact_id: &str) -> Result<Artifact> {
        self.json(Call::get(path(&[
            "runs",
            run_id,
            "artifacts",
            artifact_id,
        ])?))
        .await
    }

    /// `downloadArtifact` — `GET /v1/runs/{run_id}/artifacts/{artifact_id}/content`. The bytes
    /// are checked against the server's `X-Content-SHA256` ([`Error::Verification`] if they
    /// differ); compare with the artifact's recorded `sha256` for end-to-end assurance.
    pub async fn download_artifact(
        &self,
        run_id: &str,
        artifact_id: &str,
    ) -> Result<ArtifactContent> {
        let call = Call::get(path(&[
            "runs",
            run_id,
            "artifacts",
            artifact_id,
            "content",
        ])?)
        .accept(OCTET_STREAM);
        let resp = self.execute(call).await?;
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
}
