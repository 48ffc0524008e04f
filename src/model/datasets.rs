//! Datasets and their content-addressed versions.
//!
//! A dataset is a named container; a dataset version is identified by its DPM-1 digest (see
//! [`crate::manifest`]), so the same files always give the same version and registering them
//! again returns the existing version.

use serde::{Deserialize, Serialize};

use super::string_enum;

/// Body of `createDataset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreateDatasetRequest {
    /// `^[a-z0-9][a-z0-9._-]{0,127}$`, unique.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Dataset {
    /// `ds_…`.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Subject of the creator.
    pub created_by: String,
}

/// One file of a dataset manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct FileEntry {
    /// Relative `/`-separated NFC path (DPM-1 rules).
    pub path: String,
    /// 64 lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Body of `registerDatasetVersion`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct RegisterDatasetVersionRequest {
    /// DPM-1 digest `sha256:<hex>`; the server recomputes it from `files`.
    pub digest: String,
    /// Every regular file of the version (≤ 100 000; larger versions go in parts: see
    /// [`crate::Client::register_dataset_version_in_parts`]).
    pub files: Vec<FileEntry>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

string_enum! {
    /// Aggregate quality gate status of a dataset version under the current policy.
    pub enum GateStatus {
        /// Some required gate has no result yet.
        Pending => "pending",
        /// The latest result of every required gate passed.
        Passed => "passed",
        /// The latest result of some required gate failed.
        Failed => "failed",
    }
}

/// A registered dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct DatasetVersion {
    /// Owning dataset.
    pub dataset_id: String,
    /// DPM-1 digest.
    pub digest: String,
    /// Number of files.
    pub file_count: u64,
    /// Sum of file sizes.
    pub total_bytes: u64,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
    /// Registration time.
    pub created_at: String,
    /// Subject of the registrant.
    pub created_by: String,
    /// Aggregate gate status.
    pub gate_status: GateStatus,
    /// Seq of the `dataset_version.register` event.
    pub audit_seq: u64,
}

/// Result of `registerDatasetVersion`: the version and whether this call created it (201) or
/// found it already registered (200).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registration {
    /// The version.
    pub version: DatasetVersion,
    /// `true` if newly registered, `false` if it already existed.
    pub created: bool,
}

/// The file list of a dataset version, sorted by path bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct DatasetManifest {
    /// DPM-1 digest.
    pub digest: String,
    /// Files sorted by path bytes.
    pub files: Vec<FileEntry>,
}

/// Body of `createManifestUpload`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreateManifestUploadRequest {
    /// DPM-1 digest the client claims for the whole manifest.
    pub digest: String,
    /// Free text, kept with the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One part of a manifest upload, as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct ManifestPart {
    /// Part number (1 to 10 000).
    pub part: u32,
    /// Files in the part.
    pub file_count: u64,
    /// Sum of their sizes.
    pub total_bytes: u64,
    /// SHA-256 of the part's lines `<sha256>  <size>  <path>\n`, sorted by path bytes
    /// ([`part_fingerprint`]).
    pub sha256: String,
}

/// A manifest upload (`createManifestUpload`, `getManifestUpload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct ManifestUpload {
    /// `mu_…`.
    pub id: String,
    /// The dataset the version will belong to.
    pub dataset_id: String,
    /// The claimed DPM-1 digest.
    pub digest: String,
    /// Note for the version.
    #[serde(default)]
    pub note: Option<String>,
    /// `open` or `committed`.
    pub state: String,
    /// Creation time.
    pub created_at: String,
    /// Subject of the creator (the only principal that may use it).
    pub created_by: String,
    /// When an upload that is not committed is forgotten.
    pub expires_at: String,
    /// Files received so far.
    pub file_count: u64,
    /// Bytes those files add up to.
    pub total_bytes: u64,
    /// Parts received so far.
    pub parts: Vec<ManifestPart>,
}

/// The fingerprint the server gives a part ([`ManifestPart::sha256`]): SHA-256 of the lines
/// `<sha256>  <size>  <path>\n` of its files sorted by path bytes.
pub fn part_fingerprint(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    crate::manifest::part_fingerprint(
        sorted
            .into_iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str(), f.size)),
    )
}

impl CreateDatasetRequest {
    /// A request for a dataset named `name`, without description.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

impl RegisterDatasetVersionRequest {
    /// A request registering the version with this DPM-1 `digest` and its `files` (e.g. from
    /// [`crate::manifest::Manifest`]), without a note.
    pub fn new(digest: impl Into<String>, files: Vec<FileEntry>) -> Self {
        Self {
            digest: digest.into(),
            files,
            note: None,
        }
    }

    /// A request registering the version a [`crate::manifest::Manifest`] describes (its
    /// digest and every file), without a note.
    pub fn from_manifest(manifest: &crate::manifest::Manifest) -> Self {
        let files = manifest
            .files()
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect();
        Self::new(manifest.digest(), files)
    }

    /// Sets the note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}
