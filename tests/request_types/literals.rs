// Struct literals of request types do not compile outside the crate (E0639), with or without
// `..Default::default()`: adding a field to them is therefore not a breaking change.
use datapilot::model::datasets::CreateDatasetRequest;
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, RunStatus};

fn main() {
    let _ = CreateDatasetRequest {
        name: "churn".into(),
        description: None,
    };
    let _ = CreateRunRequest {
        name: "train".into(),
        ..Default::default()
    };
    let _ = FinishRunRequest {
        status: RunStatus::Succeeded,
        outputs: None,
    };
}
