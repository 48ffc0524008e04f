//! # DataPilot SDK
//!
//! The integration layer of Animus DataPilot, an on-prem control plane for ML datasets,
//! experiment runs, lineage and audit evidence. This crate holds everything that is not tied to
//! a particular runtime, so it is tested natively with `cargo test` and compiled unchanged to
//! WebAssembly for the npm package `@animus/datapilot`:
//!
//! - [`manifest`]: the DPM-1 dataset digest (content address of a dataset version), computed
//!   incrementally so a file is never held whole.
//! - [`merkle`]: RFC 9162 Merkle tree hashing, inclusion and consistency proof verification,
//!   and proof generation over stored subtree hashes (used by the reference server).
//! - [`jcs`]: RFC 8785 canonical JSON, the bytes of everything hashed or signed.
//! - [`checkpoint`]: C2SP signed notes and tlog checkpoints, Ed25519 signer and verifier keys.
//! - [`dsse`]: DSSE v1 envelopes (the signed statement of an evidence bundle).
//!
//! - [`Client`] ([`client`], [`api`]): a method for every operation of the DataPilot API v1,
//!   with retries ([`retry`]), idempotency keys, cursor paging ([`pagination`]) and one
//!   [`Error`] type ([`error`]) that says whether a failed request may have been sent.
//! - [`transport`]: the `Transport` and `Sleep` traits the client runs on (`Send + Sync`
//!   natively, so a [`Client`] is `Send + Sync + Clone` and can be shared by tokio tasks; no such
//!   bounds on wasm32, so the wasm layer can implement them with `fetch`); [`native`] (feature
//!   `native`) is a reqwest implementation for Rust programs.
//! - [`model`]: serde types of every schema, one module per API tag, including the evidence
//!   bundle's statement, lineage and audit leaf types.
//! - [`evidence`]: offline verification of an evidence bundle against pinned verifier keys,
//!   producing a report of named checks.
//! - [`files`] (native targets): DPM-1 digests of local directories, streamed file uploads
//!   with progress; [`metrics_logger`] (feature `native`): metrics queued by a training loop
//!   and sent in batches by a background task. The Python package is built on these.
//!
//! The exact byte formats are pinned in `docs/formats.md`; the SDK is described in
//! `docs/sdk-rust.md`.

pub mod checkpoint;
pub mod dsse;
pub mod jcs;
pub mod manifest;
pub mod merkle;
pub mod witness;

pub mod api;
pub mod client;
pub mod error;
pub mod evidence;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod ignore;
#[cfg(feature = "native")]
pub mod metrics_logger;
pub mod model;
#[cfg(feature = "native")]
pub mod native;
pub mod pagination;
pub mod retry;
pub mod secret;
pub mod transport;

pub use api::{Operation, WriteOperation};
pub use client::{Client, ClientBuilder, RequestOptions};
pub use error::{ApiError, Error, Result, Sent};
pub use pagination::{Order, Pager, PagerStream};
pub use secret::Secret;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
