//! Tag `tokens`: API token management (admin).

use super::WriteOperation;
use crate::client::{path, Call, Client};
use crate::model::tokens::{ApiToken, CreateTokenRequest, CreatedToken};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `createToken` — `POST /v1/tokens`. The secret in the response is shown only once.
    pub fn create_token(&self, req: &CreateTokenRequest) -> WriteOperation<CreatedToken> {
        let call = path(&["tokens"]).and_then(|p| Call::json(Method::Post, p, req));
        WriteOperation::json(self, call)
    }

    /// `listTokens` — `GET /v1/tokens`.
    pub fn list_tokens(&self) -> Pager<ApiToken> {
        Pager::new(self.clone(), path(&["tokens"]), Vec::new())
    }

    /// `revokeToken` — `POST /v1/tokens/{token_id}/revoke`.
    pub fn revoke_token(&self, token_id: &str) -> WriteOperation<ApiToken> {
        let call = path(&["tokens", token_id, "revoke"]).map(Call::post);
        WriteOperation::json(self, call)
    }
}
