//! Audit events: the leaves of the ledger.
//!
//! Every write appends exactly one event. The event's RFC 8785 (JCS) bytes are a leaf of the
//! RFC 9162 Merkle tree, so [`LeafEvent`] is exactly what is hashed; `audit.jsonl` in a bundle
//! holds these bytes one per line. The REST [`AuditEvent`] is the same event plus its leaf hash.
//! `data` holds no floating-point numbers, so the JCS bytes are unambiguous in every language.

use serde::{Deserialize, Serialize};

use super::{string_enum, Role};

/// Audit action names (the `action` field).
pub mod actions {
    /// The ledger was created (seq 0).
    pub const LEDGER_INIT: &str = "ledger.init";
    /// A dataset was created.
    pub const DATASET_CREATE: &str = "dataset.create";
    /// A dataset version was registered.
    pub const DATASET_VERSION_REGISTER: &str = "dataset_version.register";
    /// A quality gate result was recorded.
    pub const GATE_RECORD: &str = "gate.record";
    /// The policy was updated.
    pub const POLICY_UPDATE: &str = "policy.update";
    /// A run was created.
    pub const RUN_CREATE: &str = "run.create";
    /// A run was finished (sealed).
    pub const RUN_FINISH: &str = "run.finish";
    /// A running run got a new run token (its old one was lost).
    pub const RUN_TOKEN_REISSUE: &str = "run.token_reissue";
    /// A metric batch was appended.
    pub const METRICS_APPEND: &str = "metrics.append";
    /// An artifact was uploaded.
    pub const ARTIFACT_UPLOAD: &str = "artifact.upload";
    /// An API token was created.
    pub const TOKEN_CREATE: &str = "token.create";
    /// An API token was revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
}

/// The ledger leaf: its JCS serialisation is the exact leaf bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafEvent {
    /// Leaf format version, 1.
    pub v: u32,
    /// Leaf index in the ledger.
    pub seq: u64,
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// Who did it.
    pub actor: Actor,
    /// What was done (see [`actions`]).
    pub action: String,
    /// What it was done to: `<kind>:<id>`.
    pub subject: String,
    /// Action data: strings, integers, booleans, arrays and objects only.
    pub data: serde_json::Value,
}

/// The principal behind an audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct Actor {
    /// Token, run token, gateway identity or the system itself.
    pub kind: ActorKind,
    /// Token id, run id or gateway subject.
    pub id: String,
    /// Role in effect.
    pub role: Role,
}

string_enum! {
    /// The kind of principal behind an audit event.
    pub enum ActorKind {
        /// An API token.
        Token => "token",
        /// A run token.
        Run => "run",
        /// An identity asserted by a trusted gateway.
        Gateway => "gateway",
        /// The server itself (e.g. `ledger.init`).
        System => "system",
    }
}

/// An audit event as returned by the audit API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct AuditEvent {
    /// Leaf index.
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Who did it.
    pub actor: Actor,
    /// What was done.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "AuditAction"))]
    pub action: String,
    /// `<kind>:<id>`.
    pub subject: String,
    /// Action data.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "JsonObject"))]
    pub data: serde_json::Value,
    /// Base64 `SHA-256(0x00 || leaf bytes)`.
    pub leaf_hash: String,
}

/// Filters of `listAuditEvents`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEventFilter {
    /// Only events with this subject (`run:run_…`).
    pub subject: Option<String>,
    /// Only events with this action (`run.create`).
    pub action: Option<String>,
}

impl AuditEventFilter {
    /// No filter: every event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only events with this subject (`run:run_…`, `dataset:ds_…`).
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Only events with this action (`run.create`).
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }
}
