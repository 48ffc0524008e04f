//! The JavaScript boundary: the only module that knows about wasm-bindgen and JS values.
//!
//! Every export here is thin: decode the JS input, call the target-independent core, encode the
//! output. Logic lives in the core modules so it is tested natively with `cargo test`.

use wasm_bindgen::prelude::wasm_bindgen;

/// The SDK version, as published in the npm package.
#[wasm_bindgen(js_name = sdkVersion)]
pub fn sdk_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
