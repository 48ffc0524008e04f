//! Quality gate results recorded against a dataset version. The policy names the gates a
//! version must pass before a run may use it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::string_enum;

string_enum! {
    /// Outcome of one gate evaluation.
    pub enum GateOutcome {
        /// The gate passed.
        Passed => "passed",
        /// The gate failed.
        Failed => "failed",
    }
}

/// Body of `recordGateResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct RecordGateResultRequest {
    /// Gate name, as named by the policy.
    pub gate: String,
    /// Outcome.
    pub status: GateOutcome,
    /// String key/values describing the evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

/// A recorded gate result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct GateResult {
    /// `gr_…`.
    pub id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// Version digest.
    pub digest: String,
    /// Gate name.
    pub gate: String,
    /// Outcome.
    pub status: GateOutcome,
    /// Details.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Record time.
    pub recorded_at: String,
    /// Subject of the recorder.
    pub recorded_by: String,
    /// Seq of the `gate.record` event.
    pub audit_seq: u64,
}

impl RecordGateResultRequest {
    /// A result of `gate` with `status`, without details.
    pub fn new(gate: impl Into<String>, status: GateOutcome) -> Self {
        Self {
            gate: gate.into(),
            status,
            details: None,
        }
    }

    /// Adds one detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }

    /// Sets all details.
    pub fn with_details(mut self, details: BTreeMap<String, String>) -> Self {
        self.details = Some(details);
        self
    }
}
