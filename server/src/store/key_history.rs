//! The ledger key's history: rotations are ledger events, and the retired keys are recorded
//! with the tree size at which they were retired.
//!
//! A rotation is one write: the `key.rotate` event (`data`: the old and new verifier strings),
//! the retired key added to `meta.key_history` with `retired_at_size` = the size that includes
//! that event, and `meta.verifier` set to the new key. The old key then signs the checkpoint at
//! exactly that size (see `crate::keys::rotate`), so the rotation is signed by the key it
//! retires; every later checkpoint is the new key's.

use serde_json::{json, Value};

use super::reads::ledger_verifier_in;
use super::repo::params;
use super::{ActorRef, Store, StoreError, StoreResult};

/// A retired key: its verifier string and the largest tree size it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    pub verifier: String,
    pub retired_at_size: u64,
}

async fn history_in(tx: &mut dyn super::repo::RepoTx) -> StoreResult<Vec<RetiredKey>> {
    let Some(row) = tx
        .query_opt("SELECT value FROM meta WHERE key = 'key_history'", &[])
        .await?
    else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(&row.text(0)?)
        .map_err(|e| StoreError::Internal(format!("meta.key_history: {e}")))?;
    v.as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            Ok(RetiredKey {
                verifier: k["verifier"]
                    .as_str()
                    .ok_or_else(|| StoreError::Internal("meta.key_history: verifier".into()))?
                    .to_string(),
                retired_at_size: k["retired_at_size"]
                    .as_u64()
                    .ok_or_else(|| StoreError::Internal("meta.key_history: size".into()))?,
            })
        })
        .collect()
}

impl Store {
    /// The retired keys, oldest first.
    pub async fn key_history(&self) -> StoreResult<Vec<RetiredKey>> {
        self.read(|tx| Box::pin(history_in(tx))).await
    }

    /// Retire the key `old` for `new`: the `key.rotate` event, the history and the current
    /// verifier, in one write. Returns the retirement size (the size that includes the event).
    /// Refused unless `old` is the current key.
    pub async fn rotate_key(&self, old: String, new: String) -> StoreResult<u64> {
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    let current = ledger_verifier_in(&mut *cx.tx).await?;
                    if current.as_deref() != Some(old.as_str()) {
                        return Err(StoreError::Conflict(
                            "immutable",
                            format!(
                                "the current ledger key is {current:?}, not {old}: rotate from the \
                                 current key"
                            ),
                        ));
                    }
                    let origin = old.split('+').next().unwrap_or_default().to_string();
                    let (seq, time) = cx.next_event();
                    cx.append(
                        seq,
                        &time,
                        &ActorRef::system(),
                        "key.rotate",
                        &format!("ledger:{origin}"),
                        json!({ "old_verifier": old, "new_verifier": new }),
                    )
                    .await?;
                    let size = seq + 1;
                    let mut history: Vec<Value> = history_in(&mut *cx.tx)
                        .await?
                        .into_iter()
                        .map(|k| json!({ "verifier": k.verifier, "retired_at_size": k.retired_at_size }))
                        .collect();
                    history.push(json!({ "verifier": old, "retired_at_size": size }));
                    cx.tx
                        .execute(
                            "INSERT INTO meta (key, value) VALUES ('key_history', $1)
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            params![&Value::Array(history).to_string()],
                        )
                        .await?;
                    cx.tx
                        .execute(
                            "UPDATE meta SET value = $1 WHERE key = 'verifier'",
                            params![&new],
                        )
                        .await?;
                    Ok(size)
                })
            })
            .await
    }
}
