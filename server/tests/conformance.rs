//! The store conformance suite: every repository backend must pass it. Each test runs the
//! domain layer ([`Store`]) over SQLite (a temp file) and over PostgreSQL (a throwaway cluster
//! started by the test, Debian's server package): every operation, immutability, dense
//! sequence numbers under concurrent writers, idempotency records, group commit with refused
//! writes in the batch, and the checkpoint record.

#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::sync::Arc;

use datapilot::manifest::{FileEntry, Manifest};
use datapilot_server::model::{FinishStatus, GateOutcome, MetricPoint, Role, VersionRef};
use datapilot_server::store::postgres::PgRepo;
use datapilot_server::store::repo::{Repo, Val};
use datapilot_server::store::sqlite::SqliteRepo;
use datapilot_server::store::*;

/// A backend under test, kept alive with whatever it needs.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(pg::PgCluster),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    async fn repo(&self) -> Arc<dyn Repo> {
        match self {
            Backend::Sqlite(dir) => {
                Arc::new(SqliteRepo::open(&dir.path().join("db.sqlite3")).unwrap())
            }
            Backend::Postgres(c) => Arc::new(PgRepo::open(&c.url(pg::DB), 8).await.unwrap()),
        }
    }
}

fn backends() -> Vec<Backend> {
    vec![
        Backend::Sqlite(tempfile::tempdir().unwrap()),
        Backend::Postgres(pg::PgCluster::start_fast()),
    ]
}

async fn fresh_store(b: &Backend) -> Store {
    let store = Store::new(b.repo().await);
    assert!(
        store.init(&init_params()).await.unwrap(),
        "{}: new ledger",
        b.name()
    );
    store
}

fn init_params() -> InitParams {
    InitParams {
        origin: "conformance.example/ledger".into(),
        verifier: "conformance.example/ledger+00000000+AQ".into(),
        bootstrap_secret_hash: "0".repeat(64),
    }
}

fn writer(id: &str) -> Writer {
    Writer::new(ActorRef {
        kind: "token",
        id: id.into(),
        role: "engineer",
    })
}

fn keyed(id: &str, key: &str) -> Writer {
    let mut w = writer(id);
    w.idem = Some(IdemKey {
        scope: format!("token:{id} POST /v1/datasets"),
        key: key.into(),
        fingerprint: "f".repeat(64),
    });
    w
}

fn manifest(seed: &str, n: usize) -> Manifest {
    let entries: Vec<FileEntry> = (0..n)
        .map(|i| FileEntry {
            path: format!("d/{seed}-{i}.bin"),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(format!("{seed}{i}"))),
            size: i as u64,
        })
        .collect();
    Manifest::from_entries(entries).unwrap()
}

fn page(limit: u32) -> PageReq {
    PageReq {
        limit,
        after: None,
        desc: false,
        scope: 0,
    }
}

/// Every leaf is present once, at dense indices, and the root the store serves equals a naive
/// RFC 9162 computation over the leaf bytes.
async fn assert_ledger_dense(name: &str, store: &Store) -> u64 {
    let size = store.tree_size().await.unwrap();
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size {
        let batch = store.ledger_entries(start, 500).await.unwrap();
        assert!(
            !batch.is_empty(),
            "{name}: entries stop at {start} of {size}"
        );
        for e in batch {
            assert_eq!(e.seq, start, "{name}: dense sequence numbers");
            use base64::Engine;
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(&e.leaf)
                .unwrap();
            leaves.push(datapilot::merkle::leaf_hash(&leaf));
            start += 1;
        }
    }
    let head = store.tree_head(None).await.unwrap();
    assert_eq!(head.size, size);
    assert_eq!(
        head.root,
        datapilot::merkle::root_from_leaf_hashes(&leaves),
        "{name}: root"
    );
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        let w = writer("tok_eng");
        // Datasets, versions, gates, policy.
        let ds = store.create_dataset(&w, "images", Some("d")).await.unwrap();
        let dup = store.create_dataset(&w, "images", None).await.unwrap_err();
        assert!(
            matches!(dup, StoreError::Conflict("already_exists", _)),
            "{name}: {dup}"
        );
        let m = manifest("a", 5);
        let (v, created) = store
            .register_version(&w, &ds.id, m.clone(), Some("n"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(v.file_count, 5);
        let (v2, created) = store
            .register_version(&w, &ds.id, m.clone(), None)
            .await
            .unwrap();
        assert!(!created, "{name}: same digest registers once");
        assert_eq!(v2.audit_seq, v.audit_seq);
        assert_eq!(
            store.get_manifest(&ds.id, &v.digest).await.unwrap().files,
            m.files().to_vec()
        );
        store
            .update_policy(&writer("tok_admin"), &["schema".to_string()], 3600)
            .await
            .unwrap();
        let input = VersionRef {
            dataset_id: ds.id.clone(),
            digest: v.digest.clone(),
        };
        let run_of = |h: &str| NewRun {
            name: "train".into(),
            inputs: vec![input.clone()],
            git_commit: "a".repeat(40),
            image_digest: format!("sha256:{}", "b".repeat(64)),
            params: BTreeMap::from([("lr".to_string(), "0.1".to_string())]),
            token_hash: h.repeat(64),
            token_ttl_override: None,
        };
        let refused = store.create_run(&w, &run_of("1")).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::Unprocessable("gate_not_passed", _)),
            "{name}: {refused}"
        );
        let g = store
            .record_gate(
                &w,
                &ds.id,
                &v.digest,
                "schema",
                GateOutcome::Passed,
                &BTreeMap::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .list_gates(&ds.id, &v.digest, page(10))
                .await
                .unwrap()
                .0[0]
                .id,
            g.id
        );
        assert_eq!(
            store
                .get_version(&ds.id, &v.digest)
                .await
                .unwrap()
                .gate_status,
            "passed"
        );
        // Runs, metrics, artifacts, finish.
        let (run, _) = store.create_run(&w, &run_of("2")).await.unwrap();
        let auth = store
            .lookup_run_token(&"2".repeat(64), "2000-01-01T00:00:00.000Z")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(auth.run_id, run.id);
        let points = vec![
            MetricPoint {
                name: "loss".into(),
                step: 1,
                value: 0.5,
                time: None,
            },
            MetricPoint {
                name: "acc".into(),
                step: 1,
                value: 0.25,
                time: Some("2026-01-01T00:00:00.000Z".into()),
            },
        ];
        let mb = store
            .append_metrics(&w, &run.id, points, "sha256:00")
            .await
            .unwrap();
        assert_eq!((mb.batch, mb.count), (0, 2));
        let (vals, _) = store
            .list_metrics(&run.id, Some("acc"), page(10))
            .await
            .unwrap();
        assert_eq!((vals.len(), vals[0].value), (1, 0.25));
        let art = store
            .add_artifact(&w, &run.id, "model.bin", &"c".repeat(64), 7)
            .await
            .unwrap();
        assert!(store.blob_referenced(&"c".repeat(64)).await.unwrap());
        let again = store
            .add_artifact(&w, &run.id, "model.bin", &"d".repeat(64), 7)
            .await
            .unwrap_err();
        assert!(
            matches!(again, StoreError::Conflict("already_exists", _)),
            "{name}"
        );
        assert_eq!(
            store.get_artifact(&run.id, &art.id).await.unwrap().sha256,
            art.sha256
        );
        let out = store
            .register_version(&w, &ds.id, manifest("out", 2), None)
            .await
            .unwrap()
            .0;
        let outputs = [VersionRef {
            dataset_id: ds.id.clone(),
            digest: out.digest.clone(),
        }];
        let fin = store
            .finish_run(&w, &run.id, FinishStatus::Succeeded, &outputs)
            .await
            .unwrap();
        assert_eq!(fin.status, "succeeded");
        let sealed = store
            .finish_run(&w, &run.id, FinishStatus::Failed, &[])
            .await
            .unwrap_err();
        assert!(
            matches!(sealed, StoreError::Conflict("run_sealed", _)),
            "{name}"
        );
        // Lineage both ways.
        let lr = store.run_lineage(&run.id, None).await.unwrap();
        assert_eq!(lr.edges.len(), 5, "{name}: {lr:?}"); // commit, image, input, output, artifact
        let lv = store
            .version_lineage(&ds.id, &out.digest, None)
            .await
            .unwrap();
        assert!(
            lv.edges.iter().any(|e| e.to.contains(&out.digest)),
            "{name}"
        );
        // Tokens.
        let t = store
            .create_token(&w, "ci", Role::Engineer, &"e".repeat(64), None)
            .await
            .unwrap();
        assert_eq!(
            store
                .lookup_api_token(&"e".repeat(64), "2000")
                .await
                .unwrap()
                .unwrap()
                .id,
            t.id
        );
        store.revoke_token(&w, &t.id).await.unwrap();
        assert!(store
            .lookup_api_token(&"e".repeat(64), "2000")
            .await
            .unwrap()
            .is_none());
        // Paging: two datasets a page.
        for i in 0..3 {
            store
                .create_dataset(&w, &format!("p{i}"), None)
                .await
                .unwrap();
        }
        let (first, next) = store.list_datasets(page(2)).await.unwrap();
        assert_eq!(first.len(), 2);
        let (rest, end) = store
            .list_datasets(PageReq {
                limit: 10,
                after: next,
                desc: false,
                scope: 0,
            })
            .await
            .unwrap();
        assert_eq!((rest.len(), end), (2, None), "{name}");
        // Audit, proofs.
        let (ev, _) = store
            .list_audit(Some(&format!("run:{}", run.id)), None, page(100))
            .await
            .unwrap();
        assert_eq!(ev.len(), 4, "{name}: create, metrics, artifact, finish");
        let size = assert_ledger_dense(name, &store).await;
        let head = store.tree_head(None).await.unwrap();
        let (leaf, proof) = store.inclusion_proof(3, size).await.unwrap();
        datapilot::merkle::verify_inclusion(&leaf, 3, size, &proof, &head.root).unwrap();
        let old = store.tree_head(Some(5)).await.unwrap();
        let c = store.consistency_proof(5, size).await.unwrap();
        datapilot::merkle::verify_consistency(5, size, &c, &old.root, &head.root).unwrap();
        let (pol, seq) = store.policy_at(size).await.unwrap();
        assert_eq!((pol.version, seq.is_some()), (2, true));
        // A restart keeps everything.
        drop(store);
        let store = Store::new(b.repo().await);
        assert!(!store.init(&init_params()).await.unwrap());
        assert_eq!(store.tree_size().await.unwrap(), size, "{name}");
    }
}

/// Immutable rows refuse UPDATE and DELETE below the domain layer (triggers), and the ledger
/// size never shrinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutability_is_enforced_by_the_database() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        store.create_dataset(&writer("t"), "x", None).await.unwrap();
        let repo = b.repo().await;
        for sql in [
            "UPDATE audit_events SET action = 'forged' WHERE seq = 0",
            "DELETE FROM audit_events WHERE seq = 2",
            "DELETE FROM merkle_nodes WHERE level = 0",
            "UPDATE datasets SET name = 'y'",
            "UPDATE ledger_state SET size = 1 WHERE id = 1",
            "DELETE FROM tokens",
        ] {
            let mut tx = repo.write().await.unwrap();
            let e = tx.execute(sql, &[]).await.unwrap_err();
            assert!(
                matches!(e, StoreError::Conflict("immutable", _)),
                "{name}: {sql}: {e}"
            );
        }
        assert_ledger_dense(name, &store).await;
    }
}

/// Writers on several tasks (and, on PostgreSQL, several stores sharing the database, as
/// replicas do): every write is in the ledger once, at dense indices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_the_ledger_dense() {
    for b in backends() {
        let name = b.name();
        let first = fresh_store(&b).await;
        // A second committer over the same database: a second replica on PostgreSQL; on SQLite
        // a second connection to the same file (its writes queue on the file lock).
        let second = Store::new(b.repo().await);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = if t % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let d = store
                        .create_dataset(&writer(&format!("w{t}")), &format!("d-{t}-{i}"), None)
                        .await
                        .unwrap();
                    ids.push(d.id);
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        assert_eq!(all.len(), 200);
        let size = assert_ledger_dense(name, &first).await;
        assert_eq!(
            size,
            2 + 200,
            "{name}: init's two events plus every write, once"
        );
        let (events, _) = first
            .list_audit(None, Some("dataset.create"), page(1000))
            .await
            .unwrap();
        let mut subjects: Vec<_> = events.iter().map(|e| e.subject.clone()).collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), 200, "{name}");
    }
}

/// In one group-committed batch, a refused write rolls back alone: the others commit and the
/// sequence number it would have taken goes to the next write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_in_a_batch_undoes_only_itself() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        store
            .create_dataset(&writer("t"), "taken", None)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            // Every fourth write is refused (the name is taken).
            let n = if i % 4 == 0 {
                "taken".to_string()
            } else {
                format!("free-{i}")
            };
            tasks.push(tokio::spawn(async move {
                store.create_dataset(&writer("t"), &n, None).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict("already_exists", _)) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(ok, 30);
        assert_eq!(
            assert_ledger_dense(name, &store).await,
            2 + 1 + 30,
            "{name}"
        );
    }
}

/// A keyed write records its answer in its own transaction; the same key again is refused
/// before any rule runs (`KeyTaken`, which the HTTP layer turns into a replay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_commit_with_the_write() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        let w = keyed("tok_a", "k1");
        let k = w.idem.clone().unwrap();
        assert!(matches!(
            store
                .idem_lookup(&k.scope, &k.key, &k.fingerprint)
                .await
                .unwrap(),
            IdemLookup::Fresh
        ));
        let d = store.create_dataset(&w, "once", None).await.unwrap();
        match store
            .idem_lookup(&k.scope, &k.key, &k.fingerprint)
            .await
            .unwrap()
        {
            IdemLookup::Replay(r) => {
                assert_eq!(r.status, 201);
                assert_eq!(r.body, serde_json::to_vec(&d).unwrap());
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(
            store.idem_lookup(&k.scope, &k.key, "other").await.unwrap(),
            IdemLookup::Mismatch
        ));
        // The duplicate would be refused by its own rule (the name is taken); the key wins.
        let e = store.create_dataset(&w, "once", None).await.unwrap_err();
        assert!(matches!(e, StoreError::KeyTaken), "{name}: {e}");
        // Concurrent duplicates: exactly one writes.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create_dataset(&keyed("tok_a", "k2"), "race", None)
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::KeyTaken) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(won, 1, "{name}");
        // A refusal's answer (a request that wrote nothing) is kept without a ledger event.
        let size = store.tree_size().await.unwrap();
        let k3 = IdemKey {
            scope: "s".into(),
            key: "k3".into(),
            fingerprint: "f".into(),
        };
        let refusal = StoredResponse {
            status: 404,
            headers: vec![],
            body: b"{}".to_vec(),
            secret_of: None,
        };
        store.idem_store(&k3, &refusal).await.unwrap();
        assert!(
            matches!(store.idem_lookup("s", "k3", "f").await.unwrap(), IdemLookup::Replay(r) if r.status == 404)
        );
        assert_eq!(store.tree_size().await.unwrap(), size, "{name}");
    }
}

/// A tree size is signed with one root, ever: the same root returns the recorded note, another
/// root is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_is_never_signed_with_two_roots() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        let head = store.tree_head(None).await.unwrap();
        let note = store
            .record_checkpoint(head.size, head.root, "note-1".into())
            .await
            .unwrap();
        assert_eq!(note, "note-1");
        let again = store
            .record_checkpoint(head.size, head.root, "note-2".into())
            .await
            .unwrap();
        assert_eq!(again, "note-1", "{name}: the recorded note is returned");
        let forged = store
            .record_checkpoint(head.size, [9; 32], "evil".into())
            .await
            .unwrap_err();
        assert!(
            forged.to_string().contains("refusing to sign"),
            "{name}: {forged}"
        );
        assert_eq!(
            store.latest_checkpoint().await.unwrap(),
            Some((head.size, "note-1".into()))
        );
        let repo = b.repo().await;
        let mut tx = repo.write().await.unwrap();
        let e = tx
            .execute(
                "DELETE FROM checkpoints WHERE tree_size = $1",
                &[Val::Int(head.size as i64)],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict("immutable", _)),
            "{name}: {e}"
        );
    }
}

/// Witness cosignatures: one line per witness and size, the first kept, readable by every store
/// on the database (a replica, or the server after a restart), and never edited or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosignatures_are_kept_once_per_witness_and_size() {
    for b in backends() {
        let name = b.name();
        let store = fresh_store(&b).await;
        store.record_cosignature(5, "w2", "— w2 B\n").await.unwrap();
        store.record_cosignature(5, "w1", "— w1 A\n").await.unwrap();
        store
            .record_cosignature(5, "w1", "— w1 again\n")
            .await
            .unwrap();
        store.record_cosignature(6, "w1", "— w1 C\n").await.unwrap();
        let replica = Store::new(b.repo().await);
        assert_eq!(
            replica.cosignatures(5).await.unwrap(),
            vec![
                ("w1".to_owned(), "— w1 A\n".to_owned()),
                ("w2".to_owned(), "— w2 B\n".to_owned())
            ],
            "{name}"
        );
        assert!(replica.cosignatures(4).await.unwrap().is_empty(), "{name}");
        let repo = b.repo().await;
        for sql in [
            "DELETE FROM checkpoint_cosignatures",
            "UPDATE checkpoint_cosignatures SET line = 'forged'",
        ] {
            let mut tx = repo.write().await.unwrap();
            let e = tx.execute(sql, &[]).await.unwrap_err();
            assert!(
                matches!(e, StoreError::Conflict("immutable", _)),
                "{name}: {sql}: {e}"
            );
        }
    }
}
