//! Witness cosignatures (C2SP `tlog-cosignature` v1, Ed25519) and split-view evidence.
//!
//! A witness checks that each checkpoint it is shown extends the last one it cosigned for that
//! origin, then adds a note signature line over
//! `cosignature/v1\ntime <unix seconds>\n<checkpoint text>` whose payload is the 8-byte
//! big-endian timestamp and the Ed25519 signature, under the key id
//! `SHA-256(name || "\n" || 0x04 || public key)[:4]`. A client that requires `k` of its `n`
//! trusted witnesses to have cosigned a checkpoint cannot be shown a history that those
//! witnesses did not also see ([`verify_witnessed`]). Two validly signed checkpoints of one
//! origin and size with different roots are proof that the log equivocated
//! ([`split_view`]).

use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError, Signer, Verifier};

/// The C2SP signature type byte of an Ed25519 cosignature/v1 key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a witnessed checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WitnessError {
    /// The checkpoint itself does not verify with the log's keys.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A witness key string is malformed.
    #[error("witness key {key:?}: {reason}")]
    MalformedKey { key: String, reason: &'static str },
    /// A trusted witness's cosignature line does not verify.
    #[error("the cosignature of trusted witness {name} does not verify")]
    BadCosignature { name: String },
    /// Fewer trusted witnesses cosigned than the policy needs.
    #[error("{got} of the required {need} trusted witness cosignatures ({names})")]
    NotEnoughWitnesses {
        got: usize,
        need: usize,
        names: String,
    },
}

/// `SHA-256(name || "\n" || 0x04 || public key)[:4]`.
pub fn cosignature_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_COSIGNATURE_V1]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The message a cosignature/v1 signs: two header lines and the checkpoint text.
pub fn cosigned_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// A trusted witness: its name and Ed25519 public key (a C2SP vkey
/// `<name>+<8 hex key id>+<base64(0x04 || public key)>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessVerifier {
    key: Verifier,
    key_id: u32,
}

impl WitnessVerifier {
    /// A witness `name` with `public_key`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, WitnessError> {
        let key = Verifier::new(name, public_key)?;
        Ok(WitnessVerifier {
            key,
            key_id: cosignature_key_id(name, public_key),
        })
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        self.key.name()
    }

    /// The cosignature key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The vkey string.
    pub fn vkey(&self) -> String {
        let raw = [&[ALG_COSIGNATURE_V1][..], &self.key.public_key()].concat();
        format!("{}+{:08x}+{}", self.name(), self.key_id, B64.encode(raw))
    }

    /// The timestamp of this witness's valid cosignature of `checkpoint_text` in a signature
    /// payload (`timestamp || signature`), if it is one.
    fn check(&self, checkpoint_text: &str, payload: &[u8]) -> Option<u64> {
        let (ts, sig) = payload.split_first_chunk::<8>()?;
        let ts = u64::from_be_bytes(*ts);
        (sig.len() == 64
            && ts < 1 << 63
            && self.key.verify(&cosigned_message(checkpoint_text, ts), sig))
        .then_some(ts)
    }
}

impl FromStr for WitnessVerifier {
    type Err = WitnessError;

    fn from_str(s: &str) -> Result<Self, WitnessError> {
        let bad = |reason| WitnessError::MalformedKey {
            key: s.to_owned(),
            reason,
        };
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<base64 key>"));
        };
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let (alg, public) = raw.split_first().ok_or_else(|| bad("empty key"))?;
        if *alg != ALG_COSIGNATURE_V1 {
            return Err(bad("not a cosignature/v1 (0x04) key"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let v = WitnessVerifier::new(name, &public)?;
        if id.len() != 8 || format!("{:08x}", v.key_id) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(v)
    }
}

/// A witness's signing key (for test witnesses and tools; a real witness keeps its own).
#[derive(Debug)]
pub struct WitnessSigner {
    signer: Signer,
    verifier: WitnessVerifier,
}

impl WitnessSigner {
    /// The witness `name` with the Ed25519 key of `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, WitnessError> {
        let signer = Signer::from_seed(name, seed)?;
        let verifier = WitnessVerifier::new(name, &signer.verifier().public_key())?;
        Ok(WitnessSigner { signer, verifier })
    }

    /// Its public side.
    pub fn verifier(&self) -> &WitnessVerifier {
        &self.verifier
    }

    /// The cosignature line (ending in a newline) of `checkpoint_text` at `timestamp`.
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> String {
        let sig = self
            .signer
            .sign(&cosigned_message(checkpoint_text, timestamp));
        let raw = [
            &self.verifier.key_id.to_be_bytes()[..],
            &timestamp.to_be_bytes(),
            &sig,
        ]
        .concat();
        format!("\u{2014} {} {}\n", self.verifier.name(), B64.encode(raw))
    }
}

/// A checkpoint accepted under a witness policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The trusted witnesses whose cosignatures verified, with their timestamps.
    pub cosigned_by: Vec<(String, u64)>,
}

/// Opens `note` as a checkpoint signed by one of `log_keys` and cosigned by at least `k`
/// distinct `witnesses`. Cosignatures by other keys are ignored; a line that names a trusted
/// witness (name and key id) and does not verify refuses the note.
pub fn verify_witnessed(
    note: &str,
    log_keys: &[Verifier],
    witnesses: &[WitnessVerifier],
    k: usize,
) -> Result<Witnessed, WitnessError> {
    let (checkpoint, opened) = open_checkpoint(note, log_keys)?;
    let mut cosigned_by: Vec<(String, u64)> = Vec::new();
    for sig in &opened.unverified {
        let Some(w) = witnesses
            .iter()
            .find(|w| w.name() == sig.name && w.key_id == sig.key_id)
        else {
            continue;
        };
        let ts =
            w.check(&opened.text, &sig.signature)
                .ok_or_else(|| WitnessError::BadCosignature {
                    name: w.name().to_owned(),
                })?;
        if !cosigned_by.iter().any(|(n, _)| n == w.name()) {
            cosigned_by.push((w.name().to_owned(), ts));
        }
    }
    if cosigned_by.len() < k {
        return Err(WitnessError::NotEnoughWitnesses {
            got: cosigned_by.len(),
            need: k,
            names: cosigned_by
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(Witnessed {
        checkpoint,
        cosigned_by,
    })
}

/// Proof that a log equivocated: two checkpoints it signed for one size with different roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitView {
    /// The log.
    pub origin: String,
    /// The size both checkpoints claim.
    pub tree_size: u64,
    /// The two roots.
    pub roots: [[u8; 32]; 2],
}

/// Compares two checkpoints that both verify with `log_keys`: `Some` when they are of one
/// origin and size but have different roots (keep both notes: together they prove the
/// equivocation to anyone who trusts the key). Checkpoints of different sizes need a
/// consistency proof instead (`crate::evidence::verify_consistency_from`).
pub fn split_view(
    a: &str,
    b: &str,
    log_keys: &[Verifier],
) -> Result<Option<SplitView>, WitnessError> {
    let (a, _) = open_checkpoint(a, log_keys)?;
    let (b, _) = open_checkpoint(b, log_keys)?;
    if a.origin != b.origin || a.tree_size != b.tree_size || a.root_hash == b.root_hash {
        return Ok(None);
    }
    Ok(Some(SplitView {
        origin: a.origin,
        tree_size: a.tree_size,
        roots: [a.root_hash, b.root_hash],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vkeys_round_trip_and_cosignatures_verify() {
        let w = WitnessSigner::from_seed("witness.example/w1", &[5; 32]).unwrap();
        let parsed: WitnessVerifier = w.verifier().vkey().parse().unwrap();
        assert_eq!(&parsed, w.verifier());
        let log = Signer::from_seed("example.com/log", &[1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            tree_size: 3,
            root_hash: [9; 32],
            extensions: vec![],
        };
        let note = cp.sign(&log).unwrap() + &w.cosign(&cp.to_text().unwrap(), 1_700_000_000);
        let ok =
            verify_witnessed(&note, &[log.verifier()], std::slice::from_ref(&parsed), 1).unwrap();
        assert_eq!(
            ok.cosigned_by,
            vec![("witness.example/w1".into(), 1_700_000_000)]
        );
        // A cosignature with a changed timestamp does not verify.
        let line = w.cosign(&cp.to_text().unwrap(), 1_700_000_000);
        let mut raw = B64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        raw[11] ^= 1;
        let forged =
            cp.sign(&log).unwrap() + &format!("\u{2014} witness.example/w1 {}\n", B64.encode(raw));
        assert_eq!(
            verify_witnessed(&forged, &[log.verifier()], &[parsed], 1),
            Err(WitnessError::BadCosignature {
                name: "witness.example/w1".into()
            })
        );
    }
}
