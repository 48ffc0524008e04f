//! Two server replicas on one PostgreSQL and one S3 store (Garage), both started by the test:
//! concurrent writers through both, then the guarantees a gateway in front of them relies on.
//! Every acknowledged write is there once, sequence numbers are dense, checkpoints signed by
//! either replica are consistent, evidence exported from either is byte-identical, and a
//! replica killed with `kill -9` under load loses nothing acknowledged and rejoins.

mod common;
#[path = "common/garage.rs"]
mod garage;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

struct Cluster {
    pg: pg::PgCluster,
    s3: garage::Garage,
    tmp: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        // fsync and synchronous_commit on: what an acknowledged write rests on.
        let pg = pg::PgCluster::start();
        let s3 = garage::Garage::start();
        // The replicas read the S3 credentials from the environment (never the command line).
        std::env::set_var("DATAPILOT_S3_ACCESS_KEY_ID", &s3.key_id);
        std::env::set_var("DATAPILOT_S3_SECRET_ACCESS_KEY", &s3.secret);
        Cluster {
            pg,
            s3,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self, replica: &str) -> std::path::PathBuf {
        self.tmp.path().join(replica).join("data")
    }

    /// Start replica `name`; every replica after the first gets the first one's ledger key (in
    /// production: the same key file provisioned to every replica).
    fn replica(&self, name: &str) -> Server {
        let dir = self.dir(name);
        let first_key = self.dir("a").join("ledger.key");
        if name != "a" && !dir.join("ledger.key").exists() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&first_key, dir.join("ledger.key")).unwrap();
        }
        let db = self.pg.url(pg::DB);
        let blobs = self.s3.spec("replicas/");
        Server::start_in(&dir, &["--database", &db, "--blobs", &blobs])
    }
}

fn private_key(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What the writers were told succeeded.
#[derive(Default, Clone)]
struct Acked {
    datasets: BTreeSet<String>,
    /// Acknowledged dataset creates per writer tag.
    per_tag: std::collections::BTreeMap<String, usize>,
    batches: BTreeSet<(String, u64)>,
}

/// `n` rounds of writes through `api`: a keyed dataset create, and a metric batch to `run`.
async fn write_load(
    api: Api,
    run: String,
    run_token: String,
    tag: String,
    n: usize,
    acked: Arc<Mutex<Acked>>,
) {
    let rt = api.with_token(&run_token);
    for i in 0..n {
        let name = format!("{tag}-{i}");
        let key = format!("k-{name}");
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            api.post_idem_try("/v1/datasets", &key, json!({ "name": name })),
        )
        .await;
        if let Ok(Some(r)) = r {
            if r.status == 201 {
                let mut a = acked.lock().unwrap();
                a.datasets
                    .insert(r.json()["id"].as_str().unwrap().to_string());
                *a.per_tag.entry(tag.clone()).or_default() += 1;
            }
        }
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            rt.post_idem_try(
                &format!("/v1/runs/{run}/metrics"),
                &format!("m-{name}"),
                json!({ "points": [{ "name": "loss", "step": i, "value": 1.0 }] }),
            ),
        )
        .await;
        if let Ok(Some(r)) = r {
            if r.status == 201 {
                let b = r.json()["batch"].as_u64().unwrap();
                acked.lock().unwrap().batches.insert((tag.clone(), b));
            }
        }
    }
}

/// Every acknowledged dataset and metric batch is there once; the ledger is dense and its root
/// matches the leaves; returns the size.
async fn check_everything_acknowledged_is_there(api: &Api, acked: &Acked, run: &str) -> u64 {
    let ids: Vec<String> = all_items(api, "/v1/datasets?limit=200")
        .await
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no dataset twice");
    for id in &acked.datasets {
        assert!(unique.contains(id), "acknowledged dataset {id} is missing");
    }
    // Metric batches: one audit event per batch, each acknowledged batch among them.
    let events = all_items(
        api,
        &format!("/v1/audit/events?subject=run:{run}&action=metrics.append&limit=200"),
    )
    .await;
    let batches: Vec<u64> = events
        .iter()
        .map(|e| e["data"]["batch"].as_u64().unwrap())
        .collect();
    let set: BTreeSet<_> = batches.iter().copied().collect();
    assert_eq!(set.len(), batches.len(), "no batch twice");
    assert_eq!(
        batches.len(),
        set.iter().copied().max().map_or(0, |m| m as usize + 1),
        "batch numbers are dense"
    );
    // Dense ledger, root from the leaves.
    let (size, root, _) = checkpoint(api).await;
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size {
        let page = api
            .get(&format!("/v1/ledger/entries?start={start}&limit=200"))
            .await
            .json();
        for e in page["items"].as_array().unwrap() {
            if start >= size {
                break;
            }
            assert_eq!(e["seq"].as_u64().unwrap(), start, "dense sequence numbers");
            use base64::Engine;
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(e["leaf"].as_str().unwrap())
                .unwrap();
            leaves.push(datapilot::merkle::leaf_hash(&leaf));
            start += 1;
        }
    }
    assert_eq!(
        datapilot::merkle::root_from_leaf_hashes(&leaves),
        root,
        "root"
    );
    size
}

/// Every item of a list, following `next_cursor`.
async fn all_items(api: &Api, first: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut path = first.to_string();
    loop {
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let page = r.json();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("{first}&cursor={c}"),
            None => return out,
        }
    }
}

async fn consistent(api: &Api, from: (u64, [u8; 32]), to: (u64, [u8; 32])) {
    if from.0 == to.0 {
        assert_eq!(from.1, to.1, "one root per size");
        return;
    }
    let proof = api
        .get(&format!(
            "/v1/ledger/proofs/consistency?from={}&to={}",
            from.0, to.0
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
    datapilot::merkle::verify_consistency(from.0, to.0, &hashes, &from.1, &to.1)
        .expect("checkpoints of the two replicas are consistent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_database_one_store() {
    let cluster = Cluster::start();
    let a = cluster.replica("a");
    private_key(&cluster.dir("a").join("ledger.key"));
    let mut b = cluster.replica("b");
    let (api_a, api_b) = (a.client(ADMIN), b.client(ADMIN));
    // Same key, same ledger.
    assert_eq!(
        verifier(&api_a).await.to_string(),
        verifier(&api_b).await.to_string()
    );
    let ds = api_a.dataset("inputs").await;
    let digest = api_b.version(&ds, "in").await;
    let (run, run_token) = api_a.run(&[(&ds, &digest)]).await;
    // An artifact uploaded through one replica downloads through the other.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let up = api_a
        .with_token(&run_token)
        .upload(&run, "model.bin", &bytes, &sha256_hex(&bytes))
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let art = up.json()["id"].as_str().unwrap().to_string();
    let down = api_b
        .get(&format!("/v1/runs/{run}/artifacts/{art}/content"))
        .await;
    assert_eq!(down.status, 200);
    assert!(down.body == bytes, "downloaded through the other replica");

    // Concurrent writers through both replicas.
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let api = if t % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        tasks.push(tokio::spawn(write_load(
            api,
            run.clone(),
            run_token.clone(),
            format!("w{t}"),
            20,
            acked.clone(),
        )));
    }
    for t in tasks {
        t.await.unwrap();
    }
    {
        let acked = acked.lock().unwrap();
        assert_eq!(
            acked.datasets.len(),
            160,
            "every write succeeded while both replicas ran"
        );
        assert_eq!(acked.batches.len(), 160);
    }
    let snapshot = acked.lock().unwrap().clone();
    let size = check_everything_acknowledged_is_there(&api_b, &snapshot, &run).await;
    // Checkpoints from either replica: the same note for the same size, consistent across sizes.
    let (sa, ra, na) = checkpoint(&api_a).await;
    let (sb, rb, nb) = checkpoint(&api_b).await;
    assert_eq!((sa, sb), (size, size));
    assert_eq!(
        (ra, &na),
        (rb, &nb),
        "both replicas sign the same checkpoint"
    );
    // The bundle of the run from A and from B, at the same size: byte-identical.
    let ba = api_a
        .get(&format!("/v1/runs/{run}/evidence?tree_size={size}"))
        .await;
    let bb = api_b
        .get(&format!("/v1/runs/{run}/evidence?tree_size={size}"))
        .await;
    assert_eq!(ba.status, 200, "{}", ba.text());
    assert!(ba.body == bb.body, "bundles from the two replicas differ");
    let report = datapilot::evidence::verify_bundle(&ba.body, &[verifier(&api_a).await]);
    assert!(report.ok, "{report:?}");

    // kill -9 of replica B while writers run through both: writes to B fail (unacknowledged),
    // writes to A go on; nothing acknowledged is lost; B restarts and rejoins.
    let before = (sa, ra);
    let mut tasks = Vec::new();
    for t in 0..6 {
        let api = if t % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        tasks.push(tokio::spawn(write_load(
            api,
            run.clone(),
            run_token.clone(),
            format!("k{t}"),
            30,
            acked.clone(),
        )));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    b.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    // A kept serving: every write through it was acknowledged; through B some were not (it was
    // killed under load, not after it).
    assert_eq!(api_a.get("/v1/health").await.status, 200);
    {
        let acked = acked.lock().unwrap();
        for t in ["k0", "k2", "k4"] {
            assert_eq!(
                acked.per_tag.get(t),
                Some(&30),
                "writes through A: {:?}",
                acked.per_tag
            );
        }
        let through_b: usize = ["k1", "k3", "k5"]
            .iter()
            .map(|t| acked.per_tag.get(*t).copied().unwrap_or(0))
            .sum();
        assert!(
            through_b < 90,
            "B was killed before the load ended: {:?}",
            acked.per_tag
        );
    }
    let b = cluster.replica("b");
    let api_b = b.client(ADMIN);
    let snapshot = acked.lock().unwrap().clone();
    let size = check_everything_acknowledged_is_there(&api_b, &snapshot, &run).await;
    let after = checkpoint(&api_a).await;
    assert_eq!(after.0, size);
    consistent(&api_b, before, (after.0, after.1)).await;
    let (sb2, rb2, _) = checkpoint(&api_b).await;
    assert_eq!(
        (sb2, rb2),
        (after.0, after.1),
        "the restarted replica sees the same ledger"
    );
    drop(a);
    drop(b);
    drop(cluster);
}
