//! Backup, restore and verify (issue 15): a backup taken during concurrent writes restores to a
//! data directory whose `verify` passes and whose server starts; a corrupted blob and modified
//! ledger rows are each reported by `verify` with a non-zero exit naming the problem; a newer
//! schema is refused.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use serde_json::json;

/// Run `datapilot-server ARGS…`: exit code, stdout, stderr.
pub fn ops(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_datapilot-server"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("DATAPILOT_DATABASE_URL")
        .env_remove("DATAPILOT_BLOBS")
        .env_remove("DATAPILOT_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server with some of everything: datasets, versions, a gate, runs with metrics, artifacts
/// and a finish, tokens, signed checkpoints. Returns the artifact's bytes.
async fn populate(admin: &Api) -> Vec<u8> {
    let ds = admin.dataset("populated").await;
    let digest = admin.version(&ds, "v1").await;
    let r = admin
        .post(
            &format!("/v1/datasets/{ds}/versions/{digest}/gates"),
            json!({ "gate": "schema", "status": "passed", "details": {} }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    admin.token("viewer").await;
    checkpoint(admin).await;
    let (run, rt) = admin.run(&[(&ds, &digest)]).await;
    let rt = admin.with_token(&rt);
    let r = rt
        .post(
            &format!("/v1/runs/{run}/metrics"),
            json!({ "points": [ { "name": "loss", "step": 1, "value": 0.5 } ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bytes = b"the weights of a small model".to_vec();
    let r = rt
        .upload(&run, "model.bin", &bytes, &sha256_hex(&bytes))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = rt
        .post(
            &format!("/v1/runs/{run}/finish"),
            json!({ "status": "succeeded" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    checkpoint(admin).await;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_during_concurrent_writes_restores_and_verifies() {
    if skip_on_remote("backup copies SQLite data directories") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    populate(&admin).await;

    // Writers that keep going while the backup runs: datasets, runs with metrics and
    // artifacts, checkpoints.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (admin, stop) = (admin.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let ds = admin.dataset(&format!("w{w}-{n}")).await;
                let digest = admin.version(&ds, &format!("w{w}-{n}")).await;
                let (run, rt) = admin.run(&[(&ds, &digest)]).await;
                let rt = admin.with_token(&rt);
                let r = rt
                    .post(
                        &format!("/v1/runs/{run}/metrics"),
                        json!({ "points": [ { "name": "x", "step": n, "value": 1.0 } ] }),
                    )
                    .await;
                assert_eq!(r.status, 201);
                let bytes = format!("artifact {w} {n} {ds}").into_bytes();
                let r = rt.upload(&run, "a.bin", &bytes, &sha256_hex(&bytes)).await;
                assert_eq!(r.status, 201, "{}", r.text());
                if n.is_multiple_of(3) {
                    checkpoint(&admin).await;
                }
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backup");
    let (dir, dest2) = (srv.dir.clone(), dest.clone());
    let (code, out, err) =
        tokio::task::spawn_blocking(move || ops(&["backup", dest2.to_str().unwrap()], &dir))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    assert!(
        writes >= 8,
        "the writers ran during the backup ({writes} rounds)"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("BACKUP.json")).unwrap()).unwrap();
    let backed_up = manifest["ledger_size"].as_u64().unwrap();
    let (live_size, _, _) = checkpoint(&admin).await;
    assert!(
        backed_up > 10 && backed_up < live_size,
        "the backup is a snapshot taken mid-way ({backed_up} of {live_size})"
    );

    // The live directory verifies too (the server still running).
    let (code, out, err) = ops(&["verify"], &srv.dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all verified"), "{out}");

    // Restore into a new directory: it verifies (restore runs verify), and a server starts
    // on it with the backed-up ledger.
    let restored = tmp.path().join("restored");
    let (code, out, err) = ops(&["restore", dest.to_str().unwrap()], &restored);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all verified"), "{out}");
    assert!(
        out.contains(&format!("{backed_up} ledger entries")),
        "{out}"
    );
    // Restoring to replace the live directory keeps its `ledger.checkpoint` (the largest
    // checkpoint already published, docs/server.md): the backup is older than what the live
    // server published, and verify says so.
    let replacing = tmp.path().join("replacing");
    std::fs::create_dir_all(&replacing).unwrap();
    std::fs::copy(
        srv.dir.join("ledger.checkpoint"),
        replacing.join("ledger.checkpoint"),
    )
    .unwrap();
    let (code, out, _) = ops(&["restore", dest.to_str().unwrap()], &replacing);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "records a published checkpoint of size {live_size}, but the ledger has only {backed_up} entries"
        )),
        "{out}"
    );
    drop(srv);
    let again = Server::start_in(&restored, &[]);
    let admin2 = again.client(ADMIN);
    let (size, _, _) = checkpoint(&admin2).await;
    assert_eq!(size, backed_up);
    // Restoring over an existing ledger is refused.
    let (code, _, err) = ops(&["restore", dest.to_str().unwrap()], &restored);
    assert_eq!(code, 1);
    assert!(err.contains("already holds"), "{err}");
    // A backup never writes into a non-empty directory.
    let (code, _, err) = ops(&["backup", dest.to_str().unwrap()], &restored);
    assert_eq!(code, 1);
    assert!(err.contains("not empty"), "{err}");
}

#[tokio::test]
async fn verify_reports_a_corrupted_blob() {
    if skip_on_remote("the test edits blob files") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let srv = Server::start();
    let bytes = populate(&srv.client(ADMIN)).await;
    let (code, out, err) = ops(&["verify"], &srv.dir);
    assert_eq!(code, 0, "{out}{err}");
    // Progress on stderr (a bar per phase, ending full), the summary on stdout.
    for phase in ["ledger entries", "Merkle nodes", "blobs"] {
        assert!(
            err.lines().any(|l| l.starts_with(&format!(
                "verify: {phase} [##############################] "
            )) && l.ends_with("(100%)")),
            "{phase}: {err}"
        );
    }
    assert!(
        out.trim_end().ends_with("blobs (28 bytes): all verified"),
        "{out}"
    );
    let sha = sha256_hex(&bytes);
    let path = srv.dir.join("blobs/sha256").join(&sha[..2]).join(&sha);
    let mut b = std::fs::read(&path).unwrap();
    b[3] ^= 0x20;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, &b).unwrap();
    let (code, out, err) = ops(&["verify"], &srv.dir);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!("blob {sha}: corrupt")),
        "names the blob: {out}"
    );
    assert!(out.contains("1 PROBLEM(S)"), "{out}");
    // --skip-blobs checks only the ledger.
    let (code, out, _) = ops(&["verify", "--skip-blobs"], &srv.dir);
    assert_eq!(code, 0, "{out}");
    // A missing blob too.
    std::fs::remove_file(&path).unwrap();
    let (code, out, _) = ops(&["verify"], &srv.dir);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("blob {sha}: missing")), "{out}");
}

/// Edit the SQLite file behind the triggers' back (what an attacker with file access, or a
/// broken disk, could do).
fn tamper(dir: &Path, sql: &str) {
    let c = rusqlite::Connection::open(dir.join("datapilot.sqlite3")).unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn verify_reports_modified_ledger_rows() {
    if skip_on_remote("the test edits the SQLite file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = Server::start_in(&dir, &[]);
    populate(&srv.client(ADMIN)).await;
    drop(srv);
    let (code, out, err) = ops(&["verify"], &dir);
    assert_eq!(code, 0, "{out}{err}");

    // 1. An audit event's subject rewritten: its leaf no longer matches.
    let copy = dir.with_extension("copy1");
    copy_tree(&dir, &copy);
    tamper(
        &copy,
        "DROP TRIGGER audit_events_no_update;
         UPDATE audit_events SET subject = 'dataset:ds_forged' WHERE action = 'dataset.create';",
    );
    let (code, out, _) = ops(&["verify"], &copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ledger entry 2 (dataset.create dataset:ds_forged): the row's columns do not match its stored leaf bytes"),
        "{out}"
    );

    // 2. An artifact row's digest changed: the row no longer matches its ledger entry.
    let copy = dir.with_extension("copy2");
    copy_tree(&dir, &copy);
    tamper(
        &copy,
        "DROP TRIGGER artifacts_no_update;
         UPDATE artifacts SET size = size + 1;",
    );
    let (code, out, _) = ops(&["verify", "--skip-blobs"], &copy);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("artifact art_"), "{out}");
    assert!(out.contains("column size is"), "{out}");

    // 3. A leaf rewritten consistently with its row: the stored Merkle nodes and the signed
    // checkpoints give it away.
    let copy = dir.with_extension("copy3");
    copy_tree(&dir, &copy);
    let c = rusqlite::Connection::open(copy.join("datapilot.sqlite3")).unwrap();
    let (seq, leaf): (i64, Vec<u8>) = c
        .query_row(
            "SELECT seq, leaf FROM audit_events WHERE action = 'dataset.create'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let forged_leaf = String::from_utf8(leaf)
        .unwrap()
        .replace("\"populated\"", "\"forged-name\"");
    let forged_hash = datapilot::merkle::leaf_hash(forged_leaf.as_bytes()).to_vec();
    c.execute_batch("DROP TRIGGER audit_events_no_update; DROP TRIGGER datasets_no_update;")
        .unwrap();
    c.execute(
        "UPDATE audit_events SET leaf = ?1, leaf_hash = ?2,
         data = replace(data, '\"populated\"', '\"forged-name\"') WHERE seq = ?3",
        rusqlite::params![forged_leaf.as_bytes(), forged_hash, seq],
    )
    .unwrap();
    c.execute("UPDATE datasets SET name = 'forged-name'", [])
        .unwrap();
    drop(c);
    let (code, out, _) = ops(&["verify", "--skip-blobs"], &copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not match the hash of its leaves"),
        "a stored node no longer matches: {out}"
    );
    assert!(
        out.contains("but the ledger's entries hash to"),
        "a signed checkpoint no longer matches: {out}"
    );

    // 4. A deleted row.
    let copy = dir.with_extension("copy4");
    copy_tree(&dir, &copy);
    tamper(
        &copy,
        "DROP TRIGGER gate_results_no_delete; DELETE FROM gate_results;",
    );
    let (code, out, _) = ops(&["verify", "--skip-blobs"], &copy);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("1 gate.record events in the ledger but 0 gate result rows"),
        "{out}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_by_start_verify_and_migrate() {
    if skip_on_remote("the test edits the SQLite file") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(Server::start_in(&dir, &[]));
    let (code, out, _) = ops(&["migrate", "--dry-run"], &dir);
    assert_eq!(code, 0);
    assert!(out.contains("(current); nothing to do"), "{out}");
    tamper(&dir, "INSERT INTO schema_version (version) VALUES (999);");
    let (status, err) = start_fails(&dir, &[]);
    assert!(!status.success());
    assert!(
        err.contains("written by a newer datapilot-server (schema version 999"),
        "{err}"
    );
    for cmd in [&["verify"][..], &["migrate"], &["migrate", "--dry-run"]] {
        let (code, _, err) = ops(cmd, &dir);
        assert_ne!(code, 0);
        assert!(err.contains("newer datapilot-server"), "{cmd:?}: {err}");
    }
}

/// Copy a data directory (files, and blob subdirectories).
fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dest.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}
