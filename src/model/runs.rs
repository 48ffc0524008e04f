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

/// Body of `finishRun`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct FinishRunRequest {
    /// `succeeded` or `failed`.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "\"succeeded\" | \"failed\""))]
    pub status: RunStatus,
    /// Dataset versions the run produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<DatasetVersionRef>>,
}
