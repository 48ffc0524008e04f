//! `policy` tag: the versioned policy (required gates, run token lifetime).

use axum::extract::State;
use axum::Json;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::model::{Policy, UpdatePolicyRequest};
use crate::validate;

/// Default run token lifetime when an update omits it (the update replaces the whole policy).
const DEFAULT_TTL: u64 = 86_400;

pub async fn get(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Policy>> {
    p.any_role()?;
    Ok(Json(st.store.get_policy().await?))
}

pub async fn update(
    State(st): State<AppState>,
    p: Principal,
    body: JsonBody<UpdatePolicyRequest>,
) -> ApiResult<Json<Policy>> {
    p.admin()?;
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
    Ok(Json(
        st.store.update_policy(&a, &req.required_gates, ttl).await?,
    ))
}
