//! Lineage: the graph of how datasets, runs, code, images and artifacts are connected.
//!
//! The same shape is returned by the lineage operations and stored as `lineage.json` in an
//! evidence bundle (where it is the JCS serialisation of [`Lineage`]). Every edge names the
//! `seq` of the audit event that created it, which is what lets an auditor check that each edge
//! is backed by a signed ledger entry rather than by the exporter's say-so.
//!
//! Node ids are typed prefixes: `dataset_version:<ds id>@sha256:<hex>`, `run:<run id>`,
//! `git_commit:<hex>`, `image:sha256:<hex>`, `artifact:<art id>`. Nodes are sorted by id and
//! edges by `(from, to, kind)`.

use serde::{Deserialize, Serialize};

use super::string_enum;

/// A lineage graph: nodes and the edges between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct Lineage {
    /// Nodes, sorted by `id`.
    pub nodes: Vec<LineageNode>,
    /// Edges, sorted by `(from, to, kind)`.
    pub edges: Vec<LineageEdge>,
}

/// One node of a lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct LineageNode {
    /// Typed id, e.g. `run:run_01…` (see the module docs).
    pub id: String,
    /// What the node is.
    pub kind: NodeKind,
    /// A human label (dataset name, run name, short hash).
    pub label: String,
}

/// One directed edge of a lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct LineageEdge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// Relationship.
    pub kind: EdgeKind,
    /// Sequence number of the audit event that created this edge.
    pub seq: u64,
}

string_enum! {
    /// The kind of a lineage node; also the prefix of its id.
    pub enum NodeKind {
        /// A dataset version, `dataset_version:<ds id>@sha256:<hex>`.
        DatasetVersion => "dataset_version",
        /// A run, `run:<run id>`.
        Run => "run",
        /// A git commit, `git_commit:<hex>`.
        GitCommit => "git_commit",
        /// A container image, `image:sha256:<hex>`.
        Image => "image",
        /// A run artifact, `artifact:<art id>`.
        Artifact => "artifact",
    }
}

string_enum! {
    /// The kind of a lineage edge, and which audit action backs it.
    pub enum EdgeKind {
        /// Dataset version → run that read it (`run.create`).
        Input => "input",
        /// Run → git commit it was built from (`run.create`).
        BuiltFrom => "built_from",
        /// Run → image it executed in (`run.create`).
        ExecutedIn => "executed_in",
        /// Run → artifact (`artifact.upload`) or output dataset version (`run.finish`).
        Produced => "produced",
    }
}

impl Lineage {
    /// Sorts nodes by id and edges by `(from, to, kind)`, the canonical order of the format.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        self.edges.sort_by(|a, b| {
            (a.from.as_str(), a.to.as_str(), a.kind.as_str()).cmp(&(
                b.from.as_str(),
                b.to.as_str(),
                b.kind.as_str(),
            ))
        });
    }

    /// The node with this id, if present.
    pub fn node(&self, id: &str) -> Option<&LineageNode> {
        self.nodes.iter().find(|n| n.id == id)
    }
}
