//! Offline verification exports: evidence bundles, checkpoints, Merkle proofs, DPM-1 digests.
//!
//! All of them run on pinned keys and the bytes given, with no network. The report types are
//! the core's ([`crate::evidence::VerificationReport`]), which derive `tsify` on wasm32 so the
//! TypeScript names their fields.
//!
//! Two halves, one per wasm module of the npm package (see [`super`]):
//!
//! - feature `js-client` (the core module): the SHA-256-only exports `verifyInclusion`,
//!   `verifyConsistency`, `datasetDigest`, `leafHash`, `merkleRoot`, synchronous;
//! - feature `js-verifier` (the verifier module, loaded on first use): `verifyEvidenceBundle`,
//!   `verifyCheckpoint` and `verifyEvidenceBundleOnline` (zip, inflate, Ed25519/SHA-512, DSSE,
//!   JCS, checkpoints). They return promises, which is what the package's entries export: the
//!   entries load this module, then call these.

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[cfg(feature = "js-client")]
pub use proofs::*;
#[cfg(feature = "js-verifier")]
pub use verifier::*;

/// A checkpoint whose signature verified.
#[derive(Debug, Serialize, tsify::Tsify)]
pub struct VerifiedCheckpoint {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub tree_size: u64,
    /// Base64 root hash.
    pub root_hash: String,
    /// The trusted witnesses whose cosignatures verified (empty without a witness policy).
    pub cosigned_by: Vec<String>,
}

#[cfg(any(feature = "js-client", feature = "js-verifier"))]
fn strings(value: JsValue, what: &str) -> Result<Vec<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    super::from_js(value, what)
}

/// The core module's SHA-256-only exports (feature `js-client`).
#[cfg(feature = "js-client")]
mod proofs {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use wasm_bindgen::prelude::*;

    use super::super::error::invalid_argument;
    use super::super::{from_js, opt};
    use super::strings;
    use crate::merkle;
    use crate::model::datasets::FileEntry;

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
}

/// The verifier module's exports (feature `js-verifier`).
#[cfg(feature = "js-verifier")]
mod verifier {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use js_sys::{Function, Promise};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_futures::{future_to_promise, JsFuture};

    use super::super::error::{invalid_argument, verification_failed};
    use super::super::{from_js, opt, to_js};
    use super::{strings, VerifiedCheckpoint};
    use crate::checkpoint::{open_checkpoint, Verifier};
    use crate::evidence::online::verify_bundle_parts;
    use crate::evidence::{verify_bundle_online, OnlinePolicy, WitnessedInput};
    use crate::witness::WitnessVerifier;

    /// Parses pinned verifier key strings.
    pub(crate) fn verifiers(keys: &JsValue) -> Result<Vec<Verifier>, JsValue> {
        // Said in words here: serde-wasm-bindgen's own message for a missing array is
        // "Reflect.get called on non-object", which tells a caller nothing.
        if keys.is_undefined() || keys.is_null() {
            return Err(invalid_argument(
                "trustedKeys is required: pass { trustedKeys: ['<origin>+<hex id>+<base64 key>', ...] }, \
                 the verifier keys you pinned (listVerifierKeys() only helps bootstrap the pin)",
            ));
        }
        if !js_sys::Array::is_array(keys) {
            return Err(invalid_argument(
                "trustedKeys must be an array of verifier key strings",
            ));
        }
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

    /// The witness policy of an options object: `witnesses` (cosignature/v1 vkeys) and
    /// `witnessQuorum` (default: all of them).
    fn witness_policy(options: &JsValue) -> Result<(Vec<WitnessVerifier>, usize), JsValue> {
        let witnesses: Vec<WitnessVerifier> = strings(opt(options, "witnesses"), "witnesses")?
            .iter()
            .map(|w| {
                w.parse()
                    .map_err(|e| invalid_argument(&format!("witness {w:?}: {e}")))
            })
            .collect::<Result<_, JsValue>>()?;
        let quorum = match opt(options, "witnessQuorum").as_f64() {
            None => witnesses.len(),
            Some(k) if k >= 0.0 && k.fract() == 0.0 && k <= witnesses.len() as f64 => k as usize,
            Some(_) => {
                return Err(invalid_argument(
                    "witnessQuorum must be a whole number between 0 and the number of witnesses",
                ))
            }
        };
        Ok((witnesses, quorum))
    }

    /// A settled promise: the entries' API is async (the module itself loads on first use),
    /// and bad arguments reject rather than throw, as every promise-returning SDK call does.
    fn settled(result: Result<JsValue, JsValue>) -> Promise {
        match result {
            Ok(v) => Promise::resolve(&v),
            Err(e) => Promise::reject(&e),
        }
    }

    /// `verifyEvidenceBundle(bytes, { trustedKeys, lastCheckpoint?, consistencyProof?,
    /// witnesses?, witnessQuorum?, witnessedCheckpoint?, witnessProof? })`: every check of an
    /// evidence bundle, offline. With `witnesses`, the `witnessed` check: `witnessedCheckpoint`
    /// (required then) must be cosigned by `witnessQuorum` of them and extend the bundle's tree
    /// (`witnessProof`: the consistency proof from the bundle's size to its size). Resolves to
    /// the report even for a bad bundle (read `report.ok`); rejects only on bad arguments. The
    /// first call loads the verifier module.
    #[wasm_bindgen(js_name = verifyEvidenceBundle, unchecked_return_type = "Promise<VerificationReport>")]
    pub fn verify_evidence_bundle(
        bytes: &[u8],
        #[wasm_bindgen(unchecked_param_type = "VerifyBundleOptions")] options: JsValue,
    ) -> Promise {
        settled((|| {
            let keys = verifiers(&opt(&options, "trustedKeys"))?;
            let last = opt(&options, "lastCheckpoint").as_string();
            let proof = strings(opt(&options, "consistencyProof"), "consistencyProof")?;
            let (witnesses, quorum) = witness_policy(&options)?;
            let note = opt(&options, "witnessedCheckpoint").as_string();
            let witnessed = match (witnesses.is_empty(), note) {
                (true, None) => None,
                (false, Some(note)) => {
                    let proof = strings(opt(&options, "witnessProof"), "witnessProof")?;
                    Some(WitnessedInput::new(note, proof, witnesses).with_quorum(quorum))
                }
                (false, None) => return Err(invalid_argument(
                    "witnesses need witnessedCheckpoint: a checkpoint note with the witnesses' \
                         cosignatures at the bundle's size or later (the server's current \
                         /checkpoint), and witnessProof from the bundle's size to it; or use the \
                         client's verifyEvidenceBundle, which fetches both",
                )),
                (true, Some(_)) => {
                    return Err(invalid_argument(
                        "witnessedCheckpoint needs witnesses: the trusted witness keys whose \
                         cosignatures it must carry",
                    ))
                }
            };
            to_js(&verify_bundle_parts(bytes, &keys, last, proof, witnessed))
        })())
    }

    /// `verifyCheckpoint(note, trustedKeys, policy?)`: opens a signed checkpoint note with pinned
    /// keys; with `policy.witnesses` (C2SP cosignature/v1 vkeys) it also needs cosignatures from
    /// `policy.witnessQuorum` of them (default: all). Rejects with a `DataPilotError`
    /// (`verification_failed`) otherwise. The first call loads the verifier module.
    #[wasm_bindgen(js_name = verifyCheckpoint, unchecked_return_type = "Promise<VerifiedCheckpoint>")]
    pub fn verify_checkpoint(
        note: &str,
        #[wasm_bindgen(js_name = trustedKeys, unchecked_param_type = "string[]")]
        trusted_keys: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CheckpointPolicy")] policy: JsValue,
    ) -> Promise {
        settled((|| {
            let keys = verifiers(&trusted_keys)?;
            let (witnesses, quorum) = witness_policy(&policy)?;
            let (c, cosigned_by) = if witnesses.is_empty() {
                let (c, _) = open_checkpoint(note, &keys)
                    .map_err(|e| verification_failed(&e.to_string()))?;
                (c, Vec::new())
            } else {
                let w = crate::witness::verify_witnessed(note, &keys, &witnesses, quorum)
                    .map_err(|e| verification_failed(&e.to_string()))?;
                let names = w.cosigned_by.into_iter().map(|(n, _)| n).collect();
                (w.checkpoint, names)
            };
            to_js(&VerifiedCheckpoint {
                origin: c.origin,
                tree_size: c.tree_size,
                root_hash: B64.encode(c.root_hash),
                cosigned_by,
            })
        })())
    }

    /// `verifyEvidenceBundleOnline(bytes, options, fetchProof, fetchCheckpoint)`: the
    /// orchestration behind the client's `verifyEvidenceBundle` (the package entries add that
    /// method to `DataPilot` and pass the client's `getConsistencyProof` as `fetchProof` and its
    /// `getCheckpoint` as `fetchCheckpoint`). Verifies the bundle; with `lastCheckpoint`, reads
    /// the bundle's tree size, asks `fetchProof(from, to)` for the consistency proof from the
    /// trusted checkpoint's size to it (the `consistency` check: rollback and fork detection);
    /// with `witnesses`, takes `witnessedCheckpoint` or else the server's current checkpoint
    /// (`fetchCheckpoint()`, which carries the cosignatures the server collected) and the proof
    /// from the bundle's size to it (the `witnessed` check); then verifies again with those
    /// inputs. Not part of the public API.
    #[wasm_bindgen(js_name = verifyEvidenceBundleOnline, unchecked_return_type = "Promise<VerificationReport>")]
    pub fn verify_evidence_bundle_online(
        bytes: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "OnlineVerifyOptions")] options: JsValue,
        #[wasm_bindgen(
            js_name = fetchProof,
            unchecked_param_type = "(from: number, to: number) => Promise<string[]>"
        )]
        fetch_proof: Function,
        #[wasm_bindgen(js_name = fetchCheckpoint, unchecked_param_type = "() => Promise<string>")]
        fetch_checkpoint: Function,
    ) -> Promise {
        let decoded = (|| {
            let keys = verifiers(&opt(&options, "trustedKeys"))?;
            let (witnesses, quorum) = witness_policy(&options)?;
            let note = opt(&options, "witnessedCheckpoint").as_string();
            if witnesses.is_empty() && note.is_some() {
                return Err(invalid_argument(
                    "witnessedCheckpoint needs witnesses: the trusted witness keys whose \
                     cosignatures it must carry",
                ));
            }
            Ok::<_, JsValue>((
                keys,
                opt(&options, "lastCheckpoint").as_string(),
                witnesses,
                quorum,
                note,
            ))
        })();
        let (keys, last, witnesses, quorum, given_note) = match decoded {
            Ok(d) => d,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let mut policy = OnlinePolicy::new().with_witnesses(witnesses, quorum);
            policy.last_checkpoint = last;
            policy.witnessed_checkpoint = given_note;
            let fetch_proof = |from: u64, to: u64| {
                let fetch_proof = fetch_proof.clone();
                async move {
                    let pending = fetch_proof.call2(
                        &JsValue::UNDEFINED,
                        &JsValue::from(from as f64),
                        &JsValue::from(to as f64),
                    )?;
                    let hashes = JsFuture::from(Promise::resolve(&pending)).await?;
                    strings(hashes, "consistency proof")
                }
            };
            let fetch_note = || async move {
                let pending = fetch_checkpoint.call0(&JsValue::UNDEFINED)?;
                JsFuture::from(Promise::resolve(&pending))
                    .await?
                    .as_string()
                    .ok_or_else(|| invalid_argument("the checkpoint is not text"))
            };
            to_js(&verify_bundle_online(&bytes, &keys, policy, fetch_proof, fetch_note).await?)
        })
    }
}
