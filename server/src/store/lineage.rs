//! Lineage graphs, cut at a tree size: what a run consumed and produced, what used or produced
//! a dataset version.

use std::collections::{BTreeMap, BTreeSet};

use datapilot::model::lineage::{EdgeKind, Lineage, LineageEdge, LineageNode, NodeKind};

use super::ledger_io::check_size;
use super::reads::{find_run, require_dataset, require_version, RunRow};
use super::repo::{int, params, RepoTx};
use super::{version_subject, Store, StoreError, StoreResult};

/// Builds a lineage graph; nodes are collected as keys and labelled at the end.
#[derive(Default)]
pub(crate) struct Graph {
    versions: BTreeSet<(String, String)>,
    nodes: BTreeMap<String, (NodeKind, String)>,
    edges: BTreeSet<(String, String, String, u64)>,
}

impl Graph {
    /// A run with its commit, image, artifacts and outputs, only edges whose event is below
    /// `size`. Its `input` edges: all of them for a run scope (`only_input` = `None`); for a
    /// version scope only the one from that version (`Some((dataset_id, digest))`), whatever
    /// else happens to be in the graph, so the bundle does not depend on the order runs are added.
    pub(crate) async fn add_run(
        &mut self,
        tx: &mut dyn RepoTx,
        rr: &RunRow,
        size: u64,
        only_input: Option<(&str, &str)>,
    ) -> StoreResult<()> {
        let run = &rr.run;
        let rn = format!("run:{}", run.id);
        self.nodes
            .insert(rn.clone(), (NodeKind::Run, run.name.clone()));
        let seq = run.audit_seq;
        let commit = format!("git_commit:{}", run.git_commit);
        self.nodes.insert(
            commit.clone(),
            (NodeKind::GitCommit, run.git_commit[..12].to_string()),
        );
        self.edges
            .insert((rn.clone(), commit, "built_from".into(), seq));
        let image = format!("image:{}", run.image_digest);
        self.nodes.insert(
            image.clone(),
            (NodeKind::Image, run.image_digest[..19].to_string()),
        );
        self.edges
            .insert((rn.clone(), image, "executed_in".into(), seq));
        for i in &run.inputs {
            let wanted = match only_input {
                None => true,
                Some((ds, digest)) => i.dataset_id == ds && i.digest == digest,
            };
            if wanted {
                self.versions
                    .insert((i.dataset_id.clone(), i.digest.clone()));
                self.edges.insert((
                    version_subject(&i.dataset_id, &i.digest),
                    rn.clone(),
                    "input".into(),
                    seq,
                ));
            }
        }
        if let Some(fs) = rr.finish_seq.filter(|s| *s < size) {
            for o in &run.outputs {
                self.versions
                    .insert((o.dataset_id.clone(), o.digest.clone()));
                self.edges.insert((
                    rn.clone(),
                    version_subject(&o.dataset_id, &o.digest),
                    "produced".into(),
                    fs,
                ));
            }
        }
        let arts = tx
            .query(
                "SELECT id, name, audit_seq FROM artifacts WHERE run_id = $1 AND audit_seq < $2",
                params![&run.id, int("size", size)?],
            )
            .await?;
        for r in arts {
            let an = format!("artifact:{}", r.text(0)?);
            self.nodes
                .insert(an.clone(), (NodeKind::Artifact, r.text(1)?));
            self.edges
                .insert((rn.clone(), an, "produced".into(), r.u64(2)?));
        }
        Ok(())
    }

    /// A dataset version node (labelled by `finish`), also when no run touches it.
    pub(crate) fn add_version(&mut self, dataset_id: &str, digest: &str) {
        self.versions
            .insert((dataset_id.to_string(), digest.to_string()));
    }

    pub(crate) async fn finish(mut self, tx: &mut dyn RepoTx) -> StoreResult<Lineage> {
        for (ds, digest) in std::mem::take(&mut self.versions) {
            let name = match tx
                .query_opt("SELECT name FROM datasets WHERE id = $1", params![&ds])
                .await?
            {
                Some(r) => r.text(0)?,
                None => ds.clone(),
            };
            let short = &digest[..digest.len().min(19)];
            self.nodes.insert(
                version_subject(&ds, &digest),
                (NodeKind::DatasetVersion, format!("{name}@{short}")),
            );
        }
        let mut lineage = Lineage {
            nodes: self
                .nodes
                .into_iter()
                .map(|(id, (kind, label))| LineageNode { id, kind, label })
                .collect(),
            edges: self
                .edges
                .into_iter()
                .map(|(from, to, kind, seq)| LineageEdge {
                    from,
                    to,
                    kind: kind.parse::<EdgeKind>().unwrap_or_else(|e| match e {}),
                    seq,
                })
                .collect(),
        };
        lineage.sort();
        Ok(lineage)
    }
}

pub(crate) async fn run_lineage_in(
    tx: &mut dyn RepoTx,
    run_id: &str,
    tree_size: Option<u64>,
) -> StoreResult<Lineage> {
    let size = check_size(tx, tree_size).await?;
    let rr = find_run(tx, run_id).await?;
    if rr.run.audit_seq >= size {
        return Err(StoreError::NotFound(format!(
            "run {run_id} did not exist at tree size {size}"
        )));
    }
    let mut g = Graph::default();
    g.add_run(tx, &rr, size, None).await?;
    g.finish(tx).await
}

pub(crate) async fn version_lineage_in(
    tx: &mut dyn RepoTx,
    dataset_id: &str,
    digest: &str,
    tree_size: Option<u64>,
) -> StoreResult<Lineage> {
    let size = check_size(tx, tree_size).await?;
    require_dataset(tx, dataset_id).await?;
    let (_, v) = require_version(tx, dataset_id, digest).await?;
    if v.audit_seq >= size {
        return Err(StoreError::NotFound(format!(
            "version {digest} did not exist at tree size {size}"
        )));
    }
    let mut g = Graph::default();
    g.versions
        .insert((dataset_id.to_string(), digest.to_string()));
    let run_ids: BTreeSet<String> = tx
        .query(
            "SELECT run_id FROM run_inputs WHERE dataset_id = $1 AND digest = $2
             UNION SELECT run_id FROM run_outputs WHERE dataset_id = $1 AND digest = $2",
            params![dataset_id, digest],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<StoreResult<_>>()?;
    for id in run_ids {
        let rr = find_run(tx, &id).await?;
        if rr.run.audit_seq >= size {
            continue;
        }
        // A run that only produced this version (as output) counts once its finish is in.
        let used = rr
            .run
            .inputs
            .iter()
            .any(|i| i.dataset_id == dataset_id && i.digest == digest);
        let produced = rr.finish_seq.is_some_and(|s| s < size)
            && rr
                .run
                .outputs
                .iter()
                .any(|o| o.dataset_id == dataset_id && o.digest == digest);
        if used || produced {
            // Its other inputs are two hops away from the version: not included.
            g.add_run(tx, &rr, size, Some((dataset_id, digest))).await?;
        }
    }
    g.finish(tx).await
}

impl Store {
    /// Lineage one hop around a run, with only the edges whose event has `seq < tree_size`
    /// (the whole current graph when `None`).
    pub async fn run_lineage(&self, run_id: &str, tree_size: Option<u64>) -> StoreResult<Lineage> {
        let run_id = run_id.to_owned();
        self.read(move |tx| Box::pin(async move { run_lineage_in(tx, &run_id, tree_size).await }))
            .await
    }

    /// Lineage one hop around a dataset version, cut like [`Store::run_lineage`].
    pub async fn version_lineage(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> StoreResult<Lineage> {
        let (ds, digest) = (dataset_id.to_owned(), digest.to_owned());
        self.read(move |tx| {
            Box::pin(async move { version_lineage_in(tx, &ds, &digest, tree_size).await })
        })
        .await
    }
}
