//! Signing checkpoints without ever equivocating.
//!
//! Every checkpoint the server hands out is first recorded in the database (`checkpoints`,
//! insert-only): a size is signed with one root, ever, whichever replica signs. If the ledger
//! no longer has that root for that size (a database restored from an older backup and then
//! written to), the store refuses and nothing is signed (see docs/server.md, "Restore").

use crate::keys::LedgerKey;
use crate::store::{Store, StoreResult, TreeHead};

/// The signed checkpoint of the ledger at `size` (the current size when `None`), with its head.
pub async fn signed(
    store: &Store,
    key: &LedgerKey,
    size: Option<u64>,
) -> StoreResult<(TreeHead, String)> {
    let head = store.tree_head(size).await?;
    if let Some((root, note)) = store.stored_checkpoint(head.size).await? {
        if root == head.root {
            return Ok((head, note));
        }
    }
    let note = key.checkpoint(head.size, head.root);
    let note = store.record_checkpoint(head.size, head.root, note).await?;
    Ok((head, note))
}
