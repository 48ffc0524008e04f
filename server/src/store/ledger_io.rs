//! The audit ledger in the database: appending leaves, reading nodes, heads, proofs and the
//! record of signed checkpoints.
//!
//! The leaf bytes are the RFC 8785 serialisation of the SDK's [`LeafEvent`], built here and
//! nowhere else. The tree arithmetic is [`crate::ledger`]'s (shared with the SDK's proof
//! generators); it is synchronous, so each computation runs twice: once against a recorder
//! that notes which stored nodes it reads (the walk depends only on sizes, never on hash
//! values), then, after one batched query for those nodes, for real. A proof or an append
//! costs one round trip to the database whatever the tree size.

use std::collections::HashMap;

use datapilot::merkle::{leaf_hash, Hash};
use datapilot::model::audit::{Actor, LeafEvent};
use serde_json::Value;

use super::commit::WriteCtx;
use super::repo::{int, params, RepoTx, Val};
use super::{ActorRef, StoreError, StoreResult, TreeHead};
use crate::canon::jcs;
use crate::ledger::{nodes_for_append, subtree_hash, NodeSource};
use crate::util::now_str;

/// Stored nodes, or a recorder of the nodes a computation asks for.
#[derive(Debug)]
pub struct NodeMap {
    wanted: Vec<(u32, u64)>,
    have: Option<HashMap<(u32, u64), Hash>>,
}

impl NodeSource for NodeMap {
    type Error = StoreError;
    fn node(&mut self, level: u32, index: u64) -> StoreResult<Hash> {
        match &self.have {
            None => {
                self.wanted.push((level, index));
                Ok([0; 32])
            }
            Some(m) => m.get(&(level, index)).copied().ok_or_else(|| {
                StoreError::Internal(format!("missing merkle node {level}/{index}"))
            }),
        }
    }
}

/// Node lookups per query (fixed, so the statement is prepared once).
const NODES_PER_QUERY: usize = 32;

/// The nodes a tree computation `f` reads (its walk depends only on sizes).
fn needed(f: &impl Fn(&mut NodeMap) -> StoreResult<()>) -> Vec<(u32, u64)> {
    let mut rec = NodeMap {
        wanted: Vec::new(),
        have: None,
    };
    // Errors of the dry run (bad sizes) come back from the real run.
    let _ = f(&mut rec);
    let mut wanted = rec.wanted;
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Stored nodes at `coords`, in batched queries.
async fn fetch_nodes(
    tx: &mut dyn RepoTx,
    coords: &[(u32, u64)],
) -> StoreResult<HashMap<(u32, u64), Hash>> {
    let mut have = HashMap::with_capacity(coords.len());
    if coords.is_empty() {
        return Ok(have);
    }
    let sql = {
        let conds: Vec<String> = (0..NODES_PER_QUERY)
            .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        format!(
            "SELECT level, idx, hash FROM merkle_nodes WHERE {}",
            conds.join(" OR ")
        )
    };
    for chunk in coords.chunks(NODES_PER_QUERY) {
        let mut p = Vec::with_capacity(2 * NODES_PER_QUERY);
        for i in 0..NODES_PER_QUERY {
            // Pad with the chunk's last coordinate: same statement, no extra rows.
            let (l, ix) = chunk[i.min(chunk.len() - 1)];
            p.push(Val::Int(l.into()));
            p.push(int("index", ix)?);
        }
        for r in tx.query(&sql, &p).await? {
            let h: Hash = r
                .blob(2)?
                .try_into()
                .map_err(|_| StoreError::Internal("bad merkle node length".into()))?;
            have.insert((r.i64(0)? as u32, r.u64(1)?), h);
        }
    }
    Ok(have)
}

/// Run the tree computation `f` over the stored nodes it needs.
pub async fn with_nodes<T>(
    tx: &mut dyn RepoTx,
    f: impl Fn(&mut NodeMap) -> StoreResult<T>,
) -> StoreResult<T> {
    let wanted = needed(&|m: &mut NodeMap| f(m).map(|_| ()));
    let have = fetch_nodes(tx, &wanted).await?;
    f(&mut NodeMap {
        wanted: Vec::new(),
        have: Some(have),
    })
}

impl WriteCtx {
    /// Sequence number and time of the next event.
    pub fn next_event(&self) -> (u64, String) {
        (self.size, now_str())
    }

    /// Append the audit event `seq` (from [`WriteCtx::next_event`]) and its Merkle nodes.
    pub async fn append(
        &mut self,
        seq: u64,
        time: &str,
        a: &ActorRef,
        action: &str,
        subject: &str,
        data: Value,
    ) -> StoreResult<()> {
        if seq != self.size {
            return Err(StoreError::Internal(format!(
                "event {seq} appended at ledger size {}",
                self.size
            )));
        }
        let leaf = LeafEvent {
            v: 1,
            seq,
            time: time.to_string(),
            actor: Actor {
                kind: a.kind.parse().unwrap_or_else(|e| match e {}),
                id: a.id.clone(),
                role: a.role.parse().unwrap_or_else(|e| match e {}),
            },
            action: action.to_string(),
            subject: subject.to_string(),
            data,
        };
        let bytes = jcs(&leaf);
        let lh = leaf_hash(&bytes);
        self.pending_events.push(vec![
            int("seq", seq)?,
            time.into(),
            a.kind.into(),
            (&a.id).into(),
            a.role.into(),
            action.into(),
            subject.into(),
            String::from_utf8_lossy(&jcs(&leaf.data))
                .into_owned()
                .into(),
            bytes.into(),
            lh.to_vec().into(),
        ]);
        // The left siblings this append needs: from this transaction's appends, else stored.
        let wanted = needed(&|m: &mut NodeMap| nodes_for_append(m, seq, lh).map(|_| ()));
        let missing: Vec<_> = wanted
            .iter()
            .copied()
            .filter(|k| !self.nodes.contains_key(k))
            .collect();
        for (k, h) in fetch_nodes(&mut *self.tx, &missing).await? {
            self.nodes.insert(k, h);
            self.added_nodes.push(k);
        }
        let have = wanted
            .iter()
            .filter_map(|k| self.nodes.get(k).map(|h| (*k, *h)))
            .collect();
        let nodes = nodes_for_append(
            &mut NodeMap {
                wanted: Vec::new(),
                have: Some(have),
            },
            seq,
            lh,
        )?;
        for (level, idx, hash) in nodes {
            self.pending_nodes.push(vec![
                Val::Int(level.into()),
                int("idx", idx)?,
                hash.to_vec().into(),
            ]);
            self.nodes.insert((level, idx), hash);
            self.added_nodes.push((level, idx));
        }
        self.size += 1;
        Ok(())
    }
}

impl WriteCtx {
    /// Insert the audit events and Merkle nodes appended in this transaction.
    pub(crate) async fn flush_appends(&mut self) -> StoreResult<()> {
        let events = std::mem::take(&mut self.pending_events);
        self.tx
            .execute_many(
                "INSERT INTO audit_events (seq, time, actor_kind, actor_id, actor_role, action,
                 subject, data, leaf, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &events,
            )
            .await?;
        let nodes = std::mem::take(&mut self.pending_nodes);
        self.tx
            .execute_many(
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                &nodes,
            )
            .await
    }
}

/// The committed ledger size (what readers may prove against).
pub async fn size(tx: &mut dyn RepoTx) -> StoreResult<u64> {
    tx.query_one("SELECT size FROM ledger_state WHERE id = 1", &[])
        .await?
        .u64(0)
}

/// `tree_size` checked against the ledger (the current size when `None`).
pub async fn check_size(tx: &mut dyn RepoTx, tree_size: Option<u64>) -> StoreResult<u64> {
    let cur = size(tx).await?;
    match tree_size {
        None => Ok(cur),
        Some(0) => Err(StoreError::Invalid(
            "tree_size".into(),
            "must be at least 1".into(),
        )),
        Some(s) if s > cur => Err(StoreError::Invalid(
            "tree_size".into(),
            format!("the ledger has only {cur} entries"),
        )),
        Some(s) => Ok(s),
    }
}

pub async fn tree_head(tx: &mut dyn RepoTx, size: Option<u64>) -> StoreResult<TreeHead> {
    let size = check_size(tx, size).await?;
    let root = with_nodes(tx, |m| subtree_hash(m, 0, size)).await?;
    let last_time = tx
        .query_one(
            "SELECT time FROM audit_events WHERE seq = $1",
            params![int("seq", size.saturating_sub(1))?],
        )
        .await?
        .text(0)?;
    Ok(TreeHead {
        size,
        root,
        last_time,
    })
}

pub async fn inclusion_proof(
    tx: &mut dyn RepoTx,
    seq: u64,
    tree_size: u64,
) -> StoreResult<(Hash, Vec<Hash>)> {
    let size = check_size(tx, Some(tree_size)).await?;
    if seq >= size {
        return Err(StoreError::Invalid(
            "seq".into(),
            format!("must be below tree_size {size}"),
        ));
    }
    with_nodes(tx, |m| {
        let leaf = m.node(0, seq)?;
        let proof =
            datapilot::merkle::try_inclusion_proof_with(seq, size, |s, e| subtree_hash(m, s, e))?;
        Ok((leaf, proof))
    })
    .await
}

pub async fn consistency_proof(tx: &mut dyn RepoTx, from: u64, to: u64) -> StoreResult<Vec<Hash>> {
    let to = check_size(tx, Some(to)).await?;
    if from == 0 || from > to {
        return Err(StoreError::Invalid(
            "from".into(),
            format!("must be in 1..={to}"),
        ));
    }
    with_nodes(tx, |m| {
        datapilot::merkle::try_consistency_proof_with(from, to, |s, e| subtree_hash(m, s, e))
    })
    .await
}

impl super::Store {
    /// The stored hashes of tree level `level` at indices `from .. from + count`, all of which
    /// must be complete in the committed tree (for a C2SP hash tile). `None` if the committed
    /// tree does not have them all yet.
    pub async fn level_hashes(
        &self,
        level: u32,
        from: u64,
        count: u64,
    ) -> StoreResult<Option<Vec<Hash>>> {
        self.read(move |tx| {
            Box::pin(async move {
                let size = size(tx).await?;
                let end = from.checked_add(count).filter(|e| level < 64 && *e <= size >> level);
                let Some(end) = end else {
                    return Ok(None);
                };
                let rows = tx
                    .query(
                        "SELECT idx, hash FROM merkle_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                        params![Val::Int(level.into()), int("from", from)?, int("end", end)?],
                    )
                    .await?;
                let mut out = Vec::with_capacity(count as usize);
                for (i, r) in rows.iter().enumerate() {
                    if r.u64(0)? != from + i as u64 {
                        return Err(StoreError::Internal(format!(
                            "missing merkle node {level}/{}",
                            from + i as u64
                        )));
                    }
                    out.push(
                        r.blob(1)?
                            .try_into()
                            .map_err(|_| StoreError::Internal("bad merkle node length".into()))?,
                    );
                }
                if out.len() as u64 != count {
                    return Err(StoreError::Internal(format!(
                        "merkle level {level} has {} of {count} nodes from {from}",
                        out.len()
                    )));
                }
                Ok(Some(out))
            })
        })
        .await
    }

    /// The leaf bytes of entries `from .. from + count`, all committed (for a C2SP entry
    /// bundle); `None` if the committed ledger does not have them all yet.
    pub async fn leaves(&self, from: u64, count: u64) -> StoreResult<Option<Vec<Vec<u8>>>> {
        self.read(move |tx| {
            Box::pin(async move {
                let size = size(tx).await?;
                let Some(end) = from.checked_add(count).filter(|e| *e <= size) else {
                    return Ok(None);
                };
                let rows = tx
                    .query(
                        "SELECT leaf FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq",
                        params![int("from", from)?, int("end", end)?],
                    )
                    .await?;
                let leaves = rows
                    .iter()
                    .map(|r| r.blob(0))
                    .collect::<StoreResult<Vec<_>>>()?;
                if leaves.len() as u64 != count {
                    return Err(StoreError::Internal(format!(
                        "the ledger has {} of {count} entries from {from}",
                        leaves.len()
                    )));
                }
                Ok(Some(leaves))
            })
        })
        .await
    }
}
