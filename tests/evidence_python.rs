//! Lock-step of the two verifiers: every bundle of the verifier-gap cases
//! (`evidence_support::gap_cases`: member order, canonical envelope, lineage completeness) is
//! run through the SDK and through the independent `tests/auditor/verify_bundle.py`, and the
//! two must pass and fail the same checks, the expected one with the expected reason.
//! `python3` is part of the project's set-up (`./x setup`): without it this test fails, it
//! never skips.
#![cfg(not(target_arch = "wasm32"))]

#[path = "evidence_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use datapilot::evidence::{checks, verify_bundle};
use support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/auditor/verify_bundle.py"
);

/// The script's verdict per check: name → (passed, reason).
fn python_verify(
    bundle: &[u8],
    dir: &std::path::Path,
    n: usize,
) -> BTreeMap<String, (bool, String)> {
    let path = dir.join(format!("case-{n}.zip"));
    std::fs::write(&path, bundle).unwrap();
    let out = match Command::new("python3")
        .arg(SCRIPT)
        .arg(&path)
        .arg(verifier().to_string())
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run python3 ({e}): the auditor verifier must be run, and Python 3 is part \
             of `./x setup`; it is not optional"
        ),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut verdicts = BTreeMap::new();
    for line in text.lines() {
        for (prefix, passed) in [("PASS ", true), ("FAIL ", false)] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let (name, reason) = rest.split_once(": ").unwrap();
                verdicts.insert(name.to_owned(), (passed, reason.to_owned()));
            }
        }
    }
    let all_passed = verdicts.values().all(|(p, _)| *p);
    assert_eq!(
        out.status.code(),
        Some(if all_passed { 0 } else { 1 }),
        "exit status of the script:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verdicts
}

#[test]
fn python_auditor_agrees_with_the_sdk_on_every_gap_case() {
    let dir = std::env::temp_dir().join(format!("dp-evidence-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (n, case) in gap_cases().into_iter().enumerate() {
        let sdk = verify_bundle(&case.bundle, &[verifier()]);
        let py = python_verify(&case.bundle, &dir, n);
        let names: Vec<&str> = py.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = checks::ALWAYS.to_vec();
        want.sort_unstable();
        assert_eq!(names, want, "{}: the script reports every check", case.what);
        for c in &sdk.checks {
            let (passed, reason) = &py[&c.name];
            assert_eq!(
                *passed,
                c.passed,
                "{}: {} is {} in the SDK ({}) but not in Python ({reason})",
                case.what,
                c.name,
                if c.passed { "PASS" } else { "FAIL" },
                c.reason
            );
        }
        if let Some((check, fragment)) = case.fails {
            let (passed, reason) = &py[check];
            assert!(!passed, "{}: {check} passed in Python", case.what);
            assert!(
                reason.contains(fragment),
                "{}: Python's {check} says {reason:?}, expected {fragment:?}",
                case.what
            );
        } else {
            assert!(sdk.ok, "{}: {sdk:#?}", case.what);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
