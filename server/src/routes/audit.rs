//! `audit` tag: the ledger's events as structured JSON, for auditors and admins.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{page_req, ListScope, P, Q};
use crate::model::{AuditEvent, Page};

/// The audit actions of the contract (`AuditAction`).
const ACTIONS: [&str; 12] = [
    "ledger.init",
    "dataset.create",
    "dataset_version.register",
    "gate.record",
    "policy.update",
    "run.create",
    "run.finish",
    "run.token_reissue",
    "metrics.append",
    "artifact.upload",
    "token.create",
    "token.revoke",
];

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    subject: Option<String>,
    action: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<String>,
}

pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    scope: ListScope,
    Q(q): Q<AuditQuery>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    p.audit()?;
    let pr = page_req(q.limit, q.cursor.as_deref(), q.order.as_deref(), &scope)?;
    if let Some(s) = &q.subject {
        const KINDS: [&str; 6] = [
            "dataset",
            "dataset_version",
            "run",
            "policy",
            "token",
            "ledger",
        ];
        let ok = s.len() <= 512
            && s.split_once(':').is_some_and(|(k, rest)| {
                KINDS.contains(&k) && !rest.is_empty() && !rest.chars().any(char::is_whitespace)
            });
        if !ok {
            return Err(ApiError::validation("subject", "must be <kind>:<id> with kind one of dataset, dataset_version, run, policy, token, ledger"));
        }
    }
    if let Some(a) = &q.action {
        if !ACTIONS.contains(&a.as_str()) {
            return Err(ApiError::validation(
                "action",
                format!("must be one of {}", ACTIONS.join(", ")),
            ));
        }
    }
    Ok(Json(page(
        pr,
        st.store
            .list_audit(q.subject.as_deref(), q.action.as_deref(), pr)
            .await?,
    )))
}

pub async fn get(
    State(st): State<AppState>,
    p: Principal,
    P(seq): P<String>,
) -> ApiResult<Json<AuditEvent>> {
    p.audit()?;
    let seq: u64 = seq
        .parse()
        .ok()
        .filter(|s| *s <= crate::validate::MAX_SAFE_INTEGER)
        .ok_or_else(|| ApiError::validation("seq", "must be a non-negative integer"))?;
    Ok(Json(st.store.get_audit(seq).await?))
}
