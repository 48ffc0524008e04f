//! The transparency-dev/merkle proof vectors (`tests/fixtures/rfc9162/`):
//! every one must be accepted or rejected exactly as its `wantErr` says, and
//! where the vector's tree is the reference tree, our generators must produce
//! the very same proof.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use datapilot::merkle::{self, Hash};
use serde_json::Value;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn vectors(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rfc9162")
        .join(kind);
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Null => vec![],
        Value::Array(a) => a.iter().map(b64).collect(),
        other => panic!("bad proof {other}"),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The 8 leaves of transparency-dev/merkle's reference tree, which its
/// happy-path vectors are built on.
fn reference_leaves() -> Vec<Hash> {
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
    data.iter().map(|d| merkle::leaf_hash(d)).collect()
}

fn as_hash(b: &[u8]) -> Option<Hash> {
    b.try_into().ok()
}

#[test]
fn inclusion_vectors() {
    let all = vectors("inclusion");
    assert_eq!(all.len(), 98, "expected 98 inclusion vectors");
    let leaves = reference_leaves();
    let (mut accepted, mut rejected, mut regenerated) = (0, 0, 0);
    for (path, v) in &all {
        let (index, size) = (u(&v["leafIdx"]), u(&v["treeSize"]));
        let (leaf, root, p) = (b64(&v["leafHash"]), b64(&v["root"]), proof(&v["proof"]));
        let want_err = v["wantErr"].as_bool().unwrap();
        let got = merkle::verify_inclusion_bytes(&leaf, index, size, &p, &root);
        assert_eq!(got.is_err(), want_err, "{}: {got:?}", path.display());
        // The typed API agrees wherever the values are hashes at all.
        let typed: Option<Vec<Hash>> = p.iter().map(|h| as_hash(h)).collect();
        if let (Some(l), Some(r), Some(t)) = (as_hash(&leaf), as_hash(&root), typed) {
            let got = merkle::verify_inclusion(&l, index, size, &t, &r);
            assert_eq!(
                got.is_err(),
                want_err,
                "{} (typed): {got:?}",
                path.display()
            );
        }
        if want_err {
            rejected += 1;
        } else {
            accepted += 1;
            let n = size as usize;
            if n <= leaves.len() && leaves[index as usize] == leaf[..] {
                let mine = merkle::inclusion_proof(&leaves[..n], index).unwrap();
                assert_eq!(
                    mine.iter().map(|h| h.to_vec()).collect::<Vec<_>>(),
                    p,
                    "{}",
                    path.display()
                );
                regenerated += 1;
            }
        }
    }
    assert!(accepted > 0 && rejected > 0 && regenerated > 0);
}

#[test]
fn consistency_vectors() {
    let all = vectors("consistency");
    assert_eq!(all.len(), 98, "expected 98 consistency vectors");
    let leaves = reference_leaves();
    let (mut accepted, mut rejected, mut regenerated) = (0, 0, 0);
    for (path, v) in &all {
        let (size1, size2) = (u(&v["size1"]), u(&v["size2"]));
        let (root1, root2, p) = (b64(&v["root1"]), b64(&v["root2"]), proof(&v["proof"]));
        let want_err = v["wantErr"].as_bool().unwrap();
        let got = merkle::verify_consistency_bytes(size1, size2, &p, &root1, &root2);
        assert_eq!(got.is_err(), want_err, "{}: {got:?}", path.display());
        let typed: Option<Vec<Hash>> = p.iter().map(|h| as_hash(h)).collect();
        if let (Some(r1), Some(r2), Some(t)) = (as_hash(&root1), as_hash(&root2), typed) {
            let got = merkle::verify_consistency(size1, size2, &t, &r1, &r2);
            assert_eq!(
                got.is_err(),
                want_err,
                "{} (typed): {got:?}",
                path.display()
            );
        }
        if want_err {
            rejected += 1;
        } else {
            accepted += 1;
            let n = size2 as usize;
            if n <= leaves.len() && merkle::root_from_leaf_hashes(&leaves[..n])[..] == root2[..] {
                let mine = merkle::consistency_proof(&leaves[..n], size1).unwrap();
                assert_eq!(
                    mine.iter().map(|h| h.to_vec()).collect::<Vec<_>>(),
                    p,
                    "{}",
                    path.display()
                );
                regenerated += 1;
            }
        }
    }
    assert!(accepted > 0 && rejected > 0 && regenerated > 0);
}
