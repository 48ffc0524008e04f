//! The bundle verifier (`datapilot::evidence::verify_bundle`) on raw bytes, with the keys of
//! the server's fixture bundle and of the tests' bundles pinned.
//!
//! Mutated bytes rarely get past the signature checks, so this target mostly covers the zip
//! and envelope layers (`bundle_verify_signed` covers the rest). What it checks: a well-formed
//! report for every input, and that a bundle which verifies carries exactly the signatures the
//! pinned signers made (nothing else may pass).

#![no_main]

use std::sync::LazyLock;

use datapilot::checkpoint::{Signer, Verifier};
use datapilot::evidence::verify_bundle;
use datapilot_fuzz_support::{assert_only_signed, check_report, signers};
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<(Vec<Signer>, Vec<Verifier>)> = LazyLock::new(|| {
    let signers = signers();
    let verifiers = signers.iter().map(Signer::verifier).collect();
    (signers, verifiers)
});

fuzz_target!(|data: &[u8]| {
    let (signers, verifiers) = &*KEYS;
    let report = verify_bundle(data, verifiers);
    check_report(&report);
    if report.ok {
        assert_only_signed(data, signers);
    }
});
