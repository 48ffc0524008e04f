//! Tag `policy`: the gate policy.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::{Error, Result};
use crate::model::policy::{Policy, UpdatePolicyRequest};
use crate::transport::Method;

impl Client {
    /// `getPolicy` — `GET /v1/policy`.
    pub async fn get_policy(&self) -> Result<Policy> {
        self.json(Call::get(path(&["policy"])?)).await
    }

    /// `updatePolicy` — `PUT /v1/policy` (admin): replaces the policy, creating the next
    /// version (an omitted `run_token_ttl_seconds` resets it to 86400).
    ///
    /// The contract takes no `Idempotency-Key` here, and every call makes a new version, so
    /// this call is retried only when the server cannot have applied it (connection refused,
    /// 408, 429, 503), never after a lost response.
    pub async fn update_policy(&self, req: &UpdatePolicyRequest) -> Result<Policy> {
        self.update_policy_with(req, &RequestOptions::default())
            .await
    }

    /// `updatePolicy` with per-call options (a timeout; an idempotency key is refused).
    pub async fn update_policy_with(
        &self,
        req: &UpdatePolicyRequest,
        opts: &RequestOptions,
    ) -> Result<Policy> {
        if opts.idempotency_key.is_some() {
            return Err(Error::build("updatePolicy takes no Idempotency-Key"));
        }
        self.json(Call::json(Method::Put, path(&["policy"])?, req, opts)?)
            .await
    }
}
