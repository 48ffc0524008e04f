//! Signed notes, checkpoints and key strings (`datapilot::checkpoint`): `open_note_bytes`,
//! `open_checkpoint`, `Checkpoint::parse`, `Verifier`/`Signer` from their strings.
//!
//! Properties: a note that opens carries only the signatures the pinned signers make for its
//! text; a parsed checkpoint writes back to the same text; any text the note rules allow,
//! signed here, opens again as itself, and as a checkpoint exactly when the checkpoint parser
//! accepts it; a key string that parses prints as a string that parses to the same key.

#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use datapilot::checkpoint::{
    open_checkpoint, open_note, open_note_bytes, sign_note, Checkpoint, Signer, Verifier,
};
use datapilot_fuzz_support::{assert_note_only_signed, signers};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<(Vec<Signer>, Vec<Verifier>)> = LazyLock::new(|| {
    let signers = signers();
    let verifiers = signers.iter().map(Signer::verifier).collect();
    (signers, verifiers)
});

fuzz_target!(|data: &[u8]| {
    let (signers, verifiers) = &*KEYS;

    if open_note_bytes(data, verifiers).is_ok() {
        assert_note_only_signed(data, signers);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((cp, note)) = open_checkpoint(text, verifiers) {
        assert!(note.verified.iter().any(|s| s.name == cp.origin));
        assert_eq!(Checkpoint::parse(&note.text).ok(), Some(cp));
    }

    let parsed = Checkpoint::parse(text);
    if let Ok(cp) = &parsed {
        // The note rules (no control characters) are checked when signing, not parsing.
        if let Ok(written) = cp.to_text() {
            assert_eq!(
                written, text,
                "a checkpoint does not write back as it was read"
            );
        }
    }

    let signer = &signers[0];
    if let Ok(note) = sign_note(text, signer) {
        let opened = open_note(&note, verifiers).expect("a note signed here opens");
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified.len(), 1);
        assert!(opened.unverified.is_empty());
        let as_checkpoint = open_checkpoint(&note, verifiers);
        let origin_is_signer = parsed.as_ref().is_ok_and(|cp| cp.origin == signer.name());
        assert_eq!(
            as_checkpoint.is_ok(),
            origin_is_signer,
            "open_checkpoint and Checkpoint::parse disagree: {as_checkpoint:?}"
        );
    }

    for line in text.lines() {
        if let Ok(v) = Verifier::from_str(line) {
            let again = Verifier::from_str(&v.to_string()).expect("a printed verifier parses");
            assert_eq!(again, v);
        }
        if let Ok(s) = Signer::from_str(line) {
            let again = Signer::from_str(&s.signer_key_string()).expect("a printed signer parses");
            assert_eq!(again.verifier(), s.verifier());
        }
    }
});
