//! `ledger` tag: signed checkpoints, raw leaves, inclusion and consistency proofs, so clients
//! can check the log themselves instead of trusting the server.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Q;
use crate::model::{ConsistencyProof, InclusionProof, LedgerEntry, Page};
use crate::util::{b64, decode_cursor, encode_cursor};

pub async fn checkpoint(State(st): State<AppState>, p: Principal) -> ApiResult<Response> {
    p.any_role()?;
    let (_, text) = crate::checkpoint::published(&st.store, &st.key, None).await?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// The scope `listLedgerEntries` cursors are bound to (crate::extract::ListScope): a constant,
/// as the list has no filters and `start` only positions the first page (a cursor then wins).
const LEDGER_SCOPE: u32 = 0x1ed9_e700;

#[derive(Debug, Deserialize)]
pub struct EntriesQuery {
    start: Option<u64>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn entries(
    State(st): State<AppState>,
    p: Principal,
    Q(q): Q<EntriesQuery>,
) -> ApiResult<Json<Page<LedgerEntry>>> {
    // The leaves are the audit events themselves: the same roles as `listAuditEvents`.
    // Checkpoints and proofs (hashes only) stay readable by every API-token role.
    p.audit()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 500"));
    }
    // The contract: `cursor` (a later page) wins over `start` (the first page's position).
    let start = match (&q.cursor, q.start) {
        (Some(c), _) => decode_cursor(c)
            .filter(|&(_, scope)| scope == LEDGER_SCOPE)
            .and_then(|(v, _)| u64::try_from(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request("invalid cursor: pass back a next_cursor unchanged")
            })?,
        (None, Some(s)) => s,
        (None, None) => 0,
    };
    // A seq is at most 2^53 - 2 (the tree size, one more, must stay a safe JSON integer).
    if start > crate::validate::MAX_SAFE_INTEGER - 1 {
        return Err(ApiError::validation("start", "must be at most 2^53 - 2"));
    }
    let mut items = st.store.ledger_entries(start, limit + 1).await?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items
            .last()
            .map(|e| encode_cursor(e.seq as i64 + 1, LEDGER_SCOPE))
    } else {
        None
    };
    Ok(Json(Page {
        items,
        next_cursor: next,
    }))
}

#[derive(Debug, Deserialize)]
pub struct InclusionQuery {
    seq: Option<u64>,
    tree_size: Option<u64>,
}

pub async fn inclusion(
    State(st): State<AppState>,
    p: Principal,
    Q(q): Q<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    p.any_role()?;
    let seq = q
        .seq
        .ok_or_else(|| ApiError::validation("seq", "required"))?;
    let current = st.store.tree_size().await?;
    let size = q.tree_size.unwrap_or(current);
    if seq >= size || size > current {
        return Err(ApiError::bad_request(format!(
            "need seq < tree_size <= {current} (the current tree size); got seq {seq}, tree_size {size}"
        )));
    }
    let (leaf, hashes) = st.store.inclusion_proof(seq, size).await?;
    Ok(Json(InclusionProof {
        seq,
        tree_size: size,
        leaf_hash: b64(&leaf),
        hashes: hashes.iter().map(|h| b64(h)).collect(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ConsistencyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

pub async fn consistency(
    State(st): State<AppState>,
    p: Principal,
    Q(q): Q<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    p.any_role()?;
    let from = q
        .from
        .ok_or_else(|| ApiError::validation("from", "required"))?;
    let current = st.store.tree_size().await?;
    let to = q.to.unwrap_or(current);
    if from == 0 || from > to || to > current {
        return Err(ApiError::bad_request(format!(
            "need 1 <= from <= to <= {current} (the current tree size); got from {from}, to {to}"
        )));
    }
    let hashes = st.store.consistency_proof(from, to).await?;
    Ok(Json(ConsistencyProof {
        from,
        to,
        hashes: hashes.iter().map(|h| b64(h)).collect(),
    }))
}

/// C2SP `tlog-tiles` `<prefix>/checkpoint` (the prefix is the server's root): the current signed
/// checkpoint, as `GET /v1/ledger/checkpoint`.
pub async fn tlog_checkpoint(st: State<AppState>, p: Principal) -> ApiResult<Response> {
    checkpoint(st, p).await
}

/// C2SP `tlog-tiles` `<prefix>/tile/…`: hash tiles (readable like proofs, by every API role)
/// and entry bundles (the audit events themselves: the roles of `listAuditEvents`).
pub async fn tile(
    State(st): State<AppState>,
    p: Principal,
    axum::extract::Path(rest): axum::extract::Path<String>,
) -> ApiResult<Response> {
    use crate::tiles::{self, TilePath, TILE_HEIGHT, TILE_WIDTH};
    let path = tiles::parse(&rest).ok_or_else(|| {
        ApiError::not_found(format!(
            "no tile at tile/{rest}: tiles are tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] \
             (C2SP tlog-tiles)"
        ))
    })?;
    let (body, width) = match path {
        TilePath::Hashes {
            level,
            index,
            width,
        } => {
            p.any_role()?;
            let from = index.checked_mul(TILE_WIDTH);
            let hashes = match from {
                Some(from) => {
                    st.store
                        .level_hashes(TILE_HEIGHT * level, from, width)
                        .await?
                }
                None => None,
            };
            (hashes.map(|h| h.concat()), width)
        }
        TilePath::Entries { index, width } => {
            p.audit()?;
            let leaves = match index.checked_mul(TILE_WIDTH) {
                Some(from) => st.store.leaves(from, width).await?,
                None => None,
            };
            let bundle = match leaves {
                Some(l) => Some(tiles::entry_bundle(&l).ok_or_else(|| {
                    ApiError::internal("an entry longer than 65535 bytes cannot be bundled")
                })?),
                None => None,
            };
            (bundle, width)
        }
    };
    let body = body.ok_or_else(|| {
        ApiError::not_found(format!(
            "tile/{rest} is not in the ledger yet (a tile of width {width} needs that many \
             complete entries or subtrees; fetch /checkpoint for the size)"
        ))
    })?;
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // A tile of a given width never changes (the log is append-only and the server never signs
    // over a published checkpoint), full or partial.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(resp)
}
