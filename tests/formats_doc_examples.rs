//! Keeps `docs/formats.md` honest: every worked value quoted there is
//! recomputed here with the crate, and the Python verifier embedded in the
//! document is run against the same examples, with and without the
//! `cryptography` package (`python3` is required: a missing one fails).
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use datapilot::checkpoint::{open_checkpoint, Checkpoint, Signer};
use datapilot::manifest::{FileHasher, ManifestBuilder};
use datapilot::{dsse, jcs, merkle};
use serde_json::json;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/formats.md")).unwrap()
}

fn assert_in_doc(doc: &str, value: &str) {
    assert!(
        doc.contains(value),
        "docs/formats.md does not contain {value:?}"
    );
}

#[test]
fn dpm1_example() {
    let doc = doc();
    let mut b = ManifestBuilder::new();
    for (path, content) in [
        ("README.md", &b"DataPilot example\n"[..]),
        ("train/data.csv", b"id,label\n1,cat\n2,dog\n"),
        ("train/.keep", b""),
        ("donne\u{301}es/e\u{301}.csv", b"x,y\n1,2\n"), // NFD in, NFC out
    ] {
        let mut h = FileHasher::new();
        h.update(content);
        let (sha, size) = h.finish();
        b.add_file(path, &sha, size).unwrap();
    }
    let m = b.finish().unwrap();
    assert_eq!(
        m.digest(),
        "sha256:afe734752faaa535f81c97db93a1cd2d5a7bbc8984872803a09287cb9d6ff8f3"
    );
    assert_eq!(m.total_bytes(), 47);
    assert_in_doc(&doc, m.digest());
    assert_in_doc(&doc, &format!("```text\n{}```", m.digest_input()));
}

fn events() -> Vec<serde_json::Value> {
    let actor =
        json!({"kind": "token", "id": "tok_01JDX3M6Y8K2Q9W4E7R5T1V0BZ", "role": "engineer"});
    vec![
        json!({"v": 1, "seq": 0, "time": "2026-11-27T03:38:50.123Z",
               "actor": {"kind": "system", "id": "system", "role": "system"},
               "action": "ledger.init", "subject": "ledger:datapilot.local/ledger",
               "data": {"origin": "datapilot.local/ledger"}}),
        json!({"v": 1, "seq": 1, "time": "2026-11-27T03:39:02.481Z", "actor": actor,
               "action": "dataset.create", "subject": "dataset:ds_01JDX3N0A4B7C2D5E8F1G3H6J9",
               "data": {"name": "cats"}}),
        json!({"v": 1, "seq": 2, "time": "2026-11-27T03:40:15.007Z", "actor": actor,
               "action": "dataset_version.register",
               "subject": "dataset_version:ds_01JDX3N0A4B7C2D5E8F1G3H6J9@sha256:afe734752faaa535f81c97db93a1cd2d5a7bbc8984872803a09287cb9d6ff8f3",
               "data": {"file_count": 4, "total_bytes": 47}}),
    ]
}

fn tree() -> (Vec<merkle::Hash>, merkle::Hash) {
    let doc = doc();
    let mut hashes = Vec::new();
    for (i, e) in events().iter().enumerate() {
        let bytes = jcs::to_canonical_string(e).unwrap();
        assert_in_doc(&doc, &format!("d{i} = {bytes}\n"));
        hashes.push(merkle::leaf_hash(bytes.as_bytes()));
    }
    let root = merkle::root_from_leaf_hashes(&hashes);
    (hashes, root)
}

#[test]
fn merkle_example() {
    let doc = doc();
    let (h, root) = tree();
    for (i, leaf) in h.iter().enumerate() {
        assert_in_doc(
            &doc,
            &format!("h{i}   = SHA-256(00 || d{i})   = {}", hex::encode(leaf)),
        );
    }
    let h01 = merkle::node_hash(&h[0], &h[1]);
    assert_in_doc(&doc, &hex::encode(h01));
    assert_eq!(merkle::node_hash(&h01, &h[2]), root);
    assert_in_doc(
        &doc,
        &format!("root = SHA-256(01||h01||h2)= {}", hex::encode(root)),
    );
    assert_eq!(merkle::inclusion_proof(&h, 0).unwrap(), vec![h[1], h[2]]);
    assert_eq!(merkle::inclusion_proof(&h, 1).unwrap(), vec![h[0], h[2]]);
    assert_eq!(merkle::inclusion_proof(&h, 2).unwrap(), vec![h01]);
}

#[test]
fn checkpoint_example() {
    let doc = doc();
    let (_, root) = tree();
    let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
    let signer = Signer::from_seed("datapilot.local/ledger", &seed).unwrap();
    assert_in_doc(&doc, &format!("seed (hex)     {}", hex::encode(seed)));
    assert_in_doc(
        &doc,
        &format!(
            "public key     {}",
            hex::encode(signer.verifier().public_key())
        ),
    );
    assert_in_doc(
        &doc,
        &format!("verifier       {}", signer.verifier_string()),
    );
    assert_in_doc(
        &doc,
        &format!("signer         {}", signer.signer_key_string()),
    );
    let cp = Checkpoint {
        origin: "datapilot.local/ledger".into(),
        tree_size: 3,
        root_hash: root,
        extensions: vec![],
    };
    let note = cp.sign(&signer).unwrap();
    assert_in_doc(&doc, &format!("```text\n{note}```"));
    let text = cp.to_text().unwrap();
    assert_eq!(text.len(), 70);
    assert_in_doc(&doc, &hex::encode(signer.sign(text.as_bytes())));
    let verifier = signer.verifier_string().parse().unwrap();
    let (back, _) = open_checkpoint(&note, &[verifier]).unwrap();
    assert_eq!(back, cp);
    assert_eq!(
        dsse::pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

/// Runs the Python of `docs/formats.md` section 8; with `pure_ed25519` the `cryptography`
/// package is made unimportable, so its pure-Python Ed25519 verifies the checkpoint.
fn run_doc_python(script: &str, pure_ed25519: bool) -> String {
    let prelude = if pure_ed25519 {
        "import sys; sys.modules['cryptography'] = None\n"
    } else {
        ""
    };
    let child = Command::new("python3")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run python3 ({e}): the Python of docs/formats.md must be run, and Python 3 \
             is part of the project's set-up (./x setup installs it)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{prelude}{script}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python verifier (pure_ed25519={pure_ed25519}) failed:\n{text}"
    );
    text
}

#[test]
fn python_verifier_in_doc_runs() {
    let doc = doc();
    let start = doc.find("```python\n").expect("python block") + "```python\n".len();
    let end = start + doc[start..].find("```").expect("end of python block");
    let script = &doc[start..end];
    assert!(
        !script.contains("except ImportError:\n        print"),
        "the doc's Python must not skip a check when a package is missing"
    );
    for pure in [false, true] {
        let text = run_doc_python(script, pure);
        assert!(text.contains("all worked examples verified"), "{text}");
        assert!(text.contains("checkpoint signature verified"), "{text}");
        if pure {
            assert!(text.contains("Ed25519: pure-Python"), "{text}");
        }
    }
}

#[test]
fn doc_names_every_check_in_order_and_the_auditor_script() {
    use datapilot::evidence::checks;
    let doc = doc();
    let section = &doc[doc
        .find("### Verification algorithm")
        .expect("algorithm section")..];
    let mut at = 0;
    for name in checks::ALWAYS.iter().chain([&checks::CONSISTENCY]) {
        let needle = format!("**`{name}`**");
        let found = section[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("check {needle} missing or out of order"));
        at += found + needle.len();
    }
    assert_in_doc(&doc, "tests/auditor/verify_bundle.py");
    for action in [
        "ledger.init",
        "dataset.create",
        "dataset_version.register",
        "gate.record",
        "policy.update",
        "run.create",
        "run.finish",
        "metrics.append",
        "artifact.upload",
        "token.create",
        "token.revoke",
    ] {
        assert_in_doc(&doc, &format!("| `{action}` |"));
    }
}

/// The verification algorithm states what the verifiers check (and no longer what they
/// used not to): member order, a canonical envelope, lineage completeness.
#[test]
fn doc_states_member_order_canonical_envelope_and_lineage_completeness() {
    let doc = doc();
    // Compared with line breaks and indentation collapsed to one space.
    let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let section = flat(
        &doc[doc
            .find("### Verification algorithm")
            .expect("algorithm section")..],
    );
    for stale in [
        "Their order is not checked",
        "need not be canonical",
        "lists *every*",
    ] {
        assert!(!section.contains(stale), "stale rule in the doc: {stale:?}");
    }
    let order = datapilot::model::evidence::members::ALL
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for rule in [
        "and the members appear in the table's order",
        order.as_str(),
        "**`dsse.signature`**: `evidence.dsse.json` is canonical JSON",
        "Then completeness: for every proven event whose `subject` is a",
        "**when the scope node is one of its two ends**",
        "Completeness is relative to the slice",
    ] {
        assert!(section.contains(rule), "the doc does not say {rule:?}");
    }
}
