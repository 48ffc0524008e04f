//! One method on [`crate::Client`] per operation of the contract, grouped by OpenAPI tag (one
//! file per tag). The method name is the `operationId` in snake_case.
//!
//! Conventions:
//! - Reads take ids and filters and return the decoded model type.
//! - List operations return a [`crate::Pager`]; nothing is sent until its first `next_page`.
//! - Writes take the request body; their `*_with` variant also takes
//!   [`crate::RequestOptions`] (your own `Idempotency-Key`, a timeout). Without one, a fresh
//!   key is generated per call and reused on that call's retries.

mod artifacts;
mod audit;
mod datasets;
mod evidence;
mod gates;
mod ledger;
mod lineage;
mod metrics;
mod policy;
mod runs;
mod system;
mod tokens;
