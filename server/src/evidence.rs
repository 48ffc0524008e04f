//! Evidence bundles: one deterministic, signed `.zip` per run or dataset version.
//!
//! Everything in a bundle is a function of (scope, tree size) over immutable ledger state:
//! the lineage and audit slice are cut at `seq < tree_size`, the policy is the one in force at
//! that size, the export time is the time of the last event in the tree (not the wall clock),
//! Ed25519 signatures are deterministic, and the zip is written with fixed timestamps, modes and
//! member order. So exporting twice gives byte-identical files, and anyone can re-export to
//! check a bundle they were handed.
//!
//! Members, in order (shared names from `datapilot::model::evidence::members`):
//! `evidence.dsse.json` (DSSE envelope over the in-toto statement that lists every other member
//! with its SHA-256, and the lineage's artifacts and dataset versions with their digests), `ledger/checkpoint.txt`, `ledger/proofs.jsonl`, `audit.jsonl`,
//! `lineage.json`, `policy.json`, `report.html`.

use std::io::{Cursor, Write};

use datapilot::model::evidence::{
    members, Predicate, ProofLine, Scope, ScopeKind, Statement, Subject, ARTIFACT_SUBJECT_PREFIX,
    PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE,
};
use datapilot::model::lineage::NodeKind;

use crate::canon::jcs;
use crate::keys::LedgerKey;
use crate::store::{Store, StoreError, StoreResult};
use crate::util::{b64, sha256_hex};

/// What to export.
#[derive(Debug, Clone)]
pub enum BundleScope {
    Run(String),
    Version { dataset_id: String, digest: String },
}

/// A built bundle.
#[derive(Debug)]
pub struct Bundle {
    pub bytes: Vec<u8>,
    pub tree_size: u64,
    pub file_name: String,
}

/// Build the bundle of `scope` at `tree_size` (the current size when `None`).
pub async fn build(
    store: &Store,
    key: &LedgerKey,
    scope: &BundleScope,
    tree_size: Option<u64>,
) -> StoreResult<Bundle> {
    let current = store.tree_size().await?;
    let size = tree_size.unwrap_or(current);
    if size == 0 || size > current {
        return Err(StoreError::Invalid(
            "tree_size".into(),
            format!("must be between 1 and the current tree size {current}"),
        ));
    }
    let (lineage, scope_w, file_stem) = match scope {
        BundleScope::Run(id) => (
            store.run_lineage(id, Some(size)).await?,
            Scope {
                kind: ScopeKind::Run,
                id: id.clone(),
            },
            id.clone(),
        ),
        BundleScope::Version { dataset_id, digest } => (
            store
                .version_lineage(dataset_id, digest, Some(size))
                .await?,
            Scope {
                kind: ScopeKind::DatasetVersion,
                id: format!("{dataset_id}@{digest}"),
            },
            format!(
                "{dataset_id}-{}",
                digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            ),
        ),
    };
    // The audit slice: every event about a run or version node of the lineage, plus the policy
    // update in force. Their subjects are exactly the node ids.
    let subjects: Vec<String> = lineage
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Run | NodeKind::DatasetVersion))
        .map(|n| n.id.clone())
        .collect();
    let (policy, policy_seq) = store.policy_at(size).await?;
    let events = store
        .audit_slice(&subjects, &policy_seq.into_iter().collect::<Vec<_>>(), size)
        .await?;
    let (head, checkpoint) = crate::checkpoint::signed(store, key, Some(size)).await?;

    let mut audit = Vec::new();
    let mut proofs = Vec::new();
    for (seq, leaf) in &events {
        audit.extend_from_slice(leaf);
        audit.push(b'\n');
        let (leaf_hash, hashes) = store.inclusion_proof(*seq, size).await?;
        let line = ProofLine {
            hashes: hashes.iter().map(|h| b64(h)).collect(),
            leaf_hash: b64(&leaf_hash),
            seq: *seq,
            tree_size: size,
        };
        proofs.extend_from_slice(&jcs(&line));
        proofs.push(b'\n');
    }
    let lineage_json = jcs(&lineage);
    let policy_json = jcs(&policy);
    let predicate = Predicate {
        scope: scope_w,
        exported_at: head.last_time.clone(),
        exporter: format!("datapilot-server/{}", env!("CARGO_PKG_VERSION")),
        origin: key.name().to_string(),
        tree_size: size,
        root_hash: b64(&head.root),
    };
    // The report's metric curves: the lineage's runs (the first few by id), cut at the tree
    // size like everything else in the bundle.
    let mut runs: Vec<String> = lineage
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Run)
        .filter_map(|n| n.id.strip_prefix("run:").map(str::to_owned))
        .collect();
    runs.sort();
    runs.truncate(crate::report::METRIC_RUNS);
    let metrics = store
        .metric_curves_at(runs, size, crate::report::METRIC_POINTS)
        .await?;
    let report = crate::report::render(&crate::report::ReportInput {
        predicate: &predicate,
        verifier: &key.verifier(),
        lineage: &lineage,
        events: &events,
        policy: &policy,
        metrics: &metrics,
    });

    let mut contents: Vec<(&str, Vec<u8>)> = vec![
        (members::CHECKPOINT, checkpoint.into_bytes()),
        (members::PROOFS, proofs),
        (members::AUDIT, audit),
        (members::LINEAGE, lineage_json),
        (members::POLICY, policy_json),
        (members::REPORT, report.into_bytes()),
    ];
    let mut subject: Vec<Subject> = contents
        .iter()
        .map(|(name, bytes)| Subject::sha256(*name, sha256_hex(bytes)))
        .collect();
    subject.extend(linked_subjects(&lineage, &events)?);
    subject.sort_by(|a, b| a.name.cmp(&b.name));
    let statement = Statement {
        type_: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate,
    };
    let envelope = datapilot::dsse::sign_envelope(PAYLOAD_TYPE, &jcs(&statement), key.signer());
    contents.insert(0, (members::ENVELOPE, jcs(&envelope)));
    debug_assert!(contents.iter().map(|(n, _)| *n).eq(members::ALL));

    let bytes = write_zip(&contents).map_err(|e| StoreError::Internal(format!("zip: {e}")))?;
    Ok(Bundle {
        bytes,
        tree_size: size,
        file_name: format!("evidence-{file_stem}-{size}.zip"),
    })
}

/// The statement subjects that link the bundle to what it is about, so that tools matching
/// attestations by digest (cosign, in-toto, Kyverno) find it: every artifact node with the
/// `sha256` its `artifact.upload` event records, every dataset version node with its DPM-1
/// digest as in-toto `dirHash` (Go's dirhash `Hash1` in hex, which DPM-1 is).
fn linked_subjects(
    lineage: &datapilot::model::lineage::Lineage,
    events: &[(u64, Vec<u8>)],
) -> StoreResult<Vec<Subject>> {
    let mut uploads = std::collections::HashMap::new();
    for (_, leaf) in events {
        let event: serde_json::Value = serde_json::from_slice(leaf)
            .map_err(|e| StoreError::Internal(format!("audit leaf: {e}")))?;
        if event["action"] == datapilot::model::audit::actions::ARTIFACT_UPLOAD {
            if let (Some(id), Some(sha)) = (
                event["data"]["artifact_id"].as_str(),
                event["data"]["sha256"].as_str(),
            ) {
                uploads.insert(id.to_string(), sha.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for node in &lineage.nodes {
        match node.kind {
            NodeKind::Artifact => {
                let id = node.id.trim_start_matches(ARTIFACT_SUBJECT_PREFIX);
                let sha = uploads.get(id).ok_or_else(|| {
                    StoreError::Internal(format!("no artifact.upload event for {}", node.id))
                })?;
                out.push(Subject::sha256(&node.id, sha));
            }
            NodeKind::DatasetVersion => {
                let hex = node
                    .id
                    .rsplit_once("@sha256:")
                    .map(|(_, h)| h)
                    .ok_or_else(|| {
                        StoreError::Internal(format!(
                            "dataset version node {} has no digest",
                            node.id
                        ))
                    })?;
                out.push(Subject::dir_hash(&node.id, hex));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Deterministic zip: deflate, 1980-01-01 00:00:00, mode 0644, no extra fields, no comment.
fn write_zip(members: &[(&str, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        .large_file(false);
    for (name, bytes) in members {
        w.start_file(*name, opts)?;
        w.write_all(bytes)?;
    }
    Ok(w.finish()?.into_inner())
}
