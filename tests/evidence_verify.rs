//! Offline bundle verification on bundles built in the test with the crate's own signing: the
//! untouched bundle passes; every kind of tampering fails and names the check that caught it.

#[path = "evidence_support/mod.rs"]
mod support;

use datapilot::evidence::{
    checks, verify_bundle, verify_bundle_with, verify_consistency_from, ConsistencyError,
    ConsistencyInput, Limits, VerificationReport, VerifyOptions,
};
use datapilot::model::evidence::members;
use support::*;

fn verify(bytes: &[u8]) -> VerificationReport {
    verify_bundle(bytes, &[verifier()])
}

fn assert_fails(report: &VerificationReport, check: &str, what: &str) {
    assert!(!report.ok, "{what}: accepted");
    let c = report.check(check).unwrap();
    assert!(!c.passed, "{what}: {check} passed; report: {report:#?}");
    assert!(!c.reason.is_empty());
}

#[test]
fn untouched_bundle_passes_every_check() {
    let bundle = Parts::run_bundle().zip();
    let report = verify(&bundle);
    assert!(report.ok, "{report:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, checks::ALWAYS);
    assert_eq!(
        report.summary.scope.as_deref(),
        Some(format!("run:{RUN}").as_str())
    );
    assert_eq!(report.summary.tree_size, Some(10));
    assert_eq!(report.summary.events, Some(7));
}

#[test]
fn unknown_key_is_rejected() {
    let bundle = Parts::run_bundle().zip();
    let report = verify_bundle(&bundle, &[other_signer().verifier()]);
    assert_fails(&report, checks::DSSE_SIGNATURE, "unpinned key");
    assert_fails(&report, checks::CHECKPOINT_SIGNATURE, "unpinned key");
    let report = verify_bundle(&bundle, &[]);
    assert!(!report.ok);
}

#[test]
fn statement_resigned_with_unknown_key_is_rejected() {
    let mut parts = Parts::run_bundle();
    parts.sign(&other_signer());
    let report = verify(&parts.zip());
    assert_eq!(report.first_failure().unwrap().name, checks::DSSE_SIGNATURE);
    assert_eq!(
        report.failed(),
        vec![
            checks::DSSE_SIGNATURE,
            checks::STATEMENT_FORMAT,
            checks::STATEMENT_SUBJECTS,
            checks::CHECKPOINT_MATCHES_PREDICATE,
            checks::LINEAGE_EDGES
        ]
    );
}

/// The tampering an attacker can do to a member before re-zipping.
fn tamperings(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut flipped = bytes.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    out.push(("flipped byte", flipped));
    out.push(("truncated", bytes[..bytes.len() / 2].to_vec()));
    out.push(("emptied", Vec::new()));
    let mut inserted = bytes.to_vec();
    inserted.extend_from_slice(b"{\"extra\":1}\n");
    out.push(("inserted line", inserted));
    let text = bytes.to_vec();
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    if lines.len() > 1 {
        out.push(("removed line", lines[1..].concat()));
        let mut swapped = lines.clone();
        swapped.swap(0, 1);
        out.push(("swapped lines", swapped.concat()));
    }
    out
}

#[test]
fn every_tampered_member_is_rejected_by_the_signature_or_digests() {
    let parts = Parts::run_bundle();
    for name in members::ALL {
        for (how, bytes) in tamperings(parts.get(name)) {
            let mut t = parts.clone();
            t.set(name, bytes);
            let report = verify(&t.zip());
            let expected = if name == members::ENVELOPE {
                checks::DSSE_SIGNATURE
            } else {
                checks::STATEMENT_SUBJECTS
            };
            assert_fails(&report, expected, &format!("{name} {how}"));
        }
    }
}

#[test]
fn extra_and_missing_members_are_rejected() {
    let mut t = Parts::run_bundle();
    t.set("notes.txt", b"unlisted".to_vec());
    let report = verify(&t.zip());
    assert_fails(&report, checks::ARCHIVE_MEMBERS, "extra member");
    assert_fails(&report, checks::STATEMENT_SUBJECTS, "extra member");

    // Even if the signer lists it, a member outside the format is refused.
    t.sign(&signer());
    assert_fails(
        &verify(&t.zip()),
        checks::ARCHIVE_MEMBERS,
        "extra listed member",
    );

    let mut t = Parts::run_bundle();
    t.members.retain(|(n, _)| n != members::REPORT);
    let report = verify(&t.zip());
    assert_fails(&report, checks::ARCHIVE_MEMBERS, "missing member");
    assert_fails(&report, checks::STATEMENT_SUBJECTS, "missing member");
}

/// Tampering re-signed with the pinned key (a compromised or buggy exporter): the deeper
/// checks still catch inconsistent content.
#[test]
fn deep_checks_catch_inconsistencies_even_when_signed() {
    let base = Parts::run_bundle();
    let resigned = |name: &str, bytes: Vec<u8>| {
        let mut t = base.clone();
        t.set(name, bytes);
        t.sign(&signer());
        verify(&t.zip())
    };
    let lines = |name: &str| -> Vec<Vec<u8>> {
        base.get(name)
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };

    // Swapped proofs.
    let mut p = lines(members::PROOFS);
    p.swap(0, 1);
    let r = resigned(members::PROOFS, p.concat());
    assert_eq!(
        r.failed(),
        vec![
            checks::INCLUSION_PROOFS,
            checks::LINEAGE_EDGES,
            checks::POLICY_SNAPSHOT
        ]
    );

    // A proof of the right leaf against another path.
    let mut p = lines(members::PROOFS);
    let mut proof: serde_json::Value = serde_json::from_slice(&p[2]).unwrap();
    proof["hashes"][0] = serde_json::Value::String(b64(&[0u8; 32]));
    p[2] = [
        datapilot::jcs::to_canonical_vec(&proof).unwrap(),
        b"\n".to_vec(),
    ]
    .concat();
    assert_fails(
        &resigned(members::PROOFS, p.concat()),
        checks::INCLUSION_PROOFS,
        "bad path",
    );

    // An audit event edited (its proof no longer matches).
    let audit = String::from_utf8(base.get(members::AUDIT).to_vec()).unwrap();
    let edited = audit.replacen("pii-scan", "pii-scam", 1).into_bytes();
    assert_fails(
        &resigned(members::AUDIT, edited),
        checks::INCLUSION_PROOFS,
        "edited event",
    );

    // An event and its proof removed: the edge it backed is now unbacked.
    let a = lines(members::AUDIT);
    let p = lines(members::PROOFS);
    let drop_run_create = |v: &Vec<Vec<u8>>| -> Vec<u8> {
        v.iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .flat_map(|(_, l)| l.clone())
            .collect()
    };
    let mut t = base.clone();
    t.set(members::AUDIT, drop_run_create(&a));
    t.set(members::PROOFS, drop_run_create(&p));
    t.sign(&signer());
    let r = verify(&t.zip());
    assert_eq!(r.failed(), vec![checks::LINEAGE_EDGES], "{r:#?}");

    // A lineage edge pointing at the wrong event.
    let mut l = lineage();
    l.edges[0].seq = 7;
    let r = resigned(
        members::LINEAGE,
        datapilot::jcs::to_canonical_vec(&l).unwrap(),
    );
    assert_eq!(r.failed(), vec![checks::LINEAGE_EDGES]);

    // A lineage edge to a commit the run was not built from.
    let mut l = lineage();
    for n in &mut l.nodes {
        n.id = n.id.replace(COMMIT, &"0".repeat(40));
    }
    for e in &mut l.edges {
        e.to = e.to.replace(COMMIT, &"0".repeat(40));
    }
    l.sort();
    let r = resigned(
        members::LINEAGE,
        datapilot::jcs::to_canonical_vec(&l).unwrap(),
    );
    assert_eq!(r.failed(), vec![checks::LINEAGE_EDGES]);

    // A policy that is not the one its event recorded.
    let policy = String::from_utf8(base.get(members::POLICY).to_vec()).unwrap();
    let r = resigned(
        members::POLICY,
        policy.replace("pii-scan", "nothing").into_bytes(),
    );
    assert_eq!(r.failed(), vec![checks::POLICY_SNAPSHOT]);

    // A checkpoint of another tree size (validly signed) against the predicate.
    let mut t = base.clone();
    let statement = t.statement();
    t.set(
        members::CHECKPOINT,
        signed_checkpoint(11, &signer()).into_bytes(),
    );
    let mut s = statement.clone();
    for sub in &mut s.subject {
        if sub.name == members::CHECKPOINT {
            *sub = datapilot::model::evidence::Subject::sha256(
                members::CHECKPOINT,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    t.get(members::CHECKPOINT),
                )),
            );
        }
    }
    t.sign_statement(&s, &signer());
    let r = verify(&t.zip());
    assert_fails(&r, checks::CHECKPOINT_MATCHES_PREDICATE, "other checkpoint");
    assert_fails(&r, checks::INCLUSION_PROOFS, "other checkpoint");

    // Non-canonical JSON (whitespace) in a signed member.
    let r = resigned(
        members::LINEAGE,
        [base.get(members::LINEAGE), b" "].concat(),
    );
    assert_eq!(r.failed(), vec![checks::LINEAGE_EDGES]);
}

/// Flipping any byte of the zip either fails verification or provably changes nothing that
/// is verified: the members read back byte-identical. (Two kinds of bytes can do the latter:
/// unused padding bits at the end of a deflate stream, and the writer's informational APPNOTE
/// version in "version made by", which is range-checked but not pinned so a zip-library
/// upgrade on the server does not break older verifiers.)
#[test]
fn raw_zip_byte_flips_never_pass_and_never_panic() {
    let bundle = Parts::run_bundle().zip();
    let original = datapilot::evidence::Archive::read(&bundle, &Limits::default()).unwrap();
    for i in (0..bundle.len()).step_by(3) {
        let mut b = bundle.clone();
        b[i] ^= 0x20;
        let r = verify(&b);
        if r.ok {
            let read = datapilot::evidence::Archive::read(&b, &Limits::default()).unwrap();
            assert_eq!(
                read, original,
                "byte {i} flipped changed content yet passed"
            );
        }
    }
    for len in [0, 1, 22, bundle.len() / 2, bundle.len() - 1] {
        assert!(!verify(&bundle[..len]).ok);
    }
}

#[test]
fn unsafe_archives_are_rejected_by_archive_safe() {
    let good = Parts::run_bundle().zip();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("traversal", {
            let mut t = Parts::run_bundle();
            t.set("zz/x", b"x".to_vec());
            patch(&t.zip(), b"zz/x", b"../x")
        }),
        ("absolute", {
            let mut t = Parts::run_bundle();
            t.set("zx", b"x".to_vec());
            patch(&t.zip(), b"zx", b"/x")
        }),
        ("backslash", {
            let mut t = Parts::run_bundle();
            t.set("a_b", b"x".to_vec());
            patch(&t.zip(), b"a_b", b"a\\b")
        }),
        ("duplicate", {
            let mut t = Parts::run_bundle();
            t.set("audit.jsonX", b"{}\n".to_vec());
            patch(&t.zip(), b"audit.jsonX", b"audit.jsonl")
        }),
        ("not a zip", b"definitely not a zip".to_vec()),
        ("bomb", {
            let mut t = Parts::run_bundle();
            t.set("zeros.bin", vec![0u8; 8 << 20]);
            t.zip()
        }),
    ];
    for (what, bytes) in cases {
        let r = verify(&bytes);
        assert_eq!(
            r.first_failure().unwrap().name,
            checks::ARCHIVE_SAFE,
            "{what}: {r:#?}"
        );
        // Everything after an unsafe archive is reported as not checked, never as passed.
        assert!(r.checks.iter().all(|c| !c.passed), "{what}");
    }

    // Symlinks and directories.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.add_symlink("link", "/etc/passwd", opts).unwrap();
    let r = verify(&w.finish().unwrap().into_inner());
    assert!(!r.check(checks::ARCHIVE_SAFE).unwrap().passed, "{r:#?}");

    // Encrypted flag set on every entry (local and central headers).
    let mut enc = good.clone();
    for sig in [[0x50u8, 0x4b, 0x03, 0x04], [0x50, 0x4b, 0x01, 0x02]] {
        let off = if sig[2] == 3 { 6 } else { 8 };
        let mut i = 0;
        while i + 4 <= enc.len() {
            if enc[i..i + 4] == sig {
                enc[i + off] |= 1;
            }
            i += 1;
        }
    }
    assert_eq!(
        verify(&enc).first_failure().unwrap().name,
        checks::ARCHIVE_SAFE
    );

    // Entry count limit.
    let limits = Limits::default().with_max_entries(3);
    let r = verify_bundle_with(
        &good,
        &[verifier()],
        &VerifyOptions::default().with_limits(limits),
    );
    assert!(!r.check(checks::ARCHIVE_SAFE).unwrap().passed);
}

#[test]
fn consistency_from_a_trusted_checkpoint() {
    let v = [verifier()];
    let all = leaf_hashes(11);
    let proof = |from: u64, to: usize| -> Vec<String> {
        datapilot::merkle::consistency_proof(&all[..to], from)
            .unwrap()
            .iter()
            .map(|h| b64(h))
            .collect()
    };
    let cp = |n: usize| signed_checkpoint(n, &signer());

    // Append-only growth passes, standalone and as the bundle's optional step.
    verify_consistency_from(&cp(4), &cp(10), &proof(4, 10), &v).unwrap();
    verify_consistency_from(&cp(10), &cp(10), &[] as &[String], &v).unwrap();
    let bundle = Parts::run_bundle().zip();
    let opts = VerifyOptions::default().with_consistency(ConsistencyInput {
        trusted_checkpoint: cp(4),
        proof: proof(4, 10),
    });
    let r = verify_bundle_with(&bundle, &v, &opts);
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.checks.last().unwrap().name, checks::CONSISTENCY);

    // Rollback: the bundle's tree is smaller than one we trusted.
    let err = verify_consistency_from(&cp(11), &cp(10), &[] as &[String], &v).unwrap_err();
    assert!(matches!(
        err,
        ConsistencyError::Rollback {
            trusted: 11,
            new: 10
        }
    ));
    let opts = VerifyOptions::default().with_consistency(ConsistencyInput {
        trusted_checkpoint: cp(11),
        proof: vec![],
    });
    let r = verify_bundle_with(&bundle, &v, &opts);
    assert_eq!(r.failed(), vec![checks::CONSISTENCY]);
    assert!(r
        .check(checks::CONSISTENCY)
        .unwrap()
        .reason
        .contains("rollback"));

    // Fork: same size, other root (a tree with a different event 3).
    let mut forked: Vec<_> = all[..10].to_vec();
    forked[3] = datapilot::merkle::leaf_hash(b"another history");
    let fork_cp = datapilot::checkpoint::Checkpoint {
        origin: ORIGIN.into(),
        tree_size: 10,
        root_hash: datapilot::merkle::root_from_leaf_hashes(&forked),
        extensions: vec![],
    }
    .sign(&signer())
    .unwrap();
    let err = verify_consistency_from(&fork_cp, &cp(10), &[] as &[String], &v).unwrap_err();
    assert!(matches!(err, ConsistencyError::Fork { .. }), "{err}");

    // Fork: growth without a valid proof (wrong proof, or one for another history).
    let mut bad = proof(4, 10);
    bad[0] = b64(&[1u8; 32]);
    let err = verify_consistency_from(&cp(4), &cp(10), &bad, &v).unwrap_err();
    assert!(matches!(err, ConsistencyError::Fork { .. }));
    let err = verify_consistency_from(&fork_cp, &cp(11), &proof(10, 11), &v).unwrap_err();
    assert!(matches!(err, ConsistencyError::Fork { .. }));
    let err = verify_consistency_from(&cp(4), &cp(10), &["not base64!"], &v).unwrap_err();
    assert!(matches!(err, ConsistencyError::Fork { .. }));

    // Checkpoints not signed by a pinned key.
    let foreign = signed_checkpoint(10, &other_signer());
    let err = verify_consistency_from(&cp(4), &foreign, &proof(4, 10), &v).unwrap_err();
    assert!(matches!(
        err,
        ConsistencyError::Checkpoint { which: "new", .. }
    ));
}

/// Member order, a canonical envelope and lineage completeness: each failing case would pass
/// every check without its rule (validly signed, or changed outside the signature); the
/// passing cases are what the format allows. `tests/evidence_python.rs` runs the same cases
/// through `tests/auditor/verify_bundle.py`.
#[test]
fn member_order_canonical_envelope_and_complete_lineage() {
    let cases = gap_cases();
    assert!(cases.len() > 20);
    for case in cases {
        let r = verify(&case.bundle);
        match case.fails {
            None => assert!(r.ok, "{}: {r:#?}", case.what),
            Some((check, reason)) => {
                let first = r.first_failure().unwrap_or_else(|| {
                    panic!("{}: accepted; {r:#?}", case.what);
                });
                assert_eq!(first.name, check, "{}: {r:#?}", case.what);
                assert!(
                    first.reason.contains(reason),
                    "{}: {check} says {:?}",
                    case.what,
                    first.reason
                );
                // Nothing else fails, except what is not checked because of it.
                for c in r.checks.iter().filter(|c| !c.passed && c.name != check) {
                    assert!(
                        c.reason.starts_with("not checked: "),
                        "{}: {r:#?}",
                        case.what
                    );
                }
            }
        }
    }
}

#[test]
fn member_order_reason_names_both_orders() {
    let mut t = Parts::run_bundle();
    t.members.swap(0, 6);
    let r = verify(&t.zip());
    assert_eq!(r.failed(), vec![checks::ARCHIVE_MEMBERS]);
    let reason = &r.check(checks::ARCHIVE_MEMBERS).unwrap().reason;
    assert!(
        reason.starts_with("members are out of order: report.html, "),
        "{reason}"
    );
    assert!(
        reason.ends_with(&format!(
            "the format's order is {}, then ext/ members by name",
            members::ALL.join(", ")
        )),
        "{reason}"
    );
    // A missing member is still reported as missing, not as an order problem.
    t.members.retain(|(n, _)| n != members::POLICY);
    let reason = verify(&t.zip())
        .check(checks::ARCHIVE_MEMBERS)
        .unwrap()
        .reason
        .clone();
    assert_eq!(reason, "missing policy.json");
}

#[test]
fn complete_lineage_is_reported() {
    let r = verify(&Parts::run_bundle().zip());
    let reason = &r.check(checks::LINEAGE_EDGES).unwrap().reason;
    assert_eq!(
        reason,
        "5 nodes, 4 edges each backed by its event; all 4 edges implied by 2 proven events of \
         the lineage's runs are listed; the statement links none of the 2 artifact and dataset \
         version nodes by digest (a bundle of an earlier release)"
    );
    let reason = &r.check(checks::ARCHIVE_MEMBERS).unwrap().reason;
    assert_eq!(reason, "the 7 bundle members, in order");
}
