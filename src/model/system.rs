//! System endpoints: health, the caller's identity and the ledger's verifier keys.

use serde::{Deserialize, Serialize};

use super::Role;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Health {
    /// `"ok"` when the server is serving.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "\"ok\""))]
    pub status: String,
    /// Server version.
    pub version: String,
    /// Current ledger size.
    pub tree_size: u64,
}

/// `GET /v1/whoami`: the principal the server sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct WhoAmI {
    /// Token name, run id or gateway subject.
    pub subject: String,
    /// Effective role.
    pub role: Role,
    /// API token id, when authenticated by an API token.
    #[serde(default)]
    pub token_id: Option<String>,
    /// Run id, when authenticated by a run token.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `GET /v1/keys`: the ledger origin and its public verifier keys.
///
/// Fetching keys from the server you are verifying proves nothing; pin the `verifier` string
/// out of band and pass it to the offline verifier. This endpoint is for bootstrapping that pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct VerifierKeys {
    /// Ledger origin (also the key name).
    pub origin: String,
    /// Active keys.
    pub keys: Vec<VerifierKey>,
}

/// One public ledger key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct VerifierKey {
    /// Key name (the origin).
    pub name: String,
    /// 8 lowercase hex chars: `SHA-256(name || 0x0A || 0x01 || key)[:4]`.
    pub key_id: String,
    /// `"ed25519"`.
    #[cfg_attr(target_arch = "wasm32", tsify(type = "\"ed25519\""))]
    pub algorithm: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
    /// C2SP note verifier string `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub verifier: String,
    /// The public key as SPKI PEM (RFC 8410), for tools that take PEM keys (cosign, openssl).
    pub public_key_pem: String,
    /// For a retired key: the largest tree size it may sign (the checkpoint of its
    /// `key.rotate` event); pass it to `VerifyOptions::with_retired_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at_size: Option<u64>,
}
