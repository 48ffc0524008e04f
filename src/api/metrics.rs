//! Tag `metrics`: metric batches of a run.

use super::WriteOperation;
use crate::client::{path, Call, Client};
use crate::error::{Error, Result};
use crate::model::metrics::{AppendMetricsRequest, MetricBatch, MetricValue};
use crate::pagination::Pager;
use crate::transport::Method;

/// Most points one `appendMetrics` call accepts.
pub const MAX_POINTS_PER_BATCH: usize = 10_000;

/// Checked here because JSON cannot carry NaN/inf: serde_json would write `null` and the
/// server would answer with a less specific error.
fn check_points(req: &AppendMetricsRequest) -> Result<()> {
    if req.points.is_empty() || req.points.len() > MAX_POINTS_PER_BATCH {
        return Err(Error::build("a metric batch holds 1 to 10000 points"));
    }
    if let Some(p) = req.points.iter().find(|p| !p.value.is_finite()) {
        return Err(Error::build(format!(
            "metric {:?} step {} is not a finite number",
            p.name, p.step
        )));
    }
    Ok(())
}

impl Client {
    /// `appendMetrics` — `POST /v1/runs/{run_id}/metrics` (1–10 000 finite points).
    pub fn append_metrics(
        &self,
        run_id: &str,
        req: &AppendMetricsRequest,
    ) -> WriteOperation<MetricBatch> {
        let call = check_points(req)
            .and_then(|()| path(&["runs", run_id, "metrics"]))
            .and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `listMetrics` — `GET /v1/runs/{run_id}/metrics?name=`.
    pub fn list_metrics(&self, run_id: &str, name: Option<&str>) -> Pager<MetricValue> {
        let query = name
            .map(|n| vec![("name", n.to_owned())])
            .unwrap_or_default();
        Pager::new(self.clone(), path(&["runs", run_id, "metrics"]), query)
    }
}
