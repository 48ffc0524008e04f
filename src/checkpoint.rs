//! Signed notes and checkpoints (C2SP `signed-note` and `tlog-checkpoint`).
//!
//! A **signed note** is UTF-8 text followed by a blank line and one or more
//! signature lines:
//!
//! ```text
//! <text, ending in "\n">
//!
//! — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>
//! ```
//!
//! The signature covers exactly the text bytes (including its final newline).
//! The key id is `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, the `0x01`
//! naming the algorithm (Ed25519), so a signature line says which key made it
//! and a verifier looks up its pinned key by name and id. Keys are exchanged as
//! *verifier strings* `<name>+<8 hex key id>+<base64(0x01 || public key)>` and
//! (private, for the server's configuration) *signer strings*
//! `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>`.
//! These are the formats of Go's `golang.org/x/mod/sumdb/note`, which the
//! tests check against its published example.
//!
//! A **checkpoint** is a signed note whose text states a Merkle tree head:
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n]*
//! ```
//!
//! Verification ([`open_note`]) is strict, like Go's `note.Open`: the whole
//! note must be well formed (size and signature-count limits, UTF-8, no
//! control characters other than newline, every line after the last blank line
//! a signature line); signatures by unknown keys are ignored, a signature by a
//! known key that does not verify rejects the note, and at least one known key
//! must have signed it.
//!
//! Why not the `signed_note` crate: it implements these rules well, but every
//! parse failure is one opaque `MalformedNote` error, it pulls in a second
//! `thiserror` and `base64` major version and `rand_core`, and we need our
//! own key types anyway (DSSE signing in [`crate::dsse`] uses the same keys).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Largest note [`open_note`] accepts, in bytes (as Go's `note` package).
pub const MAX_NOTE_BYTES: usize = 1_000_000;
/// Most signature lines [`open_note`] accepts (as Go's `note` package).
pub const MAX_SIGNATURES: usize = 100;

/// The algorithm byte of Ed25519 keys in key ids and key strings.
const ALG_ED25519: u8 = 0x01;
/// The signature line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Errors reading keys, notes and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note is larger than [`MAX_NOTE_BYTES`].
    #[error("note is {size} bytes, more than the {max} allowed")]
    NoteTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// The note is not UTF-8.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than newline.
    #[error("note contains control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its byte offset.
        offset: usize,
    },
    /// The note's layout is wrong (missing blank line, missing final newline...).
    #[error("malformed note: {reason}")]
    MalformedNote {
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of the signature block is not `— <name> <base64>`.
    #[error("malformed signature line {line}: {reason}")]
    MalformedSignature {
        /// 1-based index of the line within the signature block.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key name is empty or contains whitespace or `+`.
    #[error("invalid key name {name:?}: it must be non-empty, without spaces or '+'")]
    InvalidKeyName {
        /// The name.
        name: String,
    },
    /// A verifier or signer key string is malformed.
    #[error("malformed key string: {reason}")]
    MalformedKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A key string names an algorithm other than Ed25519 (0x01).
    #[error("unsupported key algorithm 0x{alg:02x} (only Ed25519, 0x01, is supported)")]
    UnsupportedAlgorithm {
        /// The algorithm byte.
        alg: u8,
    },
    /// The key id in a key string is not the one its name and key give.
    #[error(
        "key id {claimed} of key {name:?} does not match its public key (expected {computed})"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key id in the string.
        claimed: String,
        /// The key id computed from name and key.
        computed: String,
    },
    /// A signature by a known key does not verify: the note was altered.
    #[error("signature by {name}+{key_id:08x} does not verify")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// No signature is by a known key.
    #[error("note has no signature by a known key")]
    NoVerifiedSignature,
    /// Text given to [`sign_note`] that cannot be a note's text.
    #[error("text cannot be signed as a note: {reason}")]
    InvalidText {
        /// What is wrong.
        reason: &'static str,
    },
    /// A checkpoint body is malformed.
    #[error("malformed checkpoint: {reason}")]
    MalformedCheckpoint {
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint is not signed by a known key named like its origin.
    #[error("checkpoint for origin {origin:?} is not signed by a known key of that name")]
    OriginNotSigned {
        /// The checkpoint's origin.
        origin: String,
    },
}

type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// Whether `name` can be a key name: non-empty, no Unicode whitespace, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(CheckpointError::InvalidKeyName {
            name: name.to_owned(),
        })
    }
}

/// `SHA-256(name || "\n" || 0x01 || public key)[:4]` as a big-endian integer.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Splits `<name>+<8 hex>+<base64>` into its parts and decodes the key bytes
/// (algorithm byte and 32-byte key).
fn parse_key_parts(s: &str) -> Result<(&str, u32, [u8; 32])> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(CheckpointError::MalformedKey {
            reason: "expected <name>+<key id>+<base64 key>",
        });
    };
    check_name(name)?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CheckpointError::MalformedKey {
            reason: "the key id must be 8 hex digits",
        });
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| CheckpointError::MalformedKey {
        reason: "the key id must be 8 hex digits",
    })?;
    let raw = B64
        .decode(key_b64)
        .map_err(|_| CheckpointError::MalformedKey {
            reason: "the key is not valid base64",
        })?;
    let Some((&alg, key)) = raw.split_first() else {
        return Err(CheckpointError::MalformedKey {
            reason: "the key is empty",
        });
    };
    if alg != ALG_ED25519 {
        return Err(CheckpointError::UnsupportedAlgorithm { alg });
    }
    let key: [u8; 32] = key.try_into().map_err(|_| CheckpointError::MalformedKey {
        reason: "an Ed25519 key must be 32 bytes",
    })?;
    Ok((name, id, key))
}

/// A pinned public key that verifies notes and DSSE envelopes.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// A verifier for `name` and an Ed25519 public key.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Verifier> {
        check_name(name)?;
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| CheckpointError::MalformedKey {
                reason: "not a valid Ed25519 public key",
            })?;
        Ok(Verifier {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id as an integer.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key id as 8 lowercase hex digits (also the DSSE `keyid`).
    pub fn key_id_hex(&self) -> String {
        format!("{:08x}", self.key_id)
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    /// Uses strict verification (rejects non-canonical and small-order
    /// encodings), so a signature cannot be altered and still verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok()
    }
}

impl FromStr for Verifier {
    type Err = CheckpointError;

    /// Parses a verifier string `<name>+<8 hex key id>+<base64(0x01 || key)>`.
    fn from_str(s: &str) -> Result<Verifier> {
        let (name, id, key) = parse_key_parts(s)?;
        let v = Verifier::new(name, &key)?;
        if v.key_id != id {
            return Err(CheckpointError::KeyIdMismatch {
                name: name.to_owned(),
                claimed: format!("{id:08x}"),
                computed: v.key_id_hex(),
            });
        }
        Ok(v)
    }
}

impl fmt::Display for Verifier {
    /// The verifier string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, B64.encode(raw))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// A named Ed25519 private key that signs notes and DSSE envelopes (the
/// ledger key). Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl Signer {
    /// A signer from a 32-byte Ed25519 seed (RFC 8032 "private key").
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Signer> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Signer {
            name: name.to_owned(),
            key_id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id as an integer.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key id as 8 lowercase hex digits.
    pub fn key_id_hex(&self) -> String {
        format!("{:08x}", self.key_id)
    }

    /// The matching public key, as a [`Verifier`].
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The verifier string to publish and pin.
    pub fn verifier_string(&self) -> String {
        self.verifier().to_string()
    }

    /// The C2SP signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    /// It is the secret: store it like a password.
    pub fn signer_key_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            B64.encode(raw)
        )
    }

    /// The Ed25519 signature of `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }
}

impl FromStr for Signer {
    type Err = CheckpointError;

    /// Parses a signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    fn from_str(s: &str) -> Result<Signer> {
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(CheckpointError::MalformedKey {
                reason: "a signer key starts with PRIVATE+KEY+",
            })?;
        let (name, id, seed) = parse_key_parts(rest)?;
        let signer = Signer::from_seed(name, &seed)?;
        if signer.key_id != id {
            return Err(CheckpointError::KeyIdMismatch {
                name: name.to_owned(),
                claimed: format!("{id:08x}"),
                computed: signer.key_id_hex(),
            });
        }
        Ok(signer)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes (without the key id).
    pub signature: Vec<u8>,
}

/// A note whose signatures were checked by [`open_note`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Signatures by known keys, all valid (at least one).
    pub verified: Vec<NoteSignature>,
    /// Signatures by keys the caller did not pass (not checked).
    pub unverified: Vec<NoteSignature>,
}

/// Checks that `text` can be the text of a note.
fn check_text(text: &str) -> Result<()> {
    let invalid = |reason| Err(CheckpointError::InvalidText { reason });
    if text.is_empty() {
        return invalid("it is empty");
    }
    if !text.ends_with('\n') {
        return invalid("it must end with a newline");
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return invalid("it contains a control character other than newline");
    }
    if text.len() > MAX_NOTE_BYTES {
        return invalid("it is too large");
    }
    Ok(())
}

fn signature_line(name: &str, key_id: u32, signature: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + signature.len());
    raw.extend_from_slice(&key_id.to_be_bytes());
    raw.extend_from_slice(signature);
    format!("{SIG_PREFIX}{name} {}\n", B64.encode(raw))
}

/// Signs `text` (which must end with a newline and contain no control
/// characters other than newline) and returns the signed note.
pub fn sign_note(text: &str, signer: &Signer) -> Result<String> {
    check_text(text)?;
    let sig = signer.sign(text.as_bytes());
    let mut note = String::with_capacity(text.len() + 120);
    note.push_str(text);
    note.push('\n');
    note.push_str(&signature_line(&signer.name, signer.key_id, &sig));
    Ok(note)
}

/// [`open_note`] for bytes of unknown encoding (e.g. a zip member).
pub fn open_note_bytes(note: &[u8], verifiers: &[Verifier]) -> Result<VerifiedNote> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::NoteTooLarge {
            size: note.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    let note = std::str::from_utf8(note).map_err(|_| CheckpointError::NotUtf8)?;
    open_note(note, verifiers)
}

/// Parses a signed note and checks its signatures against `verifiers`.
///
/// Fails if the note is malformed, if any signature by a known key (same
/// name and key id) does not verify, or if no known key signed it.
/// Signatures by other keys are returned unchecked in
/// [`VerifiedNote::unverified`]; repeated identical lines are reported once.
pub fn open_note(note: &str, verifiers: &[Verifier]) -> Result<VerifiedNote> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::NoteTooLarge {
            size: note.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    if let Some((offset, c)) = note.char_indices().find(|&(_, c)| c < ' ' && c != '\n') {
        return Err(CheckpointError::ControlCharacter {
            code: c as u32,
            offset,
        });
    }
    // The text ends at the last blank line; everything after it is signatures.
    let split = note.rfind("\n\n").ok_or(CheckpointError::MalformedNote {
        reason: "no blank line before the signatures",
    })?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(CheckpointError::MalformedNote {
            reason: "no signature lines",
        });
    }
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(CheckpointError::MalformedNote {
            reason: "the last signature line must end with a newline",
        });
    };

    let mut verified: Vec<NoteSignature> = Vec::new();
    let mut unverified: Vec<NoteSignature> = Vec::new();
    for (i, line) in sigs.split('\n').enumerate() {
        let line_no = i + 1;
        if line_no > MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let sig = parse_signature_line(line, line_no)?;
        match verifiers
            .iter()
            .find(|v| v.name == sig.name && v.key_id == sig.key_id)
        {
            Some(v) => {
                // One key signing twice adds nothing; check the first only.
                if verified
                    .iter()
                    .any(|s| s.name == sig.name && s.key_id == sig.key_id)
                {
                    continue;
                }
                if !v.verify(text.as_bytes(), &sig.signature) {
                    return Err(CheckpointError::InvalidSignature {
                        name: sig.name,
                        key_id: sig.key_id,
                    });
                }
                verified.push(sig);
            }
            None => {
                if !unverified.contains(&sig) {
                    unverified.push(sig);
                }
            }
        }
    }
    if verified.is_empty() {
        return Err(CheckpointError::NoVerifiedSignature);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        verified,
        unverified,
    })
}

fn parse_signature_line(line: &str, line_no: usize) -> Result<NoteSignature> {
    let bad = |reason| CheckpointError::MalformedSignature {
        line: line_no,
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| bad("it must start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| bad("expected a key name, a space and a base64 signature"))?;
    if !is_valid_key_name(name) {
        return Err(bad("invalid key name"));
    }
    if b64.is_empty() {
        return Err(bad("empty signature"));
    }
    let raw = B64
        .decode(b64)
        .map_err(|_| bad("the signature is not valid base64"))?;
    if raw.len() < 5 {
        return Err(bad("the signature is shorter than a key id and one byte"));
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        signature: raw[4..].to_vec(),
    })
}

/// A signed tree head: the log `origin`, its `tree_size` and Merkle `root_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (also the name of the key that signs it).
    pub origin: String,
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// The RFC 9162 root of the tree.
    pub root_hash: Hash,
    /// Optional extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The root hash as the note spells it: standard base64.
    pub fn root_hash_base64(&self) -> String {
        B64.encode(self.root_hash)
    }

    /// Parses a checkpoint body (a note's text).
    pub fn parse(text: &str) -> Result<Checkpoint> {
        let bad = |reason| CheckpointError::MalformedCheckpoint { reason };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("the origin line is empty"));
        }
        let size = lines
            .next()
            .ok_or_else(|| bad("missing the tree size line"))?;
        // Canonical decimal only: one spelling per size.
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad(
                "the tree size must be a decimal number without leading zeros",
            ));
        }
        let tree_size: u64 = size
            .parse()
            .map_err(|_| bad("the tree size does not fit in 64 bits"))?;
        let root_b64 = lines
            .next()
            .ok_or_else(|| bad("missing the root hash line"))?;
        let root = B64
            .decode(root_b64)
            .map_err(|_| bad("the root hash is not valid base64"))?;
        let root_hash: Hash = root
            .as_slice()
            .try_into()
            .map_err(|_| bad("the root hash must be 32 bytes"))?;
        let mut extensions = Vec::new();
        for ext in lines {
            if ext.is_empty() {
                return Err(bad("an extension line is empty"));
            }
            extensions.push(ext.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions,
        })
    }

    /// The checkpoint body: `origin\nsize\nbase64 root\n` and the extension lines.
    pub fn to_text(&self) -> Result<String> {
        let bad = |reason| CheckpointError::MalformedCheckpoint { reason };
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(bad("the origin must be one non-empty line"));
        }
        if self
            .extensions
            .iter()
            .any(|e| e.is_empty() || e.contains('\n'))
        {
            return Err(bad("each extension must be one non-empty line"));
        }
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            B64.encode(self.root_hash)
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        check_text(&text)?;
        Ok(text)
    }

    /// Signs the checkpoint as a note with `signer`.
    pub fn sign(&self, signer: &Signer) -> Result<String> {
        sign_note(&self.to_text()?, signer)
    }
}

/// Opens a signed checkpoint: [`open_note`], [`Checkpoint::parse`], and a
/// check that a key named like the origin is among the verified signers (so
/// a checkpoint of one log cannot pass as another's).
pub fn open_checkpoint(note: &str, verifiers: &[Verifier]) -> Result<(Checkpoint, VerifiedNote)> {
    let opened = open_note(note, verifiers)?;
    let checkpoint = Checkpoint::parse(&opened.text)?;
    if !opened.verified.iter().any(|s| s.name == checkpoint.origin) {
        return Err(CheckpointError::OriginNotSigned {
            origin: checkpoint.origin,
        });
    }
    Ok((checkpoint, opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published example of golang.org/x/mod/sumdb/note.
    const PN_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PN_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PN_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const PN_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n\
                           \n\
                           — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn test_signer(name: &str) -> Signer {
        Signer::from_seed(name, &[7u8; 32]).unwrap()
    }

    #[test]
    fn go_reference_example_verifies() {
        let v: Verifier = PN_VKEY.parse().unwrap();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id_hex(), "c74f20a3");
        assert_eq!(v.to_string(), PN_VKEY);
        let n = open_note(PN_NOTE, std::slice::from_ref(&v)).unwrap();
        assert_eq!(n.text, PN_TEXT);
        assert_eq!(n.verified.len(), 1);
        assert_eq!(n.verified[0].key_id, 0xc74f20a3);
        assert!(n.unverified.is_empty());
    }

    #[test]
    fn go_reference_example_signs_identically() {
        let s: Signer = PN_SKEY.parse().unwrap();
        assert_eq!(s.verifier_string(), PN_VKEY);
        assert_eq!(s.signer_key_string(), PN_SKEY);
        assert_eq!(sign_note(PN_TEXT, &s).unwrap(), PN_NOTE);
        assert!(format!("{s:?}").contains("c74f20a3"));
        assert!(!format!("{s:?}").contains("AYEKF"));
    }

    #[test]
    fn tampering_is_rejected() {
        let v: Verifier = PN_VKEY.parse().unwrap();
        let vs = [v];
        let changed_text = PN_NOTE.replacen("answer", "Answer", 1);
        assert!(matches!(
            open_note(&changed_text, &vs),
            Err(CheckpointError::InvalidSignature { .. })
        ));
        // Flip one bit of the signature.
        let mut raw = B64
            .decode("x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=")
            .unwrap();
        raw[10] ^= 1;
        let bad_sig = format!("{PN_TEXT}\n— PeterNeumann {}\n", B64.encode(&raw));
        assert!(matches!(
            open_note(&bad_sig, &vs),
            Err(CheckpointError::InvalidSignature { .. })
        ));
        // Wrong key id: the signature is not attributed to the known key.
        raw[10] ^= 1;
        raw[0] ^= 1;
        let bad_id = format!("{PN_TEXT}\n— PeterNeumann {}\n", B64.encode(&raw));
        assert_eq!(
            open_note(&bad_id, &vs),
            Err(CheckpointError::NoVerifiedSignature)
        );
        // Unknown keys only.
        let other = test_signer("Other").verifier();
        assert_eq!(
            open_note(PN_NOTE, &[other]),
            Err(CheckpointError::NoVerifiedSignature)
        );
        assert_eq!(
            open_note(PN_NOTE, &[]),
            Err(CheckpointError::NoVerifiedSignature)
        );
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let vs: [Verifier; 1] = [PN_VKEY.parse().unwrap()];
        let sig_line = PN_NOTE.rsplit_once("\n\n").unwrap().1;
        let cases: Vec<(String, &str)> = vec![
            (
                PN_NOTE.trim_end_matches('\n').to_owned(),
                "no final newline",
            ),
            (format!("{PN_NOTE}\n"), "trailing empty line"),
            (PN_TEXT.to_owned(), "no signature block"),
            (format!("{PN_TEXT}{sig_line}"), "no blank line"),
            (format!("{PN_TEXT}\n\n{sig_line}"), "two blank lines"),
            (PN_NOTE.replace("— ", "- "), "ascii dash"),
            (
                PN_NOTE.replace("— PeterNeumann ", "— PeterNeumann  "),
                "double space",
            ),
            (
                PN_NOTE.replace("— PeterNeumann ", "— PeterNeumann"),
                "no space",
            ),
            (PN_NOTE.replace("x08go", "x08g!"), "bad base64"),
            (
                format!("{PN_TEXT}\n— PeterNeumann AAAA\n"),
                "short signature",
            ),
            (format!("{PN_TEXT}\n— PeterNeumann \n"), "empty signature"),
            (PN_NOTE.replace("If you", "If\tyou"), "tab"),
            (PN_NOTE.replace("If you", "If\ryou"), "carriage return"),
            (
                format!("{}\n{PN_NOTE}", "x".repeat(MAX_NOTE_BYTES)),
                "too large",
            ),
        ];
        for (note, what) in cases {
            assert!(open_note(&note, &vs).is_err(), "{what} was accepted");
        }
        assert_eq!(
            open_note_bytes(b"\xff\n\n", &vs),
            Err(CheckpointError::NotUtf8)
        );
        let many = format!("{PN_TEXT}\n{}", sig_line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            open_note(&many, &vs),
            Err(CheckpointError::TooManySignatures {
                max: MAX_SIGNATURES
            })
        );
        // Exactly the limit, all the same valid line, is fine.
        let limit = format!("{PN_TEXT}\n{}", sig_line.repeat(MAX_SIGNATURES));
        assert_eq!(open_note(&limit, &vs).unwrap().verified.len(), 1);
    }

    #[test]
    fn unknown_signatures_are_kept_but_not_trusted() {
        let known = test_signer("datapilot.local/ledger");
        let stranger = Signer::from_seed("witness.example", &[9u8; 32]).unwrap();
        let text = "hello\n";
        let note = sign_note(text, &known).unwrap();
        let extra = sign_note(text, &stranger).unwrap();
        let extra_line = extra.rsplit_once("\n\n").unwrap().1;
        let both = format!("{note}{extra_line}{extra_line}");
        let n = open_note(&both, &[known.verifier()]).unwrap();
        assert_eq!(n.verified.len(), 1);
        assert_eq!(n.unverified.len(), 1);
        assert_eq!(n.unverified[0].name, "witness.example");
        let n = open_note(&both, &[known.verifier(), stranger.verifier()]).unwrap();
        assert_eq!(n.verified.len(), 2);
    }

    #[test]
    fn key_strings() {
        let s = test_signer("datapilot.local/ledger");
        let v: Verifier = s.verifier_string().parse().unwrap();
        assert_eq!(v, s.verifier());
        let s2: Signer = s.signer_key_string().parse().unwrap();
        assert_eq!(s2.verifier(), s.verifier());
        let vs = s.verifier_string();
        let bad_id = format!("{}+00000000+{}", s.name(), vs.rsplit('+').next().unwrap());
        assert!(matches!(
            bad_id.parse::<Verifier>(),
            Err(CheckpointError::KeyIdMismatch { .. })
        ));
        for bad in [
            "",
            "name",
            "name+c74f20a3",
            "na me+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+AQ==",
        ] {
            assert!(bad.parse::<Verifier>().is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
                .parse::<Verifier>(),
            Err(CheckpointError::UnsupportedAlgorithm { alg: 2 })
        ));
        assert!(PN_VKEY.parse::<Signer>().is_err());
        assert!(Signer::from_seed("a+b", &[0; 32]).is_err());
        assert!(Signer::from_seed("", &[0; 32]).is_err());
        assert!(Signer::from_seed("a b", &[0; 32]).is_err());
    }

    /// RFC 8032 section 7.1, TEST 1 to 3: seed -> public key, and signatures.
    #[test]
    fn rfc8032_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (seed, public, msg, sig) in cases {
            let seed: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
            let msg = hex::decode(msg).unwrap();
            let s = Signer::from_seed("rfc8032", &seed).unwrap();
            let v = s.verifier();
            assert_eq!(hex::encode(v.public_key()), public);
            assert_eq!(hex::encode(s.sign(&msg)), sig);
            let sig = hex::decode(sig).unwrap();
            assert!(v.verify(&msg, &sig));
            let mut tampered = msg.clone();
            tampered.push(0);
            assert!(!v.verify(&tampered, &sig));
            let mut bad = sig.clone();
            bad[63] ^= 0x10;
            assert!(!v.verify(&msg, &bad));
            assert!(!v.verify(&msg, &sig[..63]));
        }
    }

    #[test]
    fn checkpoint_round_trip() {
        let signer = test_signer("datapilot.local/ledger");
        let cp = Checkpoint {
            origin: "datapilot.local/ledger".into(),
            tree_size: 3,
            root_hash: crate::merkle::root_from_leaf_hashes(&[
                crate::merkle::leaf_hash(b"a"),
                crate::merkle::leaf_hash(b"b"),
                crate::merkle::leaf_hash(b"c"),
            ]),
            extensions: vec![],
        };
        let note = cp.sign(&signer).unwrap();
        let (back, n) = open_checkpoint(&note, &[signer.verifier()]).unwrap();
        assert_eq!(back, cp);
        assert_eq!(n.text, cp.to_text().unwrap());
        assert!(note.starts_with("datapilot.local/ledger\n3\n"));

        let mut with_ext = cp.clone();
        with_ext.extensions = vec!["ext one".into()];
        let text = with_ext.to_text().unwrap();
        assert!(text.ends_with("\next one\n"));
        assert_eq!(Checkpoint::parse(&text).unwrap(), with_ext);

        // A checkpoint of another origin signed by this key is refused.
        let mut other = cp.clone();
        other.origin = "elsewhere/log".into();
        let note = other.sign(&signer).unwrap();
        assert_eq!(
            open_checkpoint(&note, &[signer.verifier()]),
            Err(CheckpointError::OriginNotSigned {
                origin: "elsewhere/log".into()
            })
        );
    }

    #[test]
    fn malformed_checkpoints() {
        let root = B64.encode([0u8; 32]);
        for bad in [
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{}\n", B64.encode([0u8; 31])),
            "o\n1\nnot base64!\n".to_owned(),
            "o\n1\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?} was accepted");
        }
        let max = Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n")).unwrap();
        assert_eq!(max.tree_size, u64::MAX);
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n"))
                .unwrap()
                .tree_size,
            0
        );
    }

    #[test]
    fn sign_note_rejects_bad_text() {
        let s = test_signer("k");
        assert!(sign_note("", &s).is_err());
        assert!(sign_note("no newline", &s).is_err());
        assert!(sign_note("tab\there\n", &s).is_err());
        let note = sign_note("line one\n\nline three\n", &s).unwrap();
        // A blank line inside the text is fine: the last one splits.
        assert_eq!(
            open_note(&note, &[s.verifier()]).unwrap().text,
            "line one\n\nline three\n"
        );
    }
}
