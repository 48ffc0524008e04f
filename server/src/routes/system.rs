//! `system` tag: health, the caller's identity, the ledger's verifier keys.

use axum::extract::State;
use axum::Json;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::model::{Health, VerifierKey, VerifierKeys, WhoAmI};
use crate::util::b64;

pub async fn health(State(st): State<AppState>) -> ApiResult<Json<Health>> {
    // Touches the database, so a broken store shows as 503 instead of a false "ok".
    let tree_size = st.store.tree_size().await.map_err(|e| {
        ApiError::new("unavailable", format!("the database is not available: {e}")).with_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        )
    })?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        tree_size,
    }))
}

pub async fn whoami(p: Principal) -> Json<WhoAmI> {
    Json(WhoAmI {
        subject: p.subject,
        role: p.actor.role,
        token_id: p.token_id,
        run_id: p.run_id,
    })
}

pub async fn keys(State(st): State<AppState>) -> ApiResult<Json<VerifierKeys>> {
    let k = &st.key;
    let mut keys = vec![VerifierKey {
        name: k.name().to_string(),
        key_id: k.key_id_hex(),
        algorithm: "ed25519",
        public_key: b64(&k.public_key()),
        verifier: k.verifier(),
        public_key_pem: k.public_key_pem(),
        retired_at_size: None,
    }];
    // Retired keys, newest first: bundles and checkpoints up to their size still verify.
    for r in st.store.key_history().await?.into_iter().rev() {
        let Ok(v) = r.verifier.parse::<datapilot::checkpoint::Verifier>() else {
            continue;
        };
        keys.push(VerifierKey {
            name: v.name().to_string(),
            key_id: v.key_id_hex(),
            algorithm: "ed25519",
            public_key: b64(&v.public_key()),
            verifier: r.verifier.clone(),
            public_key_pem: crate::keys::public_key_pem(&v.public_key()),
            retired_at_size: Some(r.retired_at_size),
        });
    }
    Ok(Json(VerifierKeys {
        origin: k.name().to_string(),
        keys,
    }))
}
