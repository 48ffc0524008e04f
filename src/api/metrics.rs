//! Tag `metrics`: metric batches of a run.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::{Error, Result};
use crate::model::metrics::{AppendMetricsRequest, MetricBatch, MetricValue};
use crate::pagination::Pager;
use crate::transport::Method;

/// Most points one `appendMetrics` call accepts.
pub const MAX_POINTS_PER_BATCH: usize = 10_000;

impl Client {
    /// `appendMetrics` — `POST /v1/runs/{run_id}/metrics` (1–10 000 finite points).
    pub async fn append_metrics(
        &self,
        run_id: &str,
        req: &AppendMetricsRequest,
    ) -> Result<MetricBatch> {
        self.append_metrics_with(run_id, req, &RequestOptions::default())
            .await
    }

    /// `appendMetrics` with per-call options.
    pub async fn append_metrics_with(
        &self,
        run_id: &str,
        req: &AppendMetricsRequest,
        opts: &RequestOptions,
    ) -> Result<MetricBatch> {
        // Checked here because JSON cannot carry NaN/inf: serde_json would write `null` and the
        // server would answer with a less specific error.
        if req.points.is_empty() || req.points.len() > MAX_POINTS_PER_BATCH {
            return Err(Error::build("a metric batch holds 1 to 10000 points"));
        }
        if let Some(p) = req.points.iter().find(|p| !p.value.is_finite()) {
            return Err(Error::build(format!(
                "metric {:?} step {} is not a finite number",
                p.name, p.step
            )));
        }
        let p = path(&["runs", run_id, "metrics"])?;
        self.json(Call::json(Method::Post, p, req, opts)?).await
    }

    /// `listMetrics` — `GET /v1/runs/{run_id}/metrics?name=`.
    pub fn list_metrics(&self, run_id: &str, name: Option<&str>) -> Result<Pager<MetricValue>> {
        let query = name
            .map(|n| vec![("name", n.to_owned())])
            .unwrap_or_default();
        Ok(Pager::new(
            self.clone(),
            path(&["runs", run_id, "metrics"])?,
            query,
        ))
    }
}
