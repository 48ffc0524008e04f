//! The JS layer (`src/wasm`) in Node: the exported functions and classes called directly,
//! without the npm wrapper (that is tested over the packed tarball in `tests/js/`).
#![cfg(target_arch = "wasm32")]

use datapilot::wasm::client::DataPilot;
use datapilot::wasm::error::is_datapilot_error;
use datapilot::wasm::hashing::{hash_blob, sha256_hex, DigestBuilder};
use datapilot::wasm::verify::{dataset_digest, leaf_hash, merkle_root};
use js_sys::{Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

#[wasm_bindgen_test]
fn digest_builder_matches_the_core() {
    let mut b = DigestBuilder::new();
    b.add_file("b/x.txt", &sha256_hex(b"x"), 1.0).unwrap();
    b.begin_file("a.txt").unwrap();
    b.update(b"hel").unwrap();
    b.update(b"lo").unwrap();
    b.end_file().unwrap();
    let out = b.finish().unwrap();
    let files = get(&out, "files");
    let expected = datapilot::manifest::dataset_digest(&[
        datapilot::manifest::FileEntry {
            path: "a.txt".into(),
            sha256: sha256_hex(b"hello"),
            size: 5,
        },
        datapilot::manifest::FileEntry {
            path: "b/x.txt".into(),
            sha256: sha256_hex(b"x"),
            size: 1,
        },
    ])
    .unwrap();
    assert_eq!(get(&out, "digest").as_string().unwrap(), expected);
    assert_eq!(dataset_digest(files).unwrap(), expected);
    // Bad paths are DataPilotErrors with code invalid_request.
    let e = b.add_file("../up", &"0".repeat(64), 1.0).unwrap_err();
    assert!(is_datapilot_error(&e));
    assert_eq!(get(&e, "code").as_string().unwrap(), "invalid_request");
    assert_eq!(get(&e, "name").as_string().unwrap(), "DataPilotError");
}

#[wasm_bindgen_test]
async fn blobs_hash_in_chunks_with_progress() {
    let data = vec![7u8; 300_000];
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(&data[..]));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).unwrap();
    let calls = js_sys::Array::new();
    let push: js_sys::Function = Reflect::get(&calls, &"push".into())
        .unwrap()
        .unchecked_into();
    let on_progress = push.bind0(&calls);
    let opts = options(&[
        ("chunkSize", 65536.into()),
        ("onProgress", on_progress.into()),
    ]);
    let out = hash_blob(blob.into(), opts).await.unwrap();
    assert_eq!(get(&out, "sha256").as_string().unwrap(), sha256_hex(&data));
    assert_eq!(get(&out, "size").as_f64().unwrap(), 300_000.0);
    assert_eq!(calls.length(), 5); // ceil(300000 / 65536)
}

#[wasm_bindgen_test]
fn merkle_exports_match_the_core() {
    let leaves: Vec<u8> = (0..5u8).flat_map(|i| leaf_hash(&[i])).collect();
    let hashes: Vec<datapilot::merkle::Hash> = (0..5u8)
        .map(|i| datapilot::merkle::leaf_hash(&[i]))
        .collect();
    assert_eq!(
        merkle_root(&leaves).unwrap(),
        datapilot::merkle::root_from_leaf_hashes(&hashes).to_vec()
    );
    assert!(merkle_root(&leaves[..31]).is_err());
}

#[wasm_bindgen_test]
async fn client_errors_are_typed_and_redacted() {
    let bad = DataPilot::new(options(&[("baseUrl", "relative".into())])).unwrap_err();
    assert!(is_datapilot_error(&bad));
    assert_eq!(get(&bad, "sent").as_string().unwrap(), "no");

    // Nothing listens on port 9 (discard): a transport error, retryable, no token in it.
    let dp = DataPilot::new(options(&[
        ("baseUrl", "http://127.0.0.1:9".into()),
        ("token", "dpt_SECRETSECRETSECRET1".into()),
        ("maxAttempts", 1.into()),
    ]))
    .unwrap();
    let err = JsFuture::from(dp.who_am_i(JsValue::UNDEFINED).unwrap())
        .await
        .unwrap_err();
    assert!(is_datapilot_error(&err));
    assert_eq!(get(&err, "kind").as_string().unwrap(), "transport");
    assert!(get(&err, "retryable").as_bool().unwrap());
    assert!(!get(&err, "message").as_string().unwrap().contains("SECRET"));

    // Lists are async iterables.
    let it = dp.list_runs(JsValue::UNDEFINED).unwrap();
    let f = Reflect::get(&it, &js_sys::Symbol::async_iterator()).unwrap();
    assert!(f.is_function());
    let same = f.unchecked_into::<js_sys::Function>().call0(&it).unwrap();
    assert!(js_sys::Object::is(&same, &it));
}
