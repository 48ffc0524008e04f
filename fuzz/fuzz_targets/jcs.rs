//! RFC 8785 canonical JSON (`datapilot::jcs::canonicalize`, `is_canonical`) on arbitrary bytes.
//!
//! Differential: for every value without fractional numbers, the output must equal a small
//! reference canonicaliser written here from the RFC (sorting by UTF-16 code units, minimal
//! escapes, integers as written), and it must refuse exactly the integer literals beyond
//! ±(2^53 − 1) whose double would be written with other digits (silent rounding).
//! For every value: the output is canonical, a fixed point, and the same JSON value as the
//! input (numbers compared as IEEE doubles, which is what JCS numbers are).

#![no_main]

use datapilot::jcs::{canonicalize, is_canonical, MAX_SAFE_INTEGER};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let result = canonicalize(data);
    let parsed = serde_json::from_slice::<Value>(data);
    assert_eq!(
        result.is_err() && parsed.is_ok(),
        parsed.as_ref().is_ok_and(has_unsafe_integer),
        "refused without an unsafe integer, or accepted one: {result:?}"
    );
    let Ok(canonical) = result else {
        return;
    };
    let value = parsed.expect("canonicalize parsed it");
    assert!(
        std::str::from_utf8(&canonical).is_ok(),
        "canonical JSON is not UTF-8"
    );
    assert!(is_canonical(&canonical), "output is not canonical");
    assert_eq!(
        canonicalize(&canonical).as_ref(),
        Ok(&canonical),
        "not a fixed point"
    );
    let back: Value = serde_json::from_slice(&canonical).expect("canonical JSON parses");
    assert!(
        same_value(&value, &back),
        "value changed: {value} -> {back}"
    );
    if let Some(expected) = reference(&value) {
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            expected,
            "differs from the reference canonicaliser"
        );
    }
    if is_canonical(data) {
        assert_eq!(
            canonical, data,
            "is_canonical accepted a non-canonical text"
        );
    }
});

/// An integer literal that JCS, whose numbers are doubles, would write with other digits.
/// Rust's `Display` of a double below 1e21 writes the shortest round-trip digits without an
/// exponent, as ECMAScript does: an independent check of the crate's rule.
fn rounded(i: i128) -> bool {
    i.unsigned_abs() > u128::from(MAX_SAFE_INTEGER) && (i as f64).to_string() != i.to_string()
}

fn integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn has_unsafe_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => integer(n).is_some_and(rounded),
        Value::Array(a) => a.iter().any(has_unsafe_integer),
        Value::Object(o) => o.values().any(has_unsafe_integer),
        _ => false,
    }
}

/// Equal as JSON values, numbers as doubles (1.0 and 1 are one JCS number).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// RFC 8785 for values whose numbers are integers; `None` for anything else (fractions need
/// ECMAScript's number formatting, which this reference does not re-implement).
fn reference(v: &Value) -> Option<String> {
    let mut out = String::new();
    write_value(v, &mut out)?;
    Some(out)
}

fn write_value(v: &Value, out: &mut String) -> Option<()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let i = integer(n)?;
            if rounded(i) {
                return None;
            }
            out.push_str(&i.to_string());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 3.2.3: member names sorted by their UTF-16 code units.
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Some(())
}

/// RFC 8785 3.2.2.2: only `"`, `\` and the controls are escaped, controls with the short forms
/// where JSON has them and `\u00xx` (lowercase) otherwise.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
