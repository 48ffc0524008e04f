//! The ledger as C2SP tlog-tiles (issue 12): an independent reader
//! (`tests/auditor/verify_tiles.py`, Python standard library only) rebuilds the root, the
//! entries' leaf hashes, inclusion proofs and a consistency proof from tiles alone and matches
//! the signed checkpoint (and the JSON proof endpoints); the HTTP side: canonical paths only,
//! immutable caching, the roles of the JSON endpoints.

mod common;

use std::process::Command;

use common::*;

const READER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/auditor/verify_tiles.py"
);

/// `n` more ledger entries (one dataset each), a few requests at a time.
async fn grow(admin: &Api, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        let reqs = chunk.iter().map(|i| {
            admin.post(
                "/v1/datasets",
                serde_json::json!({ "name": format!("{prefix}-{i}") }),
            )
        });
        for r in futures_util::future::join_all(reqs).await {
            assert_eq!(r.status, 201, "{}", r.text());
        }
    }
}

fn read_tiles(base: &str, key: &str, old: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(READER)
        .arg(base)
        .arg(key)
        .env("DATAPILOT_TOKEN", ADMIN);
    if let Some(o) = old {
        cmd.arg(o);
    }
    let out = cmd
        .output()
        .expect("python3 (installed by ./x setup) runs the tile reader");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn an_independent_reader_rebuilds_roots_and_proofs_from_tiles_alone() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let key = verifier(&admin).await.to_string();
    grow(&admin, "a", 98).await;
    let (old_size, _, old_note) = checkpoint(&admin).await;
    assert_eq!(old_size, 100);
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-checkpoint");
    std::fs::write(&old, &old_note).unwrap();
    // Past one full tile (256 entries), into a partial second one.
    grow(&admin, "b", 200).await;
    let (size, _, note) = checkpoint(&admin).await;
    assert_eq!(size, 300);

    let (ok, out) = read_tiles(&srv.base, &key, Some(&old));
    assert!(ok, "{out}");
    for check in [
        "PASS checkpoint.signature",
        "PASS tiles.root: root of 300 entries rebuilt from 2 hash tile(s)",
        "PASS tiles.entries: 300 entries from 2 bundle(s)",
        "PASS tiles.inclusion",
        "PASS tiles.consistency: 100 -> 300",
        "log OK",
    ] {
        assert!(out.contains(check), "{check}:\n{out}");
    }

    // The reader fails closed: another log's key, or an old checkpoint of another log.
    let other = Server::start();
    let other_key = verifier(&other.client(ADMIN)).await.to_string();
    let (ok, out) = read_tiles(&srv.base, &other_key, None);
    assert!(!ok && out.contains("FAIL checkpoint.signature"), "{out}");
    let (_, _, other_note) = checkpoint(&other.client(ADMIN)).await;
    std::fs::write(&old, other_note).unwrap();
    let (ok, out) = read_tiles(&srv.base, &key, Some(&old));
    assert!(!ok && out.contains("FAIL tiles.consistency"), "{out}");

    // HTTP: the checkpoint is the JSON endpoint's; a full tile is 256 hashes, immutable.
    let cp = admin.get("/checkpoint").await;
    assert_eq!(cp.status, 200);
    assert_eq!(cp.text(), note);
    assert_eq!(cp.header("cache-control"), Some("no-store"));
    let full = admin.get("/tile/0/000").await;
    assert_eq!(full.status, 200, "{}", full.text());
    assert_eq!(full.body.len(), 256 * 32);
    assert_eq!(
        full.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let partial = admin.get("/tile/0/001.p/44").await;
    assert_eq!(partial.body.len(), 44 * 32);
    // Not there yet, or not the canonical spelling: 404 problems, never cached.
    for path in [
        "/tile/0/001.p/45",
        "/tile/0/001",
        "/tile/1/000",
        "/tile/0/1",
        "/tile/0/x000/001",
    ] {
        let r = admin.get(path).await;
        r.assert_problem(404, "not_found");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    // Hash tiles like proofs (every API role); entry bundles like the audit trail.
    let viewer = admin.with_token(&admin.token("viewer").await);
    assert_eq!(viewer.get("/tile/0/000").await.status, 200);
    viewer
        .get("/tile/entries/000")
        .await
        .assert_problem(403, "forbidden");
    srv.anon()
        .get("/tile/0/000")
        .await
        .assert_problem(401, "unauthenticated");
    let bundle = admin.get("/tile/entries/001.p/44").await;
    assert_eq!(bundle.status, 200);
    let first_len = u16::from_be_bytes([bundle.body[0], bundle.body[1]]) as usize;
    let first: serde_json::Value = serde_json::from_slice(&bundle.body[2..2 + first_len]).unwrap();
    assert_eq!(first["seq"], 256);
}
