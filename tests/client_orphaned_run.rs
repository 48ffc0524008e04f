//! A run whose `createRun` answer was lost: the keyed retry is `secret_not_replayable` (the
//! token is shown once), and `reissue_run_token` gives a working token back (the old one stops
//! working), against the real server.

#![cfg(feature = "native")]

mod live_server;

use datapilot::manifest::ManifestBuilder;
use datapilot::model::datasets::{CreateDatasetRequest, RegisterDatasetVersionRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::runs::CreateRunRequest;
use datapilot::model::DatasetVersionRef;
use live_server::{client, start_server};

const ADMIN: &str = "dpt_OrphanedRunBootstrapAdmin0001";

#[tokio::test]
async fn a_lost_run_token_is_reissued() {
    let server = start_server(ADMIN, "orphaned-run");
    let dp = client(&server, ADMIN);
    let ds = dp
        .create_dataset(&CreateDatasetRequest::new("orphans"))
        .send()
        .await
        .unwrap();
    let mut b = ManifestBuilder::new();
    let mut f = b.begin_file("a.csv").unwrap();
    f.update(b"x\n");
    f.finish();
    let manifest = b.finish().unwrap();
    let v = dp
        .register_dataset_version(
            &ds.id,
            &RegisterDatasetVersionRequest::from_manifest(&manifest),
        )
        .send()
        .await
        .unwrap()
        .version;
    let req = CreateRunRequest::new(
        "lost",
        vec![DatasetVersionRef::new(&ds.id, &v.digest)],
        "4015b57a143aec5156fd1444a017a32137a3fd0f",
        format!("sha256:{}", "6105d6cc".repeat(8)),
    );
    let first = dp
        .create_run(&req)
        .idempotency_key("lost-run")
        .send()
        .await
        .unwrap();
    // The answer "never arrived": the retry with the key cannot show the token again.
    let retry = dp
        .create_run(&req)
        .idempotency_key("lost-run")
        .send()
        .await
        .unwrap_err();
    assert_eq!(retry.code(), Some("secret_not_replayable"), "{retry}");
    let run_id = first.run.id.clone();
    let again = dp.reissue_run_token(&run_id).send().await.unwrap();
    assert_eq!(again.run_id, run_id);
    assert_ne!(again.run_token.expose(), first.run_token.expose());
    let points = AppendMetricsRequest::new(vec![MetricPoint::new("loss", 1, 0.5)]);
    dp.with_token(again.run_token)
        .unwrap()
        .append_metrics(&run_id, &points)
        .send()
        .await
        .unwrap();
    let old = dp
        .with_token(first.run_token)
        .unwrap()
        .append_metrics(&run_id, &points)
        .send()
        .await
        .unwrap_err();
    assert_eq!(old.status(), Some(401), "{old}");
}
