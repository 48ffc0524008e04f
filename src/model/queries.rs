//! Dashboard queries: run filters, multi-hop lineage, metric summaries and comparisons.
//!
//! Lists take their filters as query parameters (`listRuns?status=...`); the summaries are
//! computed by the server from the stored points, so a chart of a million-point series is one
//! small answer (`points` buckets, each with its mean, min and max).

use serde::{Deserialize, Serialize};

use super::string_enum;

/// Filters of `listRuns` (all optional; a run must match every filter given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Runs that consumed this dataset version (`ds_…@sha256:…`).
    pub input: Option<String>,
    /// Runs that produced this dataset version (`ds_…@sha256:…`).
    pub output: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// Token id of the creator (`tok_…`).
    pub created_by: Option<String>,
    /// Created at or after this RFC 3339 time.
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    pub created_before: Option<String>,
    /// Exact git commit.
    pub git_commit: Option<String>,
    /// Exact image digest (`sha256:…`).
    pub image_digest: Option<String>,
}

impl RunFilter {
    /// No filter: every run.
    pub fn new() -> Self {
        Self::default()
    }
    /// Runs that consumed `dataset_id@digest`.
    pub fn with_input(mut self, dataset_id: &str, digest: &str) -> Self {
        self.input = Some(format!("{dataset_id}@{digest}"));
        self
    }
    /// Runs that produced `dataset_id@digest`.
    pub fn with_output(mut self, dataset_id: &str, digest: &str) -> Self {
        self.output = Some(format!("{dataset_id}@{digest}"));
        self
    }
    /// Runs with this status.
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }
    /// Runs created by this token id.
    pub fn with_created_by(mut self, token_id: impl Into<String>) -> Self {
        self.created_by = Some(token_id.into());
        self
    }
    /// Runs created at or after `time` (RFC 3339).
    pub fn with_created_after(mut self, time: impl Into<String>) -> Self {
        self.created_after = Some(time.into());
        self
    }
    /// Runs created before `time` (RFC 3339).
    pub fn with_created_before(mut self, time: impl Into<String>) -> Self {
        self.created_before = Some(time.into());
        self
    }
    /// Runs of this git commit.
    pub fn with_git_commit(mut self, commit: impl Into<String>) -> Self {
        self.git_commit = Some(commit.into());
        self
    }
    /// Runs in this image.
    pub fn with_image_digest(mut self, digest: impl Into<String>) -> Self {
        self.image_digest = Some(digest.into());
        self
    }

    /// The query parameters, in a fixed order.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        [
            ("input", &self.input),
            ("output", &self.output),
            ("status", &self.status),
            ("created_by", &self.created_by),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("git_commit", &self.git_commit),
            ("image_digest", &self.image_digest),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

string_enum! {
    /// Which way `getLineage` walks from its node.
    pub enum LineageDirection {
        /// Towards what the node came from: the runs that produced a version, their inputs, …
        Upstream => "upstream",
        /// Towards what came of the node: the runs that used a version, their outputs, …
        Downstream => "downstream",
        /// Both ways.
        Both => "both",
    }
}

/// One bucket of a downsampled series: consecutive points, in step order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct MetricSeriesPoint {
    /// Last step in the bucket.
    pub step: u64,
    /// Mean of the bucket's values (the value itself for a bucket of one point).
    pub value: f64,
    /// Smallest value in the bucket.
    pub min: f64,
    /// Largest value in the bucket.
    pub max: f64,
}

/// A metric of a run, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct MetricSummary {
    /// Metric name.
    pub name: String,
    /// Points stored.
    pub count: u64,
    /// Step of the point stored last.
    pub last_step: u64,
    /// Value of the point stored last.
    pub last: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// At most `points` buckets in step order (every point when there are no more).
    pub series: Vec<MetricSeriesPoint>,
}

/// `getMetricSummary`: every metric of a run (or the one asked for), summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct RunMetricSummary {
    /// Run id.
    pub run_id: String,
    /// Run name.
    pub run_name: String,
    /// One entry per metric name, sorted by name.
    pub metrics: Vec<MetricSummary>,
}

/// `compareMetrics`: one metric across runs, in the order the runs were asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct MetricComparison {
    /// Metric name.
    pub name: String,
    /// One entry per run; `metrics` is empty for a run without that metric.
    pub runs: Vec<RunMetricSummary>,
}
