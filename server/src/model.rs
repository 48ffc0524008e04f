//! The server's wire types: request bodies (strict: unknown fields rejected) and responses.
//!
//! The SDK's `datapilot::model` types are the client's view and are `#[non_exhaustive]` so the
//! SDK can grow; the server owns its own exact shapes here and shares only the evidence-bundle
//! types (`Lineage`, `Statement`, `LeafEvent`, …), whose bytes both sides must agree on.
//! Requests use `deny_unknown_fields` so that a misspelt optional field is an error
//! (`unknown_field`) instead of being silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::serde_helpers::lenient;

/// The four API roles. `viewer` < `engineer` < `admin`; `auditor` is separate: it reads
/// everything including audit and evidence, records gate results, and writes nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Engineer,
    Auditor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Engineer => "engineer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "engineer" => Role::Engineer,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

// ---------- requests ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetRequest {
    pub name: String,
    #[serde(default, deserialize_with = "lenient::some")]
    pub description: Option<String>,
}

/// One file of a manifest as returned (the SDK's type, so both sides agree on the shape).
pub use datapilot::manifest::FileEntry;

/// One file of a submitted manifest (integral-float sizes accepted, as JSON Schema does).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIn {
    pub path: String,
    pub sha256: String,
    #[serde(deserialize_with = "lenient::int")]
    pub size: u64,
}

impl From<FileIn> for FileEntry {
    fn from(f: FileIn) -> FileEntry {
        FileEntry {
            path: f.path,
            sha256: f.sha256,
            size: f.size,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterVersionRequest {
    pub digest: String,
    pub files: Vec<FileIn>,
    #[serde(default, deserialize_with = "lenient::some")]
    pub note: Option<String>,
}

/// Body of `createManifestUpload`: the DPM-1 id the client claims for the whole manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateManifestUploadRequest {
    pub digest: String,
    #[serde(default, deserialize_with = "lenient::some")]
    pub note: Option<String>,
}

/// Body of `putManifestPart`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutManifestPartRequest {
    pub files: Vec<FileIn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateOutcome {
    Passed,
    Failed,
}

impl GateOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            GateOutcome::Passed => "passed",
            GateOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordGateRequest {
    pub gate: String,
    pub status: GateOutcome,
    #[serde(default, deserialize_with = "lenient::unique_map")]
    pub details: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    pub required_gates: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    pub run_token_ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct VersionRef {
    pub dataset_id: String,
    pub digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    pub name: String,
    pub inputs: Vec<VersionRef>,
    pub git_commit: String,
    pub image_digest: String,
    #[serde(default, deserialize_with = "lenient::unique_map")]
    pub params: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishStatus {
    Succeeded,
    Failed,
}

impl FinishStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishStatus::Succeeded => "succeeded",
            FinishStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRunRequest {
    pub status: FinishStatus,
    #[serde(default, deserialize_with = "lenient::some")]
    pub outputs: Option<Vec<VersionRef>>,
}

/// One metric point. Field order and optionality matter: the batch digest is the JCS of the
/// points exactly as received (an omitted `time` stays omitted).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricPoint {
    pub name: String,
    #[serde(deserialize_with = "lenient::int")]
    pub step: u64,
    pub value: f64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::some"
    )]
    pub time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendMetricsRequest {
    pub points: Vec<MetricPoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub role: Role,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    pub expires_in_seconds: Option<u64>,
}

// ---------- responses ----------

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub tree_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhoAmI {
    pub subject: String,
    /// An API role, or `run` for a run token.
    pub role: &'static str,
    pub token_id: Option<String>,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifierKey {
    pub name: String,
    pub key_id: String,
    pub algorithm: &'static str,
    pub public_key: String,
    pub verifier: String,
    /// The public key as SPKI PEM (RFC 8410), for tools that take PEM keys (cosign, openssl).
    pub public_key_pem: String,
    /// For a retired key: the largest tree size it signed (its `key.rotate` checkpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifierKeys {
    pub origin: String,
    pub keys: Vec<VerifierKey>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetVersion {
    pub dataset_id: String,
    pub digest: String,
    pub file_count: u64,
    pub total_bytes: u64,
    pub note: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub gate_status: &'static str,
    pub audit_seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub digest: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub id: String,
    pub dataset_id: String,
    pub digest: String,
    pub gate: String,
    pub status: GateOutcome,
    pub details: BTreeMap<String, String>,
    pub recorded_at: String,
    pub recorded_by: String,
    pub audit_seq: u64,
}

/// A policy version; its JCS is `policy.json` in a bundle.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Policy {
    pub version: u64,
    pub required_gates: Vec<String>,
    pub run_token_ttl_seconds: u64,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub name: String,
    pub status: String,
    pub inputs: Vec<VersionRef>,
    pub git_commit: String,
    pub image_digest: String,
    pub params: BTreeMap<String, String>,
    pub outputs: Vec<VersionRef>,
    pub created_at: String,
    pub created_by: String,
    pub finished_at: Option<String>,
    pub audit_seq: u64,
}

/// `createRun`'s answer. `Debug` redacts the run token: it must never reach a log.
#[derive(Clone, Serialize)]
pub struct CreatedRun {
    pub run: Run,
    pub run_token: String,
    pub run_token_expires_at: String,
}

impl std::fmt::Debug for CreatedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedRun")
            .field("run", &self.run)
            .field("run_token", &"<redacted>")
            .field("run_token_expires_at", &self.run_token_expires_at)
            .finish()
    }
}

/// `reissueRunToken`'s answer: a new run token for a running run whose token was lost (the
/// old one stops working). `Debug` redacts it.
#[derive(Clone, Serialize)]
pub struct ReissuedRunToken {
    pub run_id: String,
    pub run_token: String,
    pub run_token_expires_at: String,
}

impl std::fmt::Debug for ReissuedRunToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReissuedRunToken")
            .field("run_id", &self.run_id)
            .field("run_token", &"<redacted>")
            .field("run_token_expires_at", &self.run_token_expires_at)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricBatch {
    pub run_id: String,
    pub batch: u64,
    pub count: u64,
    pub digest: String,
    pub audit_seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricValue {
    pub name: String,
    pub step: u64,
    pub value: f64,
    /// As submitted (`null` when the point had none): the batch digest covers exactly this.
    pub time: Option<String>,
    pub batch: u64,
    /// The batch's receive time.
    pub received_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub created_at: String,
    pub created_by: String,
    pub audit_seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// `createToken`'s answer. `Debug` redacts the secret: it must never reach a log.
#[derive(Clone, Serialize)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub time: String,
    pub actor: serde_json::Value,
    pub action: String,
    pub subject: String,
    pub data: serde_json::Value,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub leaf: String,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_created_secrets_is_redacted() {
        let token = CreatedToken {
            token: ApiToken {
                id: "tok_1".into(),
                name: "ci".into(),
                role: Role::Viewer,
                created_at: "2026-01-01T00:00:00.000Z".into(),
                expires_at: None,
                revoked_at: None,
            },
            secret: "dpt_supersecretvalue0000".into(),
        };
        let out = format!("{token:?} {token:#?}");
        assert!(!out.contains("dpt_supersecretvalue0000"), "{out}");
        assert!(out.contains("tok_1") && out.contains("<redacted>"), "{out}");

        let run = CreatedRun {
            run: Run {
                id: "run_1".into(),
                name: "train".into(),
                status: "running".into(),
                inputs: Vec::new(),
                git_commit: "a".repeat(40),
                image_digest: format!("sha256:{}", "b".repeat(64)),
                params: BTreeMap::new(),
                outputs: Vec::new(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
                created_by: "tok_1".into(),
                finished_at: None,
                audit_seq: 3,
            },
            run_token: "dpr_supersecretvalue0000".into(),
            run_token_expires_at: "2026-01-02T00:00:00.000Z".into(),
        };
        let out = format!("{run:?} {run:#?}");
        assert!(!out.contains("dpr_supersecretvalue0000"), "{out}");
        assert!(out.contains("run_1") && out.contains("<redacted>"), "{out}");
    }
}
