//! Dashboard queries (docs/api.md, "Dashboard queries"): the run list's filters, a dataset by
//! name, artifacts by content, multi-generation lineage, metric summaries and comparisons.

use super::Operation;
use crate::client::{path, Call, Client};
use crate::error::Error;
use crate::model::artifacts::Artifact;
use crate::model::datasets::Dataset;
use crate::model::lineage::Lineage;
use crate::model::queries::{LineageDirection, MetricComparison, RunFilter, RunMetricSummary};
use crate::model::runs::Run;
use crate::pagination::Pager;

/// Most runs one `compareMetrics` call takes.
pub const MAX_COMPARE_RUNS: usize = 10;

impl Client {
    /// `listRuns` with filters — `GET /v1/runs?input=…&status=…` (combine with
    /// [`Pager::order`] for the latest runs first).
    pub fn list_runs_where(&self, filter: &RunFilter) -> Pager<Run> {
        Pager::new(self.clone(), path(&["runs"]), filter.query())
    }

    /// `listDatasets?name=` — the dataset with this name, as a pager of zero or one item.
    pub fn find_datasets_by_name(&self, name: &str) -> Pager<Dataset> {
        Pager::new(
            self.clone(),
            path(&["datasets"]),
            vec![("name", name.to_owned())],
        )
    }

    /// `findArtifacts` — `GET /v1/artifacts?sha256=`: the artifacts of every run with this
    /// content (64 hex): which run produced this file?
    pub fn find_artifacts(&self, sha256: &str) -> Pager<Artifact> {
        Pager::new(
            self.clone(),
            path(&["artifacts"]),
            vec![("sha256", sha256.to_owned())],
        )
    }

    /// `getLineage` — `GET /v1/lineage?node=&direction=&depth=`: the graph `depth` run
    /// generations (1–10) around `node` (`run:<run_id>` or
    /// `dataset_version:<dataset_id>@<digest>`).
    pub fn get_lineage(
        &self,
        node: &str,
        direction: LineageDirection,
        depth: u32,
    ) -> Operation<Lineage> {
        let call = path(&["lineage"]).map(|p| {
            Call::get(p)
                .query("node", node)
                .query("direction", direction.as_str())
                .query("depth", depth)
        });
        Operation::json(self, call)
    }

    /// `getMetricSummary` — `GET /v1/runs/{run_id}/metrics/summary`: every metric of the run
    /// (or `name`) with count, last, min, max and a series of at most `points` buckets
    /// (server default 200, at most 2000).
    pub fn get_metric_summary(
        &self,
        run_id: &str,
        name: Option<&str>,
        points: Option<u32>,
    ) -> Operation<RunMetricSummary> {
        let call = path(&["runs", run_id, "metrics", "summary"]).map(|p| {
            Call::get(p)
                .query_opt("name", name)
                .query_opt("points", points)
        });
        Operation::json(self, call)
    }

    /// `compareMetrics` — `GET /v1/metrics/compare`: metric `name` of 1 to
    /// [`MAX_COMPARE_RUNS`] runs, in the order given.
    pub fn compare_metrics(
        &self,
        run_ids: &[&str],
        name: &str,
        points: Option<u32>,
    ) -> Operation<MetricComparison> {
        let call = if run_ids.is_empty() || run_ids.len() > MAX_COMPARE_RUNS {
            Err(Error::build(format!(
                "compareMetrics takes 1 to {MAX_COMPARE_RUNS} runs"
            )))
        } else {
            path(&["metrics", "compare"]).map(|p| {
                Call::get(p)
                    .query("run_ids", run_ids.join(","))
                    .query("name", name)
                    .query_opt("points", points)
            })
        };
        Operation::json(self, call)
    }
}
