//! Signing checkpoints without ever equivocating.
//!
//! Two records stand between the server and a second root for a size it already published:
//!
//! - every checkpoint it hands out is first recorded in the database (`checkpoints`,
//!   insert-only): a size is signed with one root, ever, whichever replica signs;
//! - the largest checkpoint it has published is also kept in `ledger.checkpoint` beside the
//!   signing key (written atomically: temporary file, fsync, rename, directory fsync). A
//!   database restored from an older backup rolls the table back, but not this file.
//!
//! At start ([`check_published`]) and before every new signature ([`signed`]) the ledger must
//! reach the largest published checkpoint with the same root; otherwise the server refuses to
//! start, or to sign, and says how to recover (docs/server.md, "Backup and restore").

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use datapilot::checkpoint::open_checkpoint;
use datapilot::merkle::Hash;

use crate::keys::LedgerKey;
use crate::store::{Store, StoreError, StoreResult, TreeHead};
use crate::util::{b64, random_bytes};

/// Name of the file beside `ledger.key` that holds the largest published checkpoint.
pub const PUBLISHED_FILE: &str = "ledger.checkpoint";

/// The largest checkpoint this key has published, as kept beside it.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
    /// `(size, root)` of the largest published checkpoint (size 0: none yet); `None` until
    /// [`check_published`] has compared it with the ledger (signing is refused until then).
    largest: tokio::sync::Mutex<Option<(u64, Hash)>>,
}

impl Published {
    /// The record in `dir` (not read yet).
    pub fn in_dir(dir: &Path) -> Published {
        Published {
            path: dir.join(PUBLISHED_FILE),
            largest: tokio::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How to recover when the ledger is behind or differs from a published checkpoint.
fn recovery_hint(path: &Path) -> String {
    format!(
        "restore a newer backup of the database (one whose ledger reaches the published \
         checkpoint; with PostgreSQL, point-in-time recovery to the latest WAL), or, if the \
         events after the backup are lost, start a new log in a new data directory (a new \
         origin) and publish why; never delete or edit {} to get past this: that would let the \
         server sign a second history under the same key. See docs/server.md, \"Backup and \
         restore\"",
        path.display()
    )
}

/// Why `ledger` does not extend the published checkpoint `(size, root)`, if it does not.
async fn divergence(store: &Store, size: u64, root: &Hash) -> Result<Option<String>, StoreError> {
    if size == 0 {
        return Ok(None);
    }
    let current = store.tree_size().await?;
    if current < size {
        return Ok(Some(format!(
            "the ledger has {current} entries, but this server already published a checkpoint \
             of size {size} (the database was restored from an older backup?)"
        )));
    }
    let head = store.tree_head(Some(size)).await?;
    if head.root != *root {
        return Ok(Some(format!(
            "the ledger's root at size {size} is {}, but this server published {} for that size \
             (the database holds another history)",
            b64(&head.root),
            b64(root)
        )));
    }
    Ok(None)
}

/// Start-up check: read the published checkpoint beside the key (and the database's largest
/// recorded one), refuse when the ledger does not reach it with the same root, and bring the
/// file up to the largest of the two (an upgraded install has no file yet).
pub async fn check_published(key: &LedgerKey, store: &Store) -> Result<(), String> {
    let published = key.published();
    let path = published.path().to_path_buf();
    // The record may be signed by a key retired since (the rotation's own checkpoint).
    let mut verifiers = vec![key.signer().verifier()];
    for k in store
        .key_history()
        .await
        .map_err(|e| format!("database: {e}"))?
    {
        if let Ok(v) = k.verifier.parse() {
            verifiers.push(v);
        }
    }
    let from_file = match std::fs::read_to_string(&path) {
        Ok(note) => {
            let (cp, _) = open_checkpoint(&note, &verifiers).map_err(|e| {
                format!(
                    "{} is not a checkpoint signed by this server's key ({e}); it records the \
                     largest checkpoint the key published: restore it, do not delete it",
                    path.display()
                )
            })?;
            Some((cp.tree_size, cp.root_hash, note))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let from_db = match store
        .latest_checkpoint()
        .await
        .map_err(|e| format!("database: {e}"))?
    {
        Some((_, note)) => {
            let (cp, _) = open_checkpoint(&note, &verifiers)
                .map_err(|e| format!("the database's largest checkpoint does not verify: {e}"))?;
            Some((cp.tree_size, cp.root_hash, note))
        }
        None => None,
    };
    let file_size = from_file.as_ref().map_or(0, |f| f.0);
    let largest = match (from_file, from_db) {
        (Some(f), Some(d)) if d.0 > f.0 => Some(d),
        (Some(f), _) => Some(f),
        (None, d) => d,
    };
    let (size, root) = match &largest {
        Some((size, root, note)) => {
            if let Some(why) = divergence(store, *size, root)
                .await
                .map_err(|e| format!("database: {e}"))?
            {
                return Err(format!(
                    "refusing to start: {why}. Signing now would fork the log. To recover: {}",
                    recovery_hint(&path)
                ));
            }
            if *size > file_size {
                write_atomically(&path, note.as_bytes())
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            (*size, *root)
        }
        None => (0, [0; 32]),
    };
    *published.largest.lock().await = Some((size, root));
    Ok(())
}

/// The signed checkpoint at `size` (the current size when `None`) as published: with the
/// cosignatures of witnesses for it, if any (see `crate::witness`).
pub async fn published(
    store: &Store,
    key: &LedgerKey,
    size: Option<u64>,
) -> StoreResult<(TreeHead, String)> {
    let (head, note) = signed(store, key, size).await?;
    let note = key
        .witnesses()
        .with_cosignatures(store, head.size, &head.root, note)
        .await?;
    Ok((head, note))
}

/// The signed checkpoint of the ledger at `size` (the current size when `None`), with its head:
/// the log's signature only (evidence bundles embed it and must stay deterministic).
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
    let published = key.published();
    // One signer per process at a time: the file only ever grows.
    let mut largest = published.largest.lock().await;
    let Some((p_size, p_root)) = *largest else {
        return Err(StoreError::Internal(
            "the published checkpoint was not checked at start; refusing to sign".into(),
        ));
    };
    // A key retired by a rotation (possibly on another replica) signs nothing after its
    // retirement size.
    if store.ledger_verifier().await?.as_deref() != Some(key.verifier().as_str()) {
        let retired = store
            .key_history()
            .await?
            .into_iter()
            .find(|k| k.verifier == key.verifier());
        match retired {
            Some(k) if head.size <= k.retired_at_size => {}
            _ => {
                return Err(StoreError::Internal(format!(
                    "refusing to sign size {} with {}: that key is not the ledger's current key \
                     (rotated: restart with the current ledger.key)",
                    head.size,
                    key.verifier()
                )))
            }
        }
    }
    // The database may have been replaced under a running server (a PostgreSQL restore).
    if let Some(why) = divergence(store, p_size, &p_root).await? {
        return Err(StoreError::Internal(format!(
            "refusing to sign: {why}. To recover: {}",
            recovery_hint(published.path())
        )));
    }
    let note = key.checkpoint(head.size, head.root);
    let note = store.record_checkpoint(head.size, head.root, note).await?;
    if head.size > p_size {
        // Published only once it is beside the key: a failed write hands nothing out.
        let path = published.path().to_path_buf();
        let bytes = note.clone().into_bytes();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Internal(format!("writing the checkpoint: {e}")))?
            .map_err(|e| {
                StoreError::Internal(format!("writing {}: {e}", published.path().display()))
            })?;
        *largest = Some((head.size, head.root));
        // Witnesses see each published checkpoint once, in order (still under the lock).
        if !key.witnesses().is_empty() {
            key.witnesses()
                .submit(store, &key.signer().verifier(), head.size, head.root, &note)
                .await;
        }
    }
    Ok((head, note))
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new file, whole: a
/// temporary file in the same directory, fsynced, renamed over it, and the directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the path has no directory"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random_bytes::<8>())));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
