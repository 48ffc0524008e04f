//! # datapilot-server
//!
//! The reference DataPilot control plane: the whole v1 contract (`openapi/datapilot.v1.yaml`)
//! on embedded SQLite (or PostgreSQL) and a content-addressed blob store (on disk or an
//! S3-compatible store), with an RFC 9162 audit ledger,
//! signed C2SP checkpoints and deterministic evidence bundles. See `docs/server.md`.
//!
//! Module map:
//! - [`cli`] operator subcommands: [`admin`] token recovery and the start-up banner,
//!   [`backup`] backup/restore, [`verify`] re-checking everything stored, [`upgrade`] schema
//!   versions and `migrate`;
//!   [`config`] flags and environment; [`app`] wiring, middleware, start-up, shutdown;
//!   [`serve`] connections: caps, header timeout, graceful shutdown; [`metrics`] Prometheus
//!   metrics, probes and the access log ([`forwarded`]: the client address); [`tls`] HTTPS
//! - [`routes`] one file per OpenAPI tag; [`extract`] strict body/query/path extractors
//! - [`error`] RFC 9457 problems; [`auth`] tokens, run tokens, gateway mode, per-object rules
//! - [`idempotency`] `Idempotency-Key` replay
//! - [`store`] the domain layer over SQLite or PostgreSQL repositories; [`blob`] artifacts
//!   (local directory or S3-compatible store); [`state`] what handlers share
//! - [`ledger`] Merkle tree over stored subtree hashes; [`keys`] the signing key;
//!   [`checkpoint`] signing without equivocation
//! - [`evidence`] bundle writer; [`report`] its human page
//! - [`model`] wire types; [`validate`] input rules; [`canon`] JCS; [`util`] ids, time, cursors;
//!   [`serde_helpers`] lenient deserializers

pub mod admin;
pub mod app;
pub mod auth;
pub mod backup;
pub mod blob;
pub mod canon;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod forwarded;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod protocol_errors;
pub mod rate_limit;
pub mod report;
pub mod routes;
pub mod serde_helpers;
pub mod serve;
pub mod stall;
pub mod state;
pub mod store;
pub mod tiles;
pub mod tls;
pub mod upgrade;
pub mod util;
pub mod validate;
pub mod verify;
pub mod witness;
