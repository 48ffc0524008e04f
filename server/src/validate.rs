//! Input rules checked at the boundary, before anything touches storage.
//!
//! Each check names the offending field so the client gets a `validation_failed` problem with
//! an `errors` entry it can show next to the right input.

use crate::error::ApiError;
use datapilot::manifest::{spelling_hint, Sha256Spelling};

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Dataset names: `^[a-z0-9][a-z0-9._-]{0,127}$`.
pub fn dataset_name(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must match ^[a-z0-9][a-z0-9._-]{0,127}$",
        ))
    }
}

/// 64 lowercase hex characters.
pub fn sha256_hex(field: &str, s: &str) -> Result<(), ApiError> {
    if is_lower_hex(s, 64) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            format!(
                "must be 64 lowercase hex characters{}",
                spelling_hint(s, Sha256Spelling::BareHex)
            ),
        ))
    }
}

/// `sha256:<64 lowercase hex>`.
pub fn digest(field: &str, s: &str) -> Result<(), ApiError> {
    match s.strip_prefix("sha256:") {
        Some(h) if is_lower_hex(h, 64) => Ok(()),
        _ => Err(ApiError::validation(
            field,
            format!(
                "must be sha256:<64 lowercase hex>{}",
                spelling_hint(s, Sha256Spelling::Prefixed)
            ),
        )),
    }
}

/// A git commit: 40 (SHA-1) or 64 (SHA-256 object format) lowercase hex characters.
pub fn git_commit(field: &str, s: &str) -> Result<(), ApiError> {
    if is_lower_hex(s, 40) || is_lower_hex(s, 64) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must be 40 or 64 lowercase hex characters",
        ))
    }
}

/// Free text with a length cap (names, notes, descriptions, gate names, param values).
pub fn text(field: &str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(ApiError::validation(
            field,
            format!("length must be {min}..={max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A gate name: 1–128 of `[A-Za-z0-9._-]` (kept simple: it is matched against the policy).
pub fn gate_name(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must be 1-128 characters of [A-Za-z0-9._-]",
        ))
    }
}

/// A DPM-1 relative path (also the rule for artifact names): `/`-separated, Unicode NFC, no
/// empty, `.` or `..` segment, no NUL, newline or backslash.
pub fn dpm_path(field: &str, s: &str, max_len: usize) -> Result<(), ApiError> {
    if s.len() > max_len {
        return Err(ApiError::validation(
            field,
            format!("at most {max_len} bytes"),
        ));
    }
    datapilot::manifest::validate_path(s).map_err(|e| ApiError::validation(field, e.to_string()))
}

/// The contract's `Label`: 1–255 characters, no control characters (run and token names).
pub fn label(field: &str, s: &str) -> Result<(), ApiError> {
    text(field, s, 1, 255)
}

/// The contract's `Text`: at most 4096 characters, no control characters.
pub fn long_text(field: &str, s: &str) -> Result<(), ApiError> {
    text(field, s, 0, 4096)
}

/// Metric names and string-map keys: `^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$`.
pub fn metric_name(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must match ^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$",
        ))
    }
}

/// A `StringMap` (params, gate details): at most `max` entries, metric-name keys, `Text` values.
pub fn string_map(
    field: &str,
    m: &std::collections::BTreeMap<String, String>,
    max: usize,
) -> Result<(), ApiError> {
    if m.len() > max {
        return Err(ApiError::validation(
            field,
            format!("at most {max} entries"),
        ));
    }
    for (k, v) in m {
        metric_name(&format!("{field}.{k}"), k)?;
        long_text(&format!("{field}.{k}"), v)?;
    }
    Ok(())
}

/// A timestamp in exactly the API's output form `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp(field: &str, s: &str) -> Result<(), ApiError> {
    if crate::util::parse_time(s).as_deref() == Some(s) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must be an RFC 3339 UTC time like 2026-11-27T03:38:50.123Z",
        ))
    }
}

/// The largest integer JSON numbers (IEEE doubles) hold exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub fn safe_int(field: &str, v: u64) -> Result<(), ApiError> {
    if v <= MAX_SAFE_INTEGER {
        Ok(())
    } else {
        Err(ApiError::validation(field, "must be at most 2^53 - 1"))
    }
}

/// `Idempotency-Key`: 1–255 visible ASCII characters.
pub fn idempotency_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests() {
        assert!(dataset_name("n", "imagenet-1k.v2").is_ok());
        assert!(dataset_name("n", "-x").is_err());
        assert!(dataset_name("n", "X").is_err());
        assert!(digest("d", &format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(digest("d", &format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(git_commit("g", &"0".repeat(40)).is_ok());
        assert!(git_commit("g", &"0".repeat(41)).is_err());
        assert!(idempotency_key("abc-123"));
        assert!(!idempotency_key("has space"));
    }
}
