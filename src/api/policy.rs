//! Tag `policy`: the gate policy.

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::Result;
use crate::model::policy::{Policy, UpdatePolicyRequest};
use crate::transport::Method;

impl Client {
    /// `getPolicy` — `GET /v1/policy`.
    pub async fn get_policy(&self) -> Result<Policy> {
        self.json(Call::get(path(&["policy"])?)).await
    }

    /// `updatePolicy` — `PUT /v1/policy` (admin): creates the next policy version.
    ///
    /// Sent with an `Idempotency-Key` like every write: a PUT that creates a new version is not
    /// naturally idempotent, so a retry must not create two.
    pub async fn update_policy(&self, req: &UpdatePolicyRequest) -> Result<Policy> {
        self.update_policy_with(req, &RequestOptions::default())
            .await
    }

    /// `updatePolicy` with per-call options.
    pub async fn update_policy_with(
        &self,
        req: &UpdatePolicyRequest,
        opts: &RequestOptions,
    ) -> Result<Policy> {
        self.json(Call::json(Method::Put, path(&["policy"])?, req, opts)?)
            .await
    }
}
