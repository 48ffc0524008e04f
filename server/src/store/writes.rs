//! Write operations: each checks its rules, writes its rows, appends its one audit event and
//! records its `Idempotency-Key` answer, all in the committer's transaction.

use std::collections::BTreeMap;

use datapilot::merkle::Hash;
use serde_json::json;

use super::commit::WriteCtx;
use super::reads::*;
use super::repo::{int, params, Val};
use super::*;
use crate::util::{self, new_id};

/// Record the writer's `Idempotency-Key` answer inside the write's transaction, so that the
/// write, its audit event and its replayable response commit (or vanish) together: a crash
/// after the commit leaves a key that replays, never one that repeats the write. If the key
/// was recorded meanwhile (a concurrent duplicate, perhaps on another replica), the write is
/// undone and the caller replays that answer instead. `secret_of` names the token or run whose
/// secret the real response carries; the secret itself never reaches the store.
pub(super) async fn idem_record<T: serde::Serialize>(
    cx: &mut WriteCtx,
    w: &Writer,
    status: u16,
    body: &T,
    secret_of: Option<&str>,
) -> StoreResult<()> {
    let Some(k) = &w.idem else {
        return Ok(());
    };
    let body = serde_json::to_vec(body).map_err(|e| StoreError::Internal(e.to_string()))?;
    let stored = StoredResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        secret_of: secret_of.map(String::from),
    };
    if !insert_idem(cx, k, &stored).await? {
        return Err(StoreError::KeyTaken);
    }
    Ok(())
}

/// Refuse a keyed write whose key was recorded meanwhile (a concurrent duplicate that
/// committed first), before its own rules run: the caller replays that answer instead of
/// getting a refusal the first request never got (a taken name, a sealed run).
pub(super) async fn key_free(cx: &mut WriteCtx, w: &Writer) -> StoreResult<()> {
    let Some(k) = &w.idem else {
        return Ok(());
    };
    let found = cx
        .tx
        .query_opt(
            "SELECT created_unix FROM idempotency WHERE scope = $1 AND key = $2",
            params![&k.scope, &k.key],
        )
        .await?;
    match found {
        None => Ok(()),
        Some(r) if r.i64(0)? < unix_now() - IDEMPOTENCY_TTL_SECS => {
            // Expired: forget it, so the insert at the end of the write succeeds.
            cx.tx
                .execute(
                    "DELETE FROM idempotency WHERE scope = $1 AND key = $2",
                    params![&k.scope, &k.key],
                )
                .await?;
            Ok(())
        }
        Some(_) => Err(StoreError::KeyTaken),
    }
}

/// Insert a key's answer unless the key is already recorded (callers forget expired records
/// first); true if inserted.
async fn insert_idem(cx: &mut WriteCtx, k: &IdemKey, r: &StoredResponse) -> StoreResult<bool> {
    let now = unix_now();
    let headers =
        serde_json::to_string(&r.headers).map_err(|e| StoreError::Internal(e.to_string()))?;
    let n = cx
        .tx
        .execute(
            "INSERT INTO idempotency (scope, key, fingerprint, state, status, headers, body,
             secret_of, created_unix) VALUES ($1, $2, $3, 'done', $4, $5, $6, $7, $8)
             ON CONFLICT (scope, key) DO NOTHING",
            params![
                &k.scope,
                &k.key,
                &k.fingerprint,
                i64::from(r.status),
                headers,
                r.body.clone(),
                r.secret_of.clone(),
                now
            ],
        )
        .await?;
    Ok(n == 1)
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Store {
    /// Create the ledger on first start: `ledger.init`, policy v1 and the bootstrap token.
    /// On later starts check the origin and key against the recorded ones. True if new.
    pub async fn init(&self, p: &InitParams) -> StoreResult<bool> {
        let p = p.clone();
        self.committer
            .write(move |cx| Box::pin(async move { init(cx, &p).await }))
            .await
    }

    pub async fn create_dataset(
        &self,
        w: &Writer,
        name: &str,
        description: Option<&str>,
    ) -> StoreResult<Dataset> {
        let (w, name, desc) = (w.clone(), name.to_owned(), description.map(str::to_owned));
        self.committer
            .write(move |cx| {
                Box::pin(async move { create_dataset(cx, &w, &name, desc.as_deref()).await })
            })
            .await
    }

    /// Register a verified manifest; `(version, created)`, `created == false` when the same
    /// digest was already registered in this dataset (nothing written, no event).
    pub async fn register_version(
        &self,
        w: &Writer,
        dataset_id: &str,
        manifest: datapilot::manifest::Manifest,
        note: Option<&str>,
    ) -> StoreResult<(DatasetVersion, bool)> {
        let (w, ds, note) = (w.clone(), dataset_id.to_owned(), note.map(str::to_owned));
        self.committer
            .write(move |cx| {
                Box::pin(
                    async move { register_version(cx, &w, &ds, &manifest, note.as_deref()).await },
                )
            })
            .await
    }

    pub async fn record_gate(
        &self,
        w: &Writer,
        dataset_id: &str,
        digest: &str,
        gate: &str,
        status: GateOutcome,
        details: &BTreeMap<String, String>,
    ) -> StoreResult<GateResult> {
        let (w, ds, digest, gate, details) = (
            w.clone(),
            dataset_id.to_owned(),
            digest.to_owned(),
            gate.to_owned(),
            details.clone(),
        );
        self.committer
            .write(move |cx| {
                Box::pin(
                    async move { record_gate(cx, &w, &ds, &digest, &gate, status, &details).await },
                )
            })
            .await
    }

    pub async fn update_policy(
        &self,
        w: &Writer,
        required_gates: &[String],
        ttl: u64,
    ) -> StoreResult<Policy> {
        self.update_policy_if(w, required_gates, ttl, None).await
    }

    /// [`Store::update_policy`] only while the current policy is at version `if_match` (when
    /// given; `If-Match` of `updatePolicy`), checked in the write's transaction: otherwise
    /// `precondition_failed` and nothing is written.
    pub async fn update_policy_if(
        &self,
        w: &Writer,
        required_gates: &[String],
        ttl: u64,
        if_match: Option<u64>,
    ) -> StoreResult<Policy> {
        let (w, gates) = (w.clone(), required_gates.to_vec());
        self.committer
            .write(move |cx| {
                Box::pin(async move { update_policy(cx, &w, &gates, ttl, if_match).await })
            })
            .await
    }

    /// Create a run; returns it and its token's expiry.
    pub async fn create_run(&self, w: &Writer, r: &NewRun) -> StoreResult<(Run, String)> {
        let (w, r) = (w.clone(), r.clone());
        self.committer
            .write(move |cx| Box::pin(async move { create_run(cx, &w, &r).await }))
            .await
    }

    /// A new run token for a running run (the old one stops working); returns its expiry.
    /// For a run whose `createRun` answer was lost: its token was shown only in that answer.
    pub async fn reissue_run_token(
        &self,
        w: &Writer,
        id: &str,
        token_hash: &str,
        ttl_override: Option<u64>,
    ) -> StoreResult<String> {
        let (w, id, hash) = (w.clone(), id.to_owned(), token_hash.to_owned());
        self.committer
            .write(move |cx| {
                Box::pin(async move { reissue_run_token(cx, &w, &id, &hash, ttl_override).await })
            })
            .await
    }

    pub async fn finish_run(
        &self,
        w: &Writer,
        id: &str,
        status: FinishStatus,
        outputs: &[VersionRef],
    ) -> StoreResult<Run> {
        let (w, id, outputs) = (w.clone(), id.to_owned(), outputs.to_vec());
        self.committer
            .write(move |cx| {
                Box::pin(async move { finish_run(cx, &w, &id, status, &outputs).await })
            })
            .await
    }

    pub async fn append_metrics(
        &self,
        w: &Writer,
        run_id: &str,
        points: Vec<MetricPoint>,
        digest: &str,
    ) -> StoreResult<MetricBatch> {
        let (w, run_id, digest) = (w.clone(), run_id.to_owned(), digest.to_owned());
        self.committer
            .write(move |cx| {
                Box::pin(async move { append_metrics(cx, &w, &run_id, &points, &digest).await })
            })
            .await
    }

    pub async fn add_artifact(
        &self,
        w: &Writer,
        run_id: &str,
        name: &str,
        sha256: &str,
        size: u64,
    ) -> StoreResult<Artifact> {
        let (w, run_id, name, sha) = (
            w.clone(),
            run_id.to_owned(),
            name.to_owned(),
            sha256.to_owned(),
        );
        self.committer
            .write(move |cx| {
                Box::pin(async move { add_artifact(cx, &w, &run_id, &name, &sha, size).await })
            })
            .await
    }

    pub async fn create_token(
        &self,
        w: &Writer,
        name: &str,
        role: Role,
        secret_hash: &str,
        expires_at: Option<&str>,
    ) -> StoreResult<ApiToken> {
        let (w, name, hash, exp) = (
            w.clone(),
            name.to_owned(),
            secret_hash.to_owned(),
            expires_at.map(str::to_owned),
        );
        self.committer
            .write(move |cx| {
                Box::pin(
                    async move { create_token(cx, &w, &name, role, &hash, exp.as_deref()).await },
                )
            })
            .await
    }

    pub async fn revoke_token(&self, w: &Writer, id: &str) -> StoreResult<ApiToken> {
        let (w, id) = (w.clone(), id.to_owned());
        self.committer
            .write(move |cx| Box::pin(async move { revoke_token(cx, &w, &id).await }))
            .await
    }

    /// Keep the answer of a keyed request that wrote nothing (an error below 500). A key
    /// recorded meanwhile (by its write, or a duplicate) is left as it is.
    pub async fn idem_store(&self, k: &IdemKey, resp: &StoredResponse) -> StoreResult<()> {
        let (k, resp) = (k.clone(), resp.clone());
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    cx.tx
                        .execute(
                            "DELETE FROM idempotency WHERE scope = $1 AND key = $2 AND created_unix < $3",
                            params![&k.scope, &k.key, unix_now() - IDEMPOTENCY_TTL_SECS],
                        )
                        .await?;
                    insert_idem(cx, &k, &resp).await.map(|_| ())
                })
            })
            .await
    }

    /// Remember a gateway request's nonce until `until` (unix seconds); false if it was seen
    /// before (a replay). Forgets expired nonces on the way.
    pub async fn claim_nonce(&self, nonce: &str, until: i64) -> StoreResult<bool> {
        let nonce = nonce.to_owned();
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    cx.tx
                        .execute(
                            "DELETE FROM gateway_nonces WHERE expires_unix < $1",
                            params![unix_now()],
                        )
                        .await?;
                    let n = cx
                        .tx
                        .execute(
                            "INSERT INTO gateway_nonces (nonce, expires_unix) VALUES ($1, $2)
                             ON CONFLICT (nonce) DO NOTHING",
                            params![&nonce, until],
                        )
                        .await?;
                    Ok(n == 1)
                })
            })
            .await
    }

    /// Keep `witness`'s cosignature line of the checkpoint of `tree_size` (the first one kept
    /// for that witness and size stays; a later one is ignored).
    pub async fn record_cosignature(
        &self,
        tree_size: u64,
        witness: &str,
        line: &str,
    ) -> StoreResult<()> {
        let (witness, line) = (witness.to_owned(), line.to_owned());
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    cx.tx
                        .execute(
                            "INSERT INTO checkpoint_cosignatures (tree_size, witness, line, received_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size, witness) DO NOTHING",
                            params![int("tree_size", tree_size)?, &witness, &line, util::now_str()],
                        )
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Record that the server signs `root` for `tree_size`, or return the note it already
    /// signed for that size. Signing a different root for a size already signed would be
    /// equivocation: refused, whichever replica asks.
    pub async fn record_checkpoint(
        &self,
        tree_size: u64,
        root: Hash,
        note: String,
    ) -> StoreResult<String> {
        self.committer
            .write(move |cx| {
                Box::pin(async move {
                    if let Some((stored_root, stored_note)) =
                        stored_checkpoint_in(&mut *cx.tx, tree_size).await?
                    {
                        return if stored_root == root {
                            Ok(stored_note)
                        } else {
                            Err(StoreError::Internal(format!(
                                "refusing to sign a second root for tree size {tree_size}: the \
                                 ledger differs from the one this server signed (restored from an \
                                 older backup?); see docs/server.md, \"Restore\""
                            )))
                        };
                    }
                    cx.tx
                        .execute(
                            "INSERT INTO checkpoints (tree_size, root, note, signed_at) VALUES ($1, $2, $3, $4)",
                            params![int("tree_size", tree_size)?, root.to_vec(), &note, util::now_str()],
                        )
                        .await?;
                    Ok(note)
                })
            })
            .await
    }
}

async fn init(cx: &mut WriteCtx, p: &InitParams) -> StoreResult<bool> {
    // Records of keys from earlier releases that were still in flight when they stopped.
    cx.tx
        .execute(
            "DELETE FROM idempotency WHERE state <> 'done' OR created_unix < $1",
            params![unix_now() - IDEMPOTENCY_TTL_SECS],
        )
        .await?;
    if cx.size > 0 {
        if let Some(r) = cx
            .tx
            .query_opt("SELECT value FROM meta WHERE key = 'origin'", &[])
            .await?
        {
            let o = r.text(0)?;
            if o != p.origin {
                return Err(StoreError::Internal(format!(
                    "this ledger's origin is {o:?}, not {:?}; the origin cannot change",
                    p.origin
                )));
            }
        }
        // The key that signs this ledger never changes (the caller checked it against the
        // recorded verifier); ledgers created before it was kept in `meta` get it from their
        // `ledger.init` event.
        match ledger_verifier_in(&mut *cx.tx).await? {
            Some(v) if v != p.verifier => {
                return Err(StoreError::Internal(format!(
                    "this ledger is signed by {v}, not by {}; restore its ledger.key",
                    p.verifier
                )))
            }
            _ => {}
        }
        cx.tx
            .execute(
                "INSERT INTO meta (key, value) VALUES ('verifier', $1) ON CONFLICT (key) DO NOTHING",
                params![&p.verifier],
            )
            .await?;
        return Ok(false);
    }
    let sys = ActorRef::system();
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "INSERT INTO meta (key, value) VALUES ('origin', $1)",
            params![&p.origin],
        )
        .await?;
    cx.tx
        .execute(
            "INSERT INTO meta (key, value) VALUES ('verifier', $1)",
            params![&p.verifier],
        )
        .await?;
    cx.tx
        .execute(
            "INSERT INTO policies (version, required_gates, run_token_ttl_seconds, updated_at,
             updated_by, audit_seq, update_seq) VALUES (1, '[]', $1, $2, $3, $4, NULL)",
            params![
                int("ttl", DEFAULT_RUN_TOKEN_TTL)?,
                &time,
                &sys.id,
                int("seq", seq)?
            ],
        )
        .await?;
    cx.append(seq, &time, &sys, "ledger.init", &format!("ledger:{}", p.origin), json!({
        "origin": p.origin,
        "verifier": p.verifier,
        "policy": { "version": 1, "required_gates": [], "run_token_ttl_seconds": DEFAULT_RUN_TOKEN_TTL },
    }))
    .await?;
    // The bootstrap admin token, audited like any other token.
    let (seq, time) = cx.next_event();
    let id = new_id("tok_");
    cx.tx
        .execute(
            "INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, audit_seq)
             VALUES ($1, 'bootstrap', 'admin', $2, $3, $4, $5)",
            params![
                &id,
                &p.bootstrap_secret_hash,
                &time,
                &sys.id,
                int("seq", seq)?
            ],
        )
        .await?;
    cx.append(
        seq,
        &time,
        &sys,
        "token.create",
        &format!("token:{id}"),
        json!({ "token_id": id, "name": "bootstrap", "role": "admin", "expires_at": null }),
    )
    .await?;
    Ok(true)
}

async fn create_dataset(
    cx: &mut WriteCtx,
    w: &Writer,
    name: &str,
    description: Option<&str>,
) -> StoreResult<Dataset> {
    key_free(cx, w).await?;
    let a = &w.actor;
    if let Some(r) = cx
        .tx
        .query_opt("SELECT id FROM datasets WHERE name = $1", params![name])
        .await?
    {
        return Err(StoreError::Conflict(
            "already_exists",
            format!("a dataset named {name:?} exists ({})", r.text(0)?),
        ));
    }
    let (seq, time) = cx.next_event();
    let id = new_id("ds_");
    cx.tx
        .execute(
            "INSERT INTO datasets (id, name, description, created_at, created_by, audit_seq)
             VALUES ($1, $2, $3, $4, $5, $6)",
            params![&id, name, description, &time, &a.id, int("seq", seq)?],
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "dataset.create",
        &format!("dataset:{id}"),
        json!({ "dataset_id": id, "name": name, "description": description }),
    )
    .await?;
    let ds = Dataset {
        id,
        name: name.into(),
        description: description.map(Into::into),
        created_at: time,
        created_by: a.id.clone(),
    };
    idem_record(cx, w, 201, &ds, None).await?;
    Ok(ds)
}

async fn register_version(
    cx: &mut WriteCtx,
    w: &Writer,
    dataset_id: &str,
    manifest: &datapilot::manifest::Manifest,
    note: Option<&str>,
) -> StoreResult<(DatasetVersion, bool)> {
    key_free(cx, w).await?;
    new_version(
        cx,
        w,
        dataset_id,
        manifest.digest(),
        VersionFiles::Rows(manifest),
        note,
    )
    .await
}

/// Where a new version's file rows come from: a manifest in the request, or the staging rows
/// of a manifest upload (copied by the database, never loaded here).
pub(super) enum VersionFiles<'a> {
    Rows(&'a datapilot::manifest::Manifest),
    Staged {
        upload_id: &'a str,
        file_count: u64,
        total_bytes: u64,
    },
}

impl VersionFiles<'_> {
    fn counts(&self) -> (u64, u64) {
        match self {
            VersionFiles::Rows(m) => (m.len() as u64, m.total_bytes()),
            VersionFiles::Staged {
                file_count,
                total_bytes,
                ..
            } => (*file_count, *total_bytes),
        }
    }
}

/// Register `digest` (already checked against its files) as a version of `dataset_id`, or
/// answer the existing version: the rows, the `dataset_version.register` event and the
/// idempotency answer, in the caller's write.
pub(super) async fn new_version(
    cx: &mut WriteCtx,
    w: &Writer,
    dataset_id: &str,
    digest: &str,
    files: VersionFiles<'_>,
    note: Option<&str>,
) -> StoreResult<(DatasetVersion, bool)> {
    let a = &w.actor;
    let (file_count, total_bytes) = files.counts();
    let total = int("files", total_bytes)?;
    require_dataset(&mut *cx.tx, dataset_id).await?;
    let policy = current_policy(&mut *cx.tx).await?;
    if let Some((_, v)) = find_version(&mut *cx.tx, dataset_id, digest).await? {
        let v = with_gate_status(&mut *cx.tx, v, &policy).await?;
        idem_record(cx, w, 200, &v, None).await?;
        return Ok((v, false));
    }
    let (seq, time) = cx.next_event();
    let vn = cx
        .tx
        .query_one(
            "INSERT INTO dataset_versions (dataset_id, digest, file_count, total_bytes, note,
             created_at, created_by, audit_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING n",
            params![
                dataset_id,
                digest,
                int("files", file_count)?,
                total,
                note,
                &time,
                &a.id,
                int("seq", seq)?
            ],
        )
        .await?
        .i64(0)?;
    match files {
        VersionFiles::Rows(manifest) => {
            let rows = manifest
                .files()
                .iter()
                .map(|f| {
                    Ok(vec![
                        Val::Int(vn),
                        f.path.as_str().into(),
                        f.sha256.as_str().into(),
                        int("files.size", f.size)?,
                    ])
                })
                .collect::<StoreResult<Vec<_>>>()?;
            cx.tx
                .execute_many(
                    "INSERT INTO manifest_files (version_n, path, sha256, size) VALUES ($1, $2, $3, $4)",
                    &rows,
                )
                .await?;
        }
        VersionFiles::Staged { upload_id, .. } => {
            let copied = cx
                .tx
                .execute(
                    "INSERT INTO manifest_files (version_n, path, sha256, size)
                     SELECT $1, path, sha256, size FROM manifest_upload_files WHERE upload_id = $2",
                    params![vn, upload_id],
                )
                .await?;
            if copied != file_count {
                return Err(StoreError::Internal(format!(
                    "manifest upload {upload_id}: copied {copied} of {file_count} files"
                )));
            }
        }
    }
    cx.append(
        seq,
        &time,
        a,
        "dataset_version.register",
        &version_subject(dataset_id, digest),
        json!({ "dataset_id": dataset_id, "digest": digest, "file_count": file_count,
                "total_bytes": total_bytes, "note": note }),
    )
    .await?;
    let v = DatasetVersion {
        dataset_id: dataset_id.into(),
        digest: digest.into(),
        file_count,
        total_bytes,
        note: note.map(Into::into),
        created_at: time,
        created_by: a.id.clone(),
        gate_status: "pending",
        audit_seq: seq,
    };
    let v = with_gate_status(&mut *cx.tx, v, &policy).await?;
    idem_record(cx, w, 201, &v, None).await?;
    Ok((v, true))
}

async fn record_gate(
    cx: &mut WriteCtx,
    w: &Writer,
    dataset_id: &str,
    digest: &str,
    gate: &str,
    status: GateOutcome,
    details: &BTreeMap<String, String>,
) -> StoreResult<GateResult> {
    key_free(cx, w).await?;
    let a = &w.actor;
    require_dataset(&mut *cx.tx, dataset_id).await?;
    require_version(&mut *cx.tx, dataset_id, digest).await?;
    let (seq, time) = cx.next_event();
    let id = new_id("gr_");
    cx.tx
        .execute(
            "INSERT INTO gate_results (id, dataset_id, digest, gate, status, details, recorded_at,
             recorded_by, audit_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            params![
                &id,
                dataset_id,
                digest,
                gate,
                status.as_str(),
                to_json(details),
                &time,
                &a.id,
                int("seq", seq)?
            ],
        )
        .await?;
    cx.append(seq, &time, a, "gate.record", &version_subject(dataset_id, digest),
        json!({ "gate_result_id": id, "gate": gate, "status": status.as_str(), "details": details }))
    .await?;
    let g = GateResult {
        id,
        dataset_id: dataset_id.into(),
        digest: digest.into(),
        gate: gate.into(),
        status,
        details: details.clone(),
        recorded_at: time,
        recorded_by: a.id.clone(),
        audit_seq: seq,
    };
    idem_record(cx, w, 201, &g, None).await?;
    Ok(g)
}

async fn update_policy(
    cx: &mut WriteCtx,
    w: &Writer,
    required_gates: &[String],
    ttl: u64,
    if_match: Option<u64>,
) -> StoreResult<Policy> {
    key_free(cx, w).await?;
    let a = &w.actor;
    let cur = current_policy(&mut *cx.tx).await?;
    if let Some(v) = if_match.filter(|v| *v != cur.version) {
        return Err(StoreError::Conflict(
            "precondition_failed",
            format!(
                "If-Match names policy version {v}, but the policy is at version {}: read it \
                 again and retry with its ETag",
                cur.version
            ),
        ));
    }
    let version = cur.version + 1;
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "INSERT INTO policies (version, required_gates, run_token_ttl_seconds, updated_at,
             updated_by, audit_seq, update_seq) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            params![
                int("version", version)?,
                to_json(&required_gates),
                int("run_token_ttl_seconds", ttl)?,
                &time,
                &a.id,
                int("seq", seq)?
            ],
        )
        .await?;
    cx.append(seq, &time, a, "policy.update", &format!("policy:{version}"),
        json!({ "version": version, "required_gates": required_gates, "run_token_ttl_seconds": ttl }))
    .await?;
    let p = Policy {
        version,
        required_gates: required_gates.to_vec(),
        run_token_ttl_seconds: ttl,
        updated_at: time,
        updated_by: a.id.clone(),
    };
    idem_record(cx, w, 200, &p, None).await?;
    Ok(p)
}

async fn create_run(cx: &mut WriteCtx, w: &Writer, r: &NewRun) -> StoreResult<(Run, String)> {
    key_free(cx, w).await?;
    let a = &w.actor;
    let policy = current_policy(&mut *cx.tx).await?;
    for (i, input) in r.inputs.iter().enumerate() {
        if find_version(&mut *cx.tx, &input.dataset_id, &input.digest)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!(
                "inputs[{i}]: version {} of dataset {} not found",
                input.digest, input.dataset_id
            )));
        }
        let latest = latest_gates(&mut *cx.tx, &input.dataset_id, &input.digest).await?;
        let (_, missing) = gate_status(&latest, &policy.required_gates);
        if !missing.is_empty() {
            return Err(StoreError::Unprocessable("gate_not_passed", format!(
                "inputs[{i}]: dataset version {}@{} has not passed the required gates: {} (policy version {})",
                input.dataset_id, input.digest, missing.join(", "), policy.version)));
        }
    }
    let (seq, time) = cx.next_event();
    let id = new_id("run_");
    let ttl = r
        .token_ttl_override
        .unwrap_or(policy.run_token_ttl_seconds)
        .min(i64::MAX as u64 / 1000) as i64;
    let expires = util::fmt_time(util::now() + chrono::Duration::seconds(ttl));
    cx.tx
        .execute(
            "INSERT INTO runs (id, name, status, inputs, git_commit, image_digest, params, outputs,
             created_at, created_by, audit_seq, token_hash, token_expires_at)
             VALUES ($1, $2, 'running', $3, $4, $5, $6, '[]', $7, $8, $9, $10, $11)",
            params![
                &id,
                &r.name,
                to_json(&r.inputs),
                &r.git_commit,
                &r.image_digest,
                to_json(&r.params),
                &time,
                &a.id,
                int("seq", seq)?,
                &r.token_hash,
                &expires
            ],
        )
        .await?;
    let rows: Vec<Vec<Val>> = r
        .inputs
        .iter()
        .map(|i| {
            vec![
                id.as_str().into(),
                i.dataset_id.as_str().into(),
                i.digest.as_str().into(),
            ]
        })
        .collect();
    cx.tx
        .execute_many(
            "INSERT INTO run_inputs (run_id, dataset_id, digest) VALUES ($1, $2, $3)",
            &rows,
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "run.create",
        &format!("run:{id}"),
        json!({
            "run_id": id, "name": r.name, "inputs": r.inputs, "git_commit": r.git_commit,
            "image_digest": r.image_digest, "params": r.params, "policy_version": policy.version,
            "run_token_expires_at": expires,
        }),
    )
    .await?;
    let run = Run {
        id,
        name: r.name.clone(),
        status: "running".into(),
        inputs: r.inputs.clone(),
        git_commit: r.git_commit.clone(),
        image_digest: r.image_digest.clone(),
        params: r.params.clone(),
        outputs: vec![],
        created_at: time,
        created_by: a.id.clone(),
        finished_at: None,
        audit_seq: seq,
    };
    // The run token exists only in the handler's response: keep the rest, and the run id.
    idem_record(
        cx,
        w,
        201,
        &json!({ "run": run, "run_token_expires_at": expires }),
        Some(&run.id),
    )
    .await?;
    Ok((run, expires))
}

async fn reissue_run_token(
    cx: &mut WriteCtx,
    w: &Writer,
    id: &str,
    token_hash: &str,
    ttl_override: Option<u64>,
) -> StoreResult<String> {
    key_free(cx, w).await?;
    let a = &w.actor;
    running_run(&mut *cx.tx, id).await?;
    let policy = current_policy(&mut *cx.tx).await?;
    let ttl = ttl_override
        .unwrap_or(policy.run_token_ttl_seconds)
        .min(i64::MAX as u64 / 1000) as i64;
    let expires = util::fmt_time(util::now() + chrono::Duration::seconds(ttl));
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "UPDATE runs SET token_hash = $1, token_expires_at = $2 WHERE id = $3",
            params![token_hash, &expires, id],
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "run.token_reissue",
        &format!("run:{id}"),
        json!({ "run_id": id, "run_token_expires_at": expires }),
    )
    .await?;
    // The token exists only in the handler's response: keep the rest, and the run id.
    idem_record(
        cx,
        w,
        201,
        &json!({ "run_id": id, "run_token_expires_at": expires }),
        Some(id),
    )
    .await?;
    Ok(expires)
}

async fn finish_run(
    cx: &mut WriteCtx,
    w: &Writer,
    id: &str,
    status: FinishStatus,
    outputs: &[VersionRef],
) -> StoreResult<Run> {
    key_free(cx, w).await?;
    let a = &w.actor;
    let mut run = running_run(&mut *cx.tx, id).await?.run;
    for (i, o) in outputs.iter().enumerate() {
        if find_version(&mut *cx.tx, &o.dataset_id, &o.digest)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!(
                "outputs[{i}]: version {} of dataset {} not found",
                o.digest, o.dataset_id
            )));
        }
    }
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "UPDATE runs SET status = $1, outputs = $2, finished_at = $3, finish_seq = $4 WHERE id = $5",
            params![status.as_str(), to_json(&outputs), &time, int("seq", seq)?, id],
        )
        .await?;
    let rows: Vec<Vec<Val>> = outputs
        .iter()
        .map(|o| {
            vec![
                id.into(),
                o.dataset_id.as_str().into(),
                o.digest.as_str().into(),
            ]
        })
        .collect();
    cx.tx
        .execute_many(
            "INSERT INTO run_outputs (run_id, dataset_id, digest) VALUES ($1, $2, $3)",
            &rows,
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "run.finish",
        &format!("run:{id}"),
        json!({ "run_id": id, "status": status.as_str(), "outputs": outputs }),
    )
    .await?;
    run.status = status.as_str().into();
    run.outputs = outputs.to_vec();
    run.finished_at = Some(time);
    idem_record(cx, w, 200, &run, None).await?;
    Ok(run)
}

async fn append_metrics(
    cx: &mut WriteCtx,
    w: &Writer,
    run_id: &str,
    points: &[MetricPoint],
    digest: &str,
) -> StoreResult<MetricBatch> {
    key_free(cx, w).await?;
    let a = &w.actor;
    running_run(&mut *cx.tx, run_id).await?;
    let batch = cx
        .tx
        .query_one(
            "SELECT COALESCE(MAX(batch) + 1, 0) FROM metric_batches WHERE run_id = $1",
            params![run_id],
        )
        .await?
        .i64(0)?;
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "INSERT INTO metric_batches (run_id, batch, count, digest, created_at, audit_seq)
             VALUES ($1, $2, $3, $4, $5, $6)",
            params![
                run_id,
                batch,
                int("count", points.len() as u64)?,
                digest,
                &time,
                int("seq", seq)?
            ],
        )
        .await?;
    // Points are stored as submitted (a point without a time keeps none; listMetrics adds the
    // batch's receive time as `received_at`), so the batch digest in the ledger can be
    // recomputed from what listMetrics returns.
    let rows = points
        .iter()
        .map(|p| {
            Ok(vec![
                run_id.into(),
                Val::Int(batch),
                p.name.as_str().into(),
                int("points.step", p.step)?,
                Val::Real(p.value),
                p.time.as_deref().into(),
            ])
        })
        .collect::<StoreResult<Vec<_>>>()?;
    cx.tx
        .execute_many(
            "INSERT INTO metric_points (run_id, batch, name, step, value, time) VALUES ($1, $2, $3, $4, $5, $6)",
            &rows,
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "metrics.append",
        &format!("run:{run_id}"),
        json!({ "run_id": run_id, "batch": batch, "count": points.len(), "digest": digest }),
    )
    .await?;
    let b = MetricBatch {
        run_id: run_id.into(),
        batch: batch as u64,
        count: points.len() as u64,
        digest: digest.into(),
        audit_seq: seq,
    };
    idem_record(cx, w, 201, &b, None).await?;
    Ok(b)
}

async fn add_artifact(
    cx: &mut WriteCtx,
    w: &Writer,
    run_id: &str,
    name: &str,
    sha256: &str,
    size: u64,
) -> StoreResult<Artifact> {
    key_free(cx, w).await?;
    let a = &w.actor;
    running_run(&mut *cx.tx, run_id).await?;
    artifact_name_free(&mut *cx.tx, run_id, name).await?;
    let (seq, time) = cx.next_event();
    let id = new_id("art_");
    cx.tx
        .execute(
            "INSERT INTO artifacts (id, run_id, name, sha256, size, created_at, created_by, audit_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            params![&id, run_id, name, sha256, int("size", size)?, &time, &a.id, int("seq", seq)?],
        )
        .await?;
    cx.append(seq, &time, a, "artifact.upload", &format!("run:{run_id}"),
        json!({ "run_id": run_id, "artifact_id": id, "name": name, "sha256": sha256, "size": size }))
    .await?;
    let art = Artifact {
        id,
        run_id: run_id.into(),
        name: name.into(),
        sha256: sha256.into(),
        size,
        created_at: time,
        created_by: a.id.clone(),
        audit_seq: seq,
    };
    idem_record(cx, w, 201, &art, None).await?;
    Ok(art)
}

async fn create_token(
    cx: &mut WriteCtx,
    w: &Writer,
    name: &str,
    role: Role,
    secret_hash: &str,
    expires_at: Option<&str>,
) -> StoreResult<ApiToken> {
    key_free(cx, w).await?;
    let a = &w.actor;
    let (seq, time) = cx.next_event();
    let id = new_id("tok_");
    cx.tx
        .execute(
            "INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, expires_at, audit_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            params![&id, name, role.as_str(), secret_hash, &time, &a.id, expires_at, int("seq", seq)?],
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "token.create",
        &format!("token:{id}"),
        json!({ "token_id": id, "name": name, "role": role.as_str(), "expires_at": expires_at }),
    )
    .await?;
    let token = ApiToken {
        id,
        name: name.into(),
        role,
        created_at: time,
        expires_at: expires_at.map(Into::into),
        revoked_at: None,
    };
    // The secret exists only in the handler's response: keep the rest, and the token id.
    idem_record(cx, w, 201, &json!({ "token": token }), Some(&token.id)).await?;
    Ok(token)
}

async fn revoke_token(cx: &mut WriteCtx, w: &Writer, id: &str) -> StoreResult<ApiToken> {
    key_free(cx, w).await?;
    let a = &w.actor;
    let (_, mut tok) = match cx
        .tx
        .query_opt(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1"),
            params![id],
        )
        .await?
    {
        Some(r) => row_token(&r)?,
        None => return Err(StoreError::NotFound(format!("token {id} not found"))),
    };
    if tok.revoked_at.is_some() {
        return Err(StoreError::Conflict(
            "immutable",
            format!("token {id} is already revoked"),
        ));
    }
    let (seq, time) = cx.next_event();
    cx.tx
        .execute(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2",
            params![&time, id],
        )
        .await?;
    cx.append(
        seq,
        &time,
        a,
        "token.revoke",
        &format!("token:{id}"),
        json!({ "token_id": id }),
    )
    .await?;
    tok.revoked_at = Some(time);
    idem_record(cx, w, 200, &tok, None).await?;
    Ok(tok)
}
