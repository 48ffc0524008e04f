//! Upgrades: a data directory written by an earlier release still opens, keeps its ledger and
//! verifies. `fixtures/sqlite-v0.1/` was written by the server at commit 60dcb5f (schema
//! version 3, before the storage layer was split into a domain layer over SQLite/PostgreSQL
//! repositories) with `make_fixture` below. The upgrade follows docs/operations.md: `migrate
//! --dry-run`, `migrate`, `verify`, start; `verify` again after new writes.

mod common;

use common::*;
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sqlite-v0.1");

/// Copy a fixture directory (files and one level of blob subdirectories) to `dest`.
fn copy_dir(src: &std::path::Path, dest: &std::path::Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dest.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Writes the fixture with the server built from this checkout (run by hand on the old
/// release: `cargo test -p datapilot-server --test upgrade -- --ignored make_fixture`).
#[tokio::test]
#[ignore]
async fn make_fixture() {
    let out = std::path::PathBuf::from(std::env::var("FIXTURE_OUT").expect("FIXTURE_OUT"));
    let dir = out.join("data");
    let server = Server::start_in(&dir, &["--origin", "fixture.example/ledger"]);
    let admin = server.client(ADMIN);
    let ds = admin.dataset("fixture-images").await;
    let digest = admin.version(&ds, "fixture").await;
    let r = admin
        .post(
            &format!("/v1/datasets/{ds}/versions/{digest}/gates"),
            json!({ "gate": "schema", "status": "passed", "details": { "rows": "3" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (run, run_token) = admin.run(&[(&ds, &digest)]).await;
    let rt = admin.with_token(&run_token);
    let r = rt
        .post_idem(
            &format!("/v1/runs/{run}/metrics"),
            "fixture-metrics-1",
            json!({ "points": [ { "name": "loss", "step": 1, "value": 0.5 },
                                { "name": "loss", "step": 2, "value": 0.25, "time": "2026-01-01T00:00:00.000Z" } ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bytes = b"model weights v1".to_vec();
    let r = rt
        .upload(&run, "model.bin", &bytes, &sha256_hex(&bytes))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let out_digest = admin.version(&ds, "fixture-out").await;
    let r = rt
        .post(
            &format!("/v1/runs/{run}/finish"),
            json!({ "status": "succeeded", "outputs": [ { "dataset_id": ds, "digest": out_digest } ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (size, _, note) = checkpoint(&admin).await;
    let bundle = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(bundle.status, 200);
    std::fs::write(out.join("checkpoint.txt"), note).unwrap();
    std::fs::write(out.join("run-bundle.zip"), &bundle.body).unwrap();
    std::fs::write(
        out.join("ids.json"),
        serde_json::to_vec_pretty(&json!({ "dataset": ds, "digest": digest, "run": run,
            "output_digest": out_digest, "tree_size": size, "admin": ADMIN }))
        .unwrap(),
    )
    .unwrap();
}

/// The fixture's data directory opens under this build: migrations apply, the ledger and its
/// key are accepted, the old checkpoint is a prefix of the new log, the run's evidence bundle
/// at the old tree size has the same members as the one the old release exported (both
/// verify; the new statement also links artifacts and dataset versions), and new writes
/// extend the same ledger.
#[tokio::test]
async fn a_data_directory_of_the_previous_release_opens_and_verifies() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    copy_dir(&std::path::Path::new(FIXTURE).join("data"), &dir);
    // git keeps no file modes: the key must be private again, as the server demands.
    std::fs::set_permissions(
        dir.join("ledger.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let ids: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{FIXTURE}/ids.json")).unwrap()).unwrap();
    let old_note = std::fs::read_to_string(format!("{FIXTURE}/checkpoint.txt")).unwrap();
    let old_bundle = std::fs::read(format!("{FIXTURE}/run-bundle.zip")).unwrap();
    let s = |k: &str| ids[k].as_str().unwrap().to_string();
    let old_size = ids["tree_size"].as_u64().unwrap();

    // The documented procedure (docs/operations.md): dry run, migrate, verify, start.
    let (code, out, err) = ops(&["migrate", "--dry-run"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("schema is at version 3; this build would apply migration(s) 4, "),
        "{out}"
    );
    let (code, _, err) = ops(&["verify"], &dir);
    assert_eq!(code, 2, "verify never migrates: {err}");
    assert!(
        err.contains("run `datapilot-server migrate` first"),
        "{err}"
    );
    let (code, out, err) = ops(&["migrate"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("went from version 3 to"), "{out}");
    let (code, out, err) = ops(&["verify"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all verified"), "{out}");
    assert!(out.contains(&format!("{old_size} ledger entries")), "{out}");

    let srv = Server::start_in(&dir, &["--origin", "fixture.example/ledger"]);
    let admin = srv.client(ADMIN);
    let v = verifier(&admin).await;
    // Reads of what the old release wrote.
    let run = admin.get(&format!("/v1/runs/{}", s("run"))).await;
    assert_eq!(run.status, 200, "{}", run.text());
    assert_eq!(run.json()["status"], "succeeded");
    let m = admin
        .get(&format!(
            "/v1/datasets/{}/versions/{}/manifest",
            s("dataset"),
            s("digest")
        ))
        .await;
    assert_eq!(m.json()["files"].as_array().unwrap().len(), 3);
    // The same evidence at the old size: every ledger-derived member byte for byte. Not the
    // envelope (this release's statement also links the run's artifacts and dataset versions
    // by digest, issue 12) and not report.html (it gained the lineage picture and metric
    // curves, issue 13): both are this release's rendering of the same ledger. The old
    // release's bundle still verifies.
    let again = admin
        .get(&format!(
            "/v1/runs/{}/evidence?tree_size={old_size}",
            s("run")
        ))
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    let limits = datapilot::evidence::Limits::default();
    let (new_zip, old_zip) = (
        datapilot::evidence::Archive::read(&again.body, &limits).unwrap(),
        datapilot::evidence::Archive::read(&old_bundle, &limits).unwrap(),
    );
    use datapilot::model::evidence::members;
    for name in members::ALL
        .iter()
        .filter(|&&m| m != members::ENVELOPE && m != members::REPORT)
    {
        assert!(
            new_zip.get(name) == old_zip.get(name),
            "re-exported {name} differs from the old release's"
        );
    }
    let old_report = datapilot::evidence::verify_bundle(&old_bundle, std::slice::from_ref(&v));
    assert!(old_report.ok, "{old_report:?}");
    let report = datapilot::evidence::verify_bundle(&again.body, std::slice::from_ref(&v));
    assert!(report.ok, "{report:?}");
    // New writes extend the old log: consistency from the old checkpoint verifies.
    admin.dataset("after-upgrade").await;
    let (size, root, _) = checkpoint(&admin).await;
    assert_eq!(size, old_size + 1);
    let (old_cp, _) =
        datapilot::checkpoint::open_checkpoint(&old_note, std::slice::from_ref(&v)).unwrap();
    let proof = admin
        .get(&format!(
            "/v1/ledger/proofs/consistency?from={old_size}&to={size}"
        ))
        .await
        .json();
    let hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    datapilot::merkle::verify_consistency(old_size, size, &hashes, &old_cp.root_hash, &root)
        .expect("the upgraded ledger extends the old one");
    // And the whole data directory still verifies with the new entries.
    let (code, out, err) = ops(&["verify"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all verified"), "{out}");
}

/// Run `datapilot-server ARGS… --data-dir DIR`: exit code, stdout, stderr.
fn ops(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_datapilot-server"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("DATAPILOT_DATABASE_URL")
        .env_remove("DATAPILOT_BLOBS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
