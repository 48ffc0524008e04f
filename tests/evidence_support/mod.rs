//! Builds evidence bundles in tests with the crate's own types and signing, exactly as the
//! format describes, so the verifier can be exercised (and tampered with) without a server.

#![allow(dead_code)]

use std::io::{Cursor, Write};

use datapilot::checkpoint::{Checkpoint, Signer, Verifier};
use datapilot::dsse::sign_envelope;
use datapilot::jcs::to_canonical_vec;
use datapilot::merkle::{self, Hash};
use datapilot::model::audit::{Actor, ActorKind, LeafEvent};
use datapilot::model::evidence::{
    members, Predicate, ProofLine, Scope, ScopeKind, Statement, Subject, PAYLOAD_TYPE,
    PREDICATE_TYPE, STATEMENT_TYPE,
};
use datapilot::model::lineage::{EdgeKind, Lineage, LineageEdge, LineageNode, NodeKind};
use datapilot::model::Role;
use serde_json::json;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

pub const ORIGIN: &str = "datapilot.test/ledger";
pub const RUN: &str = "run_01JD8Y7B2C4D6E8F0G1H3J5K7M";
pub const DS: &str = "ds_01JD8X3Q5Z7K9M2N4P6R8T0V1W";
pub const ART: &str = "art_01JD8YC3D5E7F9G1H3J5K7M9N1";
pub const COMMIT: &str = "4015b57a143aec5156fd1444a017a32137a3fd0f";

pub fn signer() -> Signer {
    Signer::from_seed(ORIGIN, &[7u8; 32]).unwrap()
}

pub fn verifier() -> Verifier {
    signer().verifier()
}

pub fn other_signer() -> Signer {
    Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap()
}

pub fn digest() -> String {
    format!("sha256:{}", "ab".repeat(32))
}

pub fn image() -> String {
    format!("sha256:{}", "cd".repeat(32))
}

pub fn version_node() -> String {
    format!("dataset_version:{DS}@{}", digest())
}

/// The scope of the test world's run bundles.
pub fn run_scope() -> Scope {
    Scope {
        kind: ScopeKind::Run,
        id: RUN.into(),
    }
}

/// The scope of a bundle about the test world's input version.
pub fn version_scope() -> Scope {
    Scope {
        kind: ScopeKind::DatasetVersion,
        id: format!("{DS}@{}", digest()),
    }
}

pub fn event(seq: u64, action: &str, subject: String, data: serde_json::Value) -> LeafEvent {
    LeafEvent {
        v: 1,
        seq,
        time: format!("2026-11-27T03:40:{:02}.000Z", seq),
        actor: Actor {
            kind: if seq < 2 {
                ActorKind::System
            } else {
                ActorKind::Token
            },
            id: if seq < 2 {
                "system".into()
            } else {
                "tok_x".into()
            },
            role: if seq < 2 { Role::System } else { Role::Admin },
        },
        action: action.into(),
        subject,
        data,
    }
}

/// The whole ledger of the test world.
pub fn ledger() -> Vec<LeafEvent> {
    let run = format!("run:{RUN}");
    let input = json!([{ "dataset_id": DS, "digest": digest() }]);
    vec![
        event(
            0,
            "ledger.init",
            format!("ledger:{ORIGIN}"),
            json!({ "origin": ORIGIN }),
        ),
        event(
            1,
            "token.create",
            "token:tok_x".into(),
            json!({ "token_id": "tok_x" }),
        ),
        event(
            2,
            "dataset.create",
            format!("dataset:{DS}"),
            json!({ "dataset_id": DS }),
        ),
        event(
            3,
            "dataset_version.register",
            version_node(),
            json!({ "dataset_id": DS, "digest": digest(), "file_count": 1 }),
        ),
        event(
            4,
            "gate.record",
            version_node(),
            json!({ "gate": "pii-scan", "status": "passed" }),
        ),
        event(
            5,
            "policy.update",
            "policy:2".into(),
            json!({ "version": 2, "required_gates": ["pii-scan"], "run_token_ttl_seconds": 86400 }),
        ),
        event(
            6,
            "run.create",
            run.clone(),
            json!({ "run_id": RUN, "name": "r", "inputs": input, "git_commit": COMMIT, "image_digest": image() }),
        ),
        event(
            7,
            "metrics.append",
            run.clone(),
            json!({ "run_id": RUN, "batch": 0, "count": 2, "digest": digest() }),
        ),
        event(
            8,
            "artifact.upload",
            run.clone(),
            json!({ "run_id": RUN, "artifact_id": ART, "name": "model.bin", "sha256": "ab".repeat(32), "size": 3 }),
        ),
        event(
            9,
            "run.finish",
            run,
            json!({ "run_id": RUN, "status": "succeeded", "outputs": [] }),
        ),
        event(
            10,
            "dataset.create",
            "dataset:ds_other".into(),
            json!({ "dataset_id": "ds_other" }),
        ),
    ]
}

pub fn leaves() -> Vec<Vec<u8>> {
    ledger()
        .iter()
        .map(|e| to_canonical_vec(e).unwrap())
        .collect()
}

pub fn leaf_hashes(size: usize) -> Vec<Hash> {
    leaves()[..size]
        .iter()
        .map(|l| merkle::leaf_hash(l))
        .collect()
}

pub fn signed_checkpoint(size: usize, signer: &Signer) -> String {
    signed_checkpoint_of(&ledger(), size, signer)
}

pub fn signed_checkpoint_of(ledger: &[LeafEvent], size: usize, signer: &Signer) -> String {
    let hashes: Vec<Hash> = ledger[..size]
        .iter()
        .map(|e| merkle::leaf_hash(&to_canonical_vec(e).unwrap()))
        .collect();
    Checkpoint {
        origin: ORIGIN.into(),
        tree_size: size as u64,
        root_hash: merkle::root_from_leaf_hashes(&hashes),
        extensions: vec![],
    }
    .sign(signer)
    .unwrap()
}

pub fn lineage() -> Lineage {
    let run = format!("run:{RUN}");
    let node = |id: String, kind: NodeKind, label: &str| LineageNode {
        id,
        kind,
        label: label.into(),
    };
    let edge = |from: &str, to: &str, kind: EdgeKind, seq: u64| LineageEdge {
        from: from.into(),
        to: to.into(),
        kind,
        seq,
    };
    let mut l = Lineage {
        nodes: vec![
            node(format!("artifact:{ART}"), NodeKind::Artifact, "model.bin"),
            node(version_node(), NodeKind::DatasetVersion, "data"),
            node(
                format!("git_commit:{COMMIT}"),
                NodeKind::GitCommit,
                "4015b57a143a",
            ),
            node(format!("image:{}", image()), NodeKind::Image, "sha256:cdcd"),
            node(run.clone(), NodeKind::Run, "r"),
        ],
        edges: vec![
            edge(&version_node(), &run, EdgeKind::Input, 6),
            edge(&run, &format!("artifact:{ART}"), EdgeKind::Produced, 8),
            edge(
                &run,
                &format!("git_commit:{COMMIT}"),
                EdgeKind::BuiltFrom,
                6,
            ),
            edge(&run, &format!("image:{}", image()), EdgeKind::ExecutedIn, 6),
        ],
    };
    l.sort();
    l
}

/// The unzipped members of a bundle, editable by tests.
#[derive(Clone)]
pub struct Parts {
    pub members: Vec<(String, Vec<u8>)>,
}

impl Parts {
    /// A correct run bundle at tree size 10 (the 11th event is outside the tree).
    pub fn run_bundle() -> Parts {
        let policy = json!({ "version": 2, "required_gates": ["pii-scan"], "run_token_ttl_seconds": 86400, "updated_at": "2026-11-27T03:40:05.000Z", "updated_by": "tok_x" });
        Parts::run_bundle_of(&ledger(), 10, &[3, 4, 5, 6, 7, 8, 9], &policy)
    }

    /// A run bundle over another ledger (the run's events as in [`ledger`]), with the audit
    /// slice `slice` and the policy snapshot `policy`, signed with [`signer`].
    pub fn run_bundle_of(
        ledger: &[LeafEvent],
        size: usize,
        slice: &[u64],
        policy: &serde_json::Value,
    ) -> Parts {
        let leaves: Vec<Vec<u8>> = ledger
            .iter()
            .map(|e| to_canonical_vec(e).unwrap())
            .collect();
        let hashes: Vec<Hash> = leaves[..size]
            .iter()
            .map(|l| merkle::leaf_hash(l))
            .collect();
        let mut audit = Vec::new();
        let mut proofs = Vec::new();
        for &seq in slice {
            audit.extend_from_slice(&leaves[seq as usize]);
            audit.push(b'\n');
            let proof = merkle::inclusion_proof(&hashes, seq).unwrap();
            let line = ProofLine {
                hashes: proof.iter().map(|h| b64(h)).collect(),
                leaf_hash: b64(&hashes[seq as usize]),
                seq,
                tree_size: size as u64,
            };
            proofs.extend_from_slice(&to_canonical_vec(&line).unwrap());
            proofs.push(b'\n');
        }
        let mut parts = Parts {
            members: vec![
                (members::ENVELOPE.into(), Vec::new()),
                (
                    members::CHECKPOINT.into(),
                    signed_checkpoint_of(ledger, size, &signer()).into_bytes(),
                ),
                (members::PROOFS.into(), proofs),
                (members::AUDIT.into(), audit),
                (
                    members::LINEAGE.into(),
                    to_canonical_vec(&lineage()).unwrap(),
                ),
                (members::POLICY.into(), to_canonical_vec(policy).unwrap()),
                (
                    members::REPORT.into(),
                    b"<!doctype html><title>Evidence</title><p>ok</p>\n".to_vec(),
                ),
            ],
        };
        parts.sign(&signer());
        parts
    }

    pub fn get(&self, name: &str) -> &[u8] {
        &self.members.iter().find(|(n, _)| n == name).unwrap().1
    }

    pub fn set(&mut self, name: &str, bytes: Vec<u8>) {
        match self.members.iter_mut().find(|(n, _)| n == name) {
            Some(m) => m.1 = bytes,
            None => self.members.push((name.into(), bytes)),
        }
    }

    pub fn statement(&self) -> Statement {
        let envelope = datapilot::dsse::Envelope::from_json(self.get(members::ENVELOPE)).unwrap();
        let payload = base64_decode(&envelope.payload);
        serde_json::from_slice(&payload).unwrap()
    }

    /// (Re)writes the envelope: a statement over the current members, signed by `signer`.
    pub fn sign(&mut self, signer: &Signer) {
        self.sign_as(run_scope(), signer);
    }

    /// Replaces `lineage.json` with the JCS of `lineage` (the envelope is not re-signed).
    pub fn set_lineage(&mut self, lineage: &Lineage) {
        self.set(members::LINEAGE, to_canonical_vec(lineage).unwrap());
    }

    /// As [`Parts::sign`], for a statement about `scope`.
    pub fn sign_as(&mut self, scope: Scope, signer: &Signer) {
        let checkpoint = std::str::from_utf8(self.get(members::CHECKPOINT))
            .unwrap()
            .to_owned();
        let body = checkpoint.split("\n\n").next().unwrap_or("").to_owned() + "\n";
        let cp = Checkpoint::parse(&body).ok();
        let mut subject: Vec<Subject> = self
            .members
            .iter()
            .filter(|(n, _)| n != members::ENVELOPE)
            .map(|(n, b)| Subject::sha256(n.clone(), hex::encode(Sha256::digest(b))))
            .collect();
        subject.sort_by(|a, b| a.name.cmp(&b.name));
        let statement = Statement {
            type_: STATEMENT_TYPE.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate: Predicate {
                scope,
                exported_at: "2026-11-27T03:40:09.000Z".into(),
                exporter: "datapilot-server/0.1.0".into(),
                origin: ORIGIN.into(),
                tree_size: cp.as_ref().map_or(0, |c| c.tree_size),
                root_hash: cp.as_ref().map_or(String::new(), |c| b64(&c.root_hash)),
            },
        };
        self.sign_statement(&statement, signer);
    }

    pub fn sign_statement(&mut self, statement: &Statement, signer: &Signer) {
        let payload = to_canonical_vec(statement).unwrap();
        let env = sign_envelope(PAYLOAD_TYPE, &payload, signer);
        self.set(members::ENVELOPE, env.to_canonical_json().unwrap());
    }

    /// The deterministic zip of the members, in order.
    pub fn zip(&self) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        for (name, bytes) in &self.members {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// Replaces every occurrence of `from` with `to` (same length) in raw zip bytes: used to give
/// members names a zip writer refuses to write (`..`, duplicates, absolute paths).
pub fn patch(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut hits = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "pattern not found");
    out
}

/// Another dataset version of the test world (an output, or a second input).
pub const DS2: &str = "ds_01JD8X3Q5Z7K9M2N4P6R8T0V2X";

pub fn digest2() -> String {
    format!("sha256:{}", "ef".repeat(32))
}

pub fn version2_node() -> String {
    format!("dataset_version:{DS2}@{}", digest2())
}

fn version2_ref() -> serde_json::Value {
    json!({ "dataset_id": DS2, "digest": digest2() })
}

/// The run bundle's policy snapshot (version 2, backed by event 5).
pub fn policy_v2() -> serde_json::Value {
    json!({ "version": 2, "required_gates": ["pii-scan"], "run_token_ttl_seconds": 86400, "updated_at": "2026-11-27T03:40:05.000Z", "updated_by": "tok_x" })
}

/// One bundle the verifier-gap tests run through both verifiers (the SDK and
/// `tests/auditor/verify_bundle.py`): what was done, the bundle, and either `None` (it must
/// pass every check) or the one check that must fail with a fragment of its reason.
pub struct Case {
    pub what: &'static str,
    pub bundle: Vec<u8>,
    pub fails: Option<(&'static str, &'static str)>,
}

/// `lineage()` without the edges for which `drop` is true, nor the nodes `drop_nodes` names.
fn lineage_without(drop: impl Fn(&LineageEdge) -> bool, drop_nodes: &[&str]) -> Lineage {
    let mut l = lineage();
    l.edges.retain(|e| !drop(e));
    l.nodes.retain(|n| !drop_nodes.contains(&n.id.as_str()));
    l
}

fn with_lineage(mut parts: Parts, lineage: &Lineage, scope: Scope) -> Vec<u8> {
    parts.set_lineage(lineage);
    parts.sign_as(scope, &signer());
    parts.zip()
}

fn node(id: String, kind: NodeKind, label: &str) -> LineageNode {
    LineageNode {
        id,
        kind,
        label: label.into(),
    }
}

fn edge(from: String, to: String, kind: EdgeKind, seq: u64) -> LineageEdge {
    LineageEdge {
        from,
        to,
        kind,
        seq,
    }
}

/// The bundles of the three verifier gaps closed together: member order (`archive.members`),
/// a canonical envelope (`dsse.signature`) and lineage completeness (`lineage.edges`). Every
/// failing case passes every check without its rule (it is validly signed, or its change is
/// outside the signature).
pub fn gap_cases() -> Vec<Case> {
    use datapilot::evidence::checks::{ARCHIVE_MEMBERS, DSSE_SIGNATURE, LINEAGE_EDGES};
    let run = format!("run:{RUN}");
    let mut cases = Vec::new();
    let mut case = |what, bundle, fails| {
        cases.push(Case {
            what,
            bundle,
            fails,
        })
    };
    let base = Parts::run_bundle();
    case("untouched run bundle", base.zip(), None);

    // Member order: not covered by the signature (the statement lists members by name).
    let mut t = base.clone();
    t.members.swap(4, 5);
    case(
        "lineage.json and policy.json swapped",
        t.zip(),
        Some((ARCHIVE_MEMBERS, "out of order")),
    );
    let mut t = base.clone();
    t.members.rotate_left(1);
    case(
        "evidence.dsse.json last",
        t.zip(),
        Some((ARCHIVE_MEMBERS, "out of order")),
    );

    // The envelope is not hashed, but its bytes are fixed: JCS.
    let envelope: serde_json::Value = serde_json::from_slice(base.get(members::ENVELOPE)).unwrap();
    for (what, bytes) in [
        (
            "envelope pretty-printed",
            serde_json::to_vec_pretty(&envelope).unwrap(),
        ),
        (
            "envelope with a trailing newline",
            [base.get(members::ENVELOPE), b"\n"].concat(),
        ),
        (
            "envelope members out of order",
            format!(
                "{{\"signatures\":{},\"payloadType\":{},\"payload\":{}}}",
                envelope["signatures"], envelope["payloadType"], envelope["payload"]
            )
            .into_bytes(),
        ),
        (
            "envelope with needless \\u escapes",
            String::from_utf8(base.get(members::ENVELOPE).to_vec())
                .unwrap()
                .replace("+json", "+\\u006aso\\u006e")
                .into_bytes(),
        ),
    ] {
        let mut t = base.clone();
        t.set(members::ENVELOPE, bytes);
        case(what, t.zip(), Some((DSSE_SIGNATURE, "not canonical")));
    }

    // Lineage completeness, run bundle: each edge left out (alone, or with the node only it
    // reached), re-signed.
    let missing = Some((LINEAGE_EDGES, "does not list"));
    let art = format!("artifact:{ART}");
    let commit = format!("git_commit:{COMMIT}");
    let img = format!("image:{}", image());
    for (what, kind, drop_node) in [
        ("input edge left out", EdgeKind::Input, None),
        (
            "input edge and version node left out",
            EdgeKind::Input,
            Some(version_node()),
        ),
        ("built_from edge left out", EdgeKind::BuiltFrom, None),
        (
            "commit node and edge left out",
            EdgeKind::BuiltFrom,
            Some(commit.clone()),
        ),
        ("executed_in edge left out", EdgeKind::ExecutedIn, None),
        (
            "image node and edge left out",
            EdgeKind::ExecutedIn,
            Some(img.clone()),
        ),
        ("artifact edge left out", EdgeKind::Produced, None),
        (
            "artifact node and edge left out",
            EdgeKind::Produced,
            Some(art.clone()),
        ),
    ] {
        let drop_nodes: Vec<&str> = drop_node.iter().map(String::as_str).collect();
        let l = lineage_without(|e| e.kind == kind, &drop_nodes);
        case(what, with_lineage(base.clone(), &l, run_scope()), missing);
    }
    let mut l = lineage();
    l.edges.clear();
    l.nodes.retain(|n| n.id == run);
    case(
        "only the run node",
        with_lineage(base.clone(), &l, run_scope()),
        missing,
    );

    // A run with an output version, a second input, and a second version bundle.
    let mut world = ledger();
    world[6].data["inputs"] = json!([{ "dataset_id": DS, "digest": digest() }, version2_ref()]);
    world[9].data["outputs"] = json!([version2_ref()]);
    let parts = Parts::run_bundle_of(&world, 10, &[3, 4, 5, 6, 7, 8, 9], &policy_v2());
    let full = {
        let mut l = lineage();
        l.nodes
            .push(node(version2_node(), NodeKind::DatasetVersion, "other"));
        l.edges
            .push(edge(version2_node(), run.clone(), EdgeKind::Input, 6));
        l.edges
            .push(edge(run.clone(), version2_node(), EdgeKind::Produced, 9));
        l.sort();
        l
    };
    case(
        "run with two inputs and an output, all listed",
        with_lineage(parts.clone(), &full, run_scope()),
        None,
    );
    let produced = |e: &LineageEdge| e.kind == EdgeKind::Produced && e.to == version2_node();
    let second_input = |e: &LineageEdge| e.kind == EdgeKind::Input && e.from == version2_node();
    let l = {
        let mut l = full.clone();
        l.edges.retain(|e| !produced(e));
        l
    };
    case(
        "run.finish output left out",
        with_lineage(parts.clone(), &l, run_scope()),
        missing,
    );
    let l = {
        let mut l = full.clone();
        l.edges.retain(|e| !second_input(e));
        l
    };
    case(
        "second input of the run bundle left out",
        with_lineage(parts.clone(), &l, run_scope()),
        missing,
    );
    // A dataset version bundle lists the runs that read the version, not their other inputs;
    // it may list them (each is still checked against its event), and must list the rest.
    case(
        "version bundle: the run's other input left out",
        with_lineage(parts.clone(), &l, version_scope()),
        None,
    );
    case(
        "version bundle: the run's other input listed",
        with_lineage(parts.clone(), &full, version_scope()),
        None,
    );
    let l = {
        let mut l = full.clone();
        l.edges
            .retain(|e| !(e.kind == EdgeKind::Input && e.from == version_node()));
        l
    };
    case(
        "version bundle: the input edge from the version left out",
        with_lineage(parts.clone(), &l, version_scope()),
        missing,
    );
    let l = {
        let mut l = full.clone();
        l.edges.retain(|e| !produced(e));
        l
    };
    case(
        "version bundle: the run's output left out",
        with_lineage(parts.clone(), &l, version_scope()),
        missing,
    );

    // Two events imply the same edge: it is listed with one seq, so the other is unlisted.
    let mut world = ledger();
    world[9].data["outputs"] = json!([version2_ref()]);
    world[10] = world[9].clone();
    world[10].seq = 10;
    let parts = Parts::run_bundle_of(&world, 11, &[3, 4, 5, 6, 7, 8, 9, 10], &policy_v2());
    let mut l = lineage();
    l.nodes
        .push(node(version2_node(), NodeKind::DatasetVersion, "other"));
    l.edges
        .push(edge(run.clone(), version2_node(), EdgeKind::Produced, 9));
    l.sort();
    case(
        "an edge implied twice",
        with_lineage(parts, &l, run_scope()),
        Some((LINEAGE_EDGES, "lists with seq 9")),
    );

    // A lineage run whose run.create lacks the data that names an edge's end.
    let mut world = ledger();
    world[6].data.as_object_mut().unwrap().remove("git_commit");
    let parts = Parts::run_bundle_of(&world, 10, &[3, 4, 5, 6, 7, 8, 9], &policy_v2());
    let l = lineage_without(|e| e.kind == EdgeKind::BuiltFrom, &[&commit]);
    case(
        "run.create without git_commit",
        with_lineage(parts, &l, run_scope()),
        Some((LINEAGE_EDGES, "cannot be checked")),
    );

    // Events of a run that is not a lineage node imply nothing here.
    let other_run = "run_01JD8Y7B2C4D6E8F0G1H3J5K7N";
    let mut world = ledger();
    world[10] = world[6].clone();
    world[10].seq = 10;
    world[10].subject = format!("run:{other_run}");
    world[10].data["run_id"] = json!(other_run);
    let parts = Parts::run_bundle_of(&world, 11, &[3, 4, 5, 6, 7, 8, 9, 10], &policy_v2());
    case(
        "an event of a run outside the lineage",
        with_lineage(parts, &lineage(), run_scope()),
        None,
    );
    cases
}
