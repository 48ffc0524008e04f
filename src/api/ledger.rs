//! Tag `ledger`: checkpoints, entries and Merkle proofs of the audit ledger.

use crate::client::{path, Call, Client};
use crate::error::{Error, Result};
use crate::model::ledger::{ConsistencyProof, InclusionProof, LedgerEntry};
use crate::pagination::Pager;

impl Client {
    /// `getCheckpoint` — `GET /v1/ledger/checkpoint`: the current signed checkpoint, as the
    /// C2SP note text. Parse and verify it with [`crate::checkpoint`] and a pinned key.
    pub async fn get_checkpoint(&self) -> Result<String> {
        let call = Call::get(path(&["ledger", "checkpoint"])?).accept("text/plain");
        let resp = self.execute(call).await?;
        String::from_utf8(resp.body)
            .map_err(|_| Error::decode(resp.status, "checkpoint is not UTF-8", None))
    }

    /// `listLedgerEntries` — `GET /v1/ledger/entries?start=`: raw leaves from `start`.
    pub fn list_ledger_entries(&self, start: Option<u64>) -> Pager<LedgerEntry> {
        let query = start
            .map(|s| vec![("start", s.to_string())])
            .unwrap_or_default();
        Pager::new(self.clone(), "/v1/ledger/entries".to_owned(), Vec::new())
            .first_page_query(query)
    }

    /// `getInclusionProof` — `GET /v1/ledger/proofs/inclusion?seq=&tree_size=` (tree size
    /// defaults to the current one).
    pub async fn get_inclusion_proof(
        &self,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof> {
        let call = Call::get(path(&["ledger", "proofs", "inclusion"])?)
            .query("seq", seq)
            .query_opt("tree_size", tree_size);
        self.json(call).await
    }

    /// `getConsistencyProof` — `GET /v1/ledger/proofs/consistency?from=&to=` (`to` defaults
    /// to the current size).
    pub async fn get_consistency_proof(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof> {
        let call = Call::get(path(&["ledger", "proofs", "consistency"])?)
            .query("from", from)
            .query_opt("to", to);
        self.json(call).await
    }
}
