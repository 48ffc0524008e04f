//! Tag `system`: health, identity, verifier keys.

use super::Operation;
use crate::client::{path, Call, Client};
use crate::model::system::{Health, VerifierKeys, WhoAmI};

impl Client {
    /// `getHealth` — `GET /v1/health` (no auth needed).
    pub fn get_health(&self) -> Operation<Health> {
        Operation::json(self, path(&["health"]).map(Call::get))
    }

    /// `whoAmI` — `GET /v1/whoami`: the principal the server sees for this client's token.
    pub fn who_am_i(&self) -> Operation<WhoAmI> {
        Operation::json(self, path(&["whoami"]).map(Call::get))
    }

    /// `listVerifierKeys` — `GET /v1/keys`: the ledger's public keys (bootstrap a pin from it;
    /// do not trust it for verification).
    pub fn list_verifier_keys(&self) -> Operation<VerifierKeys> {
        Operation::json(self, path(&["keys"]).map(Call::get))
    }
}
