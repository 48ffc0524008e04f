//! A native `Client` in a tokio service: one client, cloned into 16 tasks of a multi-threaded
//! runtime, all writing at once against the real reference server (runs, metrics, artifacts,
//! finish), then read back through `Pager::into_stream`. This file would not compile with the
//! `Rc`/`Cell` client (`tokio::spawn` needs `Send` futures).

#![cfg(feature = "native")]

mod live_server;

use std::collections::BTreeSet;
use std::time::Duration;

use datapilot::manifest::ManifestBuilder;
use datapilot::model::datasets::{CreateDatasetRequest, RegisterDatasetVersionRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, RunStatus};
use datapilot::model::DatasetVersionRef;
use datapilot::{Client, Error};
use futures_util::{StreamExt, TryStreamExt};
use live_server::{client, start_server};

const ADMIN: &str = "dpt_ConcurrencyBootstrapAdmin001";
const TASKS: usize = 16;

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}
fn assert_send<T: Send>(_: &T) {}

/// One task's job: a run with metrics, an artifact and a finish, each with the run's token.
async fn job(dp: Client, input: DatasetVersionRef, i: usize) -> Result<String, Error> {
    let created = dp
        .create_run(
            &CreateRunRequest::new(
                format!("task-{i}"),
                vec![input],
                "4015b57a143aec5156fd1444a017a32137a3fd0f",
                format!("sha256:{}", "6105d6cc".repeat(8)),
            )
            .with_param("task", i.to_string()),
        )
        // Distinct keys: 16 distinct runs (the same key would replay one run).
        .idempotency_key(format!("concurrency-task-{i}"))
        .send()
        .await?;
    let id = created.run.id.clone();
    let run = dp.with_token(created.run_token)?;
    for step in 0..3u64 {
        let points = vec![MetricPoint::new(
            "loss",
            step,
            1.0 / (step + i as u64 + 1) as f64,
        )];
        run.append_metrics(&id, &AppendMetricsRequest::new(points))
            .send()
            .await?;
    }
    run.upload_artifact_bytes(
        &id,
        "model.bin",
        format!("weights of task {i}").into_bytes(),
    )
    .send()
    .await?;
    let finished = run
        .finish_run(&id, &FinishRunRequest::succeeded())
        .send()
        .await?;
    assert_eq!(finished.status, RunStatus::Succeeded);
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_shared_by_16_tasks_writing_concurrently() {
    let server = start_server(ADMIN, "concurrency");
    let dp = client(&server, ADMIN);
    assert_send_sync_clone(&dp);
    assert_send(&dp.get_health().send());
    assert_send(&dp.list_runs().into_stream());

    let ds = dp
        .create_dataset(&CreateDatasetRequest::new("shared-client"))
        .send()
        .await
        .unwrap();
    let mut b = ManifestBuilder::new();
    let mut f = b.begin_file("train.csv").unwrap();
    f.update(b"id,label\n1,cat\n");
    f.finish();
    let manifest = b.finish().unwrap();
    let version = dp
        .register_dataset_version(
            &ds.id,
            &RegisterDatasetVersionRequest::from_manifest(&manifest),
        )
        .send()
        .await
        .unwrap()
        .version;
    let input = DatasetVersionRef::new(&ds.id, &version.digest);

    let attempts_before = dp.attempts_sent();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        tasks.spawn(job(dp.clone(), input.clone(), i));
    }
    let mut ids = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        ids.insert(
            joined
                .expect("task panicked")
                .expect("task's calls succeed"),
        );
    }
    assert_eq!(ids.len(), TASKS, "16 distinct runs");
    // Clones share one attempt counter (and retry budget): 16 × 6 calls went through it.
    assert!(dp.attempts_sent() - attempts_before >= (TASKS * 6) as u64);

    // Read back with the one paging shape: pages of 5, as a stream of items.
    let listed: Vec<_> = dp
        .list_runs()
        .limit(5)
        .timeout(Duration::from_secs(10))
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    let listed_ids: BTreeSet<_> = listed.iter().map(|r| r.id.clone()).collect();
    assert_eq!(listed_ids, ids);
    assert!(listed.iter().all(|r| r.status == RunStatus::Succeeded));

    // Every run's artifacts and metrics are its own, read concurrently through clones.
    let mut reads = tokio::task::JoinSet::new();
    for id in ids {
        let dp = dp.clone();
        reads.spawn(async move {
            let artifacts = dp.list_artifacts(&id).collect_all().await?;
            let metrics = dp.list_metrics(&id, Some("loss")).collect_all().await?;
            Ok::<_, Error>((artifacts.len(), metrics.len()))
        });
    }
    while let Some(r) = reads.join_next().await {
        assert_eq!(r.unwrap().unwrap(), (1, 3));
    }

    // A list that cannot be built reports it from the stream, without a request.
    let before = dp.attempts_sent();
    let first = dp.list_artifacts("..").into_stream().next().await;
    assert!(matches!(first, Some(Err(Error::Build { .. }))), "{first:?}");
    assert_eq!(dp.attempts_sent(), before);
}
