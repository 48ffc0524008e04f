//! Evidence bundle wire types: the in-toto Statement inside the DSSE envelope, its predicate,
//! and the inclusion-proof lines of `ledger/proofs.jsonl`.
//!
//! An evidence bundle is one deterministic `.zip` (members in [`members::ALL`] order). Its
//! `evidence.dsse.json` is a DSSE envelope whose payload is a [`Statement`]: the statement lists
//! every other member with its SHA-256 (so the signature covers the content of every member;
//! see docs/formats.md for what is not signed), the run's artifacts and dataset versions with
//! their digests (so attestation tools can match the bundle to the files it is about), and its
//! [`Predicate`] names the ledger state (origin, tree size, root hash) the proofs are
//! against. These types are shared by the reference server, which writes bundles, and by
//! [`crate::evidence`], which verifies them; both sides serialize with JCS.
//!
//! The structs are deliberately not `#[non_exhaustive]`: a bundle format change gets a new
//! `predicateType`, not new fields on these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::string_enum;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a DataPilot evidence bundle.
pub const PREDICATE_TYPE: &str = "https://animus.dev/datapilot/evidence-bundle/v1";
/// DSSE `payloadType` of the envelope.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Member names of an evidence bundle.
pub mod members {
    /// The DSSE envelope carrying the signed statement.
    pub const ENVELOPE: &str = "evidence.dsse.json";
    /// The signed checkpoint the proofs are against.
    pub const CHECKPOINT: &str = "ledger/checkpoint.txt";
    /// One inclusion proof per audit line.
    pub const PROOFS: &str = "ledger/proofs.jsonl";
    /// The audit slice, one leaf per line.
    pub const AUDIT: &str = "audit.jsonl";
    /// The scope's lineage graph.
    pub const LINEAGE: &str = "lineage.json";
    /// The policy in force at export.
    pub const POLICY: &str = "policy.json";
    /// Human-readable report.
    pub const REPORT: &str = "report.html";
    /// Every member, in the order they appear in the zip.
    pub const ALL: [&str; 7] = [ENVELOPE, CHECKPOINT, PROOFS, AUDIT, LINEAGE, POLICY, REPORT];
    /// Prefix of members reserved for later versions: after the seven, in name order, listed
    /// in the statement (so signed) and otherwise ignored by a v1 verifier.
    pub const EXT_PREFIX: &str = "ext/";
}

/// Prefix of the subject naming a run artifact (its lineage node id), digest `sha256`.
pub const ARTIFACT_SUBJECT_PREFIX: &str = "artifact:";
/// Prefix of the subject naming a dataset version (its lineage node id), digest `dirHash`
/// (in-toto's name for Go's dirhash `Hash1` in hex, which is the DPM-1 digest's hex).
pub const DATASET_VERSION_SUBJECT_PREFIX: &str = "dataset_version:";
/// The in-toto digest algorithm name of a DPM-1 digest.
pub const DIR_HASH: &str = "dirHash";

/// An in-toto Statement v1 about the members of an evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// Every bundle member except the envelope, and every artifact and dataset version node of
    /// the lineage (named by node id, which no member name can be: members have no `:`), sorted
    /// by name.
    pub subject: Vec<Subject>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What the bundle is about and which ledger state it proves against.
    pub predicate: Predicate,
}

/// One statement subject: a member name, or a lineage node id, and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Member path inside the zip.
    pub name: String,
    /// Algorithm → lowercase hex digest; DataPilot uses `sha256`.
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with a single `sha256` digest.
    pub fn sha256(name: impl Into<String>, hex: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_owned(), hex.into())]),
        }
    }

    /// A subject with a single `dirHash` digest (a dataset version).
    pub fn dir_hash(name: impl Into<String>, hex: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            digest: BTreeMap::from([(DIR_HASH.to_owned(), hex.into())]),
        }
    }

    /// The `sha256` digest, if present.
    pub fn sha256_hex(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }

    /// Whether this subject names a lineage node (an artifact or a dataset version) rather
    /// than a bundle member: member names never contain `:`.
    pub fn is_linked(&self) -> bool {
        self.name.contains(':')
    }
}

/// The DataPilot evidence-bundle predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    /// What the bundle is evidence for.
    pub scope: Scope,
    /// Time of the last event in the tree (seq `tree_size - 1`), so export is deterministic.
    pub exported_at: String,
    /// `datapilot-server/<version>`.
    pub exporter: String,
    /// Ledger origin (also the checkpoint key name).
    pub origin: String,
    /// Tree size of the checkpoint the proofs are against.
    pub tree_size: u64,
    /// Base64 root hash at `tree_size`.
    pub root_hash: String,
}

/// The scope of a bundle: a run or a dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Run or dataset version.
    pub kind: ScopeKind,
    /// `<run id>` or `<ds id>@sha256:<hex>`.
    pub id: String,
}

string_enum! {
    /// The kind of an evidence scope.
    pub enum ScopeKind {
        /// A run.
        Run => "run",
        /// A dataset version.
        DatasetVersion => "dataset_version",
    }
}

impl Scope {
    /// The lineage node id of this scope (`run:<id>` or `dataset_version:<id>`).
    pub fn node_id(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// One line of `ledger/proofs.jsonl`: the inclusion proof of the audit line at the same index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofLine {
    /// Audit hashes from the leaf's sibling up to the root, base64.
    pub hashes: Vec<String>,
    /// Base64 leaf hash `SHA-256(0x00 || leaf bytes)`.
    pub leaf_hash: String,
    /// Leaf index.
    pub seq: u64,
    /// Tree size the proof is for (equals the predicate's).
    pub tree_size: u64,
}
