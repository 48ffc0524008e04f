//! The audit ledger's Merkle tree over stored subtree hashes.
//!
//! Every audit event is a leaf of an RFC 9162 tree. To answer proofs at any tree size without
//! rehashing the log, the store keeps the hash of every *complete, aligned* subtree: node
//! `(level, index)` is the hash of leaves `[index·2^level, (index+1)·2^level)`. Appending leaf
//! `n` stores `(0, n)` and then, while the new node is a right child, its parent, so the log
//! holds fewer than `2n` nodes and each append writes amortised two rows.
//!
//! Any range `[start, end)` the proof generators of [`datapilot::merkle`] ask for is either one
//! stored node or splits (at the largest power of two below its length) into a stored left
//! node and a smaller right range, so it costs O(log n) lookups. Proof generation itself is the
//! SDK's (`try_inclusion_proof_with`, `try_consistency_proof_with`): one implementation, tested
//! against the RFC 9162 vectors, for client and server.

use datapilot::merkle::{node_hash, Hash, MerkleError};

/// Read access to stored nodes.
pub trait NodeSource {
    type Error: From<MerkleError>;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The nodes to store after appending leaf number `n` (0-based) whose leaf hash is `leaf`,
/// given access to the nodes already stored. Returned as `(level, index, hash)`.
pub fn nodes_for_append<S: NodeSource>(
    src: &mut S,
    n: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, S::Error> {
    let mut out = vec![(0, n, leaf)];
    let (mut level, mut index, mut hash) = (0u32, n, leaf);
    while index % 2 == 1 {
        let left = src.node(level, index - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        index /= 2;
        out.push((level, index, hash));
    }
    Ok(out)
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Hash of leaves `[start, end)` from stored complete-subtree nodes.
pub fn subtree_hash<S: NodeSource>(src: &mut S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let len = end - start;
    if len == 0 {
        return Ok(datapilot::merkle::empty_root());
    }
    if len.is_power_of_two() && start.is_multiple_of(len) {
        return src.node(len.trailing_zeros(), start / len);
    }
    let k = split_point(len);
    let left = subtree_hash(src, start, start + k)?;
    let right = subtree_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Mem(HashMap<(u32, u64), Hash>);
    impl NodeSource for Mem {
        type Error = MerkleError;
        fn node(&mut self, level: u32, index: u64) -> Result<Hash, MerkleError> {
            Ok(*self.0.get(&(level, index)).expect("node stored"))
        }
    }

    #[test]
    fn stored_nodes_give_the_reference_roots_and_proofs() {
        let leaves: Vec<Hash> = (0..70u32)
            .map(|i| datapilot::merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut mem = Mem(HashMap::new());
        for (n, l) in leaves.iter().enumerate() {
            for (lv, ix, h) in nodes_for_append(&mut mem, n as u64, *l).unwrap() {
                mem.0.insert((lv, ix), h);
            }
        }
        for size in 1..=leaves.len() as u64 {
            let want = datapilot::merkle::root_from_leaf_hashes(&leaves[..size as usize]);
            assert_eq!(
                subtree_hash(&mut mem, 0, size).unwrap(),
                want,
                "size {size}"
            );
            let i = size / 2;
            let p = datapilot::merkle::try_inclusion_proof_with(i, size, |s, e| {
                subtree_hash(&mut mem, s, e)
            })
            .unwrap();
            datapilot::merkle::verify_inclusion(&leaves[i as usize], i, size, &p, &want).unwrap();
            if size > 1 {
                let from = size - 1;
                let old = datapilot::merkle::root_from_leaf_hashes(&leaves[..from as usize]);
                let c = datapilot::merkle::try_consistency_proof_with(from, size, |s, e| {
                    subtree_hash(&mut mem, s, e)
                })
                .unwrap();
                datapilot::merkle::verify_consistency(from, size, &c, &old, &want).unwrap();
            }
        }
    }
}
