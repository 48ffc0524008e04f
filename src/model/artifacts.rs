//! Artifacts: files a run produced, uploaded with a SHA-256 the server checks while streaming.

use serde::{Deserialize, Serialize};

/// An uploaded artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Artifact {
    /// `art_…`.
    pub id: String,
    /// Run id.
    pub run_id: String,
    /// Name (DPM-1 path rules), unique per run.
    pub name: String,
    /// 64 lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time.
    pub created_at: String,
    /// Uploader subject.
    pub created_by: String,
    /// Seq of the `artifact.upload` event.
    pub audit_seq: u64,
}

/// Downloaded artifact content.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArtifactContent {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The server's `X-Content-SHA256`, if sent (the client checks it against `bytes`).
    pub sha256: Option<String>,
}

impl std::fmt::Debug for ArtifactContent {
    // Artifacts can be large; print the size, not the bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactContent")
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}
