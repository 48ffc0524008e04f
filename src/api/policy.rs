//! Tag `policy`: the gate policy.

use super::Operation;
use crate::client::{path, Call, Client};
use crate::model::policy::{Policy, UpdatePolicyRequest};
use crate::transport::Method;

impl Client {
    /// `getPolicy` — `GET /v1/policy`.
    pub fn get_policy(&self) -> Operation<Policy> {
        Operation::json(self, path(&["policy"]).map(Call::get))
    }

    /// `updatePolicy` — `PUT /v1/policy` (admin): replaces the policy, creating the next
    /// version (an omitted `run_token_ttl_seconds` resets it to 86400).
    ///
    /// The contract takes no `Idempotency-Key` here (so this is an [`Operation`], not a
    /// [`super::WriteOperation`]), and every call makes a new version, so this call is retried
    /// only when the server cannot have applied it (connection refused, 408, 429, 503), never
    /// after a lost response.
    pub fn update_policy(&self, req: &UpdatePolicyRequest) -> Operation<Policy> {
        let call = path(&["policy"]).and_then(|p| Call::json(Method::Put, p, req));
        Operation::json(self, call)
    }
}
