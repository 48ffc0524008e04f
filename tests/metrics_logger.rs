//! `datapilot::metrics_logger` (the Python package's `run.log_metrics`) against the real
//! server: points logged one at a time arrive exactly once, in batches; a permanent failure
//! stops the logger with the server's error; a full queue blocks or drops as configured; a
//! close that runs out of time reports what it gave up.
#![cfg(feature = "native")]

mod live_server;

use std::collections::HashSet;
use std::time::Duration;

use datapilot::files::{hash_directory, DirOptions};
use datapilot::metrics_logger::{LogError, LoggerConfig, MetricsLogger, OnFull};
use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest};
use datapilot::model::DatasetVersionRef;
use datapilot::Client;
use live_server::{client, start_server, Server};

const ADMIN: &str = "dpt_MetricsLoggerBootstrapAdmin01";

/// A fresh run on `server`: returns the run id and a client acting with its run token.
fn new_run(rt: &tokio::runtime::Runtime, server: &Server, name: &str) -> (String, Client) {
    let admin = client(server, ADMIN);
    let data = server.dir.join(format!("data-{name}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.csv"), name.as_bytes()).unwrap();
    let digest = hash_directory(&data, &DirOptions::default(), |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    rt.block_on(async {
        let ds = admin
            .create_dataset(&CreateDatasetRequest::new(name))
            .send()
            .await
            .unwrap();
        let m = &digest.manifest;
        let files = m
            .files()
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect();
        admin
            .register_dataset_version(
                &ds.id,
                &RegisterDatasetVersionRequest::new(m.digest(), files),
            )
            .send()
            .await
            .unwrap();
        let created = admin
            .create_run(&CreateRunRequest::new(
                name,
                vec![DatasetVersionRef::new(&ds.id, m.digest())],
                "4015b57a143aec5156fd1444a017a32137a3fd0f",
                format!("sha256:{}", "ab".repeat(32)),
            ))
            .send()
            .await
            .unwrap();
        let run_client = admin.with_token(created.run_token.clone()).unwrap();
        (created.run.id, run_client)
    })
}

#[test]
fn points_logged_one_at_a_time_arrive_once_in_batches() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(ADMIN, "mlog");
    let (run_id, run_client) = new_run(&rt, &server, "batches");
    let (logger, task) = MetricsLogger::new(
        run_client.clone(),
        &run_id,
        LoggerConfig::default().with_flush_interval(Duration::from_millis(200)),
    )
    .unwrap();
    rt.spawn(task.run());
    const N: u64 = 25_000;
    for step in 0..N {
        logger
            .try_log(
                Some(step),
                vec![("train/loss".into(), 1.0 / (step + 1) as f64)],
            )
            .unwrap();
    }
    // A step-less call takes the step after the last one.
    logger
        .try_log(None, vec![("eval/acc".into(), 0.5)])
        .unwrap();
    let outcome = logger.flush(Duration::from_secs(60));
    assert!(outcome.complete, "{outcome:?}");
    assert_eq!(outcome.stats.delivered, N + 1);
    assert!(
        outcome.stats.batches >= 3,
        "at most 10,000 points per batch: {outcome:?}"
    );
    let points = rt
        .block_on(run_client.list_metrics(&run_id, None).collect_all())
        .unwrap();
    assert_eq!(points.len() as u64, N + 1, "every point exactly once");
    let steps: HashSet<u64> = points
        .iter()
        .filter(|p| p.name == "train/loss")
        .map(|p| p.step)
        .collect();
    assert_eq!(steps.len() as u64, N);
    let acc = points.iter().find(|p| p.name == "eval/acc").unwrap();
    assert_eq!(acc.step, N);
    // The observation time is the caller's, stamped when logged.
    let time = acc.time.as_deref().expect("the logger sends a time");
    assert_eq!(time.len(), 24, "{time}");
    let closed = logger.close(Duration::from_secs(10));
    assert!(closed.complete);
    assert!(matches!(
        logger.try_log(Some(0), vec![("x".into(), 1.0)]),
        Err(LogError::Closed)
    ));
}

#[test]
fn a_permanent_error_stops_the_logger_with_the_servers_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start_server(ADMIN, "mlog-sealed");
    let (run_id, run_client) = new_run(&rt, &server, "sealed");
    rt.block_on(
        run_client
            .finish_run(&run_id, &FinishRunRequest::succeeded())
            .send(),
    )
    .unwrap();
    let (logger, task) = MetricsLogger::new(run_client, &run_id, LoggerConfig::default()).unwrap();
    rt.spawn(task.run());
    logger
        .try_log(Some(0), vec![("loss".into(), 1.0), ("acc".into(), 0.5)])
        .unwrap();
    let outcome = logger.flush(Duration::from_secs(30));
    assert!(!outcome.complete);
    let failed = outcome.stats.failed.clone().expect("a permanent failure");
    assert_eq!(failed.code(), Some("run_sealed"), "{failed}");
    assert_eq!(outcome.stats.abandoned, 2);
    match logger.try_log(Some(1), vec![("loss".into(), 1.0)]) {
        Err(LogError::Failed(e)) => assert_eq!(e.code(), Some("run_sealed")),
        other => panic!("expected the stored failure, got {other:?}"),
    }
}

#[test]
fn bad_points_are_refused_on_the_callers_thread() {
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let (logger, _task) = MetricsLogger::new(c, "run_x", LoggerConfig::default()).unwrap();
    for (name, value) in [
        ("", 1.0),
        ("has space", 1.0),
        ("/lead", 1.0),
        ("nan", f64::NAN),
        ("inf", f64::NEG_INFINITY),
    ] {
        assert!(
            matches!(
                logger.try_log(Some(0), vec![("ok".into(), 1.0), (name.into(), value)]),
                Err(LogError::Invalid(_))
            ),
            "{name:?} {value}"
        );
    }
    assert_eq!(logger.stats().logged, 0, "all or nothing");
    assert!(MetricsLogger::new(
        Client::builder()
            .base_url("http://127.0.0.1:9")
            .build()
            .unwrap(),
        "run_x",
        LoggerConfig::default().with_batch_points(10_001)
    )
    .is_err());
}

#[test]
fn a_full_queue_blocks_or_drops_and_close_reports_what_it_gave_up() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Nothing listens on port 9 of 127.0.0.1: every send fails to connect (transient).
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let config = LoggerConfig::default()
        .with_queue_points(10)
        .with_batch_points(5)
        .with_flush_interval(Duration::from_millis(50));
    let (blocking, task) = MetricsLogger::new(c.clone(), "run_x", config.clone()).unwrap();
    rt.spawn(task.run());
    // Log until the queue stays full: one batch (5) may be taken into flight, where it stays
    // (every send fails), then 10 more fill the queue and nothing makes room again.
    let mut step = 0u64;
    let mut refusals = 0;
    while refusals < 2 && step < 100 {
        match blocking.try_log(Some(step), vec![("loss".into(), 1.0)]) {
            Ok(()) => step += 1,
            Err(LogError::Full(p)) => {
                assert_eq!(p.len(), 1, "the points are handed back");
                if !blocking.wait_for_space(1, Duration::from_millis(300)) {
                    refusals += 1;
                }
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refusals, 2, "the queue never stayed full");
    let s = blocking.stats();
    assert!(s.pending <= 15 && s.pending == step, "{s:?}");
    assert_eq!(s.dropped, 0, "blocking never drops");
    let closed = blocking.close(Duration::from_millis(500));
    assert!(!closed.complete);
    assert_eq!(closed.stats.delivered, 0);
    assert!(closed.stats.retries >= 1 || closed.stats.last_error.is_some());

    let (dropping, task) =
        MetricsLogger::new(c, "run_x", config.with_on_full(OnFull::Drop)).unwrap();
    rt.spawn(task.run());
    for step in 0..40 {
        dropping
            .try_log(Some(step), vec![("loss".into(), 1.0)])
            .unwrap();
    }
    let s = dropping.stats();
    assert_eq!(s.logged + s.dropped, 40);
    assert!(s.dropped >= 25, "{s:?}");
}
