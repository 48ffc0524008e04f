//! `datapilot-server verify`: re-check everything the server has stored, from first principles.
//!
//! 1. **Ledger leaves.** Every audit event row, in order: sequence numbers dense from 0 to the
//!    ledger size, the leaf bytes rebuilt from the row's columns (the same [`LeafEvent`] and JCS
//!    the server appends with) equal to the stored leaf, and the stored leaf hash equal to
//!    `SHA-256(0x00 || leaf)`.
//! 2. **Rows against leaves.** Every row that an audited write created (tokens, datasets,
//!    versions, gate results, runs and their finish, metric batches, artifacts) points at an
//!    event of the right action whose data names the same values (ids, names, digests, sizes),
//!    and each action has exactly as many events as there are rows.
//! 3. **Merkle nodes.** The tree is rebuilt from the leaf hashes level by level and every
//!    stored node compared; a missing, extra or different node is reported.
//! 4. **Checkpoints.** Every checkpoint the server ever signed (`checkpoints`): its signature
//!    under the key the ledger records (and the key file in the data directory, if present), its
//!    size and root against the rebuilt tree, and a consistency proof from each signed head to
//!    the next; and the largest checkpoint published (`ledger.checkpoint` beside the key),
//!    which the ledger must reach with the same root.
//! 5. **Blobs.** Every blob an artifact refers to is read whole and hashed; absent, corrupt and
//!    wrong-sized blobs are reported.
//!
//! Progress goes to stderr, then a summary; the exit status is 0 only if nothing was found.
//! It reads through the same repository as the server (SQLite or PostgreSQL) and never writes.
//! Memory: the rebuilt tree, about 64 bytes per ledger entry.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use datapilot::merkle::{leaf_hash, node_hash, Hash};
use datapilot::model::audit::{Actor, LeafEvent};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canon::jcs;
use crate::cli::StorageArgs;
use crate::ledger::{subtree_hash, NodeSource};
use crate::store::repo::{int, params, Repo, Row, Val};
use crate::store::{StoreError, StoreResult};

/// Rows read per query.
const PAGE: i64 = 2000;
/// Problems listed in full; beyond that only counted.
const SHOW_PROBLEMS: usize = 50;

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub nodes: u64,
    pub rows: u64,
    pub checkpoints: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub problems: Vec<String>,
    problem_count: usize,
}

impl Report {
    fn problem(&mut self, p: String) {
        self.problem_count += 1;
        if self.problems.len() < SHOW_PROBLEMS {
            eprintln!("verify: PROBLEM: {p}");
            self.problems.push(p);
        }
    }
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
    pub fn summary(&self) -> String {
        format!(
            "{} ledger entries, {} Merkle nodes, {} rows against their events, {} signed checkpoints, {} blobs ({} bytes): {}",
            self.entries,
            self.nodes,
            self.rows,
            self.checkpoints,
            self.blobs,
            self.blob_bytes,
            if self.ok() {
                "all verified".to_string()
            } else {
                format!("{} PROBLEM(S)", self.problem_count)
            }
        )
    }
}

/// Progress on stderr: one updating line on a terminal, a line every few seconds otherwise.
struct Progress {
    tty: bool,
    last: Instant,
    every: Duration,
    /// The last line shown, so the final one is not repeated.
    shown: Option<(u64, u64)>,
}

impl Progress {
    fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Progress {
            tty,
            last: Instant::now(),
            every: if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
            shown: None,
        }
    }
    fn tick(&mut self, what: &str, done: u64, total: u64) {
        if (self.last.elapsed() < self.every && done != total) || self.shown == Some((done, total))
        {
            return;
        }
        self.last = Instant::now();
        self.shown = Some((done, total));
        let line = progress_line(what, done, total);
        if self.tty {
            eprint!("\r{line}   ");
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
}

/// Width of the progress bar, in characters.
const BAR_WIDTH: u64 = 30;

/// `verify: ledger entries [#########.....................] 300/1000 (30%)`.
fn progress_line(what: &str, done: u64, total: u64) -> String {
    let (filled, pct) = if total == 0 {
        (BAR_WIDTH, 100)
    } else {
        let done = done.min(total);
        (
            done * BAR_WIDTH / total,
            (done as u128 * 100 / total as u128) as u64,
        )
    };
    format!(
        "verify: {what} [{}{}] {done}/{total} ({pct}%)",
        "#".repeat(filled as usize),
        ".".repeat((BAR_WIDTH - filled) as usize)
    )
}

/// The rebuilt tree: `levels[l][i]` is the hash of leaves `[i·2^l, (i+1)·2^l)`.
struct Levels(Vec<Vec<Hash>>);

impl NodeSource for Levels {
    type Error = datapilot::merkle::MerkleError;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        Ok(self.0[level as usize][index as usize])
    }
}

/// `datapilot-server verify`: exit status 0 when everything verified, 1 when problems were
/// found, 2 when verification could not run.
pub async fn run(storage: &StorageArgs, skip_blobs: bool) -> i32 {
    match verify(storage, skip_blobs).await {
        Ok(report) => {
            println!("verify: {}", report.summary());
            if report.ok() {
                0
            } else {
                for p in &report.problems {
                    println!("  {p}");
                }
                1
            }
        }
        Err(e) => {
            eprintln!("datapilot-server: verify: {e}");
            2
        }
    }
}

pub async fn verify(storage: &StorageArgs, skip_blobs: bool) -> Result<Report, String> {
    crate::upgrade::require_current_schema(storage).await?;
    let store = storage.open_existing().await?;
    let repo = store.repo().clone();
    let mut report = Report::default();
    let recorded = store
        .ledger_verifier()
        .await
        .map_err(|e| format!("database: {e}"))?
        .ok_or("no ledger")?;
    let origin = recorded.split('+').next().unwrap_or("").to_string();
    let verifier: datapilot::checkpoint::Verifier = recorded
        .parse()
        .map_err(|e| format!("the recorded verifier key {recorded:?} does not parse: {e}"))?;
    let key_path = storage.data_dir.join("ledger.key");
    if key_path.exists() {
        match crate::keys::LedgerKey::load(&key_path, &origin) {
            Ok(k) if k.verifier() == recorded => {}
            Ok(k) => report.problem(format!(
                "{} holds the key {}, but the ledger records {recorded}",
                key_path.display(),
                k.verifier()
            )),
            Err(e) => report.problem(format!("{}: {e}", key_path.display())),
        }
    } else {
        eprintln!(
            "verify: note: {} is absent; checkpoints are checked against the recorded key",
            key_path.display()
        );
    }
    let e = |e: StoreError| format!("database: {e}");
    let levels = check_leaves(repo.as_ref(), &mut report, &recorded)
        .await
        .map_err(e)?;
    check_rows(repo.as_ref(), &mut report).await.map_err(e)?;
    check_nodes(repo.as_ref(), &levels, &mut report)
        .await
        .map_err(e)?;
    let mut levels = levels;
    check_checkpoints(repo.as_ref(), &mut levels, &verifier, &origin, &mut report)
        .await
        .map_err(e)?;
    check_published(
        &storage.data_dir.join(crate::checkpoint::PUBLISHED_FILE),
        &mut levels,
        &verifier,
        &mut report,
    );
    if skip_blobs {
        eprintln!("verify: blobs skipped (--skip-blobs)");
    } else {
        let blobs = crate::blob::open_blob_store(storage.blobs.as_deref(), &storage.data_dir)
            .map_err(|e| format!("blob store: {e}"))?;
        check_blobs(repo.as_ref(), blobs.as_ref(), &mut report)
            .await
            .map_err(e)?;
    }
    Ok(report)
}

/// Step 1: every event row against its leaf; returns the rebuilt tree.
async fn check_leaves(
    repo: &dyn Repo,
    report: &mut Report,
    recorded_verifier: &str,
) -> StoreResult<Levels> {
    let mut tx = repo.read().await?;
    let size = crate::store::ledger_io::size(&mut *tx).await?;
    tx.commit().await?;
    let mut leaves: Vec<Hash> = Vec::with_capacity(size as usize);
    let mut progress = Progress::new();
    let mut next: u64 = 0;
    loop {
        let mut tx = repo.read().await?;
        let rows = tx
            .query(
                "SELECT seq, time, actor_kind, actor_id, actor_role, action, subject, data, leaf,
                 leaf_hash FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
                params![int("seq", next)?, PAGE],
            )
            .await?;
        tx.commit().await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let seq = r.u64(0)?;
            if seq != next {
                report.problem(format!(
                    "ledger: entries {next}..{seq} are missing (sequence numbers must be dense)"
                ));
                // Keep positions aligned with sequence numbers so later checks still name
                // the right entries.
                while (leaves.len() as u64) < seq {
                    leaves.push([0; 32]);
                }
            }
            next = seq + 1;
            let stored_leaf = r.blob(8)?;
            let stored_hash = r.blob(9)?;
            let data: Value = match serde_json::from_str(&r.text(7)?) {
                Ok(v) => v,
                Err(e) => {
                    report.problem(format!("ledger entry {seq}: data is not JSON: {e}"));
                    Value::Null
                }
            };
            let leaf = LeafEvent {
                v: 1,
                seq,
                time: r.text(1)?,
                actor: Actor {
                    kind: r.text(2)?.parse().unwrap_or_else(|e| match e {}),
                    id: r.text(3)?,
                    role: r.text(4)?.parse().unwrap_or_else(|e| match e {}),
                },
                action: r.text(5)?,
                subject: r.text(6)?,
                data,
            };
            if seq == 0 {
                let v = leaf.data.get("verifier").and_then(Value::as_str);
                if leaf.action != "ledger.init" || v != Some(recorded_verifier) {
                    report.problem(format!(
                        "ledger entry 0: expected ledger.init naming the recorded key {recorded_verifier}, found {} naming {v:?}",
                        leaf.action
                    ));
                }
            }
            if jcs(&leaf) != stored_leaf {
                report.problem(format!(
                    "ledger entry {seq} ({} {}): the row's columns do not match its stored leaf bytes (the row or the leaf was modified)",
                    leaf.action, leaf.subject
                ));
            }
            let h = leaf_hash(&stored_leaf);
            if stored_hash != h {
                report.problem(format!(
                    "ledger entry {seq}: stored leaf hash does not match its leaf bytes"
                ));
            }
            leaves.push(h);
        }
        progress.tick("ledger entries", next.min(size), size);
    }
    if next != size {
        report.problem(format!(
            "ledger: the ledger size is {size} but the entries end at {next}"
        ));
    }
    report.entries = next;
    // Build the complete-subtree levels.
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|l| l.len() >= 2) {
        let below = levels.last().expect("non-empty");
        let up: Vec<Hash> = below
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
        levels.push(up);
    }
    Ok(Levels(levels))
}

/// One audited table: its rows (audit seq, display id, then the values to compare) joined
/// to the event they point at, and which event data members those values must equal.
struct RowCheck {
    what: &'static str,
    action: &'static str,
    /// SELECT …, e.action, e.data with the key columns first: `key, audit_seq, id parts…`.
    sql: &'static str,
    /// Event data members compared with the row's columns from index 4 on.
    fields: &'static [&'static str],
}

const ROW_CHECKS: &[RowCheck] = &[
    RowCheck {
        what: "token",
        action: "token.create",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.id, t.name, t.role FROM tokens t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["token_id", "name", "role"],
    },
    RowCheck {
        what: "dataset",
        action: "dataset.create",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.id, t.name FROM datasets t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["dataset_id", "name"],
    },
    RowCheck {
        what: "dataset version",
        action: "dataset_version.register",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.dataset_id, t.digest, t.file_count,
              t.total_bytes FROM dataset_versions t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["dataset_id", "digest", "file_count", "total_bytes"],
    },
    RowCheck {
        what: "gate result",
        action: "gate.record",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.id, t.gate, t.status FROM gate_results t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["gate_result_id", "gate", "status"],
    },
    RowCheck {
        what: "run",
        action: "run.create",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.id, t.name, t.git_commit, t.image_digest
              FROM runs t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["run_id", "name", "git_commit", "image_digest"],
    },
    RowCheck {
        what: "run finish",
        action: "run.finish",
        sql: "SELECT t.n, t.finish_seq, e.action, e.data, t.id, t.status FROM runs t
              LEFT JOIN audit_events e ON e.seq = t.finish_seq
              WHERE t.n > $1 AND t.finish_seq IS NOT NULL ORDER BY t.n LIMIT $2",
        fields: &["run_id", "status"],
    },
    RowCheck {
        what: "metric batch",
        action: "metrics.append",
        sql:
            "SELECT t.audit_seq, t.audit_seq, e.action, e.data, t.run_id, t.batch, t.count, t.digest
              FROM metric_batches t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq
              WHERE t.audit_seq > $1 ORDER BY t.audit_seq LIMIT $2",
        fields: &["run_id", "batch", "count", "digest"],
    },
    RowCheck {
        what: "artifact",
        action: "artifact.upload",
        sql: "SELECT t.n, t.audit_seq, e.action, e.data, t.id, t.run_id, t.name, t.sha256, t.size
              FROM artifacts t
              LEFT JOIN audit_events e ON e.seq = t.audit_seq WHERE t.n > $1 ORDER BY t.n LIMIT $2",
        fields: &["artifact_id", "run_id", "name", "sha256", "size"],
    },
];

fn val_matches(json: Option<&Value>, col: &Val) -> bool {
    match (json, col) {
        (None | Some(Value::Null), Val::Null) => true,
        (Some(Value::String(s)), Val::Text(t)) => s == t,
        (Some(Value::Number(n)), Val::Int(i)) => n.as_i64() == Some(*i),
        (Some(Value::Number(n)), Val::Real(f)) => n.as_f64() == Some(*f),
        _ => false,
    }
}

fn show(v: &Val) -> String {
    match v {
        Val::Null => "null".into(),
        Val::Int(i) => i.to_string(),
        Val::Real(f) => f.to_string(),
        Val::Text(t) => format!("{t:?}"),
        Val::Blob(b) => format!("{} bytes", b.len()),
    }
}

/// Step 2: rows against the events they point at, and counts per action.
async fn check_rows(repo: &dyn Repo, report: &mut Report) -> StoreResult<()> {
    let mut per_action: HashMap<&'static str, u64> = HashMap::new();
    for c in ROW_CHECKS {
        let mut after: i64 = -1;
        loop {
            let mut tx = repo.read().await?;
            let rows: Vec<Row> = tx.query(c.sql, params![after, PAGE]).await?;
            tx.commit().await?;
            let Some(last) = rows.last() else { break };
            after = last.i64(0)?;
            for r in &rows {
                report.rows += 1;
                *per_action.entry(c.action).or_default() += 1;
                let seq = r.i64(1)?;
                let id = match &r.0[4] {
                    Val::Text(t) => t.clone(),
                    other => show(other),
                };
                let action = r.opt_text(2)?;
                if action.as_deref() != Some(c.action) {
                    report.problem(format!(
                        "{} {id}: its ledger entry {seq} is {}, not {}",
                        c.what,
                        action.as_deref().unwrap_or("missing"),
                        c.action
                    ));
                    continue;
                }
                let data: Value = serde_json::from_str(&r.text(3)?).unwrap_or(Value::Null);
                for (i, field) in c.fields.iter().enumerate() {
                    let col = &r.0[4 + i];
                    if !val_matches(data.get(*field), col) {
                        report.problem(format!(
                            "{} {id}: column {field} is {} but its ledger entry {seq} says {}",
                            c.what,
                            show(col),
                            data.get(*field).map_or("nothing".into(), |v| v.to_string())
                        ));
                    }
                }
            }
        }
    }
    // Each action's events all have their row: no row deleted behind the ledger's back.
    let mut tx = repo.read().await?;
    let counts = tx
        .query(
            "SELECT action, COUNT(*) FROM audit_events GROUP BY action",
            &[],
        )
        .await?;
    tx.commit().await?;
    let counts: BTreeMap<String, u64> = counts
        .iter()
        .map(|r| Ok((r.text(0)?, r.u64(1)?)))
        .collect::<StoreResult<_>>()?;
    for c in ROW_CHECKS {
        let events = counts.get(c.action).copied().unwrap_or(0);
        let rows = per_action.get(c.action).copied().unwrap_or(0);
        if events != rows {
            report.problem(format!(
                "{events} {} events in the ledger but {rows} {} rows",
                c.action, c.what
            ));
        }
    }
    Ok(())
}

/// Step 3: every stored Merkle node against the rebuilt tree.
async fn check_nodes(repo: &dyn Repo, levels: &Levels, report: &mut Report) -> StoreResult<()> {
    let total: u64 = levels.0.iter().map(|l| l.len() as u64).sum();
    let mut progress = Progress::new();
    let mut done = 0u64;
    let max_level = levels.0.len() as i64;
    for (level, want) in levels.0.iter().enumerate() {
        let mut expect: u64 = 0;
        loop {
            let mut tx = repo.read().await?;
            let rows = tx
                .query(
                    "SELECT idx, hash FROM merkle_nodes WHERE level = $1 AND idx >= $2
                     ORDER BY idx LIMIT $3",
                    params![level as i64, int("idx", expect)?, PAGE],
                )
                .await?;
            tx.commit().await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let idx = r.u64(0)?;
                if idx != expect {
                    report.problem(format!("Merkle nodes {level}/{expect}..{idx} are missing"));
                }
                expect = idx + 1;
                match want.get(idx as usize) {
                    None => report.problem(format!(
                        "Merkle node {level}/{idx} is stored but no such subtree exists"
                    )),
                    Some(h) if r.blob(1)? != h.as_slice() => report.problem(format!(
                        "Merkle node {level}/{idx} does not match the hash of its leaves"
                    )),
                    Some(_) => {}
                }
                report.nodes += 1;
                done += 1;
            }
            progress.tick("Merkle nodes", done.min(total), total);
        }
        if expect < want.len() as u64 {
            report.problem(format!(
                "Merkle nodes {level}/{expect}..{} are missing",
                want.len()
            ));
        }
    }
    progress.tick("Merkle nodes", total, total);
    let mut tx = repo.read().await?;
    let extra = tx
        .query_one(
            "SELECT COUNT(*) FROM merkle_nodes WHERE level >= $1",
            params![max_level],
        )
        .await?
        .u64(0)?;
    tx.commit().await?;
    if extra > 0 {
        report.problem(format!(
            "{extra} Merkle node(s) stored above the tree's top level"
        ));
    }
    Ok(())
}

/// Step 4: every signed checkpoint.
async fn check_checkpoints(
    repo: &dyn Repo,
    levels: &mut Levels,
    verifier: &datapilot::checkpoint::Verifier,
    origin: &str,
    report: &mut Report,
) -> StoreResult<()> {
    let mut tx = repo.read().await?;
    let rows = tx
        .query(
            "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size",
            &[],
        )
        .await?;
    tx.commit().await?;
    let size = report.entries;
    let mut prev: Option<(u64, Hash)> = None;
    for r in &rows {
        report.checkpoints += 1;
        let cp_size = r.u64(0)?;
        let root: Hash = r.blob(1)?.try_into().unwrap_or([0; 32]);
        let note = r.text(2)?;
        match datapilot::checkpoint::open_checkpoint(&note, std::slice::from_ref(verifier)) {
            Err(e) => report.problem(format!(
                "checkpoint at size {cp_size}: its signature does not verify under the ledger's key: {e}"
            )),
            Ok((cp, _)) => {
                if cp.origin != origin || cp.tree_size != cp_size || cp.root_hash != root {
                    report.problem(format!(
                        "checkpoint at size {cp_size}: the signed note says origin {:?}, size {}, which is not the stored row",
                        cp.origin, cp.tree_size
                    ));
                }
            }
        }
        if cp_size == 0 || cp_size > size {
            report.problem(format!(
                "checkpoint at size {cp_size}: the ledger has {size} entries (a checkpoint beyond the ledger: was an older backup restored?)"
            ));
            continue;
        }
        let computed = subtree_hash(levels, 0, cp_size).expect("in range");
        if computed != root {
            report.problem(format!(
                "checkpoint at size {cp_size}: signed root {} but the ledger's entries hash to {}",
                hex::encode(root),
                hex::encode(computed)
            ));
            continue;
        }
        if let Some((ps, proot)) = prev {
            let proof = datapilot::merkle::try_consistency_proof_with(ps, cp_size, |s, e| {
                subtree_hash(levels, s, e)
            });
            let ok = proof.is_ok_and(|p| {
                datapilot::merkle::verify_consistency(ps, cp_size, &p, &proot, &root).is_ok()
            });
            if !ok {
                report.problem(format!(
                    "checkpoints at sizes {ps} and {cp_size} are not consistent"
                ));
            }
        }
        prev = Some((cp_size, root));
    }
    Ok(())
}

/// Step 4b: the largest checkpoint this data directory's key has published
/// (`ledger.checkpoint`, kept beside the key): the ledger must reach it with the same root, or
/// the server would refuse to start (a database restored from a backup older than what was
/// already published).
fn check_published(
    path: &std::path::Path,
    levels: &mut Levels,
    verifier: &datapilot::checkpoint::Verifier,
    report: &mut Report,
) {
    let note = match std::fs::read_to_string(path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return report.problem(format!("{}: {e}", path.display())),
    };
    let cp = match datapilot::checkpoint::open_checkpoint(&note, std::slice::from_ref(verifier)) {
        Ok((cp, _)) => cp,
        Err(e) => {
            return report.problem(format!(
                "{}: not a checkpoint signed by the ledger's key: {e}",
                path.display()
            ))
        }
    };
    if cp.tree_size > report.entries {
        report.problem(format!(
            "{} records a published checkpoint of size {}, but the ledger has only {} entries \
             (restored from a backup older than what was published; see docs/server.md, \"Backup and restore\")",
            path.display(),
            cp.tree_size,
            report.entries
        ));
    } else if cp.tree_size > 0
        && subtree_hash(levels, 0, cp.tree_size).expect("in range") != cp.root_hash
    {
        report.problem(format!(
            "{}: the published checkpoint of size {} has another root than the ledger",
            path.display(),
            cp.tree_size
        ));
    }
}

/// Step 5: every blob an artifact refers to.
async fn check_blobs(
    repo: &dyn Repo,
    blobs: &dyn crate::blob::BlobStore,
    report: &mut Report,
) -> StoreResult<()> {
    let mut tx = repo.read().await?;
    let rows = tx
        .query(
            "SELECT sha256, MAX(size) FROM artifacts GROUP BY sha256 ORDER BY sha256",
            &[],
        )
        .await?;
    tx.commit().await?;
    let total = rows.len() as u64;
    let mut progress = Progress::new();
    for (i, r) in rows.iter().enumerate() {
        let sha = r.text(0)?;
        let size = r.u64(1)?;
        report.blobs += 1;
        match hash_blob(blobs, &sha).await {
            Ok(None) => report.problem(format!("blob {sha}: missing from the blob store")),
            Ok(Some((actual, n))) => {
                if actual != sha {
                    report.problem(format!("blob {sha}: corrupt, its bytes hash to {actual}"));
                } else if n != size {
                    report.problem(format!(
                        "blob {sha}: {n} bytes, but the artifact rows say {size}"
                    ));
                }
                report.blob_bytes += n;
            }
            Err(e) => report.problem(format!("blob {sha}: cannot be read: {e}")),
        }
        progress.tick("blobs", i as u64 + 1, total);
    }
    Ok(())
}

/// The SHA-256 and length of a stored blob's bytes, or `None` if it is absent.
async fn hash_blob(
    blobs: &dyn crate::blob::BlobStore,
    sha: &str,
) -> Result<Option<(String, u64)>, String> {
    use crate::blob::BlobError;
    let (_, mut stream) = match blobs.get(sha).await {
        Ok(Some(x)) => x,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                n += b.len() as u64;
                h.update(&b);
            }
            // The store's own check found the mismatch at the end: report what was read.
            Err(e) => match BlobError::from_stream_error(e) {
                BlobError::Corrupt { actual, .. } => return Ok(Some((actual, n))),
                other => return Err(other.to_string()),
            },
        }
    }
    Ok(Some((hex::encode(h.finalize()), n)))
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn the_progress_bar_fills_with_the_work_done() {
        assert_eq!(
            progress_line("blobs", 0, 10),
            "verify: blobs [..............................] 0/10 (0%)"
        );
        assert_eq!(
            progress_line("blobs", 5, 10),
            "verify: blobs [###############...............] 5/10 (50%)"
        );
        assert_eq!(
            progress_line("blobs", 10, 10),
            "verify: blobs [##############################] 10/10 (100%)"
        );
        // Nothing to do is done; more than the total (a ledger that grew meanwhile) is capped.
        assert!(
            progress_line("blobs", 0, 0).ends_with("[##############################] 0/0 (100%)")
        );
        assert!(progress_line("x", 12, 10).contains("[##############################]"));
    }
}
