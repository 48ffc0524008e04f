//! Native half of the cross-target check: see `tests/crosscheck/mod.rs`.
#![cfg(not(target_arch = "wasm32"))]

mod crosscheck;

#[test]
fn native_results_match_the_fixture() {
    let got = crosscheck::compute();
    if std::env::var_os("DATAPILOT_BLESS").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/crosscheck.json"
        );
        let text = serde_json::to_string_pretty(&got).expect("serialise") + "\n";
        std::fs::write(path, text).expect("write fixture");
        return;
    }
    assert_eq!(got, crosscheck::expected());
}

#[test]
fn names_case_is_normalised_to_nfc() {
    // The NFD spelling in the "names" case must give the same id as the NFC spelling would;
    // checked here directly so the fixture cannot silently encode a non-NFC digest.
    let nfd = datapilot::manifest::normalize_path("donne\u{301}es/e\u{301}te\u{301}.csv").unwrap();
    assert_eq!(nfd, "donn\u{e9}es/\u{e9}t\u{e9}.csv");
}
