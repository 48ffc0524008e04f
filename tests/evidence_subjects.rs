//! Statement subjects that link a bundle to what it attests, and `ext/` members (issue 12):
//! the SDK verifier and the independent Python auditor (`tests/auditor/verify_bundle.py`)
//! accept and refuse the same bundles, for the same check.

mod evidence_support;

use std::process::Command;

use datapilot::evidence::{checks, verify_bundle};
use datapilot::model::evidence::{members, Statement, Subject};
use evidence_support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/auditor/verify_bundle.py"
);

/// The linked subjects of the test world's run bundle: its artifact (sha256 of its
/// `artifact.upload` event) and its input version (`dirHash` = the DPM-1 hex).
fn linked() -> Vec<Subject> {
    vec![
        Subject::sha256(format!("artifact:{ART}"), "ab".repeat(32)),
        Subject::dir_hash(version_node(), "ab".repeat(32)),
    ]
}

/// `parts` re-signed with the member subjects plus `extra` subjects.
fn resign(parts: &mut Parts, extra: Vec<Subject>) {
    parts.sign(&signer());
    let mut st: Statement = parts.statement();
    st.subject.extend(extra);
    st.subject.sort_by(|a, b| a.name.cmp(&b.name));
    parts.sign_statement(&st, &signer());
}

/// The SDK's first failed check (None: accepted) and the Python auditor's, which must agree.
fn both(what: &str, bundle: &[u8]) -> (Option<String>, String) {
    let sdk = verify_bundle(bundle, &[verifier()]);
    let first = sdk.first_failure().map(|c| c.name.clone());
    let path = std::env::temp_dir().join(format!(
        "datapilot-evidence-subjects-{}-{}.zip",
        std::process::id(),
        hex::encode(&datapilot::merkle::leaf_hash(what.as_bytes())[..6])
    ));
    std::fs::write(&path, bundle).unwrap();
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(&path)
        .arg(verifier().to_string())
        .output()
        .expect("python3 (installed by ./x setup) runs the auditor verifier");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match &first {
        None => assert!(out.status.success(), "{what}: Python rejects:\n{text}"),
        Some(check) => {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: Python accepts:\n{text}"
            );
            assert!(
                text.contains(&format!("FAIL {check}: ")),
                "{what}: Python does not fail {check}:\n{text}"
            );
        }
    }
    for c in &sdk.checks {
        let verdict = if c.passed { "PASS" } else { "FAIL" };
        assert!(
            text.contains(&format!("{verdict} {}: ", c.name)),
            "{what}: {} should be {verdict} (SDK: {}):\n{text}",
            c.name,
            c.reason
        );
    }
    let reason = sdk.first_failure().map_or_else(
        || sdk.check(checks::LINEAGE_EDGES).unwrap().reason.clone(),
        |c| c.reason.clone(),
    );
    (first, reason)
}

#[test]
fn artifacts_and_dataset_versions_are_subjects_matched_to_the_ledger() {
    let mut p = Parts::run_bundle();
    resign(&mut p, linked());
    let (failed, reason) = both("linked", &p.zip());
    assert_eq!(failed, None, "{reason}");
    assert!(
        reason.ends_with("2 artifact and dataset version subjects match the ledger"),
        "{reason}"
    );
    // The digests are the ones tools match on: the artifact file's sha256, the directory's
    // dirHash.
    let st = p.statement();
    let art = st
        .subject
        .iter()
        .find(|s| s.name.starts_with("artifact:"))
        .unwrap();
    assert_eq!(art.digest["sha256"], "ab".repeat(32));
    let ver = st
        .subject
        .iter()
        .find(|s| s.name.starts_with("dataset_version:"))
        .unwrap();
    assert_eq!(
        ver.digest["dirHash"],
        digest().trim_start_matches("sha256:")
    );
}

#[test]
fn a_wrong_missing_or_foreign_linked_subject_is_refused_by_both_verifiers() {
    let cases: Vec<(&str, Vec<Subject>, &str, &str)> = vec![
        (
            "artifact digest differs from its artifact.upload event",
            vec![
                Subject::sha256(format!("artifact:{ART}"), "cd".repeat(32)),
                Subject::dir_hash(version_node(), "ab".repeat(32)),
            ],
            checks::LINEAGE_EDGES,
            "but the proven ledger records",
        ),
        (
            "one node linked, the other not",
            vec![Subject::sha256(format!("artifact:{ART}"), "ab".repeat(32))],
            checks::LINEAGE_EDGES,
            "is not a statement subject",
        ),
        (
            "a subject that is no lineage node",
            [
                linked(),
                vec![Subject::sha256("artifact:art_elsewhere", "ab".repeat(32))],
            ]
            .concat(),
            checks::LINEAGE_EDGES,
            "is not a lineage node",
        ),
        (
            "a dataset version with a sha256 instead of a dirHash",
            vec![
                Subject::sha256(format!("artifact:{ART}"), "ab".repeat(32)),
                Subject::sha256(version_node(), "ab".repeat(32)),
            ],
            checks::STATEMENT_SUBJECTS,
            "must have exactly a dirHash digest",
        ),
        (
            "a subject of an unknown kind",
            [linked(), vec![Subject::sha256("run:x", "ab".repeat(32))]].concat(),
            checks::STATEMENT_SUBJECTS,
            "neither a member nor an artifact or dataset version",
        ),
    ];
    for (what, subjects, check, why) in cases {
        let mut p = Parts::run_bundle();
        resign(&mut p, subjects);
        let (failed, reason) = both(what, &p.zip());
        assert_eq!(failed.as_deref(), Some(check), "{what}: {reason}");
        assert!(reason.contains(why), "{what}: {reason}");
    }
}

#[test]
fn ext_members_are_signed_but_not_interpreted() {
    // Listed in the statement, after the seven, in name order: accepted, content ignored.
    let mut p = Parts::run_bundle();
    p.members
        .push(("ext/a.json".into(), b"{\"future\":true}".to_vec()));
    p.members
        .push(("ext/b/notes.txt".into(), b"anything\n".to_vec()));
    resign(&mut p, linked());
    let (failed, reason) = both("two ext members", &p.zip());
    assert_eq!(failed, None, "{reason}");
    let sdk = verify_bundle(&p.zip(), &[verifier()]);
    let members_reason = &sdk.check(checks::ARCHIVE_MEMBERS).unwrap().reason;
    assert!(
        members_reason.contains("2 ext/ member(s)"),
        "{members_reason}"
    );

    // Out of name order: the container is not the canonical one.
    let mut q = p.clone();
    q.members.swap(7, 8);
    let (failed, _) = both("ext members out of order", &q.zip());
    assert_eq!(failed.as_deref(), Some(checks::ARCHIVE_MEMBERS));

    // Present but not listed: not signed, so refused.
    let mut r = Parts::run_bundle();
    resign(&mut r, linked());
    r.members.push(("ext/unsigned.txt".into(), b"x".to_vec()));
    let (failed, reason) = both("unlisted ext member", &r.zip());
    assert_eq!(
        failed.as_deref(),
        Some(checks::STATEMENT_SUBJECTS),
        "{reason}"
    );

    // Another prefix is still an unexpected member.
    let mut s = Parts::run_bundle();
    s.members.push(("extra.txt".into(), b"x".to_vec()));
    resign(&mut s, linked());
    let (failed, _) = both("a member outside ext/", &s.zip());
    assert_eq!(failed.as_deref(), Some(checks::ARCHIVE_MEMBERS));
    assert!(members::ALL
        .iter()
        .all(|m| !m.starts_with(members::EXT_PREFIX)));
}
