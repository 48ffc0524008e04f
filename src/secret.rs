//! A secret string (API token, run token) that never prints.
//!
//! Tokens end up in errors, logs and panics through `Debug` far more often than through
//! deliberate printing, so [`Secret`] redacts both `Debug` and `Display`; the only way to read
//! it is the explicit [`Secret::expose`]. It serializes transparently because the API sends and
//! receives tokens as plain JSON strings.

use serde::{Deserialize, Serialize};

/// A token or other credential; `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call this only where the value must leave the process (a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("dpt_SUPERSECRET");
        assert!(!format!("{s:?} {s}").contains("SUPERSECRET"));
        assert_eq!(s.expose(), "dpt_SUPERSECRET");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"dpt_SUPERSECRET\"");
    }
}
