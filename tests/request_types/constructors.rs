// Every request type through its constructor and setters: what callers write, and what keeps
// compiling when the contract adds an optional field.
use datapilot::model::audit::AuditEventFilter;
use datapilot::model::datasets::{CreateDatasetRequest, RegisterDatasetVersionRequest};
use datapilot::model::gates::{GateOutcome, RecordGateResultRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::policy::UpdatePolicyRequest;
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest};
use datapilot::model::tokens::CreateTokenRequest;
use datapilot::model::{DatasetVersionRef, Role};

fn main() {
    let _ = CreateDatasetRequest::new("churn").with_description("nightly churn data");
    let _ = RegisterDatasetVersionRequest::new("sha256:00", Vec::new()).with_note("first cut");
    let _ = RecordGateResultRequest::new("schema", GateOutcome::Passed).with_detail("rows", "10");
    let input = DatasetVersionRef::new("ds_1", "sha256:00");
    let _ = CreateRunRequest::new("train", vec![input.clone()], "ab", "sha256:cd").with_param("lr", "0.1");
    let _ = FinishRunRequest::succeeded().with_outputs(vec![input]);
    let _ = AppendMetricsRequest::new(vec![MetricPoint::new("loss", 1, 0.5).with_time("2026-01-01T00:00:00.000Z")]);
    let _ = CreateTokenRequest::new("ci", Role::Engineer).with_expires_in_seconds(3600);
    let _ = UpdatePolicyRequest::new(["schema"]).with_run_token_ttl_seconds(600);
    let _ = AuditEventFilter::new().with_subject("run:run_1").with_action("run.create");
}
