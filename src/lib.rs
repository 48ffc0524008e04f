//! # DataPilot SDK
//!
//! The integration layer of Animus DataPilot, an on-prem control plane for ML datasets,
//! experiment runs, lineage and audit evidence. This crate holds everything that is not tied to
//! a particular runtime, so it is tested natively with `cargo test` and compiled unchanged to
//! WebAssembly for the npm package `@animus/datapilot`:
//!
//! - [`manifest`]: the DPM-1 dataset digest (content address of a dataset version), computed
//!   incrementally so a file is never held whole.
//! - [`merkle`]: RFC 9162 Merkle tree hashing, inclusion and consistency proof verification.
//!
//! The exact byte formats are pinned in `docs/formats.md`.

pub mod manifest;
pub mod merkle;

#[cfg(target_arch = "wasm32")]
mod wasm;
