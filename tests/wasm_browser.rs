//! The wasm build checked in headless Chromium: the same inputs as the native suite must give
//! the same DPM-1 ids and Merkle roots (see `tests/crosscheck/mod.rs`).
#![cfg(target_arch = "wasm32")]

mod crosscheck;

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn wasm_in_chromium_matches_native_results() {
    assert_eq!(crosscheck::compute(), crosscheck::expected());
}
