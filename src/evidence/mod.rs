//! Offline verification of DataPilot evidence bundles.
//!
//! An evidence bundle (see `docs/formats.md` and [`crate::model::evidence`]) is a zip that
//! proves, to someone who trusts only a pinned ledger key, what happened to a run or a dataset
//! version. Verification needs no network and no trust in the server that exported it: every
//! claim is checked against signatures by the pinned [`Verifier`] keys and against Merkle
//! proofs to a signed checkpoint.
//!
//! [`verify_bundle`] runs these checks, in this order, and reports each by a stable name
//! ([`checks`]):
//!
//! 1. `archive.safe`: the zip is read with limits and path rules ([`archive`]).
//! 2. `archive.members`: the seven bundle members are present, in the format's order
//!    ([`crate::model::evidence::members::ALL`]; the signature does not cover the order), then
//!    only members reserved for later versions (`ext/…`, in name order).
//! 3. `dsse.signature`: `evidence.dsse.json` is the canonical JSON (JCS) of a DSSE envelope of
//!    type `application/vnd.in-toto+json` signed by a pinned key.
//! 4. `statement.format`: the signed payload is a canonical in-toto Statement v1 with the
//!    DataPilot predicate.
//! 5. `statement.subjects`: every other member is listed with its SHA-256, and every other
//!    subject is a well-formed `artifact:` (`sha256`) or `dataset_version:` (`dirHash`) one.
//!    After this check the content of every member is covered by the signature; the envelope's
//!    `signatures` (a `keyid`, signatures by unpinned keys) and the zip's compression are not
//!    (docs/formats.md, "What the signature covers").
//! 6. `checkpoint.signature`: `ledger/checkpoint.txt` is a checkpoint signed by a pinned key
//!    named like its origin.
//! 7. `checkpoint.matches_predicate`: its origin, size and root equal the predicate's.
//! 8. `inclusion.proofs`: every `audit.jsonl` line is a canonical audit event, and its proof in
//!    `ledger/proofs.jsonl` (same line) leads from its leaf hash to the checkpoint's root.
//! 9. `lineage.edges`: every lineage edge names the seq of an event in the proven slice whose
//!    action, subject and data create exactly that edge; the scope is a node; and the lineage
//!    is complete: every edge a proven event about one of its runs implies is listed with that
//!    event's seq (`input` edges only with the scope at one end: a dataset version bundle
//!    leaves out its runs' other inputs). If the statement links any artifact or dataset version
//!    by digest, it links exactly the lineage's, with the digests the proven events record.
//! 10. `policy.snapshot`: `policy.json` is a canonical policy; for versions after the first the
//!     proven slice holds its `policy.update` event with the same content (and no other
//!     update). Version 1 is compared with the initial policy `ledger.init` records when that
//!     event is in the slice (the server puts `ledger.init` in every slice whose policy is
//!     version 1, so its bundles are always compared); otherwise (a bundle from another
//!     exporter, or one whose `ledger.init` records no policy) the check passes with a reason
//!     saying its content was **not** verified.
//! 11. `consistency` (only with [`VerifyOptions::consistency`]): the bundle's checkpoint is an
//!     append-only extension of one the caller trusted before (see [`verify_consistency_from`]).
//! 12. `witnessed` (only with [`VerifyOptions::witnessed`]): a checkpoint cosigned by `k` of the
//!     caller's `n` trusted witnesses (C2SP `tlog-cosignature`; e.g. the server's current
//!     `/checkpoint`) verifies under the pinned log keys and the bundle's tree is a prefix of it
//!     (equal size: equal root; larger: a valid consistency proof). The bundle's own checkpoint
//!     carries no cosignatures (bundles are deterministic), so this is how a bundle is tied to a
//!     history that witnesses also saw ([`WitnessedInput`]).
//!
//! Every check always appears in the report: a check whose inputs failed an earlier check is
//! reported as failed with reason `not checked: <earlier check> failed`, so a report never
//! looks greener than it is. Verification never panics on any input.

pub mod archive;
mod consistency;
pub mod online;
mod verify;

use serde::Serialize;

pub use crate::checkpoint::Verifier;
pub use crate::witness::WitnessVerifier;
pub use archive::{Archive, Limits};
pub use consistency::{verify_consistency_from, ConsistencyError, ConsistencyInput};
pub use online::{verify_bundle_online, OnlinePolicy};
pub use verify::{verify_bundle, verify_bundle_with};

/// Stable check names, in report order.
pub mod checks {
    /// The zip container passed the safety rules.
    pub const ARCHIVE_SAFE: &str = "archive.safe";
    /// Exactly the expected members are present, in order.
    pub const ARCHIVE_MEMBERS: &str = "archive.members";
    /// The DSSE envelope is signed by a pinned key.
    pub const DSSE_SIGNATURE: &str = "dsse.signature";
    /// The signed payload is a well-formed statement.
    pub const STATEMENT_FORMAT: &str = "statement.format";
    /// The statement lists every member with its digest.
    pub const STATEMENT_SUBJECTS: &str = "statement.subjects";
    /// The checkpoint is signed by a pinned key.
    pub const CHECKPOINT_SIGNATURE: &str = "checkpoint.signature";
    /// The checkpoint is the one the predicate names.
    pub const CHECKPOINT_MATCHES_PREDICATE: &str = "checkpoint.matches_predicate";
    /// Every audit event is proven included in the checkpoint's tree.
    pub const INCLUSION_PROOFS: &str = "inclusion.proofs";
    /// Every lineage edge is backed by its audit event, and every edge the events imply is
    /// listed.
    pub const LINEAGE_EDGES: &str = "lineage.edges";
    /// The policy snapshot is well formed and backed by its event.
    pub const POLICY_SNAPSHOT: &str = "policy.snapshot";
    /// The checkpoint extends the caller's trusted checkpoint (optional).
    pub const CONSISTENCY: &str = "consistency";
    /// The bundle's tree is a prefix of a checkpoint cosigned by enough trusted witnesses
    /// (optional).
    pub const WITNESSED: &str = "witnessed";

    /// The checks every verification reports, in order ([`CONSISTENCY`] and [`WITNESSED`] are
    /// added when asked).
    pub const ALWAYS: [&str; 10] = [
        ARCHIVE_SAFE,
        ARCHIVE_MEMBERS,
        DSSE_SIGNATURE,
        STATEMENT_FORMAT,
        STATEMENT_SUBJECTS,
        CHECKPOINT_SIGNATURE,
        CHECKPOINT_MATCHES_PREDICATE,
        INCLUSION_PROOFS,
        LINEAGE_EDGES,
        POLICY_SNAPSHOT,
    ];
}

/// The outcome of one named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Check {
    /// Stable name (see [`checks`]).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// On failure why; on success a short summary of what was checked.
    pub reason: String,
}

/// Facts read from a bundle, filled in as far as verification got. Only trust them when
/// [`VerificationReport::ok`] is true.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct BundleSummary {
    /// The scope, e.g. `run:run_…`.
    pub scope: Option<String>,
    /// Ledger origin.
    pub origin: Option<String>,
    /// Tree size of the checkpoint.
    pub tree_size: Option<u64>,
    /// Base64 root hash.
    pub root_hash: Option<String>,
    /// Export time (time of the last event in the tree).
    pub exported_at: Option<String>,
    /// Exporter (`datapilot-server/<version>`).
    pub exporter: Option<String>,
    /// Number of audit events proven.
    pub events: Option<usize>,
    /// The signed checkpoint note; store it as the next trusted checkpoint once `ok`.
    pub checkpoint: Option<String>,
}

/// The result of verifying a bundle: every check with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct VerificationReport {
    /// True exactly when every check passed.
    pub ok: bool,
    /// Checks in order.
    pub checks: Vec<Check>,
    /// What the bundle says, as far as it was read.
    pub summary: BundleSummary,
}

impl VerificationReport {
    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The first failed check (the most direct explanation).
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }

    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Options of [`verify_bundle_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Zip limits.
    pub limits: Limits,
    /// The optional online step: the caller's last trusted checkpoint and a consistency proof
    /// from it to the bundle's tree size (from `getConsistencyProof`).
    pub consistency: Option<ConsistencyInput>,
    /// Pinned keys that were retired by a rotation, with the largest tree size each may sign
    /// (`retired_at_size` of `GET /v1/keys`): a checkpoint or envelope of a larger tree signed
    /// only by such a key is refused.
    pub retired: Vec<(Verifier, u64)>,
    /// The optional witness step: a witnessed checkpoint, the witness policy and a consistency
    /// proof from the bundle's tree size to the witnessed one.
    pub witnessed: Option<WitnessedInput>,
}

/// The inputs of the optional `witnessed` check of a bundle verification.
///
/// A log that shows different histories to different clients can sign each of them; only a
/// third party that sees every checkpoint (a witness) can refuse to countersign a second
/// history. Bundles keep a log-signed checkpoint without cosignatures (their bytes are
/// deterministic), so the caller brings a cosigned checkpoint of the same log at the bundle's
/// size or later, typically the server's current `/checkpoint` (which carries the cosignatures
/// the server collected), and the consistency proof from the bundle's size to it
/// (`GET /v1/ledger/proofs/consistency?from=<bundle size>&to=<witnessed size>`; empty when the sizes are
/// equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedInput {
    /// The signed checkpoint note with witness cosignature lines.
    pub checkpoint: String,
    /// Base64 hashes of the consistency proof from the bundle's tree size to the note's.
    pub proof: Vec<String>,
    /// The trusted witnesses (C2SP cosignature/v1 keys).
    pub witnesses: Vec<WitnessVerifier>,
    /// How many distinct trusted witnesses must have cosigned (`k` of `n`).
    pub quorum: usize,
}

impl WitnessedInput {
    /// A policy requiring all of `witnesses` (set [`WitnessedInput::quorum`] for `k` of `n`).
    pub fn new(checkpoint: String, proof: Vec<String>, witnesses: Vec<WitnessVerifier>) -> Self {
        let quorum = witnesses.len();
        WitnessedInput {
            checkpoint,
            proof,
            witnesses,
            quorum,
        }
    }

    /// Requires only `k` of the witnesses.
    pub fn with_quorum(mut self, k: usize) -> Self {
        self.quorum = k;
        self
    }
}

impl VerifyOptions {
    /// Adds the consistency step.
    pub fn with_consistency(mut self, input: ConsistencyInput) -> Self {
        self.consistency = Some(input);
        self
    }

    /// Adds the witness step.
    pub fn with_witnessed(mut self, input: WitnessedInput) -> Self {
        self.witnessed = Some(input);
        self
    }

    /// Marks the pinned key `key` as retired at tree size `retired_at_size` (it stays pinned
    /// for bundles up to that size).
    pub fn with_retired_key(mut self, key: Verifier, retired_at_size: u64) -> Self {
        self.retired.push((key, retired_at_size));
        self
    }

    /// Replaces the zip limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
