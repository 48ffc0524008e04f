//! What the fuzz targets and the seed generator share: the tests' fixtures and keys, the
//! "parts" input format of the re-signing bundle target, and a writer of canonical bundle zips.
//!
//! Signatures are the wall a fuzzer cannot climb: a mutated bundle or note fails its signature
//! check and never reaches the parsers behind it. So besides targets that feed raw bytes to the
//! verifier (where only the first checks are reachable, and anything that passes them must be
//! exactly what a key signed), `bundle_verify_signed` takes the members as plain text and signs
//! them itself with the fixture's key, to reach every check after the signatures.

use std::io::{Cursor, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use datapilot::checkpoint::{sign_note, Signer, Verifier};
use datapilot::dsse::{sign_envelope, Envelope};
use datapilot::evidence::{Archive, Limits};
use datapilot::model::evidence::{members, Subject, PAYLOAD_TYPE};
use sha2::{Digest, Sha256};

/// The tests' bundle builder (signing key, ledger, lineage), shared so the seeds are the very
/// bundles the verifier tests start from.
#[path = "../../../tests/evidence_support/mod.rs"]
pub mod test_bundles;

/// A run bundle exported by the real server (`server/tests/upgrade.rs` keeps it to check that
/// re-exports stay byte-identical), signed by [`fixture_signer`].
pub const FIXTURE_BUNDLE: &[u8] =
    include_bytes!("../../../server/tests/fixtures/sqlite-v0.1/run-bundle.zip");
/// The signed checkpoint of the same ledger.
pub const FIXTURE_CHECKPOINT: &str =
    include_str!("../../../server/tests/fixtures/sqlite-v0.1/checkpoint.txt");
/// The seed of that ledger's key, as the server stores it (hex). A test fixture, not a secret.
const FIXTURE_KEY_HEX: &str =
    include_str!("../../../server/tests/fixtures/sqlite-v0.1/data/ledger.key");

/// The fixture ledger's origin, which is also its key's name (the checkpoint's first line).
pub fn fixture_origin() -> &'static str {
    FIXTURE_CHECKPOINT.split('\n').next().unwrap_or_default()
}

/// The key that signed [`FIXTURE_BUNDLE`] and [`FIXTURE_CHECKPOINT`].
pub fn fixture_signer() -> Signer {
    let seed: [u8; 32] = hex::decode(FIXTURE_KEY_HEX.trim())
        .expect("the fixture key is hex")
        .try_into()
        .expect("the fixture key is 32 bytes");
    Signer::from_seed(fixture_origin(), &seed).expect("the fixture origin is a key name")
}

/// The tests' key (`tests/evidence_support`), which signs the bundles they build.
pub fn test_signer() -> Signer {
    test_bundles::signer()
}

/// Every key the targets pin, each a deterministic Ed25519 signer: a signature that verifies
/// but differs from what the signer itself produces for that message would be a forgery (or
/// malleability), which is what the targets' "only what was signed passes" checks look for.
pub fn signers() -> Vec<Signer> {
    vec![fixture_signer(), test_signer()]
}

/// The verifiers of [`signers`].
pub fn verifiers() -> Vec<Verifier> {
    signers().iter().map(Signer::verifier).collect()
}

/// The separator of the parts format: unlikely inside JSON or a checkpoint, easy for a fuzzer
/// to keep intact while it mutates the parts between.
pub const PART_SEPARATOR: &[u8] = b"\n~~~~\n";

/// Splits an input of the parts format.
pub fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = find(rest, PART_SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + PART_SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// Joins parts into one input (the inverse of [`split_parts`]).
pub fn join_parts<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(PART_SEPARATOR);
        }
        out.extend_from_slice(p.as_ref());
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A bundle built from parts and signed here. The parts are, in order: the in-toto statement
/// (JSON; when it is an object without `subject`, the subjects of the members are filled in, so
/// a fuzzer need not match digests), the checkpoint's text (signed as a note by the signer
/// named like its first line, else the first signer), then the remaining members in the
/// format's order (`ledger/proofs.jsonl`, `audit.jsonl`, `lineage.json`, `policy.json`,
/// `report.html`); missing parts are empty members, extra parts extra members.
pub fn signed_bundle(parts: &[&[u8]], signers: &[Signer]) -> Vec<u8> {
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let body = part(1);
    let origin = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let signer = signers
        .iter()
        .find(|s| s.name().as_bytes() == origin)
        .unwrap_or(&signers[0]);
    let checkpoint = std::str::from_utf8(body)
        .ok()
        .and_then(|text| sign_note(text, signer).ok())
        .map_or_else(|| body.to_vec(), String::into_bytes);

    let mut bundle: Vec<(String, Vec<u8>)> = vec![(members::CHECKPOINT.into(), checkpoint)];
    for (i, name) in members::ALL[2..].iter().enumerate() {
        bundle.push(((*name).into(), part(i + 2).to_vec()));
    }
    for (i, extra) in parts.iter().enumerate().skip(members::ALL.len()) {
        bundle.push((format!("extra/{i}.txt"), extra.to_vec()));
    }

    let statement = part(0);
    let payload = match serde_json::from_slice::<serde_json::Value>(statement) {
        Ok(serde_json::Value::Object(mut object)) if !object.contains_key("subject") => {
            let mut subject: Vec<Subject> = bundle
                .iter()
                .map(|(name, bytes)| {
                    Subject::sha256(name.clone(), hex::encode(Sha256::digest(bytes)))
                })
                .collect();
            subject.sort_by(|a, b| a.name.cmp(&b.name));
            object.insert(
                "subject".into(),
                serde_json::to_value(subject).expect("subjects serialise"),
            );
            datapilot::jcs::to_canonical_vec(&object).unwrap_or_else(|_| statement.to_vec())
        }
        _ => statement.to_vec(),
    };
    let envelope = sign_envelope(PAYLOAD_TYPE, &payload, signer)
        .to_canonical_json()
        .expect("an envelope is always JSON");
    bundle.insert(0, (members::ENVELOPE.into(), envelope));
    stored_zip(&bundle)
}

/// The inverse of [`signed_bundle`] for a valid bundle: its parts, with the statement's
/// subjects and the checkpoint's signature removed (both are redone when signing).
pub fn unsigned_parts(bundle: &[u8]) -> Option<Vec<Vec<u8>>> {
    let archive = Archive::read(bundle, &Limits::default()).ok()?;
    let envelope = Envelope::from_json(archive.get(members::ENVELOPE)?).ok()?;
    let payload = B64.decode(&envelope.payload).ok()?;
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    statement.as_object_mut()?.remove("subject");
    let note = std::str::from_utf8(archive.get(members::CHECKPOINT)?).ok()?;
    let text = &note[..=note.rfind("\n\n")?];
    let mut parts = vec![
        datapilot::jcs::to_canonical_vec(&statement).ok()?,
        text.as_bytes().to_vec(),
    ];
    for name in &members::ALL[2..] {
        parts.push(archive.get(name)?.to_vec());
    }
    Some(parts)
}

/// The canonical bundle zip of `members` (in order), with stored members: the layout rules of
/// `docs/formats.md` allow stored and deflated members alike, and storing keeps the fuzzer's
/// time on the checks rather than on compression.
pub fn stored_zip(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    for (name, bytes) in members {
        w.start_file(name.as_str(), options)
            .expect("start a zip member");
        w.write_all(bytes).expect("write a zip member");
    }
    w.finish().expect("finish the zip").into_inner()
}

/// Runs a future that never waits on anything but in-memory data (the server's extractors on
/// a request whose body is already complete) to completion, without a runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // Nothing wakes a pending future here: one that is still pending after many polls would
    // never finish, and is reported as such instead of spinning until libFuzzer's timeout.
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a request future is still pending with nothing to wait for")
}

/// The request kinds of the `server_extract` target, selected by its input's first byte (modulo
/// their number); the rest of the input is the JSON body, the query string or the path.
pub const SERVER_OPS: [&str; 18] = [
    // JSON bodies, through `JsonBody::parse` and the handler's validation.
    "createDataset",
    "registerDatasetVersion",
    "recordGate",
    "updatePolicy",
    "createRun",
    "finishRun",
    "appendMetrics",
    "createToken",
    // Query strings, through `Q<T>`.
    "pageQuery",
    "ledgerEntriesQuery",
    "inclusionQuery",
    "consistencyQuery",
    "uploadQuery",
    "metricsQuery",
    "auditQuery",
    "evidenceQuery",
    // Path parameters, through `P<T>` behind an axum router.
    "runPath",
    "versionPath",
];

/// The operation an input of `server_extract` selects, and the rest of the input.
pub fn server_op(data: &[u8]) -> Option<(&'static str, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((SERVER_OPS[usize::from(first) % SERVER_OPS.len()], rest))
}

/// An input of `server_extract` for `op` (the inverse of [`server_op`]).
pub fn server_input(op: &str, payload: &[u8]) -> Vec<u8> {
    let index = SERVER_OPS
        .iter()
        .position(|o| *o == op)
        .unwrap_or_else(|| panic!("unknown server op {op}"));
    let mut out = vec![u8::try_from(index).expect("fewer than 256 ops")];
    out.extend_from_slice(payload);
    out
}

/// What every verification report must satisfy, whatever the input: every check of
/// [`checks::ALWAYS`] reported once, in order; `ok` exactly when all passed; a summary filled in
/// when `ok`.
///
/// [`checks::ALWAYS`]: datapilot::evidence::checks::ALWAYS
pub fn check_report(report: &datapilot::evidence::VerificationReport) {
    use datapilot::evidence::checks::ALWAYS;
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ALWAYS, "checks missing or out of order");
    assert_eq!(report.ok, report.checks.iter().all(|c| c.passed));
    assert_eq!(report.first_failure().is_none(), report.ok);
    for c in &report.checks {
        assert!(!c.reason.is_empty(), "check {} has no reason", c.name);
    }
    if report.ok {
        let s = &report.summary;
        assert!(
            s.scope.is_some()
                && s.origin.is_some()
                && s.tree_size.is_some()
                && s.root_hash.is_some()
                && s.exported_at.is_some()
                && s.exporter.is_some()
                && s.events.is_some()
                && s.checkpoint.is_some(),
            "a passing report with gaps in its summary: {s:?}"
        );
    }
}

/// For a bundle that verified: its envelope and checkpoint carry exactly the signatures that
/// the pinned (deterministic) signers make for their contents. Anything else that verifies was
/// signed by no one we know of: a forgery, or a malleable encoding.
pub fn assert_only_signed(bundle: &[u8], signers: &[Signer]) {
    let archive = Archive::read(bundle, &Limits::default()).expect("a verified bundle reads");
    let envelope_bytes = archive.get(members::ENVELOPE).expect("an envelope");
    let envelope = Envelope::from_json(envelope_bytes).expect("a verified envelope parses");
    let payload = B64
        .decode(&envelope.payload)
        .expect("a verified payload decodes");
    let resigned: Vec<Vec<u8>> = signers
        .iter()
        .map(|s| {
            sign_envelope(PAYLOAD_TYPE, &payload, s)
                .to_canonical_json()
                .expect("an envelope is JSON")
        })
        .collect();
    assert!(
        resigned.iter().any(|r| r == envelope_bytes),
        "a verified envelope that no pinned signer made"
    );
    let note = archive.get(members::CHECKPOINT).expect("a checkpoint");
    assert_note_only_signed(note, signers);
}

/// For a note that opened: every verified signature is the one its signer makes for the text.
pub fn assert_note_only_signed(note: &[u8], signers: &[Signer]) {
    let verifiers: Vec<Verifier> = signers.iter().map(Signer::verifier).collect();
    let opened = datapilot::checkpoint::open_note_bytes(note, &verifiers)
        .expect("a verified note opens again");
    for sig in &opened.verified {
        let signer = signers
            .iter()
            .find(|s| s.name() == sig.name && s.key_id() == sig.key_id)
            .expect("verified by a pinned key");
        assert_eq!(
            signer.sign(opened.text.as_bytes()).as_slice(),
            sig.signature.as_slice(),
            "a verified signature that {} did not make",
            sig.name
        );
    }
}
