//! Dataset versions of any size over real HTTP: manifests registered in parts
//! (`createManifestUpload` → `putManifestPart` → `commitManifestUpload`) and read in pages
//! (`listDatasetVersionFiles`). Runs on SQLite in cargo-test and again on PostgreSQL in the
//! server-postgres-s3 stage (byte-order paths whatever the database's collation).

mod common;

use common::*;
use datapilot::manifest::{FileEntry, Manifest};
use serde_json::{json, Value};

/// `n` synthetic files whose paths do not sort like their numbers (and include non-ASCII, so
/// byte order and a locale's collation would differ).
fn entries(seed: &str, n: usize) -> Vec<FileEntry> {
    (0..n)
        .map(|i| FileEntry {
            path: match i % 3 {
                0 => format!("b/{i}.jpg"),
                1 => format!("A/é/{i}.txt"),
                _ => format!("a_{i}"),
            },
            sha256: sha256_hex(format!("{seed}/{i}").as_bytes()),
            size: i as u64,
        })
        .collect()
}

fn to_json(files: &[FileEntry]) -> Vec<Value> {
    files
        .iter()
        .map(|e| json!({ "path": e.path, "sha256": e.sha256, "size": e.size }))
        .collect()
}

fn digest_of(files: &[FileEntry]) -> String {
    Manifest::from_entries(files.to_vec())
        .unwrap()
        .digest()
        .to_string()
}

#[tokio::test]
async fn a_manifest_in_parts_registers_the_same_version_as_one_request() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let eng = admin.with_token(&admin.token("engineer").await);
    let ds = eng.dataset("parts").await;
    let files = entries("v1", 2_500);
    let digest = digest_of(&files);
    let base = format!("/v1/datasets/{ds}/manifest-uploads");

    let r = eng
        .post(&base, json!({ "digest": digest, "note": "in parts" }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let up = r.json();
    let id = up["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("mu_"));
    assert_eq!(up["state"], "open");
    assert_eq!(up["parts"], json!([]));

    // Three parts, sent last first; part 2 is sent twice (a retry after a lost answer).
    let chunks: Vec<&[FileEntry]> = files.chunks(1_000).collect();
    for (n, chunk) in chunks.iter().enumerate().rev() {
        let r = eng
            .put(
                &format!("{base}/{id}/parts/{}", n + 1),
                json!({ "files": to_json(chunk) }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["file_count"], chunk.len());
    }
    let again = eng
        .put(
            &format!("{base}/{id}/parts/2"),
            json!({ "files": to_json(chunks[1]) }),
        )
        .await;
    assert_eq!(again.status, 200, "the same part again is a no-op");
    // The fingerprint is the SDK's, so a resuming client can compare.
    assert_eq!(
        again.json()["sha256"],
        datapilot::model::datasets::part_fingerprint(
            &chunks[1]
                .iter()
                .map(|f| serde_json::from_value(json!(f)).unwrap())
                .collect::<Vec<_>>()
        )
    );
    // A part cannot change.
    let mut other = to_json(chunks[1]);
    other[0]["size"] = json!(999_999);
    eng.put(&format!("{base}/{id}/parts/2"), json!({ "files": other }))
        .await
        .assert_problem(409, "immutable");
    // A path may appear in only one part: named in the refusal.
    let dup = eng
        .put(
            &format!("{base}/{id}/parts/4"),
            json!({ "files": to_json(&chunks[0][5..7]) }),
        )
        .await;
    dup.assert_problem(400, "validation_failed");
    assert!(
        dup.text()
            .contains(&chunks[0][5].path.replace('é', "\\u00e9"))
            || dup.text().contains(&chunks[0][5].path),
        "{}",
        dup.text()
    );
    // Bad part numbers and bad files are refused before anything is stored.
    eng.put(
        &format!("{base}/{id}/parts/0"),
        json!({ "files": to_json(chunks[0]) }),
    )
    .await
    .assert_problem(400, "validation_failed");
    eng.put(
        &format!("{base}/{id}/parts/5"),
        json!({ "files": [{ "path": "../x", "sha256": "00", "size": 1 }] }),
    )
    .await
    .assert_problem(400, "validation_failed");

    // Another principal cannot see, extend or commit someone else's upload.
    let other_eng = admin.with_token(&admin.token("engineer").await);
    other_eng
        .get(&format!("{base}/{id}"))
        .await
        .assert_problem(404, "not_found");
    other_eng
        .post(&format!("{base}/{id}/commit"), json!({}))
        .await
        .assert_problem(404, "not_found");

    // What the server holds, for a resuming client.
    let held = eng.get(&format!("{base}/{id}")).await.json();
    assert_eq!(held["file_count"], 2_500);
    let nums: Vec<u64> = held["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![1, 2, 3]);

    let c = eng.post(&format!("{base}/{id}/commit"), json!({})).await;
    assert_eq!(c.status, 201, "{}", c.text());
    let v = c.json();
    assert_eq!(v["digest"], digest);
    assert_eq!(v["file_count"], 2_500);
    assert_eq!(v["total_bytes"], (0..2_500u64).sum::<u64>());
    assert_eq!(v["note"], "in parts");
    // Committing again answers the version; the upload takes no more parts.
    let c2 = eng.post(&format!("{base}/{id}/commit"), json!({})).await;
    assert_eq!(c2.status, 200, "{}", c2.text());
    assert_eq!(c2.json()["audit_seq"], v["audit_seq"]);
    eng.put(
        &format!("{base}/{id}/parts/9"),
        json!({ "files": to_json(&files[..1]) }),
    )
    .await
    .assert_problem(409, "immutable");

    // The same files in one request: the same version, already registered.
    let one = eng
        .post(
            &format!("/v1/datasets/{ds}/versions"),
            json!({ "digest": digest, "files": to_json(&files) }),
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text());

    // Read back a page at a time: byte order, and the lines hash to the id.
    let mut got: Vec<FileEntry> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = eng
            .get(&format!(
                "/v1/datasets/{ds}/versions/{digest}/files?limit=700{q}"
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.text());
        let p = page.json();
        got.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| serde_json::from_value::<FileEntry>(f.clone()).unwrap()),
        );
        pages += 1;
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    assert_eq!(got, sorted, "pages in DPM-1 (byte) order");
    assert_eq!(digest_of(&got), digest);
    // The whole-manifest read agrees for a version this small.
    let whole = eng
        .get(&format!("/v1/datasets/{ds}/versions/{digest}/manifest"))
        .await
        .json();
    assert_eq!(whole["files"].as_array().unwrap().len(), 2_500);
    assert_eq!(whole["files"][0]["path"], json!(sorted[0].path));
    eng.get(&format!(
        "/v1/datasets/{ds}/versions/{digest}/files?cursor=%%%"
    ))
    .await
    .assert_problem(400, "bad_request");
    eng.get(&format!(
        "/v1/datasets/{ds}/versions/{digest}/files?limit=10001"
    ))
    .await
    .assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn a_commit_recomputes_the_digest_and_refuses_an_empty_upload() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("claims").await;
    let base = format!("/v1/datasets/{ds}/manifest-uploads");
    let files = entries("v2", 10);
    let wrong = digest_of(&entries("other", 10));

    let id = admin.post(&base, json!({ "digest": wrong })).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .post(&format!("{base}/{id}/commit"), json!({}))
        .await
        .assert_problem(400, "validation_failed");
    let r = admin
        .put(
            &format!("{base}/{id}/parts/1"),
            json!({ "files": to_json(&files) }),
        )
        .await;
    assert_eq!(r.status, 201);
    let c = admin.post(&format!("{base}/{id}/commit"), json!({})).await;
    c.assert_problem(422, "digest_mismatch");
    assert!(
        c.text().contains(&digest_of(&files)),
        "names the computed id: {}",
        c.text()
    );
    // Nothing was registered.
    let versions = admin
        .get(&format!("/v1/datasets/{ds}/versions"))
        .await
        .json();
    assert_eq!(versions["items"], json!([]));
    // Unknown uploads and uploads of another dataset are 404.
    admin
        .get(&format!("{base}/mu_00000000000000000000000000"))
        .await
        .assert_problem(404, "not_found");
    let ds2 = admin.dataset("claims-2").await;
    admin
        .get(&format!("/v1/datasets/{ds2}/manifest-uploads/{id}"))
        .await
        .assert_problem(404, "not_found");
    // A viewer may not start one.
    let viewer = admin.with_token(&admin.token("viewer").await);
    viewer
        .post(&base, json!({ "digest": wrong }))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn the_one_request_manifest_is_bounded_and_points_to_pages() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("big").await;
    let files = entries("big", 100_001);
    let digest = digest_of(&files);
    let base = format!("/v1/datasets/{ds}/manifest-uploads");
    let one = admin
        .post(
            &format!("/v1/datasets/{ds}/versions"),
            json!({ "digest": digest, "files": to_json(&files) }),
        )
        .await;
    one.assert_problem(400, "validation_failed");
    assert!(
        one.text().contains("createManifestUpload"),
        "{}",
        one.text()
    );
    let id = admin.post(&base, json!({ "digest": digest })).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (n, chunk) in files.chunks(50_001).enumerate() {
        let r = admin
            .put(
                &format!("{base}/{id}/parts/{}", n + 1),
                json!({ "files": to_json(chunk) }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let c = admin.post(&format!("{base}/{id}/commit"), json!({})).await;
    assert_eq!(c.status, 201, "{}", c.text());
    assert_eq!(c.json()["file_count"], 100_001);
    let m = admin
        .get(&format!("/v1/datasets/{ds}/versions/{digest}/manifest"))
        .await;
    m.assert_problem(422, "manifest_too_large");
    assert!(m.text().contains("listDatasetVersionFiles"), "{}", m.text());
    let page = admin
        .get(&format!(
            "/v1/datasets/{ds}/versions/{digest}/files?limit=10000"
        ))
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 10_000);
    assert!(page["next_cursor"].is_string());
}
