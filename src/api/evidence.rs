//! Tag `evidence`: evidence bundle export, and verification with the server's proofs and
//! checkpoint ([`Client::verify_evidence_bundle`]). Offline: [`crate::evidence`].

use super::{Operation, RequestOptions};
use crate::checkpoint::Verifier;
use crate::client::{path, Call, Client};
use crate::error::Result;
use crate::evidence::{verify_bundle_online, OnlinePolicy, VerificationReport};
use crate::transport::Response;

/// Media type of an evidence bundle.
pub const ZIP: &str = "application/zip";

fn bytes(resp: Response) -> Result<Vec<u8>> {
    Ok(resp.body)
}

impl Client {
    /// `exportRunEvidence` — `GET /v1/runs/{run_id}/evidence?tree_size=`: the bundle's zip
    /// bytes, deterministic for the same run and tree size (default: current size).
    pub fn export_run_evidence(&self, run_id: &str, tree_size: Option<u64>) -> Operation<Vec<u8>> {
        let call = path(&["runs", run_id, "evidence"])
            .map(|p| Call::get(p).query_opt("tree_size", tree_size).accept(ZIP));
        Operation::new(self, call, bytes)
    }

    /// `exportDatasetVersionEvidence` —
    /// `GET /v1/datasets/{dataset_id}/versions/{digest}/evidence?tree_size=`.
    pub fn export_dataset_version_evidence(
        &self,
        dataset_id: &str,
        digest: &str,
        tree_size: Option<u64>,
    ) -> Operation<Vec<u8>> {
        let call = path(&["datasets", dataset_id, "versions", digest, "evidence"])
            .map(|p| Call::get(p).query_opt("tree_size", tree_size).accept(ZIP));
        Operation::new(self, call, bytes)
    }
}

/// [`Client::verify_evidence_bundle`]: a bundle verified with the server's help.
#[derive(Debug)]
#[must_use = "an operation does nothing until `.send()` is awaited"]
pub struct VerifyBundleOperation<'a> {
    client: &'a Client,
    bundle: &'a [u8],
    verifiers: Vec<Verifier>,
    policy: OnlinePolicy,
    options: RequestOptions,
}

impl Client {
    /// Verifies an evidence bundle against `verifiers` (the pinned log keys), fetching from this
    /// server what the policy needs: with [`OnlinePolicy::with_last_checkpoint`] the consistency
    /// proof from that checkpoint to the bundle (rollback and fork detection), with
    /// [`OnlinePolicy::with_witnesses`] the server's current cosigned checkpoint and the proof
    /// from the bundle to it (split-view detection). Without a policy, the offline checks only.
    ///
    /// The report is returned whatever it says (read `report.ok`); an error means an input
    /// could not be fetched. Nothing the server sends is trusted: proofs and checkpoints are
    /// checked against the pinned keys and witnesses.
    pub fn verify_evidence_bundle<'a>(
        &'a self,
        bundle: &'a [u8],
        verifiers: &[Verifier],
    ) -> VerifyBundleOperation<'a> {
        VerifyBundleOperation {
            client: self,
            bundle,
            verifiers: verifiers.to_vec(),
            policy: OnlinePolicy::default(),
            options: RequestOptions::default(),
        }
    }
}

impl VerifyBundleOperation<'_> {
    /// What to hold the bundle to beyond its own signatures.
    pub fn policy(mut self, policy: OnlinePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Options for each request made (proofs, checkpoint).
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Fetches what the policy needs and verifies.
    pub async fn send(self) -> Result<VerificationReport> {
        let (client, options) = (self.client, &self.options);
        verify_bundle_online(
            self.bundle,
            &self.verifiers,
            self.policy,
            |from, to| async move {
                let p = client
                    .get_consistency_proof(from, Some(to))
                    .options(options.clone())
                    .send()
                    .await?;
                Ok(p.hashes)
            },
            || client.get_checkpoint().options(options.clone()).send(),
        )
        .await
    }
}
