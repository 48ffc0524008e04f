//! No equivocation across a restore (issue 12): the largest published checkpoint is kept in
//! `ledger.checkpoint` beside the key, which a database restore does not roll back. A database
//! older than that checkpoint is refused at start with the recovery steps; the documented
//! recovery (restore a newer backup) works; a missing record is rebuilt from the database; a
//! record not signed by the key is refused.

mod common;

use std::path::Path;

use common::*;

/// The SQLite files of a stopped server (the WAL holds the last commits).
const DB_FILES: [&str; 2] = ["datapilot.sqlite3", "datapilot.sqlite3-wal"];

fn backup(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in DB_FILES {
        let _ = std::fs::remove_file(to.join(f));
        if dir.join(f).exists() {
            std::fs::copy(dir.join(f), to.join(f)).unwrap();
        }
    }
}

fn restore(from: &Path, dir: &Path) {
    for f in DB_FILES.iter().chain(&["datapilot.sqlite3-shm"]) {
        let _ = std::fs::remove_file(dir.join(f));
    }
    for f in DB_FILES {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), dir.join(f)).unwrap();
        }
    }
}

fn published(dir: &Path) -> datapilot::checkpoint::Checkpoint {
    let note = std::fs::read_to_string(dir.join("ledger.checkpoint")).expect("ledger.checkpoint");
    let body = note.split("\n\n").next().unwrap().to_string() + "\n";
    datapilot::checkpoint::Checkpoint::parse(&body).unwrap()
}

#[tokio::test]
async fn a_database_older_than_the_published_checkpoint_is_refused_until_a_newer_one_is_restored() {
    if skip_on_remote("copies the SQLite files to simulate a restore") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (old_backup, new_backup) = (tmp.path().join("old"), tmp.path().join("new"));

    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    admin.dataset("before-backup").await;
    let (old_size, _, _) = checkpoint(&admin).await;
    assert_eq!(published(&dir).tree_size, old_size);
    srv.kill9();
    backup(&dir, &old_backup);

    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    admin.dataset("after-backup-1").await;
    admin.dataset("after-backup-2").await;
    let (size, root, note) = checkpoint(&admin).await;
    assert!(size > old_size);
    // Published means beside the key, byte for byte, before the client got it.
    assert_eq!(
        std::fs::read_to_string(dir.join("ledger.checkpoint")).unwrap(),
        note
    );
    srv.kill9();
    backup(&dir, &new_backup);

    // The older database comes back: the server refuses to start, and says how to recover.
    restore(&old_backup, &dir);
    let (status, err) = start_fails(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(
        err.contains(&format!("already published a checkpoint of size {size}")),
        "{err}"
    );
    assert!(err.contains("restore a newer backup"), "{err}");
    assert!(err.contains("docs/server.md"), "{err}");
    // The refusal changed nothing: the record still names the larger checkpoint.
    assert_eq!(published(&dir).tree_size, size);

    // The documented recovery: restore a backup that reaches the published checkpoint.
    restore(&new_backup, &dir);
    let srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let (again, again_root, _) = checkpoint(&admin).await;
    assert_eq!((again, again_root), (size, root));
    admin.dataset("after-recovery").await;
    let (later, _, _) = checkpoint(&admin).await;
    assert_eq!(later, size + 1);
    assert_eq!(published(&dir).tree_size, size + 1);
}

#[tokio::test]
async fn a_database_with_another_history_at_the_published_size_is_refused() {
    if skip_on_remote("copies the SQLite files to simulate a restore") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let old_backup = tmp.path().join("old");
    let mut srv = Server::start_in(&dir, &[]);
    srv.kill9();
    backup(&dir, &old_backup);

    // Published: size n with one history...
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    admin.dataset("first-history").await;
    let (size, _, _) = checkpoint(&admin).await;
    srv.kill9();

    // ...then the old database is restored with the published record removed, written to
    // (another event at the same seq), and the record put back: the roots at `size` differ.
    let record = std::fs::read(dir.join("ledger.checkpoint")).unwrap();
    restore(&old_backup, &dir);
    std::fs::remove_file(dir.join("ledger.checkpoint")).unwrap();
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    admin.dataset("second-history").await;
    assert_eq!(checkpoint(&admin).await.0, size);
    srv.kill9();
    std::fs::write(dir.join("ledger.checkpoint"), &record).unwrap();

    let (status, err) = start_fails(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("root at size {size}")), "{err}");
    assert!(err.contains("another history"), "{err}");
}

#[tokio::test]
async fn a_missing_record_is_rebuilt_from_the_database_and_a_forged_one_is_refused() {
    if skip_on_remote("edits files in the data directory") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    admin.dataset("a").await;
    let (size, _, note) = checkpoint(&admin).await;
    srv.kill9();

    // An install upgraded from a release without the record: rebuilt from `checkpoints`.
    std::fs::remove_file(dir.join("ledger.checkpoint")).unwrap();
    let mut srv = Server::start_in(&dir, &[]);
    assert_eq!(
        std::fs::read_to_string(dir.join("ledger.checkpoint")).unwrap(),
        note
    );
    srv.kill9();

    // A record signed by another key (or edited) is not silently replaced.
    let other =
        datapilot::checkpoint::Signer::from_seed(&published(&dir).origin, &[7; 32]).unwrap();
    let forged = datapilot::checkpoint::Checkpoint {
        origin: published(&dir).origin,
        tree_size: size,
        root_hash: [0; 32],
        extensions: vec![],
    }
    .sign(&other)
    .unwrap();
    std::fs::write(dir.join("ledger.checkpoint"), forged).unwrap();
    let (status, err) = start_fails(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("ledger.checkpoint is not a checkpoint signed by this server's key"),
        "{err}"
    );
}
