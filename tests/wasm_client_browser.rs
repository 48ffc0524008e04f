//! The JS layer (`src/wasm`) in headless Chromium: `File`s and `FileList`-like inputs hashed by
//! the browser path, and the fetch transport's failure mode in a page.
#![cfg(target_arch = "wasm32")]

use datapilot::wasm::client::DataPilot;
use datapilot::wasm::error::is_datapilot_error;
use datapilot::wasm::hashing::{hash_files, sha256_hex};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn file(name: &str, bytes: &[u8]) -> web_sys::File {
    let parts = Array::of1(&Uint8Array::from(bytes));
    web_sys::File::new_with_u8_array_sequence(&parts, name).unwrap()
}

#[wasm_bindgen_test]
async fn files_hash_to_the_dpm1_digest() {
    let big = vec![3u8; 5 << 20];
    let entry = Object::new();
    Reflect::set(&entry, &"path".into(), &"dir/big.bin".into()).unwrap();
    Reflect::set(&entry, &"file".into(), &file("big.bin", &big)).unwrap();
    let files = Array::of2(&file("a.txt", b"alpha\n"), &entry);
    let out = hash_files(files.into(), JsValue::UNDEFINED).await.unwrap();
    let expected = datapilot::manifest::dataset_digest(&[
        datapilot::manifest::FileEntry {
            path: "a.txt".into(),
            sha256: sha256_hex(b"alpha\n"),
            size: 6,
        },
        datapilot::manifest::FileEntry {
            path: "dir/big.bin".into(),
            sha256: sha256_hex(&big),
            size: big.len() as u64,
        },
    ])
    .unwrap();
    let digest = Reflect::get(&out, &"digest".into()).unwrap();
    assert_eq!(digest.as_string().unwrap(), expected);
}

#[wasm_bindgen_test]
async fn fetch_failures_are_datapilot_errors_in_a_page() {
    let o = Object::new();
    Reflect::set(&o, &"baseUrl".into(), &"http://127.0.0.1:9".into()).unwrap();
    Reflect::set(&o, &"maxAttempts".into(), &1.into()).unwrap();
    let dp = DataPilot::new(o.into()).unwrap();
    let err = JsFuture::from(dp.get_health(JsValue::UNDEFINED).unwrap())
        .await
        .unwrap_err();
    assert!(is_datapilot_error(&err));
    assert_eq!(
        Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .unwrap(),
        "transport_error"
    );
}
