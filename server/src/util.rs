//! Small shared helpers: identifiers, secrets, timestamps and opaque cursors.
//!
//! Identifiers are ULID-like (48-bit millisecond time + 80 random bits, Crockford base32) so
//! they sort roughly by creation and reveal nothing guessable; secrets are 160 random bits in
//! lowercase RFC 4648 base32 behind a prefix that tells token kinds apart at a glance and lets
//! secret scanners find leaked ones.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Fill a buffer from the OS random source. Failure here means the OS cannot give entropy,
/// and nothing safe can be done without it.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("OS random source unavailable");
    b
}

/// A new identifier: `prefix` + 26 Crockford base32 characters.
pub fn new_id(prefix: &str) -> String {
    let ms = Utc::now().timestamp_millis().max(0) as u128;
    let rnd = random_bytes::<10>();
    let mut v: u128 = ms << 80;
    for (i, b) in rnd.iter().enumerate() {
        v |= (*b as u128) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    for i in (0..26).rev() {
        out.push(CROCKFORD[((v >> (5 * i)) & 31) as usize] as char);
    }
    out
}

/// Lowercase RFC 4648 base32 without padding.
pub fn base32_lower(data: &[u8]) -> String {
    const ALPHA: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buf: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHA[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHA[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A new secret with a kind prefix (`dpt_` API token, `dpr_` run token).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", base32_lower(&random_bytes::<20>()))
}

/// How a secret is kept at rest: lowercase hex SHA-256. Secrets carry 160 random bits, so a
/// plain hash (no salt, no stretching) cannot be brute-forced and allows an indexed lookup.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// RFC 3339 UTC with millisecond precision, the one timestamp format of the API.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, truncated to milliseconds so a stored time and its text form agree.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub fn now_str() -> String {
    fmt_time(now())
}

/// Parse an RFC 3339 time into the canonical ms-precision UTC form.
pub fn parse_time(s: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    let t = DateTime::from_timestamp_millis(t.timestamp_millis())?;
    Some(fmt_time(t))
}

/// A list cursor: the last row key of the page and the list scope it is bound to
/// (crate::extract::ListScope), as base64url of `k<key>.<scope hex>`. Opaque so that clients
/// do not build them and the server may change the key later.
pub fn encode_cursor(key: i64, scope: u32) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k{key}.{scope:08x}"))
}

/// `(key, scope)` of a cursor made by [`encode_cursor`].
pub fn decode_cursor(c: &str) -> Option<(i64, u32)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    let (key, scope) = s.strip_prefix('k')?.split_once('.')?;
    if scope.len() != 8 {
        return None;
    }
    Some((key.parse().ok()?, u32::from_str_radix(scope, 16).ok()?))
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_have_their_shape() {
        let id = new_id("ds_");
        assert_eq!(id.len(), 29);
        assert!(new_secret("dpt_").starts_with("dpt_"));
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn cursor_roundtrip() {
        assert_eq!(
            decode_cursor(&encode_cursor(42, 0xdead_beef)),
            Some((42, 0xdead_beef))
        );
        assert_eq!(decode_cursor(&encode_cursor(-1, 0)), Some((-1, 0)));
        assert_eq!(decode_cursor("!!"), None);
        // The format before cursors were bound to their list: refused, never a wrong page.
        assert_eq!(decode_cursor("azQy"), None);
    }

    #[test]
    fn time_is_ms_utc() {
        assert_eq!(
            parse_time("2026-11-27T04:38:50.1234+01:00").unwrap(),
            "2026-11-27T03:38:50.123Z"
        );
    }
}
