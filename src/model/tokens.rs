//! API tokens: bearer secrets with a role, managed by admins. The secret is shown once, at
//! creation, and is redacted from `Debug` output.

use serde::{Deserialize, Serialize};

use super::Role;
use crate::secret::Secret;

/// Body of `createToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreateTokenRequest {
    /// Human name.
    pub name: String,
    /// Role granted.
    pub role: Role,
    /// Lifetime; no expiry when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// An API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct ApiToken {
    /// `tok_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: String,
    /// Expiry, if any.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// Response of `createToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct CreatedToken {
    /// The token's metadata.
    pub token: ApiToken,
    /// The `dpt_…` secret (redacted in `Debug`); shown only once.
    pub secret: Secret,
}

impl CreateTokenRequest {
    /// A token named `name` with `role`, without expiry.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            expires_in_seconds: None,
        }
    }

    /// Makes the token expire this many seconds after creation.
    pub fn with_expires_in_seconds(mut self, seconds: u64) -> Self {
        self.expires_in_seconds = Some(seconds);
        self
    }
}
