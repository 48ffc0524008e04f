//! The dashboard queries on `DataPilot` (docs/api.md, "Dashboard queries"): the run list's
//! filters, a dataset by name, artifacts by content, multi-generation lineage, metric
//! summaries and comparisons. A second `impl DataPilot` block beside client.rs.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::client::{list, prepare, rejecting, spawn, DataPilot};
use super::error::invalid_argument;
use super::opt;
use crate::model::queries::{LineageDirection, RunFilter};

/// An optional string option, or a typed error when it is there but not a string.
fn opt_str(options: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = opt(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid_argument(&format!("{key} must be a string")))
}

/// An optional whole-number option in `1..=max`.
fn opt_count(options: &JsValue, key: &str, max: u32) -> Result<Option<u32>, JsValue> {
    let v = opt(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=f64::from(max)).contains(&n) => Ok(Some(n as u32)),
        _ => Err(invalid_argument(&format!(
            "{key} must be an integer from 1 to {max}"
        ))),
    }
}

#[wasm_bindgen]
impl DataPilot {
    /// `listRuns` with filters: `{ input, output, status, createdBy, createdAfter,
    /// createdBefore, gitCommit, imageDigest }` besides `limit`, `order` and `cursor`;
    /// `input`/`output` are `"<datasetId>@<digest>"`.
    #[wasm_bindgen(js_name = listRuns, unchecked_return_type = "ListIterator<Run>")]
    pub fn list_runs(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListRunsOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        let filter = RunFilter {
            input: opt_str(&options, "input")?,
            output: opt_str(&options, "output")?,
            status: opt_str(&options, "status")?,
            created_by: opt_str(&options, "createdBy")?,
            created_after: opt_str(&options, "createdAfter")?,
            created_before: opt_str(&options, "createdBefore")?,
            git_commit: opt_str(&options, "gitCommit")?,
            image_digest: opt_str(&options, "imageDigest")?,
        };
        list(p.client.list_runs_where(&filter), &options)
    }

    /// `listDatasets`; with `{ name }` the one dataset of that name (zero or one item).
    #[wasm_bindgen(js_name = listDatasets, unchecked_return_type = "ListIterator<Dataset>")]
    pub fn list_datasets(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListDatasetsOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        match opt_str(&options, "name")? {
            Some(name) => list(p.client.find_datasets_by_name(&name), &options),
            None => list(p.client.list_datasets(), &options),
        }
    }

    /// `findArtifacts`: the artifacts of every run with this content (64 hex SHA-256).
    #[wasm_bindgen(js_name = findArtifacts, unchecked_return_type = "ListIterator<Artifact>")]
    pub fn find_artifacts(
        &self,
        sha256: String,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.find_artifacts(&sha256), &options)
    }

    /// `getLineage(node, { direction, depth })`: the graph `depth` (1-10, default 1) run
    /// generations `"upstream"`, `"downstream"` or `"both"` (default) from `node`
    /// (`run:<runId>` or `dataset_version:<datasetId>@<digest>`).
    #[wasm_bindgen(js_name = getLineage, unchecked_return_type = "Promise<Lineage>")]
    pub fn get_lineage(
        &self,
        node: String,
        #[wasm_bindgen(unchecked_optional_param_type = "LineageOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let direction = match opt_str(&options, "direction")?.as_deref() {
                None | Some("both") => LineageDirection::Both,
                Some("upstream") => LineageDirection::Upstream,
                Some("downstream") => LineageDirection::Downstream,
                Some(_) => {
                    return Err(invalid_argument(
                        "direction must be \"upstream\", \"downstream\" or \"both\"",
                    ))
                }
            };
            let depth = opt_count(&options, "depth", 10)?.unwrap_or(1);
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_lineage(&node, direction, depth).send().await
            }))
        })())
    }

    /// `getMetricSummary(runId, { name, points })`: every metric of the run (or `name`) with
    /// count, last, min, max and a series of at most `points` (1-2000, default 200) buckets.
    #[wasm_bindgen(js_name = getMetricSummary, unchecked_return_type = "Promise<RunMetricSummary>")]
    pub fn get_metric_summary(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "MetricSummaryOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let name = opt_str(&options, "name")?;
            let points = opt_count(&options, "points", 2000)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_metric_summary(&run_id, name.as_deref(), points)
                    .send()
                    .await
            }))
        })())
    }

    /// `compareMetrics(runIds, name, { points })`: metric `name` of 1-10 runs, in order.
    #[wasm_bindgen(js_name = compareMetrics, unchecked_return_type = "Promise<MetricComparison>")]
    pub fn compare_metrics(
        &self,
        #[wasm_bindgen(js_name = runIds)] run_ids: Vec<String>,
        name: String,
        #[wasm_bindgen(unchecked_optional_param_type = "MetricSummaryOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let points = opt_count(&options, "points", 2000)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                let ids: Vec<&str> = run_ids.iter().map(String::as_str).collect();
                c.compare_metrics(&ids, &name, points).send().await
            }))
        })())
    }
}
