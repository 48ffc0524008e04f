//! Tag `ledger`: checkpoints, entries and Merkle proofs of the audit ledger.

use super::Operation;
use crate::client::{path, Call, Client};
use crate::error::{Error, Result};
use crate::model::ledger::{ConsistencyProof, InclusionProof, LedgerEntry};
use crate::pagination::Pager;
use crate::transport::Response;

fn note_text(resp: Response) -> Result<String> {
    let status = resp.status;
    String::from_utf8(resp.body).map_err(|_| Error::decode(status, "checkpoint is not UTF-8", None))
}

impl Client {
    /// `getCheckpoint` — `GET /v1/ledger/checkpoint`: the current signed checkpoint, as the
    /// C2SP note text. Parse and verify it with [`crate::checkpoint`] and a pinned key.
    pub fn get_checkpoint(&self) -> Operation<String> {
        let call = path(&["ledger", "checkpoint"]).map(|p| Call::get(p).accept("text/plain"));
        Operation::new(self, call, note_text)
    }

    /// `listLedgerEntries` — `GET /v1/ledger/entries?start=`: raw leaves from `start`.
    pub fn list_ledger_entries(&self, start: Option<u64>) -> Pager<LedgerEntry> {
        let query = start
            .map(|s| vec![("start", s.to_string())])
            .unwrap_or_default();
        Pager::new(self.clone(), path(&["ledger", "entries"]), Vec::new()).first_page_query(query)
    }

    /// `getInclusionProof` — `GET /v1/ledger/proofs/inclusion?seq=&tree_size=` (tree size
    /// defaults to the current one).
    pub fn get_inclusion_proof(
        &self,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Operation<InclusionProof> {
        let call = path(&["ledger", "proofs", "inclusion"]).map(|p| {
            Call::get(p)
                .query("seq", seq)
                .query_opt("tree_size", tree_size)
        });
        Operation::json(self, call)
    }

    /// `getConsistencyProof` — `GET /v1/ledger/proofs/consistency?from=&to=` (`to` defaults
    /// to the current size).
    pub fn get_consistency_proof(&self, from: u64, to: Option<u64>) -> Operation<ConsistencyProof> {
        let call = path(&["ledger", "proofs", "consistency"])
            .map(|p| Call::get(p).query("from", from).query_opt("to", to));
        Operation::json(self, call)
    }
}
