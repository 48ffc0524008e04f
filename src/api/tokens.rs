//! Tag `tokens`: API token management (admin).

use crate::client::{path, Call, Client, RequestOptions};
use crate::error::Result;
use crate::model::tokens::{ApiToken, CreateTokenRequest, CreatedToken};
use crate::pagination::Pager;
use crate::transport::Method;

impl Client {
    /// `createToken` — `POST /v1/tokens`. The secret in the response is shown only once.
    pub async fn create_token(&self, req: &CreateTokenRequest) -> Result<CreatedToken> {
        self.create_token_with(req, &RequestOptions::default())
            .await
    }

    /// `createToken` with per-call options.
    pub async fn create_token_with(
        &self,
        req: &CreateTokenRequest,
        opts: &RequestOptions,
    ) -> Result<CreatedToken> {
        self.json(Call::json(Method::Post, path(&["tokens"])?, req, opts)?)
            .await
    }

    /// `listTokens` — `GET /v1/tokens`.
    pub fn list_tokens(&self) -> Pager<ApiToken> {
        Pager::new(self.clone(), "/v1/tokens".to_owned(), Vec::new())
    }

    /// `revokeToken` — `POST /v1/tokens/{token_id}/revoke`.
    pub async fn revoke_token(&self, token_id: &str) -> Result<ApiToken> {
        self.revoke_token_with(token_id, &RequestOptions::default())
            .await
    }

    /// `revokeToken` with per-call options.
    pub async fn revoke_token_with(
        &self,
        token_id: &str,
        opts: &RequestOptions,
    ) -> Result<ApiToken> {
        let p = path(&["tokens", token_id, "revoke"])?;
        let mut call = Call::get(p);
        call.method = Method::Post;
        call.options = opts.clone();
        self.json(call).await
    }
}
