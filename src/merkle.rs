//! RFC 9162 Merkle tree: the audit ledger's tamper evidence.
//!
//! Every audit event is a leaf. The tree over leaves `d[0..n)` is defined by
//! RFC 9162 section 2.1.1 (the same tree as Certificate Transparency, RFC 6962):
//!
//! ```text
//! MTH({})       = SHA-256()                       (empty_root)
//! MTH({d0})     = SHA-256(0x00 || d0)             (leaf_hash)
//! MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   (node_hash)
//!                 where k is the largest power of two smaller than n
//! ```
//!
//! The 0x00/0x01 prefixes keep a leaf from ever being mistaken for an inner
//! node (second-preimage resistance).
//!
//! Two kinds of proof let a client that holds only a signed root (a checkpoint)
//! check the log without downloading it:
//!
//! - an **inclusion proof** shows that a leaf is at `index` in the tree of
//!   `tree_size` leaves with a given root ([`verify_inclusion`]);
//! - a **consistency proof** shows that the tree of `size1` leaves is a prefix
//!   of the tree of `size2` leaves, i.e. the log only grew
//!   ([`verify_consistency`]). This is what makes rollback or rewriting of
//!   history detectable.
//!
//! The verifiers follow the algorithm of transparency-dev/merkle (equivalent
//! to RFC 9162 sections 2.1.3.2 and 2.1.4.2, but checking the exact proof
//! length up front so errors say what is wrong) and accept exactly the
//! `wantErr: false` vectors of its test data (`tests/fixtures/rfc9162/`).
//!
//! The generators ([`inclusion_proof_with`], [`consistency_proof_with`]) are
//! written once over a callback that returns the hash of the leaf range
//! `[start, end)`, so the server can answer from stored subtree hashes and
//! tests can answer from an in-memory list ([`inclusion_proof`],
//! [`consistency_proof`]). Every range asked for is either a *complete*
//! subtree (its length is a power of two and `start` is a multiple of it) or
//! ends at the tree size, so a store of complete-subtree hashes suffices.
//!
//! Why not a crate: `ct-merkle` 0.3 only proves from its own in-memory tree
//! type and needs `digest` 0.11 (a second SHA-2 stack next to the `sha2` 0.10
//! used everywhere else); `tlog_tiles` mirrors Go's `tlog` (proofs addressed
//! by stored-hash index, tile storage) and pulls in `url`. Neither offers the
//! callback-shaped generator the server needs; the algorithm is short.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an inner node or a root.
pub type Hash = [u8; 32];

/// Errors from proof generation or verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The leaf index is not smaller than the tree size.
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The proof does not have the number of hashes the sizes require.
    #[error("the proof has {got} hashes but must have {want} for these tree sizes")]
    WrongProofLength {
        /// Hashes in the proof given.
        got: usize,
        /// Hashes a proof for these sizes has.
        want: usize,
    },
    /// A consistency proof was asked for from a larger to a smaller tree.
    #[error("tree size went down from {size1} to {size2}")]
    SizeDecreased {
        /// The first (older) size.
        size1: u64,
        /// The second (newer) size.
        size2: u64,
    },
    /// Consistency with the empty tree proves nothing, so it is not a proof.
    #[error("a consistency proof needs a first tree size of at least 1")]
    EmptyFirstTree,
    /// A value that must be a SHA-256 hash has another length.
    #[error("{what} has {len} bytes, expected 32")]
    BadHashLength {
        /// Which value ("leaf hash", "root", "proof hash 3", ...).
        what: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The inclusion proof leads to another root.
    #[error("the inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the first root.
    #[error("the consistency proof does not reproduce the first root")]
    FirstRootMismatch,
    /// The consistency proof does not reproduce the second root.
    #[error("the consistency proof does not reproduce the second root")]
    SecondRootMismatch,
    /// Equal tree sizes but different roots: the log forked.
    #[error("equal tree sizes with different roots")]
    RootsDiffer,
}

/// `SHA-256(0x00 || data)`: the hash of one leaf (an audit event's JCS bytes).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Converts a decoded wire value (e.g. base64) to a [`Hash`], naming it in the
/// error if it is not 32 bytes.
pub fn hash_from_slice(bytes: &[u8], what: &str) -> Result<Hash, MerkleError> {
    bytes.try_into().map_err(|_| MerkleError::BadHashLength {
        what: what.to_owned(),
        len: bytes.len(),
    })
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the tree whose leaf hashes are `leaves` (MTH of RFC 9162).
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            // usize -> u64 is lossless on every supported target.
            let k = split_point(n as u64) as usize;
            node_hash(
                &root_from_leaf_hashes(&leaves[..k]),
                &root_from_leaf_hashes(&leaves[k..]),
            )
        }
    }
}

/// Sizes of the two parts of an inclusion proof for `index` in a tree of
/// `size` leaves: `inner` hashes below the point where the path to the leaf
/// departs from the right border of the tree, then `border` hashes on it.
fn decomp_incl_proof(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// The root that an inclusion proof leads to (without comparing it).
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    let (inner, border) = decomp_incl_proof(index, tree_size);
    if proof.len() != inner + border {
        return Err(MerkleError::WrongProofLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let r = chain_inner(*leaf_hash, &proof[..inner], index);
    Ok(chain_border_right(r, &proof[inner..]))
}

/// Checks that `leaf_hash` is the leaf at `index` of the tree of `tree_size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if root_from_inclusion_proof(leaf_hash, index, tree_size, proof)? != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// [`verify_inclusion`] over undecoded-length byte strings (as decoded from
/// base64 on the wire): every value must be 32 bytes.
pub fn verify_inclusion_bytes<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    tree_size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), MerkleError> {
    let leaf = hash_from_slice(leaf_hash, "leaf hash")?;
    let root = hash_from_slice(root, "root")?;
    let proof = proof_hashes(proof)?;
    verify_inclusion(&leaf, index, tree_size, &proof, &root)
}

fn proof_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, MerkleError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, p)| hash_from_slice(p.as_ref(), &format!("proof hash {i}")))
        .collect()
}

/// Number of hashes in the consistency proof from `size1` to `size2`
/// (`0 < size1 < size2`), and the pieces the verifier needs.
struct ConsistencyShape {
    /// Whether the proof starts with the hash of the subtree that seeds the
    /// computation (false when `size1` is a power of two: the seed is `root1`).
    has_seed: bool,
    inner: usize,
    border: usize,
    mask: u64,
}

fn consistency_shape(size1: u64, size2: u64) -> ConsistencyShape {
    let (inner, border) = decomp_incl_proof(size1 - 1, size2);
    let shift = size1.trailing_zeros();
    ConsistencyShape {
        has_seed: size1 != 1 << shift,
        // shift < inner whenever size1 < size2.
        inner: inner - shift as usize,
        border,
        mask: (size1 - 1) >> shift,
    }
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of
/// the tree of `size2` leaves with root `root2`.
///
/// Equal sizes need an empty proof and equal roots. `size1 == 0` is rejected
/// ([`MerkleError::EmptyFirstTree`]): every tree extends the empty one, so
/// such a "proof" would check nothing, and callers should not believe it did.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizeDecreased { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyFirstTree);
    }
    if size1 == size2 {
        return equal_size_check(proof.len(), root1 == root2);
    }
    let shape = consistency_shape(size1, size2);
    let want = usize::from(shape.has_seed) + shape.inner + shape.border;
    if proof.len() != want {
        return Err(MerkleError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    let (seed, rest) = if shape.has_seed {
        (proof[0], &proof[1..])
    } else {
        (*root1, proof)
    };
    let (inner, border) = rest.split_at(shape.inner);
    let hash1 = chain_border_right(chain_inner_right(seed, inner, shape.mask), border);
    if hash1 != *root1 {
        return Err(MerkleError::FirstRootMismatch);
    }
    let hash2 = chain_border_right(chain_inner(seed, inner, shape.mask), border);
    if hash2 != *root2 {
        return Err(MerkleError::SecondRootMismatch);
    }
    Ok(())
}

fn equal_size_check(proof_len: usize, roots_equal: bool) -> Result<(), MerkleError> {
    if proof_len != 0 {
        return Err(MerkleError::WrongProofLength {
            got: proof_len,
            want: 0,
        });
    }
    if !roots_equal {
        return Err(MerkleError::RootsDiffer);
    }
    Ok(())
}

/// [`verify_consistency`] over byte strings of unchecked length. Every hash
/// must be 32 bytes, except that for equal sizes the two roots are only
/// compared byte for byte (as transparency-dev/merkle does).
pub fn verify_consistency_bytes<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizeDecreased { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyFirstTree);
    }
    if size1 == size2 {
        return equal_size_check(proof.len(), root1 == root2);
    }
    let root1 = hash_from_slice(root1, "first root")?;
    let root2 = hash_from_slice(root2, "second root")?;
    let proof = proof_hashes(proof)?;
    verify_consistency(size1, size2, &proof, &root1, &root2)
}

/// The inclusion proof for leaf `index` in the tree of `tree_size` leaves;
/// `subtree(start, end)` must return the hash of leaves `[start, end)`.
pub fn inclusion_proof_with(
    index: u64,
    tree_size: u64,
    mut subtree: impl FnMut(u64, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    try_inclusion_proof_with(index, tree_size, |s, e| Ok::<_, MerkleError>(subtree(s, e)))
}

/// [`inclusion_proof_with`] for a fallible hash source (a database read):
/// the callback's error is returned as is.
pub fn try_inclusion_proof_with<E: From<MerkleError>>(
    index: u64,
    tree_size: u64,
    mut subtree: impl FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size }.into());
    }
    // Walk from the root to the leaf, taking the sibling at each level; the
    // proof lists them leaf first.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0, tree_size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            proof.push(subtree(mid, end)?);
            end = mid;
        } else {
            proof.push(subtree(start, mid)?);
            start = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof from the tree of `size1` leaves to the tree of
/// `size2` leaves (RFC 9162 section 2.1.4.1); `subtree(start, end)` must
/// return the hash of leaves `[start, end)`. Equal sizes give an empty proof;
/// `size1 == 0` is an error, as in [`verify_consistency`].
pub fn consistency_proof_with(
    size1: u64,
    size2: u64,
    mut subtree: impl FnMut(u64, u64) -> Hash,
) -> Result<Vec<Hash>, MerkleError> {
    try_consistency_proof_with(size1, size2, |s, e| Ok::<_, MerkleError>(subtree(s, e)))
}

/// [`consistency_proof_with`] for a fallible hash source.
pub fn try_consistency_proof_with<E: From<MerkleError>>(
    size1: u64,
    size2: u64,
    mut subtree: impl FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    if size1 > size2 {
        return Err(MerkleError::SizeDecreased { size1, size2 }.into());
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyFirstTree.into());
    }
    // SUBPROOF(m, D[start:end], b), unrolled: descend while collecting the
    // hashes top-down, then reverse so the proof lists them bottom-up.
    let mut proof = Vec::new();
    let (mut m, mut start, mut end) = (size1, 0, size2);
    let mut whole_old_tree = true;
    loop {
        let n = end - start;
        if m == n {
            // The old tree (or its last complete subtree) is this node; the
            // verifier knows root1 itself, so it is only sent when it is a
            // proper subtree.
            if !whole_old_tree {
                proof.push(subtree(start, end)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(subtree(start + k, end)?);
            end = start + k;
        } else {
            proof.push(subtree(start, start + k)?);
            m -= k;
            start += k;
            whole_old_tree = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

fn leaf_range(leaves: &[Hash], start: u64, end: u64) -> &[Hash] {
    // The generators only ask for ranges within the tree, whose size is
    // leaves.len(), so these conversions and the slice cannot fail.
    &leaves[start as usize..end as usize]
}

/// [`inclusion_proof_with`] over an in-memory list of leaf hashes (the tree
/// size is `leaves.len()`).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    inclusion_proof_with(index, leaves.len() as u64, |s, e| {
        root_from_leaf_hashes(leaf_range(leaves, s, e))
    })
}

/// [`consistency_proof_with`] over an in-memory list of leaf hashes, from the
/// tree of the first `size1` leaves to the tree of all of them.
pub fn consistency_proof(leaves: &[Hash], size1: u64) -> Result<Vec<Hash>, MerkleError> {
    consistency_proof_with(size1, leaves.len() as u64, |s, e| {
        root_from_leaf_hashes(leaf_range(leaves, s, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn hex(h: &Hash) -> String {
        hex::encode(h)
    }

    #[test]
    fn primitive_hashes() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962 / transparency-dev: the hash of the empty leaf.
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let l = leaf_hash(b"a");
        let r = leaf_hash(b"b");
        let mut manual = vec![1u8];
        manual.extend_from_slice(&l);
        manual.extend_from_slice(&r);
        assert_eq!(node_hash(&l, &r), <Hash>::from(Sha256::digest(&manual)));
    }

    /// The 8-leaf reference tree of transparency-dev/merkle (leaves are the
    /// byte strings below); its roots for every prefix size are published there.
    #[test]
    fn reference_roots() {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        for (n, want) in roots.iter().enumerate() {
            assert_eq!(
                hex(&root_from_leaf_hashes(&hashes[..=n])),
                *want,
                "size {}",
                n + 1
            );
        }
    }

    #[test]
    fn every_proof_verifies_up_to_40_leaves() {
        for n in 1..=40u64 {
            let l = leaves(n);
            let root = root_from_leaf_hashes(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                verify_inclusion(&l[i as usize], i, n, &p, &root).unwrap();
                // The wrong index fails.
                if n > 1 {
                    assert!(verify_inclusion(&l[i as usize], (i + 1) % n, n, &p, &root).is_err());
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&l, m).unwrap();
                let root1 = root_from_leaf_hashes(&l[..m as usize]);
                verify_consistency(m, n, &p, &root1, &root).unwrap();
                if m < n {
                    assert!(verify_consistency(m, n, &p, &root, &root1).is_err());
                }
            }
        }
    }

    #[test]
    fn generator_only_asks_for_complete_or_right_edge_subtrees() {
        for n in 1..=70u64 {
            let check = |s: u64, e: u64| {
                let len = e - s;
                assert!(s < e && e <= n, "range {s}..{e} of {n}");
                assert!(
                    e == n || (len.is_power_of_two() && s.is_multiple_of(len)),
                    "range {s}..{e} of {n}"
                );
                [0u8; 32]
            };
            for i in 0..n {
                inclusion_proof_with(i, n, check).unwrap();
            }
            for m in 1..=n {
                consistency_proof_with(m, n, check).unwrap();
            }
        }
    }

    #[test]
    fn errors() {
        let l = leaves(5);
        assert_eq!(
            inclusion_proof(&l, 5),
            Err(MerkleError::IndexOutOfRange {
                index: 5,
                tree_size: 5
            })
        );
        assert_eq!(
            inclusion_proof(&[], 0).unwrap_err().to_string(),
            "leaf index 0 is outside a tree of size 0"
        );
        assert_eq!(
            consistency_proof(&l, 6),
            Err(MerkleError::SizeDecreased { size1: 6, size2: 5 })
        );
        assert_eq!(consistency_proof(&l, 0), Err(MerkleError::EmptyFirstTree));
        assert_eq!(consistency_proof(&l, 5), Ok(vec![]));
        let root = root_from_leaf_hashes(&l);
        let mut p = inclusion_proof(&l, 2).unwrap();
        p.push(root);
        assert_eq!(
            verify_inclusion(&l[2], 2, 5, &p, &root),
            Err(MerkleError::WrongProofLength { got: 4, want: 3 })
        );
        assert_eq!(
            verify_inclusion_bytes(&l[2][..31], 2, 5, &p, &root),
            Err(MerkleError::BadHashLength {
                what: "leaf hash".into(),
                len: 31
            })
        );
    }

    #[test]
    fn huge_sizes_do_not_panic() {
        let h = [7u8; 32];
        for (i, n) in [(0, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
            assert!(verify_inclusion(&h, i, n, &[], &h).is_err());
            let p = vec![h; 64];
            assert!(verify_inclusion(&h, i, n, &p, &h).is_err());
        }
        assert!(verify_consistency(1, u64::MAX, &[h; 64], &h, &h).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &[h; 3], &h, &h).is_err());
        // Generating needs only log2(size) callbacks, even for huge trees.
        assert_eq!(
            inclusion_proof_with(12345, u64::MAX, |_, _| h)
                .unwrap()
                .len(),
            64
        );
        assert!(
            consistency_proof_with(1 << 40, u64::MAX, |_, _| h)
                .unwrap()
                .len()
                <= 128
        );
    }
}
