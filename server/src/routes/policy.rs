//! `policy` tag: the versioned policy (required gates, run token lifetime).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::model::{Policy, UpdatePolicyRequest};
use crate::validate;

/// Default run token lifetime when an update omits it (the update replaces the whole policy).
const DEFAULT_TTL: u64 = 86_400;

/// The policy's entity tag: its version, quoted (`"3"`).
fn etag(policy: &Policy) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", policy.version)).expect("digits and quotes")
}

/// The version an `If-Match` names: `None` without the header or for `*` (any current
/// policy). A value that names no version (another server's tag, a weak tag) can match
/// nothing: `precondition_failed`, as RFC 9110 has it.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(None);
    }
    v.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                "precondition_failed",
                format!("If-Match {v:?} names no policy version: send the ETag of getPolicy"),
            )
        })
}

pub async fn get(State(st): State<AppState>, p: Principal) -> ApiResult<impl IntoResponse> {
    p.any_role()?;
    let policy = st.store.get_policy().await?;
    Ok(([(header::ETAG, etag(&policy))], Json(policy)))
}

pub async fn update(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: JsonBody<UpdatePolicyRequest>,
) -> ApiResult<impl IntoResponse> {
    p.admin()?;
    let expected = if_match(&headers)?;
    let req = body.parse().await?;
    if req.required_gates.len() > 64 {
        return Err(ApiError::validation("required_gates", "at most 64 gates"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, g) in req.required_gates.iter().enumerate() {
        validate::gate_name(&format!("required_gates[{i}]"), g)?;
        if !seen.insert(g) {
            return Err(ApiError::validation(
                &format!("required_gates[{i}]"),
                "duplicate gate",
            ));
        }
    }
    let ttl = req.run_token_ttl_seconds.unwrap_or(DEFAULT_TTL);
    if !(60..=604_800).contains(&ttl) {
        return Err(ApiError::validation(
            "run_token_ttl_seconds",
            "must be 60 to 604800",
        ));
    }
    let a = p.writer();
    let policy = st
        .store
        .update_policy_if(&a, &req.required_gates, ttl, expected)
        .await?;
    Ok(([(header::ETAG, etag(&policy))], Json(policy)))
}
