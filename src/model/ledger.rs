//! Ledger reads: raw entries, inclusion and consistency proofs. The signed checkpoint itself
//! is plain text (a C2SP signed note) and is parsed by [`crate::checkpoint`].

use serde::{Deserialize, Serialize};

/// One ledger entry: the leaf bytes and their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct LedgerEntry {
    /// Leaf index.
    pub seq: u64,
    /// Base64 of the leaf bytes (the JCS of the audit event).
    pub leaf: String,
    /// Base64 `SHA-256(0x00 || leaf)`.
    pub leaf_hash: String,
}

/// An RFC 9162 inclusion proof of one leaf in the tree of a given size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct InclusionProof {
    /// Leaf index.
    pub seq: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// Base64 leaf hash.
    pub leaf_hash: String,
    /// Base64 audit path, leaf side first.
    pub hashes: Vec<String>,
}

/// An RFC 9162 consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct ConsistencyProof {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// Base64 proof hashes.
    pub hashes: Vec<String>,
}
