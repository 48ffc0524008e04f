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
                scope: Scope {
                    kind: ScopeKind::Run,
                    id: RUN.into(),
                },
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
