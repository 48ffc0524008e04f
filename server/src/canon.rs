//! RFC 8785 (JCS) canonical JSON: the bytes of everything hashed or signed (ledger leaves,
//! metric batch digests, bundle members).
//!
//! One function so the whole server hashes through one serializer: the SDK's
//! (`datapilot::jcs`), the same code the verifier uses.

use serde::Serialize;

/// The JCS bytes of a value.
pub fn jcs<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialization of the server's own values cannot fail: they hold no maps with non-string
    // keys, no non-finite floats (metric values are checked finite at the boundary) and no
    // integer beyond 2^53 - 1 (the boundary caps them too).
    datapilot::jcs::to_canonical_vec(value).expect("JCS serialization of a server value")
}
