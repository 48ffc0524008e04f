//! Runs: one execution of training or evaluation code over gated dataset versions.
//!
//! Creating a run records its inputs, git commit, image digest and parameters and issues a
//! short-lived run token scoped to that run (metrics, artifacts, finish). Finishing a run seals
//! it: later writes fail with `run_sealed`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{string_enum, DatasetVersionRef};
use crate::secret::Secret;

/// Body of `createRun`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreateRunRequest {
    /// Run name.
    pub name: String,
    /// Input dataset versions; each must have passed the policy's gates.
    pub inputs: Vec<DatasetVersionRef>,
    /// 40 or 64 lowercase hex.
    pub git_commit: String,
    /// `sha256:<64 hex>`.
    pub image_digest: String,
    /// String parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
}

string_enum! {
    /// Lifecycle status of a run.
    pub enum RunStatus {
        /// Not finished; accepts metrics and artifacts.
        Running => "running",
        /// Finished successfully (sealed).
        Succeeded => "succeeded",
        /// Finished unsuccessfully (sealed).
        Failed => "failed",
    }
}

/// A run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Run {
    /// `run_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: RunStatus,
    /// Input dataset versions.
    pub inputs: Vec<DatasetVersionRef>,
    /// Git commit.
    pub git_commit: String,
    /// Image digest.
    pub image_digest: String,
    /// Parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Output dataset versions (set by finish).
    #[serde(default)]
    pub outputs: Vec<DatasetVersionRef>,
    /// Creation time.
    pub created_at: String,
    /// Creator subject.
    pub created_by: String,
    /// Finish time, once sealed.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Seq of the `run.create` event.
    pub audit_seq: u64,
}

impl Run {
    /// Whether the run is finished (no more writes accepted).
    pub fn is_sealed(&self) -> bool {
        !matches!(self.status, RunStatus::Running)
    }
}

/// Response of `createRun`: the run and its run token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreatedRun {
    /// The new run.
    pub run: Run,
    /// `dpr_…` token scoped to this run (redacted in `Debug`).
    pub run_token: Secret,
    /// When the run token stops working.
    pub run_token_expires_at: String,
}

/// Response of `reissueRunToken`: a new run token for a running run whose token was lost
/// (the previous token stops working).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct ReissuedRunToken {
    /// The run.
    pub run_id: String,
    /// The new `dpr_…` token (redacted in `Debug`).
    pub run_token: Secret,
    /// When it stops working.
    pub run_token_expires_at: String,
}

/// Body of `finishRun`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct FinishRunRequest {
    /// `succeeded` or `failed`.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "\"succeeded\" | \"failed\""))]
    pub status: RunStatus,
    /// Dataset versions the run produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<DatasetVersionRef>>,
}

impl CreateRunRequest {
    /// A run named `name` over `inputs`, built from `git_commit` (40 or 64 lowercase hex) in
    /// the image `image_digest` (`sha256:<64 hex>`), without parameters.
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<DatasetVersionRef>,
        git_commit: impl Into<String>,
        image_digest: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            inputs,
            git_commit: git_commit.into(),
            image_digest: image_digest.into(),
            params: None,
        }
    }

    /// Sets all parameters.
    pub fn with_params(mut self, params: BTreeMap<String, String>) -> Self {
        self.params = Some(params);
        self
    }

    /// Adds one parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }
}

impl FinishRunRequest {
    /// Finishes with `status` (`Succeeded` or `Failed`), without outputs.
    pub fn new(status: RunStatus) -> Self {
        Self {
            status,
            outputs: None,
        }
    }

    /// Finishes as succeeded.
    pub fn succeeded() -> Self {
        Self::new(RunStatus::Succeeded)
    }

    /// Finishes as failed.
    pub fn failed() -> Self {
        Self::new(RunStatus::Failed)
    }

    /// Records the dataset versions the run produced.
    pub fn with_outputs(mut self, outputs: Vec<DatasetVersionRef>) -> Self {
        self.outputs = Some(outputs);
        self
    }
}
