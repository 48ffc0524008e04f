//! The dashboard queries through the Rust SDK against the real reference server: order,
//! run filters, a dataset by name, artifacts by content, lineage three generations deep,
//! metric summaries and a comparison (docs/api.md, "Dashboard queries").

#![cfg(feature = "native")]

mod live_server;

use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::queries::{LineageDirection, RunFilter};
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest};
use datapilot::model::DatasetVersionRef;
use datapilot::{Client, Order};
use live_server::{client, start_server};

const ADMIN: &str = "dpt_SdkQueriesBootstrapAdmin0001";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A dataset with one version; returns (dataset id, digest).
async fn version(c: &Client, name: &str) -> (String, String) {
    let ds = c
        .create_dataset(&CreateDatasetRequest::new(name))
        .send()
        .await
        .unwrap();
    let files = vec![FileEntry {
        path: format!("{name}.csv"),
        sha256: sha256_hex(name.as_bytes()),
        size: name.len() as u64,
    }];
    let manifest: Vec<datapilot::manifest::FileEntry> = files
        .iter()
        .map(|f| datapilot::manifest::FileEntry {
            path: f.path.clone(),
            sha256: f.sha256.clone(),
            size: f.size,
        })
        .collect();
    let digest = datapilot::manifest::dataset_digest(&manifest).unwrap();
    c.register_dataset_version(&ds.id, &RegisterDatasetVersionRequest::new(&digest, files))
        .send()
        .await
        .unwrap();
    (ds.id, digest)
}

#[tokio::test(flavor = "current_thread")]
async fn dashboard_queries_through_the_sdk() {
    let server = start_server(ADMIN, "sdk-queries");
    let c = client(&server, ADMIN);
    let chain: Vec<(String, String)> = {
        let mut v = Vec::new();
        for name in ["raw", "clean", "features", "model"] {
            v.push(version(&c, name).await);
        }
        v
    };
    // raw -> r0 -> clean -> r1 -> features -> r2 -> model
    let mut runs = Vec::new();
    for g in 0..3 {
        let (ds, digest) = &chain[g];
        let created = c
            .create_run(&CreateRunRequest::new(
                format!("gen-{g}"),
                vec![DatasetVersionRef::new(ds, digest)],
                "a".repeat(40),
                format!("sha256:{}", "b".repeat(64)),
            ))
            .send()
            .await
            .unwrap();
        let id = created.run.id.clone();
        let rc = c.with_token(created.run_token.clone()).unwrap();
        let points: Vec<MetricPoint> = (0..300)
            .map(|s| MetricPoint::new("loss", s, (g + 1) as f64 / (s + 1) as f64))
            .collect();
        rc.append_metrics(&id, &AppendMetricsRequest::new(points))
            .send()
            .await
            .unwrap();
        rc.upload_artifact_bytes(&id, "weights.bin", format!("w{g}").into_bytes())
            .send()
            .await
            .unwrap();
        let (ods, odigest) = &chain[g + 1];
        rc.finish_run(
            &id,
            &FinishRunRequest::succeeded().with_outputs(vec![DatasetVersionRef::new(ods, odigest)]),
        )
        .send()
        .await
        .unwrap();
        runs.push(id);
    }

    // Latest first, and filters.
    let latest: Vec<String> = c
        .list_runs()
        .order(Order::Desc)
        .limit(2)
        .collect_all()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        latest,
        vec![runs[2].clone(), runs[1].clone(), runs[0].clone()]
    );
    let on_clean = c
        .list_runs_where(&RunFilter::new().with_input(&chain[1].0, &chain[1].1))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(on_clean.len(), 1);
    assert_eq!(on_clean[0].id, runs[1]);
    let made_model = c
        .list_runs_where(&RunFilter::new().with_output(&chain[3].0, &chain[3].1))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(made_model[0].id, runs[2]);
    let succeeded = c
        .list_runs_where(
            &RunFilter::new()
                .with_status("succeeded")
                .with_git_commit("a".repeat(40)),
        )
        .order(Order::Desc)
        .limit(1)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(succeeded.len(), 3);
    assert_eq!(succeeded[0].id, runs[2]);

    // A dataset by name; artifacts by content.
    let found = c
        .find_datasets_by_name("features")
        .collect_all()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, chain[2].0);
    assert!(c
        .find_datasets_by_name("nope")
        .collect_all()
        .await
        .unwrap()
        .is_empty());
    let arts = c
        .find_artifacts(&sha256_hex(b"w1"))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].run_id, runs[1]);

    // Lineage: three generations downstream from raw reach the model.
    let node = format!("dataset_version:{}@{}", chain[0].0, chain[0].1);
    let g3 = c
        .get_lineage(&node, LineageDirection::Downstream, 3)
        .send()
        .await
        .unwrap();
    let model = format!("dataset_version:{}@{}", chain[3].0, chain[3].1);
    assert!(g3.nodes.iter().any(|n| n.id == model));
    let g1 = c
        .get_lineage(&node, LineageDirection::Downstream, 1)
        .send()
        .await
        .unwrap();
    assert!(!g1.nodes.iter().any(|n| n.id == model));
    assert_eq!(
        g1.nodes.iter().filter(|n| n.id.starts_with("run:")).count(),
        1
    );

    // Metric summaries and a comparison.
    let s = c
        .get_metric_summary(&runs[0], None, Some(30))
        .send()
        .await
        .unwrap();
    assert_eq!(s.metrics.len(), 1);
    assert_eq!(s.metrics[0].count, 300);
    assert_eq!(s.metrics[0].series.len(), 30);
    assert_eq!(s.metrics[0].max, 1.0);
    let ids: Vec<&str> = runs.iter().map(String::as_str).collect();
    let cmp = c
        .compare_metrics(&ids, "loss", Some(10))
        .send()
        .await
        .unwrap();
    assert_eq!(cmp.runs.len(), 3);
    assert_eq!(cmp.runs[2].metrics[0].max, 3.0);
    let too_many = vec![ids[0]; 11];
    let err = c
        .compare_metrics(&too_many, "loss", None)
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 to 10"), "{err}");
}
