//! Online verification of a bundle: which consistency proofs and which checkpoint a check needs
//! from the server, decided once in plain Rust. The Rust client and the Python SDK fetch them
//! with the client's own calls; the npm verifier module (which has no client) with callbacks
//! into JavaScript. All three give the same report for the same answers.
//!
//! Two optional checks need the server:
//!
//! - `consistency`: the caller's last trusted checkpoint must be a prefix of the bundle's tree,
//!   shown by a consistency proof from its size to the bundle's;
//! - `witnessed`: a checkpoint cosigned by the trusted witnesses (the server's current one,
//!   unless the caller brings one) must extend the bundle's tree, shown by a consistency proof
//!   from the bundle's size to the witnessed one.
//!
//! A proof is fetched only where the sizes call for one (an equal size needs none, and a
//! checkpoint that does not verify under the pinned keys fails its check without a fetch).

use std::future::Future;

use super::{ConsistencyInput, VerificationReport, VerifyOptions, WitnessedInput};
use crate::checkpoint::{open_checkpoint, Verifier};
use crate::witness::WitnessVerifier;

/// What to hold a bundle to beyond its own signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OnlinePolicy {
    /// The caller's last trusted checkpoint note: the bundle must extend it.
    pub last_checkpoint: Option<String>,
    /// Trusted witnesses (C2SP cosignature/v1 keys); empty: no `witnessed` check.
    pub witnesses: Vec<WitnessVerifier>,
    /// How many distinct trusted witnesses must have cosigned (`k` of `n`).
    pub quorum: usize,
    /// A cosigned checkpoint the caller already has; `None`: the server's current one.
    pub witnessed_checkpoint: Option<String>,
}

impl OnlinePolicy {
    /// No online check (the bundle's own checks only).
    pub fn new() -> Self {
        Self::default()
    }

    /// The bundle must extend this trusted checkpoint note.
    pub fn with_last_checkpoint(mut self, note: impl Into<String>) -> Self {
        self.last_checkpoint = Some(note.into());
        self
    }

    /// A witness policy: cosignatures from `quorum` of `witnesses`.
    pub fn with_witnesses(mut self, witnesses: Vec<WitnessVerifier>, quorum: usize) -> Self {
        self.witnesses = witnesses;
        self.quorum = quorum;
        self
    }

    /// Holds the bundle to this cosigned checkpoint instead of the server's current one.
    pub fn with_witnessed_checkpoint(mut self, note: impl Into<String>) -> Self {
        self.witnessed_checkpoint = Some(note.into());
        self
    }
}

/// Verifies a bundle with the optional steps given (the building block of the offline entry
/// points that take a proof the caller fetched).
pub fn verify_bundle_parts(
    bytes: &[u8],
    verifiers: &[Verifier],
    last_checkpoint: Option<String>,
    proof: Vec<String>,
    witnessed: Option<WitnessedInput>,
) -> VerificationReport {
    let mut options = VerifyOptions::default();
    if let Some(trusted_checkpoint) = last_checkpoint {
        options = options.with_consistency(ConsistencyInput {
            trusted_checkpoint,
            proof,
        });
    }
    if let Some(w) = witnessed {
        options = options.with_witnessed(w);
    }
    super::verify_bundle_with(bytes, verifiers, &options)
}

/// The tree size of a checkpoint note that verifies under `verifiers`.
pub fn checkpoint_size(note: &str, verifiers: &[Verifier]) -> Option<u64> {
    open_checkpoint(note, verifiers)
        .ok()
        .map(|(c, _)| c.tree_size)
}

/// Verifies `bytes` under `policy`, fetching what it needs: `fetch_proof(from, to)` returns the
/// base64 hashes of the consistency proof between two tree sizes, `fetch_checkpoint()` the
/// server's current checkpoint note (with its witnesses' cosignatures). A fetch error is
/// returned as is: a report is only given once every input was at hand.
pub async fn verify_bundle_online<E, P, PF, C, CF>(
    bytes: &[u8],
    verifiers: &[Verifier],
    policy: OnlinePolicy,
    mut fetch_proof: P,
    fetch_checkpoint: C,
) -> Result<VerificationReport, E>
where
    P: FnMut(u64, u64) -> PF,
    PF: Future<Output = Result<Vec<String>, E>>,
    C: FnOnce() -> CF,
    CF: Future<Output = Result<String, E>>,
{
    let OnlinePolicy {
        last_checkpoint,
        witnesses,
        quorum,
        witnessed_checkpoint,
    } = policy;
    let wants_witnesses = !witnesses.is_empty();
    if last_checkpoint.is_none() && !wants_witnesses {
        return Ok(verify_bundle_parts(
            bytes,
            verifiers,
            None,
            Vec::new(),
            None,
        ));
    }
    // The bundle's size, from its own (offline) checks.
    let bundle_size = verify_bundle_parts(bytes, verifiers, None, Vec::new(), None)
        .summary
        .tree_size;
    let mut proof = Vec::new();
    if let Some(note) = &last_checkpoint {
        if let (Some(from), Some(to)) = (checkpoint_size(note, verifiers), bundle_size) {
            if from > 0 && from < to {
                proof = fetch_proof(from, to).await?;
            }
        }
    }
    let mut witnessed = None;
    if wants_witnesses {
        let note = match witnessed_checkpoint {
            Some(n) => n,
            None => fetch_checkpoint().await?,
        };
        let mut witness_proof = Vec::new();
        if let (Some(from), Some(to)) = (bundle_size, checkpoint_size(&note, verifiers)) {
            if from > 0 && from < to {
                witness_proof = fetch_proof(from, to).await?;
            }
        }
        witnessed = Some(WitnessedInput::new(note, witness_proof, witnesses).with_quorum(quorum));
    }
    Ok(verify_bundle_parts(
        bytes,
        verifiers,
        last_checkpoint,
        proof,
        witnessed,
    ))
}
