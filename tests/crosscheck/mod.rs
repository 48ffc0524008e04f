//! Inputs and computations shared by the native and the wasm cross-check suites.
//!
//! The same deterministic inputs are hashed natively (`tests/crosscheck_native.rs`) and inside
//! wasm, in Node and in Chromium (`tests/wasm_node.rs`, `tests/wasm_browser.rs`); each compares
//! its results with `tests/fixtures/crosscheck.json`. A difference between targets, or a change
//! of the formats, fails a suite. To record new expected values after an intended format change:
//! `DATAPILOT_BLESS=1 cargo test --test crosscheck_native`.

use datapilot::manifest::ManifestBuilder;
use datapilot::merkle;
use serde::{Deserialize, Serialize};

/// The expected values, as stored in `tests/fixtures/crosscheck.json`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// `(case name, DPM-1 id)` for each dataset case.
    pub datasets: Vec<(String, String)>,
    /// `(leaf count, root hex)` for each tree size.
    pub merkle_roots: Vec<(u64, String)>,
}

pub const FIXTURE: &str = include_str!("../fixtures/crosscheck.json");

/// Chunk size used to stream file contents, small enough that most files span several chunks.
const CHUNK: usize = 4096;

/// A small xorshift generator: the inputs must be identical on every target without a dependency.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }
}

/// Dataset cases: `(name, [(path as a client would give it, content length)])`. The paths cover
/// nesting, spaces, hidden files, non-ASCII names (one in NFD, which must be normalised to NFC),
/// and the sizes cover empty files, block boundaries (55, 56, 64, 65 bytes) and multi-chunk files.
fn dataset_cases() -> Vec<(&'static str, Vec<(&'static str, usize)>)> {
    vec![
        ("single-empty-file", vec![("empty.txt", 0)]),
        (
            "block-boundaries",
            vec![
                ("a/55", 55),
                ("a/56", 56),
                ("a/64", 64),
                ("a/65", 65),
                ("b", 1),
            ],
        ),
        (
            "names",
            vec![
                ("data/train set/part 1.csv", 3000),
                ("data/.hidden", 10),
                ("donne\u{301}es/e\u{301}te\u{301}.csv", 777),
                ("\u{65e5}\u{672c}/\u{30c7}\u{30fc}\u{30bf}.bin", 12_345),
                ("Z-upper-sorts-first", 5),
            ],
        ),
        (
            "multi-chunk",
            vec![("big/blob.bin", 1_000_003), ("big/small", 17)],
        ),
    ]
}

/// Computes every result from scratch with the crate's public API.
pub fn compute() -> Results {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut datasets = Vec::new();
    for (name, files) in dataset_cases() {
        let mut builder = ManifestBuilder::new();
        for (path, len) in files {
            let content = rng.bytes(len);
            let mut file = builder.begin_file(path).expect("valid path");
            for chunk in content.chunks(CHUNK) {
                file.update(chunk);
            }
            file.finish();
        }
        let manifest = builder.finish().expect("non-empty manifest");
        datasets.push((name.to_owned(), manifest.digest().to_owned()));
    }

    let mut merkle_roots = Vec::new();
    for n in [0u64, 1, 2, 3, 4, 5, 7, 8, 9, 13, 100, 1000] {
        let leaves: Vec<merkle::Hash> = (0..n)
            .map(|i| merkle::leaf_hash(format!("leaf-{i}").as_bytes()))
            .collect();
        let root = merkle::root_from_leaf_hashes(&leaves);
        // Proofs generated and checked on this target too, at a few positions.
        for index in [0, n / 2, n.saturating_sub(1)] {
            if index < n {
                let proof = merkle::inclusion_proof(&leaves, index).expect("index in range");
                merkle::verify_inclusion(&leaves[index as usize], index, n, &proof, &root)
                    .expect("generated inclusion proof verifies");
            }
        }
        if n > 1 {
            let m = n / 2;
            let old_root = merkle::root_from_leaf_hashes(&leaves[..m as usize]);
            let proof = merkle::consistency_proof(&leaves, m).expect("sizes in range");
            merkle::verify_consistency(m, n, &proof, &old_root, &root)
                .expect("generated consistency proof verifies");
        }
        merkle_roots.push((n, hex::encode(root)));
    }
    Results {
        datasets,
        merkle_roots,
    }
}

/// The stored expected values.
pub fn expected() -> Results {
    serde_json::from_str(FIXTURE).expect("tests/fixtures/crosscheck.json parses")
}
