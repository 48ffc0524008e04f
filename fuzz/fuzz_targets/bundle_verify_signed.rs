//! The bundle verifier past its signature checks: the input is a bundle's members as text
//! (`datapilot_fuzz_support::signed_bundle` describes the format), which this target signs
//! with the pinned keys before verifying, so mutations reach the statement, checkpoint,
//! inclusion-proof, lineage and policy checks.
//!
//! Besides a well-formed report: a bundle signed here passes the archive and signature checks
//! whenever its parts allow it, and its checkpoint passes exactly when the checkpoint parser
//! accepts the text and its origin names a pinned key.

#![no_main]

use std::sync::LazyLock;

use datapilot::checkpoint::{sign_note, Checkpoint, Signer, Verifier};
use datapilot::evidence::checks::{
    ARCHIVE_MEMBERS, ARCHIVE_SAFE, CHECKPOINT_SIGNATURE, DSSE_SIGNATURE,
};
use datapilot::evidence::verify_bundle;
use datapilot::model::evidence::members;
use datapilot_fuzz_support::{check_report, signed_bundle, signers, split_parts};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<(Vec<Signer>, Vec<Verifier>)> = LazyLock::new(|| {
    let signers = signers();
    let verifiers = signers.iter().map(Signer::verifier).collect();
    (signers, verifiers)
});

fuzz_target!(|data: &[u8]| {
    let (signers, verifiers) = &*KEYS;
    let parts = split_parts(data);
    let bundle = signed_bundle(&parts, signers);
    let report = verify_bundle(&bundle, verifiers);
    check_report(&report);
    let passed = |name: &str| report.check(name).is_some_and(|c| c.passed);

    if parts.len() <= members::ALL.len() {
        for name in [ARCHIVE_SAFE, ARCHIVE_MEMBERS, DSSE_SIGNATURE] {
            assert!(
                passed(name),
                "{name} failed on a bundle signed here: {report:?}"
            );
        }
    }

    let text = parts.get(1).and_then(|t| std::str::from_utf8(t).ok());
    let expected = text.is_some_and(|t| {
        sign_note(t, &signers[0]).is_ok()
            && Checkpoint::parse(t).is_ok_and(|cp| signers.iter().any(|s| s.name() == cp.origin))
    });
    if passed(ARCHIVE_SAFE) {
        assert_eq!(
            passed(CHECKPOINT_SIGNATURE),
            expected,
            "checkpoint check disagrees with the note and checkpoint parsers: {report:?}"
        );
    }
});
