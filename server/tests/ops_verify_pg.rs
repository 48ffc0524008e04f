//! `datapilot-server verify` on PostgreSQL (issue 15): the same checks through the PostgreSQL
//! repository, on a throwaway cluster. A row changed behind the triggers' back (as a superuser
//! can) is reported; `backup` points to pg_dump instead of copying.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::*;
use serde_json::json;

fn ops(args: &[&str], dir: &std::path::Path, db: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_datapilot-server"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--database")
        .arg(db)
        .env_remove("DATAPILOT_BLOBS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_checks_a_postgresql_ledger() {
    let cluster = pg::PgCluster::start_fast();
    let db = cluster.url(pg::DB);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = Server::start_in(&dir, &["--database", &db]);
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("pg-verify").await;
    let digest = admin.version(&ds, "v1").await;
    let (run, rt) = admin.run(&[(&ds, &digest)]).await;
    let rt = admin.with_token(&rt);
    let bytes = b"pg artifact".to_vec();
    let r = rt.upload(&run, "a.bin", &bytes, &sha256_hex(&bytes)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = rt
        .post(
            &format!("/v1/runs/{run}/metrics"),
            json!({ "points": [ { "name": "loss", "step": 1, "value": 0.5 } ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (size, _, _) = checkpoint(&admin).await;

    // While the server runs.
    let (code, out, err) = ops(&["verify"], &dir, &db);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("{size} ledger entries")) && out.contains("all verified"),
        "{out}"
    );
    assert!(out.contains("1 blobs (11 bytes)"), "{out}");

    let (code, _, err) = ops(
        &["backup", tmp.path().join("b").to_str().unwrap()],
        &dir,
        &db,
    );
    assert_eq!(code, 1);
    assert!(err.contains("pg_dump"), "{err}");

    // A superuser disables the immutability triggers and edits a row.
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "ALTER TABLE dataset_versions DISABLE TRIGGER USER;
             UPDATE dataset_versions SET total_bytes = total_bytes + 1000;",
        )
        .await
        .unwrap();
    let (code, out, _) = ops(&["verify", "--skip-blobs"], &dir, &db);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("dataset version {ds}: column total_bytes is")),
        "{out}"
    );
}
