//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.
//!
//! Whatever is hashed or signed (audit events, the evidence statement, the
//! metric-batch digest) must serialise to the same bytes on every machine and
//! in every language, or signatures and Merkle leaves stop matching. JCS fixes
//! the three free choices of JSON: no insignificant whitespace; object members
//! sorted by the UTF-16 code units of their names; numbers written as
//! ECMAScript's `Number.prototype.toString` writes IEEE 754 doubles, strings
//! with the minimal escapes. Python's `json.dumps(v, sort_keys=True,
//! separators=(",", ":"), ensure_ascii=False)` gives the same bytes for
//! values without floats or non-BMP member names.
//!
//! The work is done by `serde_json_canonicalizer` (see `docs/dependencies.md`).
//! This module adds a guard on numbers, checked before serialising: JCS
//! numbers are doubles, so an integer beyond ±(2^53 − 1) would be silently
//! rounded (`18446744073709551615` becomes `18446744073709552000`); that is
//! refused with [`JcsError::UnsafeInteger`] instead of producing a digest of a
//! different number. And a NaN or infinity nested in an array or object would
//! be written as `null` by the canonicaliser (as by `serde_jcs` and
//! `serde_json`); RFC 8785 requires an error, and so do we.

use serde::Serialize;
use serde_json::Value;

/// The largest integer a JCS number (an IEEE 754 double) holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Errors producing canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// The value cannot be represented in JSON (a NaN or infinite float, a map
    /// with non-string keys, a failing `Serialize` impl).
    #[error("value cannot be serialised as canonical JSON: {0}")]
    Serialize(String),
    /// An integer outside ±(2^53 − 1), which JCS would round.
    #[error("integer {value} is outside the range JSON numbers hold exactly (±(2^53 - 1))")]
    UnsafeInteger {
        /// The integer, as text.
        value: String,
    },
    /// The input to [`canonicalize`] is not JSON.
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
}

/// The canonical (RFC 8785) bytes of `value`.
pub fn to_canonical_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, JcsError> {
    // First a pass that only looks at numbers: the canonicaliser (like
    // serde_json underneath it) silently writes a NaN or infinity nested in an
    // array or object as `null`, and rounds large integers.
    value.serialize(NumberCheck)?;
    serde_json_canonicalizer::to_vec(value).map_err(|e| JcsError::Serialize(e.to_string()))
}

/// The canonical (RFC 8785) text of `value`.
pub fn to_canonical_string<T: Serialize>(value: &T) -> Result<String, JcsError> {
    let bytes = to_canonical_vec(value)?;
    // The canonicaliser writes UTF-8 only; a failure here would be its bug.
    String::from_utf8(bytes).map_err(|e| JcsError::Serialize(e.to_string()))
}

/// Re-serialises JSON text canonically. If an object repeats a member name,
/// the last one wins (so such input is never [`is_canonical`]).
pub fn canonicalize(json: &[u8]) -> Result<Vec<u8>, JcsError> {
    let mut value: Value =
        serde_json::from_slice(json).map_err(|e| JcsError::InvalidJson(e.to_string()))?;
    exact_doubles(&mut value);
    to_canonical_vec(&value)
}

/// Numbers in JSON text are doubles, and JCS writes a large double as an integer literal (the
/// double 1e19 is `10000000000000000000`). Such a literal denotes its double exactly when
/// writing that double gives back the same digits: it is kept as that double, so the
/// canonical text of every double is canonical again. A literal whose digits the double would
/// change (`18446744073709551615`) stays an integer, and [`to_canonical_vec`] refuses it.
fn exact_doubles(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let int = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from));
            let Some(int) = int.filter(|&i| check_int(i).is_err()) else {
                return;
            };
            let double = int as f64;
            if serde_json_canonicalizer::to_string(&double).ok() == Some(int.to_string()) {
                if let Some(exact) = serde_json::Number::from_f64(double) {
                    *n = exact;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(exact_doubles),
        Value::Object(members) => members.values_mut().for_each(exact_doubles),
        _ => {}
    }
}

/// Whether `json` is exactly the canonical serialisation of the value it
/// encodes (what a verifier checks on signed or hashed JSON it receives).
pub fn is_canonical(json: &[u8]) -> bool {
    matches!(canonicalize(json), Ok(c) if c == json)
}

impl serde::ser::Error for JcsError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        JcsError::Serialize(msg.to_string())
    }
}

fn check_int(value: i128) -> Result<(), JcsError> {
    if value.unsigned_abs() > u128::from(MAX_SAFE_INTEGER) {
        return Err(JcsError::UnsafeInteger {
            value: value.to_string(),
        });
    }
    Ok(())
}

fn check_float(value: f64) -> Result<(), JcsError> {
    if !value.is_finite() {
        return Err(JcsError::Serialize(format!(
            "{value} is not a JSON number (RFC 8785 forbids NaN and infinities)"
        )));
    }
    Ok(())
}

/// A serializer that produces nothing and fails on the numbers JCS cannot
/// represent exactly: non-finite floats and integers beyond ±(2^53 − 1).
/// Map keys are not checked: serde_json writes integer keys as strings.
struct NumberCheck;

impl serde::Serializer for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), JcsError> {
        check_int(i128::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), JcsError> {
        check_int(v)
    }
    fn serialize_u8(self, _: u8) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), JcsError> {
        check_int(i128::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<(), JcsError> {
        match i128::try_from(v) {
            Ok(v) => check_int(v),
            Err(_) => Err(JcsError::UnsafeInteger {
                value: v.to_string(),
            }),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), JcsError> {
        check_float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), JcsError> {
        check_float(v)
    }
    fn serialize_char(self, _: char) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), JcsError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, JcsError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, JcsError> {
        Ok(self)
    }
}

impl serde::ser::SerializeSeq for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeTuple for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeTupleStruct for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeTupleVariant for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeMap for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, _: &T) -> Result<(), JcsError> {
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeStruct for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

impl serde::ser::SerializeStructVariant for NumberCheck {
    type Ok = ();
    type Error = JcsError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        value.serialize(NumberCheck)
    }
    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn canon(json: &str) -> String {
        String::from_utf8(canonicalize(json.as_bytes()).unwrap()).unwrap()
    }

    /// RFC 8785 section 3.2.2 (and 3.2.3's output): the sample input.
    #[test]
    fn rfc8785_sample() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            canon(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 section 3.2.3: members sorted by UTF-16 code units, so the
    /// emoji (a surrogate pair, 0xD83D...) sorts before U+FB33.
    #[test]
    fn rfc8785_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
                    \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), want);
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
    #[test]
    fn rfc8785_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            let got = to_canonical_string(&f64::from_bits(*bits)).unwrap();
            assert_eq!(got, *want, "0x{bits:016x}");
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                to_canonical_vec(&bad),
                Err(JcsError::Serialize(_))
            ));
            assert!(matches!(
                to_canonical_vec(&[bad]),
                Err(JcsError::Serialize(_))
            ));
        }
    }

    #[test]
    fn nested_non_finite_floats_are_errors() {
        #[derive(Serialize)]
        struct Point {
            name: &'static str,
            value: f64,
            extra: Option<f32>,
        }
        let p = |value, extra| Point {
            name: "loss",
            value,
            extra,
        };
        assert_eq!(
            to_canonical_string(&vec![p(0.5, Some(1.5))]).unwrap(),
            r#"[{"extra":1.5,"name":"loss","value":0.5}]"#
        );
        assert!(to_canonical_vec(&vec![p(f64::NAN, None)]).is_err());
        assert!(to_canonical_vec(&vec![p(1.0, Some(f32::INFINITY))]).is_err());
        let mut m = HashMap::new();
        m.insert("x", f64::NEG_INFINITY);
        assert!(to_canonical_vec(&m).is_err());
        assert!(to_canonical_vec(&u128::MAX).is_err());
        assert!(to_canonical_vec(&(1u128 << 53)).is_err());
        assert_eq!(
            to_canonical_string(&((1u128 << 53) - 1)).unwrap(),
            "9007199254740991"
        );
    }

    #[test]
    fn integers_must_be_exact() {
        assert_eq!(
            to_canonical_string(&MAX_SAFE_INTEGER).unwrap(),
            "9007199254740991"
        );
        assert_eq!(
            to_canonical_string(&-(MAX_SAFE_INTEGER as i64)).unwrap(),
            "-9007199254740991"
        );
        assert_eq!(
            to_canonical_vec(&(MAX_SAFE_INTEGER + 1)),
            Err(JcsError::UnsafeInteger {
                value: "9007199254740992".into()
            })
        );
        let mut nested = HashMap::new();
        nested.insert("a", vec![1i64, i64::MIN]);
        assert!(matches!(
            to_canonical_vec(&nested),
            Err(JcsError::UnsafeInteger { .. })
        ));
    }

    #[test]
    fn the_canonical_text_of_a_large_double_is_canonical() {
        // Doubles from 2^53 up to 1e21 are written as integer literals; found by fuzzing
        // (fuzz/fuzz_targets/jcs.rs): `canonicalize` produced them and then refused them.
        let c = to_canonical_vec(&1e19_f64).unwrap();
        assert_eq!(c, b"10000000000000000000");
        assert!(is_canonical(&c));
        assert_eq!(
            canonicalize(b"[9007199254740996e3,-9007199254740996e3]").unwrap(),
            b"[9007199254740996000,-9007199254740996000]"
        );
        assert!(is_canonical(b"[9007199254740996000,-9007199254740996000]"));
        assert!(is_canonical(b"9007199254740992"));
        // Digits that the double would change are still refused, not rounded.
        for rounded in [
            "18446744073709551615",
            "9007199254740993",
            "-9007199254740993",
        ] {
            assert!(
                matches!(
                    canonicalize(rounded.as_bytes()),
                    Err(JcsError::UnsafeInteger { .. })
                ),
                "{rounded}"
            );
        }
    }

    #[test]
    fn structs_and_maps_are_sorted() {
        #[derive(Serialize)]
        struct Event<'a> {
            v: u32,
            seq: u64,
            action: &'a str,
            data: HashMap<&'a str, &'a str>,
        }
        let mut data = HashMap::new();
        data.insert("z", "last");
        data.insert("a", "first");
        let e = Event {
            v: 1,
            seq: 7,
            action: "dataset.create",
            data,
        };
        assert_eq!(
            to_canonical_string(&e).unwrap(),
            r#"{"action":"dataset.create","data":{"a":"first","z":"last"},"seq":7,"v":1}"#
        );
    }

    #[test]
    fn canonical_check() {
        assert!(is_canonical(br#"{"a":1,"b":[true,null,"x"]}"#));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#)); // order
        assert!(!is_canonical(br#"{"a": 1}"#)); // whitespace
        assert!(!is_canonical(br#"{"a":1.0}"#)); // number form
        assert!(!is_canonical(br#"{"a":"\/"}"#)); // needless escape
        assert!(!is_canonical(br#"{"a":"\u00e9"}"#)); // escaped non-ASCII
        assert!(!is_canonical(br#"{"a":1,"a":1}"#)); // duplicate member
        assert!(!is_canonical(b"{\"a\":1}\n")); // trailing newline
        assert!(!is_canonical(b"not json"));
        assert!(matches!(canonicalize(b"{"), Err(JcsError::InvalidJson(_))));
    }
}
