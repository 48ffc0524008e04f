//! One ledger key signs two kinds of messages (issue 12; the argument is in docs/formats.md,
//! "One key, two domains"): C2SP checkpoint texts and DSSE pre-authentication encodings of
//! evidence statements. These sets are disjoint, so no signature made for one can be taken for
//! the other: every checkpoint text has a newline and does not start with `DSSEv1 ` (its first
//! line is the origin, a key name without whitespace); every PAE the server signs starts with
//! `DSSEv1 ` and has no newline (the payload is JCS, which writes no whitespace and escapes
//! control characters). Checked here on arbitrary origins, sizes, roots and statements, and by
//! trying each signature in the other domain.

use base64::Engine;
use datapilot::checkpoint::{is_valid_key_name, open_note, Checkpoint, Signer};
use datapilot::dsse::{pae, sign_envelope, verify_envelope, Envelope, EnvelopeSignature};
use datapilot::jcs::to_canonical_vec;
use datapilot::model::evidence::{
    Predicate, Scope, ScopeKind, Statement, Subject, PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE,
};
use proptest::prelude::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn statement(names: Vec<String>, id: String, origin: String, size: u64) -> Statement {
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: names
            .into_iter()
            .map(|n| Subject::sha256(n, "ab".repeat(32)))
            .collect(),
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            scope: Scope {
                kind: ScopeKind::Run,
                id,
            },
            exported_at: "2026-01-01T00:00:00.000Z".into(),
            exporter: "datapilot-server/0.1.0".into(),
            origin,
            tree_size: size,
            root_hash: B64.encode([7u8; 32]),
        },
    }
}

proptest! {
    #[test]
    fn checkpoint_texts_and_signed_paes_are_disjoint(
        origin in "[^\\s+]{1,40}",
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        names in proptest::collection::vec("(?s).{0,20}", 0..4),
        id in "(?s).{0,30}",
    ) {
        prop_assume!(is_valid_key_name(&origin));
        let text = Checkpoint { origin: origin.clone(), tree_size: size, root_hash: root, extensions: vec![] }
            .to_text();
        // Texts the note format refuses (control characters) are never signed.
        prop_assume!(text.is_ok());
        let text = text.unwrap();
        prop_assert!(text.contains('\n'));
        prop_assert!(!text.starts_with("DSSEv1 "));
        let payload = to_canonical_vec(&statement(names, id, origin, size % (1 << 53))).unwrap();
        let signed = pae(PAYLOAD_TYPE, &payload);
        prop_assert!(signed.starts_with(b"DSSEv1 "));
        prop_assert!(!signed.contains(&b'\n'));
    }
}

#[test]
fn a_signature_of_one_domain_is_refused_in_the_other() {
    let signer = Signer::from_seed("example.com/log", &[3; 32]).unwrap();
    let verifier = signer.verifier();
    let note = Checkpoint {
        origin: "example.com/log".into(),
        tree_size: 5,
        root_hash: [1; 32],
        extensions: vec![],
    }
    .sign(&signer)
    .unwrap();
    let (text, sig_line) = note.split_once("\n\n").unwrap();
    let note_sig = B64
        .decode(sig_line.trim_end().rsplit(' ').next().unwrap())
        .unwrap();

    // The checkpoint's signature presented as a DSSE signature over its own text.
    let forged = Envelope {
        payload: B64.encode(format!("{text}\n")),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![EnvelopeSignature {
            keyid: signer.key_id_hex(),
            sig: B64.encode(&note_sig[4..]),
        }],
    };
    assert!(verify_envelope(&forged, std::slice::from_ref(&verifier)).is_err());

    // An envelope's signature presented as a note signature over the PAE as text.
    let payload = to_canonical_vec(&statement(
        vec![],
        "run_x".into(),
        "example.com/log".into(),
        5,
    ))
    .unwrap();
    let env = sign_envelope(PAYLOAD_TYPE, &payload, &signer);
    let dsse_sig = B64.decode(&env.signatures[0].sig).unwrap();
    let pae_text = String::from_utf8(pae(PAYLOAD_TYPE, &payload)).unwrap();
    let raw = [&signer.key_id().to_be_bytes()[..], &dsse_sig].concat();
    let forged_note = format!(
        "{pae_text}\n\n\u{2014} example.com/log {}\n",
        B64.encode(raw)
    );
    assert!(open_note(&forged_note, std::slice::from_ref(&verifier)).is_err());
    // Both genuine ones verify, so the refusals above are about the domain, not the key.
    assert!(open_note(&note, std::slice::from_ref(&verifier)).is_ok());
    assert!(verify_envelope(&env, std::slice::from_ref(&verifier)).is_ok());
}
