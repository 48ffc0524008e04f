//! The bundle checks, in the order documented in the module root.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::archive::Archive;
use super::checks::*;
use super::consistency::{check_extends, ConsistencyError};
use super::{BundleSummary, Check, VerificationReport, VerifyOptions, WitnessedInput};
use crate::checkpoint::{open_checkpoint, Checkpoint, Verifier};
use crate::dsse::{verify_envelope_of_type, Envelope};
use crate::jcs::is_canonical;
use crate::merkle::{self, Hash};
use crate::model::audit::{actions, LeafEvent};
use crate::model::evidence::{
    members, ProofLine, Statement, Subject, ARTIFACT_SUBJECT_PREFIX,
    DATASET_VERSION_SUBJECT_PREFIX, DIR_HASH, PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE,
};
use crate::model::lineage::{EdgeKind, Lineage, LineageEdge};
use crate::model::policy::Policy;
use crate::witness::verify_witnessed;

type Outcome<T> = Result<(T, String), String>;

#[derive(Default)]
struct Reporter {
    checks: Vec<Check>,
}

impl Reporter {
    fn record<T>(&mut self, name: &str, outcome: Outcome<T>) -> Option<T> {
        match outcome {
            Ok((value, summary)) => {
                self.push(name, true, summary);
                Some(value)
            }
            Err(reason) => {
                self.push(name, false, reason);
                None
            }
        }
    }

    fn skip(&mut self, name: &str, because: &str) {
        self.push(name, false, format!("not checked: {because} failed"));
    }

    fn push(&mut self, name: &str, passed: bool, reason: String) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            reason,
        });
    }
}

/// Verifies an evidence bundle with the pinned `verifiers` and default options.
pub fn verify_bundle(bundle: &[u8], verifiers: &[Verifier]) -> VerificationReport {
    verify_bundle_with(bundle, verifiers, &VerifyOptions::default())
}

/// Verifies an evidence bundle with the pinned `verifiers` (see the module docs).
pub fn verify_bundle_with(
    bundle: &[u8],
    verifiers: &[Verifier],
    options: &VerifyOptions,
) -> VerificationReport {
    let mut r = Reporter::default();
    let mut summary = BundleSummary::default();
    let names: Vec<&str> = ALWAYS
        .iter()
        .copied()
        .chain(options.consistency.as_ref().map(|_| CONSISTENCY))
        .chain(options.witnessed.as_ref().map(|_| WITNESSED))
        .collect();

    let archive = match Archive::read(bundle, &options.limits) {
        Ok(a) => {
            r.push(
                ARCHIVE_SAFE,
                true,
                format!("{} members within limits", a.members.len()),
            );
            a
        }
        Err(reason) => {
            r.push(ARCHIVE_SAFE, false, reason);
            for name in &names[1..] {
                r.skip(name, ARCHIVE_SAFE);
            }
            return finish(r, summary);
        }
    };

    r.record(ARCHIVE_MEMBERS, check_members(&archive));

    let payload = r.record(
        DSSE_SIGNATURE,
        check_dsse(&archive, verifiers, &options.retired),
    );

    let statement = match payload {
        Some(p) => r.record(STATEMENT_FORMAT, check_statement(&p)),
        None => {
            r.skip(STATEMENT_FORMAT, DSSE_SIGNATURE);
            None
        }
    };
    if let Some(s) = &statement {
        let p = &s.predicate;
        summary.scope = Some(p.scope.node_id());
        summary.exported_at = Some(p.exported_at.clone());
        summary.exporter = Some(p.exporter.clone());
    }

    match &statement {
        Some(s) => {
            r.record(STATEMENT_SUBJECTS, check_subjects(s, &archive));
        }
        None => r.skip(STATEMENT_SUBJECTS, STATEMENT_FORMAT),
    }

    let checkpoint = r.record(
        CHECKPOINT_SIGNATURE,
        check_checkpoint(&archive, verifiers, &options.retired),
    );
    if let Some(cp) = &checkpoint {
        summary.origin = Some(cp.origin.clone());
        summary.tree_size = Some(cp.tree_size);
        summary.root_hash = Some(B64.encode(cp.root_hash));
        summary.checkpoint = archive
            .get(members::CHECKPOINT)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned);
    }

    match (&statement, &checkpoint) {
        (Some(s), Some(cp)) => {
            r.record(CHECKPOINT_MATCHES_PREDICATE, check_matches(s, cp));
        }
        (None, _) => r.skip(CHECKPOINT_MATCHES_PREDICATE, STATEMENT_FORMAT),
        (_, None) => r.skip(CHECKPOINT_MATCHES_PREDICATE, CHECKPOINT_SIGNATURE),
    }

    let events = match &checkpoint {
        Some(cp) => r.record(INCLUSION_PROOFS, check_inclusion(&archive, cp)),
        None => {
            r.skip(INCLUSION_PROOFS, CHECKPOINT_SIGNATURE);
            None
        }
    };
    if let Some(ev) = &events {
        summary.events = Some(ev.len());
    }

    match (&events, &statement) {
        (Some(ev), Some(s)) => {
            r.record(LINEAGE_EDGES, check_lineage(&archive, ev, s));
        }
        (None, _) => r.skip(LINEAGE_EDGES, INCLUSION_PROOFS),
        (_, None) => r.skip(LINEAGE_EDGES, STATEMENT_FORMAT),
    }

    match &events {
        Some(ev) => {
            r.record(POLICY_SNAPSHOT, check_policy(&archive, ev));
        }
        None => r.skip(POLICY_SNAPSHOT, INCLUSION_PROOFS),
    }

    if let Some(input) = &options.consistency {
        match &checkpoint {
            Some(cp) => {
                let outcome = open_checkpoint(&input.trusted_checkpoint, verifiers)
                    .map_err(|e| format!("trusted checkpoint: {e}"))
                    .and_then(|(trusted, _)| {
                        check_extends(&trusted, cp, &input.proof)
                            .map(|()| {
                                (
                                    (),
                                    format!(
                                        "tree grew append-only from {} to {}",
                                        trusted.tree_size, cp.tree_size
                                    ),
                                )
                            })
                            .map_err(|e| e.to_string())
                    });
                r.record(CONSISTENCY, outcome);
            }
            None => r.skip(CONSISTENCY, CHECKPOINT_SIGNATURE),
        }
    }

    if let Some(input) = &options.witnessed {
        match &checkpoint {
            Some(cp) => {
                r.record(
                    WITNESSED,
                    check_witnessed(cp, input, verifiers, &options.retired),
                );
            }
            None => r.skip(WITNESSED, CHECKPOINT_SIGNATURE),
        }
    }

    finish(r, summary)
}

/// The `witnessed` step: `input.checkpoint` is signed by a pinned key valid at its size and
/// cosigned by `input.quorum` of `input.witnesses`, and the bundle's checkpoint `cp` is a prefix
/// of it (same log; equal size with equal root, or a valid consistency proof to a larger size).
fn check_witnessed(
    cp: &Checkpoint,
    input: &WitnessedInput,
    verifiers: &[Verifier],
    retired: &[(Verifier, u64)],
) -> Outcome<()> {
    let w = verify_witnessed(&input.checkpoint, verifiers, &input.witnesses, input.quorum)
        .map_err(|e| format!("witnessed checkpoint: {e}"))?;
    let seen = &w.checkpoint;
    if !retired.is_empty()
        && open_checkpoint(
            &input.checkpoint,
            &valid_at(verifiers, retired, seen.tree_size),
        )
        .is_err()
    {
        return Err(format!(
            "witnessed checkpoint: {}",
            retired_reason(retired, seen.tree_size)
        ));
    }
    if seen.origin == cp.origin && seen.tree_size < cp.tree_size {
        return Err(format!(
            "the witnessed checkpoint (size {}) is older than the bundle's tree (size {}): \
             use a witnessed checkpoint at the bundle's size or later",
            seen.tree_size, cp.tree_size
        ));
    }
    check_extends(cp, seen, &input.proof).map_err(|e| match e {
        ConsistencyError::Fork { reason } => format!(
            "the bundle's tree is not a prefix of the witnessed history (split view?): {reason}"
        ),
        other => other.to_string(),
    })?;
    let names: Vec<&str> = w.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
    let how = if seen.tree_size == cp.tree_size {
        "is".to_owned()
    } else {
        format!("is a prefix of the one at size {}", seen.tree_size)
    };
    Ok((
        (),
        format!(
            "the bundle's tree {how} cosigned by {} of the {} trusted witness(es) ({})",
            names.len(),
            input.witnesses.len(),
            if names.is_empty() {
                "none required".to_owned()
            } else {
                names.join(", ")
            }
        ),
    ))
}

fn finish(r: Reporter, summary: BundleSummary) -> VerificationReport {
    VerificationReport {
        ok: r.checks.iter().all(|c| c.passed),
        checks: r.checks,
        summary,
    }
}

fn member<'a>(archive: &'a Archive, name: &str) -> Result<&'a [u8], String> {
    archive
        .get(name)
        .ok_or_else(|| format!("member {name} is missing"))
}

/// The seven members, in the order the format fixes (`members::ALL`), then any members reserved
/// for later versions (`ext/…`, in name order; they are signed through the statement but not
/// interpreted). The order is not covered by the signature (the statement lists members by
/// name), so it is checked here: a bundle whose container differs from the one the exporter
/// wrote is refused, not silently accepted.
fn check_members(archive: &Archive) -> Outcome<()> {
    let missing: Vec<&str> = members::ALL
        .iter()
        .copied()
        .filter(|m| archive.get(m).is_none())
        .collect();
    let extra: Vec<&str> = archive
        .names()
        .filter(|n| !members::ALL.contains(n) && !n.starts_with(members::EXT_PREFIX))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            why.push(format!("unexpected {}", extra.join(", ")));
        }
        return Err(why.join("; "));
    }
    let names: Vec<&str> = archive.names().collect();
    let (known, ext) = names.split_at(names.len().min(members::ALL.len()));
    if !known.iter().copied().eq(members::ALL) || ext.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "members are out of order: {}; the format's order is {}, then ext/ members by name",
            names.join(", "),
            members::ALL.join(", ")
        ));
    }
    let summary = if ext.is_empty() {
        format!("the {} bundle members, in order", members::ALL.len())
    } else {
        format!(
            "the {} bundle members, in order, and {} ext/ member(s), signed but not interpreted \
             by this verifier",
            members::ALL.len(),
            ext.len()
        )
    };
    Ok(((), summary))
}

/// The pinned keys that may sign a tree of `size`: all but those retired before it.
fn valid_at(verifiers: &[Verifier], retired: &[(Verifier, u64)], size: u64) -> Vec<Verifier> {
    verifiers
        .iter()
        .filter(|v| !retired.iter().any(|(r, at)| r == *v && *at < size))
        .cloned()
        .collect()
}

/// Why a signature valid under `verifiers` is not under the keys valid at `size`, if so.
fn retired_reason(retired: &[(Verifier, u64)], size: u64) -> String {
    let keys: Vec<String> = retired
        .iter()
        .filter(|(_, at)| *at < size)
        .map(|(k, at)| format!("{}+{} (retired at size {at})", k.name(), k.key_id_hex()))
        .collect();
    format!(
        "signed only by a key retired before the bundle's tree size {size}: {}",
        keys.join(", ")
    )
}

fn check_dsse(
    archive: &Archive,
    verifiers: &[Verifier],
    retired: &[(Verifier, u64)],
) -> Outcome<Vec<u8>> {
    let bytes = member(archive, members::ENVELOPE)?;
    // Not hashed or signed itself, but written as JCS like every JSON member, so its layout is
    // fixed (its `signatures` array is not: see docs/formats.md, "What the signature covers").
    if !is_canonical(bytes) {
        return Err("evidence.dsse.json is not canonical (RFC 8785) JSON".into());
    }
    let envelope = Envelope::from_json(bytes).map_err(|e| e.to_string())?;
    let payload =
        verify_envelope_of_type(&envelope, PAYLOAD_TYPE, verifiers).map_err(|e| e.to_string())?;
    if !retired.is_empty() {
        // The tree size the statement is about (statement.format checks the rest).
        let size = serde_json::from_slice::<Value>(&payload)
            .ok()
            .and_then(|s| s["predicate"]["tree_size"].as_u64());
        if let Some(size) = size {
            if verify_envelope_of_type(&envelope, PAYLOAD_TYPE, &valid_at(verifiers, retired, size))
                .is_err()
            {
                return Err(retired_reason(retired, size));
            }
        }
    }
    Ok((payload, "signed by a pinned key".into()))
}

fn check_statement(payload: &[u8]) -> Outcome<Statement> {
    if !is_canonical(payload) {
        return Err("statement is not canonical (RFC 8785) JSON".into());
    }
    let s: Statement =
        serde_json::from_slice(payload).map_err(|e| format!("not a statement: {e}"))?;
    if s.type_ != STATEMENT_TYPE {
        return Err(format!("_type is {:?}, expected {STATEMENT_TYPE}", s.type_));
    }
    if s.predicate_type != PREDICATE_TYPE {
        return Err(format!(
            "predicateType is {:?}, expected {PREDICATE_TYPE}",
            s.predicate_type
        ));
    }
    decode_hash(&s.predicate.root_hash).map_err(|e| format!("predicate root_hash {e}"))?;
    let scope = s.predicate.scope.node_id();
    Ok((s, format!("in-toto Statement v1 for {scope}")))
}

fn check_subjects(s: &Statement, archive: &Archive) -> Outcome<()> {
    for pair in s.subject.windows(2) {
        if pair[0].name >= pair[1].name {
            return Err(format!(
                "subjects are not sorted and unique at {:?}",
                pair[1].name
            ));
        }
    }
    for subject in &s.subject {
        if subject.name == members::ENVELOPE {
            return Err("the envelope lists itself".into());
        }
        if subject.is_linked() {
            linked_subject_digest(subject)?;
            continue;
        }
        let bytes = archive
            .get(&subject.name)
            .ok_or_else(|| format!("listed member {} is missing", subject.name))?;
        let want = subject
            .sha256_hex()
            .ok_or_else(|| format!("subject {} has no sha256", subject.name))?;
        let got = hex::encode(Sha256::digest(bytes));
        if got != want {
            return Err(format!(
                "{} has sha256 {got}, the signed statement says {want}",
                subject.name
            ));
        }
    }
    if let Some(unlisted) = archive
        .names()
        .find(|n| *n != members::ENVELOPE && !s.subject.iter().any(|sub| sub.name == *n))
    {
        return Err(format!("member {unlisted} is not listed in the statement"));
    }
    let linked = s.subject.iter().filter(|sub| sub.is_linked()).count();
    Ok((
        (),
        format!(
            "{} members match their signed digests; {linked} artifact and dataset version \
             subject(s) well formed",
            s.subject.len() - linked
        ),
    ))
}

/// The digest of a subject naming a lineage node: `artifact:…` with exactly a `sha256`,
/// `dataset_version:…` with exactly a `dirHash`, each 64 lowercase hex digits.
fn linked_subject_digest(subject: &Subject) -> Result<&str, String> {
    let algorithm = if subject.name.starts_with(ARTIFACT_SUBJECT_PREFIX) {
        "sha256"
    } else if subject.name.starts_with(DATASET_VERSION_SUBJECT_PREFIX) {
        DIR_HASH
    } else {
        return Err(format!(
            "subject {} is neither a member nor an artifact or dataset version",
            subject.name
        ));
    };
    match subject.digest.get(algorithm) {
        Some(hex)
            if subject.digest.len() == 1
                && hex.len() == 64
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(format!(
            "subject {} must have exactly a {algorithm} digest of 64 lowercase hex digits",
            subject.name
        )),
    }
}

fn check_checkpoint(
    archive: &Archive,
    verifiers: &[Verifier],
    retired: &[(Verifier, u64)],
) -> Outcome<Checkpoint> {
    let bytes = member(archive, members::CHECKPOINT)?;
    let text = std::str::from_utf8(bytes).map_err(|_| "checkpoint is not UTF-8".to_owned())?;
    let (cp, _) = open_checkpoint(text, verifiers).map_err(|e| e.to_string())?;
    if !retired.is_empty()
        && open_checkpoint(text, &valid_at(verifiers, retired, cp.tree_size)).is_err()
    {
        return Err(retired_reason(retired, cp.tree_size));
    }
    let summary = format!(
        "{} at size {} signed by a pinned key",
        cp.origin, cp.tree_size
    );
    Ok((cp, summary))
}

fn check_matches(s: &Statement, cp: &Checkpoint) -> Outcome<()> {
    let p = &s.predicate;
    if p.origin != cp.origin {
        return Err(format!(
            "predicate origin {:?} differs from checkpoint origin {:?}",
            p.origin, cp.origin
        ));
    }
    if p.tree_size != cp.tree_size {
        return Err(format!(
            "predicate tree_size {} differs from checkpoint size {}",
            p.tree_size, cp.tree_size
        ));
    }
    let root = decode_hash(&p.root_hash).map_err(|e| format!("predicate root_hash {e}"))?;
    if root != cp.root_hash {
        return Err("predicate root_hash differs from the checkpoint's root".into());
    }
    Ok(((), "origin, tree size and root agree".into()))
}

/// Splits a JSON Lines member into lines; every line must end with `\n`.
fn lines<'a>(name: &str, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let body = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| format!("{name} does not end with a newline"))?;
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    if let Some(i) = lines.iter().position(|l| l.is_empty()) {
        return Err(format!("{name} line {} is empty", i + 1));
    }
    Ok(lines)
}

fn check_inclusion(archive: &Archive, cp: &Checkpoint) -> Outcome<Vec<LeafEvent>> {
    let audit = lines(members::AUDIT, member(archive, members::AUDIT)?)?;
    let proofs = lines(members::PROOFS, member(archive, members::PROOFS)?)?;
    if audit.is_empty() {
        return Err("the audit slice is empty".into());
    }
    if audit.len() != proofs.len() {
        return Err(format!(
            "{} audit lines but {} proof lines",
            audit.len(),
            proofs.len()
        ));
    }
    let mut events = Vec::with_capacity(audit.len());
    let mut last_seq: Option<u64> = None;
    for (i, (leaf, proof_line)) in audit.iter().zip(&proofs).enumerate() {
        let n = i + 1;
        if !is_canonical(leaf) {
            return Err(format!("audit line {n} is not canonical (RFC 8785) JSON"));
        }
        let event: LeafEvent = serde_json::from_slice(leaf)
            .map_err(|e| format!("audit line {n} is not an audit event: {e}"))?;
        if event.v != 1 {
            return Err(format!("audit line {n} has leaf version {}", event.v));
        }
        if last_seq.is_some_and(|last| event.seq <= last) {
            return Err(format!("audit line {n}: seq {} is out of order", event.seq));
        }
        last_seq = Some(event.seq);
        if !is_canonical(proof_line) {
            return Err(format!("proof line {n} is not canonical (RFC 8785) JSON"));
        }
        let proof: ProofLine = serde_json::from_slice(proof_line)
            .map_err(|e| format!("proof line {n} is not a proof: {e}"))?;
        if proof.seq != event.seq {
            return Err(format!(
                "proof line {n} is for seq {}, audit line {n} is seq {}",
                proof.seq, event.seq
            ));
        }
        if proof.tree_size != cp.tree_size {
            return Err(format!(
                "proof line {n} is for tree size {}, the checkpoint's is {}",
                proof.tree_size, cp.tree_size
            ));
        }
        let leaf_hash = merkle::leaf_hash(leaf);
        let claimed =
            decode_hash(&proof.leaf_hash).map_err(|e| format!("proof line {n} leaf_hash {e}"))?;
        if claimed != leaf_hash {
            return Err(format!(
                "proof line {n}: leaf_hash does not match audit line {n}"
            ));
        }
        let path: Vec<Hash> = proof
            .hashes
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("proof line {n} hash {e}"))?;
        merkle::verify_inclusion(&leaf_hash, event.seq, cp.tree_size, &path, &cp.root_hash)
            .map_err(|e| format!("event seq {} is not proven in the tree: {e}", event.seq))?;
        events.push(event);
    }
    let summary = format!(
        "{} events proven included at tree size {}",
        events.len(),
        cp.tree_size
    );
    Ok((events, summary))
}

fn decode_hash(b64: &str) -> Result<Hash, String> {
    B64.decode(b64)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
        .ok_or_else(|| "is not 32 bytes of base64".to_owned())
}

fn check_lineage(archive: &Archive, events: &[LeafEvent], s: &Statement) -> Outcome<()> {
    let bytes = member(archive, members::LINEAGE)?;
    if !is_canonical(bytes) {
        return Err("lineage.json is not canonical (RFC 8785) JSON".into());
    }
    let lineage: Lineage =
        serde_json::from_slice(bytes).map_err(|e| format!("lineage.json: {e}"))?;
    for pair in lineage.nodes.windows(2) {
        if pair[0].id >= pair[1].id {
            return Err(format!("nodes not sorted and unique at {}", pair[1].id));
        }
    }
    for node in &lineage.nodes {
        let prefix = format!("{}:", node.kind);
        if !node.id.starts_with(&prefix) {
            return Err(format!("node {} is not of kind {}", node.id, node.kind));
        }
    }
    let scope = s.predicate.scope.node_id();
    if lineage.node(&scope).is_none() {
        return Err(format!("the scope {scope} is not a lineage node"));
    }
    for pair in lineage.edges.windows(2) {
        let key = |e: &LineageEdge| (e.from.clone(), e.to.clone(), e.kind.as_str().to_owned());
        if key(&pair[0]) >= key(&pair[1]) {
            return Err(format!(
                "edges not sorted and unique at {} -> {}",
                pair[1].from, pair[1].to
            ));
        }
    }
    for edge in &lineage.edges {
        let label = format!("edge {} -[{}]-> {}", edge.from, edge.kind, edge.to);
        for end in [&edge.from, &edge.to] {
            if lineage.node(end).is_none() {
                return Err(format!("{label}: {end} is not a node"));
            }
        }
        let event = events
            .iter()
            .find(|e| e.seq == edge.seq)
            .ok_or_else(|| format!("{label}: seq {} is not in the proven audit slice", edge.seq))?;
        edge_backed_by(edge, event).map_err(|why| format!("{label}: event {} {why}", edge.seq))?;
    }
    // Completeness: every edge the proven events of the lineage's runs imply is listed.
    let listed: HashMap<(&str, &str, &str), u64> = lineage
        .edges
        .iter()
        .map(|e| ((e.from.as_str(), e.to.as_str(), e.kind.as_str()), e.seq))
        .collect();
    let mut implying = 0usize;
    let mut implied = 0usize;
    for event in events {
        if lineage.node(&event.subject).is_none() {
            continue;
        }
        let edges = implied_edges(event, &scope)?;
        if edges.is_empty() {
            continue;
        }
        implying += 1;
        implied += edges.len();
        for (from, to, kind) in edges {
            match listed.get(&(from.as_str(), to.as_str(), kind)) {
                None => {
                    return Err(format!(
                        "event {} ({} of {}) implies the edge {from} -[{kind}]-> {to}, which \
                         lineage.json does not list",
                        event.seq, event.action, event.subject
                    ))
                }
                Some(&seq) if seq != event.seq => {
                    return Err(format!(
                        "event {} ({} of {}) implies the edge {from} -[{kind}]-> {to}, which \
                         lineage.json lists with seq {seq}",
                        event.seq, event.action, event.subject
                    ))
                }
                Some(_) => {}
            }
        }
    }
    let links = check_linked_subjects(&lineage, events, s)?;
    Ok((
        (),
        format!(
            "{} nodes, {} edges each backed by its event; all {implied} edges implied by \
             {implying} proven events of the lineage's runs are listed; {links}",
            lineage.nodes.len(),
            lineage.edges.len()
        ),
    ))
}

/// The statement's artifact and dataset version subjects are exactly the lineage's artifact
/// and dataset version nodes, with the digests the proven events record: an artifact's
/// `sha256` is the one of its `artifact.upload` event, a version's `dirHash` the hex of the
/// DPM-1 digest in its id. A statement with none of them (bundles of earlier releases) passes
/// with a reason saying nothing is linked; one with some must list all.
fn check_linked_subjects(
    lineage: &Lineage,
    events: &[LeafEvent],
    s: &Statement,
) -> Result<String, String> {
    let linked: HashMap<&str, &Subject> = s
        .subject
        .iter()
        .filter(|sub| sub.is_linked())
        .map(|sub| (sub.name.as_str(), sub))
        .collect();
    let nodes: Vec<&str> = lineage
        .nodes
        .iter()
        .map(|n| n.id.as_str())
        .filter(|id| {
            id.starts_with(ARTIFACT_SUBJECT_PREFIX)
                || id.starts_with(DATASET_VERSION_SUBJECT_PREFIX)
        })
        .collect();
    if linked.is_empty() {
        return Ok(format!(
            "the statement links none of the {} artifact and dataset version nodes by digest \
             (a bundle of an earlier release)",
            nodes.len()
        ));
    }
    for name in linked.keys() {
        if !nodes.contains(name) {
            return Err(format!("subject {name} is not a lineage node"));
        }
    }
    for id in &nodes {
        let subject = linked
            .get(id)
            .ok_or_else(|| format!("lineage node {id} is not a statement subject"))?;
        let got = linked_subject_digest(subject)?;
        let want = if let Some(artifact) = id.strip_prefix(ARTIFACT_SUBJECT_PREFIX) {
            events
                .iter()
                .find(|e| {
                    e.action == actions::ARTIFACT_UPLOAD
                        && e.data.get("artifact_id").and_then(Value::as_str) == Some(artifact)
                })
                .and_then(|e| e.data.get("sha256").and_then(Value::as_str))
                .ok_or_else(|| {
                    format!("no proven artifact.upload event records the sha256 of {id}")
                })?
        } else {
            id.rsplit_once("@sha256:")
                .map(|(_, hex)| hex)
                .ok_or_else(|| format!("dataset version node {id} has no sha256 digest"))?
        };
        if got != want {
            return Err(format!(
                "subject {id} has digest {got}, but the proven ledger records {want}"
            ));
        }
    }
    Ok(format!(
        "{} artifact and dataset version subjects match the ledger",
        nodes.len()
    ))
}

/// The edges (`from`, `to`, `kind`) that `event` creates (the edge table of
/// `docs/formats.md`), for an event whose subject is a run node of the lineage; empty for
/// actions that create no edge. `input` edges are only those with the `scope` at one end: a
/// run bundle lists all its run's inputs, a dataset version bundle the runs that read that
/// version (their other inputs are outside its scope). Data that an edge-creating action must
/// carry but does not (a malformed event) is an error: its edges cannot be known.
fn implied_edges(
    event: &LeafEvent,
    scope: &str,
) -> Result<Vec<(String, String, &'static str)>, String> {
    let run = event.subject.as_str();
    if !run.starts_with("run:") {
        return Ok(Vec::new());
    }
    let data = &event.data;
    let malformed = |what: &str| {
        format!(
            "event {} ({} of {run}) has no {what}, so its lineage edges cannot be checked",
            event.seq, event.action
        )
    };
    let string = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&format!("string data.{name}")))
    };
    let versions = |name: &str| -> Result<Vec<String>, String> {
        let items = data
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(&format!("array data.{name}")))?;
        items
            .iter()
            .map(|i| {
                match (
                    i.get("dataset_id").and_then(Value::as_str),
                    i.get("digest").and_then(Value::as_str),
                ) {
                    (Some(ds), Some(digest)) => Ok(format!("dataset_version:{ds}@{digest}")),
                    _ => Err(malformed(&format!("version refs in data.{name}"))),
                }
            })
            .collect()
    };
    let mut out = Vec::new();
    match event.action.as_str() {
        actions::RUN_CREATE => {
            for input in versions("inputs")? {
                if run == scope || input == scope {
                    out.push((input, run.to_owned(), "input"));
                }
            }
            let commit = format!("git_commit:{}", string("git_commit")?);
            out.push((run.to_owned(), commit, "built_from"));
            let image = format!("image:{}", string("image_digest")?);
            out.push((run.to_owned(), image, "executed_in"));
        }
        actions::ARTIFACT_UPLOAD => {
            let artifact = format!("artifact:{}", string("artifact_id")?);
            out.push((run.to_owned(), artifact, "produced"));
        }
        actions::RUN_FINISH => {
            for output in versions("outputs")? {
                out.push((run.to_owned(), output, "produced"));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Whether `event` is the event that creates `edge` (see `docs/formats.md`): the action that
/// makes this kind of edge, on the run the edge starts or ends at, naming the other end.
fn edge_backed_by(edge: &LineageEdge, event: &LeafEvent) -> Result<(), String> {
    let expect = |action: &str, run: &str| -> Result<(), String> {
        if event.action != action {
            return Err(format!("is {}, not {action}", event.action));
        }
        if event.subject != run {
            return Err(format!("is about {}, not {run}", event.subject));
        }
        Ok(())
    };
    let data = &event.data;
    let str_field = |name: &str| data.get(name).and_then(Value::as_str);
    let version_in = |list: &str, node: &str| -> bool {
        let Some((ds, digest)) = node
            .strip_prefix("dataset_version:")
            .and_then(|v| v.split_once('@'))
        else {
            return false;
        };
        data.get(list)
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items.iter().any(|i| {
                    i.get("dataset_id").and_then(Value::as_str) == Some(ds)
                        && i.get("digest").and_then(Value::as_str) == Some(digest)
                })
            })
    };
    match &edge.kind {
        EdgeKind::Input => {
            expect(actions::RUN_CREATE, &edge.to)?;
            if !version_in("inputs", &edge.from) {
                return Err(format!("does not list {} as an input", edge.from));
            }
        }
        EdgeKind::BuiltFrom => {
            expect(actions::RUN_CREATE, &edge.from)?;
            let commit = edge.to.strip_prefix("git_commit:");
            if commit.is_none() || str_field("git_commit") != commit {
                return Err(format!("does not name {}", edge.to));
            }
        }
        EdgeKind::ExecutedIn => {
            expect(actions::RUN_CREATE, &edge.from)?;
            let image = edge.to.strip_prefix("image:");
            if image.is_none() || str_field("image_digest") != image {
                return Err(format!("does not name {}", edge.to));
            }
        }
        EdgeKind::Produced => {
            if let Some(artifact) = edge.to.strip_prefix("artifact:") {
                expect(actions::ARTIFACT_UPLOAD, &edge.from)?;
                if str_field("artifact_id") != Some(artifact) {
                    return Err(format!("does not upload {}", edge.to));
                }
            } else {
                expect(actions::RUN_FINISH, &edge.from)?;
                if !version_in("outputs", &edge.to) {
                    return Err(format!("does not list {} as an output", edge.to));
                }
            }
        }
        other => return Err(format!("cannot back an edge of unknown kind {other}")),
    }
    Ok(())
}

/// `policy.json` against the proven slice. The slice carries the `policy.update` event of the
/// policy in force (`docs/formats.md` §7), and nothing else about policies; version 1 is made
/// by `ledger.init`, which records it in `data.policy` and which the server puts in every slice
/// whose policy is version 1 (other exporters may not). So:
///
/// - version > 1: its `policy.update` event must be in the slice with the same content;
/// - version 1 with the `ledger.init` event in the slice: compared with the policy it records;
/// - version 1 otherwise: only what can be checked is (canonical, well formed, no later
///   update in the slice), and the reason says that the content was **not** verified.
fn check_policy(archive: &Archive, events: &[LeafEvent]) -> Outcome<()> {
    let bytes = member(archive, members::POLICY)?;
    if !is_canonical(bytes) {
        return Err("policy.json is not canonical (RFC 8785) JSON".into());
    }
    let policy: Policy = serde_json::from_slice(bytes).map_err(|e| format!("policy.json: {e}"))?;
    if policy.version == 0 {
        return Err("policy.json has version 0; versions start at 1".into());
    }
    let subject = format!("policy:{}", policy.version);
    // The slice holds the update of the policy in force and no other.
    if let Some(other) = events
        .iter()
        .find(|e| e.action == actions::POLICY_UPDATE && e.subject != subject)
    {
        return Err(format!(
            "policy.json is version {}, but the proven slice holds the {} update (seq {})",
            policy.version, other.subject, other.seq
        ));
    }
    let same = |data: &Value| {
        data.get("required_gates") == Some(&serde_json::json!(policy.required_gates))
            && data.get("run_token_ttl_seconds").and_then(Value::as_u64)
                == Some(policy.run_token_ttl_seconds)
    };
    if policy.version == 1 {
        let Some(init) = events.iter().find(|e| e.action == actions::LEDGER_INIT) else {
            return Ok((
                (),
                "initial policy version 1: canonical, and no later policy update in the proven \
                 slice; its content (required_gates, run_token_ttl_seconds) is NOT verified, \
                 because the ledger.init event that records it is not in the proven slice"
                    .into(),
            ));
        };
        let Some(initial) = init.data.get("policy") else {
            return Ok((
                (),
                format!(
                    "initial policy version 1: canonical; its content is NOT verified, because \
                     the ledger.init event (seq {}) records no initial policy",
                    init.seq
                ),
            ));
        };
        if initial.get("version").and_then(Value::as_u64) != Some(1) || !same(initial) {
            return Err(format!(
                "policy.json differs from the initial policy recorded by ledger.init (seq {})",
                init.seq
            ));
        }
        return Ok((
            (),
            format!(
                "initial policy version 1 matches the one recorded by ledger.init (seq {})",
                init.seq
            ),
        ));
    }
    let event = events
        .iter()
        .find(|e| e.action == actions::POLICY_UPDATE && e.subject == subject)
        .ok_or_else(|| format!("the {subject} update event is not in the proven audit slice"))?;
    if !same(&event.data) {
        return Err(format!(
            "policy.json differs from the {subject} update event (seq {})",
            event.seq
        ));
    }
    Ok((
        (),
        format!(
            "policy version {} backed by event {}",
            policy.version, event.seq
        ),
    ))
}
