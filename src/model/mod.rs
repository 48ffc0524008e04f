//! Wire types of the DataPilot API v1, one module per OpenAPI tag.
//!
//! Every type here is a plain serde struct whose field names are the contract's `snake_case`
//! wire names, so a value round-trips through JSON unchanged. Three conventions:
//!
//! - **Timestamps are `String`s** in RFC 3339 UTC with millisecond precision. They are kept
//!   as the server wrote them on purpose: audit events are hashed as bytes, and re-formatting a
//!   parsed time could change those bytes. The SDK never needs clock arithmetic on them.
//! - **Closed vocabularies are [`string_enum!`] enums** (statuses, roles, kinds) with an
//!   `Other(String)` variant, so a value added by a newer server still decodes and re-encodes to
//!   the same string instead of failing the whole response.
//! - **Every struct the contract may extend is `#[non_exhaustive]`**: responses, so fields
//!   added later do not break callers that match them, and request bodies and filters, so a new
//!   optional field does not break callers that build them. Requests are built with `new(…)`
//!   (the required fields) and `with_…` setters (the optional ones); struct literals do not
//!   compile outside this crate (`tests/compile_fail/` shows both).
//!
//! Request bodies are sent exactly as serialized here: the server rejects unknown fields, so
//! optional fields use `skip_serializing_if` instead of sending `null`.
//!
//! The evidence bundle types ([`evidence`], [`lineage`], [`audit::LeafEvent`]) are shared
//! with the reference server, which writes bundles with them.

pub mod artifacts;
pub mod audit;
pub mod datasets;
pub mod evidence;
pub mod gates;
pub mod ledger;
pub mod lineage;
pub mod metrics;
pub mod policy;
pub mod queries;
pub mod runs;
pub mod system;
pub mod tokens;

use serde::{Deserialize, Serialize};

/// Defines an enum of the string values of a closed vocabulary, plus `Other(String)` for values
/// this SDK version does not know yet. Serializes to and from the bare string.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this SDK version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire string of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(s) => s.as_str(),
                }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = ::core::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $wire => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                })
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                // FromStr is infallible.
                Ok(s.parse().unwrap_or_else(|e: ::core::convert::Infallible| match e {}))
            }
        }
    };
}
pub(crate) use string_enum;

/// One page of a list operation: `items` plus the opaque cursor of the next page, `None` on
/// the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Page<T> {
    /// The items of this page, in the server's order.
    pub items: Vec<T>,
    /// Pass this as `cursor` to get the next page; `None` means this is the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from its parts (for tests and for transports that synthesize pages).
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Self { items, next_cursor }
    }
}

/// Paging parameters of a list operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// Page size, 1–500; the server default (50) when `None`.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; the first page when `None`.
    pub cursor: Option<String>,
}

/// A reference to one dataset version: the dataset and the DPM-1 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
pub struct DatasetVersionRef {
    /// Dataset id (`ds_…`).
    pub dataset_id: String,
    /// DPM-1 digest, `sha256:<64 hex>`.
    pub digest: String,
}

impl DatasetVersionRef {
    /// A reference from its parts.
    pub fn new(dataset_id: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            dataset_id: dataset_id.into(),
            digest: digest.into(),
        }
    }
}

string_enum! {
    /// The role of a principal. `viewer` < `engineer` < `admin`; `auditor` reads everything
    /// including audit and evidence but cannot write datasets or runs.
    pub enum Role {
        /// Read datasets, runs, lineage.
        Viewer => "viewer",
        /// Viewer plus dataset and run writes.
        Engineer => "engineer",
        /// Read everything, audit and evidence; record gate results.
        Auditor => "auditor",
        /// Everything, including policy and tokens.
        Admin => "admin",
        /// A run token's principal (`whoAmI` and audit actors only; not grantable).
        Run => "run",
        /// The server itself (audit actors only).
        System => "system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_enum_round_trips_known_and_unknown_values() {
        let r: Role = serde_json::from_str("\"auditor\"").unwrap();
        assert_eq!(r, Role::Auditor);
        let r: Role = serde_json::from_str("\"operator\"").unwrap();
        assert_eq!(r, Role::Other("operator".into()));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"operator\"");
        assert_eq!(Role::Admin.to_string(), "admin");
    }

    #[test]
    fn page_without_cursor_is_last() {
        let p: Page<u32> = serde_json::from_str(r#"{"items":[1,2],"next_cursor":null}"#).unwrap();
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.next_cursor.is_none());
    }
}
