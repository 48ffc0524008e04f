//! The ledger origin (issue 12): one name per log. A new ledger takes `--origin`, else a name
//! derived from its own key; the shared default of earlier releases is refused for new ledgers
//! but kept by ledgers that already use it; the origin is recorded and cannot change.

mod common;

use common::*;

async fn origin(srv: &Server) -> String {
    let keys = srv.anon().get("/v1/keys").await.json();
    keys["origin"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_new_ledger_without_an_origin_gets_one_derived_from_its_key_and_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let a = Server::start_in(&dir, &[]);
    let b = Server::start();
    let (oa, ob) = (origin(&a).await, origin(&b).await);
    assert_ne!(oa, ob, "two installs, two logs, two origins");
    let v = verifier(&a.anon()).await;
    assert_eq!(
        oa,
        datapilot_server::keys::derived_origin(&v.public_key()),
        "the origin names the key"
    );
    assert_eq!(v.name(), oa, "the key name is the origin");
    let (_, _, note) = checkpoint(&a.client(ADMIN)).await;
    assert_eq!(note.lines().next().unwrap(), oa);

    // Restarts keep it; a different --origin is refused; the recorded one is accepted.
    drop(a);
    let a = Server::start_in(&dir, &[]);
    assert_eq!(origin(&a).await, oa);
    drop(a);
    let (status, err) = start_fails(&dir, &["--origin", "other.example/log"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("the origin cannot change"), "{err}");
    let a = Server::start_in(&dir, &["--origin", &oa]);
    assert_eq!(origin(&a).await, oa);
}

#[tokio::test]
async fn a_named_origin_is_used_and_the_old_shared_default_is_refused_for_a_new_ledger() {
    let srv = Server::start_with(&["--origin", "ml.corp.example/datapilot"]);
    assert_eq!(origin(&srv).await, "ml.corp.example/datapilot");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (status, err) = start_fails(&dir, &["--origin", "datapilot.local/ledger"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("names no one log"), "{err}");
}

/// Upgrade path: a ledger created by an earlier release under the old default keeps it, with
/// or without `--origin`.
#[tokio::test]
async fn a_ledger_created_under_the_old_default_keeps_it() {
    use datapilot_server::store::sqlite::SqliteRepo;
    use datapilot_server::store::{InitParams, Store};
    use std::os::unix::fs::PermissionsExt;
    if skip_on_remote("writes the SQLite file of an earlier release's ledger") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // What an earlier release left: a key file and a ledger under `datapilot.local/ledger`.
    let seed = [42u8; 32];
    let signer = datapilot::checkpoint::Signer::from_seed("datapilot.local/ledger", &seed).unwrap();
    std::fs::write(dir.join("ledger.key"), hex::encode(seed) + "\n").unwrap();
    std::fs::set_permissions(
        dir.join("ledger.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    {
        let store = Store::new(std::sync::Arc::new(
            SqliteRepo::open(&dir.join("datapilot.sqlite3")).unwrap(),
        ));
        store
            .init(&InitParams {
                origin: "datapilot.local/ledger".into(),
                verifier: signer.verifier_string(),
                bootstrap_secret_hash: datapilot_server::util::hash_secret(ADMIN),
            })
            .await
            .unwrap();
    }
    let srv = Server::start_in(&dir, &[]);
    assert_eq!(origin(&srv).await, "datapilot.local/ledger");
    assert_eq!(
        verifier(&srv.anon()).await.to_string(),
        signer.verifier_string()
    );
    let (size, _, _) = checkpoint(&srv.client(ADMIN)).await;
    assert_eq!(size, 2);
    drop(srv);
    let srv = Server::start_in(&dir, &["--origin", "datapilot.local/ledger"]);
    assert_eq!(origin(&srv).await, "datapilot.local/ledger");
}
