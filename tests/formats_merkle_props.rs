//! Property tests for the RFC 9162 tree: generated proofs verify, and any
//! mutation of a proof (a flipped bit, a hash added, dropped or swapped, a
//! wrong index or size) is rejected.
#![cfg(not(target_arch = "wasm32"))]

use datapilot::merkle::{self, Hash};
use proptest::prelude::*;

fn leaves(n: u64, salt: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let mut d = i.to_le_bytes().to_vec();
            d.push(salt);
            merkle::leaf_hash(&d)
        })
        .collect()
}

/// A tree size and a leaf index in it.
fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1u64..300).prop_flat_map(|n| (Just(n), 0..n))
}

/// Two tree sizes, 1 <= size1 <= size2.
fn two_sizes() -> impl Strategy<Value = (u64, u64)> {
    (1u64..300).prop_flat_map(|n| (1..=n, Just(n)))
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { hash: usize, bit: usize },
    Drop { hash: usize },
    Insert { at: usize },
    Duplicate { hash: usize },
    SwapAdjacent { hash: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..256).prop_map(|(hash, bit)| Mutation::FlipBit { hash, bit }),
        any::<usize>().prop_map(|hash| Mutation::Drop { hash }),
        any::<usize>().prop_map(|at| Mutation::Insert { at }),
        any::<usize>().prop_map(|hash| Mutation::Duplicate { hash }),
        any::<usize>().prop_map(|hash| Mutation::SwapAdjacent { hash }),
    ]
}

/// Applies the mutation; `None` if it cannot change this proof.
fn mutate(proof: &[Hash], m: &Mutation) -> Option<Vec<Hash>> {
    let mut p = proof.to_vec();
    let len = p.len();
    match *m {
        Mutation::FlipBit { hash, bit } => {
            if len == 0 {
                return None;
            }
            p[hash % len][bit / 8] ^= 1 << (bit % 8);
        }
        Mutation::Drop { hash } => {
            if len == 0 {
                return None;
            }
            p.remove(hash % len);
        }
        Mutation::Insert { at } => p.insert(at % (len + 1), [0x5a; 32]),
        Mutation::Duplicate { hash } => {
            if len == 0 {
                return None;
            }
            let h = p[hash % len];
            p.insert(hash % len, h);
        }
        Mutation::SwapAdjacent { hash } => {
            if len < 2 {
                return None;
            }
            let i = hash % (len - 1);
            if p[i] == p[i + 1] {
                return None;
            }
            p.swap(i, i + 1);
        }
    }
    Some(p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify((n, i) in size_and_index()) {
        let l = leaves(n, 1);
        let root = merkle::root_from_leaf_hashes(&l);
        let p = merkle::inclusion_proof(&l, i).unwrap();
        prop_assert!(merkle::verify_inclusion(&l[i as usize], i, n, &p, &root).is_ok());
        prop_assert_eq!(merkle::root_from_inclusion_proof(&l[i as usize], i, n, &p).unwrap(), root);
    }

    #[test]
    fn mutated_inclusion_proofs_fail((n, i) in size_and_index(), m in mutation()) {
        let l = leaves(n, 2);
        let root = merkle::root_from_leaf_hashes(&l);
        let p = merkle::inclusion_proof(&l, i).unwrap();
        if let Some(bad) = mutate(&p, &m) {
            prop_assert!(merkle::verify_inclusion(&l[i as usize], i, n, &bad, &root).is_err());
        }
    }

    #[test]
    fn inclusion_with_wrong_claims_fails((n, i) in size_and_index(), delta in 1u64..5) {
        let l = leaves(n, 3);
        let root = merkle::root_from_leaf_hashes(&l);
        let p = merkle::inclusion_proof(&l, i).unwrap();
        // Another index, another size, another leaf or another root.
        let other = (i + delta) % n;
        if other != i {
            prop_assert!(merkle::verify_inclusion(&l[i as usize], other, n, &p, &root).is_err());
            prop_assert!(merkle::verify_inclusion(&l[other as usize], i, n, &p, &root).is_err());
        }
        // (A proof does not bind the tree size by itself: a larger tree whose
        // path has the same shape gives the same root. The size is bound by
        // the signed checkpoint that carries the root.)
        let mut bad_root = root;
        bad_root[0] ^= 1;
        prop_assert!(merkle::verify_inclusion(&l[i as usize], i, n, &p, &bad_root).is_err());
    }

    #[test]
    fn consistency_proofs_verify((m, n) in two_sizes()) {
        let l = leaves(n, 4);
        let (root1, root2) = (merkle::root_from_leaf_hashes(&l[..m as usize]), merkle::root_from_leaf_hashes(&l));
        let p = merkle::consistency_proof(&l, m).unwrap();
        prop_assert!(merkle::verify_consistency(m, n, &p, &root1, &root2).is_ok());
    }

    #[test]
    fn mutated_consistency_proofs_fail((m, n) in two_sizes(), mu in mutation()) {
        let l = leaves(n, 5);
        let (root1, root2) = (merkle::root_from_leaf_hashes(&l[..m as usize]), merkle::root_from_leaf_hashes(&l));
        let p = merkle::consistency_proof(&l, m).unwrap();
        if let Some(bad) = mutate(&p, &mu) {
            prop_assert!(merkle::verify_consistency(m, n, &bad, &root1, &root2).is_err());
        }
    }

    #[test]
    fn consistency_detects_rewritten_history((m, n) in two_sizes(), victim in any::<usize>()) {
        // The log rewrites one old leaf and publishes a new root: the proof
        // from the honest old root must fail.
        let honest = leaves(n, 6);
        let root1 = merkle::root_from_leaf_hashes(&honest[..m as usize]);
        let mut forged = honest.clone();
        forged[victim % m as usize][0] ^= 0x80;
        let root2 = merkle::root_from_leaf_hashes(&forged);
        let p = merkle::consistency_proof(&forged, m).unwrap();
        prop_assert!(merkle::verify_consistency(m, n, &p, &root1, &root2).is_err());
    }

    #[test]
    fn consistency_with_wrong_roots_fails((m, n) in two_sizes(), byte in 0usize..32) {
        let l = leaves(n, 7);
        let (root1, root2) = (merkle::root_from_leaf_hashes(&l[..m as usize]), merkle::root_from_leaf_hashes(&l));
        let p = merkle::consistency_proof(&l, m).unwrap();
        let (mut bad1, mut bad2) = (root1, root2);
        bad1[byte] ^= 1;
        bad2[byte] ^= 1;
        prop_assert!(merkle::verify_consistency(m, n, &p, &bad1, &root2).is_err());
        prop_assert!(merkle::verify_consistency(m, n, &p, &root1, &bad2).is_err());
        if m < n {
            prop_assert!(merkle::verify_consistency(m, n, &p, &root2, &root1).is_err());
        }
    }
}
