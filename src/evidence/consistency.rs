//! Append-only check between a checkpoint the caller trusted earlier and a new one.
//!
//! A transparency log may only grow. Given the last checkpoint a verifier accepted (`trusted`)
//! and a newer one (`new`), both signed by pinned keys, the new one is acceptable only if an
//! RFC 9162 consistency proof shows the old tree is a prefix of the new tree. Anything else is
//! a **rollback** (the log got smaller: history was cut) or a **fork** (same size, different
//! root, or no valid proof: the server shows different histories to different people).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::checkpoint::{open_checkpoint, Checkpoint, Verifier};
use crate::merkle::{self, Hash};

/// The inputs of the optional `consistency` check of a bundle verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyInput {
    /// The signed checkpoint note the caller trusted last.
    pub trusted_checkpoint: String,
    /// Base64 hashes of the consistency proof from its size to the bundle's size.
    pub proof: Vec<String>,
}

/// Why a new checkpoint is not an append-only extension of a trusted one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// A checkpoint's signature or format is bad.
    #[error("{which} checkpoint: {reason}")]
    Checkpoint {
        /// `trusted` or `new`.
        which: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoints are from different logs.
    #[error("origin changed from {trusted:?} to {new:?}")]
    OriginMismatch {
        /// Trusted origin.
        trusted: String,
        /// New origin.
        new: String,
    },
    /// The new tree is smaller: history was removed.
    #[error("rollback: tree size went from {trusted} down to {new}")]
    Rollback {
        /// Trusted size.
        trusted: u64,
        /// New size.
        new: u64,
    },
    /// Two different histories: same size with another root, or no valid proof.
    #[error("fork: {reason}")]
    Fork {
        /// What does not match.
        reason: String,
    },
}

/// Checks that `new_checkpoint` extends `trusted_checkpoint` (both signed C2SP checkpoint
/// notes, verified against the pinned `verifiers`) with the base64 consistency `proof`, and
/// returns the new checkpoint. See the module docs for what each failure means.
pub fn verify_consistency_from<P: AsRef<str>>(
    trusted_checkpoint: &str,
    new_checkpoint: &str,
    proof: &[P],
    verifiers: &[Verifier],
) -> Result<Checkpoint, ConsistencyError> {
    let (trusted, _) = open_checkpoint(trusted_checkpoint, verifiers).map_err(|e| {
        ConsistencyError::Checkpoint {
            which: "trusted",
            reason: e.to_string(),
        }
    })?;
    let (new, _) =
        open_checkpoint(new_checkpoint, verifiers).map_err(|e| ConsistencyError::Checkpoint {
            which: "new",
            reason: e.to_string(),
        })?;
    check_extends(&trusted, &new, proof)?;
    Ok(new)
}

/// The proof check of [`verify_consistency_from`] on already opened checkpoints.
pub(crate) fn check_extends<P: AsRef<str>>(
    trusted: &Checkpoint,
    new: &Checkpoint,
    proof: &[P],
) -> Result<(), ConsistencyError> {
    if trusted.origin != new.origin {
        return Err(ConsistencyError::OriginMismatch {
            trusted: trusted.origin.clone(),
            new: new.origin.clone(),
        });
    }
    if new.tree_size < trusted.tree_size {
        return Err(ConsistencyError::Rollback {
            trusted: trusted.tree_size,
            new: new.tree_size,
        });
    }
    if new.tree_size == trusted.tree_size {
        if new.root_hash != trusted.root_hash {
            return Err(ConsistencyError::Fork {
                reason: format!("tree size {} has two different roots", new.tree_size),
            });
        }
        return Ok(());
    }
    if trusted.tree_size == 0 {
        // Everything extends the empty tree.
        return Ok(());
    }
    let hashes: Vec<Hash> = proof
        .iter()
        .enumerate()
        .map(|(i, p)| {
            B64.decode(p.as_ref())
                .ok()
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
                .ok_or_else(|| ConsistencyError::Fork {
                    reason: format!("proof hash {i} is not 32 bytes of base64"),
                })
        })
        .collect::<Result<_, _>>()?;
    merkle::verify_consistency(
        trusted.tree_size,
        new.tree_size,
        &hashes,
        &trusted.root_hash,
        &new.root_hash,
    )
    .map_err(|e| ConsistencyError::Fork {
        reason: format!(
            "no valid consistency proof from size {} to {}: {e}",
            trusted.tree_size, new.tree_size
        ),
    })
}
