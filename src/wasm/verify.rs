//! Offline verification exports: evidence bundles, checkpoints, Merkle proofs, DPM-1 digests.
//!
//! All of them run on pinned keys and the bytes given, with no network. The report types are
//! the core's ([`crate::evidence::VerificationReport`]), which derive `tsify` on wasm32 so the
//! TypeScript names their fields.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::error::{invalid_argument, verification_failed};
use super::hashing::opt;
use super::{from_js, to_js};
use crate::checkpoint::{open_checkpoint, Verifier};
use crate::evidence::{self, ConsistencyInput, VerificationReport, VerifyOptions};
use crate::merkle;
use crate::model::datasets::FileEntry;

/// A checkpoint whose signature verified.
#[derive(Debug, Serialize, tsify::Tsify)]
pub struct VerifiedCheckpoint {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub tree_size: u64,
    /// Base64 root hash.
    pub root_hash: String,
}

/// Parses pinned verifier key strings.
pub(crate) fn verifiers(keys: &JsValue) -> Result<Vec<Verifier>, JsValue> {
    let keys: Vec<String> = from_js(keys.clone(), "trustedKeys")?;
    if keys.is_empty() {
        return Err(invalid_argument(
            "trustedKeys must name at least one verifier key",
        ));
    }
    keys.iter()
        .map(|k| {
            k.parse::<Verifier>()
                .map_err(|e| invalid_argument(&format!("trusted key {k:?}: {e}")))
        })
        .collect()
}

fn strings(value: JsValue, what: &str) -> Result<Vec<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    from_js(value, what)
}

/// Verifies a bundle with decoded options (shared with the client's online variant).
pub(crate) fn verify_bundle_report(
    bytes: &[u8],
    verifiers: &[Verifier],
    last_checkpoint: Option<String>,
    proof: Vec<String>,
) -> VerificationReport {
    let mut options = VerifyOptions::default();
    if let Some(trusted_checkpoint) = last_checkpoint {
        options = options.with_consistency(ConsistencyInput {
            trusted_checkpoint,
            proof,
        });
    }
    evidence::verify_bundle_with(bytes, verifiers, &options)
}

/// The tree size of a trusted checkpoint note, if it verifies.
pub(crate) fn checkpoint_size(note: &str, verifiers: &[Verifier]) -> Option<u64> {
    open_checkpoint(note, verifiers)
        .ok()
        .map(|(c, _)| c.tree_size)
}

/// `verifyEvidenceBundle(bytes, { trustedKeys, lastCheckpoint?, consistencyProof? })`: every
/// check of an evidence bundle, offline. Never throws for a bad bundle: read `report.ok`.
#[wasm_bindgen(js_name = verifyEvidenceBundle, unchecked_return_type = "VerificationReport")]
pub fn verify_evidence_bundle(
    bytes: &[u8],
    #[wasm_bindgen(unchecked_param_type = "VerifyBundleOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let keys = verifiers(&opt(&options, "trustedKeys"))?;
    let last = opt(&options, "lastCheckpoint").as_string();
    let proof = strings(opt(&options, "consistencyProof"), "consistencyProof")?;
    to_js(&verify_bundle_report(bytes, &keys, last, proof))
}

/// `verifyCheckpoint(note, trustedKeys)`: opens a signed checkpoint note with pinned keys;
/// throws a `DataPilotError` (`verification_failed`) if no pinned key signed it.
#[wasm_bindgen(js_name = verifyCheckpoint, unchecked_return_type = "VerifiedCheckpoint")]
pub fn verify_checkpoint(
    note: &str,
    #[wasm_bindgen(unchecked_param_type = "string[]")] trusted_keys: JsValue,
) -> Result<JsValue, JsValue> {
    let keys = verifiers(&trusted_keys)?;
    let (c, _) = open_checkpoint(note, &keys).map_err(|e| verification_failed(&e.to_string()))?;
    to_js(&VerifiedCheckpoint {
        origin: c.origin,
        tree_size: c.tree_size,
        root_hash: B64.encode(c.root_hash),
    })
}

fn b64(value: &JsValue, what: &str) -> Result<Vec<u8>, JsValue> {
    let s = value
        .as_string()
        .ok_or_else(|| invalid_argument(&format!("{what} must be a base64 string")))?;
    B64.decode(s)
        .map_err(|_| invalid_argument(&format!("{what} is not base64")))
}

fn b64_list(value: JsValue, what: &str) -> Result<Vec<Vec<u8>>, JsValue> {
    strings(value, what)?
        .iter()
        .map(|s| {
            B64.decode(s)
                .map_err(|_| invalid_argument(&format!("{what} is not base64")))
        })
        .collect()
}

fn size(value: &JsValue, what: &str) -> Result<u64, JsValue> {
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= crate::jcs::MAX_SAFE_INTEGER as f64 => {
            Ok(n as u64)
        }
        _ => Err(invalid_argument(&format!(
            "{what} must be a non-negative integer"
        ))),
    }
}

/// `verifyInclusion({ leafHash | leaf, index, treeSize, proof, rootHash })`: whether an RFC
/// 9162 inclusion proof (base64 hashes) leads from the leaf to the root. `leaf` is the raw
/// leaf bytes, `leafHash` its base64 hash.
#[wasm_bindgen(js_name = verifyInclusion)]
pub fn verify_inclusion(
    #[wasm_bindgen(
        unchecked_param_type = "{ leaf?: Uint8Array; leafHash?: string; index: number; treeSize: number; proof: string[]; rootHash: string }"
    )]
    args: JsValue,
) -> Result<bool, JsValue> {
    let leaf = opt(&args, "leaf");
    let leaf_hash = if let Some(bytes) = leaf.dyn_ref::<js_sys::Uint8Array>() {
        merkle::leaf_hash(&bytes.to_vec()).to_vec()
    } else {
        b64(&opt(&args, "leafHash"), "leafHash")?
    };
    let proof = b64_list(opt(&args, "proof"), "proof")?;
    let root = b64(&opt(&args, "rootHash"), "rootHash")?;
    Ok(merkle::verify_inclusion_bytes(
        &leaf_hash,
        size(&opt(&args, "index"), "index")?,
        size(&opt(&args, "treeSize"), "treeSize")?,
        &proof,
        &root,
    )
    .is_ok())
}

/// `verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof })`: whether the tree of
/// `newSize` extends the tree of `oldSize` (RFC 9162 consistency proof, base64).
#[wasm_bindgen(js_name = verifyConsistency)]
pub fn verify_consistency(
    #[wasm_bindgen(
        unchecked_param_type = "{ oldSize: number; newSize: number; oldRoot: string; newRoot: string; proof: string[] }"
    )]
    args: JsValue,
) -> Result<bool, JsValue> {
    let proof = b64_list(opt(&args, "proof"), "proof")?;
    Ok(merkle::verify_consistency_bytes(
        size(&opt(&args, "oldSize"), "oldSize")?,
        size(&opt(&args, "newSize"), "newSize")?,
        &proof,
        &b64(&opt(&args, "oldRoot"), "oldRoot")?,
        &b64(&opt(&args, "newRoot"), "newRoot")?,
    )
    .is_ok())
}

/// `datasetDigest(files)`: the DPM-1 id of a manifest (`[{ path, sha256, size }]`).
#[wasm_bindgen(js_name = datasetDigest)]
pub fn dataset_digest(
    #[wasm_bindgen(unchecked_param_type = "FileEntry[]")] files: JsValue,
) -> Result<String, JsValue> {
    let files: Vec<FileEntry> = from_js(files, "files")?;
    let entries: Vec<crate::manifest::FileEntry> = files
        .into_iter()
        .map(|f| crate::manifest::FileEntry {
            path: f.path,
            sha256: f.sha256,
            size: f.size,
        })
        .collect();
    crate::manifest::dataset_digest(&entries).map_err(|e| invalid_argument(&e.to_string()))
}

/// `leafHash(bytes)`: the RFC 9162 leaf hash `SHA-256(0x00 || bytes)`.
#[wasm_bindgen(js_name = leafHash)]
pub fn leaf_hash(bytes: &[u8]) -> Vec<u8> {
    merkle::leaf_hash(bytes).to_vec()
}

/// `merkleRoot(leafHashes)`: the RFC 9162 root over concatenated 32-byte leaf hashes.
#[wasm_bindgen(js_name = merkleRoot)]
pub fn merkle_root(leaf_hashes: &[u8]) -> Result<Vec<u8>, JsValue> {
    if !leaf_hashes.len().is_multiple_of(32) {
        return Err(invalid_argument(
            "leafHashes must be a multiple of 32 bytes",
        ));
    }
    let leaves: Vec<merkle::Hash> = leaf_hashes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    Ok(merkle::root_from_leaf_hashes(&leaves).to_vec())
}
