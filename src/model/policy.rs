//! The policy: which quality gates a dataset version must pass and how long run tokens live.
//! Every update creates a new, numbered, audited version.

use serde::{Deserialize, Serialize};

/// A policy version. Its JCS is `policy.json` in an evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Policy {
    /// Version number, from 1.
    pub version: u64,
    /// Gates every run input must have passed.
    pub required_gates: Vec<String>,
    /// Lifetime of run tokens.
    pub run_token_ttl_seconds: u64,
    /// When this version was made.
    pub updated_at: String,
    /// Who made it (actor id).
    pub updated_by: String,
}

/// Body of `updatePolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct UpdatePolicyRequest {
    /// Gates every run input must have passed.
    pub required_gates: Vec<String>,
    /// Run token lifetime; the server decides (default 86400 s) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_token_ttl_seconds: Option<u64>,
}

impl UpdatePolicyRequest {
    /// A policy requiring `required_gates`, with the server's default run token lifetime.
    pub fn new<S: Into<String>>(required_gates: impl IntoIterator<Item = S>) -> Self {
        Self {
            required_gates: required_gates.into_iter().map(Into::into).collect(),
            run_token_ttl_seconds: None,
        }
    }

    /// Sets the run token lifetime.
    pub fn with_run_token_ttl_seconds(mut self, seconds: u64) -> Self {
        self.run_token_ttl_seconds = Some(seconds);
        self
    }
}
