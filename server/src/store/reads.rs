//! Read operations and the row mappers and rules both reads and writes use.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ledger_io;
use super::repo::{int, params, RepoTx, Row, Val};
use super::*;
use crate::util::b64;

pub(crate) const DATASET_COLS: &str = "n, id, name, description, created_at, created_by";

pub(crate) fn row_dataset(r: &Row) -> StoreResult<(i64, Dataset)> {
    Ok((
        r.i64(0)?,
        Dataset {
            id: r.text(1)?,
            name: r.text(2)?,
            description: r.opt_text(3)?,
            created_at: r.text(4)?,
            created_by: r.text(5)?,
        },
    ))
}

pub(crate) const VERSION_COLS: &str =
    "n, dataset_id, digest, file_count, total_bytes, note, created_at, created_by, audit_seq";

pub(crate) fn row_version(r: &Row) -> StoreResult<(i64, DatasetVersion)> {
    Ok((
        r.i64(0)?,
        DatasetVersion {
            dataset_id: r.text(1)?,
            digest: r.text(2)?,
            file_count: r.u64(3)?,
            total_bytes: r.u64(4)?,
            note: r.opt_text(5)?,
            created_at: r.text(6)?,
            created_by: r.text(7)?,
            gate_status: "pending",
            audit_seq: r.u64(8)?,
        },
    ))
}

pub(crate) const GATE_COLS: &str =
    "n, id, dataset_id, digest, gate, status, details, recorded_at, recorded_by, audit_seq";

fn row_gate(r: &Row) -> StoreResult<(i64, GateResult)> {
    Ok((
        r.i64(0)?,
        GateResult {
            id: r.text(1)?,
            dataset_id: r.text(2)?,
            digest: r.text(3)?,
            gate: r.text(4)?,
            status: if r.text(5)? == "passed" {
                GateOutcome::Passed
            } else {
                GateOutcome::Failed
            },
            details: serde_json::from_str(&r.text(6)?).unwrap_or_default(),
            recorded_at: r.text(7)?,
            recorded_by: r.text(8)?,
            audit_seq: r.u64(9)?,
        },
    ))
}

const POLICY_COLS: &str = "version, required_gates, run_token_ttl_seconds, updated_at, updated_by,
    COALESCE(update_seq, audit_seq)";

fn row_policy(r: &Row) -> StoreResult<(Policy, Option<u64>)> {
    Ok((
        Policy {
            version: r.u64(0)?,
            required_gates: serde_json::from_str(&r.text(1)?).unwrap_or_default(),
            run_token_ttl_seconds: r.u64(2)?,
            updated_at: r.text(3)?,
            updated_by: r.text(4)?,
        },
        r.opt_u64(5)?,
    ))
}

pub(crate) const RUN_COLS: &str = "n, id, name, status, inputs, git_commit, image_digest, params,
    outputs, created_at, created_by, finished_at, audit_seq, finish_seq";

/// A run with the sequence number of its `run.finish` event.
pub(crate) struct RunRow {
    pub run: Run,
    pub finish_seq: Option<u64>,
}

pub(crate) fn row_run(r: &Row) -> StoreResult<(i64, RunRow)> {
    Ok((
        r.i64(0)?,
        RunRow {
            run: Run {
                id: r.text(1)?,
                name: r.text(2)?,
                status: r.text(3)?,
                inputs: serde_json::from_str(&r.text(4)?).unwrap_or_default(),
                git_commit: r.text(5)?,
                image_digest: r.text(6)?,
                params: serde_json::from_str(&r.text(7)?).unwrap_or_default(),
                outputs: serde_json::from_str(&r.text(8)?).unwrap_or_default(),
                created_at: r.text(9)?,
                created_by: r.text(10)?,
                finished_at: r.opt_text(11)?,
                audit_seq: r.u64(12)?,
            },
            finish_seq: r.opt_u64(13)?,
        },
    ))
}

pub(crate) const ARTIFACT_COLS: &str =
    "n, id, run_id, name, sha256, size, created_at, created_by, audit_seq";

pub(crate) fn row_artifact(r: &Row) -> StoreResult<(i64, Artifact)> {
    Ok((
        r.i64(0)?,
        Artifact {
            id: r.text(1)?,
            run_id: r.text(2)?,
            name: r.text(3)?,
            sha256: r.text(4)?,
            size: r.u64(5)?,
            created_at: r.text(6)?,
            created_by: r.text(7)?,
            audit_seq: r.u64(8)?,
        },
    ))
}

pub(crate) const TOKEN_COLS: &str = "n, id, name, role, created_at, expires_at, revoked_at";

pub(crate) fn row_token(r: &Row) -> StoreResult<(i64, ApiToken)> {
    Ok((
        r.i64(0)?,
        ApiToken {
            id: r.text(1)?,
            name: r.text(2)?,
            role: Role::parse(&r.text(3)?).unwrap_or(Role::Viewer),
            created_at: r.text(4)?,
            expires_at: r.opt_text(5)?,
            revoked_at: r.opt_text(6)?,
        },
    ))
}

const AUDIT_COLS: &str =
    "seq, time, actor_kind, actor_id, actor_role, action, subject, data, leaf_hash";

fn row_audit(r: &Row) -> StoreResult<(i64, AuditEvent)> {
    Ok((
        r.i64(0)?,
        AuditEvent {
            seq: r.u64(0)?,
            time: r.text(1)?,
            actor: json!({ "kind": r.text(2)?, "id": r.text(3)?, "role": r.text(4)? }),
            action: r.text(5)?,
            subject: r.text(6)?,
            data: serde_json::from_str(&r.text(7)?).unwrap_or(Value::Null),
            leaf_hash: b64(&r.blob(8)?),
        },
    ))
}

/// Map every row, then cut the page.
pub(crate) fn paged<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> StoreResult<(i64, T)>,
    limit: u32,
) -> StoreResult<(Vec<T>, Option<i64>)> {
    let items = rows.iter().map(f).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_out(items, limit))
}

pub(crate) async fn current_policy(tx: &mut dyn RepoTx) -> StoreResult<Policy> {
    let r = tx
        .query_one(
            &format!("SELECT {POLICY_COLS} FROM policies ORDER BY version DESC LIMIT 1"),
            &[],
        )
        .await?;
    Ok(row_policy(&r)?.0)
}

/// The latest result of each gate for a version.
pub(crate) async fn latest_gates(
    tx: &mut dyn RepoTx,
    dataset_id: &str,
    digest: &str,
) -> StoreResult<BTreeMap<String, String>> {
    let rows = tx
        .query(
            "SELECT gate, status FROM gate_results WHERE n IN (
             SELECT MAX(n) FROM gate_results WHERE dataset_id = $1 AND digest = $2 GROUP BY gate)",
            params![dataset_id, digest],
        )
        .await?;
    rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
}

/// `passed` when the latest result of every required gate passed, `failed` if any required
/// gate's latest failed, else `pending`; plus the required gates not passed.
pub(crate) fn gate_status(
    latest: &BTreeMap<String, String>,
    required: &[String],
) -> (&'static str, Vec<String>) {
    let missing: Vec<String> = required
        .iter()
        .filter(|g| latest.get(*g).map(String::as_str) != Some("passed"))
        .cloned()
        .collect();
    let status = if missing.is_empty() {
        "passed"
    } else if required
        .iter()
        .any(|g| latest.get(g).map(String::as_str) == Some("failed"))
    {
        "failed"
    } else {
        "pending"
    };
    (status, missing)
}

pub(crate) async fn with_gate_status(
    tx: &mut dyn RepoTx,
    mut v: DatasetVersion,
    policy: &Policy,
) -> StoreResult<DatasetVersion> {
    let latest = latest_gates(tx, &v.dataset_id, &v.digest).await?;
    v.gate_status = gate_status(&latest, &policy.required_gates).0;
    Ok(v)
}

/// Most files `getDatasetVersionManifest` returns in one answer (the one-request registration
/// limit); larger manifests are read with `listDatasetVersionFiles`.
pub const MAX_WHOLE_MANIFEST_FILES: u64 = 100_000;

pub(crate) async fn find_version(
    tx: &mut dyn RepoTx,
    dataset_id: &str,
    digest: &str,
) -> StoreResult<Option<(i64, DatasetVersion)>> {
    tx.query_opt(
        &format!(
            "SELECT {VERSION_COLS} FROM dataset_versions WHERE dataset_id = $1 AND digest = $2"
        ),
        params![dataset_id, digest],
    )
    .await?
    .map(|r| row_version(&r))
    .transpose()
}

pub(crate) async fn require_version(
    tx: &mut dyn RepoTx,
    dataset_id: &str,
    digest: &str,
) -> StoreResult<(i64, DatasetVersion)> {
    find_version(tx, dataset_id, digest)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("version {digest} of {dataset_id} not found")))
}

pub(crate) async fn find_run(tx: &mut dyn RepoTx, id: &str) -> StoreResult<RunRow> {
    tx.query_opt(
        &format!("SELECT {RUN_COLS} FROM runs WHERE id = $1"),
        params![id],
    )
    .await?
    .map(|r| row_run(&r).map(|(_, rr)| rr))
    .transpose()?
    .ok_or_else(|| StoreError::NotFound(format!("run {id} not found")))
}

pub(crate) async fn running_run(tx: &mut dyn RepoTx, id: &str) -> StoreResult<RunRow> {
    let r = find_run(tx, id).await?;
    if r.run.status != "running" {
        return Err(StoreError::Conflict(
            "run_sealed",
            format!("run {id} is finished ({}) and sealed", r.run.status),
        ));
    }
    Ok(r)
}

pub(crate) async fn require_dataset(tx: &mut dyn RepoTx, id: &str) -> StoreResult<()> {
    tx.query_opt("SELECT n FROM datasets WHERE id = $1", params![id])
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("dataset {id} not found")))
}

pub(crate) async fn artifact_name_free(
    tx: &mut dyn RepoTx,
    run_id: &str,
    name: &str,
) -> StoreResult<()> {
    match tx
        .query_opt(
            "SELECT id FROM artifacts WHERE run_id = $1 AND name = $2",
            params![run_id, name],
        )
        .await?
    {
        Some(r) => Err(StoreError::Conflict(
            "already_exists",
            format!(
                "run {run_id} already has an artifact named {name:?} ({})",
                r.text(0)?
            ),
        )),
        None => Ok(()),
    }
}

/// The recorded verifier: `meta.verifier`, else (ledgers created before it was kept there) the
/// `verifier` of the `ledger.init` event; `None` without a ledger.
pub(crate) async fn ledger_verifier_in(tx: &mut dyn RepoTx) -> StoreResult<Option<String>> {
    if let Some(r) = tx
        .query_opt("SELECT value FROM meta WHERE key = 'verifier'", &[])
        .await?
    {
        return Ok(Some(r.text(0)?));
    }
    let data = tx
        .query_opt(
            "SELECT data FROM audit_events WHERE seq = 0 AND action = 'ledger.init'",
            &[],
        )
        .await?;
    Ok(match data {
        Some(r) => serde_json::from_str::<Value>(&r.text(0)?)
            .ok()
            .and_then(|d| d.get("verifier")?.as_str().map(String::from)),
        None => None,
    })
}

/// The key to continue after: the cursor's, else before the first row (`first` ascending,
/// past every key descending).
pub(crate) fn after(page: PageReq, first: i64) -> i64 {
    page.after
        .unwrap_or(if page.desc { i64::MAX } else { first })
}

/// `col > $param ORDER BY col` in the page's order (`<` and `DESC` descending).
pub(crate) fn keyset(page: PageReq, col: &str, param: usize) -> String {
    if page.desc {
        format!("{col} < ${param} ORDER BY {col} DESC")
    } else {
        format!("{col} > ${param} ORDER BY {col}")
    }
}

impl Store {
    pub async fn ledger_verifier(&self) -> StoreResult<Option<String>> {
        self.read(|tx| Box::pin(ledger_verifier_in(tx))).await
    }

    pub async fn tree_size(&self) -> StoreResult<u64> {
        self.read_one(|tx| Box::pin(ledger_io::size(tx))).await
    }

    pub async fn lookup_api_token(
        &self,
        secret_hash: &str,
        now: &str,
    ) -> StoreResult<Option<TokenAuth>> {
        let (h, now) = (secret_hash.to_owned(), now.to_owned());
        self.read_one(move |tx| {
            Box::pin(async move {
                let Some(r) = tx
                    .query_opt(
                        "SELECT id, name, role, expires_at, revoked_at FROM tokens WHERE secret_hash = $1",
                        params![h],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                // Timestamps share one fixed-width UTC format, so text order is time order.
                let expired = r.opt_text(3)?.is_some_and(|e| e.as_str() <= now.as_str());
                if r.opt_text(4)?.is_some() || expired {
                    return Ok(None);
                }
                Ok(Role::parse(&r.text(2)?).map(|role| TokenAuth {
                    id: r.text(0).unwrap_or_default(),
                    name: r.text(1).unwrap_or_default(),
                    role,
                }))
            })
        })
        .await
    }

    pub async fn lookup_run_token(
        &self,
        secret_hash: &str,
        now: &str,
    ) -> StoreResult<Option<RunTokenAuth>> {
        let (h, now) = (secret_hash.to_owned(), now.to_owned());
        self.read_one(move |tx| {
            Box::pin(async move {
                let Some(r) = tx
                    .query_opt(
                        "SELECT id, status, token_expires_at FROM runs WHERE token_hash = $1",
                        params![h],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                Ok(
                    (r.text(2)?.as_str() > now.as_str()).then_some(RunTokenAuth {
                        run_id: r.text(0)?,
                        sealed: r.text(1)? != "running",
                    }),
                )
            })
        })
        .await
    }

    pub async fn list_datasets(&self, page: PageReq) -> StoreResult<(Vec<Dataset>, Option<i64>)> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {DATASET_COLS} FROM datasets WHERE {} LIMIT $2",
                            keyset(page, "n", 1)
                        ),
                        params![after(page, 0), page.limit + 1],
                    )
                    .await?;
                paged(rows, row_dataset, page.limit)
            })
        })
        .await
    }

    pub async fn get_dataset(&self, id: &str) -> StoreResult<Dataset> {
        let id = id.to_owned();
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!("SELECT {DATASET_COLS} FROM datasets WHERE id = $1"),
                    params![&id],
                )
                .await?
                .map(|r| row_dataset(&r).map(|(_, d)| d))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("dataset {id} not found")))
            })
        })
        .await
    }

    pub async fn list_versions(
        &self,
        dataset_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<DatasetVersion>, Option<i64>)> {
        let ds = dataset_id.to_owned();
        self.read(move |tx| {
            Box::pin(async move {
                require_dataset(tx, &ds).await?;
                let policy = current_policy(tx).await?;
                let rows = tx
                    .query(
                        &format!("SELECT {VERSION_COLS} FROM dataset_versions WHERE dataset_id = $1 AND {} LIMIT $3", keyset(page, "n", 2)),
                        params![&ds, after(page, 0), page.limit + 1],
                    )
                    .await?;
                let (items, next) = paged(rows, row_version, page.limit)?;
                let mut out = Vec::with_capacity(items.len());
                for v in items {
                    out.push(with_gate_status(tx, v, &policy).await?);
                }
                Ok((out, next))
            })
        })
        .await
    }

    pub async fn get_version(&self, dataset_id: &str, digest: &str) -> StoreResult<DatasetVersion> {
        let (ds, digest) = (dataset_id.to_owned(), digest.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                require_dataset(tx, &ds).await?;
                let policy = current_policy(tx).await?;
                let (_, v) = require_version(tx, &ds, &digest).await?;
                with_gate_status(tx, v, &policy).await
            })
        })
        .await
    }

    /// `getDatasetVersionManifest`: the whole manifest in one answer, for versions of at most
    /// [`MAX_WHOLE_MANIFEST_FILES`] files.
    pub async fn get_manifest(&self, dataset_id: &str, digest: &str) -> StoreResult<Manifest> {
        let (ds, digest) = (dataset_id.to_owned(), digest.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                require_dataset(tx, &ds).await?;
                let (n, v) = require_version(tx, &ds, &digest).await?;
                // One response holds the whole manifest: bounded to what one request may
                // register; larger versions are read a page at a time.
                if v.file_count > MAX_WHOLE_MANIFEST_FILES {
                    return Err(StoreError::Unprocessable(
                        "manifest_too_large",
                        format!(
                            "version {digest} lists {} files, more than one manifest response \
                             carries ({MAX_WHOLE_MANIFEST_FILES}); read it in pages with \
                             listDatasetVersionFiles (GET …/versions/{{digest}}/files)",
                            v.file_count
                        ),
                    ));
                }
                let rows = tx
                    .query(
                        "SELECT path, sha256, size FROM manifest_files WHERE version_n = $1 ORDER BY path",
                        params![n],
                    )
                    .await?;
                let files = rows
                    .iter()
                    .map(|r| {
                        Ok(FileEntry {
                            path: r.text(0)?,
                            sha256: r.text(1)?,
                            size: r.u64(2)?,
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(Manifest { digest, files })
            })
        })
        .await
    }

    pub async fn list_gates(
        &self,
        dataset_id: &str,
        digest: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<GateResult>, Option<i64>)> {
        let (ds, digest) = (dataset_id.to_owned(), digest.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                require_dataset(tx, &ds).await?;
                require_version(tx, &ds, &digest).await?;
                let rows = tx
                    .query(
                        &format!("SELECT {GATE_COLS} FROM gate_results WHERE dataset_id = $1 AND digest = $2 AND {} LIMIT $4", keyset(page, "n", 3)),
                        params![&ds, &digest, after(page, 0), page.limit + 1],
                    )
                    .await?;
                paged(rows, row_gate, page.limit)
            })
        })
        .await
    }

    pub async fn get_policy(&self) -> StoreResult<Policy> {
        self.read(|tx| Box::pin(current_policy(tx))).await
    }

    /// The policy in force at `tree_size` and the seq of its `policy.update` event (none for v1).
    pub async fn policy_at(&self, tree_size: u64) -> StoreResult<(Policy, Option<u64>)> {
        self.read(move |tx| {
            Box::pin(async move {
                let r = tx
                    .query_one(
                        &format!("SELECT {POLICY_COLS} FROM policies WHERE audit_seq < $1 ORDER BY version DESC LIMIT 1"),
                        params![int("tree_size", tree_size)?],
                    )
                    .await?;
                row_policy(&r)
            })
        })
        .await
    }

    pub async fn list_runs(&self, page: PageReq) -> StoreResult<(Vec<Run>, Option<i64>)> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {RUN_COLS} FROM runs WHERE {} LIMIT $2",
                            keyset(page, "n", 1)
                        ),
                        params![after(page, 0), page.limit + 1],
                    )
                    .await?;
                paged(rows, |r| row_run(r).map(|(n, rr)| (n, rr.run)), page.limit)
            })
        })
        .await
    }

    pub async fn get_run(&self, id: &str) -> StoreResult<Run> {
        let id = id.to_owned();
        self.read(move |tx| Box::pin(async move { Ok(find_run(tx, &id).await?.run) }))
            .await
    }

    pub async fn list_metrics(
        &self,
        run_id: &str,
        name: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<MetricValue>, Option<i64>)> {
        let (run_id, name) = (run_id.to_owned(), name.map(str::to_owned));
        self.read(move |tx| {
            Box::pin(async move {
                find_run(tx, &run_id).await?;
                // received_at: the batch's receive time (its metrics.append event).
                let cols = "n, name, step, value, time, batch, (SELECT created_at FROM metric_batches b
                    WHERE b.run_id = metric_points.run_id AND b.batch = metric_points.batch)";
                let rows = match &name {
                    Some(n) => tx.query(
                        &format!("SELECT {cols} FROM metric_points WHERE run_id = $1 AND name = $2 AND {} LIMIT $4", keyset(page, "n", 3)),
                        params![&run_id, n, after(page, 0), page.limit + 1]).await?,
                    None => tx.query(
                        &format!("SELECT {cols} FROM metric_points WHERE run_id = $1 AND {} LIMIT $3", keyset(page, "n", 2)),
                        params![&run_id, after(page, 0), page.limit + 1]).await?,
                };
                paged(
                    rows,
                    |r| {
                        Ok((
                            r.i64(0)?,
                            MetricValue {
                                name: r.text(1)?,
                                step: r.u64(2)?,
                                value: r.f64(3)?,
                                time: r.opt_text(4)?,
                                batch: r.u64(5)?,
                                received_at: r.text(6)?,
                            },
                        ))
                    },
                    page.limit,
                )
            })
        })
        .await
    }

    /// True if any artifact has this content (blobs are shared by content).
    pub async fn blob_referenced(&self, sha256: &str) -> StoreResult<bool> {
        let sha = sha256.to_owned();
        self.read(move |tx| {
            Box::pin(async move {
                Ok(tx
                    .query_opt(
                        "SELECT 1 FROM artifacts WHERE sha256 = $1 LIMIT 1",
                        params![&sha],
                    )
                    .await?
                    .is_some())
            })
        })
        .await
    }

    /// Fail fast before streaming an upload: run exists, is running, name unused.
    pub async fn check_artifact_upload(&self, run_id: &str, name: &str) -> StoreResult<()> {
        let (run_id, name) = (run_id.to_owned(), name.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                running_run(tx, &run_id).await?;
                artifact_name_free(tx, &run_id, &name).await
            })
        })
        .await
    }

    pub async fn list_artifacts(
        &self,
        run_id: &str,
        page: PageReq,
    ) -> StoreResult<(Vec<Artifact>, Option<i64>)> {
        let run_id = run_id.to_owned();
        self.read(move |tx| {
            Box::pin(async move {
                find_run(tx, &run_id).await?;
                let rows = tx
                    .query(
                        &format!("SELECT {ARTIFACT_COLS} FROM artifacts WHERE run_id = $1 AND {} LIMIT $3", keyset(page, "n", 2)),
                        params![&run_id, after(page, 0), page.limit + 1],
                    )
                    .await?;
                paged(rows, row_artifact, page.limit)
            })
        })
        .await
    }

    pub async fn get_artifact(&self, run_id: &str, artifact_id: &str) -> StoreResult<Artifact> {
        let (run_id, id) = (run_id.to_owned(), artifact_id.to_owned());
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!("SELECT {ARTIFACT_COLS} FROM artifacts WHERE run_id = $1 AND id = $2"),
                    params![&run_id, &id],
                )
                .await?
                .map(|r| row_artifact(&r).map(|(_, a)| a))
                .transpose()?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("artifact {id} of run {run_id} not found"))
                })
            })
        })
        .await
    }

    pub async fn list_audit(
        &self,
        subject: Option<&str>,
        action: Option<&str>,
        page: PageReq,
    ) -> StoreResult<(Vec<AuditEvent>, Option<i64>)> {
        let (subject, action) = (subject.map(str::to_owned), action.map(str::to_owned));
        self.read(move |tx| {
            Box::pin(async move {
                // One statement shape per filter combination: `$2 IS NULL` tricks leave
                // PostgreSQL unable to infer the parameter's type.
                let mut sql = format!(
                    "SELECT {AUDIT_COLS} FROM audit_events WHERE seq {} $1",
                    if page.desc { "<" } else { ">" }
                );
                let mut p = vec![Val::Int(after(page, -1))];
                if let Some(s) = &subject {
                    p.push(s.into());
                    sql.push_str(&format!(" AND subject = ${}", p.len()));
                }
                if let Some(a) = &action {
                    p.push(a.into());
                    sql.push_str(&format!(" AND action = ${}", p.len()));
                }
                p.push((page.limit + 1).into());
                sql.push_str(&format!(
                    " ORDER BY seq{} LIMIT ${}",
                    if page.desc { " DESC" } else { "" },
                    p.len()
                ));
                let rows = tx.query(&sql, &p).await?;
                paged(rows, row_audit, page.limit)
            })
        })
        .await
    }

    pub async fn get_audit(&self, seq: u64) -> StoreResult<AuditEvent> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.query_opt(
                    &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE seq = $1"),
                    params![int("seq", seq)?],
                )
                .await?
                .map(|r| row_audit(&r).map(|(_, e)| e))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("audit event {seq} not found")))
            })
        })
        .await
    }

    /// Leaf bytes of the events with one of `subjects` or one of `seqs`, with `seq < tree_size`,
    /// ascending.
    pub async fn audit_slice(
        &self,
        subjects: &[String],
        seqs: &[u64],
        tree_size: u64,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let (subjects, seqs) = (subjects.to_vec(), seqs.to_vec());
        self.read(move |tx| Box::pin(audit_slice_in(tx, subjects, seqs, tree_size)))
            .await
    }

    pub async fn ledger_entries(&self, start: u64, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.read(move |tx| {
            Box::pin(async move {
                // Only committed entries below the published size: a replica never shows an
                // entry beyond the ledger size another transaction has not yet committed.
                let size = ledger_io::size(tx).await?;
                let rows = tx
                    .query(
                        "SELECT seq, leaf, leaf_hash FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq LIMIT $3",
                        params![int("start", start)?, int("size", size)?, limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LedgerEntry {
                            seq: r.u64(0)?,
                            leaf: b64(&r.blob(1)?),
                            leaf_hash: b64(&r.blob(2)?),
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Head of the tree at `size` (the current size when `None`).
    pub async fn tree_head(&self, size: Option<u64>) -> StoreResult<TreeHead> {
        self.read(move |tx| Box::pin(ledger_io::tree_head(tx, size)))
            .await
    }

    pub async fn inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> StoreResult<(Hash, Vec<Hash>)> {
        self.read(move |tx| Box::pin(ledger_io::inclusion_proof(tx, seq, tree_size)))
            .await
    }

    pub async fn consistency_proof(&self, from: u64, to: u64) -> StoreResult<Vec<Hash>> {
        self.read(move |tx| Box::pin(ledger_io::consistency_proof(tx, from, to)))
            .await
    }

    pub async fn list_tokens(&self, page: PageReq) -> StoreResult<(Vec<ApiToken>, Option<i64>)> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {TOKEN_COLS} FROM tokens WHERE {} LIMIT $2",
                            keyset(page, "n", 1)
                        ),
                        params![after(page, 0), page.limit + 1],
                    )
                    .await?;
                paged(rows, row_token, page.limit)
            })
        })
        .await
    }

    /// What the store knows of an `Idempotency-Key` (expired keys are fresh).
    pub async fn idem_lookup(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> StoreResult<IdemLookup> {
        let (scope, key, fp) = (scope.to_owned(), key.to_owned(), fingerprint.to_owned());
        self.read_one(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        "SELECT fingerprint, status, headers, body, secret_of FROM idempotency
                         WHERE scope = $1 AND key = $2 AND state = 'done' AND created_unix >= $3",
                        params![&scope, &key, unix_now() - IDEMPOTENCY_TTL_SECS],
                    )
                    .await?;
                let Some(r) = row else {
                    return Ok(IdemLookup::Fresh);
                };
                if r.text(0)? != fp {
                    return Ok(IdemLookup::Mismatch);
                }
                Ok(IdemLookup::Replay(StoredResponse {
                    status: r.i64(1).unwrap_or(200) as u16,
                    headers: r
                        .opt_text(2)?
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .unwrap_or_default(),
                    body: r.opt_blob(3)?.unwrap_or_default(),
                    secret_of: r.opt_text(4)?,
                }))
            })
        })
        .await
    }

    /// The checkpoint note this server signed for `tree_size`, if any.
    pub async fn stored_checkpoint(&self, tree_size: u64) -> StoreResult<Option<(Hash, String)>> {
        self.read(move |tx| Box::pin(stored_checkpoint_in(tx, tree_size)))
            .await
    }

    /// The witness cosignature lines kept for the checkpoint of `tree_size`, by witness.
    pub async fn cosignatures(&self, tree_size: u64) -> StoreResult<Vec<(String, String)>> {
        self.read(move |tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT witness, line FROM checkpoint_cosignatures WHERE tree_size = $1 ORDER BY witness",
                    params![int("tree_size", tree_size)?],
                )
                .await?
                .into_iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?)))
                .collect()
            })
        })
        .await
    }

    /// The largest checkpoint this server has signed: `(size, note)`.
    pub async fn latest_checkpoint(&self) -> StoreResult<Option<(u64, String)>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query_opt(
                    "SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
                    &[],
                )
                .await?
                .map(|r| Ok((r.u64(0)?, r.text(1)?)))
                .transpose()
            })
        })
        .await
    }
}

pub(crate) async fn stored_checkpoint_in(
    tx: &mut dyn RepoTx,
    tree_size: u64,
) -> StoreResult<Option<(Hash, String)>> {
    tx.query_opt(
        "SELECT root, note FROM checkpoints WHERE tree_size = $1",
        params![int("tree_size", tree_size)?],
    )
    .await?
    .map(|r| {
        let root: Hash = r
            .blob(0)?
            .try_into()
            .map_err(|_| StoreError::Internal("bad checkpoint root length".into()))?;
        Ok((root, r.text(1)?))
    })
    .transpose()
}

async fn audit_slice_in(
    tx: &mut dyn RepoTx,
    subjects: Vec<String>,
    seqs: Vec<u64>,
    tree_size: u64,
) -> StoreResult<Vec<(u64, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    let size = int("tree_size", tree_size)?;
    for s in &subjects {
        for r in tx
            .query(
                "SELECT seq, leaf FROM audit_events WHERE subject = $1 AND seq < $2",
                params![s, size.clone()],
            )
            .await?
        {
            out.insert(r.u64(0)?, r.blob(1)?);
        }
    }
    for &seq in &seqs {
        if let Some(r) = tx
            .query_opt(
                "SELECT leaf FROM audit_events WHERE seq = $1 AND seq < $2",
                params![int("seq", seq)?, size.clone()],
            )
            .await?
        {
            out.insert(seq, r.blob(0)?);
        }
    }
    Ok(out.into_iter().collect())
}
