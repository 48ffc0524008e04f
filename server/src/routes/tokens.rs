//! `tokens` tag: API tokens, created and revoked by admins. The secret is returned once; only
//! its SHA-256 is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::page;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListScope, PageQuery, P, Q};
use crate::model::{ApiToken, CreateTokenRequest, CreatedToken, Page};
use crate::util::{fmt_time, hash_secret, new_secret, now};
use crate::validate;

pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    body: JsonBody<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    p.admin()?;
    let req = body.parse().await?;
    validate::label("name", &req.name)?;
    let expires_at = match req.expires_in_seconds {
        None => None,
        Some(s) if (60..=31_536_000).contains(&s) => {
            Some(fmt_time(now() + chrono::Duration::seconds(s as i64)))
        }
        Some(_) => {
            return Err(ApiError::validation(
                "expires_in_seconds",
                "must be 60 to 31536000",
            ))
        }
    };
    let secret = new_secret("dpt_");
    let hash = hash_secret(&secret);
    let a = p.writer();
    let token = st
        .store
        .create_token(&a, &req.name, req.role, &hash, expires_at.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

pub async fn list(
    State(st): State<AppState>,
    p: Principal,
    scope: ListScope,
    Q(q): Q<PageQuery>,
) -> ApiResult<Json<Page<ApiToken>>> {
    p.admin()?;
    let pr = q.to_req(&scope)?;
    Ok(Json(page(pr, st.store.list_tokens(pr).await?)))
}

/// Takes no body; one that is sent is ignored.
pub async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<String>,
) -> ApiResult<Json<ApiToken>> {
    p.admin()?;
    let a = p.writer();
    Ok(Json(st.store.revoke_token(&a, &id).await?))
}
