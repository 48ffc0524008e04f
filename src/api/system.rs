//! Tag `system`: health, identity, verifier keys.

use crate::client::{path, Call, Client};
use crate::error::Result;
use crate::model::system::{Health, VerifierKeys, WhoAmI};

impl Client {
    /// `getHealth` — `GET /v1/health` (no auth needed).
    pub async fn get_health(&self) -> Result<Health> {
        self.json(Call::get(path(&["health"])?)).await
    }

    /// `whoAmI` — `GET /v1/whoami`: the principal the server sees for this client's token.
    pub async fn who_am_i(&self) -> Result<WhoAmI> {
        self.json(Call::get(path(&["whoami"])?)).await
    }

    /// `listVerifierKeys` — `GET /v1/keys`: the ledger's public keys (bootstrap a pin from it;
    /// do not trust it for verification).
    pub async fn list_verifier_keys(&self) -> Result<VerifierKeys> {
        self.json(Call::get(path(&["keys"])?)).await
    }
}
