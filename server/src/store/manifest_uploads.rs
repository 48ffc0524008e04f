//! Manifests registered in parts, and manifests read in pages: dataset versions of any size
//! with server memory bounded by a part, not by the dataset.
//!
//! ```text
//! createManifestUpload {digest, note}        -> upload id (expires after UPLOAD_TTL_SECS)
//! putManifestPart n {files: ≤ MAX_PART_FILES}  (any order, any split; idempotent per n)
//! commitManifestUpload                        -> the DatasetVersion (201, or 200 if known)
//! ```
//!
//! Parts are staged in mutable scratch tables (`manifest_uploads`, `manifest_upload_parts`,
//! `manifest_upload_files`), never in the evidence. A part is checked when it arrives (paths,
//! hashes, no path twice in the upload) and is immutable afterwards: sending part `n` again
//! with the same files is a no-op, with other files a 409 (`immutable`). So a client that lost
//! a connection mid-part simply sends the part again, and one that lost its process asks the
//! upload which parts it holds and sends the rest.
//!
//! The commit recomputes DPM-1 over the whole staged manifest, reading it in path order
//! [`DIGEST_PAGE_ROWS`] rows at a time (the same lines as [`datapilot::manifest`], hashed as
//! they stream), and only then, in the committer's transaction, copies the rows into
//! `manifest_files` with one `INSERT … SELECT` and appends the same `dataset_version.register`
//! event a one-shot registration appends. Staging rows are deleted after the commit.

use sha2::{Digest, Sha256};

use super::commit::WriteCtx;
use super::reads::*;
use super::repo::{int, params, RepoTx, Val};
use super::writes::{idem_record, key_free, new_version, VersionFiles};
use super::*;
use crate::util::new_id;

/// Most files in one part (one request body).
pub const MAX_PART_FILES: usize = 100_000;
/// Most files in one upload (a dataset version).
pub const MAX_UPLOAD_FILES: u64 = 20_000_000;
/// Part numbers are 1 to this.
pub const MAX_PARTS: u32 = 10_000;
/// How long an upload that is not committed is kept.
pub const UPLOAD_TTL_SECS: i64 = 24 * 3600;
/// Rows read per query while the commit recomputes the digest, and per page of a manifest.
pub const DIGEST_PAGE_ROWS: u32 = 10_000;
/// Largest page of `listDatasetVersionFiles`.
pub const MAX_FILES_PAGE: u32 = 10_000;

/// A staged upload as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestUpload {
    pub id: String,
    pub dataset_id: String,
    pub digest: String,
    pub note: Option<String>,
    pub state: &'static str,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: String,
    pub file_count: u64,
    pub total_bytes: u64,
    pub parts: Vec<ManifestPart>,
}

/// One received part.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestPart {
    pub part: u32,
    pub file_count: u64,
    pub total_bytes: u64,
    /// SHA-256 of the part's canonical lines (`<sha256>  <size>  <path>\n`, sorted), so a
    /// client can tell whether the part it holds is the one the server has.
    pub sha256: String,
}

/// The canonical fingerprint of a part's files (sorted by path), as the SDK computes it.
pub fn part_fingerprint(files: &[FileEntry]) -> String {
    datapilot::manifest::part_fingerprint(
        files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str(), f.size)),
    )
}

fn expires_at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct UploadRow {
    dataset_id: String,
    digest: String,
    note: Option<String>,
    created_by: String,
    created_at: String,
    expires_unix: i64,
    committed: bool,
}

async fn load(tx: &mut dyn RepoTx, dataset_id: &str, id: &str) -> StoreResult<UploadRow> {
    let row = tx
        .query_opt(
            "SELECT dataset_id, digest, note, created_by, created_at, expires_unix, committed_at
             FROM manifest_uploads WHERE id = $1",
            params![id],
        )
        .await?;
    let gone = || StoreError::NotFound(format!("manifest upload {id} not found (or expired)"));
    let r = row.ok_or_else(gone)?;
    let u = UploadRow {
        dataset_id: r.text(0)?,
        digest: r.text(1)?,
        note: r.opt_text(2)?,
        created_by: r.text(3)?,
        created_at: r.text(4)?,
        expires_unix: r.i64(5)?,
        committed: r.opt_text(6)?.is_some(),
    };
    if u.dataset_id != dataset_id || (!u.committed && u.expires_unix < unix_now()) {
        return Err(gone());
    }
    Ok(u)
}

/// The upload, if `actor` may use it: only its creator adds parts or commits (another
/// principal gets the same 404 as for an unknown id).
async fn load_own(
    tx: &mut dyn RepoTx,
    actor: &ActorRef,
    dataset_id: &str,
    id: &str,
) -> StoreResult<UploadRow> {
    let u = load(tx, dataset_id, id).await?;
    if u.created_by != actor.id {
        return Err(StoreError::NotFound(format!(
            "manifest upload {id} not found (or expired)"
        )));
    }
    Ok(u)
}

async fn parts_of(tx: &mut dyn RepoTx, id: &str) -> StoreResult<Vec<ManifestPart>> {
    tx.query(
        "SELECT part, file_count, total_bytes, sha256 FROM manifest_upload_parts
         WHERE upload_id = $1 ORDER BY part",
        params![id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ManifestPart {
            part: u32::try_from(r.i64(0)?).unwrap_or(0),
            file_count: r.u64(1)?,
            total_bytes: r.u64(2)?,
            sha256: r.text(3)?,
        })
    })
    .collect()
}

fn view(id: &str, u: UploadRow, parts: Vec<ManifestPart>) -> ManifestUpload {
    ManifestUpload {
        id: id.into(),
        dataset_id: u.dataset_id,
        digest: u.digest,
        note: u.note,
        state: if u.committed { "committed" } else { "open" },
        created_at: u.created_at,
        created_by: u.created_by,
        expires_at: expires_at(u.expires_unix),
        file_count: parts.iter().map(|p| p.file_count).sum(),
        total_bytes: parts.iter().map(|p| p.total_bytes).sum(),
        parts,
    }
}

/// Forget expired uploads and the staging rows of committed ones (whose cleanup after the
/// commit was interrupted).
async fn sweep(tx: &mut dyn RepoTx) -> StoreResult<()> {
    let now = unix_now();
    for sql in [
        "DELETE FROM manifest_upload_files WHERE upload_id IN
         (SELECT id FROM manifest_uploads WHERE expires_unix < $1 OR committed_at IS NOT NULL)",
        "DELETE FROM manifest_upload_parts WHERE upload_id IN
         (SELECT id FROM manifest_uploads WHERE expires_unix < $1 OR committed_at IS NOT NULL)",
        "DELETE FROM manifest_uploads WHERE expires_unix < $1",
    ] {
        tx.execute(sql, params![now]).await?;
    }
    Ok(())
}

/// What the commit's read pass found in the staged manifest.
#[derive(Debug, Clone, Copy)]
pub struct StagedTotals {
    pub file_count: u64,
    pub total_bytes: u64,
}

impl Store {
    /// `createManifestUpload`: a new upload of a manifest whose DPM-1 id the client claims.
    pub async fn create_manifest_upload(
        &self,
        w: &Writer,
        dataset_id: &str,
        digest: &str,
        note: Option<&str>,
    ) -> StoreResult<ManifestUpload> {
        let (w, ds, digest, note) = (
            w.clone(),
            dataset_id.to_owned(),
            digest.to_owned(),
            note.map(str::to_owned),
        );
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    key_free(cx, &w).await?;
                    require_dataset(&mut *cx.tx, &ds).await?;
                    sweep(&mut *cx.tx).await?;
                    let id = new_id("mu_");
                    let created_at = crate::util::now_str();
                    let expires = unix_now() + UPLOAD_TTL_SECS;
                    cx.tx
                        .execute(
                            "INSERT INTO manifest_uploads (id, dataset_id, digest, note, created_by,
                             created_at, expires_unix) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            params![&id, &ds, &digest, note.as_deref(), &w.actor.id, &created_at, expires],
                        )
                        .await?;
                    let u = UploadRow {
                        dataset_id: ds,
                        digest,
                        note,
                        created_by: w.actor.id.clone(),
                        created_at,
                        expires_unix: expires,
                        committed: false,
                    };
                    let out = view(&id, u, Vec::new());
                    idem_record(cx, &w, 201, &out, None).await?;
                    Ok(out)
                })
            })
            .await
    }

    /// `getManifestUpload`.
    pub async fn get_manifest_upload(
        &self,
        actor: &ActorRef,
        dataset_id: &str,
        id: &str,
    ) -> StoreResult<ManifestUpload> {
        let (a, ds, id) = (actor.clone(), dataset_id.to_owned(), id.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                let u = load_own(tx, &a, &ds, &id).await?;
                let parts = parts_of(tx, &id).await?;
                Ok(view(&id, u, parts))
            })
        })
        .await
    }

    /// `putManifestPart`: `files` already validated (paths, hashes, sizes) and sorted by path
    /// without duplicates. Returns the part and whether this call stored it.
    pub async fn put_manifest_part(
        &self,
        actor: &ActorRef,
        dataset_id: &str,
        id: &str,
        part: u32,
        files: Vec<FileEntry>,
    ) -> StoreResult<(ManifestPart, bool)> {
        let (a, ds, id) = (actor.clone(), dataset_id.to_owned(), id.to_owned());
        self.committer
            .write(move |cx| {
                Box::pin(async move { put_part(cx, &a, &ds, &id, part, &files).await })
            })
            .await
    }

    /// First pass of `commitManifestUpload`: recompute the DPM-1 id over the staged files in
    /// path order, a page at a time (each page its own short read, so no snapshot is held
    /// for the whole walk; the write pass re-checks the totals).
    pub async fn staged_digest(
        &self,
        actor: &ActorRef,
        dataset_id: &str,
        id: &str,
    ) -> StoreResult<(String, StagedTotals)> {
        let (a, ds, uid) = (actor.clone(), dataset_id.to_owned(), id.to_owned());
        self.read(move |tx| Box::pin(async move { load_own(tx, &a, &ds, &uid).await.map(|_| ()) }))
            .await?;
        let mut hasher = Sha256::new();
        let mut totals = StagedTotals {
            file_count: 0,
            total_bytes: 0,
        };
        let mut after = String::new();
        loop {
            let (uid, from) = (id.to_owned(), after.clone());
            let rows = self
                .read(move |tx| {
                    Box::pin(async move {
                        tx.query(
                            "SELECT path, sha256, size FROM manifest_upload_files
                             WHERE upload_id = $1 AND path > $2 ORDER BY path LIMIT $3",
                            params![&uid, &from, DIGEST_PAGE_ROWS],
                        )
                        .await
                    })
                })
                .await?;
            for r in &rows {
                let (path, sha, size) = (r.text(0)?, r.text(1)?, r.u64(2)?);
                hasher.update(sha.as_bytes());
                hasher.update(b"  ");
                hasher.update(path.as_bytes());
                hasher.update(b"\n");
                totals.file_count += 1;
                totals.total_bytes = totals.total_bytes.checked_add(size).ok_or_else(|| {
                    StoreError::Invalid("files".into(), "total size overflows 64 bits".into())
                })?;
                after = path;
            }
            if rows.len() < DIGEST_PAGE_ROWS as usize {
                break;
            }
        }
        let digest = format!(
            "{}{}",
            datapilot::manifest::DIGEST_PREFIX,
            hex::encode(hasher.finalize())
        );
        Ok((digest, totals))
    }

    /// Second pass of `commitManifestUpload`: register the version from the staged rows.
    pub async fn commit_manifest_upload(
        &self,
        w: &Writer,
        dataset_id: &str,
        id: &str,
        totals: StagedTotals,
    ) -> StoreResult<(DatasetVersion, bool)> {
        let (w, ds, id) = (w.clone(), dataset_id.to_owned(), id.to_owned());
        let out = self
            .committer
            .write(move |cx| Box::pin(async move { commit(cx, &w, &ds, &id, totals).await }))
            .await?;
        Ok(out)
    }

    /// The staged rows of a committed upload are scratch: delete them (in the background after
    /// the commit's answer; an interrupted cleanup is redone by the next upload's sweep).
    pub async fn drop_staged_rows(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    cx.tx
                        .execute(
                            "DELETE FROM manifest_upload_files WHERE upload_id = $1",
                            params![&id],
                        )
                        .await?;
                    cx.tx
                        .execute(
                            "DELETE FROM manifest_upload_parts WHERE upload_id = $1",
                            params![&id],
                        )
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// `listDatasetVersionFiles`: a page of a version's manifest in path (byte) order, after
    /// the path `after` (exclusive); the next page's `after` if there is one.
    pub async fn list_version_files(
        &self,
        dataset_id: &str,
        digest: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<(Vec<FileEntry>, Option<String>)> {
        let (ds, digest) = (dataset_id.to_owned(), digest.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                require_dataset(tx, &ds).await?;
                let (n, _) = require_version(tx, &ds, &digest).await?;
                let rows = tx
                    .query(
                        "SELECT path, sha256, size FROM manifest_files
                         WHERE version_n = $1 AND path > $2 ORDER BY path LIMIT $3",
                        params![n, after.unwrap_or_default(), limit + 1],
                    )
                    .await?;
                let mut files = rows
                    .iter()
                    .map(|r| {
                        Ok(FileEntry {
                            path: r.text(0)?,
                            sha256: r.text(1)?,
                            size: r.u64(2)?,
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let next = if files.len() > limit as usize {
                    files.truncate(limit as usize);
                    files.last().map(|f| f.path.clone())
                } else {
                    None
                };
                Ok((files, next))
            })
        })
        .await
    }
}

async fn put_part(
    cx: &mut WriteCtx,
    actor: &ActorRef,
    dataset_id: &str,
    id: &str,
    part: u32,
    files: &[FileEntry],
) -> StoreResult<(ManifestPart, bool)> {
    let u = load_own(&mut *cx.tx, actor, dataset_id, id).await?;
    if u.committed {
        return Err(StoreError::Conflict(
            "immutable",
            format!("manifest upload {id} is committed; it takes no more parts"),
        ));
    }
    let fingerprint = part_fingerprint(files);
    let total_bytes = files
        .iter()
        .try_fold(0u64, |a, f| a.checked_add(f.size))
        .ok_or_else(|| {
            StoreError::Invalid("files".into(), "total size overflows 64 bits".into())
        })?;
    let this = ManifestPart {
        part,
        file_count: files.len() as u64,
        total_bytes,
        sha256: fingerprint,
    };
    let existing = cx
        .tx
        .query_opt(
            "SELECT sha256 FROM manifest_upload_parts WHERE upload_id = $1 AND part = $2",
            params![id, part],
        )
        .await?;
    if let Some(r) = existing {
        if r.text(0)? == this.sha256 {
            return Ok((this, false));
        }
        return Err(StoreError::Conflict(
            "immutable",
            format!(
                "part {part} of manifest upload {id} was already received with other files; \
                 a part cannot change (start a new upload to send a different manifest)"
            ),
        ));
    }
    let held = cx
        .tx
        .query_one(
            "SELECT COUNT(*), CAST(COALESCE(SUM(file_count), 0) AS BIGINT) FROM manifest_upload_parts
             WHERE upload_id = $1",
            params![id],
        )
        .await?;
    if held.u64(0)? >= u64::from(MAX_PARTS) {
        return Err(StoreError::Invalid(
            "part".into(),
            format!("an upload takes at most {MAX_PARTS} parts"),
        ));
    }
    if held.u64(1)? + files.len() as u64 > MAX_UPLOAD_FILES {
        return Err(StoreError::Invalid(
            "files".into(),
            format!("a dataset version lists at most {MAX_UPLOAD_FILES} files"),
        ));
    }
    if let Some(dup) = duplicate_in_other_parts(&mut *cx.tx, id, files).await? {
        return Err(StoreError::Invalid(
            "files".into(),
            format!("duplicate path {dup:?}: another part of this upload lists it too"),
        ));
    }
    cx.tx
        .execute(
            "INSERT INTO manifest_upload_parts (upload_id, part, sha256, file_count, total_bytes)
             VALUES ($1, $2, $3, $4, $5)",
            params![
                id,
                part,
                &this.sha256,
                int("files", this.file_count)?,
                int("files", total_bytes)?
            ],
        )
        .await?;
    let rows = files
        .iter()
        .map(|f| {
            Ok(vec![
                Val::from(id),
                f.path.as_str().into(),
                f.sha256.as_str().into(),
                int("files.size", f.size)?,
                Val::from(part),
            ])
        })
        .collect::<StoreResult<Vec<_>>>()?;
    cx.tx
        .execute_many(
            "INSERT INTO manifest_upload_files (upload_id, path, sha256, size, part)
             VALUES ($1, $2, $3, $4, $5)",
            &rows,
        )
        .await?;
    Ok((this, true))
}

/// The first path of `files` (sorted) that another part of the upload already lists. Reads
/// only the staged rows within this part's path range, a page at a time.
async fn duplicate_in_other_parts(
    tx: &mut dyn RepoTx,
    id: &str,
    files: &[FileEntry],
) -> StoreResult<Option<String>> {
    let (Some(first), Some(last)) = (files.first(), files.last()) else {
        return Ok(None);
    };
    let mut from = first.path.clone();
    let mut inclusive = true;
    loop {
        let cmp = if inclusive { ">=" } else { ">" };
        let rows = tx
            .query(
                &format!(
                    "SELECT path FROM manifest_upload_files WHERE upload_id = $1
                     AND path {cmp} $2 AND path <= $3 ORDER BY path LIMIT $4"
                ),
                params![id, &from, &last.path, DIGEST_PAGE_ROWS],
            )
            .await?;
        for r in &rows {
            let p = r.text(0)?;
            if files.binary_search_by(|f| f.path.as_str().cmp(&p)).is_ok() {
                return Ok(Some(p));
            }
            from = p;
        }
        if rows.len() < DIGEST_PAGE_ROWS as usize {
            return Ok(None);
        }
        inclusive = false;
    }
}

async fn commit(
    cx: &mut WriteCtx,
    w: &Writer,
    dataset_id: &str,
    id: &str,
    totals: StagedTotals,
) -> StoreResult<(DatasetVersion, bool)> {
    key_free(cx, w).await?;
    let u = load_own(&mut *cx.tx, &w.actor, dataset_id, id).await?;
    if !u.committed {
        // The read pass saw these totals; a part that arrived since would change the manifest.
        let now = cx
            .tx
            .query_one(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM manifest_upload_files
                 WHERE upload_id = $1",
                params![id],
            )
            .await?;
        if now.u64(0)? != totals.file_count || now.u64(1)? != totals.total_bytes {
            return Err(StoreError::Conflict(
                "immutable",
                format!("a part of manifest upload {id} arrived while it was being committed; commit again"),
            ));
        }
        if totals.file_count == 0 {
            return Err(StoreError::Invalid(
                "files".into(),
                "a manifest must list at least one file: the upload has no parts".into(),
            ));
        }
        cx.tx
            .execute(
                "UPDATE manifest_uploads SET committed_at = $1 WHERE id = $2",
                params![crate::util::now_str(), id],
            )
            .await?;
    }
    let files = VersionFiles::Staged {
        upload_id: id,
        file_count: totals.file_count,
        total_bytes: totals.total_bytes,
    };
    new_version(cx, w, dataset_id, &u.digest, files, u.note.as_deref()).await
}
