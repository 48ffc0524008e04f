//! DSSE v1 envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse).
//!
//! The evidence bundle's statement is signed inside a DSSE envelope:
//!
//! ```json
//! {"payload":"<base64 payload>","payloadType":"application/vnd.in-toto+json",
//!  "signatures":[{"keyid":"<8 hex note key id>","sig":"<base64 Ed25519 signature>"}]}
//! ```
//!
//! The signature is not over the payload alone but over its *pre-authentication
//! encoding*, which binds the payload type so a payload cannot be replayed as
//! another type:
//!
//! ```text
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//! ```
//!
//! with `LEN` the byte length in ASCII decimal (no leading zeros) and `SP` one
//! space. Our envelopes are signed with the ledger key (the same
//! [`Signer`] as checkpoints) and name it by its 8-hex note key id.
//!
//! Base64 is the standard alphabet with padding; verification accepts nothing
//! else, so the envelope has one spelling.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Signer, Verifier};

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Most signatures [`verify_envelope`] looks at.
pub const MAX_SIGNATURES: usize = 16;

/// A DSSE envelope (field names as in the DSSE JSON encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload, standard base64.
    pub payload: String,
    /// The payload's media type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over `PAE(payloadType, payload bytes)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Which key signed: for our envelopes, the 8-hex note key id.
    #[serde(default)]
    pub keyid: String,
    /// The signature, standard base64.
    pub sig: String,
}

/// Errors verifying a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// A base64 field does not decode.
    #[error("envelope field {field} is not valid standard base64")]
    InvalidBase64 {
        /// The field (`payload` or `signatures[i].sig`).
        field: String,
    },
    /// The envelope has no signature.
    #[error("envelope has no signature")]
    NoSignatures,
    /// More signatures than [`MAX_SIGNATURES`].
    #[error("envelope has {count} signatures, more than the {max} allowed")]
    TooManySignatures {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A signature by a known key does not verify: payload or type altered.
    #[error("signature by key {keyid} does not verify")]
    InvalidSignature {
        /// The key id.
        keyid: String,
    },
    /// No signature is by a known key.
    #[error("envelope has no signature by a known key")]
    NoVerifiedSignature,
    /// The payload type is not the expected one.
    #[error("payload type is {found:?}, expected {expected:?}")]
    PayloadTypeMismatch {
        /// The expected type.
        expected: String,
        /// The envelope's type.
        found: String,
    },
    /// The envelope is not valid JSON of the DSSE shape.
    #[error("not a DSSE envelope: {0}")]
    Json(String),
}

/// The pre-authentication encoding that DSSE signatures cover.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` as `payload_type` with `signer`.
pub fn sign_envelope(payload_type: &str, payload: &[u8], signer: &Signer) -> Envelope {
    let sig = signer.sign(&pae(payload_type, payload));
    Envelope {
        payload: B64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: signer.key_id_hex(),
            sig: B64.encode(sig),
        }],
    }
}

/// Checks the envelope's signatures against the pinned `verifiers` and
/// returns the payload bytes.
///
/// A signature whose `keyid` is the key id of a verifier must verify with it
/// (otherwise the envelope is rejected); an empty `keyid` is tried against
/// every verifier; other key ids are ignored. At least one signature must be
/// verified. The caller still has to check [`Envelope::payload_type`] (or use
/// [`verify_envelope_of_type`]).
pub fn verify_envelope(envelope: &Envelope, verifiers: &[Verifier]) -> Result<Vec<u8>, DsseError> {
    if envelope.signatures.is_empty() {
        return Err(DsseError::NoSignatures);
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures {
            count: envelope.signatures.len(),
            max: MAX_SIGNATURES,
        });
    }
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|_| DsseError::InvalidBase64 {
            field: "payload".into(),
        })?;
    let message = pae(&envelope.payload_type, &payload);
    let mut verified = false;
    for (i, s) in envelope.signatures.iter().enumerate() {
        let candidates: Vec<&Verifier> = if s.keyid.is_empty() {
            verifiers.iter().collect()
        } else {
            verifiers
                .iter()
                .filter(|v| v.key_id_hex() == s.keyid)
                .collect()
        };
        if candidates.is_empty() {
            continue;
        }
        let sig = B64.decode(&s.sig).map_err(|_| DsseError::InvalidBase64 {
            field: format!("signatures[{i}].sig"),
        })?;
        if candidates.iter().any(|v| v.verify(&message, &sig)) {
            verified = true;
        } else if !s.keyid.is_empty() {
            return Err(DsseError::InvalidSignature {
                keyid: s.keyid.clone(),
            });
        }
    }
    if verified {
        Ok(payload)
    } else {
        Err(DsseError::NoVerifiedSignature)
    }
}

/// [`verify_envelope`], also requiring the payload type.
pub fn verify_envelope_of_type(
    envelope: &Envelope,
    payload_type: &str,
    verifiers: &[Verifier],
) -> Result<Vec<u8>, DsseError> {
    if envelope.payload_type != payload_type {
        return Err(DsseError::PayloadTypeMismatch {
            expected: payload_type.to_owned(),
            found: envelope.payload_type.clone(),
        });
    }
    verify_envelope(envelope, verifiers)
}

impl Envelope {
    /// Parses an envelope from JSON (unknown fields are rejected).
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Json(e.to_string()))
    }

    /// The envelope's RFC 8785 canonical JSON (the bytes of `evidence.dsse.json`).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, crate::jcs::JcsError> {
        crate::jcs::to_canonical_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_seed("datapilot.local/ledger", &[42u8; 32]).unwrap()
    }

    /// The example of the DSSE protocol document.
    #[test]
    fn pae_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths are bytes, not characters.
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }

    #[test]
    fn sign_and_verify() {
        let s = signer();
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let env = sign_envelope(IN_TOTO_PAYLOAD_TYPE, payload, &s);
        assert_eq!(env.signatures[0].keyid, s.key_id_hex());
        let got = verify_envelope_of_type(&env, IN_TOTO_PAYLOAD_TYPE, &[s.verifier()]).unwrap();
        assert_eq!(got, payload);

        let json = env.to_canonical_json().unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with(r#"{"payload":""#), "{text}");
        assert!(text
            .contains(r#","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":""#));
        assert_eq!(Envelope::from_json(&json).unwrap(), env);
    }

    #[test]
    fn tampering_is_rejected() {
        let s = signer();
        let vs = [s.verifier()];
        let env = sign_envelope(IN_TOTO_PAYLOAD_TYPE, b"payload", &s);

        let mut e = env.clone();
        e.payload = B64.encode(b"payloaD");
        assert!(matches!(
            verify_envelope(&e, &vs),
            Err(DsseError::InvalidSignature { .. })
        ));

        let mut e = env.clone();
        e.payload_type = "application/json".into();
        assert!(matches!(
            verify_envelope(&e, &vs),
            Err(DsseError::InvalidSignature { .. })
        ));
        assert!(matches!(
            verify_envelope_of_type(&e, IN_TOTO_PAYLOAD_TYPE, &vs),
            Err(DsseError::PayloadTypeMismatch { .. })
        ));

        let mut e = env.clone();
        let mut sig = B64.decode(&e.signatures[0].sig).unwrap();
        sig[0] ^= 1;
        e.signatures[0].sig = B64.encode(sig);
        assert!(matches!(
            verify_envelope(&e, &vs),
            Err(DsseError::InvalidSignature { .. })
        ));

        let mut e = env.clone();
        e.payload = e.payload.trim_end_matches('=').to_owned();
        assert!(matches!(
            verify_envelope(&e, &vs),
            Err(DsseError::InvalidBase64 { .. })
        ));

        let mut e = env.clone();
        e.signatures.clear();
        assert_eq!(verify_envelope(&e, &vs), Err(DsseError::NoSignatures));

        let other = Signer::from_seed("datapilot.local/ledger", &[1u8; 32]).unwrap();
        assert_eq!(
            verify_envelope(&env, &[other.verifier()]),
            Err(DsseError::NoVerifiedSignature)
        );
        assert_eq!(
            verify_envelope(&env, &[]),
            Err(DsseError::NoVerifiedSignature)
        );

        let mut e = env.clone();
        e.signatures = vec![e.signatures[0].clone(); MAX_SIGNATURES + 1];
        assert!(matches!(
            verify_envelope(&e, &vs),
            Err(DsseError::TooManySignatures { .. })
        ));
    }

    #[test]
    fn keyless_and_foreign_signatures() {
        let s = signer();
        let vs = [s.verifier()];
        let mut env = sign_envelope("t", b"p", &s);
        // Without a keyid the signature is tried against every pinned key.
        env.signatures[0].keyid.clear();
        assert_eq!(verify_envelope(&env, &vs).unwrap(), b"p");
        // A co-signature by a key we do not know is ignored.
        let stranger = Signer::from_seed("x", &[3u8; 32]).unwrap();
        let mut both = sign_envelope("t", b"p", &s);
        both.signatures
            .push(sign_envelope("t", b"p", &stranger).signatures[0].clone());
        assert_eq!(verify_envelope(&both, &vs).unwrap(), b"p");
    }

    #[test]
    fn json_shape_is_strict() {
        assert!(
            Envelope::from_json(br#"{"payload":"","payloadType":"t","signatures":[],"x":1}"#)
                .is_err()
        );
        assert!(Envelope::from_json(br#"{"payload":"","signatures":[]}"#).is_err());
        let e =
            Envelope::from_json(br#"{"payload":"","payloadType":"t","signatures":[{"sig":""}]}"#)
                .unwrap();
        assert_eq!(e.signatures[0].keyid, "");
    }
}
