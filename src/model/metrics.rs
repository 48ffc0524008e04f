//! Metrics: batches of `(name, step, value)` points appended to a run.
//!
//! A batch is committed to the ledger by the SHA-256 of the JCS of its points, never by the
//! floats themselves, so ledger leaves stay free of floating-point formatting questions.

use serde::{Deserialize, Serialize};

/// One metric point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct MetricPoint {
    /// Metric name.
    pub name: String,
    /// Step, ≥ 0.
    pub step: u64,
    /// Finite value (NaN and infinities are rejected by the server and cannot be JSON).
    pub value: f64,
    /// Optional RFC 3339 time of the observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl MetricPoint {
    /// A point without a time.
    pub fn new(name: impl Into<String>, step: u64, value: f64) -> Self {
        Self {
            name: name.into(),
            step,
            value,
            time: None,
        }
    }

    /// Sets the RFC 3339 time of the observation.
    pub fn with_time(mut self, time: impl Into<String>) -> Self {
        self.time = Some(time.into());
        self
    }
}

/// Body of `appendMetrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct AppendMetricsRequest {
    /// 1–10 000 points.
    pub points: Vec<MetricPoint>,
}

/// An appended metric batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct MetricBatch {
    /// Run id.
    pub run_id: String,
    /// Batch number, from 0.
    pub batch: u64,
    /// Number of points.
    pub count: u64,
    /// `sha256:<hex>` of the JCS of the points array.
    pub digest: String,
    /// Seq of the `metrics.append` event.
    pub audit_seq: u64,
}

/// One stored metric point as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct MetricValue {
    /// Metric name.
    pub name: String,
    /// Step.
    pub step: u64,
    /// Value.
    pub value: f64,
    /// Observation time as sent, `None` when the point was sent without one (so the batch
    /// digest can be recomputed from the listed points: docs/formats.md).
    pub time: Option<String>,
    /// Batch the point came in.
    pub batch: u64,
    /// When the server received the batch (for charts of points sent without a time).
    pub received_at: String,
}

impl AppendMetricsRequest {
    /// A batch of `points` (1–10 000, finite values).
    pub fn new(points: Vec<MetricPoint>) -> Self {
        Self { points }
    }
}
