//! The server's request extractors (`datapilot_server::extract`): JSON bodies through
//! `JsonBody::parse` into every request model, query strings through `Q<T>` into every query
//! type, path parameters through `P<T>` behind an axum router; then the checks each handler
//! runs on what was extracted (mirrored from `server/src/routes/`, in the same order).
//!
//! Properties: nothing panics (a panic in a handler is a 500 with a lost request); every
//! refusal is a 4xx `application/problem+json` document whose status, code and detail follow
//! the contract; no path parameter makes the router answer 5xx.

#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, Request, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use datapilot::manifest::{FileEntry, Manifest, ManifestError};
use datapilot_fuzz_support::{block_on, server_op};
use datapilot_server::error::ApiError;
use datapilot_server::extract::{
    JsonBody, PageQuery, JSON_LIMIT, MANIFEST_LIMIT, METRICS_LIMIT, P, Q,
};
use datapilot_server::model::{
    AppendMetricsRequest, CreateDatasetRequest, CreateRunRequest, CreateTokenRequest,
    FinishRunRequest, RecordGateRequest, RegisterVersionRequest, UpdatePolicyRequest, VersionRef,
};
use datapilot_server::routes::{artifacts, audit, evidence, ledger, runs};
use datapilot_server::validate;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

type Checked = Result<(), ApiError>;

fuzz_target!(|data: &[u8]| {
    let Some((op, payload)) = server_op(data) else {
        return;
    };
    let outcome = match op {
        "createDataset" => body::<CreateDatasetRequest, JSON_LIMIT>(payload).and_then(|r| {
            validate::dataset_name("name", &r.name)?;
            r.description
                .map_or(Ok(()), |d| validate::long_text("description", &d))
        }),
        "registerDatasetVersion" => {
            body::<RegisterVersionRequest, MANIFEST_LIMIT>(payload).and_then(register_version)
        }
        "recordGate" => body::<RecordGateRequest, JSON_LIMIT>(payload).and_then(|r| {
            validate::gate_name("gate", &r.gate)?;
            validate::string_map("details", &r.details.unwrap_or_default(), 64)
        }),
        "updatePolicy" => body::<UpdatePolicyRequest, JSON_LIMIT>(payload).and_then(update_policy),
        "createRun" => body::<CreateRunRequest, JSON_LIMIT>(payload).and_then(|r| {
            validate::label("name", &r.name)?;
            refs("inputs", &r.inputs, 1)?;
            validate::git_commit("git_commit", &r.git_commit)?;
            validate::digest("image_digest", &r.image_digest)?;
            validate::string_map("params", &r.params.unwrap_or_default(), 256)
        }),
        "finishRun" => body::<FinishRunRequest, JSON_LIMIT>(payload)
            .and_then(|r| r.outputs.map_or(Ok(()), |o| refs("outputs", &o, 0))),
        "appendMetrics" => {
            body::<AppendMetricsRequest, METRICS_LIMIT>(payload).and_then(append_metrics)
        }
        "createToken" => body::<CreateTokenRequest, JSON_LIMIT>(payload).and_then(|r| {
            validate::label("name", &r.name)?;
            match r.expires_in_seconds {
                Some(s) if !(60..=31_536_000).contains(&s) => Err(ApiError::validation(
                    "expires_in_seconds",
                    "must be 60 to 31536000",
                )),
                _ => Ok(()),
            }
        }),
        "pageQuery" => {
            query::<PageQuery>(payload).map_or(Ok(()), |q| q.and_then(|q| q.to_req().map(drop)))
        }
        "ledgerEntriesQuery" => {
            query::<ledger::EntriesQuery>(payload).map_or(Ok(()), |q| q.map(drop))
        }
        "inclusionQuery" => {
            query::<ledger::InclusionQuery>(payload).map_or(Ok(()), |q| q.map(drop))
        }
        "consistencyQuery" => {
            query::<ledger::ConsistencyQuery>(payload).map_or(Ok(()), |q| q.map(drop))
        }
        "uploadQuery" => query::<artifacts::UploadQuery>(payload).map_or(Ok(()), |q| q.map(drop)),
        "metricsQuery" => query::<runs::MetricsQuery>(payload).map_or(Ok(()), |q| q.map(drop)),
        "auditQuery" => query::<audit::AuditQuery>(payload).map_or(Ok(()), |q| q.map(drop)),
        "evidenceQuery" => {
            query::<evidence::EvidenceQuery>(payload).map_or(Ok(()), |q| q.map(drop))
        }
        "runPath" => return path("/v1/runs/", payload),
        "versionPath" => return path("/v1/datasets/", payload),
        other => unreachable!("no case for {other}"),
    };
    if let Err(e) = outcome {
        check_problem(e);
    }
});

/// A POST with a complete JSON body, extracted and parsed as the handlers do.
fn body<T: DeserializeOwned, const LIMIT: usize>(payload: &[u8]) -> Result<T, ApiError> {
    let req = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, payload.len())
        .body(Body::from(payload.to_vec()))
        .expect("a request");
    block_on(async {
        let Ok(body) = JsonBody::<T, LIMIT>::from_request(req, &()).await;
        body.parse().await
    })
}

/// `Q<T>` on `/?<payload>`; `None` when the bytes are no URI (hyper refuses those first).
fn query<T: DeserializeOwned>(payload: &[u8]) -> Option<Result<T, ApiError>> {
    let uri = Uri::try_from([b"/?", payload].concat()).ok()?;
    let (mut parts, ()) = Request::builder().uri(uri).body(()).ok()?.into_parts();
    Some(block_on(Q::<T>::from_request_parts(&mut parts, &())).map(|q| q.0))
}

static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    async fn run(P(run_id): P<String>) -> Result<StatusCode, ApiError> {
        assert!(
            !run_id.contains('/'),
            "a path parameter spans segments: {run_id:?}"
        );
        Ok(StatusCode::NO_CONTENT)
    }
    async fn version(P((dataset_id, digest)): P<(String, String)>) -> Result<StatusCode, ApiError> {
        assert!(!dataset_id.contains('/') && !digest.contains('/'));
        validate::digest("digest", &digest)?;
        Ok(StatusCode::NO_CONTENT)
    }
    Router::new()
        .route("/v1/runs/{run_id}", get(run))
        .route("/v1/datasets/{dataset_id}/versions/{digest}", get(version))
});

/// A GET of `<prefix><payload>` through the router and `P<T>`.
fn path(prefix: &str, payload: &[u8]) {
    let Ok(uri) = Uri::try_from([prefix.as_bytes(), payload].concat()) else {
        return;
    };
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("a request");
    let resp = block_on(ROUTER.clone().oneshot(req)).expect("the router is infallible");
    let status = resp.status();
    assert!(!status.is_server_error(), "{status} for a path parameter");
    if status.is_client_error() && status != StatusCode::NOT_FOUND {
        check_problem_response(resp, status);
    }
}

fn refs(field: &str, list: &[VersionRef], min: usize) -> Checked {
    if list.len() < min || list.len() > 100 {
        return Err(ApiError::validation(
            field,
            format!("must have {min} to 100 entries"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, r) in list.iter().enumerate() {
        validate::digest(&format!("{field}[{i}].digest"), &r.digest)?;
        if !seen.insert(r) {
            return Err(ApiError::validation(
                &format!("{field}[{i}]"),
                "duplicate entry",
            ));
        }
    }
    Ok(())
}

fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::DigestMismatch { .. } => ApiError::new("digest_mismatch", e.to_string()),
        ManifestError::InvalidDigest { .. } => ApiError::validation("digest", e.to_string()),
        other => ApiError::validation("files", other.to_string()),
    }
}

fn register_version(r: RegisterVersionRequest) -> Checked {
    validate::digest("digest", &r.digest)?;
    if let Some(n) = &r.note {
        validate::long_text("note", n)?;
    }
    if r.files.is_empty() || r.files.len() > 100_000 {
        return Err(ApiError::validation("files", "must list 1 to 100000 files"));
    }
    for (i, f) in r.files.iter().enumerate() {
        validate::dpm_path(&format!("files[{i}].path"), &f.path, 4096)?;
        validate::safe_int(&format!("files[{i}].size"), f.size)?;
    }
    let files: Vec<FileEntry> = r.files.into_iter().map(FileEntry::from).collect();
    let manifest = Manifest::from_entries(files).map_err(manifest_error)?;
    validate::safe_int("files", manifest.total_bytes())?;
    manifest.check_digest(&r.digest).map_err(manifest_error)
}

fn update_policy(r: UpdatePolicyRequest) -> Checked {
    if r.required_gates.len() > 64 {
        return Err(ApiError::validation("required_gates", "at most 64 gates"));
    }
    let mut seen = BTreeSet::new();
    for (i, g) in r.required_gates.iter().enumerate() {
        validate::gate_name(&format!("required_gates[{i}]"), g)?;
        if !seen.insert(g) {
            return Err(ApiError::validation(
                &format!("required_gates[{i}]"),
                "duplicate gate",
            ));
        }
    }
    Ok(())
}

fn append_metrics(r: AppendMetricsRequest) -> Checked {
    if r.points.is_empty() || r.points.len() > 10_000 {
        return Err(ApiError::validation(
            "points",
            "must have 1 to 10000 points",
        ));
    }
    for (i, pt) in r.points.iter().enumerate() {
        validate::metric_name(&format!("points[{i}].name"), &pt.name)?;
        validate::safe_int(&format!("points[{i}].step"), pt.step)?;
        if !pt.value.is_finite() {
            return Err(ApiError::validation(
                &format!("points[{i}].value"),
                "must be finite",
            ));
        }
        if let Some(t) = &pt.time {
            validate::timestamp(&format!("points[{i}].time"), t)?;
        }
    }
    // The handler hashes the accepted points with `canon::jcs`, which panics on a value it
    // cannot serialise: the checks above must have excluded every such value.
    let _ = datapilot_server::canon::jcs(&r.points);
    Ok(())
}

/// An error the extractors or checks raised: a client error, as problem+json.
fn check_problem(e: ApiError) {
    let status = e.status();
    assert!(status.is_client_error(), "{e} answered with {status}");
    check_problem_response(e.into_response(), status);
}

fn check_problem_response(resp: axum::response::Response, status: StatusCode) {
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..])
    );
    let bytes = block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).expect("a body");
    let problem: serde_json::Value = serde_json::from_slice(&bytes).expect("problem+json parses");
    assert_eq!(problem["status"], status.as_u16());
    let detail = problem["detail"].as_str().expect("a detail");
    assert!(
        !detail.is_empty() && detail.chars().count() <= 4096,
        "detail {detail:?}"
    );
    let code = problem["code"].as_str().expect("a code");
    assert_eq!(datapilot_server::error::code_info(code).0, status);
}
